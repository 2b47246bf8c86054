//! `restore --resume`: finish a run that was stopped (a killed or failed render-farm chunk, a
//! Ctrl-C) without redoing the frames it already wrote.
//!
//! Every frame-output run appends a line to a journal beside its output after each frame's
//! atomic write (`restoration.journal.jsonl`, or `restoration.A-B.journal.jsonl` for a
//! `--frames` chunk): the file name and the SHA-256 of the bytes written. The first line names
//! the chain's hash ([`super::chain_sha256`]). When the run's record is written the journal
//! goes: the record lists the same checksums.
//!
//! Resuming trusts a frame on disk only when its SHA-256 equals one recorded for that name by a
//! record or journal of the same chain; every other frame of the range (absent, truncated,
//! altered, from other settings) is restored again, as maximal consecutive sub-ranges, each
//! with its own handle frames, so the result is what one uninterrupted run writes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{chain_sha256, restore_pass, Pass, RestoreJob, RunSummary};
use crate::io::{self, checksum};

/// The record's file name for a run writing frames `range` (a chunk), or the whole input.
pub fn record_name(range: Option<(i64, i64)>) -> String {
    match range {
        None => "restoration.json".into(),
        Some((a, b)) => format!("restoration.{a}-{b}.json"),
    }
}

/// The journal's file name for a run of `--frames` `range` (as asked on the command line).
pub fn journal_name(range: Option<(i64, i64)>) -> String {
    match range {
        None => "restoration.journal.jsonl".into(),
        Some((a, b)) => format!("restoration.{a}-{b}.journal.jsonl"),
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Line {
    Header {
        chain_sha256: String,
    },
    Frame {
        name: String,
        sha256: String,
    },
    /// Written before a frame's file: a kill between the rename and its `Frame` line leaves
    /// a file the journal still owns.
    Writing {
        writing: String,
    },
}

/// The per-frame journal of a run writing frame files. The file is made on the first frame,
/// so a run that writes nothing leaves none.
pub struct Journal {
    path: PathBuf,
    chain: String,
    file: Mutex<Option<File>>,
}

impl Journal {
    /// The journal of the run of `range` in `dir` (appended to: a resumed run adds to it).
    pub fn open(
        dir: &Path,
        range: Option<(i64, i64)>,
        chain: &str,
    ) -> Result<std::sync::Arc<Self>> {
        Ok(std::sync::Arc::new(Journal {
            path: dir.join(journal_name(range)),
            chain: chain.into(),
            file: Mutex::new(None),
        }))
    }

    /// A frame about to be written, by name.
    pub fn intent(&self, path: &Path) -> Result<()> {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        self.append(&Line::Writing {
            writing: name.into_owned(),
        })
    }

    /// One frame written: its name and checksum, as one line in one write.
    pub fn note(&self, path: &Path, sha256: &str) -> Result<()> {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        self.append(&Line::Frame {
            name: name.into_owned(),
            sha256: sha256.into(),
        })
    }

    fn append(&self, line: &Line) -> Result<()> {
        let line = serde_json::to_string(line)?;
        let mut slot = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let cannot = || format!("{}: cannot write the run's journal", self.path.display());
        if slot.is_none() {
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .with_context(cannot)?;
            let header = serde_json::to_string(&Line::Header {
                chain_sha256: self.chain.clone(),
            })?;
            file.write_all(format!("{header}\n").as_bytes())
                .with_context(cannot)?;
            *slot = Some(file);
        }
        let file = slot.as_mut().expect("just opened");
        file.write_all(format!("{line}\n").as_bytes())
            .with_context(cannot)
    }

    /// Remove the journal of the run of `range` once its record is written.
    pub fn remove(dir: &Path, range: Option<(i64, i64)>) {
        let _ = std::fs::remove_file(dir.join(journal_name(range)));
    }
}

/// Checksums by file name that records and journals in `dir` vouch for, for chain `chain`
/// (a name with no checksum: a frame whose writing began but whose line never came).
/// A journal cut short by a kill may end in a partial line; it is ignored.
pub fn vouched(dir: &Path, chain: &str) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let mut sums: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(sums);
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("restoration") {
            continue;
        }
        if name.ends_with(".journal.jsonl") {
            let file = File::open(e.path())
                .with_context(|| format!("{}: cannot read journal", e.path().display()))?;
            let mut same_chain = false;
            for line in BufReader::new(file).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Line>(&line) {
                    Ok(Line::Header { chain_sha256 }) => same_chain = chain_sha256 == chain,
                    Ok(Line::Frame { name, sha256 }) if same_chain => {
                        sums.entry(name).or_default().insert(sha256);
                    }
                    // Nitrate's own, though no checksum vouches for its content.
                    Ok(Line::Writing { writing }) if same_chain => {
                        sums.entry(writing).or_default();
                    }
                    _ => {}
                }
            }
        } else if name.ends_with(".json") {
            let Ok(text) = std::fs::read(e.path()) else {
                continue;
            };
            let Ok(record) = serde_json::from_slice::<serde_json::Value>(&text) else {
                continue;
            };
            if record["chain_sha256"].as_str() != Some(chain) {
                continue;
            }
            for f in record["output"]["files"].as_array().into_iter().flatten() {
                if let (Some(n), Some(s)) = (f["name"].as_str(), f["sha256"].as_str()) {
                    sums.entry(n.into()).or_default().insert(s.into());
                }
            }
        }
    }
    Ok(sums)
}

/// Maximal runs of consecutive `true`s in `missing`, as index ranges.
pub fn runs(missing: &[bool]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, &m) in missing.iter().chain(std::iter::once(&false)).enumerate() {
        match (m, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i - 1));
                start = None;
            }
            _ => {}
        }
    }
    out
}

/// Restore what the output of `job` still lacks: frames absent or not matching a checksum
/// that a record or journal of the same chain vouches for. Writes the run's record over the
/// whole range (listing every frame), with `resume` saying what was skipped and redone.
pub fn restore(job: &RestoreJob) -> Result<RunSummary> {
    let start = Instant::now();
    let Some((dir, targets)) = super::frame_targets(job, job.frames)? else {
        bail!("--resume works on frame outputs; a video output is written whole or not at all");
    };
    let chain = chain_sha256(job)?;
    let sums = vouched(&dir, &chain)?;
    let good: Vec<Option<String>> = targets
        .iter()
        .map(|(_, path)| {
            let name = path.file_name()?.to_string_lossy().into_owned();
            let have = sums.get(&name)?;
            let sum = checksum::sha256_file(path).ok()?;
            have.contains(&sum).then_some(sum)
        })
        .collect();
    // Only nitrate's own frames of this chain are replaced, as without --resume: a file that
    // no record or journal of the chain names is someone else's. (Anything else standing in a
    // frame's place cannot be replaced at all; writing it fails and names it.)
    let foreign: Vec<String> = targets
        .iter()
        .filter(|(_, path)| path.is_file())
        .filter(|(_, path)| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            !sums.contains_key(name.as_ref())
        })
        .map(|(_, path)| path.display().to_string())
        .collect();
    if !foreign.is_empty() {
        let more = match foreign.len() - 1 {
            0 => String::new(),
            n => format!(" (and {n} more)"),
        };
        bail!(
            "--resume: {}{more} already in the output, and no record or journal of these \
             settings says nitrate wrote it; --resume replaces only its own frames: move it \
             away, or restore again with --overwrite",
            foreign[0]
        );
    }
    let missing: Vec<bool> = good.iter().map(Option::is_none).collect();
    let mut ranges = runs(&missing);
    let record_path = dir.join(record_name(
        job.frames
            .map(|_| (targets[0].0, targets[targets.len() - 1].0)),
    ));
    let skipped = good.iter().filter(|g| g.is_some()).count();
    if ranges.is_empty() {
        // Said even with --quiet: a re-queued farm job's log should tell what it did.
        if record_path.is_file() {
            eprintln!(
                "resume: all {} frames are written and match their checksums; nothing to do",
                targets.len()
            );
            return Ok(RunSummary {
                frames_written: 0,
                frames_read: 0,
                seconds: start.elapsed().as_secs_f64(),
                output_format: String::new(),
                record: record_path,
                gpu_checks: Vec::new(),
                record_json: serde_json::Value::Null,
            });
        }
        // Every frame is there but the run stopped before its record: one frame again gives
        // the facts the record needs (the same bytes, so nothing changes on disk).
        ranges.push((targets.len() - 1, targets.len() - 1));
    }
    let list: Vec<String> = ranges
        .iter()
        .map(|&(a, b)| format!("{}-{}", targets[a].0, targets[b].0))
        .collect();
    eprintln!(
        "resume: {skipped} of {} frames already written and verified; restoring {}",
        targets.len(),
        list.join(", ")
    );
    let mut passes = Vec::new();
    let mut last = None;
    let mut written_sums: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut input_files: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let (mut frames_written, mut frames_read) = (0, 0);
    for &(a, b) in &ranges {
        let frames = (targets[a].0, targets[b].0);
        let summary = restore_pass(
            job,
            &Pass {
                frames: Some(frames),
                overwrite: true,
                write_record: false,
            },
        )?;
        let rec = &summary.record_json;
        for f in rec["output"]["files"].as_array().into_iter().flatten() {
            if let Some(n) = f["name"].as_str() {
                written_sums.insert(n.into(), f["sha256"].as_str().map(String::from));
            }
        }
        for f in rec["input"]["files"].as_array().into_iter().flatten() {
            if let Some(n) = f["name"].as_str() {
                input_files.insert(n.into(), f.clone());
            }
        }
        passes.push(serde_json::json!({
            "frames": [frames.0, frames.1],
            "frames_read": rec["input"]["frames_read"],
        }));
        frames_written += summary.frames_written;
        frames_read += summary.frames_read;
        last = Some(summary);
    }
    let last = last.expect("at least one pass");
    // The whole range's record: the last pass's (its stage reports cover every pass), with
    // every frame's checksum.
    let mut record = last.record_json.clone();
    let files: Vec<serde_json::Value> = targets
        .iter()
        .zip(&good)
        .map(|((_, path), good)| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let sum = good
                .clone()
                .or_else(|| written_sums.get(name.as_ref()).cloned().flatten());
            serde_json::json!({ "name": name, "sha256": sum })
        })
        .collect();
    record["output"]["files"] = files.into();
    record["output"]["frames"] = serde_json::json!([targets[0].0, targets[targets.len() - 1].0]);
    record["input"]["files"] = input_files.into_values().collect::<Vec<_>>().into();
    record["input"]["frames_read"] = serde_json::Value::Null;
    record["seconds"] = start.elapsed().as_secs_f64().into();
    record["resume"] = serde_json::json!({
        "skipped": skipped,
        "passes": passes,
    });
    let repairing = super::repairing_stages(job);
    if !repairing.is_empty() {
        // Only the frames restored now: the repairs of the frames skipped were the stopped
        // run's, which had not written its file yet.
        let path = super::beside_record(&record_path, "repairs", "jsonl");
        super::write_repairs(&path, &repairing)?;
        record["output"]["repairs"] = path.display().to_string().into();
        record["resume"]["repairs_cover"] = "the frames restored by the resumed passes".into();
    }
    let report = super::beside_record(&record_path, "report", "html");
    record["output"]["report"] = report.display().to_string().into();
    io::write_atomic(&report, crate::report::html(&record).as_bytes())?;
    let text = serde_json::to_string_pretty(&record)?;
    io::write_atomic(&record_path, text.as_bytes())?;
    Journal::remove(&dir, job.frames);
    Ok(RunSummary {
        frames_written,
        frames_read,
        seconds: start.elapsed().as_secs_f64(),
        output_format: last.output_format,
        record: record_path,
        gpu_checks: last.gpu_checks,
        record_json: record,
    })
}

/// Paths of the records of chunks in `dir` (`restoration.A-B.json`), with their ranges, in
/// frame order.
pub fn chunk_records(dir: &Path) -> Result<Vec<((i64, i64), PathBuf)>> {
    let mut out = Vec::new();
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("{}: cannot list", dir.display()))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(range) = name
            .strip_prefix("restoration.")
            .and_then(|r| r.strip_suffix(".json"))
        else {
            continue;
        };
        if let Ok(r) = crate::cli::parse_range(range) {
            out.push((r, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::runs;

    #[test]
    fn runs_of_missing_frames() {
        assert_eq!(runs(&[]), vec![]);
        assert_eq!(runs(&[false, false]), vec![]);
        assert_eq!(runs(&[true]), vec![(0, 0)]);
        assert_eq!(
            runs(&[true, true, false, true, false, false, true, true]),
            vec![(0, 1), (3, 3), (6, 7)]
        );
    }
}
