//! `nitrate degrade`: seeded, documented, physically ordered film damage applied to a clean
//! sequence, with the ground truth written beside it, so that every restoration stage can be
//! judged by how close it brings damaged frames back to clean ones.
//!
//! # The model
//!
//! Each frame is damaged in film coordinates, in the order the damage happens to a print:
//!
//! 1. **blur** ([`optics`]) — camera, printer or contact-print softness: a gaussian of
//!    `sigma_px` = 0.8 px.
//! 2. **grain** ([`grain`]) — the emulsion, new in every frame:
//!    `v + amount * sqrt(clamp(v, 0, 1) + floor) * n`, `amount` = 0.022, `floor` = 0.02; `n` is
//!    white gaussian noise blurred with a gaussian of `size_px` = 0.8 px and rescaled to unit
//!    variance; in colour `shared` = 0.85 of its variance is common to the three channels.
//! 3. **fading** ([`fading`]) — dye loss as a per-channel curve in a density-like domain,
//!    `v' = 10^-(keep * D + stain)` with `D = -log10(v)` (up to `dmax` = 3): colour keeps
//!    `[0.55, 0.92, 0.72]` of its R, G, B density (cyan and yellow dyes fade fastest, so a faded
//!    Eastmancolor print turns red-magenta) with a base stain of `[0, 0.01, 0.04]`; monochrome
//!    keeps 0.78 with a stain of 0.02 (lifted blacks, lower contrast).
//! 4. **damage on the film** — local defects, composited as `v' = v + alpha * (level - v)`
//!    (neutral in colour) in this order:
//!    - **dust** ([`spots`]): `per_frame` = 15 specks and hairs (Poisson), each on one frame
//!      only; specks are irregular soft-edged blobs of `size_px` = 1..12 px (skewed small,
//!      `size_skew` = 2.5) built from 1–4 overlapping ellipses with perturbed, roughened edges;
//!      `hair_fraction` = 0.12 are hairs or fibres, thin curved strokes of 15..70 px by
//!      0.7..1.6 px; `bright_fraction` = 0.3 are bright (dirt on the negative), the rest dark
//!      (dirt on the print); opacity 0.7..1, levels 0.02..0.12 (dark) or 0.85..1 (bright).
//!    - **blotches** ([`spots`]): `per_frame` = 0.5, 10..60 px semi-transparent mottled stains
//!      (peak opacity 0.15..0.5) with wide soft edges, `dark_fraction` = 0.7, one frame each.
//!    - **artefacts** ([`artifacts`], with `degrade --artifacts DIR`): alpha mattes cut from
//!      real film scans (hairs, lint, smut, sprinkles, stains...), `per_frame` = 3, rotated,
//!      scaled to 0.1..0.4 of the frame height, dark or bright, at the matte's own opacity.
//!    - **scratches** ([`scratches`]): tracks drawn for the whole sequence first,
//!      `per_48_frames` = 1.5 (at least one), each living 25–100 % of the sequence; 40 % static,
//!      the rest drifting up to 0.25 px/frame and wandering up to 1.5 px; 1..4 px wide (FWHM) with
//!      a smooth `cos^2` profile; 60 % bright; peak opacity 0.35..0.8, varying 25 % from frame to
//!      frame; 30 % cover only part of the height; intensity varies along the length (depth 0.5
//!      over 40 px) with gaps on about 12 % of it.
//! 5. **flicker** ([`flicker`]) — `v' = gain * (1 + r(x, y)) * channel_gain[p] * v + offset` with
//!    a gain drift of ±0.1 (knots every 16 frames), ±0.055 jitter, one-frame flashes (5 % of
//!    frames, ±0.06..0.18), level steps (3 %, to ±0.06), an offset drift of ±0.015, regional
//!    breathing of 0.04 in low-order cosine terms of zero mean, and per-channel breathing of 0.02.
//! 6. **weave** ([`weave`]) — the film in the gate: a slow drift of [0.6, 0.4] px (x, y; knots
//!    every 24 frames), jitter of [0.12, 0.1] px, jumps (3 % of frames, 0.3..1 px across and
//!    0.8..2.5 px along the film) decaying over 4 frames, and a rotation drift of 0.05° held
//!    within 0.1°; Lanczos-3 resampling with mirrored borders.
//!
//! `strength` (0..=3, 1 = a worn print) multiplies counts and amplitudes (the blur sigma, the
//! grain, the density lost to fading, flicker and weave; not the opacity of a speck: dirt is
//! dirt); at 0 nothing changes. Lengths in pixels are
//! given for frames up to 480 lines; taller frames scale them by `height / 480` (the
//! `resolution_scale`): a speck is the same piece of dirt on the film at any scan resolution.
//!
//! The mask marks, in the clean reference's coordinates (the damage is on the film; the
//! reference is the clean frame, unweaved), every pixel a local defect changed: a local defect
//! changes a pixel only where its alpha exceeds [`ALPHA_EPSILON`], and exactly those pixels are
//! marked. With no other defect enabled, degraded and clean frames are bit-identical outside the
//! mask.
//!
//! # Determinism
//!
//! Every random draw derives from `(seed, frame, defect)` through a stateless hash, so frames
//! render in parallel, in any order, and identically for a seed; each defect has its own stream,
//! so enabling grain does not move the dust. Whole-sequence processes (scratch tracks, flicker
//! levels, weave jumps) are planned sequentially from the same hashes before any pixel is drawn.
//!
//! # Output of [`run`]
//!
//! `OUT/degraded/`, `OUT/clean/` (the reference re-encoded at the output depth), `OUT/mask/`
//! (8-bit grey PNG, 255 where damaged) with the input's stems, and `OUT/truth.json`, written
//! last, so its presence marks a complete run.

pub mod artifacts;
pub mod fading;
pub mod flicker;
pub mod grain;
pub mod optics;
mod rng;
mod run;
pub mod scratches;
pub mod spots;
pub mod weave;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{bail, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::frame::{Frame, FrameMeta, SampleKind};
use artifacts::{Artifact, ArtifactParams, Library};
use fading::{FadingParams, FadingPlan};
use flicker::{FlickerFrame, FlickerParams};
use grain::{GrainParams, GrainPlan};
use optics::BlurParams;
use rng::{key, stream, Rng};
use scratches::{ScratchFrame, ScratchParams, Track};
use spots::{BlotchParams, DustParams, Spot};
use weave::{WeaveFrame, WeaveParams};

pub use run::run;

/// A local defect leaves a pixel untouched unless its alpha there exceeds this.
pub const ALPHA_EPSILON: f32 = 0.004;

/// Version of the truth file's layout.
pub const TRUTH_VERSION: u32 = 1;

/// One kind of film damage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Defect {
    Dust,
    Blotches,
    Scratches,
    Grain,
    Flicker,
    Weave,
    Fading,
    Blur,
}

/// A worn print: dust, blotches, scratches, grain, flicker and weave. Fading and blur are added
/// only when asked for, or with `all`.
pub const DEFAULT_DEFECTS: &[Defect] = &[
    Defect::Dust,
    Defect::Blotches,
    Defect::Scratches,
    Defect::Grain,
    Defect::Flicker,
    Defect::Weave,
];

impl Defect {
    /// Every defect, in the order they are applied.
    pub const ORDER: [Defect; 8] = [
        Defect::Blur,
        Defect::Grain,
        Defect::Fading,
        Defect::Dust,
        Defect::Blotches,
        Defect::Scratches,
        Defect::Flicker,
        Defect::Weave,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Defect::Dust => "dust",
            Defect::Blotches => "blotches",
            Defect::Scratches => "scratches",
            Defect::Grain => "grain",
            Defect::Flicker => "flicker",
            Defect::Weave => "weave",
            Defect::Fading => "fading",
            Defect::Blur => "blur",
        }
    }

    /// Dust, blotches and scratches: damage confined to some pixels, covered by the mask.
    pub fn is_local(self) -> bool {
        matches!(self, Defect::Dust | Defect::Blotches | Defect::Scratches)
    }

    /// A list such as `dust,scratches grain`, `all` or `default` (may be combined:
    /// `default,fading`). Duplicates are dropped; the result is in application order.
    pub fn parse_list(text: &str) -> Result<Vec<Defect>> {
        let mut chosen = Vec::new();
        let mut none = false;
        for word in text
            .split([',', ' ', '+'])
            .map(str::trim)
            .filter(|w| !w.is_empty())
        {
            match word.to_ascii_lowercase().as_str() {
                "none" => none = true,
                "all" => chosen.extend(Defect::ORDER),
                "default" => chosen.extend_from_slice(DEFAULT_DEFECTS),
                _ => chosen.push(word.parse()?),
            }
        }
        if chosen.is_empty() && !none {
            bail!(
                "no defects named (valid: {}, all, default, none)",
                Self::names()
            );
        }
        Ok(Self::in_order(&chosen))
    }

    /// `defects` without duplicates, in application order.
    pub fn in_order(defects: &[Defect]) -> Vec<Defect> {
        Defect::ORDER
            .into_iter()
            .filter(|d| defects.contains(d))
            .collect()
    }

    fn names() -> String {
        Defect::ORDER.map(Defect::name).join(", ")
    }
}

impl FromStr for Defect {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "dust" | "dirt" => Defect::Dust,
            "blotches" | "blotch" => Defect::Blotches,
            "scratches" | "scratch" => Defect::Scratches,
            "grain" => Defect::Grain,
            "flicker" => Defect::Flicker,
            "weave" => Defect::Weave,
            "fading" | "fade" => Defect::Fading,
            "blur" => Defect::Blur,
            other => bail!(
                "unknown defect '{other}' (valid: {}, all, default)",
                Defect::names()
            ),
        })
    }
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Every knob of the model at strength 1; [`Model::default`] is the documented worn print.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Model {
    pub blur: BlurParams,
    pub grain: GrainParams,
    pub fading: FadingParams,
    pub dust: DustParams,
    pub blotches: BlotchParams,
    pub artifacts: ArtifactParams,
    pub scratches: ScratchParams,
    pub flicker: FlickerParams,
    pub weave: WeaveParams,
}

/// What [`run`] reads, writes and applies.
#[derive(Clone, Debug, PartialEq)]
pub struct DegradeOptions {
    /// The clean sequence: a directory, a frame pattern or one file.
    pub clean: PathBuf,
    /// Output directory; receives `degraded/`, `clean/`, `mask/` and `truth.json`.
    pub out: PathBuf,
    pub defects: Vec<Defect>,
    pub seed: u64,
    /// Global multiplier of counts and amplitudes, 0..=3; 1 is a worn print.
    pub strength: f32,
    /// One of [`crate::io::FORMAT_NAMES`]; `None` writes 16 bits in the input's family (PNG for
    /// PNG and JPEG, TIFF, DPX; EXR as the input; float TIFF as 32-bit EXR).
    pub format: Option<String>,
    /// Replace the output of an earlier run in `out`.
    pub overwrite: bool,
    /// A library of artefact mattes to composite ([`artifacts`]), and the kinds to draw from
    /// (empty: all).
    pub artifacts: Option<PathBuf>,
    pub artifact_kinds: Vec<String>,
}

impl DegradeOptions {
    /// The defaults: [`DEFAULT_DEFECTS`], seed 1, strength 1, the input's family at 16 bits.
    pub fn new(clean: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Self {
        DegradeOptions {
            clean: clean.into(),
            out: out.into(),
            defects: DEFAULT_DEFECTS.to_vec(),
            seed: 1,
            strength: 1.0,
            format: None,
            overwrite: false,
            artifacts: None,
            artifact_kinds: Vec::new(),
        }
    }
}

/// What [`run`] wrote.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DegradeSummary {
    pub frames: usize,
    pub width: usize,
    pub height: usize,
    pub planes: usize,
    /// The output format, e.g. "PNG 16-bit".
    pub format: String,
    pub degraded_dir: PathBuf,
    pub clean_dir: PathBuf,
    pub mask_dir: PathBuf,
    pub truth: PathBuf,
    /// Dust specks, hairs and blotches over all frames.
    pub spots: usize,
    /// Artefacts of real shapes over all frames.
    pub artifacts: usize,
    pub scratch_tracks: usize,
    /// Share of all pixels marked in the masks.
    pub masked_fraction: f64,
    /// Files of an earlier run removed from the output folders (with `overwrite`).
    pub removed_stale: usize,
    pub seconds: f64,
}

/// Blur as applied to a sequence.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BlurPlan {
    pub sigma_px: f32,
}

/// Everything drawn for one frame, before any pixel is touched.
#[derive(Clone, Debug, Serialize)]
pub struct FramePlan {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weave: Option<WeaveFrame>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flicker: Option<FlickerFrame>,
    /// Dust specks, hairs and blotches, in compositing order.
    pub spots: Vec<Spot>,
    /// Artefacts of real shapes, composited after the spots.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<Artifact>,
    pub scratches: Vec<ScratchFrame>,
    #[serde(skip)]
    grain_key: u64,
}

/// The damage of a whole sequence, drawn from the seed: the truth file's content, and all that
/// [`Plan::render`] needs besides the clean frame.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub version: u32,
    pub seed: u64,
    pub strength: f32,
    /// Enabled defects, in application order.
    pub defects: Vec<Defect>,
    pub width: usize,
    pub height: usize,
    pub planes: usize,
    pub frame_count: usize,
    /// `max(1, height / 480)`: multiplies every length in pixels.
    pub resolution_scale: f32,
    pub alpha_epsilon: f32,
    /// The knobs at strength 1 and resolution scale 1.
    pub model: Model,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blur: Option<BlurPlan>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grain: Option<GrainPlan>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fading: Option<FadingPlan>,
    pub scratch_tracks: Vec<Track>,
    /// The artefact library drawn from, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<Library>,
    pub frames: Vec<FramePlan>,
}

/// A damage confined to some pixels: dust, blotch, scratch.
pub(crate) trait Local {
    /// Pixels it may touch, `[x0, y0, x1, y1)`, inside the frame.
    fn bbox(&self) -> [usize; 4];
    /// Opacity at pixel centre `(x, y)`.
    fn alpha(&self, x: f32, y: f32) -> f32;
    /// The level it pulls pixels toward.
    fn level(&self) -> f32;
}

/// Composite one local defect; marks the pixels it changed in `mask`.
fn composite(frame: &mut Frame, mask: &mut [f32], item: &dyn Local) {
    let [x0, y0, x1, y1] = item.bbox();
    let (w, n) = (frame.width, frame.plane_len());
    let level = item.level();
    for y in y0..y1.min(frame.height) {
        for x in x0..x1.min(w) {
            let a = item.alpha(x as f32, y as f32);
            if a.is_nan() || a <= ALPHA_EPSILON {
                continue;
            }
            let a = a.min(1.0);
            let i = y * w + x;
            mask[i] = 1.0;
            for p in 0..frame.planes {
                let v = &mut frame.data[p * n + i];
                *v += a * (level - *v);
            }
        }
    }
}

/// A strength as used: finite and within 0..=3 (anything else counts as 0).
fn usable_strength(strength: f32) -> f32 {
    if strength.is_finite() {
        strength.clamp(0.0, 3.0)
    } else {
        0.0
    }
}

impl Plan {
    /// Draw the damage of `frames` frames of `width x height` with `planes` planes.
    pub fn new(
        (width, height, planes): (usize, usize, usize),
        frames: usize,
        defects: &[Defect],
        seed: u64,
        strength: f32,
        model: &Model,
    ) -> Plan {
        let s = usable_strength(strength);
        let defects = Defect::in_order(defects);
        let on = |d: Defect| defects.contains(&d);
        let scale = (height as f32 / 480.0).max(1.0);
        let size = (width, height);
        let scratch_tracks = if on(Defect::Scratches) {
            scratches::tracks(&model.scratches, seed, s, scale, frames, size)
        } else {
            Vec::new()
        };
        let weaves = on(Defect::Weave).then(|| weave::plan(&model.weave, seed, s, scale, frames));
        let flickers =
            on(Defect::Flicker).then(|| flicker::plan(&model.flicker, seed, s, frames, planes));
        let frame_plans = (0..frames)
            .map(|t| {
                let mut spots = Vec::new();
                if on(Defect::Dust) {
                    let mut rng = Rng::new(key(seed, t as u64, stream::DUST));
                    spots.extend(spots::dust(&mut rng, &model.dust, s, scale, size));
                }
                if on(Defect::Blotches) {
                    let mut rng = Rng::new(key(seed, t as u64, stream::BLOTCH));
                    spots.extend(spots::blotches(&mut rng, &model.blotches, s, scale, size));
                }
                FramePlan {
                    index: t,
                    weave: weaves.as_ref().map(|w| w[t].clone()),
                    flicker: flickers.as_ref().map(|f| f[t].clone()),
                    spots,
                    artifacts: Vec::new(),
                    scratches: scratches::at_frame(
                        &scratch_tracks,
                        &model.scratches,
                        seed,
                        t,
                        scale,
                        size,
                    ),
                    grain_key: key(seed, t as u64, stream::GRAIN),
                }
            })
            .collect();
        Plan {
            version: TRUTH_VERSION,
            seed,
            strength: s,
            width,
            height,
            planes,
            frame_count: frames,
            resolution_scale: scale,
            alpha_epsilon: ALPHA_EPSILON,
            model: model.clone(),
            blur: on(Defect::Blur).then_some(BlurPlan {
                sigma_px: model.blur.sigma_px * s * scale,
            }),
            grain: on(Defect::Grain).then(|| GrainPlan::new(&model.grain, s, scale)),
            fading: on(Defect::Fading).then(|| FadingPlan::new(&model.fading, s, planes)),
            scratch_tracks,
            artifacts: None,
            frames: frame_plans,
            defects,
        }
    }

    /// Draw artefacts of real shapes from `library` into every frame (their own random stream,
    /// so the other defects stay where they were). Fails if a matte cannot be read.
    pub fn add_artifacts(&mut self, library: Library) -> Result<()> {
        let mut cache = std::collections::BTreeMap::new();
        for fp in &mut self.frames {
            let mut rng = Rng::new(key(self.seed, fp.index as u64, stream::ARTIFACTS));
            fp.artifacts = artifacts::draw(
                &mut rng,
                &self.model.artifacts,
                &library,
                self.strength,
                &mut cache,
                (self.width, self.height),
            )?;
        }
        self.artifacts = Some(library);
        Ok(())
    }

    /// Damage the clean frame `t`: the degraded frame, the mask (one plane, 0 or 1, reference
    /// coordinates) and the number of masked pixels. Panics if `clean` is not the plan's size.
    pub fn render(&self, t: usize, clean: &Frame) -> (Frame, Frame, usize) {
        assert!(
            (clean.width, clean.height, clean.planes) == (self.width, self.height, self.planes),
            "degrade: frame {t} is {} but the plan is for {}x{} with {} planes",
            clean.shape(),
            self.width,
            self.height,
            self.planes
        );
        let fp = &self.frames[t];
        let mut f = clean.clone();
        if let Some(b) = &self.blur {
            optics::blur(&mut f, b.sigma_px);
        }
        if let Some(g) = &self.grain {
            grain::apply(&mut f, g, fp.grain_key);
        }
        if let Some(fd) = &self.fading {
            fading::apply(&mut f, fd);
        }
        let mask_meta = FrameMeta {
            bit_depth: 8,
            sample: SampleKind::Integer,
            ..clean.meta.clone()
        };
        let mut mask = Frame::new(self.width, self.height, 1, mask_meta);
        for spot in &fp.spots {
            composite(&mut f, &mut mask.data, spot);
        }
        for artifact in &fp.artifacts {
            composite(&mut f, &mut mask.data, artifact);
        }
        for scratch in &fp.scratches {
            composite(&mut f, &mut mask.data, scratch);
        }
        if let Some(fl) = &fp.flicker {
            flicker::apply(&mut f, fl);
        }
        if let Some(wv) = &fp.weave {
            f = weave::apply(&f, wv);
        }
        let masked = mask.data.iter().filter(|v| **v > 0.5).count();
        (f, mask, masked)
    }

    /// The truth file's content (without run options or file names).
    pub fn truth(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("the plan serialises: plain numbers, strings and lists")
    }
}

/// Degrade an in-memory sequence (all frames one size): the degraded frames, the masks (one
/// plane, 1 where a local defect changed the pixel, in reference coordinates) and the truth.
/// A strength outside 0..=3 is clamped (non-finite counts as 0). Frames render in parallel.
pub fn degrade_sequence(
    clean: &[Frame],
    defects: &[Defect],
    seed: u64,
    strength: f32,
) -> (Vec<Frame>, Vec<Frame>, serde_json::Value) {
    degrade_sequence_with(clean, defects, seed, strength, &Model::default())
}

/// [`degrade_sequence`] with other knobs than the default model's.
pub fn degrade_sequence_with(
    clean: &[Frame],
    defects: &[Defect],
    seed: u64,
    strength: f32,
    model: &Model,
) -> (Vec<Frame>, Vec<Frame>, serde_json::Value) {
    let shape = clean
        .first()
        .map_or((0, 0, 0), |f| (f.width, f.height, f.planes));
    let plan = Plan::new(shape, clean.len(), defects, seed, strength, model);
    let rendered: Vec<(Frame, Frame, usize)> = clean
        .par_iter()
        .enumerate()
        .map(|(t, f)| plan.render(t, f))
        .collect();
    let mut truth = plan.truth();
    let mut degraded = Vec::with_capacity(clean.len());
    let mut masks = Vec::with_capacity(clean.len());
    for (t, (d, m, count)) in rendered.into_iter().enumerate() {
        truth["frames"][t]["mask_pixels"] = count.into();
        degraded.push(d);
        masks.push(m);
    }
    (degraded, masks, truth)
}
