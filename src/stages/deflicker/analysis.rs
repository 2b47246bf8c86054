//! The measuring half of `deflicker`, shared by both backends: thumbnails, the photometric fit
//! between neighbouring frames, and the temporally smoothed target that gives the correction.
//! Everything here works on thumbnails (about 80 blocks across), so it costs the same at any
//! frame size.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::cpu::{axis, lerp};
use super::cuts::{self, Similarity, Thumbnail, THUMB_SIDE};
use super::DeflickerParams;

/// How frames are cut into blocks for thumbnails: blocks of `block` x `block` pixels (the last
/// column and row of blocks may be narrower), `tw` x `th` of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Geometry {
    pub width: usize,
    pub height: usize,
    pub planes: usize,
    pub block: usize,
    pub tw: usize,
    pub th: usize,
}

impl Geometry {
    /// About [`THUMB_SIDE`] blocks along the longer side.
    pub fn of(width: usize, height: usize, planes: usize) -> Self {
        Self::with_side(width, height, planes, THUMB_SIDE)
    }

    /// About `side` blocks along the longer side.
    pub fn with_side(width: usize, height: usize, planes: usize, side: usize) -> Self {
        let block = width.max(height).div_ceil(side).max(1);
        Geometry {
            width,
            height,
            planes,
            block,
            tw: width.div_ceil(block),
            th: height.div_ceil(block),
        }
    }

    /// Blocks per plane.
    pub fn len(&self) -> usize {
        self.tw * self.th
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pixels in block `(bx, by)`.
    pub fn count(&self, bx: usize, by: usize) -> usize {
        let w = ((bx + 1) * self.block).min(self.width) - bx * self.block;
        let h = ((by + 1) * self.block).min(self.height) - by * self.block;
        w * h
    }

    /// Centre of block `(bx, by)` in pixel coordinates (pixel `i` covers `i..i+1`, its centre is
    /// at index `i`, as [`axis`] takes it).
    pub fn center(&self, bx: usize, by: usize) -> (f32, f32) {
        let c = |b: usize, n: usize| {
            let (lo, hi) = (b * self.block, ((b + 1) * self.block).min(n));
            (lo + hi - 1) as f32 * 0.5
        };
        (c(bx, self.width), c(by, self.height))
    }

    /// Block means from block sums (planar).
    pub fn means(&self, sums: &[f32]) -> Vec<f32> {
        let n = self.len();
        let counts: Vec<f32> = (0..n)
            .map(|i| self.count(i % self.tw, i / self.tw) as f32)
            .collect();
        sums.iter()
            .enumerate()
            .map(|(i, s)| s / counts[i % n])
            .collect()
    }
}

/// A frame reduced to block means, with its luma thumbnail and a hash of its content.
#[derive(Clone, Debug)]
pub struct Thumb {
    pub geo: Geometry,
    /// Planar block means, `geo.len()` per plane.
    pub means: Vec<f32>,
    pub luma: Thumbnail,
    /// Hash of the geometry and the block sums' bits: equal thumbnails, equal hashes.
    pub hash: u64,
}

impl Thumb {
    pub fn from_sums(geo: Geometry, sums: &[f32]) -> Self {
        let mut h = DefaultHasher::new();
        geo.hash(&mut h);
        for s in sums {
            s.to_bits().hash(&mut h);
        }
        let means = geo.means(sums);
        let luma = Thumbnail::new(geo.tw, geo.th, cuts::luma(&means, geo.len(), geo.planes));
        Thumb {
            geo,
            means,
            luma,
            hash: h.finish(),
        }
    }

    fn plane(&self, p: usize) -> &[f32] {
        let n = self.geo.len();
        &self.means[p * n..(p + 1) * n]
    }

    /// Mean luma of the frame (block means weighted by their pixel counts).
    pub fn mean_luma(&self) -> f64 {
        weighted_mean(&self.geo, &self.luma.data)
    }
}

fn weighted_mean(geo: &Geometry, values: &[f32]) -> f64 {
    let (mut s, mut n) = (0.0f64, 0.0f64);
    for (i, v) in values.iter().enumerate() {
        if v.is_finite() {
            let c = geo.count(i % geo.tw, i / geo.tw) as f64;
            s += *v as f64 * c;
            n += c;
        }
    }
    if n > 0.0 {
        s / n
    } else {
        0.0
    }
}

/// The parameters as the analysis uses them.
#[derive(Clone, Debug)]
pub struct Config {
    pub cols: usize,
    pub rows: usize,
    pub per_channel: bool,
    pub offset: bool,
    pub window: usize,
    pub strength: f64,
    pub cut_threshold: f64,
}

impl From<&DeflickerParams> for Config {
    fn from(p: &DeflickerParams) -> Self {
        Config {
            cols: p.grid[0],
            rows: p.grid[1],
            per_channel: p.per_channel,
            offset: p.offset,
            window: p.window,
            strength: p.strength,
            cut_threshold: p.cut_threshold,
        }
    }
}

impl Config {
    fn nodes(&self) -> usize {
        self.cols * self.rows
    }

    /// Independent photometric groups: one per plane, or one for all.
    fn groups(&self, planes: usize) -> usize {
        if self.per_channel {
            planes.max(1)
        } else {
            1
        }
    }

    /// Node-grid scale factors `nodes / extent` per axis.
    fn scale(&self, geo: &Geometry) -> [f32; 2] {
        [
            self.cols as f32 / geo.width.max(1) as f32,
            self.rows as f32 / geo.height.max(1) as f32,
        ]
    }
}

/// The photometric change from one frame to the next:
/// `next = A(node) * prev + B` per group (channel, or all channels together).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct PairFit {
    pub similarity: Similarity,
    /// A cut lies between the two frames (then `nodes` is the identity).
    pub cut: bool,
    pub groups: usize,
    /// `(A, B)` per group and node, `groups * nodes`.
    pub nodes: Vec<[f64; 2]>,
    /// Share of the compared blocks that the robust fit kept.
    pub inliers: f32,
}

/// Tukey's biweight tuning constant (95 % efficiency for gaussian residuals).
const TUKEY: f64 = 4.685;
/// Tighter for pair fits: moving objects and disocclusions leave residuals a few times the noise
/// that would otherwise pull the fit.
const PAIR_TUKEY: f64 = 2.5;
/// Smallest robust scale of a pair's residuals (code values): grain-free synthetic frames
/// would otherwise reject all but a perfect fit.
const PAIR_SIGMA_FLOOR: f64 = 2e-3;
/// Smallest robust scale of the temporal fit's residuals (code values).
const TIME_SIGMA_FLOOR: f64 = 1.5e-3;
/// Weight of the smoothness tie between neighbouring nodes, relative to a node's data.
const SMOOTHNESS: f64 = 0.002;
/// Typical change between neighbouring nodes' gains from one frame to the next (regional
/// flicker is smooth in time too); sets the tie between nodes against noisy data.
const REGIONAL_STEP: f64 = 0.01;
/// Pull of the offset towards 0, relative to the data (only matters when gain and offset
/// cannot be told apart, e.g. on a flat region).
const OFFSET_RIDGE: f64 = 1e-6;
/// A slope of `t` standard errors is kept by the fraction `t² / (t² + S²)` with this `S` (see
/// [`robust_local_linear`]): a fade (tens of standard errors) whole, drift hidden in jitter
/// mostly not.
const SLOPE_SIGNIFICANCE: f64 = 2.0;
/// Iterations of reweighting.
const IRLS_STEPS: usize = 8;
/// A gain below this between neighbours is not flicker (a fade through black): a cut.
const MIN_PAIR_GAIN: f64 = 0.2;

/// Tukey's biweight for a residual in units of the tuning constant times the scale.
fn tukey(u: f64) -> f64 {
    if u.abs() >= 1.0 {
        0.0
    } else {
        let t = 1.0 - u * u;
        t * t
    }
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let k = values.len() / 2;
    let (_, m, _) = values.select_nth_unstable_by(k, |a, b| a.total_cmp(b));
    *m
}

/// The lower median (the `(n - 1) / 2`-th smallest): the scale of the best-fitting half, so
/// that up to half the frames being flashes does not inflate it.
fn lower_median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let k = (values.len() - 1) / 2;
    let (_, m, _) = values.select_nth_unstable_by(k, |a, b| a.total_cmp(b));
    *m
}

/// One sample of a pair fit: block `p` of the first frame against the motion-compensated
/// second frame.
struct Sample {
    /// Up to four `(node, weight)` of the bilinear basis at the block centre.
    basis: [(usize, f64); 4],
    /// Values in the first and second frame per plane.
    x: [f64; 3],
    y: [f64; 3],
}

/// Bilinear sample of plane `p` of `t` at block coordinates `(fx, fy)`; `None` outside.
fn sample(t: &Thumb, p: usize, fx: f32, fy: f32) -> Option<f64> {
    let (w, h) = (t.geo.tw, t.geo.th);
    if fx < 0.0 || fy < 0.0 || fx > (w - 1) as f32 || fy > (h - 1) as f32 {
        return None;
    }
    let (x0, y0) = (fx.floor() as usize, fy.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (tx, ty) = ((fx - x0 as f32) as f64, (fy - y0 as f32) as f64);
    let v = t.plane(p);
    let at = |x: usize, y: usize| v[y * w + x] as f64;
    let r = (at(x0, y0) * (1.0 - tx) + at(x1, y0) * tx) * (1.0 - ty)
        + (at(x0, y1) * (1.0 - tx) + at(x1, y1) * tx) * ty;
    r.is_finite().then_some(r)
}

/// Largest local displacement searched around the global shift, in blocks.
const LOCAL_RADIUS: i32 = 2;
/// Half-side of the patches compared for local displacements, in blocks.
const PATCH: i32 = 2;
/// Correlation a local displacement must gain per block of distance to be preferred.
const LOCAL_PENALTY: f64 = 0.02;

/// Per block of `a`, the integer displacement `(dx, dy)` (within [`LOCAL_RADIUS`]) at which the
/// patch of `b` around it correlates best with `a`'s patch (normalised cross-correlation, so
/// flicker does not move it). Blocks near the edge, on flat patches or where `b` is missing
/// keep `(0, 0)`; a displacement always lands on a block of `b` with a value.
fn local_displacements(a: &[f32], b: &[f32], w: usize, h: usize) -> Vec<(i32, i32)> {
    let (wi, hi) = (w as i32, h as i32);
    let mut out = vec![(0i32, 0i32); w * h];
    let m = PATCH + LOCAL_RADIUS;
    if wi <= 2 * m || hi <= 2 * m {
        return out;
    }
    let at = |v: &[f32], x: i32, y: i32| v[(y * wi + x) as usize] as f64;
    // Patch statistics: mean and root of the centred sum of squares, or None.
    let stats = |v: &[f32], x: i32, y: i32| -> Option<(f64, f64)> {
        let (mut s, mut s2, mut k) = (0.0f64, 0.0f64, 0.0f64);
        for v2 in -PATCH..=PATCH {
            for u in -PATCH..=PATCH {
                let z = at(v, x + u, y + v2);
                if !z.is_finite() {
                    return None;
                }
                s += z;
                s2 += z * z;
                k += 1.0;
            }
        }
        let ss = s2 - s * s / k;
        (ss > 1e-8 * k).then(|| (s / k, ss.sqrt()))
    };
    let bstats: Vec<Option<(f64, f64)>> = (0..w * h)
        .map(|i| {
            let (x, y) = ((i % w) as i32, (i / w) as i32);
            if x < PATCH || y < PATCH || x >= wi - PATCH || y >= hi - PATCH {
                None
            } else {
                stats(b, x, y)
            }
        })
        .collect();
    for y in m..hi - m {
        for x in m..wi - m {
            let Some((ma, sa)) = stats(a, x, y) else {
                continue;
            };
            let mut best = (f64::NEG_INFINITY, (0, 0));
            for dy in -LOCAL_RADIUS..=LOCAL_RADIUS {
                for dx in -LOCAL_RADIUS..=LOCAL_RADIUS {
                    let (qx, qy) = (x + dx, y + dy);
                    let Some((mb, sb)) = bstats[(qy * wi + qx) as usize] else {
                        continue;
                    };
                    let mut c = 0.0;
                    for v in -PATCH..=PATCH {
                        for u in -PATCH..=PATCH {
                            c += (at(a, x + u, y + v) - ma) * (at(b, qx + u, qy + v) - mb);
                        }
                    }
                    let score = c / (sa * sb) - LOCAL_PENALTY * (dx.abs() + dy.abs()) as f64;
                    if score > best.0 {
                        best = (score, (dx, dy));
                    }
                }
            }
            if best.0.is_finite() {
                out[(y * wi + x) as usize] = best.1;
            }
        }
    }
    out
}

/// Fit the photometric change from `a` to its successor `b` (same geometry).
pub fn fit_pair(a: &Thumb, b: &Thumb, cfg: &Config) -> PairFit {
    let geo = a.geo;
    let (planes, k, groups) = (
        geo.planes.min(3),
        cfg.nodes(),
        cfg.groups(geo.planes.min(3)),
    );
    let identity = |similarity: Similarity, cut: bool| PairFit {
        similarity,
        cut,
        groups,
        nodes: vec![[1.0, 0.0]; groups * k],
        inliers: 0.0,
    };
    let similarity = cuts::compare(&a.luma, &b.luma);
    if cuts::is_cut(&similarity, cfg.cut_threshold) || planes == 0 {
        return identity(similarity, true);
    }
    let scale = cfg.scale(&geo);
    let (sx, sy) = similarity.shift;
    let n = geo.len();
    // The second frame registered on the first by the global shift, then each block moved by
    // its own small displacement (parallax, moving objects), so that what is compared is the
    // same piece of the scene.
    let mut moved: Vec<f32> = vec![f32::NAN; n * planes];
    for by in 0..geo.th {
        for bx in 0..geo.tw {
            for p in 0..planes {
                if let Some(v) = sample(b, p, bx as f32 + sx, by as f32 + sy) {
                    moved[p * n + by * geo.tw + bx] = v as f32;
                }
            }
        }
    }
    let moved_luma = cuts::luma(&moved, n, planes);
    let local = local_displacements(&a.luma.data, &moved_luma, geo.tw, geo.th);
    let mut samples = Vec::with_capacity(n);
    for by in 0..geo.th {
        for bx in 0..geo.tw {
            let i = by * geo.tw + bx;
            let (dx, dy) = local[i];
            let j = ((by as i32 + dy) * geo.tw as i32 + bx as i32 + dx) as usize;
            let mut s = Sample {
                basis: [(0, 0.0); 4],
                x: [0.0; 3],
                y: [0.0; 3],
            };
            let mut ok = true;
            for p in 0..planes {
                let (x, y) = (a.plane(p)[i] as f64, moved[p * n + j] as f64);
                if x.is_finite() && y.is_finite() {
                    s.x[p] = x;
                    s.y[p] = y;
                } else {
                    ok = false;
                }
            }
            if !ok {
                continue;
            }
            let (cx, cy) = geo.center(bx, by);
            let (i0, i1, tx) = axis(cx, cfg.cols, scale[0]);
            let (j0, j1, ty) = axis(cy, cfg.rows, scale[1]);
            let (tx, ty) = (tx as f64, ty as f64);
            s.basis = [
                (j0 * cfg.cols + i0, (1.0 - tx) * (1.0 - ty)),
                (j0 * cfg.cols + i1, tx * (1.0 - ty)),
                (j1 * cfg.cols + i0, (1.0 - tx) * ty),
                (j1 * cfg.cols + i1, tx * ty),
            ];
            samples.push(s);
        }
    }
    if samples.len() < 8 {
        return identity(similarity, false);
    }

    // Start from the median ratio: robust to whatever moved.
    let mut sol: Vec<Vec<f64>> = (0..groups)
        .map(|g| {
            let mut ratios: Vec<f64> = samples
                .iter()
                .flat_map(|s| {
                    let chans: Vec<usize> = if groups == 1 {
                        (0..planes).collect()
                    } else {
                        vec![g]
                    };
                    chans
                        .into_iter()
                        .filter(|&c| s.x[c] > 0.02)
                        .map(|c| s.y[c] / s.x[c])
                        .collect::<Vec<_>>()
                })
                .collect();
            let r = if ratios.is_empty() {
                1.0
            } else {
                median(&mut ratios)
            };
            let mut v = vec![r; k];
            if cfg.offset {
                v.push(0.0);
            }
            v
        })
        .collect();

    let predict = |sol: &[Vec<f64>], s: &Sample, c: usize| {
        let g = if groups == 1 { 0 } else { c };
        let v = &sol[g];
        let gain: f64 = s.basis.iter().map(|&(n, w)| v[n] * w).sum();
        gain * s.x[c] + if cfg.offset { v[k] } else { 0.0 }
    };

    let mut weights = vec![1.0f64; samples.len()];
    for _ in 0..IRLS_STEPS {
        // Weights from the current solution: residuals scaled per channel, combined over
        // channels, so a moving object is rejected in all of them.
        let mut sigma = [0.0f64; 3];
        for (c, sig) in sigma.iter_mut().enumerate().take(planes) {
            let mut r: Vec<f64> = samples
                .iter()
                .map(|s| (s.y[c] - predict(&sol, s, c)).abs())
                .collect();
            *sig = (1.4826 * median(&mut r)).max(PAIR_SIGMA_FLOOR);
        }
        for (w, s) in weights.iter_mut().zip(&samples) {
            let z2: f64 = (0..planes)
                .map(|c| ((s.y[c] - predict(&sol, s, c)) / sigma[c]).powi(2))
                .sum::<f64>()
                / planes as f64;
            *w = tukey(z2.sqrt() / PAIR_TUKEY);
        }
        for (g, v) in sol.iter_mut().enumerate() {
            let chans: Vec<usize> = if groups == 1 {
                (0..planes).collect()
            } else {
                vec![g]
            };
            let noise = chans.iter().map(|&c| sigma[c]).sum::<f64>() / chans.len() as f64;
            if let Some(new) = solve_group(&samples, &weights, &chans, k, noise, cfg) {
                *v = new;
            }
        }
    }
    let inliers = weights.iter().filter(|&&w| w > 0.0).count() as f32 / samples.len() as f32;
    let mut nodes = Vec::with_capacity(groups * k);
    for v in &sol {
        let b = if cfg.offset { v[k] } else { 0.0 };
        nodes.extend(v[..k].iter().map(|&a| [a, b]));
    }
    let cut = nodes
        .iter()
        .any(|n| n[0].is_nan() || n[0] < MIN_PAIR_GAIN || !n[1].is_finite());
    if cut {
        return identity(similarity, true);
    }
    PairFit {
        similarity,
        cut: false,
        groups,
        nodes,
        inliers,
    }
}

/// Weighted least squares for one group: `k` node gains (and an offset), with the smoothness
/// tie between neighbouring nodes. `None` when singular.
fn solve_group(
    samples: &[Sample],
    weights: &[f64],
    chans: &[usize],
    k: usize,
    noise: f64,
    cfg: &Config,
) -> Option<Vec<f64>> {
    let n = k + cfg.offset as usize;
    let mut m = vec![0.0f64; n * n];
    let mut rhs = vec![0.0f64; n];
    let (mut wsum, mut xx) = (0.0f64, 0.0f64);
    for (s, &w) in samples.iter().zip(weights) {
        if w <= 0.0 {
            continue;
        }
        for &c in chans {
            let (x, y) = (s.x[c], s.y[c]);
            // z = [phi_j * x ..., 1]
            let mut z: [(usize, f64); 5] = [(0, 0.0); 5];
            for (slot, &(node, phi)) in z.iter_mut().zip(&s.basis) {
                *slot = (node, phi * x);
            }
            let len = if cfg.offset {
                z[4] = (k, 1.0);
                5
            } else {
                4
            };
            for &(i, zi) in &z[..len] {
                rhs[i] += w * zi * y;
                for &(j, zj) in &z[..len] {
                    m[i * n + j] += w * zi * zj;
                }
            }
            wsum += w;
            xx += w * x * x;
        }
    }
    if wsum <= 0.0 {
        return None;
    }
    // The tie between neighbouring nodes: a little always, and as much as the residual noise
    // makes the data less certain than the prior that neighbouring gains change alike.
    let lambda = (SMOOTHNESS * xx / k as f64).max((noise / REGIONAL_STEP).powi(2));
    for j in 0..cfg.rows {
        for i in 0..cfg.cols {
            let a = j * cfg.cols + i;
            let mut tie = |b: usize| {
                m[a * n + a] += lambda;
                m[b * n + b] += lambda;
                m[a * n + b] -= lambda;
                m[b * n + a] -= lambda;
            };
            if i + 1 < cfg.cols {
                tie(a + 1);
            }
            if j + 1 < cfg.rows {
                tie(a + cfg.cols);
            }
        }
    }
    // A node no sample reaches follows its neighbours; a whisper of ridge keeps it defined.
    for a in 0..k {
        m[a * n + a] += 1e-9 * xx + 1e-12;
    }
    if cfg.offset {
        m[k * n + k] += OFFSET_RIDGE * wsum;
    }
    cholesky_solve(&mut m, &mut rhs, n).then_some(rhs)
}

/// Solve `m x = rhs` in place for symmetric positive definite `m` (`n` x `n`); false when not
/// positive definite.
fn cholesky_solve(m: &mut [f64], rhs: &mut [f64], n: usize) -> bool {
    for j in 0..n {
        let mut d = m[j * n + j];
        for p in 0..j {
            d -= m[j * n + p] * m[j * n + p];
        }
        if d.is_nan() || d <= 0.0 || !d.is_finite() {
            return false;
        }
        let d = d.sqrt();
        m[j * n + j] = d;
        for i in j + 1..n {
            let mut s = m[i * n + j];
            for p in 0..j {
                s -= m[i * n + p] * m[j * n + p];
            }
            m[i * n + j] = s / d;
        }
    }
    for i in 0..n {
        let mut s = rhs[i];
        for p in 0..i {
            s -= m[i * n + p] * rhs[p];
        }
        rhs[i] = s / m[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = rhs[i];
        for p in i + 1..n {
            s -= m[p * n + i] * rhs[p];
        }
        rhs[i] = s / m[i * n + i];
    }
    rhs.iter().all(|v| v.is_finite())
}

/// The correction of one frame: gain and offset per plane at the nodes of the grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Correction {
    pub cols: usize,
    pub rows: usize,
    pub planes: usize,
    /// `nodes / extent` per axis (x, y), as [`axis`] takes it.
    pub scale: [f32; 2],
    /// `(gain, offset)` per plane and node, `(plane * rows + row) * cols + col`.
    pub nodes: Vec<[f32; 2]>,
}

impl Correction {
    pub fn identity(cols: usize, rows: usize, planes: usize, scale: [f32; 2]) -> Self {
        Correction {
            cols,
            rows,
            planes,
            scale,
            nodes: vec![[1.0, 0.0]; cols * rows * planes],
        }
    }

    pub fn plane_nodes(&self, p: usize) -> &[[f32; 2]] {
        let k = self.cols * self.rows;
        &self.nodes[p * k..(p + 1) * k]
    }
}

/// What the analysis of one frame found, for the flicker curve.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Mean luma of the frame as it came in (Rec.709 weights for colour).
    pub measured: f64,
    /// Mean luma after the correction.
    pub corrected: f64,
    /// Mean gain and offset applied (luma-weighted over channels, averaged over the grid).
    pub gain: f64,
    pub offset: f64,
    /// Frames of the window used before and after the centre (fewer at cuts and ends).
    pub used_before: usize,
    pub used_after: usize,
    /// A cut was found just before this frame.
    pub cut_before: bool,
    /// The frame matches neither neighbour while they match each other (torn, heavily
    /// blotched, or a flash frame): it is left as it is, and its neighbours bridge over it.
    pub isolated: bool,
}

/// Tricube kernel over `|tau| < radius + 1`.
fn kernel(tau: f64, radius: usize) -> f64 {
    let u = tau.abs() / (radius as f64 + 1.0);
    if u >= 1.0 {
        0.0
    } else {
        let t = 1.0 - u * u * u;
        t * t * t
    }
}

/// The start of the reweighting: the line (through two frames, or flat through one when no
/// slope is wanted) that fits at least half of the frames best, by the half-th smallest residual
/// (least median of squares). Up to half the frames can be flashes, even where they crowd the
/// centre or the end of a shot, without moving it. Returns `(value at 0, slope)` per series.
fn least_median_line(
    tau: &[f64],
    s: &[[f64; 2]],
    active: &[usize],
    linear: bool,
) -> [(f64, f64); 2] {
    let n = active.len();
    let h = n.saturating_sub(1) / 2; // index of the half-th smallest residual
    let mut e = vec![0.0f64; n];
    let mut best = (f64::INFINITY, [(0.0, 0.0); 2]);
    let mut consider = |line: [(f64, f64); 2], best: &mut (f64, [(f64, f64); 2])| {
        for (k, &m) in active.iter().enumerate() {
            let r0 = s[m][0] - (line[0].0 + line[0].1 * tau[m]);
            let r1 = s[m][1] - (line[1].0 + line[1].1 * tau[m]);
            e[k] = r0 * r0 + r1 * r1;
        }
        let (_, q, _) = e.select_nth_unstable_by(h, |a, b| a.total_cmp(b));
        // Ties (e.g. a static shot) go to the flatter line.
        let score = *q;
        if score < best.0 - 1e-18
            || (score <= best.0 + 1e-18
                && line[0].1.abs() + line[1].1.abs() < best.1[0].1.abs() + best.1[1].1.abs())
        {
            *best = (score, line);
        }
    };
    for &i in active {
        consider([(s[i][0], 0.0), (s[i][1], 0.0)], &mut best);
    }
    if linear {
        // At most about 400 pairs: every pair for a window up to 28 frames, a lattice of them
        // beyond.
        let stride = (n * (n - 1) / 2).div_ceil(400).max(1);
        let mut count = 0usize;
        for a in 0..n {
            for b in a + 1..n {
                count += 1;
                if count % stride != 0 {
                    continue;
                }
                let (i, j) = (active[a], active[b]);
                let dt = tau[j] - tau[i];
                if dt == 0.0 {
                    continue;
                }
                let line = [0, 1].map(|c| {
                    let slope = (s[j][c] - s[i][c]) / dt;
                    (s[i][c] - slope * tau[i], slope)
                });
                consider(line, &mut best);
            }
        }
    }
    best.1
}

/// Robust local linear regression of the two series `s` at `tau = 0`, with prior weights
/// `kern`; falls back to a local constant when the points cannot fix a slope.
fn robust_local_linear(tau: &[f64], kern: &[f64], s: &[[f64; 2]]) -> [f64; 2] {
    let n = tau.len();
    let mut w = kern.to_vec();
    let mut fit = [0.0f64; 2];
    let mut sigma: f64;
    // The robust start: residuals from the repeated-median lines set the first weights.
    {
        let active: Vec<usize> = (0..n).filter(|&i| kern[i] > 0.0).collect();
        let spread = {
            let (mut sw, mut st, mut stt) = (0.0, 0.0, 0.0);
            for &i in &active {
                sw += kern[i];
                st += kern[i] * tau[i];
                stt += kern[i] * tau[i] * tau[i];
            }
            if sw > 0.0 {
                stt / sw - (st / sw).powi(2)
            } else {
                0.0
            }
        };
        let linear = active.len() >= 4 && spread > 0.5;
        let lines = least_median_line(tau, s, &active, linear);
        let e: Vec<f64> = (0..n)
            .map(|i| {
                let r0 = s[i][0] - (lines[0].0 + lines[0].1 * tau[i]);
                let r1 = s[i][1] - (lines[1].0 + lines[1].1 * tau[i]);
                ((r0 * r0 + r1 * r1) * 0.5).sqrt()
            })
            .collect();
        let mut act: Vec<f64> = active.iter().map(|&i| e[i]).collect();
        sigma = (1.4826 * lower_median(&mut act)).max(TIME_SIGMA_FLOOR);
        for i in 0..n {
            w[i] = kern[i] * tukey(e[i] / (TUKEY * sigma));
        }
    }
    for step in 0..=IRLS_STEPS {
        let (mut sw, mut st, mut stt) = (0.0f64, 0.0f64, 0.0f64);
        for i in 0..n {
            sw += w[i];
            st += w[i] * tau[i];
            stt += w[i] * tau[i] * tau[i];
        }
        if sw <= 0.0 {
            break;
        }
        let tbar = st / sw;
        let var = stt / sw - tbar * tbar;
        // Enough spread for a slope: points on both sides or several on one.
        let linear = n >= 4 && var > 0.5;
        let mut slope = [0.0f64; 2];
        let mut mean = [0.0f64; 2];
        for c in 0..2 {
            let (mut sy, mut sty) = (0.0f64, 0.0f64);
            for i in 0..n {
                sy += w[i] * s[i][c];
                sty += w[i] * tau[i] * s[i][c];
            }
            mean[c] = sy / sw;
            if linear {
                slope[c] = (sty / sw - tbar * mean[c]) / var;
            }
            fit[c] = mean[c] - slope[c] * tbar;
        }
        if step == IRLS_STEPS {
            if linear {
                // Keep a slope as far as the window shows it: a fade stands far above the
                // jitter and is kept whole; drift that jitter half hides is taken as level, so
                // windows cut short by a cut or the sequence's end do not extrapolate it.
                let se2 = sigma * sigma / (sw * var);
                let t2 = (slope[0] * slope[0] + slope[1] * slope[1]) * 0.5 / se2;
                let keep = t2 / (t2 + SLOPE_SIGNIFICANCE * SLOPE_SIGNIFICANCE);
                for c in 0..2 {
                    fit[c] = mean[c] - keep * slope[c] * tbar;
                }
            }
            break;
        }
        let e: Vec<f64> = (0..n)
            .map(|i| {
                let r0 = s[i][0] - (fit[0] + slope[0] * tau[i]);
                let r1 = s[i][1] - (fit[1] + slope[1] * tau[i]);
                ((r0 * r0 + r1 * r1) * 0.5).sqrt()
            })
            .collect();
        let mut active: Vec<f64> = (0..n).filter(|&i| kern[i] > 0.0).map(|i| e[i]).collect();
        sigma = (1.4826 * lower_median(&mut active)).max(TIME_SIGMA_FLOOR);
        for i in 0..n {
            w[i] = kern[i] * tukey(e[i] / (TUKEY * sigma));
        }
    }
    fit
}

/// Two reference levels of a group in the centre frame (its 5th and 95th percentiles, at
/// least 0.1 apart): gain and offset are smoothed as the values they map these to, so the
/// robust weights compare frames in code values.
fn levels(t: &Thumb, chans: &[usize]) -> (f64, f64) {
    let mut v: Vec<f64> = chans
        .iter()
        .flat_map(|&c| t.plane(c).iter().map(|&x| x as f64))
        .filter(|x| x.is_finite())
        .collect();
    if v.is_empty() {
        return (0.25, 0.75);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let q = |f: f64| v[((v.len() - 1) as f64 * f).round() as usize];
    let (mut l1, mut l2) = (q(0.05), q(0.95));
    if l2 - l1 < 0.1 {
        let mid = 0.5 * (l1 + l2);
        (l1, l2) = (mid - 0.05, mid + 0.05);
    }
    (l1, l2)
}

/// The frames of a window that the target of its centre is measured on, and their exposure
/// states relative to the centre.
struct Chain {
    /// `(index, state per group and node)`, in temporal order; the state `(g, o)` says
    /// `frame = g * centre + o`.
    frames: Vec<(usize, Vec<[f64; 2]>)>,
    /// The centre is a one-frame anomaly (a cut on both sides, but its neighbours match).
    isolated: bool,
    /// The link to the frame before the centre is a cut that could not be bridged.
    cut_before: bool,
}

fn usable(p: &PairFit) -> bool {
    !p.cut
}

/// Walk out from the centre through the pair fits, bridging a single frame that matches
/// neither neighbour while they match each other (a torn, blotched or flash frame: not a cut),
/// and stopping at a cut. `link(i, j)` gives the fit from frame `i` to frame `j`.
fn chain(
    n: usize,
    center: usize,
    nodes: usize,
    link: &mut dyn FnMut(usize, usize) -> Arc<PairFit>,
) -> Chain {
    let identity = vec![[1.0f64, 0.0f64]; nodes];
    let forward = |s: &[[f64; 2]], p: &PairFit| -> Vec<[f64; 2]> {
        s.iter()
            .zip(&p.nodes)
            .map(|(&[g, o], &[a, b])| [a * g, a * o + b])
            .collect()
    };
    let backward = |s: &[[f64; 2]], p: &PairFit| -> Vec<[f64; 2]> {
        s.iter()
            .zip(&p.nodes)
            .map(|(&[g, o], &[a, b])| [g / a, (o - b) / a])
            .collect()
    };
    let before_cut = center > 0 && !usable(&link(center - 1, center));
    let after_cut = center + 1 < n && !usable(&link(center, center + 1));
    if before_cut && after_cut && usable(&link(center - 1, center + 1)) {
        return Chain {
            frames: vec![(center, identity)],
            isolated: true,
            cut_before: false,
        };
    }
    let mut after = Vec::new();
    let (mut cur, mut state) = (center, identity.clone());
    while cur + 1 < n {
        let p = link(cur, cur + 1);
        if usable(&p) {
            state = forward(&state, &p);
            cur += 1;
        } else if cur + 2 < n && usable(&link(cur, cur + 2)) {
            state = forward(&state, &link(cur, cur + 2));
            cur += 2;
        } else {
            break;
        }
        after.push((cur, state.clone()));
    }
    let mut before = Vec::new();
    let (mut cur, mut state) = (center, identity.clone());
    let mut cut_before = false;
    while cur > 0 {
        let p = link(cur - 1, cur);
        if usable(&p) {
            state = backward(&state, &p);
            cur -= 1;
        } else if cur >= 2 && usable(&link(cur - 2, cur)) {
            state = backward(&state, &link(cur - 2, cur));
            cur -= 2;
        } else {
            cut_before = cur == center;
            break;
        }
        before.push((cur, state.clone()));
    }
    before.reverse();
    before.push((center, identity));
    before.extend(after);
    Chain {
        frames: before,
        isolated: false,
        cut_before,
    }
}

/// The correction for frame `center` of `thumbs` (temporal order, one shape); `link(i, j)`
/// gives the pair fit from `thumbs[i]` to `thumbs[j]` (asked for neighbours, and for frames two
/// apart to bridge a damaged frame).
pub fn correction(
    thumbs: &[&Thumb],
    center: usize,
    link: &mut dyn FnMut(usize, usize) -> Arc<PairFit>,
    cfg: &Config,
) -> (Correction, Summary) {
    let t0 = thumbs[center];
    let geo = t0.geo;
    let planes = geo.planes.min(3);
    let (k, groups) = (cfg.nodes(), cfg.groups(planes));
    let scale = cfg.scale(&geo);
    let walk = chain(thumbs.len(), center, groups * k, link);
    let len = walk.frames.len();
    let state: Vec<&Vec<[f64; 2]>> = walk.frames.iter().map(|(_, s)| s).collect();
    let tau: Vec<f64> = walk
        .frames
        .iter()
        .map(|(m, _)| *m as f64 - center as f64)
        .collect();
    let kern: Vec<f64> = tau.iter().map(|&t| kernel(t, cfg.window)).collect();
    let s = cfg.strength;
    let mut target = vec![[1.0f64, 0.0f64]; groups * k];
    if len > 1 {
        for g in 0..groups {
            let chans: Vec<usize> = if groups == 1 {
                (0..planes).collect()
            } else {
                vec![g]
            };
            let (l1, l2) = levels(t0, &chans);
            for node in 0..k {
                let i = g * k + node;
                let series: Vec<[f64; 2]> = state
                    .iter()
                    .map(|st| [st[i][0] * l1 + st[i][1], st[i][0] * l2 + st[i][1]])
                    .collect();
                let [s1, s2] = robust_local_linear(&tau, &kern, &series);
                let gain = (s2 - s1) / (l2 - l1);
                let offset = if cfg.offset { s1 - gain * l1 } else { 0.0 };
                target[i] = [gain, offset];
            }
        }
    }
    let mut corr = Correction::identity(cfg.cols, cfg.rows, geo.planes, scale);
    for p in 0..geo.planes {
        let g = if groups == 1 { 0 } else { p.min(groups - 1) };
        for node in 0..k {
            let [gain, offset] = target[g * k + node];
            let gain = (1.0 + s * (gain - 1.0)).clamp(0.25, 4.0);
            let offset = (s * offset).clamp(-0.5, 0.5);
            let (gain, offset) = if gain.is_finite() && offset.is_finite() {
                (gain, offset)
            } else {
                (1.0, 0.0)
            };
            corr.nodes[p * k + node] = [gain as f32, offset as f32];
        }
    }

    // The curve: the centre's mean luma before and after (the correction applied at block
    // centres), and the mean correction.
    let corrected_planes: Vec<f32> = {
        let mut out = t0.means.clone();
        let n = geo.len();
        for p in 0..geo.planes {
            let nodes = corr.plane_nodes(p);
            for by in 0..geo.th {
                for bx in 0..geo.tw {
                    let (cx, cy) = geo.center(bx, by);
                    let (i0, i1, tx) = axis(cx, cfg.cols, scale[0]);
                    let (j0, j1, ty) = axis(cy, cfg.rows, scale[1]);
                    let at = |i: usize, j: usize| nodes[j * cfg.cols + i];
                    let lerp = |a: [f32; 2], b: [f32; 2], t: f32| {
                        [lerp(a[0], b[0], t), lerp(a[1], b[1], t)]
                    };
                    let v = lerp(
                        lerp(at(i0, j0), at(i0, j1), ty),
                        lerp(at(i1, j0), at(i1, j1), ty),
                        tx,
                    );
                    let i = p * n + by * geo.tw + bx;
                    out[i] = v[0] * out[i] + v[1];
                }
            }
        }
        out
    };
    let corrected_luma = cuts::luma(&corrected_planes, geo.len(), geo.planes);
    let weights: Vec<f64> = if geo.planes == 3 {
        vec![0.2126, 0.7152, 0.0722]
    } else {
        let mut w = vec![0.0; geo.planes.max(1)];
        w[0] = 1.0;
        w
    };
    let (mut gain, mut offset) = (0.0f64, 0.0f64);
    for (p, wp) in weights.iter().enumerate().take(geo.planes) {
        for n in corr.plane_nodes(p) {
            gain += wp * n[0] as f64 / k as f64;
            offset += wp * n[1] as f64 / k as f64;
        }
    }
    let summary = Summary {
        measured: t0.mean_luma(),
        corrected: weighted_mean(&geo, &corrected_luma),
        gain,
        offset,
        used_before: walk.frames.iter().filter(|(m, _)| *m < center).count(),
        used_after: walk.frames.iter().filter(|(m, _)| *m > center).count(),
        cut_before: walk.cut_before,
        isolated: walk.isolated,
    };
    (corr, summary)
}
