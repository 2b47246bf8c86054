//! Helpers shared by the integration tests: a GPU if there is one, seeded random frames, and a
//! frame comparison that writes both images when it fails.

// Each test binary uses a different subset of these.
#![allow(dead_code)]

use std::fmt;
use std::io::Write;
use std::path::PathBuf;

use nitrate::frame::{Frame, FrameMeta};
use nitrate::gpu::{AdapterChoice, GpuContext};
use nitrate::pipeline::chain::{Chain, Runner};
use nitrate::stages::{Stage, Window};

/// A GPU context on any adapter (software ones included, so CI runs on lavapipe). Without one
/// the test is skipped, unless `NITRATE_REQUIRE_GPU=1`, where a missing GPU is a failure.
pub fn gpu() -> Option<GpuContext> {
    match GpuContext::new(AdapterChoice::Any) {
        Ok(gpu) => Some(gpu),
        Err(e) if std::env::var("NITRATE_REQUIRE_GPU").is_ok_and(|v| v == "1") => {
            panic!("NITRATE_REQUIRE_GPU=1 but no GPU could be opened: {e:#}")
        }
        Err(e) => {
            eprintln!("skipping: no GPU adapter ({e:#})");
            None
        }
    }
}

/// xorshift64*: tiny, seeded, and the same on every platform.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        // A zero state would stay zero; mix the seed so nearby seeds diverge at once.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * unit
    }
}

/// A frame of seeded noise in `-0.5..1.5`: negatives and values above 1 included, as
/// stages see after earlier stages.
pub fn random_frame(width: usize, height: usize, planes: usize, seed: u64) -> Frame {
    let mut rng = Rng::new(seed);
    let mut frame = Frame::new(width, height, planes, FrameMeta::default());
    for v in &mut frame.data {
        *v = rng.range(-0.5, 1.5);
    }
    frame
}

/// The outcome of [`compare`]. Must be used: call [`Comparison::assert_ok`].
#[must_use = "a comparison does nothing unless asserted: call .assert_ok()"]
#[derive(Debug)]
pub struct Comparison {
    pub name: String,
    pub tolerance: f32,
    /// Largest difference, `|got - want| / max(1, |want|)`: absolute in the normal 0..1 range,
    /// relative above it, where an `f32` ulp outgrows any absolute tolerance. Infinite where
    /// exactly one is NaN or the two are different infinities.
    pub max_diff: f32,
    /// Samples with a difference above the tolerance.
    pub over: usize,
    /// `(plane, x, y)` of the largest difference, with both values.
    pub worst: Option<((usize, usize, usize), f32, f32)>,
    /// Where the images went, on failure.
    pub written: Vec<PathBuf>,
}

impl Comparison {
    pub fn passed(&self) -> bool {
        self.over == 0
    }

    /// Panic with the report if any sample is over the tolerance.
    pub fn assert_ok(self) {
        assert!(self.passed(), "{self}");
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: max diff {:e} (tolerance {:e}), {} samples over",
            self.name, self.max_diff, self.tolerance, self.over
        )?;
        if let Some(((p, x, y), got, want)) = self.worst {
            write!(
                f,
                "; worst at plane {p} ({x}, {y}): got {got:e}, want {want:e}"
            )?;
        }
        for path in &self.written {
            write!(f, "\n  wrote {}", path.display())?;
        }
        Ok(())
    }
}

/// Compare two frames sample by sample: `|got - want| <= tolerance * max(1, |want|)`, NaN equal
/// to NaN (see [`Comparison::max_diff`]); tolerance 0 asks for equality. On failure writes
/// `got`, `want` and their difference (scaled so the tolerance is mid-grey) as 16-bit PGM/PPM
/// files in the temp directory.
pub fn compare(name: &str, got: &Frame, want: &Frame, tolerance: f32) -> Comparison {
    let shape = |f: &Frame| (f.width, f.height, f.planes, f.data.len());
    assert_eq!(
        shape(got),
        shape(want),
        "{name}: shapes differ (width, height, planes, samples)"
    );
    let mut report = Comparison {
        name: name.to_string(),
        tolerance,
        max_diff: 0.0,
        over: 0,
        worst: None,
        written: Vec::new(),
    };
    let n = got.plane_len().max(1);
    let mut diff = got.clone();
    for (i, (&g, &w)) in got.data.iter().zip(&want.data).enumerate() {
        let d = if g.is_nan() && w.is_nan() || g == w {
            0.0
        } else if !g.is_finite() || !w.is_finite() {
            f32::INFINITY
        } else {
            (g - w).abs() / w.abs().max(1.0)
        };
        diff.data[i] = (d / tolerance.max(f32::MIN_POSITIVE) * 0.5).min(1.0);
        if d > tolerance {
            report.over += 1;
        }
        if d > report.max_diff {
            report.max_diff = d;
            let (p, r) = (i / n, i % n);
            report.worst = Some(((p, r % got.width.max(1), r / got.width.max(1)), g, w));
        }
    }
    if !report.passed() {
        let stem: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        for (suffix, frame) in [("got", got), ("want", want), ("diff", &diff)] {
            let ext = if frame.planes == 3 { "ppm" } else { "pgm" };
            let path = std::env::temp_dir().join(format!("nitrate-{stem}-{suffix}.{ext}"));
            match write_pnm16(&path, frame) {
                Ok(()) => report.written.push(path),
                Err(e) => eprintln!("could not write {}: {e}", path.display()),
            }
        }
    }
    report
}

/// Binary 16-bit PGM (1 plane) or PPM (3 planes; other counts write the first plane), values
/// clamped to 0..1. Written by hand so tests need no image crate.
pub fn write_pnm16(path: &std::path::Path, frame: &Frame) -> std::io::Result<()> {
    let channels = if frame.planes == 3 { 3 } else { 1 };
    let mut out = Vec::with_capacity(frame.plane_len() * channels * 2 + 32);
    write!(
        out,
        "P{}\n{} {}\n65535\n",
        if channels == 3 { 6 } else { 5 },
        frame.width,
        frame.height
    )?;
    for y in 0..frame.height {
        for x in 0..frame.width {
            for p in 0..channels {
                let v = frame.get(p, x, y);
                let v = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
                out.extend_from_slice(&((v * 65535.0).round() as u16).to_be_bytes());
            }
        }
    }
    std::fs::write(path, out)
}

/// Runs every stage on the CPU, as the pipeline's CPU backend does.
pub struct CpuRunner;

impl Runner<Frame> for CpuRunner {
    fn run(&mut self, stage: &dyn Stage, window: &Window<'_, Frame>) -> anyhow::Result<Frame> {
        stage.run_cpu(window)
    }
    fn release(&mut self, _frame: Frame) {}
}

/// Restore `frames[lo..=hi]` the way the pipeline does: a chain over the range plus handles,
/// on the CPU; the restored frames with their positions.
pub fn restore_range(
    stages: &[Box<dyn Stage>],
    frames: &[Frame],
    lo: usize,
    hi: usize,
) -> Vec<(usize, Frame)> {
    let handle = Chain::<Frame>::handle(stages);
    let (in_lo, in_hi) = (
        lo.saturating_sub(handle),
        (hi + handle).min(frames.len() - 1),
    );
    let mut chain = Chain::new(stages, frames.len(), in_lo, in_hi);
    let mut out = Vec::new();
    for (pos, f) in frames.iter().enumerate().take(in_hi + 1).skip(in_lo) {
        chain
            .push(pos, f.clone(), &mut CpuRunner, &mut out)
            .unwrap();
    }
    out.retain(|(q, _)| *q >= lo && *q <= hi);
    out
}

/// The window around frame `i` of `frames`: up to `r` frames either side, cut at the ends.
pub fn window<T>(frames: &[T], i: usize, r: usize) -> Window<'_, T> {
    Window {
        before: (1..=r)
            .filter(|d| i >= *d)
            .map(|d| &frames[i - d])
            .collect(),
        center: &frames[i],
        after: (1..=r)
            .filter(|d| i + d < frames.len())
            .map(|d| &frames[i + d])
            .collect(),
    }
}
