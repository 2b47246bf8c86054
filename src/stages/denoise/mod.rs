//! `denoise`: motion-compensated spatio-temporal denoising, with grain kept or re-synthesised.
//!
//! Grain is part of a film's look; scanner noise and the heavy grain of duplication
//! generations are not. The stage measures the noise, takes it out, and gives back as much
//! grain as asked (`keep_grain` of what it removed, or new grain matched to what it measured,
//! `regrain`).
//!
//! # Per output frame
//!
//! 1. **Shot and motion**: the neighbours up to `radius` frames away that lie in the centre's
//!    shot ([`cuts`], on the coarsest motion level; a neighbour beyond a cut is not used, nor
//!    any beyond it) are compensated onto the centre with [`crate::motion`]. The motion is
//!    estimated on half-resolution luma: averaging four samples halves the grain that block
//!    matching would otherwise follow, and costs a quarter; the luma is quantised to 1/1024
//!    steps, which makes every sum of the search exact, so the CPU runs it in integers
//!    ([`search`], the same fields as `motion::cpu::estimate`). The field is scaled up and
//!    applied at full resolution by `warp` (or, with `per_pixel_motion`, `compensate`) to the
//!    neighbour in the planes it is denoised in. On the CPU each frame's pyramid, opponent
//!    planes and block statistics (step 2) are made once and kept while it is in a window.
//! 2. **Noise** ([`noise`]): the noise-level function (standard deviation against intensity,
//!    [`noise::BINS`] bins, per channel) and the grain size, from the flattest blocks of the
//!    centre and its nearest same-shot neighbours (raw, not compensated) and of their
//!    differences (where still picture cancels). Measured per window, so it follows the shot
//!    and a frame's result depends only on its window: chunked runs equal a whole run.
//!    `sigma` and `grain_size` override the measurement. Recorded in the report.
//! 3. **Temporal** ([`cpu::temporal`]): each compensated neighbour is averaged into the centre
//!    with a weight that is 1 where its local (3x3) difference from the centre is what noise
//!    explains and falls to 0 where it is not (motion compensation missed, occlusion, a cut
//!    the detector let through), so moving picture is not smeared. The factor by which this
//!    cut the noise variance is kept per sample.
//! 4. **Spatial** ([`cpu::filter_patch`], [`cpu::gather`]): overlapping 8x8 patches (every
//!    `step` pixels) of the temporal average are shrunk in the DCT domain by an empirical
//!    Wiener gain, the noise of each coefficient set by the noise-level function at the patch
//!    mean, the variance left by step 3 and the grain's spectrum (correlated grain has more
//!    power at low frequencies than white noise). The patch mean is never changed. Patches
//!    are aggregated with weights, in a fixed order.
//! 5. **Grain** ([`cpu::finish`]): `out = x + keep_grain * (in - x) + regrain * g`, where `g`
//!    is white gaussian noise from a hash of (`seed`, frame number, channel, position) blurred
//!    by the measured grain size and scaled by the noise-level function at the output level.
//!
//! Why this design (V-BM4D family, without the block search): the motion field already
//! finds each patch's match in the neighbours, so the temporal dimension of the 3D transform
//! reduces to its DC term with outliers rejected per sample (step 3), and the spatial
//! transform of the result (step 4) removes what is left; both are fixed-size, search-free
//! and map one invocation per sample or per patch onto the GPU.
//!
//! Known limits: grain on a pan faster than the motion search reach is denoised spatially
//! only; noise that varies across the frame at one intensity (vignetted scanners) is taken
//! at its 10th percentile; regrain is not correlated between channels.
//!
//! CPU reference: [`cpu`] and [`noise`]; shaders: `shaders/denoise_*.wgsl` (and
//! `shaders/motion_*.wgsl`); parity tolerance: [`GPU_TOLERANCE`].

pub mod cpu;
pub mod gpu;
pub mod noise;
pub mod search;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use rayon::prelude::*;

use super::{check_shapes, FrameKey, Stage, Window};
use crate::frame::Frame;
use crate::gpu::{GpuContext, GpuFrame};
use crate::motion::{self, Field, MotionParams};
use crate::stages::deflicker::cuts::{self, Thumbnail};
use noise::PlaneNoise;

/// Largest difference allowed between the GPU and CPU outputs. The motion fields agree
/// exactly (the search's sums are exact on quantised luma, [`search`]) and the noise measurement comes from the same block
/// statistics; what differs is rounding (fused multiply-adds, `exp`/`ln`/`cos` of the grain),
/// a few 1e-6 after the DCT round trip. A near-tie in the block statistics' percentile can
/// move the noise estimate by a little more: 1e-3 (a quarter of an 8-bit code value) holds
/// that; `tests/denoise.rs` also holds the RMS difference to 1e-5. Seen on lavapipe: 7.7e-7
/// (`restore --check-gpu`, 12 frames of degraded clean/bikes).
pub const GPU_TOLERANCE: f32 = 1e-3;

/// Parameters of `denoise`. Cost: motion estimation against up to `2 * radius` neighbours on
/// half-resolution luma, a handful of per-sample passes, and two 8x8 DCTs per patch (64
/// patches of a `step` of 1 per sample, 4 at the default `step` of 4). At the defaults on the
/// CPU (one thread, 640x272 with `nitrate degrade --defects grain`) the motion search, the
/// warps and the DCT shrinkage take about a fifth of the time each, the temporal step an
/// eighth, the rest goes to each frame's analysis, noise statistics and the patch gather.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DenoiseParams {
    /// Multiplier of the measured noise level the denoiser removes. Range 0..4, default 1; 0
    /// leaves the picture as it is, above 1 also smooths fine texture. Cost: none.
    pub strength: f32,
    /// Fraction of the removed grain given back: 0 removes it, 1 returns the input. Range
    /// 0..1, default 0 (0.2 to 0.5 reduces grain without erasing it). Cost: none.
    pub keep_grain: f32,
    /// Synthetic grain added, in units of the measured grain (its standard deviation against
    /// intensity per channel, and its size): 1 matches the input's grain. Range 0..2, default
    /// 0 (off). Deterministic per frame number and `seed`. Cost: about one more pass per
    /// sample, more for large grain.
    pub regrain: f32,
    /// Seed of the synthetic grain. Default 1.
    pub seed: u64,
    /// Frames on each side averaged in: 0 (spatial only), 1 or 2. Default 2. Cost: a motion
    /// search, a warp and a share of the temporal step per neighbour: with 1 a CPU run takes
    /// about 15% less time end to end and scores 0.2 dB lower (1.04 s against 1.23 s, 43.16
    /// against 43.35 dB PSNR, on clean/bikes with `nitrate degrade --defects grain`, 2 cores:
    /// `benches/denoise_speed.sh`).
    pub radius: usize,
    /// The noise standard deviation in code values, the same at every level and channel,
    /// instead of the measured one. Range 0..0.5, default none (measured).
    pub sigma: Option<f32>,
    /// The grain size (pixels of gaussian blur of white noise) instead of the measured one.
    /// Range 0..3, default none (measured).
    pub grain_size: Option<f32>,
    /// Choose each pixel's motion vector among the neighbouring blocks' by matching a 3x3
    /// patch (`motion` `compensate`: sharper at the edges of moving objects), rather than
    /// interpolating the block vectors (`warp`). Default false: the temporal weights already
    /// reject samples that do not match, and the choice costs about half the stage's time
    /// on the CPU.
    pub per_pixel_motion: bool,
    /// Denoise colour in opponent planes (the mean of R, G, B, red against blue, green against
    /// magenta) rather than R, G, B: grain the dye layers share gathers in the first plane, and
    /// each plane is shrunk by its own measured noise. Default true; no effect on monochrome.
    /// Cost: two passes per sample.
    pub opponent: bool,
    /// Pixels between overlapping 8x8 patches of the spatial filter. Range 1..8, default 4.
    /// Cost: the spatial filter's share grows with `(8 / step)²`; 2 is a little cleaner and
    /// four times slower there.
    pub step: usize,
    /// A cut lies between two frames when `1 - correlation` of their registered luma
    /// thumbnails exceeds this; frames beyond a cut are not used. Range 0.05..1 (1: never),
    /// default 0.5.
    pub cut_threshold: f64,
    /// Motion estimation knobs (on half-resolution luma), see [`MotionParams`]; defaults as
    /// there.
    pub motion: MotionParams,
}

impl Default for DenoiseParams {
    fn default() -> Self {
        DenoiseParams {
            strength: 1.0,
            keep_grain: 0.0,
            regrain: 0.0,
            seed: 1,
            radius: 2,
            sigma: None,
            grain_size: None,
            per_pixel_motion: false,
            opponent: true,
            step: 4,
            cut_threshold: 0.5,
            motion: MotionParams::default(),
        }
    }
}

impl DenoiseParams {
    pub fn validate(&self) -> Result<()> {
        let range = |key: &str, v: f32, lo: f32, hi: f32| -> Result<()> {
            if !(lo..=hi).contains(&v) {
                bail!("denoise.{key} = {v} is out of range (valid: {lo} to {hi})");
            }
            Ok(())
        };
        range("strength", self.strength, 0.0, 4.0)?;
        range("keep_grain", self.keep_grain, 0.0, 1.0)?;
        range("regrain", self.regrain, 0.0, 2.0)?;
        if self.radius > 2 {
            bail!(
                "denoise.radius = {} is out of range (valid: 0, 1 or 2)",
                self.radius
            );
        }
        if let Some(s) = self.sigma {
            range("sigma", s, 0.0, 0.5)?;
        }
        if let Some(g) = self.grain_size {
            range("grain_size", g, 0.0, noise::MAX_GRAIN)?;
        }
        if !(1..=8).contains(&self.step) {
            bail!(
                "denoise.step = {} is out of range (valid: 1 to 8)",
                self.step
            );
        }
        if !(0.05..=1.0).contains(&self.cut_threshold) {
            bail!(
                "denoise.cut_threshold = {} is out of range (valid: 0.05 to 1)",
                self.cut_threshold
            );
        }
        self.motion.validate("denoise.motion")
    }
}

/// Widest regrain blur kernel radius.
pub const MAX_TAP_RADIUS: usize = 9;

/// What the per-sample passes need of one plane's noise.
#[derive(Clone, Debug, PartialEq)]
pub struct PlaneModel {
    /// Noise standard deviation per intensity bin.
    pub sigma: [f32; noise::BINS],
    /// Relative noise power of each 8x8 DCT coefficient ([`noise::dct_noise_shape`]).
    pub shape: [f32; 64],
    /// Standard deviation of the 3x3 mean of the difference of two frames' noise, per unit
    /// noise standard deviation.
    pub diff_sd: f32,
    /// The regrain blur kernel (sums to 1; odd length).
    pub taps: Vec<f32>,
    /// Scale that brings noise blurred by `taps` in both directions back to unit variance.
    pub tap_scale: f32,
}

impl PlaneModel {
    pub fn new(n: &PlaneNoise) -> Self {
        let g = n.grain_size;
        let rho = noise::rho_of(g);
        let taps: Vec<f32> = if g < 0.05 {
            vec![1.0]
        } else {
            let r = ((3.0 * g).ceil() as usize).clamp(1, MAX_TAP_RADIUS) as i32;
            let k: Vec<f32> = (-r..=r)
                .map(|i| (-(i * i) as f32 / (2.0 * g * g)).exp())
                .collect();
            let s: f32 = k.iter().sum();
            k.iter().map(|v| v / s).collect()
        };
        let k2: f32 = taps.iter().map(|v| v * v).sum();
        PlaneModel {
            sigma: n.sigma,
            shape: noise::dct_noise_shape(g),
            diff_sd: (2.0 * noise::mean3_variance(rho)).sqrt(),
            taps,
            tap_scale: 1.0 / k2,
        }
    }

    /// No noise measured or given: nothing to take out (and no grain to match).
    pub fn silent(&self) -> bool {
        self.sigma.iter().all(|&s| s <= 0.0)
    }
}

/// One frame's entry in the report: the noise measured (or given) and the neighbours used.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NoiseRecord {
    /// Sequence frame number, where the frame has one.
    pub frame: Option<i64>,
    /// `"cpu"` or `"gpu"` (with `--check-gpu` both restore every frame).
    pub backend: &'static str,
    /// Neighbours in the centre's shot that were averaged in.
    pub neighbours: usize,
    /// `"measured"`, or which values came from the parameters.
    pub source: &'static str,
    /// What the planes are: `"R, G, B"` (or the one grey plane), or the opponent planes
    /// `"(R+G+B)/3, (R-B)/2, (R-2G+B)/4"`.
    pub space: &'static str,
    /// Per plane, in that space (the second and third opponent planes binned by the first's
    /// level).
    pub planes: Vec<PlaneNoise>,
}

/// The planes' names in the report.
fn space_name(opponent: bool, planes: usize) -> &'static str {
    match (opponent, planes) {
        (true, _) => "(R+G+B)/3, (R-B)/2, (R-2G+B)/4",
        (false, 3) => "R, G, B",
        _ => "as stored",
    }
}

pub struct Denoise {
    pub params: DenoiseParams,
    records: Mutex<Vec<NoiseRecord>>,
    cpu_cache: Mutex<CpuCache>,
}

/// A window's neighbours in temporal order with their side and distance, nearest first per
/// side: `(before?, distance from the centre)`.
fn slots<'a, T>(window: &Window<'a, T>, radius: usize) -> Vec<(bool, usize, &'a T)> {
    let mut out = Vec::new();
    for (k, f) in window.before.iter().take(radius).enumerate() {
        out.push((true, k, *f));
    }
    for (k, f) in window.after.iter().take(radius).enumerate() {
        out.push((false, k, *f));
    }
    out
}

/// The centre and the nearest neighbour on each side where in use, in temporal order: what
/// the noise is measured on (each frame, and the pairs of neighbouring frames).
fn in_time_order<'a, T>(c: &'a T, slots: &[(bool, usize, &'a T)], used: &[bool]) -> Vec<&'a T> {
    let pick = |before: bool| {
        let mut v: Vec<(usize, &'a T)> = slots
            .iter()
            .zip(used)
            .filter(|(s, &u)| u && s.0 == before && s.1 == 0)
            .map(|(s, _)| (s.1, s.2))
            .collect();
        v.sort_by_key(|&(d, _)| d);
        v.into_iter().map(|(_, f)| f)
    };
    let mut out: Vec<&'a T> = pick(true).collect();
    out.reverse();
    out.push(c);
    out.extend(pick(false));
    out
}

/// What the CPU path keeps of a frame between windows (each frame is in up to `2 * radius + 1`
/// of them): its opponent planes, motion inputs, thumbnail and block statistics.
struct CpuFrameData {
    planes: Option<Frame>,
    motion: Option<CpuMotion>,
    thumb: Option<Thumbnail>,
    stats: noise::PlaneStats,
}

/// The CPU path's analysis of the frames of the current window, and of their neighbouring
/// pairs' differences; entries leave when their frames leave the window.
#[derive(Default)]
struct CpuCache {
    frames: HashMap<FrameKey, Arc<CpuFrameData>>,
    pairs: HashMap<(FrameKey, FrameKey), Arc<noise::PlaneStats>>,
}

/// Motion-compensation inputs of one frame: its full-resolution luma, and the pyramid of its
/// half-resolution luma.
struct CpuMotion {
    luma: motion::cpu::Plane,
    half: motion::cpu::Pyramid,
    /// `half` in integer units, for [`search::estimate`].
    int: search::IntPyramid,
}

/// The field found on half-resolution luma, for the full frame: vectors and blocks doubled.
pub fn scale_field(half: &Field, width: usize, height: usize) -> Field {
    Field {
        width,
        height,
        block: half.block * 2,
        cols: half.cols,
        rows: half.rows,
        vx: half.vx.iter().map(|v| v * 2.0).collect(),
        vy: half.vy.iter().map(|v| v * 2.0).collect(),
    }
}

/// The motion knobs as the full-resolution warp sees the scaled field.
pub fn full_params(mp: &MotionParams) -> MotionParams {
    MotionParams {
        block: mp.block * 2,
        ..mp.clone()
    }
}

impl Denoise {
    /// Frames on each side averaged in for a `w` x `h` frame: none where the frame is too
    /// small for a half-resolution pyramid (denoised spatially only).
    fn radius_for(&self, w: usize, h: usize) -> usize {
        if w >= 16 && h >= 16 {
            self.params.radius
        } else {
            0
        }
    }

    pub fn new(params: DenoiseParams) -> Result<Self> {
        params.validate()?;
        Ok(Denoise {
            params,
            records: Mutex::new(Vec::new()),
            cpu_cache: Mutex::new(CpuCache::default()),
        })
    }

    pub fn from_table(table: &toml::Table) -> Result<Self> {
        let params: DenoiseParams = table.clone().try_into().context(
            "invalid parameters for stage 'denoise' (keys: strength, keep_grain, regrain, seed, \
             radius, sigma, grain_size, per_pixel_motion, opponent, step, cut_threshold, motion)",
        )?;
        Self::new(params)
    }

    /// The noise records so far, in output order (both backends' with `--check-gpu`).
    pub fn records(&self) -> Vec<NoiseRecord> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Which of `slots` lie in the centre's shot: a neighbour only if the one between it and
    /// the centre does too, and no cut lies between them.
    fn same_shot(&self, center: &Thumbnail, slots: &[(bool, usize, Thumbnail)]) -> Vec<bool> {
        let t = self.params.cut_threshold;
        // Each slot against the frame before it on its side (the centre for the nearest),
        // all compared at once.
        let before: Vec<&Thumbnail> = (0..slots.len())
            .map(|i| {
                let (side, d, _) = &slots[i];
                slots
                    .iter()
                    .find(|s| s.0 == *side && s.1 + 1 == *d)
                    .map_or(center, |s| &s.2)
            })
            .collect();
        let cut: Vec<bool> = (0..slots.len())
            .into_par_iter()
            .map(|i| cuts::is_cut(&cuts::compare(before[i], &slots[i].2), t))
            .collect();
        let mut keep = vec![false; slots.len()];
        for side in [true, false] {
            let mut ok = true;
            let mut side_slots: Vec<usize> =
                (0..slots.len()).filter(|&i| slots[i].0 == side).collect();
            side_slots.sort_by_key(|&i| slots[i].1);
            for i in side_slots {
                ok = ok && !cut[i];
                keep[i] = ok;
            }
        }
        keep
    }

    /// The noise of each plane as measured, with the overrides. A `sigma` given for R, G and B
    /// becomes, in opponent planes, `sigma / √3`, `sigma / √2` and `sigma * √(3/8)` (the
    /// planes' noise for independent noise of `sigma` in each channel).
    fn noise_of(&self, measured: Vec<PlaneNoise>, opp: bool) -> (Vec<PlaneNoise>, &'static str) {
        let p = &self.params;
        let source = match (p.sigma, p.grain_size) {
            (None, None) => "measured",
            (Some(_), None) => "sigma from parameters, grain size measured",
            (None, Some(_)) => "sigma measured, grain size from parameters",
            (Some(_), Some(_)) => "sigma and grain size from parameters",
        };
        let scale = |pi: usize| match (opp, pi) {
            (false, _) => 1.0,
            (true, 0) => (1.0f32 / 3.0).sqrt(),
            (true, 1) => 0.5f32.sqrt(),
            (true, _) => (3.0f32 / 8.0).sqrt(),
        };
        let planes = measured
            .into_iter()
            .enumerate()
            .map(|(pi, mut n)| {
                if let Some(s) = p.sigma {
                    n.sigma = [s * scale(pi); noise::BINS];
                }
                if let Some(g) = p.grain_size {
                    n.grain_size = g;
                }
                n
            })
            .collect();
        (planes, source)
    }

    fn record(&self, r: NoiseRecord) {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(r);
    }

    fn cpu_motion(&self, f: &Frame) -> CpuMotion {
        let luma = motion::cpu::luma(f);
        let half = search::half_pyramid(&luma, &self.params.motion);
        CpuMotion {
            luma,
            int: search::IntPyramid::of(&half),
            half,
        }
    }

    /// What the stage needs of one frame in every window it is in.
    fn cpu_frame_data(&self, f: &Frame, opp: bool, with_motion: bool) -> CpuFrameData {
        let planes = opp.then(|| cpu::to_opponent(f));
        let motion = with_motion.then(|| self.cpu_motion(f));
        let thumb = motion.as_ref().map(|m| thumb_of(&m.half.levels));
        let stats = noise::frame_stats(planes.as_ref().unwrap_or(f), opp);
        CpuFrameData {
            planes,
            motion,
            thumb,
            stats,
        }
    }
}

fn thumb_of(levels: &[motion::cpu::Plane]) -> Thumbnail {
    let l = levels.last().expect("a level");
    Thumbnail::new(l.width, l.height, l.data.clone())
}

impl Stage for Denoise {
    fn name(&self) -> &'static str {
        "denoise"
    }

    fn temporal_radius(&self) -> usize {
        self.params.radius
    }

    fn spatial_halo(&self) -> usize {
        // Motion reach on half resolution, the compensation's block, the box and the patch.
        let m = &self.params.motion;
        2 * (m.search + 1) * (1 << (m.max_levels - 1)) + 4 * m.block + 1 + cpu::P
    }

    fn gpu_tolerance(&self) -> f32 {
        GPU_TOLERANCE
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    /// The noise measured per frame (noise-level function per channel, grain size).
    fn report(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "frames": self.records() }))
    }

    fn run_cpu(&self, window: &Window<'_, Frame>) -> Result<Frame> {
        let (frames, _) = window.in_order();
        check_shapes(
            "denoise",
            frames.iter().map(|f| (f.width, f.height, f.planes)),
        )?;
        let c = window.center;
        let (w, h) = (c.width, c.height);
        let radius = self.radius_for(w, h);
        let opp = self.params.opponent && c.planes == 3;
        let with_motion = radius > 0 && (!window.before.is_empty() || !window.after.is_empty());
        // Each frame's analysis, made once and kept while the frame is in a window.
        let keys: Vec<FrameKey> = frames.iter().map(|f| FrameKey::of(f)).collect();
        let datas: Vec<Arc<CpuFrameData>> = {
            let mut cache = self.cpu_cache.lock().unwrap_or_else(|p| p.into_inner());
            cache.frames.retain(|k, _| keys.contains(k));
            cache
                .pairs
                .retain(|(a, b), _| keys.contains(a) && keys.contains(b));
            let missing: Vec<usize> = (0..frames.len())
                .filter(|&i| !cache.frames.contains_key(&keys[i]))
                .collect();
            let made: Vec<CpuFrameData> = missing
                .par_iter()
                .map(|&i| self.cpu_frame_data(frames[i], opp, with_motion))
                .collect();
            for (i, d) in missing.into_iter().zip(made) {
                cache.frames.insert(keys[i], Arc::new(d));
            }
            keys.iter().map(|k| cache.frames[k].clone()).collect()
        };
        let entries: Vec<(FrameKey, &Frame, &CpuFrameData)> = keys
            .iter()
            .zip(&frames)
            .zip(&datas)
            .map(|((k, f), d)| (*k, *f, d.as_ref()))
            .collect();
        let centre_at = window.before.len();
        let ce = &entries[centre_at];
        // `slots` over the entries: before nearest first, then after nearest first.
        let ew = Window {
            before: (0..window.before.len())
                .map(|k| &entries[centre_at - 1 - k])
                .collect(),
            center: ce,
            after: (0..window.after.len())
                .map(|k| &entries[centre_at + 1 + k])
                .collect(),
        };
        let sl = slots(&ew, radius);
        let mp = &self.params.motion;
        let keep = if sl.is_empty() {
            Vec::new()
        } else {
            let thumbs: Vec<(bool, usize, Thumbnail)> = sl
                .iter()
                .map(|s| (s.0, s.1, s.2 .2.thumb.clone().expect("motion data")))
                .collect();
            self.same_shot(ce.2.thumb.as_ref().expect("motion data"), &thumbs)
        };
        // The neighbours side by side (each search and warp parallel within, too): fewer,
        // larger tasks keep the workers busy.
        let compensated: Vec<Option<Frame>> = sl
            .par_iter()
            .zip(&keep)
            .map(|(s, &keep)| {
                if !keep {
                    return None;
                }
                let (cm, nm) = (ce.2.motion.as_ref(), s.2 .2.motion.as_ref());
                let (cm, nm) = (cm.expect("motion data"), nm.expect("motion data"));
                let field = search::estimate(&cm.int, &nm.int, mp);
                let field = scale_field(&field, w, h);
                // In opponent planes the neighbour is compensated as such (the planes are
                // linear in R, G, B, so this equals compensating R, G, B and converting, up to
                // rounding).
                let src = s.2 .2.planes.as_ref().unwrap_or(s.2 .1);
                Some(if self.params.per_pixel_motion {
                    motion::cpu::compensate(src, &field, &cm.luma, &nm.luma)
                } else {
                    motion::cpu::warp(src, &field)
                })
            })
            .collect();
        let used: Vec<bool> = compensated.iter().map(Option::is_some).collect();
        let warped: Vec<Frame> = compensated.into_iter().flatten().collect();
        let raw = in_time_order(ce, &sl, &used);
        // Block statistics of the frames and of each neighbouring pair, kept between windows.
        let spatial: Vec<&noise::PlaneStats> = raw.iter().map(|e| &e.2.stats).collect();
        let pairs: Vec<Arc<noise::PlaneStats>> = {
            let todo: Vec<(FrameKey, FrameKey)> =
                raw.windows(2).map(|p| (p[0].0, p[1].0)).collect();
            let mut cache = self.cpu_cache.lock().unwrap_or_else(|p| p.into_inner());
            let missing: Vec<usize> = (0..todo.len())
                .filter(|&i| !cache.pairs.contains_key(&todo[i]))
                .collect();
            let made: Vec<noise::PlaneStats> = missing
                .iter()
                .map(|&i| {
                    let (a, b) = (raw[i], raw[i + 1]);
                    let (fa, fb) = (
                        a.2.planes.as_ref().unwrap_or(a.1),
                        b.2.planes.as_ref().unwrap_or(b.1),
                    );
                    noise::pair_stats(fa, fb, opp)
                })
                .collect();
            for (i, d) in missing.into_iter().zip(made) {
                cache.pairs.insert(todo[i], Arc::new(d));
            }
            todo.iter().map(|k| cache.pairs[k].clone()).collect()
        };
        let (planes, source) = self.noise_of(
            noise::estimate_from(
                &spatial,
                &pairs.iter().map(|p| p.as_ref()).collect::<Vec<_>>(),
            ),
            opp,
        );
        let out = if opp {
            let ct = ce.2.planes.as_ref().expect("opponent planes");
            cpu::from_opponent(&denoise_cpu(ct, &warped, &planes, &self.params, true))
        } else {
            denoise_cpu(c, &warped, &planes, &self.params, false)
        };
        self.record(NoiseRecord {
            frame: c.meta.number,
            backend: "cpu",
            neighbours: warped.len(),
            source,
            space: space_name(opp, c.planes),
            planes,
        });
        Ok(out)
    }

    fn run_gpu(&self, gpu: &GpuContext, window: &Window<'_, GpuFrame>) -> Result<GpuFrame> {
        let (frames, _) = window.in_order();
        check_shapes(
            "denoise",
            frames.iter().map(|f| (f.width, f.height, f.planes)),
        )?;
        let c = window.center;
        let (w, h) = (c.width, c.height);
        let radius = self.radius_for(w, h);
        let sl = slots(window, radius);
        let mp = &self.params.motion;
        let opp = self.params.opponent && c.planes == 3;
        let mut warped: Vec<GpuFrame> = Vec::new();
        let mut used = vec![false; sl.len()];
        if !sl.is_empty() {
            let cm = gpu::Motion::of(gpu, c, mp)?;
            let mut nms = Vec::with_capacity(sl.len());
            for s in &sl {
                nms.push(gpu::Motion::of(gpu, s.2, mp)?);
            }
            let mut thumbs = Vec::with_capacity(sl.len());
            for (s, m) in sl.iter().zip(&nms) {
                thumbs.push((s.0, s.1, m.thumbnail(gpu)?));
            }
            let keep = self.same_shot(&cm.thumbnail(gpu)?, &thumbs);
            for (i, s) in sl.iter().enumerate() {
                if keep[i] {
                    let pp = self.params.per_pixel_motion;
                    // Compensated in the planes it is denoised in, as on the CPU.
                    if opp {
                        let o = gpu::opponent(gpu, s.2, true)?;
                        warped.push(gpu::compensate(gpu, &cm, &nms[i], &o, mp, pp)?);
                        gpu.recycle(o);
                    } else {
                        warped.push(gpu::compensate(gpu, &cm, &nms[i], s.2, mp, pp)?);
                    }
                    used[i] = true;
                }
            }
        }
        let raw = in_time_order(c, &sl, &used);
        let (out, planes, source) = if opp {
            let mut raw_t = Vec::with_capacity(raw.len());
            for f in &raw {
                raw_t.push(gpu::opponent(gpu, f, true)?);
            }
            let measured = gpu::estimate_noise(gpu, &raw_t.iter().collect::<Vec<_>>(), true)?;
            let (planes, source) = self.noise_of(measured, true);
            let wt: Vec<GpuFrame> = std::mem::take(&mut warped);
            let ct = gpu::opponent(gpu, c, true)?;
            let out_t = gpu::denoise(gpu, &ct, &wt, &planes, &self.params, true)?;
            let out = gpu::opponent(gpu, &out_t, false)?;
            for f in raw_t.into_iter().chain(wt).chain([ct, out_t]) {
                gpu.recycle(f);
            }
            (out, planes, source)
        } else {
            let measured = gpu::estimate_noise(gpu, &raw, false)?;
            let (planes, source) = self.noise_of(measured, false);
            let out = gpu::denoise(gpu, c, &warped, &planes, &self.params, false)?;
            (out, planes, source)
        };
        let neighbours = used.iter().filter(|&&u| u).count();
        for f in warped {
            gpu.recycle(f);
        }
        self.record(NoiseRecord {
            frame: c.meta.number,
            backend: "gpu",
            neighbours,
            source,
            space: space_name(opp, c.planes),
            planes,
        });
        Ok(out)
    }
}

/// Denoise the centre `c` with its compensated neighbours `nb` and the noise of each plane:
/// steps 3 to 5 of the module documentation. With `first_level` (opponent planes) the noise
/// of every plane is looked up at the first plane's level.
pub fn denoise_cpu(
    c: &Frame,
    nb: &[Frame],
    noise: &[PlaneNoise],
    p: &DenoiseParams,
    first_level: bool,
) -> Frame {
    let (w, h) = (c.width, c.height);
    let models: Vec<PlaneModel> = noise.iter().map(PlaneModel::new).collect();
    let lp = |pi: usize| if first_level { 0 } else { pi };
    // A silent plane is left as it is; as a level it reads as the centre (what the temporal
    // and spatial steps give with no noise).
    let temporal: Vec<Option<(Vec<f32>, Vec<f32>)>> = (0..c.planes)
        .into_par_iter()
        .map(|pi| {
            (!models[pi].silent()).then(|| {
                let nbp: Vec<&[f32]> = nb.iter().map(|f| f.plane(pi)).collect();
                cpu::temporal(
                    c.plane(pi),
                    &nbp,
                    c.plane(lp(pi)),
                    w,
                    h,
                    &models[pi],
                    p.strength,
                )
            })
        })
        .collect();
    let avg = |pi: usize| {
        temporal[pi]
            .as_ref()
            .map_or(c.plane(pi), |t| t.0.as_slice())
    };
    let den: Vec<Option<Vec<f32>>> = (0..c.planes)
        .into_par_iter()
        .map(|pi| {
            temporal[pi].as_ref().map(|(y, f)| {
                let patches =
                    cpu::patches(y, f, avg(lp(pi)), w, h, p.step, &models[pi], p.strength);
                cpu::gather(&patches, w, h, p.step)
            })
        })
        .collect();
    let x = |pi: usize| den[pi].as_deref().unwrap_or(c.plane(pi));
    let finished: Vec<Option<Vec<f32>>> = models
        .par_iter()
        .enumerate()
        .map(|(pi, m)| {
            if m.silent() {
                return None;
            }
            let rows = if p.regrain > 0.0 {
                let key = cpu::grain_key(p.seed, c.meta.number.unwrap_or(0), pi);
                cpu::grain_rows(key, w, h, m)
            } else {
                Vec::new()
            };
            Some(cpu::finish(
                c.plane(pi),
                x(pi),
                x(lp(pi)),
                &rows,
                w,
                h,
                m,
                p.keep_grain,
                p.regrain,
            ))
        })
        .collect();
    let mut out = c.clone();
    for (pi, o) in finished.iter().enumerate() {
        if let Some(o) = o {
            out.plane_mut(pi).copy_from_slice(o);
        }
    }
    out
}
