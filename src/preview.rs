//! `nitrate preview`: before/after of chosen frames as one PNG sheet, for tuning a preset.
//!
//! Only the chosen frames and the temporal context the chain needs around them (the sum of the
//! stages' radii, as for a chunked run) are read, so each frame's result is exactly what a whole
//! run would give it. Each sheet row is one frame: before | after | split (left half before,
//! right half after) | then, per stage, what that stage changed: the picture dimmed to grey with
//! the size of the change laid over it in colour (full colour at [`FULL_SCALE`] of the range).
//! Frames a stage enlarged (`upscale`) are shown area-averaged back to the input's size.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::frame::{Frame, FrameMeta};
use crate::gpu::{GpuContext, GpuFrame};
use crate::io::video::{Ffmpeg, VideoReader};
use crate::io::{self, Input, OutputFormat};
use crate::pipeline::chain::{Chain, Runner};
use crate::pipeline::Backend;
use crate::stages::{Stage, Window};

/// A change of this size (in normalised code values) shows in full colour.
pub const FULL_SCALE: f32 = 0.05;

/// What a preview needs: the input (a sequence or a video), the frame numbers to show, the
/// chain, where to write.
pub struct PreviewJob {
    pub input: Input,
    /// `--ffmpeg`, for video input.
    pub ffmpeg: Option<PathBuf>,
    pub frames: Vec<i64>,
    pub stages: Vec<Box<dyn Stage>>,
    pub backend: Backend,
    /// Width of each panel in the sheet (frames are shrunk by whole-pixel box averaging).
    pub panel_width: usize,
    pub output: PathBuf,
}

/// What was shown: the sheet, its rows (frame numbers), its columns, frames read.
pub struct PreviewSummary {
    pub sheet: PathBuf,
    pub rows: Vec<i64>,
    pub columns: Vec<String>,
    pub frames_read: usize,
}

/// For one shown frame: its input and each stage's output, in chain order.
#[derive(Default)]
struct Steps {
    input: Option<Frame>,
    outputs: Vec<Frame>,
}

/// Runs the stages and keeps, for the frames being shown, each stage's input and output.
struct Recording<'a, T, R: Runner<T>> {
    inner: R,
    wanted: &'a [i64],
    steps: BTreeMap<i64, Steps>,
    to_host: fn(&R, &T) -> Result<Frame>,
    number: fn(&T) -> Option<i64>,
}

impl<T, R: Runner<T>> Runner<T> for Recording<'_, T, R> {
    fn run(&mut self, stage: &dyn Stage, window: &Window<'_, T>) -> Result<T> {
        let out = self.inner.run(stage, window)?;
        if let Some(n) = (self.number)(window.center).filter(|n| self.wanted.contains(n)) {
            let before = (self.to_host)(&self.inner, window.center)?;
            let after = (self.to_host)(&self.inner, &out)?;
            let steps = self.steps.entry(n).or_default();
            steps.input.get_or_insert(before);
            steps.outputs.push(after);
        }
        Ok(out)
    }
    fn release(&mut self, frame: T) {
        self.inner.release(frame);
    }
}

struct Cpu;
impl Runner<Frame> for Cpu {
    fn run(&mut self, stage: &dyn Stage, window: &Window<'_, Frame>) -> Result<Frame> {
        stage
            .run_cpu(window)
            .with_context(|| format!("stage '{}' (CPU)", stage.name()))
    }
    fn release(&mut self, _: Frame) {}
}

struct Gpu<'g>(&'g GpuContext);
impl Runner<GpuFrame> for Gpu<'_> {
    fn run(&mut self, stage: &dyn Stage, window: &Window<'_, GpuFrame>) -> Result<GpuFrame> {
        stage
            .run_gpu(self.0, window)
            .with_context(|| format!("stage '{}' (GPU)", stage.name()))
    }
    fn release(&mut self, frame: GpuFrame) {
        self.0.recycle(frame);
    }
}

pub fn run(job: &PreviewJob) -> Result<PreviewSummary> {
    let input = &job.input;
    if job.stages.is_empty() {
        bail!("preview: the chain has no stages");
    }
    let numbers = input.numbers();
    if numbers.is_empty() {
        bail!("{}: has no frames", input.name());
    }
    let mut positions = Vec::new();
    for n in &job.frames {
        let Some(p) = numbers.iter().position(|m| m == n) else {
            bail!(
                "{}: has no frame {n} (frames {}-{})",
                input.name(),
                numbers[0],
                numbers[numbers.len() - 1]
            );
        };
        if !positions.contains(&p) {
            positions.push(p);
        }
    }
    positions.sort_unstable();
    // Read ranges: each shown frame with its handles; overlapping ranges are read once.
    let handle = Chain::<Frame>::handle(&job.stages);
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for &p in &positions {
        let (lo, hi) = (
            p.saturating_sub(handle),
            (p + handle).min(numbers.len() - 1),
        );
        match ranges.last_mut() {
            Some(last) if lo <= last.1 + 1 => last.1 = last.1.max(hi),
            _ => ranges.push((lo, hi)),
        }
    }
    let ffmpeg = match input {
        Input::Sequence(seq) => {
            seq.check_headers(ranges[0].0..=ranges[ranges.len() - 1].1)?;
            None
        }
        Input::Video(_) => Some(Ffmpeg::locate(job.ffmpeg.as_deref())?),
    };
    let wanted: Vec<i64> = positions.iter().map(|&p| numbers[p]).collect();
    let mut frames_read = 0;
    // Frames `lo..=hi` in order, each numbered, handed to `take`.
    let read_range =
        |lo: usize, hi: usize, take: &mut dyn FnMut(usize, Frame) -> Result<()>| -> Result<()> {
            match input {
                Input::Sequence(seq) => {
                    for (pos, frame) in seq.frames.iter().enumerate().take(hi + 1).skip(lo) {
                        let mut f = io::read_frame(&frame.path)?;
                        f.meta.number = Some(frame.number);
                        take(pos, f)?;
                    }
                }
                Input::Video(info) => {
                    let ff = ffmpeg.as_ref().expect("located for video input");
                    let mut reader = VideoReader::open(ff, info, lo, Some(hi))?;
                    for (pos, &number) in numbers.iter().enumerate().take(hi + 1).skip(lo) {
                        let Some(mut f) = reader.next_frame()? else {
                            bail!("{}: ended before frame {pos}", info.path.display());
                        };
                        f.meta.number = Some(number);
                        take(pos, f)?;
                    }
                }
            }
            Ok(())
        };
    let steps = match &job.backend {
        Backend::Cpu => {
            let mut rec = Recording {
                inner: Cpu,
                wanted: &wanted,
                steps: BTreeMap::new(),
                to_host: |_, f: &Frame| Ok(f.clone()),
                number: |f: &Frame| f.meta.number,
            };
            for &(lo, hi) in &ranges {
                let mut chain = Chain::new(&job.stages, numbers.len(), lo, hi);
                let mut out = Vec::new();
                read_range(lo, hi, &mut |pos, frame| {
                    chain.push(pos, frame, &mut rec, &mut out)?;
                    frames_read += 1;
                    out.clear();
                    Ok(())
                })?;
            }
            rec.steps
        }
        Backend::Gpu(gpu) => {
            let mut rec = Recording {
                inner: Gpu(gpu),
                wanted: &wanted,
                steps: BTreeMap::new(),
                to_host: |r: &Gpu, f: &GpuFrame| r.0.download(f),
                number: |f: &GpuFrame| f.meta.number,
            };
            for &(lo, hi) in &ranges {
                let mut chain = Chain::new(&job.stages, numbers.len(), lo, hi);
                let mut out = Vec::new();
                read_range(lo, hi, &mut |pos, frame| {
                    chain.push(pos, gpu.upload(&frame)?, &mut rec, &mut out)?;
                    frames_read += 1;
                    for (_, f) in out.drain(..) {
                        gpu.recycle(f);
                    }
                    Ok(())
                })?;
            }
            rec.steps
        }
    };

    let mut rows = Vec::new();
    for n in &wanted {
        let s = steps
            .get(n)
            .with_context(|| format!("internal: frame {n} was not restored"))?;
        let input = s.input.as_ref().context("internal: no input kept")?;
        // A stage that changes the size (`upscale`) is shown scaled back to the input's size
        // by area averaging, so panels line up pixel for pixel.
        let fit = |f: &Frame| {
            if (f.width, f.height) == (input.width, input.height) {
                f.clone()
            } else {
                crate::stages::upscale::cpu::area_resize(f, input.width, input.height)
            }
        };
        let after = fit(s.outputs.last().context("internal: no output kept")?);
        let mut panels = vec![
            shrink(input, job.panel_width),
            shrink(&after, job.panel_width),
            split(
                &shrink(input, job.panel_width),
                &shrink(&after, job.panel_width),
            ),
        ];
        let mut before = input.clone();
        for out in &s.outputs {
            let out = fit(out);
            panels.push(change_overlay(
                &shrink(&before, job.panel_width),
                &shrink(&out, job.panel_width),
            ));
            before = out;
        }
        rows.push(panels);
    }
    let sheet = grid(&rows);
    if let Some(dir) = job.output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    let bytes = io::encode_frame(&sheet, OutputFormat::Png { bits: 8 })
        .with_context(|| format!("{}: cannot encode", job.output.display()))?;
    io::write_atomic(&job.output, &bytes)?;
    let mut columns = vec!["before".to_string(), "after".into(), "split".into()];
    columns.extend(job.stages.iter().map(|s| format!("{} changed", s.name())));
    Ok(PreviewSummary {
        sheet: job.output.clone(),
        rows: wanted,
        columns,
        frames_read,
    })
}

/// Shrink to at most `width` columns by averaging whole-pixel boxes (never enlarged); mono
/// frames become grey RGB so every panel has three planes.
fn shrink(f: &Frame, width: usize) -> Frame {
    let k = f.width.div_ceil(width.max(1)).max(1);
    let (w, h) = (f.width / k, f.height / k);
    let mut out = Frame::new(w.max(1), h.max(1), 3, FrameMeta::default());
    for p in 0..3 {
        let src = p.min(f.planes - 1);
        for y in 0..out.height {
            for x in 0..out.width {
                let mut sum = 0.0;
                for dy in 0..k {
                    for dx in 0..k {
                        sum += f.get(
                            src,
                            (x * k + dx).min(f.width - 1),
                            (y * k + dy).min(f.height - 1),
                        );
                    }
                }
                out.set(p, x, y, sum / (k * k) as f32);
            }
        }
    }
    out
}

/// Left half from `a`, right half from `b`, with a one-pixel white line between.
fn split(a: &Frame, b: &Frame) -> Frame {
    let mut out = a.clone();
    let mid = a.width / 2;
    for p in 0..3 {
        for y in 0..a.height {
            for x in mid..a.width {
                out.set(p, x, y, if x == mid { 1.0 } else { b.get(p, x, y) });
            }
        }
    }
    out
}

/// `after` dimmed to grey, with `|after - before|` (largest over planes) in orange to yellow:
/// nothing changed shows grey, a change of [`FULL_SCALE`] or more full colour.
fn change_overlay(before: &Frame, after: &Frame) -> Frame {
    let mut out = Frame::new(after.width, after.height, 3, FrameMeta::default());
    for y in 0..after.height {
        for x in 0..after.width {
            let grey = (0..3).map(|p| after.get(p, x, y)).sum::<f32>() / 3.0 * 0.5;
            let d = (0..3)
                .map(|p| (after.get(p, x, y) - before.get(p, x, y)).abs())
                .fold(0.0, f32::max);
            let a = (d / FULL_SCALE).clamp(0.0, 1.0);
            let colour = [1.0, 0.35 + 0.65 * a, 0.0];
            for (p, c) in colour.iter().enumerate() {
                out.set(p, x, y, grey * (1.0 - a) + c * a);
            }
        }
    }
    out
}

/// Panels laid out in rows, two pixels of black between them.
fn grid(rows: &[Vec<Frame>]) -> Frame {
    const GAP: usize = 2;
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let (pw, ph) = (rows[0][0].width, rows[0][0].height);
    let mut sheet = Frame::new(
        cols * (pw + GAP) - GAP,
        rows.len() * (ph + GAP) - GAP,
        3,
        FrameMeta {
            bit_depth: 8,
            ..FrameMeta::default()
        },
    );
    for (r, panels) in rows.iter().enumerate() {
        for (c, panel) in panels.iter().enumerate() {
            let (x0, y0) = (c * (pw + GAP), r * (ph + GAP));
            for p in 0..3 {
                for y in 0..panel.height.min(ph) {
                    for x in 0..panel.width.min(pw) {
                        sheet.set(p, x0 + x, y0 + y, panel.get(p, x, y).clamp(0.0, 1.0));
                    }
                }
            }
        }
    }
    sheet
}
