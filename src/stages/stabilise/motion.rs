//! Global motion between two neighbouring frames: a similarity transform (translation, rotation
//! and scale about the frame centre) and a photometric gain and lift, estimated on a luma
//! pyramid, robust to moving subjects, dust, grain and flicker.
//!
//! # Conventions
//!
//! Full-resolution pixel coordinates: pixel centres at integers, `x` right, `y` down, the frame
//! centre `C = ((W - 1) / 2, (H - 1) / 2)`. A [`Similarity`] maps a point `x` to
//! `C + scale R(rot) (x - C) + (dx, dy)`, `R(rot) = [[cos, -sin], [sin, cos]]`, so a positive
//! rotation turns the picture clockwise on screen (as `degrade::weave` does). The motion of a
//! pair `(a, b)` maps where a piece of the picture is in `a` to where it is in `b`:
//! `b(M(x)) ≈ gain * a(x) + lift`.
//!
//! # Method ([`estimate`])
//!
//! 1. **Cut**: the two frames' luma thumbnails go through the shared cut detector
//!    ([`crate::stages::deflicker::cuts`]); across a cut there is no motion (the path restarts).
//! 2. **Start**: on the coarsest pyramid level (at most [`TOP_SIDE`] pixels along the longer
//!    side) the highest phase-correlation peaks and "no motion" are candidates; each is refined
//!    robustly (step 3) on that level, and the one the largest part of the picture agrees with
//!    (least Tukey loss at a common scale) wins — or, among those within [`NEAR_BEST`] of it,
//!    the one that moves least, so that with several layers of similar size every pair follows
//!    the same one. Pans up to a third of the frame per frame are found; when a large subject
//!    moves across a still background, the larger of the two wins.
//! 3. **Refine**: on every level from coarse to fine, iteratively reweighted Gauss–Newton on
//!    `b(M(x)) - gain * a(x) - lift` (Catmull–Rom sampling of `b`, gradients of `a`), both
//!    levels smoothed by a Gaussian of [`BLUR_SIGMA`] px. Tukey's biweight with a scale of
//!    1.4826 × the median absolute residual gives moving subjects, dust, scratches and
//!    blotches zero weight; the gain and lift absorb flicker. Rotation and scale are solved only
//!    when enabled. Sums are accumulated per row and added in row order, so the result does not
//!    depend on the thread count.
//! 4. **Checks**: a fit with a gain below [`MIN_GAIN`], fewer than [`MIN_INLIERS`] of the
//!    samples with weight, or a singular system is *lost*, treated like a cut.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::metrics;
use crate::stages::deflicker::cuts::{self, Thumbnail, THUMB_SIDE};

/// The analysis resolution: frames are box-averaged by a power of two until their longer side
/// is at most this (2K scans are analysed at half size).
pub const ANALYSIS_SIDE: usize = 1024;
/// The coarsest pyramid level's longer side, at most.
pub const TOP_SIDE: usize = 256;
/// Gaussian smoothing of every pyramid level before registration, px of that level.
pub const BLUR_SIGMA: f64 = 1.5;
/// Samples per Gauss–Newton iteration, at most: finer levels are visited on a lattice.
const MAX_SAMPLES: usize = 250_000;
/// Gauss–Newton iterations per level, at most.
const MAX_ITERATIONS: usize = 12;
/// Iterations each start candidate gets on the coarsest level before they are compared.
const CANDIDATE_ITERATIONS: usize = 5;
/// Candidates whose loss is within this fraction of the best one's count as fitting as well;
/// the one that moves least among them wins.
const NEAR_BEST: f64 = 0.1;
/// A fit with a smaller gain (unrelated or inverted pictures) is lost.
pub const MIN_GAIN: f64 = 0.2;
/// A fit where fewer than this fraction of the samples keep any weight is lost.
pub const MIN_INLIERS: f64 = 0.15;
/// Tukey's biweight constant (95 % efficiency for Gaussian residuals).
pub const TUKEY: f64 = 4.685;
/// Phase-correlation peaks tried as starting points on the coarsest level (with no motion).
const PC_PEAKS: usize = 4;
/// How far (px of the level) the refinement may move from its start: on the coarsest level
/// from each candidate, on finer levels from the coarser estimate. Small, so that where the
/// picture holds layers moving differently (blended together on coarse levels) the estimate
/// stays with the layer its candidate found instead of drifting to a mixture or another layer.
const TOP_REACH: f64 = 1.0;
const LEVEL_REACH: f64 = 1.0;

/// A similarity transform about the frame centre (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Similarity {
    pub dx: f64,
    pub dy: f64,
    /// Radians, positive clockwise on screen.
    pub rot: f64,
    pub scale: f64,
}

impl Default for Similarity {
    fn default() -> Self {
        Self::IDENTITY
    }
}

impl Similarity {
    pub const IDENTITY: Similarity = Similarity {
        dx: 0.0,
        dy: 0.0,
        rot: 0.0,
        scale: 1.0,
    };

    pub fn translation(dx: f64, dy: f64) -> Self {
        Similarity {
            dx,
            dy,
            ..Self::IDENTITY
        }
    }

    /// The linear part `scale R(rot)` as `[[m00, m01], [m10, m11]]`.
    pub fn matrix(&self) -> [[f64; 2]; 2] {
        let (s, c) = self.rot.sin_cos();
        [
            [self.scale * c, -self.scale * s],
            [self.scale * s, self.scale * c],
        ]
    }

    /// The image of `u`, a point relative to the frame centre, relative to the frame centre.
    pub fn apply(&self, u: [f64; 2]) -> [f64; 2] {
        let m = self.matrix();
        [
            m[0][0] * u[0] + m[0][1] * u[1] + self.dx,
            m[1][0] * u[0] + m[1][1] * u[1] + self.dy,
        ]
    }

    /// `next ∘ self`: first this, then `next`.
    pub fn then(&self, next: &Similarity) -> Similarity {
        let m = next.matrix();
        Similarity {
            dx: m[0][0] * self.dx + m[0][1] * self.dy + next.dx,
            dy: m[1][0] * self.dx + m[1][1] * self.dy + next.dy,
            rot: self.rot + next.rot,
            scale: self.scale * next.scale,
        }
    }

    pub fn inverse(&self) -> Similarity {
        let inv = Similarity {
            dx: 0.0,
            dy: 0.0,
            rot: -self.rot,
            scale: 1.0 / self.scale,
        };
        let m = inv.matrix();
        Similarity {
            dx: -(m[0][0] * self.dx + m[0][1] * self.dy),
            dy: -(m[1][0] * self.dx + m[1][1] * self.dy),
            ..inv
        }
    }

    /// As four numbers in pixels: `dx`, `dy`, and the rotation and log-scale times `radius`
    /// (how far they move a point `radius` px from the centre), so that one pixel threshold
    /// suits all four.
    pub fn to_px(&self, radius: f64) -> [f64; 4] {
        [
            self.dx,
            self.dy,
            self.rot * radius,
            self.scale.ln() * radius,
        ]
    }

    pub fn from_px(p: [f64; 4], radius: f64) -> Self {
        Similarity {
            dx: p[0],
            dy: p[1],
            rot: p[2] / radius,
            scale: (p[3] / radius).exp(),
        }
    }

    /// The largest displacement `|M(x) - x|` over a `width` x `height` frame (at a corner).
    pub fn max_displacement(&self, width: usize, height: usize) -> f64 {
        let (hx, hy) = (
            (width as f64 - 1.0).max(0.0) / 2.0,
            (height as f64 - 1.0).max(0.0) / 2.0,
        );
        [[-hx, -hy], [hx, -hy], [-hx, hy], [hx, hy]]
            .iter()
            .map(|&u| {
                let v = self.apply(u);
                (v[0] - u[0]).hypot(v[1] - u[1])
            })
            .fold(0.0, f64::max)
    }

    /// `[dx, dy, rotation in degrees, scale]`, as the track sidecar writes it.
    pub fn to_track(&self) -> [f64; 4] {
        [self.dx, self.dy, self.rot.to_degrees(), self.scale]
    }

    pub fn from_track(v: [f64; 4]) -> Self {
        Similarity {
            dx: v[0],
            dy: v[1],
            rot: v[2].to_radians(),
            scale: v[3],
        }
    }

    pub fn is_finite(&self) -> bool {
        self.dx.is_finite() && self.dy.is_finite() && self.rot.is_finite() && self.scale.is_finite()
    }
}

/// Why a pair has no motion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Break {
    /// The cut detector found different shots.
    Cut,
    /// The registration failed (too little in common, no texture, a flash frame).
    Lost,
}

/// The motion from one frame to the next, or why there is none.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairMotion {
    /// `b(motion(x)) ≈ gain * a(x) + lift`; `None` across a cut or a lost registration.
    pub motion: Option<Similarity>,
    /// Photometric change of the luma from `a` to `b`.
    pub gain: f64,
    pub lift: f64,
    /// Set when `motion` is `None`.
    pub brk: Option<Break>,
}

impl PairMotion {
    pub fn broken(why: Break) -> Self {
        PairMotion {
            motion: None,
            gain: 1.0,
            lift: 0.0,
            brk: Some(why),
        }
    }
}

/// What the estimator may solve for, and where it looks.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub rotation: bool,
    pub scale: bool,
    /// Region of interest `[x, y, w, h]` in full-resolution pixels of the frame: only the
    /// picture inside it is registered (perforations, the frame line).
    pub roi: Option<[usize; 4]>,
    /// Dissimilarity above which neighbours are different shots (see `deflicker::cuts`).
    pub cut_threshold: f64,
}

/// One level of the luma pyramid, smoothed (gradients are central differences of it, taken
/// where needed: only samples away from the border are registered).
#[derive(Clone, Debug)]
pub struct Level {
    pub w: usize,
    pub h: usize,
    /// Full-resolution pixels per pixel of this level.
    pub k: f64,
    /// The smoothed image; on the GPU backend only the coarsest level's is on the host.
    pub img: Vec<f32>,
    /// The smoothed image on the device (GPU backend), `w * h` `f32`.
    pub device: Option<wgpu::Buffer>,
}

impl Level {
    /// The position in this level of a full-resolution position.
    fn to_level(&self, x: f64) -> f64 {
        (x - (self.k - 1.0) / 2.0) / self.k
    }
}

/// Everything the estimator needs of one frame, computed once per frame.
#[derive(Clone, Debug)]
pub struct Analysis {
    /// Full-resolution size.
    pub width: usize,
    pub height: usize,
    /// Level 0 first (the analysis resolution), coarsest last.
    pub levels: Vec<Level>,
    pub thumb: Thumbnail,
    /// Hash of the analysis-resolution luma: the frame's identity in pair caches and tracks.
    pub hash: u64,
}

/// The power-of-two reduction from a `width` x `height` frame to the analysis resolution.
pub fn analysis_factor(width: usize, height: usize) -> usize {
    let mut f = 1;
    while width.max(height) / f > ANALYSIS_SIDE && width.min(height) / (2 * f) >= 16 {
        f *= 2;
    }
    f
}

/// Rec.709 luma of planar level-0 data (`n` samples per plane): three planes weighted, one as
/// is, other counts averaged; non-finite samples count as black.
pub fn luma(planar: &[f32], n: usize, planes: usize) -> Vec<f32> {
    let mut y: Vec<f32> = match planes {
        3 => (0..n)
            .map(|i| {
                metrics::REC709[0] * planar[i]
                    + metrics::REC709[1] * planar[n + i]
                    + metrics::REC709[2] * planar[2 * n + i]
            })
            .collect(),
        1 => planar[..n].to_vec(),
        p => {
            let inv = 1.0 / p as f32;
            (0..n)
                .map(|i| (0..p).fold(0.0f32, |s, q| s + planar[q * n + i]) * inv)
                .collect()
        }
    };
    // Non-finite samples would poison every sum; they count as black.
    y.iter_mut()
        .filter(|v| !v.is_finite())
        .for_each(|v| *v = 0.0);
    y
}

/// Size and full-resolution pixels per pixel (`k`) of every pyramid level of a `w0` x `h0`
/// analysis image reduced by `factor`, level 0 first.
pub fn pyramid(w0: usize, h0: usize, factor: usize) -> Vec<(usize, usize, f64)> {
    let (mut w, mut h, mut k) = (w0, h0, factor as f64);
    let mut out = vec![(w, h, k)];
    while !(w.max(h) <= TOP_SIDE || w.min(h) / 2 < 24) {
        w /= 2;
        h /= 2;
        k *= 2.0;
        out.push((w, h, k));
    }
    out
}

impl Analysis {
    /// From the planar level-0 data of a `width` x `height` frame reduced by `factor`
    /// (`w0 = width / factor`, `h0 = height / factor` samples per plane; see `cpu::reduce`).
    pub fn new(width: usize, height: usize, factor: usize, planes: usize, level0: &[f32]) -> Self {
        let (w0, h0) = (width / factor, height / factor);
        let y = luma(level0, w0 * h0, planes);
        let sizes = pyramid(w0, h0, factor);
        let mut levels = Vec::new();
        let mut raw = y.clone();
        for (i, &(w, h, k)) in sizes.iter().enumerate() {
            if i > 0 {
                raw = downsample(&raw, sizes[i - 1].0, sizes[i - 1].1);
            }
            levels.push(Level {
                w,
                h,
                k,
                img: blur(&raw, w, h, BLUR_SIGMA),
                device: None,
            });
        }
        Analysis {
            width,
            height,
            levels,
            thumb: thumbnail(&y, w0, h0),
            hash: content_hash(width, height, planes, &row_hashes(level0, w0)),
        }
    }
}

/// The 32-bit FNV-1a hash of every row of every plane of the level-0 data (`w0` samples a
/// row), over the samples' bits, started from the row's index: the rows of
/// [`content_hash`]. `shaders/stabilise_luma.wgsl` (mode 1) computes the same on the device.
pub fn row_hashes(level0: &[f32], w0: usize) -> Vec<u32> {
    level0
        .chunks(w0.max(1))
        .enumerate()
        .map(|(row, samples)| {
            samples.iter().fold(0x811C_9DC5 ^ row as u32, |h, v| {
                (h ^ v.to_bits()).wrapping_mul(0x0100_0193)
            })
        })
        .collect()
}

/// FNV-1a (64 bit) of the frame's shape and its level-0 data's [`row_hashes`] (the reduction
/// is bit-identical on both backends): the key of the frame in pair caches and motion
/// tracks. Written out (not `DefaultHasher`) so tracks stay valid across builds.
pub fn content_hash(width: usize, height: usize, planes: usize, rows: &[u32]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01B3;
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(PRIME);
        }
    };
    for v in [width as u64, height as u64, planes as u64] {
        eat(&v.to_le_bytes());
    }
    for v in rows {
        eat(&v.to_le_bytes());
    }
    h
}

/// Block side and thumbnail size for a `w` x `h` image: about [`THUMB_SIDE`] blocks along the
/// longer side.
pub fn thumbnail_blocks(w: usize, h: usize) -> (usize, usize, usize) {
    let block = w.max(h).div_ceil(THUMB_SIDE).max(1);
    (block, w.div_ceil(block).max(1), h.div_ceil(block).max(1))
}

/// Block means of about [`THUMB_SIDE`] blocks along the longer side, for the cut detector.
pub fn thumbnail(y: &[f32], w: usize, h: usize) -> Thumbnail {
    let (block, tw, th) = thumbnail_blocks(w, h);
    let mut sums = vec![0f64; tw * th];
    let mut counts = vec![0u32; tw * th];
    for yy in 0..h {
        for xx in 0..w {
            let i = (yy / block) * tw + xx / block;
            sums[i] += y[yy * w + xx] as f64;
            counts[i] += 1;
        }
    }
    let data = sums
        .iter()
        .zip(&counts)
        .map(|(s, &c)| if c > 0 { (s / c as f64) as f32 } else { 0.0 })
        .collect();
    Thumbnail::new(tw, th, data)
}

/// 2x2 box average (an odd last row or column is dropped).
pub fn downsample(p: &[f32], w: usize, h: usize) -> Vec<f32> {
    let (w2, h2) = (w / 2, h / 2);
    let mut out = vec![0f32; w2 * h2];
    out.par_chunks_mut(w2.max(1))
        .enumerate()
        .for_each(|(y, row)| {
            let (a, b) = (&p[2 * y * w..], &p[(2 * y + 1) * w..]);
            for (x, v) in row.iter_mut().enumerate() {
                *v = 0.25 * ((a[2 * x] + a[2 * x + 1]) + (b[2 * x] + b[2 * x + 1]));
            }
        });
    out
}

/// Normalised Gaussian taps, `-r..=r` with `r = ceil(3 sigma)`.
pub fn blur_taps(sigma: f64) -> Vec<f32> {
    let r = (3.0 * sigma).ceil() as i64;
    let k: Vec<f64> = (-r..=r)
        .map(|i| (-((i * i) as f64) / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f64 = k.iter().sum();
    k.iter().map(|v| (v / s) as f32).collect()
}

/// Separable Gaussian blur (borders clamped): rows, then columns, each tap added in order.
fn blur(p: &[f32], w: usize, h: usize, sigma: f64) -> Vec<f32> {
    let k = blur_taps(sigma);
    let r = (k.len() / 2) as i64;
    let mut tmp = vec![0f32; w * h];
    tmp.par_chunks_mut(w.max(1))
        .enumerate()
        .for_each(|(y, row)| {
            let src = &p[y * w..(y + 1) * w];
            for (x, v) in row.iter_mut().enumerate() {
                let mut s = 0.0;
                for (i, &ki) in k.iter().enumerate() {
                    let xi = (x as i64 + i as i64 - r).clamp(0, w as i64 - 1) as usize;
                    s += ki * src[xi];
                }
                *v = s;
            }
        });
    let mut out = vec![0f32; w * h];
    out.par_chunks_mut(w.max(1))
        .enumerate()
        .for_each(|(y, row)| {
            for (i, &ki) in k.iter().enumerate() {
                let yi = (y as i64 + i as i64 - r).clamp(0, h as i64 - 1) as usize;
                for (v, &s) in row.iter_mut().zip(&tmp[yi * w..(yi + 1) * w]) {
                    *v += ki * s;
                }
            }
        });
    out
}

/// Catmull–Rom weights for the four samples around a position with fractional part `t`.
fn cubic_weights(t: f64) -> [f64; 4] {
    let (t2, t3) = (t * t, t * t * t);
    [
        0.5 * (-t3 + 2.0 * t2 - t),
        0.5 * (3.0 * t3 - 5.0 * t2 + 2.0),
        0.5 * (-3.0 * t3 + 4.0 * t2 + t),
        0.5 * (t3 - t2),
    ]
}

/// Catmull–Rom sample of `p` at `(x, y)`; the caller keeps `1 <= x, y` and
/// `x <= w - 3`, `y <= h - 3`.
fn bicubic(p: &[f32], w: usize, x: f64, y: f64) -> f64 {
    let (fx, fy) = (x.floor(), y.floor());
    let (wx, wy) = (cubic_weights(x - fx), cubic_weights(y - fy));
    let (ix, iy) = (fx as usize - 1, fy as usize - 1);
    let mut s = 0.0;
    for (j, &wyj) in wy.iter().enumerate() {
        let row = &p[(iy + j) * w + ix..(iy + j) * w + ix + 4];
        let t = wx[0] * row[0] as f64
            + wx[1] * row[1] as f64
            + wx[2] * row[2] as f64
            + wx[3] * row[3] as f64;
        s += wyj * t;
    }
    s
}

/// Parameters solved by Gauss–Newton: translation (level px), `a` and `b` of the linear part
/// `[[1 + a, -b], [b, 1 + a]]` (times the level's half-diagonal, so in px), gain, lift.
#[derive(Clone, Copy, Debug)]
pub struct Fit {
    pub q: [f64; 6],
}

pub const DX: usize = 0;
pub const DY: usize = 1;
pub const A: usize = 2;
pub const B: usize = 3;
pub const GAIN: usize = 4;
pub const LIFT: usize = 5;

/// Where one Gauss–Newton pass samples a level: the lattice `x0 + i * stride`,
/// `y0 + j * stride` (`i < nx`, `j < ny`), the level's centre `c` and half-diagonal `radius`,
/// and `lim = (lo, hi_x, hi_y)`, the box a warped sample must fall in (away from the border,
/// where the clamped blur differs between the frames).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lattice {
    pub x0: usize,
    pub y0: usize,
    pub nx: usize,
    pub ny: usize,
    pub stride: usize,
    pub c: (f64, f64),
    pub radius: f64,
    pub lim: (f64, f64, f64),
}

impl Lattice {
    /// The samples of a pass, at most about [`MAX_SAMPLES`]; `None` when the overlap is too
    /// small.
    fn of(l: &Level, c: (f64, f64), roi: Option<(usize, usize, usize, usize)>) -> Option<Self> {
        let (w, h) = (l.w, l.h);
        let m = (3.0 * BLUR_SIGMA).ceil() as usize + 2;
        let (mut x0, mut y0, mut x1, mut y1) = (m, m, w.saturating_sub(m), h.saturating_sub(m));
        if let Some((rx0, ry0, rx1, ry1)) = roi {
            x0 = x0.max(rx0);
            y0 = y0.max(ry0);
            x1 = x1.min(rx1);
            y1 = y1.min(ry1);
        }
        if x1 <= x0 + 4 || y1 <= y0 + 4 {
            return None;
        }
        let n = (x1 - x0) * (y1 - y0);
        let mut stride = 1;
        while n / (stride * stride) > MAX_SAMPLES {
            stride += 1;
        }
        Some(Lattice {
            x0,
            y0,
            nx: (x1 - x0).div_ceil(stride),
            ny: (y1 - y0).div_ceil(stride),
            stride,
            c,
            radius: half_diagonal(l),
            lim: (m as f64, (w - 1 - m) as f64, (h - 1 - m) as f64),
        })
    }

    pub fn len(&self) -> usize {
        self.nx * self.ny
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Number of normal-equation sums a pass returns: the 21 of the upper triangle of the 6x6
/// matrix `J^T W J` row by row, the 6 of `J^T W r`, the sum of the weights and the number of
/// samples with weight.
pub const SUMS: usize = 29;

/// What one pass measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Pass {
    pub sums: [f64; SUMS],
    /// Samples on the overlap.
    pub total: usize,
    /// Robust scale of the residuals: 1.4826 × their median magnitude, at least 1e-5.
    pub sigma: f64,
}

/// The per-sample work of the estimator, done by a backend: the CPU ([`CpuMeasure`]) or the
/// GPU (`gpu::GpuMeasure`, its twin in `shaders/stabilise_{residual,select,normal}.wgsl`).
pub trait Measure {
    /// One pass on `level` of both frames with the parameters `q` (see [`Fit`]): the residual
    /// `r = b(M(x)) - gain * a(x) - lift` of every lattice sample whose warped position lies in
    /// the lattice's `lim` box; their robust scale `sigma`; and with Tukey's biweight at
    /// `TUKEY * sigma`, the weighted normal-equation sums of the Jacobian
    /// `[gain ∂a/∂x, gain ∂a/∂y, (gain ∇a)·u, (gain ∇a)·u⊥, -a, -1]` (`u` the position from
    /// the centre over the radius; central differences). The residuals are kept in `slot`
    /// until the next pass on it. `None` when fewer than 64 samples lie on the overlap.
    fn pass(
        &mut self,
        level: usize,
        lat: &Lattice,
        q: &[f64; 6],
        slot: usize,
    ) -> anyhow::Result<Option<Pass>>;

    /// Over the residuals kept in `slot`: the sum of Tukey's loss `1 - (1 - u²)³`,
    /// `u = min(|r| / cut, 1)`, and how many there are.
    fn loss(&mut self, slot: usize, cut: f64) -> anyhow::Result<(f64, usize)>;
}

/// Rows of samples `(x, r)` of one pass on the CPU.
type Residuals = Vec<Vec<(u32, f32)>>;

/// The CPU backend of the estimator: the reference, plain Rust on rayon. Sums are accumulated
/// per row and added in row order, so they do not depend on the thread count.
pub struct CpuMeasure<'a> {
    a: &'a Analysis,
    b: &'a Analysis,
    kept: Vec<Residuals>,
}

impl<'a> CpuMeasure<'a> {
    pub fn new(a: &'a Analysis, b: &'a Analysis) -> Self {
        CpuMeasure {
            a,
            b,
            kept: Vec::new(),
        }
    }
}

impl Measure for CpuMeasure<'_> {
    fn pass(
        &mut self,
        level: usize,
        lat: &Lattice,
        q: &[f64; 6],
        slot: usize,
    ) -> anyhow::Result<Option<Pass>> {
        let (la, lb) = (&self.a.levels[level], &self.b.levels[level]);
        let w = la.w;
        let (c, radius, lim, stride) = (lat.c, lat.radius, lat.lim, lat.stride);
        let (ma, mb) = (1.0 + q[A] / radius, q[B] / radius);
        let warp = |x: usize, y: usize| {
            let (ux, uy) = (x as f64 - c.0, y as f64 - c.1);
            (
                c.0 + ma * ux - mb * uy + q[DX],
                c.1 + mb * ux + ma * uy + q[DY],
            )
        };
        let inside = |px: f64, py: f64| px >= lim.0 && py >= lim.0 && px <= lim.1 && py <= lim.2;
        // Residuals (kept for the sums) and their robust scale.
        let per_row: Residuals = (0..lat.ny)
            .into_par_iter()
            .map(|j| {
                let y = lat.y0 + j * stride;
                let mut out = Vec::new();
                for i in 0..lat.nx {
                    let x = lat.x0 + i * stride;
                    let (px, py) = warp(x, y);
                    if inside(px, py) {
                        let r = bicubic(&lb.img, w, px, py)
                            - q[GAIN] * la.img[y * w + x] as f64
                            - q[LIFT];
                        out.push((x as u32, r as f32));
                    }
                }
                out
            })
            .collect();
        let mut mags: Vec<f32> = per_row
            .iter()
            .flat_map(|r| r.iter().map(|(_, v)| v.abs()))
            .collect();
        let total = mags.len();
        if self.kept.len() <= slot {
            self.kept.resize(slot + 1, Vec::new());
        }
        if total < 64 {
            self.kept[slot] = per_row;
            return Ok(None);
        }
        let (_, med, _) = mags.select_nth_unstable_by(total / 2, |a, b| a.total_cmp(b));
        let sigma = (1.4826 * *med as f64).max(1e-5);
        let cut = TUKEY * sigma;
        // The weighted normal equations, one row at a time, added in row order.
        let rows: Vec<[f64; SUMS]> = per_row
            .par_iter()
            .enumerate()
            .map(|(j, samples)| {
                let y = lat.y0 + j * stride;
                let mut acc = [0f64; SUMS];
                for &(x, r) in samples {
                    let r = r as f64;
                    if r.abs() >= cut {
                        continue;
                    }
                    let x = x as usize;
                    let i = y * w + x;
                    let av = la.img[i] as f64;
                    let t = 1.0 - (r / cut).powi(2);
                    let wt = t * t;
                    // Central differences; `x0 >= m >= 2`, so the neighbours exist.
                    let (gx, gy) = (
                        q[GAIN] * 0.5 * (la.img[i + 1] - la.img[i - 1]) as f64,
                        q[GAIN] * 0.5 * (la.img[i + w] - la.img[i - w]) as f64,
                    );
                    let (ux, uy) = ((x as f64 - c.0) / radius, (y as f64 - c.1) / radius);
                    let jac = [gx, gy, gx * ux + gy * uy, -gx * uy + gy * ux, -av, -1.0];
                    let mut k = 0;
                    for p in 0..6 {
                        for q2 in p..6 {
                            acc[k] += wt * jac[p] * jac[q2];
                            k += 1;
                        }
                    }
                    for p in 0..6 {
                        acc[21 + p] += wt * jac[p] * r;
                    }
                    acc[27] += wt;
                    acc[28] += 1.0;
                }
                acc
            })
            .collect();
        let mut sums = [0f64; SUMS];
        for s in &rows {
            for (a, b) in sums.iter_mut().zip(s) {
                *a += b;
            }
        }
        self.kept[slot] = per_row;
        Ok(Some(Pass { sums, total, sigma }))
    }

    fn loss(&mut self, slot: usize, cut: f64) -> anyhow::Result<(f64, usize)> {
        let Some(rows) = self.kept.get(slot) else {
            return Ok((0.0, 0));
        };
        let mut sum = 0.0;
        let mut count = 0;
        for row in rows {
            for &(_, r) in row {
                let u = (r.abs() as f64 / cut).min(1.0);
                sum += 1.0 - (1.0 - u * u).powi(3);
                count += 1;
            }
        }
        Ok((sum, count))
    }
}

/// The estimate for one pair of frames on the CPU. `a` and `b` must come from frames of one
/// size.
pub fn estimate(a: &Analysis, b: &Analysis, cfg: &Config) -> PairMotion {
    estimate_with(a, b, cfg, &mut CpuMeasure::new(a, b)).expect("the CPU measure does not fail")
}

/// The estimate for one pair of frames with the per-sample work done by `measure`; the
/// candidates, the solves and the decisions are here, shared by both backends.
pub fn estimate_with(
    a: &Analysis,
    b: &Analysis,
    cfg: &Config,
    measure: &mut dyn Measure,
) -> anyhow::Result<PairMotion> {
    assert_eq!(
        (a.width, a.height),
        (b.width, b.height),
        "frames differ in size"
    );
    let similarity = cuts::compare(&a.thumb, &b.thumb);
    if cuts::is_cut(&similarity, cfg.cut_threshold) {
        return Ok(PairMotion::broken(Break::Cut));
    }
    let top = a.levels.len() - 1;
    let (la, lb) = (&a.levels[top], &b.levels[top]);
    let full_c = ((a.width as f64 - 1.0) / 2.0, (a.height as f64 - 1.0) / 2.0);
    // Start: candidate translations on the coarsest level — the phase-correlation peaks
    // (inside the region of interest when there is one) and no motion at all — each refined
    // robustly there; the one the most of the picture agrees with wins. A large moving subject
    // (a vehicle filling half the frame) gives a peak of its own: the background wins when it
    // is the larger part.
    let roi_top = roi_rect(cfg.roi, la);
    let mut candidates: Vec<(f64, f64)> = Vec::new();
    let peaks = match roi_top {
        Some((x0, y0, x1, y1)) if x1 - x0 >= 16 && y1 - y0 >= 16 => {
            let crop = |p: &[f32]| -> Vec<f32> {
                (y0..y1)
                    .flat_map(|y| p[y * la.w + x0..y * la.w + x1].iter().copied())
                    .collect()
            };
            phase_correlation_peaks(&crop(&la.img), &crop(&lb.img), x1 - x0, y1 - y0, PC_PEAKS)
        }
        Some(_) => Vec::new(),
        None => phase_correlation_peaks(&la.img, &lb.img, la.w, la.h, PC_PEAKS),
    };
    let (max_x, max_y) = (la.w as f64 / 3.0, la.h as f64 / 3.0);
    for c in peaks.into_iter().chain([(0.0, 0.0)]) {
        let far = c.0.abs() > max_x || c.1.abs() > max_y;
        let seen = candidates
            .iter()
            .any(|o| (o.0 - c.0).abs() < 1.0 && (o.1 - c.1).abs() < 1.0);
        if !far && !seen {
            candidates.push(c);
        }
    }
    // Photometric start: match means and spreads.
    let (ma, sa) = mean_std(&la.img);
    let (mb, sb) = mean_std(&lb.img);
    let (g0, l0) = if sa > 1e-9 && sb > 1e-9 {
        (sb / sa, mb - sb / sa * ma)
    } else {
        (1.0, 0.0)
    };
    let top_c = (la.to_level(full_c.0), la.to_level(full_c.1));
    let Some(top_lat) = Lattice::of(la, top_c, roi_top) else {
        return Ok(PairMotion::broken(Break::Lost));
    };
    // (fit, sigma, residual slot, samples, start)
    let mut tried: Vec<(Fit, f64, usize, usize, Fit)> = Vec::new();
    for (slot, c) in candidates.into_iter().enumerate() {
        let start = Fit {
            q: [c.0, c.1, 0.0, 0.0, g0, l0],
        };
        if let Some(r) = refine(
            measure,
            top,
            &top_lat,
            start,
            cfg,
            &start,
            TOP_REACH,
            CANDIDATE_ITERATIONS,
            slot,
        )? {
            tried.push((r.fit, r.sigma, slot, r.samples, start));
        }
    }
    // Score every candidate with one common scale (the smallest any reached): the mean Tukey
    // loss, samples off the overlap counting as outliers.
    let Some(common) = tried.iter().map(|t| t.1).min_by(|a, b| a.total_cmp(b)) else {
        return Ok(PairMotion::broken(Break::Lost));
    };
    let cut = TUKEY * common;
    let samples = tried.iter().map(|t| t.3).max().unwrap_or(0).max(1) as f64;
    let mut scored: Vec<(f64, Fit, Fit)> = Vec::new();
    for (f, _, slot, _, start) in &tried {
        let (loss, count) = measure.loss(*slot, cut)?;
        scored.push((loss + (samples - count as f64), *f, *start));
    }
    let best = scored.iter().map(|s| s.0).fold(f64::INFINITY, f64::min);
    // Among the candidates that fit (nearly) as well as the best, the one that moves least:
    // where the picture holds layers of similar size moving differently (a still pavement, a
    // passing bus, a slower road), every frame then follows the same layer instead of
    // flipping between them, which would put whole layer motions into the path.
    let Some(fit) = scored
        .iter()
        .filter(|s| s.0 <= best * (1.0 + NEAR_BEST))
        .min_by(|x, y| {
            let m = |f: &Fit| f.q[DX].hypot(f.q[DY]);
            m(&x.1).total_cmp(&m(&y.1))
        })
        .map(|s| (s.1, s.2))
    else {
        return Ok(PairMotion::broken(Break::Lost));
    };
    // The winner, refined to convergence on the coarsest level, within reach of where its
    // candidate started.
    let Some(r) = refine(
        measure,
        top,
        &top_lat,
        fit.0,
        cfg,
        &fit.1,
        TOP_REACH,
        MAX_ITERATIONS,
        0,
    )?
    else {
        return Ok(PairMotion::broken(Break::Lost));
    };
    let (mut fit, mut inliers) = (r.fit, r.inliers);
    for l in (0..top).rev() {
        let la = &a.levels[l];
        // The parameters in px double from one level to the next finer.
        for i in [DX, DY, A, B] {
            fit.q[i] *= 2.0;
        }
        let c = (la.to_level(full_c.0), la.to_level(full_c.1));
        let Some(lat) = Lattice::of(la, c, roi_rect(cfg.roi, la)) else {
            return Ok(PairMotion::broken(Break::Lost));
        };
        match refine(
            measure,
            l,
            &lat,
            fit,
            cfg,
            &fit,
            LEVEL_REACH,
            MAX_ITERATIONS,
            0,
        )? {
            Some(r) => {
                fit = r.fit;
                inliers = r.inliers;
            }
            None => return Ok(PairMotion::broken(Break::Lost)),
        }
    }
    if fit.q[GAIN] < MIN_GAIN || inliers < MIN_INLIERS || fit.q.iter().any(|v| !v.is_finite()) {
        return Ok(PairMotion::broken(Break::Lost));
    }
    let l0 = &a.levels[0];
    let radius = half_diagonal(l0);
    let (ma, mb) = (1.0 + fit.q[A] / radius, fit.q[B] / radius);
    let motion = Similarity {
        dx: fit.q[DX] * l0.k,
        dy: fit.q[DY] * l0.k,
        rot: if cfg.rotation { mb.atan2(ma) } else { 0.0 },
        scale: if cfg.scale { ma.hypot(mb) } else { 1.0 },
    };
    Ok(PairMotion {
        motion: Some(motion),
        gain: fit.q[GAIN],
        lift: fit.q[LIFT],
        brk: None,
    })
}

fn half_diagonal(l: &Level) -> f64 {
    (l.w as f64).hypot(l.h as f64) / 2.0
}

fn mean_std(p: &[f32]) -> (f64, f64) {
    let n = p.len().max(1) as f64;
    let m = p.iter().map(|&v| v as f64).sum::<f64>() / n;
    let v = p.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n;
    (m, v.max(0.0).sqrt())
}

/// The region of interest in a level's pixels, `x0..x1, y0..y1`, clipped to the level.
fn roi_rect(roi: Option<[usize; 4]>, l: &Level) -> Option<(usize, usize, usize, usize)> {
    let [x, y, w, h] = roi?;
    let lo = |v: usize, n: usize| (l.to_level(v as f64).ceil().max(0.0) as usize).min(n);
    let hi =
        |v: usize, n: usize| ((l.to_level(v as f64 - 1.0).floor() + 1.0).max(0.0) as usize).min(n);
    let (x0, x1) = (lo(x, l.w), hi(x + w, l.w));
    let (y0, y1) = (lo(y, l.h), hi(y + h, l.h));
    Some((x0, y0, x1.max(x0), y1.max(y0)))
}

/// The outcome of [`refine`].
struct Refined {
    fit: Fit,
    /// Fraction of the samples that kept weight.
    inliers: f64,
    /// Robust scale of the residuals at the last iteration.
    sigma: f64,
    /// Samples on the overlap at the last iteration (their residuals are in the slot).
    samples: usize,
}

/// Iteratively reweighted Gauss–Newton on `level` from `start`, the geometric parameters
/// staying within `reach` level px of `anchor`; `None` when the system is singular or the
/// overlap too small.
#[allow(clippy::too_many_arguments)]
fn refine(
    measure: &mut dyn Measure,
    level: usize,
    lat: &Lattice,
    start: Fit,
    cfg: &Config,
    anchor: &Fit,
    reach: f64,
    iterations: usize,
    slot: usize,
) -> anyhow::Result<Option<Refined>> {
    let active: Vec<usize> = [DX, DY]
        .into_iter()
        .chain(cfg.scale.then_some(A))
        .chain(cfg.rotation.then_some(B))
        .chain([GAIN, LIFT])
        .collect();
    let mut fit = start;
    let mut inliers = 0.0;
    let mut sigma = 0.0;
    let mut samples = 0;
    for iteration in 0..iterations {
        let Some(pass) = measure.pass(level, lat, &fit.q, slot)? else {
            return Ok(None);
        };
        let acc = pass.sums;
        sigma = pass.sigma;
        samples = pass.total;
        inliers = acc[28] / pass.total as f64;
        // The 21 sums are the upper triangle of the symmetric normal matrix, row by row.
        let mut full = [[0f64; 6]; 6];
        let mut k = 0;
        #[allow(clippy::needless_range_loop)] // (row, column) indices are the point here
        for p in 0..6 {
            for q2 in p..6 {
                (full[p][q2], full[q2][p]) = (acc[k], acc[k]);
                k += 1;
            }
        }
        let n = active.len();
        let mut mat = vec![vec![0f64; n]; n];
        let mut rhs = vec![0f64; n];
        for (i, &p) in active.iter().enumerate() {
            for (j, &q2) in active.iter().enumerate() {
                mat[i][j] = full[p][q2];
            }
            rhs[i] = -acc[21 + p];
        }
        let Some(step) = solve(mat, rhs, 1e-12) else {
            return Ok(None);
        };
        let mut delta = [0f64; 6];
        for (i, &p) in active.iter().enumerate() {
            delta[p] = step[i];
        }
        // At most two level pixels per step, so a bad linearisation cannot throw it far.
        let len = delta[DX]
            .hypot(delta[DY])
            .max(delta[A].abs())
            .max(delta[B].abs());
        if len > 2.0 {
            for v in &mut delta[..4] {
                *v *= 2.0 / len;
            }
        }
        for (q, d) in fit.q.iter_mut().zip(delta) {
            *q += d;
        }
        for p in [DX, DY, A, B] {
            fit.q[p] = fit.q[p].clamp(anchor.q[p] - reach, anchor.q[p] + reach);
        }
        let moved = delta[DX]
            .abs()
            .max(delta[DY].abs())
            .max(delta[A].abs())
            .max(delta[B].abs());
        if iteration >= 1 && moved < 1e-3 {
            break;
        }
    }
    Ok(Some(Refined {
        fit,
        inliers,
        sigma,
        samples,
    }))
}

/// Candidate translations of `b` against `a` (`b(x + d) ≈ a(x)`) by phase correlation: the
/// `count` highest local maxima of the inverse FFT of the normalised cross-power spectrum
/// (Hann window, zero padding to powers of two, a Gaussian low-pass of 0.2 cycles/px so that
/// noise-dominated frequencies do not scatter the peak), each refined by a parabola. Best
/// first. Uses the radix-2 FFT of [`metrics::fft`].
fn phase_correlation_peaks(
    a: &[f32],
    b: &[f32],
    w: usize,
    h: usize,
    count: usize,
) -> Vec<(f64, f64)> {
    if w < 4 || h < 4 {
        return Vec::new();
    }
    let (pw, ph) = (w.next_power_of_two(), h.next_power_of_two());
    let hann = |i: usize, n: usize| {
        0.5 - 0.5 * (2.0 * std::f64::consts::PI * (i as f64 + 0.5) / n as f64).cos()
    };
    let wx: Vec<f64> = (0..w).map(|x| hann(x, w)).collect();
    let wy: Vec<f64> = (0..h).map(|y| hann(y, h)).collect();
    let spectrum = |p: &[f32]| {
        let (m, _) = mean_std(p);
        let mut re = vec![0f64; pw * ph];
        let mut im = vec![0f64; pw * ph];
        for y in 0..h {
            for x in 0..w {
                re[y * pw + x] = (p[y * w + x] as f64 - m) * wx[x] * wy[y];
            }
        }
        metrics::fft2(&mut re, &mut im, pw, ph, false);
        (re, im)
    };
    let (ar, ai) = spectrum(a);
    let (mut cr, mut ci) = spectrum(b);
    let freq = |k: usize, n: usize| {
        if k > n / 2 {
            k as f64 / n as f64 - 1.0
        } else {
            k as f64 / n as f64
        }
    };
    let sigma = 0.2f64;
    for i in 0..pw * ph {
        let (br, bi) = (cr[i], ci[i]);
        // B conj(A) / |B conj(A)|: peaks at the displacement of b.
        let (re, im) = (br * ar[i] + bi * ai[i], bi * ar[i] - br * ai[i]);
        let m = re.hypot(im);
        let (u, v) = (freq(i % pw, pw), freq(i / pw, ph));
        let weight = (-(u * u + v * v) / (2.0 * sigma * sigma)).exp();
        if m > 1e-12 {
            cr[i] = weight * re / m;
            ci[i] = weight * im / m;
        } else {
            cr[i] = 0.0;
            ci[i] = 0.0;
        }
    }
    metrics::fft2(&mut cr, &mut ci, pw, ph, true);
    metrics::correlation_peaks(&cr, pw, ph, count, metrics::Ties::ByPosition)
}

/// Gaussian elimination with partial pivoting; `None` when (nearly) singular: a pivot at or
/// below `eps` times the largest entry.
#[allow(clippy::needless_range_loop)] // row/column indices read plainer than iterators here
pub(super) fn solve(mut m: Vec<Vec<f64>>, mut b: Vec<f64>, eps: f64) -> Option<Vec<f64>> {
    let n = b.len();
    let scale = m.iter().flatten().fold(0.0f64, |s, v| s.max(v.abs()));
    if scale.is_nan() || scale <= 0.0 || !scale.is_finite() {
        return None;
    }
    for c in 0..n {
        let p = (c..n).max_by(|&i, &j| m[i][c].abs().total_cmp(&m[j][c].abs()))?;
        let pivot = m[p][c].abs();
        if pivot.is_nan() || pivot <= eps * scale {
            return None;
        }
        m.swap(c, p);
        b.swap(c, p);
        for r in c + 1..n {
            let f = m[r][c] / m[c][c];
            for k in c..n {
                m[r][k] -= f * m[c][k];
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = vec![0f64; n];
    for c in (0..n).rev() {
        let s: f64 = (c + 1..n).map(|k| m[c][k] * x[k]).sum();
        x[c] = (b[c] - s) / m[c][c];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_and_invert() {
        let a = Similarity {
            dx: 1.5,
            dy: -0.7,
            rot: 0.01,
            scale: 1.002,
        };
        let b = Similarity {
            dx: -0.3,
            dy: 2.0,
            rot: -0.004,
            scale: 0.999,
        };
        let u = [123.0, -45.0];
        let ab = a.then(&b);
        let direct = b.apply(a.apply(u));
        let via = ab.apply(u);
        assert!((direct[0] - via[0]).abs() < 1e-9 && (direct[1] - via[1]).abs() < 1e-9);
        let back = a.inverse().apply(a.apply(u));
        assert!((back[0] - u[0]).abs() < 1e-9 && (back[1] - u[1]).abs() < 1e-9);
    }
}
