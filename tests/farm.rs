//! Render-farm runs: the whole-reel analysis, chunk records and their merge, `--resume`, and a
//! real single-node Slurm cluster running a plan of `nitrate farm slurm`.
//!
//! The Slurm test needs Debian's `slurm-wlm` and `munge` and root (it starts the daemons with
//! `tests/slurm/start.sh`); without them it says why and passes, unless
//! `NITRATE_REQUIRE_SLURM=1`, where it fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nitrate::frame::Frame;
use nitrate::io::{self, checksum, OutputFormat};
use nitrate::synth::scene_frame;

const W: usize = 64;
const H: usize = 48;
const FRAMES: usize = 24;
/// Short windows keep debug runs quick; three temporal stages make the handles 9 frames,
/// longer than a chunk of 8.
const CHAIN: &[&str] = &[
    "--stages",
    "stabilise,deflicker,colour",
    "--set",
    "stabilise.window=3",
    "--set",
    "deflicker.window=3",
    "--set",
    "colour.window=3",
];

/// A reel of `FRAMES` 16-bit PNGs with weave (a shifting crop), flicker and a cut at 13.
fn make_reel(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for t in 0..FRAMES {
        // The second shot: another scene, upside down.
        let mut big = scene_frame(W + 8, H + 8, 3, t, if t < 12 { 42 } else { 7 });
        if t >= 12 {
            for plane in big.data.chunks_mut((W + 8) * (H + 8)) {
                plane.reverse();
            }
        }
        let (dx, dy) = ((t * 3) % 5, (t * 7) % 5);
        let gain = 1.0 + 0.06 * ((t as f32) * 1.9).sin();
        let mut f = Frame::new(W, H, 3, big.meta.clone());
        for p in 0..3 {
            for y in 0..H {
                for x in 0..W {
                    f.data[(p * H + y) * W + x] =
                        big.data[(p * (H + 8) + y + dy) * (W + 8) + x + dx] * gain;
                }
            }
        }
        io::write_frame(
            &dir.join(format!("reel_{:04}.png", t + 1)),
            &f,
            OutputFormat::Png { bits: 16 },
        )
        .unwrap();
    }
}

fn nitrate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nitrate"))
        .args(args)
        .output()
        .expect("nitrate runs")
}

fn ok(args: &[&str]) -> Output {
    let out = nitrate(args);
    assert!(
        out.status.success(),
        "nitrate {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn fails(args: &[&str]) -> String {
    let out = nitrate(args);
    assert!(
        !out.status.success(),
        "nitrate {} succeeded",
        args.join(" ")
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn with_chain<'a>(args: &[&'a str]) -> Vec<&'a str> {
    args.iter().chain(CHAIN).copied().collect()
}

/// SHA-256 of every restored frame (PNG) in `dir`, by name.
fn frames(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".png"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                checksum::sha256_file(&e.path()).unwrap(),
            )
        })
        .collect()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The reel, its whole run on the CPU without an analysis, and the analysis.
struct Reel {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    input: PathBuf,
    whole: BTreeMap<String, String>,
    analysis: PathBuf,
}

fn reel() -> Reel {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let input = root.join("in");
    make_reel(&input);
    let whole_dir = root.join("whole");
    ok(&with_chain(&[
        "restore",
        s(&input),
        s(&whole_dir),
        "--backend",
        "cpu",
        "--quiet",
    ]));
    let whole = frames(&whole_dir);
    assert_eq!(whole.len(), FRAMES);
    let analysis = root.join("analysis.json");
    ok(&with_chain(&[
        "analyse",
        s(&input),
        "--out",
        s(&analysis),
        "--backend",
        "cpu",
        "--quiet",
    ]));
    Reel {
        _tmp: tmp,
        root,
        input,
        whole,
        analysis,
    }
}

#[test]
fn analysis_names_its_input_and_is_used_by_restore() {
    let r = reel();
    let a = json(&r.analysis);
    assert_eq!(a["format"], "nitrate-analysis");
    assert_eq!(a["chain_sha256"].as_str().unwrap().len(), 64);
    let files = a["input"]["files"].as_array().unwrap();
    assert_eq!(files.len(), FRAMES);
    assert_eq!(files[0]["name"], "reel_0001.png");
    assert_eq!(
        files[0]["bytes"].as_u64().unwrap(),
        std::fs::metadata(r.input.join("reel_0001.png"))
            .unwrap()
            .len()
    );
    for stage in ["stabilise", "deflicker", "colour"] {
        let m = a["stages"][stage].as_array().unwrap();
        assert_eq!(m.len(), FRAMES, "{stage}");
        assert_eq!(m[4]["frame"], 5, "{stage}");
    }
    // The reel's two shots: the shared detector finds the cut through deflicker.
    assert_eq!(a["cuts"], serde_json::json!([1, 13]));
    assert_eq!(a["stages"]["deflicker"][12]["cut"], true);
    assert_eq!(a["stages"]["stabilise"][12]["pair"]["brk"], "cut");
    // The weave measured: frame 2 sits 3 px right and 2 px down of frame 1 in the crop.
    let m = &a["stages"]["stabilise"][1]["pair"]["motion"];
    assert!(
        (m["dx"].as_f64().unwrap().abs() - 3.0).abs() < 0.1,
        "dx {m}"
    );

    // A whole run with the analysis estimates no pair itself and writes the same frames.
    let out = r.root.join("with-analysis");
    ok(&with_chain(&[
        "restore",
        s(&r.input),
        s(&out),
        "--backend",
        "cpu",
        "--quiet",
        "--analysis",
        s(&r.analysis),
    ]));
    assert_eq!(frames(&out), r.whole);
    let rec = json(&out.join("restoration.json"));
    let report = &rec["stages"][0]["report"];
    assert_eq!(report["pairs_estimated"], 0, "{report}");
    assert!(report["pairs_from_track"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(rec["run"]["analysis"], s(&r.analysis));
}

/// Deflicker first in the chain sees the source frames, so its pair fits come from the
/// analysis (stabilise first changes them, and deflicker then fits its own).
#[test]
fn deflicker_first_takes_its_pair_fits_from_the_analysis() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    make_reel(&input);
    let chain = [
        "--stages",
        "deflicker,levels",
        "--set",
        "deflicker.window=4",
    ];
    let run = |out: &Path, extra: &[&str]| {
        let mut args = vec!["restore", s(&input), s(out), "--backend", "cpu", "--quiet"];
        args.extend(chain);
        args.extend(extra);
        ok(&args);
    };
    let whole = tmp.path().join("whole");
    run(&whole, &[]);
    let analysis = tmp.path().join("a.json");
    let mut args = vec!["analyse", s(&input), "--out", s(&analysis), "--quiet"];
    args.extend(chain);
    ok(&args);
    let out = tmp.path().join("chunks");
    for range in ["1-10", "11-24"] {
        run(&out, &["--frames", range, "--analysis", s(&analysis)]);
    }
    assert_eq!(frames(&out), frames(&whole));
    // The same chunk measuring for itself.
    let alone = tmp.path().join("alone");
    run(&alone, &["--frames", "11-24"]);
    let report =
        |dir: &Path| json(&dir.join("restoration.11-24.json"))["stages"][0]["report"].clone();
    let (with, without) = (report(&out), report(&alone));
    // 14 frames and 4 handle frames before them: 17 neighbouring pairs, all from the
    // analysis; fits across a frame (tried where neighbours disagree) are still made.
    assert_eq!(with["pairs_from_analysis"], 17);
    assert_eq!(without["pairs_from_analysis"], 0);
    assert_eq!(
        without["pairs_fitted"].as_u64().unwrap() - with["pairs_fitted"].as_u64().unwrap(),
        17
    );
}

/// The error of a restore of `input` with `analysis` (and `extra` options), which must fail.
fn refused(input: &Path, out: &Path, analysis: &Path, extra: &[&str]) -> String {
    let mut args = with_chain(&[
        "restore",
        s(input),
        s(out),
        "--backend",
        "cpu",
        "--analysis",
        s(analysis),
    ]);
    args.extend(extra);
    fails(&args)
}

/// A copy of the reel's frames `1..=last` in `dir`.
fn copy_reel(r: &Reel, dir: &Path, last: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for t in 1..=last {
        let name = format!("reel_{t:04}.png");
        std::fs::copy(r.input.join(&name), dir.join(&name)).unwrap();
    }
}

#[test]
fn mismatched_analysis_is_refused() {
    let r = reel();
    let out = r.root.join("out");
    // Other settings.
    let err = refused(
        &r.input,
        &out,
        &r.analysis,
        &["--set", "deflicker.strength=0.5"],
    );
    assert!(err.contains("made for other settings"), "{err}");
    assert!(err.contains(s(&r.analysis)), "{err}");
    // Another input: one frame fewer.
    let short = r.root.join("short");
    copy_reel(&r, &short, FRAMES - 1);
    let err = refused(&short, &out, &r.analysis, &[]);
    assert!(err.contains("made for another input"), "{err}");
    // Another input: one frame changed.
    let changed = r.root.join("changed");
    copy_reel(&r, &changed, FRAMES);
    let mut f = io::read_frame(&changed.join("reel_0007.png")).unwrap();
    for v in f.data.iter_mut().step_by(7) {
        *v = 1.0 - *v;
    }
    io::write_frame(
        &changed.join("reel_0007.png"),
        &f,
        OutputFormat::Png { bits: 16 },
    )
    .unwrap();
    let err = refused(&changed, &out, &r.analysis, &[]);
    assert!(err.contains("reel_0007.png"), "{err}");
    // Not an analysis at all.
    let bogus = r.root.join("bogus.json");
    std::fs::write(&bogus, b"{\"format\": \"something else\"}").unwrap();
    let err = refused(&r.input, &out, &bogus, &[]);
    assert!(err.contains("not a nitrate analysis"), "{err}");
    // Nothing was written by any of them.
    assert!(!out.exists() || frames(&out).is_empty());
}

#[test]
fn chunks_with_analysis_equal_one_whole_run_and_merge_verifies_them() {
    let r = reel();
    let out = r.root.join("chunks");
    for range in ["1-8", "9-16", "17-24"] {
        ok(&with_chain(&[
            "restore",
            s(&r.input),
            s(&out),
            "--backend",
            "cpu",
            "--quiet",
            "--frames",
            range,
            "--analysis",
            s(&r.analysis),
        ]));
        assert!(out.join(format!("restoration.{range}.json")).is_file());
    }
    assert_eq!(frames(&out), r.whole);
    // Each chunk took its pairs from the analysis, handles included.
    let rec = json(&out.join("restoration.9-16.json"));
    assert_eq!(rec["stages"][0]["report"]["pairs_estimated"], 0);

    ok(&["farm", "merge", s(&out)]);
    let merged = json(&out.join("restoration.json"));
    assert_eq!(merged["output"]["frames"], serde_json::json!([1, 24]));
    let listed: BTreeMap<String, String> = merged["output"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(listed, r.whole);
    assert_eq!(merged["chunks"].as_array().unwrap().len(), 3);
    assert_eq!(merged["stages"][1]["reports"].as_array().unwrap().len(), 3);

    // A damaged frame and a missing one are named, and nothing is merged.
    std::fs::remove_file(out.join("restoration.json")).unwrap();
    std::fs::write(out.join("reel_0010.png"), b"not a frame").unwrap();
    std::fs::remove_file(out.join("reel_0020.png")).unwrap();
    let err = fails(&["farm", "merge", s(&out)]);
    assert!(err.contains("reel_0010.png: SHA-256"), "{err}");
    assert!(err.contains("reel_0020.png: missing"), "{err}");
    assert!(!out.join("restoration.json").exists());
    // A chunk whose record is missing leaves a hole.
    std::fs::remove_file(out.join("restoration.9-16.json")).unwrap();
    let err = fails(&["farm", "merge", s(&out)]);
    assert!(err.contains("frames 9-16 are in no chunk"), "{err}");
    // So does a last (or first) chunk that never ran, though no record shows a gap.
    std::fs::remove_file(out.join("restoration.17-24.json")).unwrap();
    let err = fails(&["farm", "merge", s(&out)]);
    assert!(
        err.contains("frames 9-24 are in no chunk (the reel ends at 24)"),
        "{err}"
    );
    assert!(!out.join("restoration.json").exists());
}

#[test]
fn resume_skips_good_frames_and_redoes_the_rest() {
    let r = reel();
    let out = r.root.join("resumed");
    std::fs::create_dir_all(&out).unwrap();
    // The chunk fails at its fifth frame (a folder stands where the frame goes): frames
    // handed to the writers before it are written and journaled, no record is.
    std::fs::create_dir(out.join("reel_0013.png")).unwrap();
    let chunk = [
        "restore",
        s(&r.input),
        s(&out),
        "--backend",
        "cpu",
        "--quiet",
        "--frames",
        "9-20",
        "--resume",
    ];
    let err = fails(&with_chain(&chunk));
    assert!(err.contains("reel_0013.png"), "{err}");
    assert!(!out.join("restoration.9-20.json").exists());
    let journal = out.join("restoration.9-20.journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(text.contains("reel_0009.png"), "{text}");
    std::fs::remove_dir(out.join("reel_0013.png")).unwrap();
    // Damage a journaled frame: resume must not trust it.
    std::fs::write(out.join("reel_0010.png"), b"damaged").unwrap();
    let written_before: Vec<String> = frames(&out).into_keys().collect();
    let good_before = written_before
        .iter()
        .filter(|n| *n != "reel_0010.png")
        .count();
    assert!(good_before >= 2, "{written_before:?}");

    let o = ok(&with_chain(&chunk));
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("already written and verified"), "{said}");
    let rec = json(&out.join("restoration.9-20.json"));
    assert_eq!(rec["resume"]["skipped"], good_before, "{}", rec["resume"]);
    assert!(!journal.exists());
    let want: BTreeMap<String, String> = r
        .whole
        .iter()
        .filter(|(n, _)| ("reel_0009.png".."reel_0021.png").contains(&n.as_str()))
        .map(|(n, h)| (n.clone(), h.clone()))
        .collect();
    assert_eq!(frames(&out), want);
    // The record lists every frame of the chunk with its checksum.
    let listed = rec["output"]["files"].as_array().unwrap();
    assert_eq!(listed.len(), 12);
    for f in listed {
        assert_eq!(
            f["sha256"].as_str().unwrap(),
            want[f["name"].as_str().unwrap()]
        );
    }
    // Resumed again, everything is there: nothing to do.
    let o = ok(&with_chain(&chunk));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing to do"));
    // Frames from other settings are not this run's to replace: refused, untouched.
    let mut other = with_chain(&chunk);
    other.extend(["--set", "deflicker.strength=0.5"]);
    let before = frames(&out);
    let err = fails(&other);
    assert!(
        err.contains("no record or journal of these settings"),
        "{err}"
    );
    assert_eq!(frames(&out), before);
}

// ---------------------------------------------------------------------------------------------
// Slurm

/// A single-node Slurm cluster for the test's life, stopped on drop.
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
}

impl Cluster {
    fn start(dir: &Path) -> Result<Cluster, String> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slurm/start.sh");
        let out = Command::new("sh")
            .arg(&script)
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        let cluster = Cluster {
            dir: dir.to_path_buf(),
            conf: dir.join("slurm.conf"),
        };
        if !out.status.success() {
            return Err(format!(
                "{} failed: {}{}",
                script.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(cluster)
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    /// Run a plan's submit.sh and wait until its jobs have left the queue.
    fn run_plan(&self, plan: &Path, resume: bool) {
        let mut c = self.cmd("sh");
        c.arg(plan.join("submit.sh"));
        if resume {
            c.arg("--resume");
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "submit.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let jobs = std::fs::read_to_string(plan.join("jobs.txt")).unwrap();
        let ids = jobs.split_whitespace().collect::<Vec<_>>().join(",");
        // A guard against a wedged cluster, not a timing assertion.
        for _ in 0..600 {
            let q = self
                .cmd("squeue")
                .args(["-h", "-j", &ids, "-o", "%i %T %r"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&q.stdout);
            if q.status.success() && text.trim().is_empty() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        panic!(
            "jobs {ids} still queued after 300 s; logs in {}",
            plan.join("logs").display()
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let stop = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slurm/stop.sh");
        let _ = Command::new("sh").arg(stop).arg(&self.dir).status();
    }
}

fn slurm_missing() -> Option<String> {
    for program in ["sbatch", "slurmctld", "slurmd", "munged"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
            .unwrap_or(false)
            || Path::new("/usr/sbin").join(program).is_file();
        if !found {
            return Some(format!(
                "{program} is not installed (apt-get install slurm-wlm munge)"
            ));
        }
    }
    None
}

#[test]
fn slurm_plan_restores_a_reel_in_chunks_and_resumes_a_failed_one() {
    let required = std::env::var("NITRATE_REQUIRE_SLURM").is_ok_and(|v| v == "1");
    if let Some(why) = slurm_missing() {
        assert!(!required, "NITRATE_REQUIRE_SLURM=1 but {why}");
        eprintln!("skipping: {why}");
        return;
    }
    let r = reel();
    let cluster = match Cluster::start(&r.root.join("slurm")) {
        Ok(c) => c,
        Err(e) => {
            assert!(
                !required,
                "NITRATE_REQUIRE_SLURM=1 but the cluster did not start: {e}"
            );
            eprintln!("skipping: the Slurm cluster did not start: {e}");
            return;
        }
    };
    let plan_args = |out: &Path, plan: &Path| -> Vec<String> {
        let mut a: Vec<String> = ["farm", "slurm", s(&r.input), s(out), "--chunk", "8"]
            .iter()
            .map(|x| x.to_string())
            .collect();
        a.extend([
            "--plan".into(),
            s(plan).into(),
            "--backend".into(),
            "cpu".into(),
        ]);
        a.extend(CHAIN.iter().map(|x| x.to_string()));
        a
    };

    // Three chunks through sbatch, merged and verified: the frames of one whole run.
    let out = r.root.join("farm-out");
    let plan = r.root.join("plan");
    let args = plan_args(&out, &plan);
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        std::fs::read_to_string(plan.join("chunks.txt")).unwrap(),
        "1-8\n9-16\n17-24\n"
    );
    cluster.run_plan(&plan, false);
    let merge_log = std::fs::read_to_string(plan.join("logs/merge.log")).unwrap_or_default();
    assert!(
        merge_log.contains("merged 3 chunks: frames 1-24, 24 frames verified"),
        "merge log: {merge_log}\nchunk 1 log: {}",
        std::fs::read_to_string(plan.join("logs/chunk-1.log")).unwrap_or_default()
    );
    assert_eq!(frames(&out), r.whole);
    assert!(plan.join("analysis.json").is_file());

    // A chunk that fails part-way (a folder where its fifth frame goes) is reported with its
    // frames and log; re-submitting with --resume completes the reel, the failed chunk
    // redoing only what it had not written.
    let out = r.root.join("farm-failed");
    let plan = r.root.join("plan-failed");
    let args = plan_args(&out, &plan);
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    std::fs::create_dir_all(out.join("reel_0013.png")).unwrap();
    // --resume from the start: a fresh output is all missing, and the chunk gets past the
    // folder standing in its output before failing on it.
    cluster.run_plan(&plan, true);
    let merge_log = std::fs::read_to_string(plan.join("logs/merge.log")).unwrap_or_default();
    assert!(
        merge_log.contains("chunk 1 (frames 9-16) did not finish")
            && merge_log.contains("chunk-1.log"),
        "merge log: {merge_log}"
    );
    assert!(!out.join("restoration.json").exists());
    let chunk_log = std::fs::read_to_string(plan.join("logs/chunk-1.log")).unwrap();
    assert!(chunk_log.contains("reel_0013.png"), "{chunk_log}");
    std::fs::remove_dir(out.join("reel_0013.png")).unwrap();
    cluster.run_plan(&plan, true);
    let merge_log = std::fs::read_to_string(plan.join("logs/merge.log")).unwrap_or_default();
    assert!(
        merge_log.contains("merged 3 chunks: frames 1-24, 24 frames verified"),
        "merge log: {merge_log}\nchunk 1 log: {}",
        std::fs::read_to_string(plan.join("logs/chunk-1.log")).unwrap_or_default()
    );
    assert_eq!(frames(&out), r.whole);
    let rec = json(&out.join("restoration.9-16.json"));
    assert!(
        rec["resume"]["skipped"].as_u64().unwrap() >= 1,
        "{}",
        rec["resume"]
    );
    drop(cluster);
}

/// `--resume` replaces only frames a record or journal of the same settings says nitrate
/// wrote: a stranger's file, or frames written with other settings, are refused untouched.
#[test]
fn resume_refuses_frames_it_did_not_write() {
    let r = reel();
    let out = r.root.join("foreign");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("reel_0010.png"), b"somebody's frame").unwrap();
    let chunk = [
        "restore",
        s(&r.input),
        s(&out),
        "--backend",
        "cpu",
        "--quiet",
        "--frames",
        "9-12",
        "--resume",
    ];
    let err = fails(&with_chain(&chunk));
    assert!(
        err.contains("reel_0010.png") && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(out.join("reel_0010.png")).unwrap(),
        b"somebody's frame"
    );
    // Written by nitrate, with other settings: not its own for these settings either.
    std::fs::remove_file(out.join("reel_0010.png")).unwrap();
    ok(&with_chain(&chunk));
    let before = frames(&out);
    let mut other: Vec<&str> = with_chain(&chunk);
    other.extend(["--set", "colour.strength=0.5"]);
    let err = fails(&other);
    assert!(err.contains("no record or journal of"), "{err}");
    assert_eq!(frames(&out), before);
}
