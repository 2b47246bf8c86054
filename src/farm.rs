//! Render-farm runs: `nitrate farm slurm` writes a Slurm batch plan for one reel (an analysis
//! job, an array job of chunks that depends on it, a merge job after them) as plain scripts an
//! operator can read and edit; `nitrate farm merge` puts the chunks' records together and
//! verifies every frame.
//!
//! A plan folder holds:
//! - `analyse.sbatch`: `nitrate analyse` of the whole reel into `analysis.json`;
//! - `chunks.sbatch`: an array job, task `i` restoring the frames on line `i + 1` of
//!   `chunks.txt` with `restore --frames A-B --analysis analysis.json`;
//! - `merge.sbatch`: `nitrate farm merge`, which reports any chunk that did not finish (its
//!   frames and log) and otherwise writes `OUTPUT/restoration.json`;
//! - `submit.sh`: submits the three with their dependencies; `submit.sh --resume` re-submits a
//!   plan whose run stopped, and every chunk finishes with `restore --resume`, redoing only
//!   the frames that are not yet written and verified;
//! - `logs/`: one log per job and chunk.
//!
//! The frames, the analysis and the plan must be on storage every node sees under the same
//! paths; the scripts use absolute paths.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::io::{self, checksum, Input};
use crate::pipeline::resume;

/// What `farm slurm` is asked for.
pub struct SlurmPlan {
    pub input: PathBuf,
    pub output: PathBuf,
    pub plan: PathBuf,
    /// Frames per chunk.
    pub chunk: usize,
    pub preset: String,
    pub stages: Option<Vec<String>>,
    pub set: Vec<String>,
    /// `--backend` for the jobs.
    pub backend: String,
    pub partition: Option<String>,
    pub cpus_per_task: Option<usize>,
    /// The nitrate program the jobs run.
    pub nitrate: PathBuf,
}

/// The plan as written.
pub struct Written {
    pub dir: PathBuf,
    pub chunks: Vec<(i64, i64)>,
    pub submit: PathBuf,
}

/// `'text'` for a POSIX shell.
pub fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn absolute(path: &Path) -> Result<PathBuf> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    Ok(abs)
}

/// Consecutive ranges of at most `chunk` frames covering `numbers`.
pub fn chunk_ranges(numbers: &[i64], chunk: usize) -> Vec<(i64, i64)> {
    numbers
        .chunks(chunk.max(1))
        .map(|c| (c[0], c[c.len() - 1]))
        .collect()
}

/// Write the plan's scripts.
pub fn write_slurm_plan(p: &SlurmPlan) -> Result<Written> {
    if p.chunk == 0 {
        bail!("--chunk 0: a chunk needs at least one frame");
    }
    let input = Input::discover(&p.input, None)?;
    if matches!(input, Input::Video(_)) {
        bail!(
            "{}: farm plans restore frame sequences (chunks of a video would be separate files)",
            p.input.display()
        );
    }
    let numbers = input.numbers();
    if numbers.is_empty() {
        bail!("{}: no frames", p.input.display());
    }
    let chunks = chunk_ranges(&numbers, p.chunk);
    let dir = absolute(&p.plan)?;
    std::fs::create_dir_all(dir.join("logs"))
        .with_context(|| format!("{}: cannot create the plan folder", dir.display()))?;
    let q = |p: &Path| sh_quote(&p.display().to_string());
    let (inp, out) = (absolute(&p.input)?, absolute(&p.output)?);
    let analysis = dir.join("analysis.json");
    let nitrate = absolute(&p.nitrate)?;
    // The options that decide the chain: the same for the analysis and every chunk.
    let mut chain = format!(
        "--preset {} --backend {}",
        sh_quote(&p.preset),
        sh_quote(&p.backend)
    );
    if let Some(stages) = &p.stages {
        write!(chain, " --stages {}", sh_quote(&stages.join(",")))?;
    }
    for s in &p.set {
        write!(chain, " --set {}", sh_quote(s))?;
    }
    let header = |name: &str, what: &str, log: &str, extra: &str| {
        let mut s = format!(
            "#!/bin/sh\n# {what}\n# Written by `nitrate farm slurm` for {}; edit freely.\n\
             #SBATCH --job-name={name}\n#SBATCH --output={}\n",
            inp.display(),
            dir.join("logs").join(log).display()
        );
        if let Some(part) = &p.partition {
            s += &format!("#SBATCH --partition={part}\n");
        }
        if let Some(c) = p.cpus_per_task {
            s += &format!("#SBATCH --cpus-per-task={c}\n");
        }
        s += extra;
        s += &format!("set -eu\nNITRATE={}\n", q(&nitrate));
        s
    };

    let analyse = header(
        "nitrate-analyse",
        "The whole reel's measures (cuts, motion, flicker), once, before the chunks.",
        "analyse.log",
        "",
    ) + &format!(
        "if [ \"${{NITRATE_RESUME:-0}}\" = 1 ] && [ -f {a} ]; then\n    \
         echo \"resume: keeping the analysis {ad}\"\n    exit 0\nfi\n\
         exec \"$NITRATE\" analyse {i} --out {a} {chain}\n",
        a = q(&analysis),
        ad = analysis.display(),
        i = q(&inp),
    );
    let chunk_list: String = chunks.iter().map(|(a, b)| format!("{a}-{b}\n")).collect();
    let chunks_script = header(
        "nitrate-chunk",
        "One chunk of the reel per array task: the frames on line (task + 1) of chunks.txt.",
        "chunk-%a.log",
        &format!("#SBATCH --array=0-{}\n", chunks.len() - 1),
    ) + &format!(
        "FRAMES=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" {list})\n\
         RESUME=\nif [ \"${{NITRATE_RESUME:-0}}\" = 1 ]; then RESUME=--resume; fi\n\
         echo \"chunk $SLURM_ARRAY_TASK_ID: frames $FRAMES on $(hostname)\"\n\
         exec \"$NITRATE\" restore {i} {o} --frames \"$FRAMES\" --analysis {a} {chain} --quiet $RESUME\n",
        list = q(&dir.join("chunks.txt")),
        i = q(&inp),
        o = q(&out),
        a = q(&analysis),
    );
    let merge = header(
        "nitrate-merge",
        "After every chunk: report chunks that failed, or merge their records and verify every frame.",
        "merge.log",
        "",
    ) + &format!(
        "exec \"$NITRATE\" farm merge {o} --plan {d}\n",
        o = q(&out),
        d = q(&dir),
    );
    let submit = format!(
        "#!/bin/sh\n\
         # Submit the plan: the analysis; the chunks once it succeeded; the merge after every\n\
         # chunk (failed or not, so that it can say which failed).\n\
         # `submit.sh --resume` re-submits a plan whose run stopped: the analysis is kept, and\n\
         # each chunk restores only the frames not yet written and verified.\n\
         set -eu\ncd \"$(dirname \"$0\")\"\n\
         NITRATE_RESUME=0\nif [ \"${{1:-}}\" = --resume ]; then NITRATE_RESUME=1; fi\n\
         export NITRATE_RESUME\nmkdir -p logs\n\
         jobid() {{ sed 's/;.*//'; }}\n\
         A=$(sbatch --parsable analyse.sbatch | jobid)\n\
         C=$(sbatch --parsable --dependency=afterok:$A --kill-on-invalid-dep=yes chunks.sbatch | jobid)\n\
         M=$(sbatch --parsable --dependency=afterany:$C --kill-on-invalid-dep=yes merge.sbatch | jobid)\n\
         echo \"$A $C $M\" > jobs.txt\n\
         echo \"submitted: analysis $A, chunks $C ({n} tasks), merge $M; logs in $(pwd)/logs\"\n",
        n = chunks.len()
    );
    let files = [
        ("analyse.sbatch", analyse),
        ("chunks.sbatch", chunks_script),
        ("merge.sbatch", merge),
        ("submit.sh", submit),
        ("chunks.txt", chunk_list),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        io::write_atomic(&path, text.as_bytes())?;
        if name.ends_with(".sh") || name.ends_with(".sbatch") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("{}: cannot make executable", path.display()))?;
        }
    }
    Ok(Written {
        submit: dir.join("submit.sh"),
        dir,
        chunks,
    })
}

/// Run the plan's `submit.sh`; its output (the job ids).
pub fn submit(written: &Written, resume: bool) -> Result<String> {
    let mut cmd = std::process::Command::new("sh");
    cmd.arg(&written.submit);
    if resume {
        cmd.arg("--resume");
    }
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {}", written.submit.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}",
            written.submit.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What `farm merge` found.
pub struct Merged {
    pub record: PathBuf,
    pub chunks: usize,
    pub frames: usize,
    pub range: (i64, i64),
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("{}: not a JSON record", path.display()))
}

/// The last lines of a log, indented, for a failure report.
fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| format!("\n      {l}"))
        .collect()
}

/// The first and last frame numbers of the input a record names: a sequence's, found on
/// disk, or a video's (0 to its frame count less one).
fn reel_extent(input: &serde_json::Value) -> Result<(i64, i64)> {
    if let Some(pattern) = input["pattern"].as_str() {
        let seq = crate::io::sequence::Sequence::discover(Path::new(pattern))?;
        let numbers = seq.frames.iter().map(|f| f.number);
        return match (numbers.clone().min(), numbers.max()) {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => bail!("{pattern}: no frames"),
        };
    }
    match input["frames"].as_i64() {
        Some(n) if n > 0 => Ok((0, n - 1)),
        _ => bail!("the record names no input sequence or frame count"),
    }
}

/// Merge the chunk records in `output` into `output/restoration.json`, after checking that the
/// chunks (those of the plan in `plan`, if given) tile the reel, share one chain, and that
/// every frame they list is on disk with its recorded SHA-256. Any problem is an error that
/// lists them all; nothing is written then.
pub fn merge(output: &Path, plan: Option<&Path>) -> Result<Merged> {
    let found = resume::chunk_records(output)?;
    let mut problems = Vec::new();
    let planned: Vec<(i64, i64)> = match plan {
        Some(dir) => {
            let list = dir.join("chunks.txt");
            let text = std::fs::read_to_string(&list)
                .with_context(|| format!("{}: cannot read the plan's chunks", list.display()))?;
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| crate::cli::parse_range(l).with_context(|| list.display().to_string()))
                .collect::<Result<_>>()?
        }
        None => found.iter().map(|(r, _)| *r).collect(),
    };
    if planned.is_empty() {
        bail!(
            "{}: no chunk records (restoration.A-B.json) to merge",
            output.display()
        );
    }
    let mut records = Vec::new();
    for (i, &(a, b)) in planned.iter().enumerate() {
        match found.iter().find(|(r, _)| *r == (a, b)) {
            Some((_, path)) => records.push(((a, b), path.clone(), read_json(path)?)),
            None => {
                let log = plan.map(|d| d.join("logs").join(format!("chunk-{i}.log")));
                problems.push(match log {
                    Some(log) => format!(
                        "chunk {i} (frames {a}-{b}) did not finish: no record; log {}{}",
                        log.display(),
                        log_tail(&log, 5)
                    ),
                    None => format!("chunk {i} (frames {a}-{b}): no record"),
                });
            }
        }
    }
    if plan.is_none() {
        // Without a plan the reel's own extent says where chunks must start and end: a first
        // or last chunk that never ran leaves no record to show a gap between.
        if let Some((_, path, rec)) = records.first() {
            match reel_extent(&rec["input"]) {
                Ok((first, last)) => {
                    let (a, b) = (planned[0].0, planned[planned.len() - 1].1);
                    if a > first {
                        problems.push(format!(
                            "frames {first}-{} are in no chunk (the reel starts at {first})",
                            a - 1
                        ));
                    }
                    if b < last {
                        problems.push(format!(
                            "frames {}-{last} are in no chunk (the reel ends at {last})",
                            b + 1
                        ));
                    }
                }
                Err(e) => problems.push(format!(
                    "{}: cannot tell the reel's first and last frames ({e:#}); give the plan \
                     with --plan",
                    path.display()
                )),
            }
        }
        for w in planned.windows(2) {
            if w[1].0 <= w[0].1 {
                problems.push(format!(
                    "chunks {}-{} and {}-{} overlap",
                    w[0].0, w[0].1, w[1].0, w[1].1
                ));
            } else if w[1].0 != w[0].1 + 1 {
                problems.push(format!(
                    "frames {}-{} are in no chunk",
                    w[0].1 + 1,
                    w[1].0 - 1
                ));
            }
        }
    }
    let chain = records
        .first()
        .and_then(|r| r.2["chain_sha256"].as_str().map(String::from));
    let mut files = Vec::new();
    for ((a, b), path, rec) in &records {
        if rec["chain_sha256"].as_str().map(String::from) != chain {
            problems.push(format!(
                "{}: restored with other settings (chain {}) than {} ({})",
                path.display(),
                rec["chain_sha256"],
                records[0].1.display(),
                chain.as_deref().unwrap_or("none")
            ));
        }
        let listed = rec["output"]["files"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if listed.is_empty() {
            problems.push(format!("{}: lists no frames for {a}-{b}", path.display()));
        }
        for f in listed {
            let name = f["name"].as_str().unwrap_or_default().to_string();
            let frame = output.join(&name);
            match (f["sha256"].as_str(), checksum::sha256_file(&frame)) {
                (None, _) => problems.push(format!(
                    "{name}: not written by chunk {a}-{b} ({})",
                    path.display()
                )),
                (Some(_), Err(_)) => problems.push(format!("{name}: missing (chunk {a}-{b})")),
                (Some(want), Ok(got)) if want != got => problems.push(format!(
                    "{name}: SHA-256 {got} is not the {want} chunk {a}-{b} recorded; restore the chunk again with --resume"
                )),
                _ => {}
            }
            files.push(f);
        }
    }
    if !problems.is_empty() {
        let n = problems.len();
        let shown: Vec<String> = problems.iter().take(20).map(|p| format!("  {p}")).collect();
        bail!(
            "{}: {n} problem{} with the chunks; no merged record written:\n{}{}",
            output.display(),
            if n == 1 { "" } else { "s" },
            shown.join("\n"),
            if n > 20 { "\n  ..." } else { "" }
        );
    }
    let first = &records[0].2;
    let range = (records[0].0 .0, records[records.len() - 1].0 .1);
    let mut inputs = std::collections::BTreeMap::new();
    for (_, _, rec) in &records {
        for f in rec["input"]["files"].as_array().into_iter().flatten() {
            if let Some(n) = f["name"].as_str() {
                inputs.insert(n.to_string(), f.clone());
            }
        }
    }
    let mut input = first["input"].clone();
    input["files"] = inputs.into_values().collect::<Vec<_>>().into();
    input["frames_read"] = serde_json::Value::Null;
    let mut out = first["output"].clone();
    out["frames"] = serde_json::json!([range.0, range.1]);
    out["files"] = files.clone().into();
    let stages: Vec<serde_json::Value> = first["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(k, s)| {
            let mut s = s.clone();
            if let Some(m) = s.as_object_mut() {
                m.remove("report");
            }
            s["reports"] = records
                .iter()
                .map(|((a, b), _, r)| {
                    serde_json::json!({ "frames": [a, b], "report": r["stages"][k]["report"] })
                })
                .collect::<Vec<_>>()
                .into();
            s
        })
        .collect();
    let chunks: Vec<serde_json::Value> = records
        .iter()
        .map(|((a, b), path, r)| {
            serde_json::json!({
                "frames": [a, b],
                "record": path.file_name().unwrap_or_default().to_string_lossy(),
                "backend": r["backend"],
                "seconds": r["seconds"],
                "resume": r["resume"],
            })
        })
        .collect();
    let merged = serde_json::json!({
        "tool": "nitrate",
        "version": env!("CARGO_PKG_VERSION"),
        "mark": first["mark"],
        "chain_sha256": chain,
        "backend": first["backend"],
        "input": input,
        "output": out,
        "stages": stages,
        "run": first["run"],
        "chunks": chunks,
        "seconds": records.iter().filter_map(|r| r.2["seconds"].as_f64()).sum::<f64>(),
    });
    let path = output.join(resume::record_name(None));
    io::write_atomic(&path, serde_json::to_string_pretty(&merged)?.as_bytes())?;
    Ok(Merged {
        record: path,
        chunks: records.len(),
        frames: files.len(),
        range,
    })
}

#[cfg(test)]
mod tests {
    use super::{chunk_ranges, sh_quote};

    #[test]
    fn chunks_cover_the_numbers_in_order() {
        assert_eq!(
            chunk_ranges(&[1, 2, 3, 4, 5, 6, 7], 3),
            vec![(1, 3), (4, 6), (7, 7)]
        );
        // Gaps in the numbering: chunks hold frames present, not number spans.
        assert_eq!(chunk_ranges(&[10, 11, 20, 21], 2), vec![(10, 11), (20, 21)]);
        assert_eq!(chunk_ranges(&[5], 100), vec![(5, 5)]);
    }

    #[test]
    fn shell_quoting_keeps_quotes_and_spaces() {
        assert_eq!(sh_quote("/scans/reel 1"), "'/scans/reel 1'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }
}
