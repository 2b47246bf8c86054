//! Noise measurement: the noise-level function (standard deviation against intensity, per
//! channel) and the grain size, from the flattest blocks of the frames.
//!
//! Every plane is cut into `8 x 8` blocks ([`block_stats`], `shaders/denoise_stats.wgsl`); each
//! gets its mean, the variance of its residual about a fitted plane (`a + b x + c y`: a
//! gradient is not noise) and the mean product of horizontally and vertically adjacent
//! residuals; the same for the difference of each pair of neighbouring frames, where picture
//! that holds still cancels and two frames' noise remains. Per intensity bin ([`BINS`] of them
//! over 0..1), the noise variance is the 10th percentile of the blocks' residual variances:
//! texture (in one frame) and motion (between two) only add variance, so the low percentile
//! comes from flat or still blocks; of the two measures the lower is taken. The picking of a
//! low percentile and the fitted plane understate the noise by a factor that depends on how
//! correlated it is; the correlation of adjacent residuals on the flattest blocks tells the
//! grain size (as the gaussian blur that would turn white noise into it), and the factor for
//! that size is computed exactly ([`estimate`]) and divided out. A bin with fewer than
//! [`MIN_BLOCKS`] blocks in a measure takes that measure's nearest bin that has them.

use rayon::prelude::*;
use serde::Serialize;

/// Side of the measuring blocks (and of the denoiser's patches).
pub const B: usize = 8;
/// Intensity bins of the noise-level function over 0..1.
pub const BINS: usize = 8;
/// Fewest blocks a bin needs for its own estimate.
pub const MIN_BLOCKS: usize = 8;
/// Percentile of the blocks' residual variances taken as the noise variance (see
/// [`chi2_q10_ratio`]).
const QUANTILE: f64 = 0.1;
/// Degrees of freedom of a block's residual variance: 64 samples less the fitted plane.
const DOF: f64 = (B * B - 3) as f64;
/// Largest grain size reported (pixels): beyond it the correlation cannot be told from picture.
pub const MAX_GRAIN: f32 = 3.0;

/// What one block says about the noise: mean, residual variance, mean product of adjacent
/// residuals (horizontal and vertical pairs together).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockStat {
    pub mean: f32,
    pub var: f32,
    pub lag: f32,
}

/// The noise of one plane.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlaneNoise {
    /// Standard deviation at the centre of each intensity bin (`(i + 0.5) / BINS`).
    pub sigma: [f32; BINS],
    /// Gaussian blur (pixels) that turns white noise into noise correlated like the grain;
    /// 0 for white noise.
    pub grain_size: f32,
    /// Blocks the estimate came from.
    pub blocks: usize,
}

impl PlaneNoise {
    /// Noise of one standard deviation everywhere.
    pub fn flat(sigma: f32, grain_size: f32) -> Self {
        PlaneNoise {
            sigma: [sigma; BINS],
            grain_size,
            blocks: 0,
        }
    }

    /// The standard deviation at level `v`: linear between bin centres, constant beyond.
    pub fn at(&self, v: f32) -> f32 {
        sigma_at(&self.sigma, v)
    }
}

/// [`PlaneNoise::at`] on a bare table; the shaders do the same.
#[inline(always)]
pub fn sigma_at(sigma: &[f32; BINS], v: f32) -> f32 {
    let t = (v * BINS as f32 - 0.5).clamp(0.0, (BINS - 1) as f32);
    // `t` is not negative, so truncation is its floor (and needs no libm call).
    let i = (t as usize).min(BINS - 1);
    let j = (i + 1).min(BINS - 1);
    sigma[i] + (sigma[j] - sigma[i]) * (t - i as f32)
}

/// Per-block statistics of one plane (`w * h` samples, row-major): blocks wholly inside, in
/// raster order. With `other`, the statistics of the difference `plane - other` (two frames'
/// independent noise: texture that holds still cancels), halved so they read as one frame's
/// noise. The mean (which bins the block) is `level`'s: the plane itself, or the first plane
/// of an opponent frame, whose noise the other planes' follows. The sums run in a fixed order;
/// `shaders/denoise_stats.wgsl` mirrors them.
pub fn block_stats(
    plane: &[f32],
    other: Option<&[f32]>,
    level: &[f32],
    w: usize,
    h: usize,
) -> Vec<BlockStat> {
    let (bw, bh) = (w / B, h / B);
    let rows: Vec<Vec<BlockStat>> = (0..bh)
        .into_par_iter()
        .map(|by| block_row(plane, other, level, w, bw, by * B))
        .collect();
    rows.concat()
}

/// Centred coordinate of index `i` in a block: -3.5..3.5.
fn centred(i: usize) -> f32 {
    i as f32 - 3.5
}

/// Sample `x` of every block along `line` (a row's samples of whole blocks).
#[inline(always)]
fn column(p: &[f32], line: std::ops::Range<usize>, x: usize) -> impl Iterator<Item = f32> + '_ {
    p[line].iter().skip(x).step_by(B).copied()
}

crate::wide! {
    /// The `bw` blocks of the row of blocks from line `y0` (see [`block_stats`]). Each block's
    /// sums run in raster order, as one block at a time would; the samples are first laid out
    /// with the blocks side by side (`[y][x][block]`), so every step of those sums runs over all
    /// the row's blocks at once instead of one long chain of additions per block.
    fn block_row(plane: &[f32], other: Option<&[f32]>, level: &[f32], w: usize, bw: usize, y0: usize) -> Vec<BlockStat> {
        let at = |x: usize, y: usize| (y * B + x) * bw..(y * B + x + 1) * bw;
        let mut v = vec![0.0f32; B * B * bw];
        let mut lv = vec![0.0f32; B * B * bw];
        for y in 0..B {
            let row = (y0 + y) * w..(y0 + y) * w + bw * B;
            for x in 0..B {
                // Sample x of every block on line y.
                let col = |p| column(p, row.clone(), x);
                let d = v[at(x, y)].iter_mut().zip(col(plane));
                match other {
                    Some(o) => d.zip(col(o)).for_each(|((d, a), b)| *d = a - b),
                    None => d.for_each(|(d, a)| *d = a - 0.0),
                }
                lv[at(x, y)].iter_mut().zip(col(level)).for_each(|(d, l)| *d = l);
            }
        }
        let (mut m, mut s) = (vec![0.0f32; bw], vec![0.0f32; bw]);
        let (mut sx, mut sy) = (vec![0.0f32; bw], vec![0.0f32; bw]);
        for y in 0..B {
            for x in 0..B {
                let (cx, cy) = (centred(x), centred(y));
                let sums = m.iter_mut().zip(s.iter_mut()).zip(sx.iter_mut().zip(sy.iter_mut()));
                for (((m, s), (sx, sy)), (&v, &l)) in sums.zip(v[at(x, y)].iter().zip(&lv[at(x, y)])) {
                    *m += l;
                    *s += v;
                    *sx += v * cx;
                    *sy += v * cy;
                }
            }
        }
        // Sum of squared centred coordinates over the block: 8 * (2 * (0.5² + 1.5² + 2.5² +
        // 3.5²)).
        let sxx = 336.0f32;
        let fit: Vec<(f32, f32, f32)> = s
            .iter()
            .zip(sx.iter().zip(&sy))
            .map(|(s, (sx, sy))| (s / 64.0, sx / sxx, sy / sxx))
            .collect();
        // The residuals after the block's mean and gradient, in place.
        for y in 0..B {
            for x in 0..B {
                let (cx, cy) = (centred(x), centred(y));
                for (r, &(mean, gx, gy)) in v[at(x, y)].iter_mut().zip(&fit) {
                    *r = *r - mean - gx * cx - gy * cy;
                }
            }
        }
        let (mut ss, mut lag) = (vec![0.0f32; bw], vec![0.0f32; bw]);
        for y in 0..B {
            for x in 0..B {
                let r = &v[at(x, y)];
                for (ss, &r) in ss.iter_mut().zip(r) {
                    *ss += r * r;
                }
                if x + 1 < B {
                    for ((lag, &r), &n) in lag.iter_mut().zip(r).zip(&v[at(x + 1, y)]) {
                        *lag += r * n;
                    }
                }
                if y + 1 < B {
                    for ((lag, &r), &n) in lag.iter_mut().zip(r).zip(&v[at(x, y + 1)]) {
                        *lag += r * n;
                    }
                }
            }
        }
        let half = if other.is_some() { 0.5 } else { 1.0 };
        (0..bw)
            .map(|k| BlockStat {
                mean: m[k] / 64.0,
                var: half * ss[k] / DOF as f32,
                lag: half * lag[k] / (2 * B * (B - 1)) as f32,
            })
            .collect()
    }
}

/// The bin of a block mean.
fn bin_of(mean: f32) -> usize {
    ((mean.clamp(0.0, 1.0) * BINS as f32) as usize).min(BINS - 1)
}

/// Quantile `q` of sorted values, linear between ranks.
fn quantile(sorted: &[f32], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let i = pos.floor() as usize;
    let j = (i + 1).min(sorted.len() - 1);
    let t = pos - i as f64;
    sorted[i] as f64 * (1.0 - t) + sorted[j] as f64 * t
}

/// The 10th percentile of chi-square(`k`) / `k` (Wilson–Hilferty).
fn chi2_q10_ratio(k: f64) -> f64 {
    // The standard normal's 10th percentile.
    let z = -1.281_551_565_5;
    let a = 2.0 / (9.0 * k);
    (1.0 - a + z * a.sqrt()).powi(3).max(1e-3)
}

/// Gaussian blur size (pixels) of white noise whose neighbouring samples correlate by `rho`:
/// `rho = exp(-1 / (4 s²))`. 0 for `rho` at or below 0.01.
pub fn grain_size_of(rho: f32) -> f32 {
    if rho <= 0.01 {
        return 0.0;
    }
    let rho = rho.min(0.97);
    (-1.0 / (4.0 * rho.ln())).sqrt().min(MAX_GRAIN)
}

/// Correlation of neighbouring samples of white noise blurred by a gaussian of `size` pixels.
pub fn rho_of(size: f32) -> f32 {
    if size <= 0.0 {
        0.0
    } else {
        (-1.0 / (4.0 * size * size)).exp()
    }
}

/// What the block statistics of pure noise of one grain size look like, per unit variance.
#[derive(Clone, Copy, Debug)]
struct Expected {
    size: f32,
    /// Mean of `lag / var` (what the flattest blocks measure).
    ratio: f64,
    /// Mean of `var` (the fitted plane takes more of correlated noise).
    var: f64,
    /// Effective degrees of freedom of `var`.
    dof: f64,
}

/// Grain sizes tabulated for [`expected`].
const SIZES: usize = 31;

/// [`Expected`] for grain sizes 0, 0.1, .. 3: the residual `r = P n` of correlated noise
/// (`P` removes the fitted plane, `n` has covariance `C`, `C_ij = rho^(d²)`) has covariance
/// `R = P C P`, so `E[var] = tr(R) / 61`, `E[lag] = tr(A R) / 112` (`A` the adjacency of the
/// pairs) and `var` is close to a scaled chi-square of `tr(R)² / tr(R²)` degrees of freedom.
/// Computed once.
fn expected() -> &'static [Expected; SIZES] {
    static TABLE: std::sync::OnceLock<[Expected; SIZES]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        const N: usize = B * B;
        let c = |i: usize| i as f64 - 3.5;
        let mut p = vec![0.0f64; N * N];
        for i in 0..N {
            for j in 0..N {
                let (xi, yi, xj, yj) = (c(i % B), c(i / B), c(j % B), c(j / B));
                let h = 1.0 / 64.0 + xi * xj / 336.0 + yi * yj / 336.0;
                p[i * N + j] = (i == j) as u8 as f64 - h;
            }
        }
        let mul = |a: &[f64], b: &[f64]| {
            let mut o = vec![0.0f64; N * N];
            for i in 0..N {
                for k in 0..N {
                    let v = a[i * N + k];
                    if v != 0.0 {
                        for j in 0..N {
                            o[i * N + j] += v * b[k * N + j];
                        }
                    }
                }
            }
            o
        };
        std::array::from_fn(|s| {
            let size = s as f32 * 0.1;
            let rho = rho_of(size) as f64;
            let mut cov = vec![0.0f64; N * N];
            for i in 0..N {
                for j in 0..N {
                    let dx = (i % B) as f64 - (j % B) as f64;
                    let dy = (i / B) as f64 - (j / B) as f64;
                    let d2 = dx * dx + dy * dy;
                    cov[i * N + j] = if d2 == 0.0 { 1.0 } else { rho.powf(d2) };
                }
            }
            let r = mul(&mul(&p, &cov), &p);
            let tr: f64 = (0..N).map(|i| r[i * N + i]).sum();
            let tr2: f64 = (0..N)
                .map(|i| (0..N).map(|j| r[i * N + j] * r[j * N + i]).sum::<f64>())
                .sum();
            // tr(A R) with A holding 1/2 at both ends of each adjacent pair: the pairs' sum.
            let mut lag = 0.0f64;
            for y in 0..B {
                for x in 0..B {
                    let i = y * B + x;
                    if x + 1 < B {
                        lag += r[i * N + i + 1];
                    }
                    if y + 1 < B {
                        lag += r[i * N + i + B];
                    }
                }
            }
            let var = tr / DOF;
            Expected {
                size,
                ratio: lag / (2 * B * (B - 1)) as f64 / var,
                var,
                dof: tr * tr / tr2,
            }
        })
    })
}

/// The tabulated [`Expected`] whose `lag / var` matches `ratio`, linear between entries.
fn expected_for(ratio: f64) -> Expected {
    let t = expected();
    if ratio <= t[0].ratio {
        return t[0];
    }
    for w in t.windows(2) {
        if ratio <= w[1].ratio {
            let f = (ratio - w[0].ratio) / (w[1].ratio - w[0].ratio);
            let l = |a: f64, b: f64| a + (b - a) * f;
            return Expected {
                size: l(w[0].size as f64, w[1].size as f64) as f32,
                ratio,
                var: l(w[0].var, w[1].var),
                dof: l(w[0].dof, w[1].dof),
            };
        }
    }
    t[SIZES - 1]
}

/// `(10th percentile of var, Σ lag, Σ var)`, see [`measure`].
type Measure = (f64, f64, f64);

/// One bin's measurement: the 10th percentile of the residual variances, and the sums of lag
/// and variance over the flattest quarter (for the correlation).
fn measure(blocks: &mut [BlockStat]) -> Measure {
    blocks.sort_by(|a, b| a.var.total_cmp(&b.var));
    let vars: Vec<f32> = blocks.iter().map(|b| b.var).collect();
    let q = quantile(&vars, QUANTILE).max(0.0);
    let n = blocks.len().div_ceil(2);
    let (l, v) = blocks[..n].iter().fold((0.0f64, 0.0f64), |(l, v), b| {
        (l + b.lag as f64, v + b.var as f64)
    });
    (q, l, v)
}

fn binned(stats: &[BlockStat]) -> Vec<Vec<BlockStat>> {
    let mut bins: Vec<Vec<BlockStat>> = vec![Vec::new(); BINS];
    for s in stats {
        if s.mean.is_finite() && s.var.is_finite() && s.lag.is_finite() {
            bins[bin_of(s.mean)].push(*s);
        }
    }
    bins
}

/// The noise of one plane from the statistics of its blocks (pooled over several frames):
/// `spatial` from single frames, `temporal` from differences of neighbouring frames (see
/// [`block_stats`]). Both can only overstate the noise, the one by texture, the other by
/// motion, so each bin takes the lower. The correlation measured on the flattest blocks names
/// the grain size, and with it how far the fitted plane and the picking of the lowest
/// percentile understate correlated noise ([`expected`]), which is then corrected.
pub fn estimate(spatial: &[BlockStat], temporal: &[BlockStat]) -> PlaneNoise {
    let per_bin = |stats: &[BlockStat]| -> [Option<(Measure, usize)>; BINS] {
        let mut bins = binned(stats);
        std::array::from_fn(|i| {
            (bins[i].len() >= MIN_BLOCKS).then(|| (measure(&mut bins[i]), bins[i].len()))
        })
    };
    let (s, t) = (per_bin(spatial), per_bin(temporal));
    // A bin short of blocks in one measure takes that measure's nearest bin, so a bin with
    // texture but too few still blocks is still bounded by the still blocks around it.
    let fill = |m: &[Option<(Measure, usize)>; BINS], i: usize| {
        (0..BINS)
            .filter_map(|j| m[j].map(|v| (i.abs_diff(j), j, v.0 .0)))
            .min_by_key(|&(d, j, _)| (d, j))
            .map(|(_, _, q)| q)
    };
    let mut raw: [Option<f64>; BINS] = [None; BINS];
    let (mut lag_sum, mut var_sum) = (0.0f64, 0.0f64);
    let mut used = 0;
    for i in 0..BINS {
        let (qs, qt) = (fill(&s, i), fill(&t, i));
        let take_t = match (qs, qt) {
            (Some(a), Some(b)) => b < a,
            (None, Some(_)) => true,
            _ => false,
        };
        raw[i] = if take_t { qt } else { qs };
        // The correlation from the bins measured directly.
        if let Some(((_, l, v), n)) = if take_t { t[i] } else { s[i] } {
            lag_sum += l;
            var_sum += v;
            used += n;
        }
    }
    if raw.iter().all(Option::is_none) {
        // Too few blocks per bin: one estimate over all of them, if there are enough.
        let mut all: Vec<BlockStat> = spatial
            .iter()
            .copied()
            .filter(|s| s.var.is_finite())
            .collect();
        if all.len() < MIN_BLOCKS {
            return PlaneNoise::flat(0.0, 0.0);
        }
        let (q, l, v) = measure(&mut all);
        raw = [Some(q); BINS];
        (lag_sum, var_sum, used) = (l, v, all.len());
    }
    let e = expected_for(if var_sum > 0.0 {
        lag_sum / var_sum
    } else {
        0.0
    });
    let scale = e.var * chi2_q10_ratio(e.dof);
    PlaneNoise {
        sigma: raw.map(|q| q.map_or(0.0, |q| (q / scale).sqrt() as f32)),
        grain_size: e.size.min(MAX_GRAIN),
        blocks: used,
    }
}

/// The noise of every plane of frames of one shape, in temporal order and without a cut
/// between them: [`estimate`] over each frame and each neighbouring pair, blocks binned by
/// their own plane.
pub fn estimate_frames(frames: &[&crate::frame::Frame]) -> Vec<PlaneNoise> {
    estimate_frames_by(frames, false)
}

/// [`estimate_frames`]; with `first_level`, every plane's blocks are binned by the first
/// plane (frames in the opponent space of [`super::cpu::to_opponent`]).
pub fn estimate_frames_by(frames: &[&crate::frame::Frame], first_level: bool) -> Vec<PlaneNoise> {
    let spatial: Vec<PlaneStats> = frames.iter().map(|f| frame_stats(f, first_level)).collect();
    let temporal: Vec<PlaneStats> = frames
        .windows(2)
        .map(|f| pair_stats(f[0], f[1], first_level))
        .collect();
    estimate_from(
        &spatial.iter().collect::<Vec<_>>(),
        &temporal.iter().collect::<Vec<_>>(),
    )
}

/// Block statistics per plane ([`block_stats`]).
pub type PlaneStats = Vec<Vec<BlockStat>>;

/// The block statistics of every plane of one frame, as [`estimate_frames_by`] takes them:
/// what the stage keeps per frame, as each frame is measured in several windows.
pub fn frame_stats(f: &crate::frame::Frame, first_level: bool) -> PlaneStats {
    let lp = |p: usize| if first_level { 0 } else { p };
    (0..f.planes)
        .map(|p| block_stats(f.plane(p), None, f.plane(lp(p)), f.width, f.height))
        .collect()
}

/// The block statistics of every plane of the difference of two neighbouring frames `a - b`.
pub fn pair_stats(
    a: &crate::frame::Frame,
    b: &crate::frame::Frame,
    first_level: bool,
) -> PlaneStats {
    let lp = |p: usize| if first_level { 0 } else { p };
    (0..a.planes)
        .map(|p| {
            block_stats(
                a.plane(p),
                Some(b.plane(p)),
                a.plane(lp(p)),
                a.width,
                a.height,
            )
        })
        .collect()
}

/// [`estimate`] per plane over the statistics of frames in temporal order (`spatial`) and of
/// their neighbouring pairs (`temporal`), pooled in that order.
pub fn estimate_from(spatial: &[&PlaneStats], temporal: &[&PlaneStats]) -> Vec<PlaneNoise> {
    let Some(first) = spatial.first() else {
        return Vec::new();
    };
    (0..first.len())
        .into_par_iter()
        .map(|p| {
            let s: Vec<BlockStat> = spatial.iter().flat_map(|f| f[p].iter().copied()).collect();
            let t: Vec<BlockStat> = temporal.iter().flat_map(|f| f[p].iter().copied()).collect();
            estimate(&s, &t)
        })
        .collect()
}

/// Variance of the 3x3 mean of unit-variance noise whose neighbours correlate by `rho` (and
/// samples `d` apart by `rho^(d²)`, as gaussian-blurred noise does).
pub fn mean3_variance(rho: f32) -> f32 {
    let mut s = 0.0f32;
    for a in 0..9i32 {
        for b in 0..9i32 {
            let (dx, dy) = (a % 3 - b % 3, a / 3 - b / 3);
            let d2 = (dx * dx + dy * dy) as f32;
            s += if d2 == 0.0 { 1.0 } else { rho.powf(d2) };
        }
    }
    s / 81.0
}

/// Noise power of each coefficient of the orthonormal 8x8 DCT, relative to white noise of the
/// same variance (mean 1 over the 64): gaussian-blurred noise of `size` pixels has power
/// `exp(-size² ω²)` at angular frequency `ω`, and basis `u` sits at `ω = π u / 8`.
pub fn dct_noise_shape(size: f32) -> [f32; 64] {
    let mut shape = [0.0f32; 64];
    let w = |u: usize| std::f32::consts::PI * u as f32 / B as f32;
    for v in 0..B {
        for u in 0..B {
            shape[v * B + u] = (-size * size * (w(u) * w(u) + w(v) * w(v))).exp();
        }
    }
    let mean = shape.iter().sum::<f32>() / 64.0;
    shape.iter_mut().for_each(|s| *s /= mean);
    shape
}
