//! `upscale`: super-resolution by 2, 4 or any rational factor, that invents nothing.
//!
//! Model: each source sample is the average of the picture over its pixel (an area-sampling
//! PSF). Three methods, each one step further:
//!
//! - `lanczos`: separable Lanczos-3 interpolation (borders reflected with the edge sample
//!   repeated), the honest baseline.
//! - `edge`: Lanczos blended toward a steering kernel (narrow across the local edge, long
//!   along it, from the luma structure tensor) where the structure is coherent, so diagonal
//!   edges do not staircase; then [`UpscaleParams::iterations`] steps of iterative
//!   back-projection: the estimate is area-decimated exactly back onto the source grid, its
//!   residual against the recorded samples is interpolated (Lanczos-3) onto the fine grid and
//!   added (step [`UpscaleParams::sharpen`]), and each result is clamped to the range of the
//!   4x4 source samples around it. The result agrees with what was recorded (decimated again
//!   it gives the source back, within the clamp), is sharper than Lanczos, and never leaves
//!   the local range of the samples: no overshoot, no ringing halo. Each step only moves the
//!   estimate toward agreeing with the samples; nothing else is added.
//! - `multi` (default): as `edge`, but in every back-projection step the neighbours within
//!   `radius` (same shot only: [`cuts`]), registered to the centre with sub-pixel motion
//!   ([`crate::motion`]), are back-projected too: each of their samples is compared with the
//!   current estimate blurred by the area PSF at the position it lands on, its residual
//!   weighted by its distance and by `exp(-(residual/tolerance)^2)` (occlusion and motion
//!   failure give large residuals and no weight), and the step is the weighted mean of these
//!   residuals and the centre's correction (weight `prior`). Where the neighbours disagree the
//!   result is `edge`'s.
//!
//! Limit of a single frame: texture beyond the source's Nyquist limit cannot be told from its
//! alias, and back-projection makes the result agree with the aliased samples; on the aliased
//! test picture of `tests/upscale.rs` `edge` scores 0.14 dB below Lanczos, and only registered
//! neighbours resolve it (`multi` 5.2 dB above Lanczos there).
//!
//! Tiling: the fine grid is processed in tiles of `tile` pixels with halos (motion is estimated
//! once on the whole source frame, which is small), so a 4K to 8K upscale needs only tile-sized
//! intermediates on the GPU; every pixel is computed from global coordinates, so tiled and
//! untiled outputs are bit-identical on the CPU.
//!
//! Measured (`benches/upscale_peers.sh ../shared/footage/clean/bikes`: 48 frames 640x272,
//! area-downscaled by 2 and upscaled back, PSNR against the clean frames): FFmpeg lanczos
//! 43.47 dB (SSIM 0.9919), FFmpeg bicubic 43.12, `lanczos` 43.49, `edge` 44.14 (0.9926),
//! `multi` 44.14 (0.9925): +0.67 dB over FFmpeg's lanczos. No sample of `edge` or `multi`
//! leaves the range of the 4x4 source samples around it; FFmpeg's lanczos leaves it by more
//! than 1/255 at 0.44% of the samples, by up to 21/255. On that clip block motion in quarter
//! pixels does not register the neighbours finely enough for their samples to add detail:
//! with the default tight `tolerance` they are mostly rejected and `multi` is within 0.01 dB
//! of `edge`; looser tolerances lose PSNR there (0.005: 43.98). On exactly registered
//! synthetic motion `multi` gains 5 dB over Lanczos (`tests/upscale.rs`).
//!
//! The output frame itself must fit the device's storage binding (a 4K RGB `f32` frame is
//! 153 MB); only the intermediates are tiled.
//!
//! CPU reference: [`cpu`]; shaders: `shaders/upscale_*.wgsl`; parity tolerance:
//! [`GPU_TOLERANCE`].

pub mod cpu;
pub mod gpu;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{check_shapes, Stage, Window};
use crate::frame::Frame;
use crate::gpu::{GpuContext, GpuFrame};
use crate::motion::{self, MotionParams};
use crate::stages::deflicker::cuts::{self, Thumbnail};

/// Largest GPU/CPU difference. The kernels do the CPU's arithmetic in its order; the GPU's
/// `exp`, `sqrt` and fused multiply-adds differ by a few ulp, and the robust weights and the
/// back-projection carry that along. Seen on lavapipe: about 1e-6; 1e-4 is a fifteenth of a
/// 10-bit code value.
pub const GPU_TOLERANCE: f32 = 1e-4;

/// Largest factor per axis.
pub const MAX_FACTOR: f64 = 8.0;

/// The three methods, from the baseline to multi-frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Lanczos,
    Edge,
    Multi,
}

/// Parameters of `upscale`. Cost: `lanczos` 36 multiply-adds per output sample; `edge` about
/// three times that plus `iterations` box blurs on the fine grid; `multi` adds motion
/// estimation against `2 * radius` neighbours (on the source frames) and 4 samples per
/// neighbour per output sample.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpscaleParams {
    /// Scale factor for both axes, 1..8 (2 and 4 are the usual; any value, e.g. 1.875 for
    /// 2048 to 3840). Default 2 unless `width` or `height` is given; not with them.
    pub factor: Option<f64>,
    /// Output width in pixels (a delivery size, e.g. 3840), at least the source width and at
    /// most 8 times it. Default none; the height follows the aspect unless given.
    pub width: Option<usize>,
    /// Output height in pixels, like `width`; the width follows the aspect unless given.
    pub height: Option<usize>,
    /// `lanczos` (Lanczos-3 baseline), `edge` (edge-directed single frame, deblurred without
    /// ringing) or `multi` (`edge` plus the registered samples of the neighbours). Default
    /// `multi`.
    pub method: Method,
    /// Frames each side used by `multi`. Range 1..2, default 2. Cost: motion estimation, and
    /// per back-projection iteration a fusion pass, per neighbour.
    pub radius: usize,
    /// Residual (code values) at which a neighbour's sample keeps 1/e of its weight; larger
    /// disagreements (occlusion, motion failure, registration off by a fraction of a pixel on
    /// an edge) are rejected. Range 0.001..0.5, default 0.002 (tight: block motion in quarter
    /// pixels is not precise enough on real footage for looser values to pay off; raise it
    /// for steady, well-registered material such as a scanned still pan).
    pub tolerance: f32,
    /// Weight of the centre frame's correction against the neighbours' samples (each up to 1)
    /// in each back-projection step. Range 0.05..10, default 1; larger trusts the neighbours
    /// less.
    pub prior: f32,
    /// Spread of a neighbour's sample over the fine grid, in output pixels. Range 0.25..2,
    /// default 0.6.
    pub spread: f32,
    /// Strength of the steering (edge-directed) kernel where the structure is coherent, for
    /// `edge` and `multi`. Range 0..1, default 0.1; 0 is Lanczos. Stronger keeps diagonal edges
    /// smoother but scores lower against clean frames.
    pub edge: f32,
    /// Step of each back-projection iteration (the residual against the recorded samples,
    /// interpolated back onto the fine grid), for `edge` and `multi`. Range 0..1, default 1;
    /// 0 turns back-projection off, and with it the neighbours of `multi`.
    pub sharpen: f32,
    /// Back-projection iterations for `edge` and `multi`; 0 turns back-projection off, and
    /// with it the neighbours of `multi`. Range 0..8, default 4 (`edge` on the bikes clip:
    /// 0, 1, 2, 3, 4, 6 give 43.37, 43.95, 44.09, 44.13, 44.14, 44.13 dB). Cost per
    /// iteration: an exact area decimation of the fine grid and a Lanczos-3 interpolation of
    /// the residual, about 45 multiply-adds per output sample at factor 2; for `multi` also a
    /// PSF blur and, per neighbour and output sample, 4 samples each with a distance weight
    /// and per plane a robust weight (an `exp` each). The tile halo grows by `4 * factor + 1`
    /// output pixels per iteration (plus the fusion's reach for `multi`).
    pub iterations: usize,
    /// Side of the square output tiles processed at once, in output pixels; 0 = the whole
    /// frame on the CPU, and on the GPU tiles sized to `gpu_memory_mb`. Range 0 or 64..16384,
    /// default 0. The output is the same whatever the tiling.
    pub tile: usize,
    /// Budget for the GPU's per-tile intermediates when `tile` is 0, in MiB (the input and
    /// output frames are not counted). Range 16..16384, default 256.
    pub gpu_memory_mb: usize,
    /// A cut lies between two frames when `1 - correlation` of their luma thumbnails exceeds
    /// this (`cuts`); frames beyond a cut are not used. Range 0.05..1 (1: never), default 0.5.
    pub cut_threshold: f64,
    /// Motion estimation knobs for `multi`, see `MotionParams`.
    pub motion: MotionParams,
}

impl Default for UpscaleParams {
    fn default() -> Self {
        UpscaleParams {
            factor: None,
            width: None,
            height: None,
            method: Method::Multi,
            radius: 2,
            tolerance: 0.002,
            prior: 1.0,
            spread: 0.6,
            edge: 0.1,
            sharpen: 1.0,
            iterations: 4,
            tile: 0,
            gpu_memory_mb: 256,
            cut_threshold: 0.5,
            motion: MotionParams::default(),
        }
    }
}

fn check_range<T: PartialOrd + std::fmt::Display>(key: &str, v: T, lo: T, hi: T) -> Result<()> {
    if !(v >= lo && v <= hi) {
        bail!("upscale.{key} = {v} is out of range (valid: {lo} to {hi})");
    }
    Ok(())
}

impl UpscaleParams {
    pub fn validate(&self) -> Result<()> {
        if let Some(f) = self.factor {
            if self.width.is_some() || self.height.is_some() {
                bail!("upscale.factor cannot be given with upscale.width or upscale.height; give one or the other");
            }
            check_range("factor", f, 1.0, MAX_FACTOR)?;
        }
        for (key, v) in [("width", self.width), ("height", self.height)] {
            if v == Some(0) {
                bail!("upscale.{key} = 0 is out of range (valid: the source size to 8 times it)");
            }
        }
        check_range("radius", self.radius, 1, 2)?;
        check_range("tolerance", self.tolerance, 0.001, 0.5)?;
        check_range("prior", self.prior, 0.05, 10.0)?;
        check_range("spread", self.spread, 0.25, 2.0)?;
        check_range("edge", self.edge, 0.0, 1.0)?;
        check_range("sharpen", self.sharpen, 0.0, 1.0)?;
        check_range("iterations", self.iterations, 0, 8)?;
        if self.tile != 0 {
            check_range("tile", self.tile, 64, 16384)?;
        }
        check_range("gpu_memory_mb", self.gpu_memory_mb, 16, 16384)?;
        check_range("cut_threshold", self.cut_threshold, 0.05, 1.0)?;
        self.motion.validate("upscale.motion")
    }

    /// The output size for a `width` x `height` source. Errors name the key and the limits.
    pub fn size_for(&self, width: usize, height: usize) -> Result<(usize, usize)> {
        let aspect = |n: usize, from: usize, to: usize| -> usize {
            ((n as f64 * to as f64 / from as f64).round() as usize).max(1)
        };
        let (w, h) = match (self.width, self.height) {
            (Some(w), Some(h)) => (w, h),
            (Some(w), None) => (w, aspect(height, width, w)),
            (None, Some(h)) => (aspect(width, height, h), h),
            (None, None) => {
                let f = self.factor.unwrap_or(2.0);
                (
                    ((width as f64 * f).round() as usize).max(1),
                    ((height as f64 * f).round() as usize).max(1),
                )
            }
        };
        for (key, out, src) in [("width", w, width), ("height", h, height)] {
            if out < src || out as f64 > src as f64 * MAX_FACTOR {
                bail!(
                    "upscale: output {key} {out} for a {width}x{height} source is out of range \
                     (valid: {src} to {} pixels; upscale never shrinks)",
                    (src as f64 * MAX_FACTOR) as usize
                );
            }
        }
        Ok((w, h))
    }
}

pub struct Upscale {
    pub params: UpscaleParams,
}

impl Upscale {
    pub fn new(params: UpscaleParams) -> Result<Self> {
        params.validate()?;
        Ok(Upscale { params })
    }

    pub fn from_table(table: &toml::Table) -> Result<Self> {
        let params: UpscaleParams = table.clone().try_into().context(
            "invalid parameters for stage 'upscale' (keys: factor, width, height, method \
             (lanczos, edge, multi), radius, tolerance, prior, spread, edge, sharpen, iterations, \
             tile, gpu_memory_mb, cut_threshold, motion)",
        )?;
        Self::new(params)
    }

    /// The plan for a window of frames of these shapes (one shape for all, the centre's).
    fn plan(&self, shapes: impl Iterator<Item = (usize, usize, usize)>) -> Result<cpu::Plan> {
        let shapes: Vec<_> = shapes.collect();
        check_shapes("upscale", shapes.iter().copied())?;
        let (w, h, planes) = shapes[0];
        let (ow, oh) = self.params.size_for(w, h)?;
        Ok(cpu::Plan::new(&self.params, w, h, planes, ow, oh))
    }

    /// The neighbours used, nearest first and alternating sides (`before[0]`, `after[0]`,
    /// `before[1]`, ...): none for single-frame methods; a side stops at the first cut.
    fn neighbours<'a, T>(
        &self,
        window: &Window<'a, T>,
        thumb: &dyn Fn(&T) -> Thumbnail,
    ) -> Vec<&'a T> {
        if self.params.method != Method::Multi {
            return Vec::new();
        }
        let r = self.params.radius;
        let t = self.params.cut_threshold;
        let c = thumb(window.center);
        let side = |frames: &Vec<&'a T>| -> Vec<&'a T> {
            let mut kept = Vec::new();
            let mut prev = c.clone();
            for f in frames.iter().take(r) {
                let th = thumb(f);
                if cuts::is_cut(&cuts::compare(&prev, &th), t) {
                    break;
                }
                kept.push(*f);
                prev = th;
            }
            kept
        };
        let (b, a) = (side(&window.before), side(&window.after));
        let mut out = Vec::new();
        for i in 0..r {
            out.extend(b.get(i));
            out.extend(a.get(i));
        }
        out
    }
}

impl Stage for Upscale {
    fn name(&self) -> &'static str {
        "upscale"
    }

    fn temporal_radius(&self) -> usize {
        match self.params.method {
            Method::Multi => self.params.radius,
            _ => 0,
        }
    }

    fn spatial_halo(&self) -> usize {
        // Source pixels: motion reach and block smoothing, the Lanczos taps, the tensor's
        // gradient and box, then per back-projection iteration the residual's Lanczos taps and
        // the source pixel it decimates, and for `multi` the fused samples and the PSF.
        let m = &self.params.motion;
        let (motion, fuse) = match self.params.method {
            Method::Multi => ((m.search + 1) * (1 << (m.max_levels - 1)) + 2 * m.block, 2),
            _ => (0, 0),
        };
        motion + 3 + 2 + 2 + self.params.iterations * (5 + fuse)
    }

    fn output_size(&self, width: usize, height: usize) -> (usize, usize) {
        self.params
            .size_for(width, height)
            .unwrap_or((width, height))
    }

    fn gpu_tolerance(&self) -> f32 {
        GPU_TOLERANCE
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn run_cpu(&self, window: &Window<'_, Frame>) -> Result<Frame> {
        let (frames, _) = window.in_order();
        let plan = self.plan(frames.iter().map(|f| (f.width, f.height, f.planes)))?;
        let c = window.center;
        let mp = &self.params.motion;
        let mut registered = Vec::new();
        if self.params.method == Method::Multi {
            // One pyramid per window frame: its coarsest level is the cut thumbnail too.
            let pyramids: Vec<(&Frame, motion::cpu::Pyramid)> = frames
                .iter()
                .map(|f| (*f, motion::cpu::Pyramid::of(f, mp)))
                .collect();
            let find = |f: &Frame| {
                &pyramids
                    .iter()
                    .find(|(k, _)| std::ptr::eq(*k, f))
                    .expect("a pyramid per window frame")
                    .1
            };
            let thumb = |f: &Frame| {
                let l = find(f).levels.last().expect("a level");
                Thumbnail::new(l.width, l.height, l.data.clone())
            };
            let cp = find(c);
            for f in self.neighbours(window, &thumb) {
                registered.push((f, motion::cpu::estimate(cp, find(f), mp)));
            }
        }
        Ok(cpu::upscale(&plan, c, &registered, self.params.tile))
    }

    fn run_gpu(&self, gpu: &GpuContext, window: &Window<'_, GpuFrame>) -> Result<GpuFrame> {
        let (frames, _) = window.in_order();
        let plan = self.plan(frames.iter().map(|f| (f.width, f.height, f.planes)))?;
        let c = window.center;
        let mp = &self.params.motion;
        let mut registered = Vec::new();
        if self.params.method == Method::Multi {
            // Pyramids once per frame; the cut check runs on the CPU on their coarsest levels.
            let cp = motion::gpu::Pyramid::of(gpu, c, mp)?;
            let mut pyramids = Vec::new();
            for f in window.before.iter().chain(&window.after) {
                pyramids.push((*f as *const GpuFrame, motion::gpu::Pyramid::of(gpu, f, mp)?));
            }
            let thumb_of = |p: &motion::gpu::Pyramid| -> Result<Thumbnail> {
                let l = gpu.download(p.levels.last().expect("a level"))?;
                Ok(Thumbnail::new(l.width, l.height, l.data))
            };
            let mut thumbs = vec![(c as *const GpuFrame, thumb_of(&cp)?)];
            for (k, p) in &pyramids {
                thumbs.push((*k, thumb_of(p)?));
            }
            let thumb = |f: &GpuFrame| {
                thumbs
                    .iter()
                    .find(|(k, _)| std::ptr::eq(*k, f))
                    .map(|(_, t)| t.clone())
                    .expect("a thumbnail per window frame")
            };
            for f in self.neighbours(window, &thumb) {
                let (_, fp) = pyramids
                    .iter()
                    .find(|(k, _)| std::ptr::eq(*k, f))
                    .expect("a pyramid per neighbour");
                registered.push((f, motion::gpu::estimate(gpu, &cp, fp, mp)?));
            }
        }
        gpu::upscale(gpu, &plan, c, &registered, &self.params)
    }
}
