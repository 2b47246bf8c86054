//! Restoration stages. Each stage lives in `src/stages/<name>/`: `mod.rs` (parameters and the
//! [`Stage`] impl), `cpu.rs` (the plain reference) and `gpu.rs` (dispatch of `shaders/<name>.wgsl`).
//! The two implementations must agree within the tolerance the stage documents; the parity
//! tests in `tests/gpu_parity.rs` hold them to it.

pub mod colour;
pub mod deflicker;
pub mod denoise;
pub mod dust;
pub mod levels;
pub mod repairs;
pub mod scratch;
pub mod stabilise;
pub mod upscale;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::frame::Frame;
use crate::gpu::{GpuContext, GpuFrame};

/// The frames a stage sees for one output frame: the centre frame and up to `radius` frames
/// on either side. Near the ends of the sequence (or of a shot) the sides are shorter; they are
/// never padded with copies, so a stage always knows which neighbours are real.
pub struct Window<'a, T> {
    /// Nearest first: `before[0]` is the frame just before the centre.
    pub before: Vec<&'a T>,
    pub center: &'a T,
    /// Nearest first: `after[0]` is the frame just after the centre.
    pub after: Vec<&'a T>,
}

impl<'a, T> Window<'a, T> {
    pub fn single(center: &'a T) -> Self {
        Window {
            before: Vec::new(),
            center,
            after: Vec::new(),
        }
    }

    /// The window's frames in temporal order, and the centre's index among them.
    pub fn in_order(&self) -> (Vec<&'a T>, usize) {
        let mut frames: Vec<&'a T> = self.before.iter().rev().copied().collect();
        let center = frames.len();
        frames.push(self.center);
        frames.extend(self.after.iter().copied());
        (frames, center)
    }
}

/// Every frame of a window must have one shape: `(width, height, planes)` of each.
pub fn check_shapes(
    stage: &str,
    shapes: impl Iterator<Item = (usize, usize, usize)>,
) -> Result<()> {
    let shapes: Vec<_> = shapes.collect();
    if let Some(first) = shapes.first() {
        if let Some(o) = shapes.iter().find(|s| *s != first) {
            bail!(
                "{stage}: frames of one window differ in shape ({}x{}x{} and {}x{}x{})",
                first.0,
                first.1,
                first.2,
                o.0,
                o.1,
                o.2
            );
        }
    }
    Ok(())
}

/// The size of the frames a chain outputs for `width` x `height` input.
pub fn output_size(stages: &[Box<dyn Stage>], width: usize, height: usize) -> (usize, usize) {
    stages
        .iter()
        .fold((width, height), |(w, h), s| s.output_size(w, h))
}

/// Stages that can write masks of what they repaired (`restore --emit-masks DIR` sets their
/// `emit_masks` parameter).
pub const MASK_STAGES: &[&str] = &["dust", "scratch"];

/// Write one frame's mask of what `stage` touched, for the expert to look at: an 8-bit
/// greyscale PNG at `DIR/<stage>/<number, six digits>.png`, 0 untouched and 255 fully repaired.
/// Written atomically, so an interrupted run leaves no half mask.
pub fn write_mask(
    dir: &Path,
    stage: &str,
    number: i64,
    width: usize,
    height: usize,
    mask: &[u8],
) -> Result<()> {
    assert_eq!(mask.len(), width * height, "mask size");
    let folder = dir.join(stage);
    std::fs::create_dir_all(&folder)
        .with_context(|| format!("{}: cannot create the mask folder", folder.display()))?;
    let path = folder.join(format!("{number:06}.png"));
    let mut bytes = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(std::io::Cursor::new(&mut bytes)),
        mask,
        width as u32,
        height as u32,
        image::ExtendedColorType::L8,
    )
    .with_context(|| format!("{}: cannot encode the mask", path.display()))?;
    crate::io::write_atomic(&path, &bytes)
}

/// Samples gathered for a frame's fingerprint.
pub const FINGERPRINT_SAMPLES: usize = 512;

/// Indices of the samples of a frame's fingerprint: spread over the whole buffer, off the
/// regular lattice. The GPU gathers the same ones (`shaders/gather.wgsl`).
pub fn fingerprint_indices(len: usize) -> Vec<u32> {
    if len == 0 {
        return vec![0; FINGERPRINT_SAMPLES];
    }
    (0..FINGERPRINT_SAMPLES)
        .map(|k| {
            let i = ((k as u64 * len as u64) / FINGERPRINT_SAMPLES as u64) as usize;
            (i + (k * 7919) % (len / FINGERPRINT_SAMPLES).max(1)).min(len - 1) as u32
        })
        .collect()
}

/// The samples at [`fingerprint_indices`].
pub fn fingerprint(frame: &Frame) -> Vec<f32> {
    fingerprint_indices(frame.data.len())
        .into_iter()
        .map(|i| frame.data.get(i as usize).copied().unwrap_or(0.0))
        .collect()
}

/// Identity of a frame for a stage's analysis cache: where its samples live (data pointer or
/// GPU buffer), its shape, and a hash of its [`fingerprint`], so a buffer reused for another
/// frame is not mistaken for the one before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameKey {
    place: u64,
    shape: (usize, usize, usize),
    fingerprint: u64,
}

impl FrameKey {
    pub fn new(place: u64, shape: (usize, usize, usize), samples: &[f32]) -> Self {
        let mut h = DefaultHasher::new();
        for v in samples {
            v.to_bits().hash(&mut h);
        }
        FrameKey {
            place,
            shape,
            fingerprint: h.finish(),
        }
    }

    /// The key of a CPU frame.
    pub fn of(frame: &Frame) -> Self {
        FrameKey::new(
            frame.data.as_ptr() as u64,
            (frame.width, frame.height, frame.planes),
            &fingerprint(frame),
        )
    }
}

/// How far, in code values, a repair may put a sample beyond the range that the picture
/// around the defect shows there (its motion-compensated neighbours, its untouched
/// surroundings): their sampling and grain, not new picture.
pub const GUARD_MARGIN: f32 = 0.02;

/// The harm guard: whether a repair that moves a sample from `before` to `after` pushes it
/// more than [`GUARD_MARGIN`] beyond `lo..=hi`, the range the picture around it shows. A
/// repair may move dirt toward that range but never put in a value the picture does not
/// show; one the guard refuses is left undone. Twin: `shaders/shared/guard.wgsl`.
pub fn pushed_beyond(before: f32, after: f32, lo: f32, hi: f32) -> bool {
    (after < lo - GUARD_MARGIN && after < before) || (after > hi + GUARD_MARGIN && after > before)
}

/// One restoration operation with a CPU reference and a GPU implementation.
pub trait Stage: Send + Sync {
    /// The stage's name as written in presets and `--stages`.
    fn name(&self) -> &'static str;
    /// Frames needed on either side of the one being restored.
    fn temporal_radius(&self) -> usize {
        0
    }
    /// Pixels of context needed around a tile for the output inside it to be exact.
    fn spatial_halo(&self) -> usize {
        0
    }
    /// The size of the frames this stage outputs for `width` x `height` input (the same for
    /// every stage but `upscale`); stages after it see the new size.
    fn output_size(&self, width: usize, height: usize) -> (usize, usize) {
        (width, height)
    }
    /// Largest difference allowed between the GPU and CPU results (absolute up to 1, relative
    /// above); held by the parity tests and by `restore --check-gpu`.
    fn gpu_tolerance(&self) -> f32;
    /// The parameters as resolved, for the run's record.
    fn params_json(&self) -> serde_json::Value;
    /// What the stage measured during the run (a flicker curve, a motion track), for the run's
    /// record; `None` for stages that measure nothing.
    fn report(&self) -> Option<serde_json::Value> {
        None
    }
    /// Every region repaired so far, one by one, for the run's repairs file (see
    /// [`repairs`]); empty for stages that repair no defects.
    fn repairs(&self) -> Vec<repairs::Repair> {
        Vec::new()
    }
    /// Whole-reel measures for `nitrate analyse` (see [`crate::analysis`]): called on the
    /// source frames in sequence order, `prev` being the frame given as `frame` in the call
    /// before (`None` at the first). What a stage returns for each frame goes in the analysis
    /// file under its name; `None` (the default) measures nothing.
    fn measure(&self, _prev: Option<&Frame>, _frame: &Frame) -> Result<Option<serde_json::Value>> {
        Ok(None)
    }
    /// Take the measures of an analysis (what [`Stage::measure`] returned, one per frame in
    /// order) instead of measuring them while restoring. Measures must be keyed by the content
    /// they were taken from, so that they serve only frames with that content (a stage that
    /// does not see the source frames measures as usual). The default ignores them.
    fn use_measures(&mut self, _measures: &[serde_json::Value]) -> Result<()> {
        Ok(())
    }
    /// Reference implementation: plain Rust, parallel over rows or planes with rayon.
    fn run_cpu(&self, window: &Window<'_, Frame>) -> Result<Frame>;
    /// GPU implementation; the output stays on the device.
    fn run_gpu(&self, gpu: &GpuContext, window: &Window<'_, GpuFrame>) -> Result<GpuFrame>;
}

/// Canonical stage names, British spelling first, with the aliases accepted for them.
pub const STAGE_NAMES: &[(&str, &[&str])] = &[
    ("levels", &[]),
    ("deflicker", &[]),
    ("stabilise", &["stabilize"]),
    ("dust", &["dirt"]),
    ("scratch", &[]),
    ("denoise", &[]),
    ("colour", &["color"]),
    ("upscale", &["superres"]),
];

// KNOB_DOCS: each stage's parameters with their documentation, collected by build.rs from the
// `///` comments of the stage's `…Params` struct.
include!(concat!(env!("OUT_DIR"), "/knob_docs.rs"));

/// A stage's parameters, in declaration order, with their documentation (meaning, range,
/// default, cost): `(key, doc)`.
pub fn knobs(stage: &str) -> &'static [(&'static str, &'static str)] {
    KNOB_DOCS
        .iter()
        .find(|(name, _)| *name == stage)
        .map(|(_, knobs)| *knobs)
        .unwrap_or(&[])
}

/// The canonical name for `name` or one of its aliases.
pub fn canonical_name(name: &str) -> Result<&'static str> {
    let lower = name.trim().to_ascii_lowercase();
    for (canon, aliases) in STAGE_NAMES {
        if *canon == lower || aliases.contains(&lower.as_str()) {
            return Ok(canon);
        }
    }
    let known: Vec<&str> = STAGE_NAMES.iter().map(|(c, _)| *c).collect();
    bail!(
        "unknown stage '{name}' (known stages: {})",
        known.join(", ")
    )
}

/// Build a stage from its canonical name and a TOML table of parameters (missing keys take
/// their defaults; unknown keys and out-of-range values are errors).
pub fn build(name: &str, params: &toml::Table) -> Result<Box<dyn Stage>> {
    match canonical_name(name)? {
        "levels" => Ok(Box::new(levels::Levels::from_table(params)?)),
        "deflicker" => Ok(Box::new(deflicker::Deflicker::from_table(params)?)),
        "stabilise" => Ok(Box::new(stabilise::Stabilise::from_table(params)?)),
        "dust" => Ok(Box::new(dust::Dust::from_table(params)?)),
        "scratch" => Ok(Box::new(scratch::Scratch::from_table(params)?)),
        "denoise" => Ok(Box::new(denoise::Denoise::from_table(params)?)),
        "colour" => Ok(Box::new(colour::Colour::from_table(params)?)),
        "upscale" => Ok(Box::new(upscale::Upscale::from_table(params)?)),
        other => bail!("stage '{other}' is not built in this version"),
    }
}
