//! [`run`]: read a clean sequence, damage it, write degraded frames, the clean reference, masks
//! and `truth.json`. Frames stream through in chunks, so a reel never has to fit in memory.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde_json::json;

use super::artifacts::Library;
use super::{Defect, DegradeOptions, DegradeSummary, Model, Plan};
use crate::frame::{Frame, SampleKind};
use crate::io::sequence::Sequence;
use crate::io::{self, FileFormat, FrameInfo, OutputFormat};

/// The output when no format is named: 16 bits in the input's family.
fn default_format(info: &FrameInfo) -> Result<OutputFormat> {
    Ok(match info.format {
        FileFormat::Png | FileFormat::Jpeg => OutputFormat::Png { bits: 16 },
        FileFormat::Tiff if info.meta.sample == SampleKind::Float => {
            OutputFormat::Exr { half: false }
        }
        FileFormat::Tiff => OutputFormat::Tiff { bits: 16 },
        FileFormat::Dpx => OutputFormat::parse("dpx16", info.planes)?,
        FileFormat::Exr => OutputFormat::Exr {
            half: info.meta.sample == SampleKind::Half,
        },
    })
}

const FOLDERS: [&str; 3] = ["degraded", "clean", "mask"];
const TRUTH: &str = "truth.json";

/// Damage the sequence `opts.clean` and write everything under `opts.out`.
///
/// Refuses an `out` that already holds `degraded/`, `clean/`, `mask/` or `truth.json` unless
/// `overwrite`; with it, the old `truth.json` is removed first and frame files of the earlier run
/// that this run did not write are removed at the end. Every file is written atomically;
/// `truth.json` comes last.
pub fn run(opts: &DegradeOptions) -> Result<DegradeSummary> {
    let start = Instant::now();
    if !(opts.strength.is_finite() && (0.0..=3.0).contains(&opts.strength)) {
        bail!(
            "degrade strength {} is out of range (valid: 0 to 3; 1 is a worn print)",
            opts.strength
        );
    }
    let defects = Defect::in_order(&opts.defects);
    let seq = Sequence::discover(&opts.clean)?;
    if seq.is_empty() {
        bail!("{}: no frames", opts.clean.display());
    }
    let info = seq.check_headers(0..=seq.len() - 1)?;
    let format = match &opts.format {
        Some(name) => OutputFormat::parse(name, info.planes)?,
        None => default_format(&info)?,
    };

    let out = &opts.out;
    let dirs: Vec<PathBuf> = FOLDERS.iter().map(|f| out.join(f)).collect();
    let truth_path = out.join(TRUTH);
    let existing: Vec<&str> = FOLDERS
        .iter()
        .chain([&TRUTH])
        .copied()
        .filter(|f| out.join(f).exists())
        .collect();
    if !existing.is_empty() && !opts.overwrite {
        bail!(
            "{}: already holds degrade output ({}); choose another output directory or allow overwriting",
            out.display(),
            existing.join(", ")
        );
    }
    // Never write into the input.
    let input_dirs: HashSet<PathBuf> = seq
        .frames
        .iter()
        .filter_map(|f| {
            f.path.parent().and_then(|p| {
                std::fs::canonicalize(if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                })
                .ok()
            })
        })
        .collect();
    for dir in &dirs {
        if let Ok(c) = std::fs::canonicalize(dir) {
            if input_dirs.contains(&c) {
                bail!(
                    "{}: is the input sequence's directory; choose another output directory",
                    dir.display()
                );
            }
        }
    }
    for dir in &dirs {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create directory", dir.display()))?;
    }
    if truth_path.exists() {
        std::fs::remove_file(&truth_path).with_context(|| {
            format!("{}: cannot remove the old truth file", truth_path.display())
        })?;
    }

    // Output names: the input's stems.
    let ext = format.extension();
    let stems: Vec<String> = seq
        .frames
        .iter()
        .map(|f| {
            f.path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    let frame_name = |i: usize| format!("{}.{ext}", stems[i]);
    let mask_name = |i: usize| format!("{}.png", stems[i]);

    let n = seq.len();
    let mut plan = Plan::new(
        (info.width, info.height, info.planes),
        n,
        &defects,
        opts.seed,
        opts.strength,
        &Model::default(),
    );
    if let Some(dir) = &opts.artifacts {
        plan.add_artifacts(Library::open(dir, &opts.artifact_kinds)?)?;
    }
    let mask_format = OutputFormat::Png { bits: 8 };
    let chunk = (2 * rayon::current_num_threads()).max(4);
    let mut masked = vec![0usize; n];
    for first in (0..n).step_by(chunk) {
        let range = first..(first + chunk).min(n);
        let frames: Vec<Frame> = seq.frames[range.clone()]
            .par_iter()
            .map(|f| io::read_frame(&f.path))
            .collect::<Result<_>>()?;
        let counts: Vec<usize> = range
            .clone()
            .into_par_iter()
            .zip(frames)
            .map(|(i, clean)| -> Result<usize> {
                if (clean.width, clean.height, clean.planes)
                    != (info.width, info.height, info.planes)
                {
                    bail!(
                        "{}: frame is {} but the sequence is {}x{} with {} planes",
                        seq.frames[i].path.display(),
                        clean.shape(),
                        info.width,
                        info.height,
                        info.planes
                    );
                }
                let (degraded, mask, count) = plan.render(i, &clean);
                io::write_frame(&dirs[0].join(frame_name(i)), &degraded, format)?;
                io::write_frame(&dirs[1].join(frame_name(i)), &clean, format)?;
                io::write_frame(&dirs[2].join(mask_name(i)), &mask, mask_format)?;
                Ok(count)
            })
            .collect::<Result<_>>()?;
        masked[range].copy_from_slice(&counts);
    }

    let mut truth = plan.truth();
    truth["options"] = json!({
        "clean": opts.clean.display().to_string(),
        "out": out.display().to_string(),
        "defects": defects.iter().map(|d| d.name()).collect::<Vec<_>>(),
        "seed": opts.seed,
        "strength": opts.strength,
        "format": opts.format,
        "overwrite": opts.overwrite,
        "artifacts": opts.artifacts.as_ref().map(|p| p.display().to_string()),
        "artifact_kinds": opts.artifact_kinds,
    });
    truth["output"] = json!({
        "format": format.to_string(),
        "extension": ext,
        "degraded": FOLDERS[0],
        "clean": FOLDERS[1],
        "mask": FOLDERS[2],
        "mask_format": "8-bit grey PNG, 255 where a local defect changed the pixel",
        "sequence": seq.pattern,
        "tool": concat!("nitrate ", env!("CARGO_PKG_VERSION")),
    });
    for (i, f) in seq.frames.iter().enumerate() {
        let entry = &mut truth["frames"][i];
        entry["name"] = frame_name(i).into();
        entry["number"] = f.number.into();
        entry["source"] = f.path.display().to_string().into();
        entry["mask_pixels"] = masked[i].into();
    }
    let text = serde_json::to_string_pretty(&truth).context("cannot serialise the truth file")?;
    io::write_atomic(&truth_path, text.as_bytes())?;

    let mut removed = 0;
    if opts.overwrite {
        let written: [HashSet<String>; 3] = [
            (0..n).map(frame_name).collect(),
            (0..n).map(frame_name).collect(),
            (0..n).map(mask_name).collect(),
        ];
        for (dir, keep) in dirs.iter().zip(&written) {
            removed += remove_stale(dir, keep)?;
        }
    }

    let total: usize = masked.iter().sum();
    Ok(DegradeSummary {
        frames: n,
        width: info.width,
        height: info.height,
        planes: info.planes,
        format: format.to_string(),
        degraded_dir: dirs[0].clone(),
        clean_dir: dirs[1].clone(),
        mask_dir: dirs[2].clone(),
        truth: truth_path,
        spots: plan.frames.iter().map(|f| f.spots.len()).sum(),
        artifacts: plan.frames.iter().map(|f| f.artifacts.len()).sum(),
        scratch_tracks: plan.scratch_tracks.len(),
        masked_fraction: total as f64 / (n * info.width * info.height).max(1) as f64,
        removed_stale: removed,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Remove frame files (and partial writes) in `dir` that this run did not write.
fn remove_stale(dir: &Path, keep: &HashSet<String>) -> Result<usize> {
    let mut removed = 0;
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list directory", dir.display()))?;
    for entry in entries {
        let path = entry
            .with_context(|| format!("{}: cannot list directory", dir.display()))?
            .path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let frame_file = FileFormat::from_path(&path).is_some() || name.ends_with(io::TEMP_SUFFIX);
        if path.is_file() && frame_file && !keep.contains(name) {
            std::fs::remove_file(&path)
                .with_context(|| format!("{}: cannot remove stale file", path.display()))?;
            removed += 1;
        }
    }
    Ok(removed)
}
