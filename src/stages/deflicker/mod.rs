//! `deflicker`: remove frame-to-frame exposure flicker (global, regional and per dye layer)
//! while keeping fades, slow lighting changes and cuts.
//!
//! # Model
//!
//! Between two neighbouring frames of a shot the exposure changes by a smooth field:
//! `next(x, y, c) = A(x, y, c) * prev(x + d(x, y), c) + B(c)`, where `A` is a gain field given
//! by its values at the nodes of a coarse grid (`grid` = columns x rows; nodes at the centres of
//! equal regions, bilinear between them, linear beyond the outer ones), `B` an offset
//! (`offset = true`) and `d` the motion between the frames. `A` and `B` are per channel with
//! `per_channel = true`.
//!
//! # Algorithm (per output frame, over the window of `2 * window + 1` frames)
//!
//! 1. **Thumbnails** ([`analysis::Geometry`]): every frame is reduced to block means, about 80
//!    blocks along its longer side (a two-pass GPU reduction on the GPU backend,
//!    [`cpu::block_sums`] on the CPU; both add in the same order, so the thumbnails are
//!    bit-identical and everything measured from them is the same on both backends). The CPU
//!    backend caches them per frame, so a frame is reduced once, not once per window.
//! 2. **Pairs** ([`analysis::fit_pair`]): neighbours are registered (global shift by normalised
//!    cross-correlation, [`cuts::compare`], then a local displacement per block by patch
//!    correlation, for parallax and moving objects) and the model above is fitted by
//!    iteratively reweighted least squares with Tukey weights (moving objects, occlusions,
//!    dust and blotches drop out, so what is measured is the photometric change, not a change
//!    of content), neighbouring nodes tied as strongly as the residual noise warrants. The
//!    correlation also decides cuts ([`cuts::is_cut`], `cut_threshold`). Fits are cached by
//!    thumbnail content.
//! 3. **Chain**: from the centre frame (the reference: gain 1, offset 0) the pair transfers are
//!    chained outwards, giving every frame of the shot inside the window its exposure state per
//!    node and channel. A cut stops the chain; a single frame that matches neither neighbour
//!    while they match each other (torn, heavily blotched, a flash frame) is bridged over by a
//!    fit across it and left out (as the centre it is left as it is).
//! 4. **Target** ([`analysis::correction`]): per node and channel, the states as the values
//!    they give two reference levels of the centre frame (its 5th and 95th percentiles) are
//!    fitted over time by a robust local *linear* regression (tricube weights over the window,
//!    a least-median-of-squares start and Tukey reweighting: up to half the frames may be
//!    flashes), evaluated at the centre. A linear trend — a fade, a slow lighting change — is
//!    reproduced exactly and kept; flashes are rejected; jitter is averaged out. Where the
//!    window is one-sided (ends of shots) a slope is kept only as far as it stands above the
//!    jitter, so drift is not extrapolated.
//! 5. **Apply** ([`cpu::corrected`], `shaders/deflicker.wgsl`):
//!    `out = g(x, y, c) * in + o(x, y, c)` with the node corrections (blended by `strength`)
//!    interpolated bilinearly per pixel.
//!
//! The output depends only on the frames of the window, so chunks restored separately equal a
//! whole run bit for bit on the CPU; the GPU computes the same corrections and differs only by
//! the rounding of the per-pixel apply ([`GPU_TOLERANCE`]).
//!
//! # Flicker curve
//!
//! Every restored frame adds a [`CurvePoint`] (mean luma measured and after correction, the
//! correction applied, frames used, cuts) to [`Deflicker::curve`], in output order, for the
//! run's sidecar ([`Deflicker::curve_json`]).

pub mod analysis;
pub mod cpu;
pub mod cuts;
pub mod gpu;

use std::collections::HashMap;

use crate::stages::FrameKey;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{Stage, Window};
use crate::frame::Frame;
use crate::gpu::{GpuContext, GpuFrame};
use analysis::{Correction, Geometry, PairFit, Thumb};

/// Largest allowed difference between the GPU and CPU results: absolute for values up to 1,
/// relative above. Both backends compute bit-identical thumbnails and hence identical node
/// corrections; only the per-pixel interpolation and `g * in + o` differ, by the GPU's freedom
/// to fuse multiply-adds: a few ulp. 1e-5 is a sixth of a 16-bit code value. Seen on lavapipe:
/// about 1e-7.
pub const GPU_TOLERANCE: f32 = 1e-5;

/// Parameters of `deflicker`. Cost: the per-pixel part is one read and one write per sample
/// with a bilinear interpolation of the correction (like `levels`); the analysis reads each
/// frame once more (block means; on the GPU every frame of the window, each output frame) and
/// is otherwise independent of the frame size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeflickerParams {
    /// Frames on each side of the restored one that set its target exposure (the temporal
    /// radius). Longer follows slow drift less and removes more of it; linear fades are kept at
    /// any length. Range 1..=48, default 12. Memory: `2 * window + 1` frames are held.
    pub window: usize,
    /// How much of the correction to apply: 0 leaves frames as they are, 1 applies it fully.
    /// Range 0..=1, default 1.
    pub strength: f64,
    /// `[columns, rows]` of the grid of regions whose gains are measured and interpolated
    /// smoothly; `[1, 1]` corrects the whole frame as one. More regions follow finer regional
    /// flicker but measure each from fewer pixels. Range 1..=16 each, default `[4, 3]`.
    /// Cost: negligible below 8x8.
    pub grid: [usize; 2],
    /// Measure and correct each channel separately (colour breathing), or one correction for
    /// all. Default true; no effect on monochrome.
    pub per_channel: bool,
    /// Fit a gain and an offset (lifted or sunk blacks, as in printing-light and log-scan
    /// flicker, where exposure is an offset in code values), or a gain only. Default true.
    pub offset: bool,
    /// A cut lies between two neighbours when `1 - correlation` of their motion-compensated
    /// luma thumbnails exceeds this; frames beyond a cut are not used. Lower finds more cuts.
    /// Range 0.05..=1 (1: never), default 0.5. See [`cuts`].
    pub cut_threshold: f64,
}

impl Default for DeflickerParams {
    fn default() -> Self {
        DeflickerParams {
            window: 12,
            strength: 1.0,
            grid: [4, 3],
            per_channel: true,
            offset: true,
            cut_threshold: 0.5,
        }
    }
}

impl DeflickerParams {
    pub fn validate(&self) -> Result<()> {
        if !(1..=48).contains(&self.window) {
            bail!(
                "deflicker.window = {} is out of range (valid: 1 to 48 frames on each side)",
                self.window
            );
        }
        if !(0.0..=1.0).contains(&self.strength) {
            bail!(
                "deflicker.strength = {} is out of range (valid: 0 to 1)",
                self.strength
            );
        }
        for (name, v) in ["columns", "rows"].iter().zip(self.grid) {
            if !(1..=16).contains(&v) {
                bail!("deflicker.grid {name} = {v} is out of range (valid: 1 to 16)");
            }
        }
        if !(0.05..=1.0).contains(&self.cut_threshold) {
            bail!(
                "deflicker.cut_threshold = {} is out of range (valid: 0.05 to 1)",
                self.cut_threshold
            );
        }
        Ok(())
    }
}

/// One restored frame's entry in the flicker curve.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CurvePoint {
    /// Position in output order among the points of its backend (0 for the first frame).
    pub index: usize,
    /// `"cpu"` or `"gpu"`: with `--check-gpu` every frame is restored by both, and each
    /// backend's points form a whole curve.
    pub backend: &'static str,
    /// What the analysis found for this frame.
    #[serde(flatten)]
    pub summary: analysis::Summary,
}

#[derive(Default)]
struct Cache {
    thumbs: HashMap<FrameKey, Arc<Thumb>>,
    pairs: HashMap<(u64, u64), Arc<PairFit>>,
    curve: Vec<CurvePoint>,
}

pub struct Deflicker {
    pub params: DeflickerParams,
    cache: Mutex<Cache>,
    /// Pair fits of an analysis (`restore --analysis`), by the thumbnails' content hashes.
    given: HashMap<(u64, u64), Arc<PairFit>>,
    /// Pairs fitted, and taken from the analysis, over the run.
    counts: [AtomicUsize; 2],
    /// `nitrate analyse`: the thumbnail of the frame measured last, the next one's `prev`.
    measured_last: Mutex<Option<Arc<Thumb>>>,
    /// Scratch buffers of the GPU reduction, kept between frames.
    gpu_scratch: Mutex<Option<gpu::Scratch>>,
}

impl Deflicker {
    pub fn new(params: DeflickerParams) -> Result<Self> {
        params.validate()?;
        Ok(Deflicker {
            params,
            cache: Mutex::new(Cache::default()),
            given: HashMap::new(),
            counts: Default::default(),
            measured_last: Mutex::new(None),
            gpu_scratch: Mutex::new(None),
        })
    }

    pub fn from_table(table: &toml::Table) -> Result<Self> {
        let params: DeflickerParams = table.clone().try_into().context(
            "invalid parameters for stage 'deflicker' \
             (keys: window, strength, grid, per_channel, offset, cut_threshold)",
        )?;
        Self::new(params)
    }

    /// The flicker curve so far: one point per restored frame and backend, in output order.
    pub fn curve(&self) -> Vec<CurvePoint> {
        self.lock().curve.clone()
    }

    /// The curve of one backend (`"cpu"` or `"gpu"`).
    pub fn curve_of(&self, backend: &str) -> Vec<CurvePoint> {
        self.lock()
            .curve
            .iter()
            .filter(|p| p.backend == backend)
            .cloned()
            .collect()
    }

    /// The curve as JSON for the run's record, from the backend that restored the frames
    /// (the GPU's when there are GPU points, as with `--check-gpu`), and how many pair fits
    /// were made and taken from an analysis:
    /// `{"measured": [...], "corrected": [...], "points": [...], "pairs_fitted": n,
    /// "pairs_from_analysis": n}`.
    pub fn curve_json(&self) -> serde_json::Value {
        let gpu = self.curve_of("gpu");
        let curve = if gpu.is_empty() {
            self.curve_of("cpu")
        } else {
            gpu
        };
        serde_json::json!({
            "measured": curve.iter().map(|p| p.summary.measured).collect::<Vec<_>>(),
            "corrected": curve.iter().map(|p| p.summary.corrected).collect::<Vec<_>>(),
            "points": curve,
            "pairs_fitted": self.counts[0].load(Ordering::Relaxed),
            "pairs_from_analysis": self.counts[1].load(Ordering::Relaxed),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Thumbnails of the window's frames (temporal order), from the cache where it has them.
    fn cpu_thumbs(&self, frames: &[&Frame]) -> Vec<Arc<Thumb>> {
        let keys: Vec<FrameKey> = frames.iter().map(|f| FrameKey::of(f)).collect();
        let mut have: Vec<Option<Arc<Thumb>>> = {
            let cache = self.lock();
            keys.iter().map(|k| cache.thumbs.get(k).cloned()).collect()
        };
        for (i, f) in frames.iter().enumerate() {
            if have[i].is_none() {
                let geo = Geometry::of(f.width, f.height, f.planes);
                have[i] = Some(Arc::new(Thumb::from_sums(geo, &cpu::block_sums(f, &geo))));
            }
        }
        let thumbs: Vec<Arc<Thumb>> = have.into_iter().map(|t| t.expect("filled")).collect();
        let mut cache = self.lock();
        cache.thumbs.clear();
        for (k, t) in keys.into_iter().zip(&thumbs) {
            cache.thumbs.insert(k, t.clone());
        }
        thumbs
    }

    /// The correction for the centre of `thumbs` (temporal order), recording the curve point.
    fn analyse(&self, thumbs: &[Arc<Thumb>], center: usize, backend: &'static str) -> Correction {
        let p = &self.params;
        let cfg = analysis::Config::from(p);
        let known = self.lock().pairs.clone();
        let mut fetched: HashMap<(u64, u64), Arc<PairFit>> = HashMap::new();
        let mut link = |i: usize, j: usize| {
            let key = (thumbs[i].hash, thumbs[j].hash);
            fetched
                .entry(key)
                .or_insert_with(|| {
                    if let Some(k) = known.get(&key) {
                        return k.clone();
                    }
                    if let Some(g) = self.given.get(&key) {
                        self.counts[1].fetch_add(1, Ordering::Relaxed);
                        return g.clone();
                    }
                    self.counts[0].fetch_add(1, Ordering::Relaxed);
                    Arc::new(analysis::fit_pair(&thumbs[i], &thumbs[j], &cfg))
                })
                .clone()
        };
        let thumb_refs: Vec<&Thumb> = thumbs.iter().map(|t| t.as_ref()).collect();
        let (correction, summary) = analysis::correction(&thumb_refs, center, &mut link, &cfg);

        let mut cache = self.lock();
        // Keep the fits this window used: the next window needs all but a few of them.
        cache.pairs = fetched;
        let index = cache.curve.iter().filter(|p| p.backend == backend).count();
        cache.curve.push(CurvePoint {
            index,
            backend,
            summary,
        });
        correction
    }
}

impl Stage for Deflicker {
    fn name(&self) -> &'static str {
        "deflicker"
    }

    fn temporal_radius(&self) -> usize {
        self.params.window
    }

    /// The frame's mean per channel (the flicker curve before correction) and the pair fit
    /// from the frame before (a cut, or the photometric change per node), keyed by the
    /// thumbnails' content hashes: `{"key", "mean": [..], "prev_key", "cut", "fit"}`.
    fn measure(&self, prev: Option<&Frame>, frame: &Frame) -> Result<Option<serde_json::Value>> {
        let thumb = |f: &Frame| {
            let geo = Geometry::of(f.width, f.height, f.planes);
            Arc::new(Thumb::from_sums(geo, &cpu::block_sums(f, &geo)))
        };
        let mut last = self.measured_last.lock().unwrap_or_else(|p| p.into_inner());
        let a = match (prev, last.take()) {
            (None, _) => None,
            (Some(_), Some(a)) => Some(a),
            (Some(p), None) => Some(thumb(p)),
        };
        let b = thumb(frame);
        let n = b.geo.len();
        let mean: Vec<f64> = b
            .means
            .chunks(n.max(1))
            .map(|plane| plane.iter().map(|&v| v as f64).sum::<f64>() / n.max(1) as f64)
            .collect();
        let mut m = serde_json::json!({ "key": format!("{:016x}", b.hash), "mean": mean });
        if let Some(a) = a {
            let fit = analysis::fit_pair(&a, &b, &analysis::Config::from(&self.params));
            m["prev_key"] = format!("{:016x}", a.hash).into();
            m["cut"] = fit.cut.into();
            m["fit"] = serde_json::to_value(&fit)?;
        }
        *last = Some(b);
        Ok(Some(m))
    }

    fn use_measures(&mut self, measures: &[serde_json::Value]) -> Result<()> {
        let key = |v: &serde_json::Value| v.as_str().and_then(|s| u64::from_str_radix(s, 16).ok());
        for (i, m) in measures.iter().enumerate() {
            let (Some(k), Some(pk), Some(fit)) =
                (key(&m["key"]), key(&m["prev_key"]), m.get("fit"))
            else {
                continue;
            };
            let fit: PairFit = serde_json::from_value(fit.clone())
                .with_context(|| format!("deflicker: analysis measure {i} is not a pair fit"))?;
            self.given.insert((pk, k), Arc::new(fit));
        }
        Ok(())
    }

    /// The per-pixel part needs no neighbours, but the correction is measured on the whole
    /// (reduced) frame: tiles must share one analysis of the full frame to be exact.
    fn spatial_halo(&self) -> usize {
        0
    }

    fn gpu_tolerance(&self) -> f32 {
        GPU_TOLERANCE
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    /// The flicker curve before and after ([`Deflicker::curve_json`]).
    fn report(&self) -> Option<serde_json::Value> {
        Some(self.curve_json())
    }

    fn run_cpu(&self, window: &Window<'_, Frame>) -> Result<Frame> {
        let (frames, center) = window.in_order();
        super::check_shapes(
            "deflicker",
            frames.iter().map(|f| (f.width, f.height, f.planes)),
        )?;
        let thumbs = self.cpu_thumbs(&frames);
        let correction = self.analyse(&thumbs, center, "cpu");
        Ok(cpu::corrected(window.center, &correction))
    }

    fn run_gpu(&self, gpu: &GpuContext, window: &Window<'_, GpuFrame>) -> Result<GpuFrame> {
        let (frames, center) = window.in_order();
        super::check_shapes(
            "deflicker",
            frames.iter().map(|f| (f.width, f.height, f.planes)),
        )?;
        let thumbs = {
            let mut scratch = self.gpu_scratch.lock().unwrap_or_else(|p| p.into_inner());
            gpu::thumbs(gpu, &frames, &mut scratch)?
        };
        let thumbs: Vec<Arc<Thumb>> = thumbs.into_iter().map(Arc::new).collect();
        let correction = self.analyse(&thumbs, center, "gpu");
        gpu::apply(gpu, window.center, &correction)
    }
}
