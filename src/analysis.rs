//! `nitrate analyse` (alias `analyze`): the whole-reel measures of the temporal stages, taken
//! once in one pass over the source frames and written to a readable JSON file, so that the
//! chunks of a render-farm run (`restore --analysis FILE --frames A-B`) take them from there
//! instead of measuring each on its own, and experts can read the reel's cuts, motion and
//! flicker before restoring.
//!
//! Each stage contributes through [`Stage::measure`] (one JSON value per frame) and takes the
//! measures back with [`Stage::use_measures`]; stages that measure nothing are left out. The
//! measures are keyed by the content of the frames they were taken from, and are what the
//! stage measures itself, so a restore with an analysis equals one without, bit for bit on the
//! CPU backend: the analysis saves work, it does not change the result.
//!
//! The file names its input (every frame file's name and size) and the chain's hash (the
//! resolved stages and parameters, [`crate::pipeline::chain_sha256_of`]); a restore whose
//! input or settings differ refuses it, naming the difference.
//!
//! ```json
//! {"format": "nitrate-analysis", "version": 1, "tool_version": "0.1.0",
//!  "chain_sha256": "…", "preset": "default",
//!  "input": {"pattern": "…/scan_%06d.dpx", "frames": [1, 480],
//!            "files": [{"name": "scan_000001.dpx", "bytes": 12746752}, …]},
//!  "cuts": [1, 212],
//!  "stages": {"stabilise": [{"frame": 1, "key": "…"}, …], "deflicker": […], "colour": […]},
//!  "seconds": 41.2}
//! ```
//!
//! `cuts` lists the first frame of every shot, as the shared detector
//! ([`crate::stages::deflicker::cuts`]) decided through `deflicker` or `stabilise`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::io::sequence::Sequence;
use crate::io::{self, Input};
use crate::pipeline::{chain_sha256_of, ordered};
use crate::stages::Stage;

/// The `format` word of an analysis file.
pub const FORMAT: &str = "nitrate-analysis";
/// The layout version; a file of another version is refused.
pub const VERSION: u64 = 1;

pub struct AnalyseJob {
    pub input: Input,
    pub stages: Vec<Box<dyn Stage>>,
    /// The analysis file to write.
    pub out: PathBuf,
    /// The preset's name or path, for the reader.
    pub preset: String,
    pub quiet: bool,
}

/// What `analyse` did.
pub struct AnalyseSummary {
    pub frames: usize,
    pub seconds: f64,
    /// Stages that contributed measures.
    pub stages: Vec<&'static str>,
    pub cuts: Vec<i64>,
}

fn sequence(input: &Input) -> Result<&Sequence> {
    match input {
        Input::Sequence(seq) => Ok(seq),
        Input::Video(v) => bail!(
            "{}: analyse reads frame sequences; extract the video's frames first (restore --stages none --format ...)",
            v.path.display()
        ),
    }
}

/// The input's identity: every frame file's name and size.
fn input_json(seq: &Sequence) -> Result<serde_json::Value> {
    let files = seq
        .frames
        .iter()
        .map(|f| {
            let bytes = std::fs::metadata(&f.path)
                .with_context(|| format!("{}: cannot read", f.path.display()))?
                .len();
            let name = f.path.file_name().unwrap_or_default().to_string_lossy();
            Ok(serde_json::json!({ "name": name, "bytes": bytes }))
        })
        .collect::<Result<Vec<_>>>()?;
    let first = seq.frames.first().map(|f| f.number);
    let last = seq.frames.last().map(|f| f.number);
    Ok(serde_json::json!({
        "pattern": seq.pattern,
        "frames": [first, last],
        "files": files,
    }))
}

/// Measure the reel and write the analysis file (atomically).
pub fn analyse(job: &AnalyseJob) -> Result<AnalyseSummary> {
    let start = Instant::now();
    let seq = sequence(&job.input)?;
    if seq.frames.is_empty() {
        bail!("{}: no frames", seq.pattern);
    }
    let input = input_json(seq)?;
    let workers = rayon::current_num_threads().max(1);
    let items: Vec<(i64, PathBuf)> = seq
        .frames
        .iter()
        .map(|f| (f.number, f.path.clone()))
        .collect();
    let decoded = ordered::ordered_map(items, workers * 2, |(number, path)| {
        let frame = io::read_frame(&path).map(|mut f| {
            f.meta.number = Some(number);
            f
        });
        (number, path, frame)
    });
    let total = seq.frames.len();
    let mut measures: Vec<Vec<serde_json::Value>> = vec![Vec::new(); job.stages.len()];
    let mut contributes = vec![true; job.stages.len()];
    let mut prev: Option<crate::frame::Frame> = None;
    let mut shape = None;
    for (i, (number, path, frame)) in decoded.enumerate() {
        if crate::pipeline::cancel::interrupted() {
            return Err(crate::pipeline::cancel::Interrupted::Nothing.into());
        }
        let frame = frame?;
        let s = (frame.width, frame.height, frame.planes);
        if *shape.get_or_insert(s) != s {
            let (w, h, p) = shape.expect("set");
            bail!(
                "{}: mixed frame sizes: {}x{} with {} planes but the sequence is {w}x{h} with {p} planes",
                path.display(),
                s.0,
                s.1,
                s.2
            );
        }
        for (k, stage) in job.stages.iter().enumerate() {
            if !contributes[k] {
                continue;
            }
            match stage
                .measure(prev.as_ref(), &frame)
                .with_context(|| format!("{}: {} cannot measure", path.display(), stage.name()))?
            {
                Some(mut m) => {
                    if let Some(map) = m.as_object_mut() {
                        map.insert("frame".into(), number.into());
                    }
                    measures[k].push(m);
                }
                None => contributes[k] = false,
            }
        }
        if !job.quiet && (i + 1) % 100 == 0 {
            eprintln!("analyse: {} of {total} frames", i + 1);
        }
        prev = Some(frame);
    }
    let mut stages = serde_json::Map::new();
    let mut names = Vec::new();
    for ((stage, m), yes) in job.stages.iter().zip(measures).zip(&contributes) {
        if *yes && !m.is_empty() {
            names.push(stage.name());
            stages.insert(stage.name().into(), m.into());
        }
    }
    let cuts = cuts_of(&stages, seq.frames[0].number);
    let seconds = start.elapsed().as_secs_f64();
    let doc = serde_json::json!({
        "format": FORMAT,
        "version": VERSION,
        "tool_version": env!("CARGO_PKG_VERSION"),
        "chain_sha256": chain_sha256_of(&job.stages)?,
        "preset": job.preset,
        "chain": job.stages.iter().map(|s| s.name()).collect::<Vec<_>>(),
        "input": input,
        "cuts": cuts,
        "stages": stages,
        "seconds": seconds,
    });
    if let Some(dir) = job.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create the folder", dir.display()))?;
    }
    io::write_atomic(&job.out, serde_json::to_string_pretty(&doc)?.as_bytes())?;
    Ok(AnalyseSummary {
        frames: total,
        seconds,
        stages: names,
        cuts,
    })
}

/// First frames of the shots: the first frame, and every frame whose pair with the one before
/// is a cut by deflicker's fit or stabilise's break.
fn cuts_of(stages: &serde_json::Map<String, serde_json::Value>, first: i64) -> Vec<i64> {
    let mut cuts = std::collections::BTreeSet::from([first]);
    for m in stages
        .get("deflicker")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
    {
        if m["cut"].as_bool() == Some(true) {
            cuts.extend(m["frame"].as_i64());
        }
    }
    for m in stages
        .get("stabilise")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
    {
        if m["pair"]["brk"].as_str() == Some("cut") {
            cuts.extend(m["frame"].as_i64());
        }
    }
    cuts.into_iter().collect()
}

/// Read the analysis at `path`, check it was made for `input` and this chain, and hand each
/// stage its measures.
pub fn apply(path: &Path, input: &Input, stages: &mut [Box<dyn Stage>]) -> Result<()> {
    let text = std::fs::read(path)
        .with_context(|| format!("--analysis {}: cannot read", path.display()))?;
    let doc: serde_json::Value = serde_json::from_slice(&text)
        .with_context(|| format!("--analysis {}: not JSON", path.display()))?;
    let what = |problem: String| anyhow::anyhow!("--analysis {}: {problem}", path.display());
    if doc["format"].as_str() != Some(FORMAT) {
        return Err(what(
            "not a nitrate analysis (no \"format\": \"nitrate-analysis\")".into(),
        ));
    }
    if doc["version"].as_u64() != Some(VERSION) {
        return Err(what(format!(
            "layout version {} is not {VERSION}; analyse the reel again",
            doc["version"]
        )));
    }
    let chain = chain_sha256_of(stages)?;
    if doc["chain_sha256"].as_str() != Some(chain.as_str()) {
        return Err(what(format!(
            "made for other settings (preset {}, stages {}; chain hash {} but this run's is {chain}); analyse again with this run's --preset, --stages and --set",
            doc["preset"], doc["chain"], doc["chain_sha256"]
        )));
    }
    let seq = sequence(input)?;
    let want = input_json(seq)?;
    let (have, now) = (&doc["input"]["files"], &want["files"]);
    if have != now {
        let have = have.as_array().cloned().unwrap_or_default();
        let now = now.as_array().cloned().unwrap_or_default();
        let problem = match now.iter().zip(&have).find(|(a, b)| a != b) {
            Some((a, b)) => format!(
                "made for another input: {} of {} bytes here, {} of {} bytes in the analysis",
                a["name"], a["bytes"], b["name"], b["bytes"]
            ),
            None => format!(
                "made for another input: {} frames here, {} in the analysis",
                now.len(),
                have.len()
            ),
        };
        return Err(what(format!("{problem} ({})", seq.pattern)));
    }
    for stage in stages.iter_mut() {
        if let Some(m) = doc["stages"][stage.name()].as_array() {
            let name = stage.name();
            stage
                .use_measures(m)
                .map_err(|e| what(format!("{name}: {e:#}")))?;
        }
    }
    Ok(())
}
