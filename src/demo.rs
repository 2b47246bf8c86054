//! `nitrate demo`: the first run of a newcomer, with no files of their own. It renders a short
//! procedural scene, fades it the way a print's dyes and base drift (per-channel lifted blacks
//! and dulled whites), writes both as 10-bit DPX, estimates `levels` from the faded frames
//! alone, restores them through the normal pipeline and reports PSNR against the clean frames.

use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::DemoArgs;
use crate::frame::{Frame, Timecode};
use crate::io::dpx::{DpxLayout, Packing};
use crate::io::sequence::Sequence;
use crate::io::{self, OutputFormat};
use crate::metrics::{percentile, psnr};
use crate::pipeline::{self, Backend, RestoreJob};
use crate::stages::levels::{Levels, LevelsParams, PerChannel};
use crate::synth::scene_frame;

/// Per-channel (black, white) the demo's fade maps 0 and 1 to: a warm, flat, faded print.
const FADE: [(f32, f32); 3] = [(0.14, 0.90), (0.09, 0.78), (0.12, 0.66)];
/// Fraction of samples allowed below the estimated black and above the estimated white.
const CLIP: f64 = 0.0005;

pub fn run(args: &DemoArgs, backend: Backend) -> Result<()> {
    let out = &args.output;
    let (w, h) = args.size;
    let n = args.length as usize;
    let dpx10 = OutputFormat::Dpx(DpxLayout {
        bits: 10,
        packing: Packing::FilledA,
        big_endian: true,
        planes: 3,
    });
    let (clean_dir, faded_dir, restored_dir) =
        (out.join("clean"), out.join("faded"), out.join("restored"));
    for dir in [&clean_dir, &faded_dir] {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    eprintln!(
        "demo: rendering {n} frames of {w}x{h} into {}",
        out.display()
    );
    let mut clean: Vec<Frame> = (0..n).map(|t| scene_frame(w, h, 3, t, 1906)).collect();
    // Stretch each channel to the full code range, as a well-exposed scan of a good print.
    let full = estimate_levels(&clean);
    for frame in &mut clean {
        crate::stages::levels::cpu::apply(frame, &full);
        frame.data.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
    }
    let mut faded_frames = Vec::with_capacity(n);
    for (t, frame) in clean.iter_mut().enumerate() {
        frame.meta.bit_depth = 10;
        frame.meta.timecode = Some(Timecode::from_hmsf(1, 0, 0, t as u8 % 24));
        let mut faded = frame.clone();
        for (p, plane) in faded.planes_mut().into_iter().enumerate() {
            let (b, wh) = FADE[p];
            plane.iter_mut().for_each(|v| *v = b + (wh - b) * *v);
        }
        let name = format!("demo_{:06}.dpx", 1001 + t);
        io::write_frame(&clean_dir.join(&name), frame, dpx10)?;
        io::write_frame(&faded_dir.join(&name), &faded, dpx10)?;
        faded_frames.push(faded);
    }

    // Estimate levels from the faded frames alone, as a restorer would from the scan.
    let params = estimate_levels(&faded_frames);
    eprintln!(
        "demo: estimated levels per channel: black {:?}, white {:?}",
        [
            params.black.get(0),
            params.black.get(1),
            params.black.get(2)
        ]
        .map(round3),
        [
            params.white.get(0),
            params.white.get(1),
            params.white.get(2)
        ]
        .map(round3)
    );
    let stage = Levels::new(params)?;
    let job = RestoreJob {
        sequence: Sequence::discover(&faded_dir)?,
        output_dir: restored_dir.clone(),
        format: None,
        frames: None,
        overwrite: true,
        allow_gaps: false,
        check_gpu: false,
        quiet: true,
        stages: vec![Box::new(stage)],
        backend,
        record_extra: serde_json::json!({ "command": "demo" }),
    };
    let summary = pipeline::restore(&job)?;

    let restored = Sequence::discover(&restored_dir)?;
    let (mut before, mut after) = (0.0, 0.0);
    for (i, f) in restored.frames.iter().enumerate() {
        let back = io::read_frame(&f.path)?;
        before += psnr(&clean[i], &read_back(&faded_dir, &f.path)?) / n as f64;
        after += psnr(&clean[i], &back) / n as f64;
    }
    let mid = restored.frames[n / 2].path.clone();
    let sheet = out.join("before_after.png");
    let sheet_frame = side_by_side(&[
        &read_back(&faded_dir, &mid)?,
        &io::read_frame(&mid)?,
        &clean[n / 2],
    ]);
    io::write_frame(&sheet, &sheet_frame, OutputFormat::Png { bits: 16 })?;
    println!(
        "restored {} frames in {:.2}s",
        summary.frames_written, summary.seconds
    );
    println!("mean PSNR against the clean frames: faded {before:.2} dB -> restored {after:.2} dB");
    println!("before | after | clean: {}", sheet.display());
    println!("record: {}", summary.record.display());
    Ok(())
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn read_back(dir: &Path, restored: &Path) -> Result<Frame> {
    io::read_frame(&dir.join(restored.file_name().unwrap_or_default()))
}

/// Black and white per channel: the values with `CLIP` of the sequence's samples beyond them.
pub fn estimate_levels(frames: &[Frame]) -> LevelsParams {
    let planes = frames[0].planes;
    let mut black = [0.0f64; 3];
    let mut white = [1.0f64; 3];
    for p in 0..planes.min(3) {
        let samples: Vec<f32> = frames
            .iter()
            .flat_map(|f| f.plane(p).iter().copied())
            .collect();
        black[p] = percentile(&samples, CLIP) as f64;
        white[p] = percentile(&samples, 1.0 - CLIP) as f64;
    }
    if planes == 1 {
        black = [black[0]; 3];
        white = [white[0]; 3];
    }
    LevelsParams {
        black: PerChannel::Each(black),
        white: PerChannel::Each(white),
        gamma: PerChannel::All(1.0),
    }
}

/// Frames of equal size placed left to right with a 4-pixel black gutter.
pub fn side_by_side(frames: &[&Frame]) -> Frame {
    let (w, h, planes) = (frames[0].width, frames[0].height, frames[0].planes);
    let gutter = 4;
    let total_w = frames.len() * w + (frames.len() - 1) * gutter;
    let mut sheet = Frame::new(total_w, h, planes, frames[0].meta.clone());
    for (i, f) in frames.iter().enumerate() {
        let x0 = i * (w + gutter);
        for p in 0..planes {
            for y in 0..h {
                for x in 0..w {
                    sheet.set(p, x0 + x, y, f.get(p, x, y));
                }
            }
        }
    }
    sheet
}
