//! CPU reference of `denoise`, one function per shader: [`temporal`]
//! (`shaders/denoise_temporal.wgsl`), [`filter_patch`] (`denoise_patch.wgsl`), [`gather`]
//! (`denoise_gather.wgsl`), [`grain_rows`] (`denoise_grain.wgsl`) and [`finish`]
//! (`denoise_finish.wgsl`). Every function works on one plane; the sums run in the order the
//! shaders use, so the two differ only by rounding. Loops are arranged so the compiler can
//! vectorise them (many outputs at once), never by reordering one output's sum.

use rayon::prelude::*;

use super::noise::sigma_at;
use super::PlaneModel;
use crate::frame::Frame;

/// How many times its noise power a coefficient's power must exceed before any of it counts
/// as signal. The signal power is estimated from the one noisy coefficient (there is no
/// pilot estimate), which overstates it; subtracting four times the noise power (about a
/// 2-sigma threshold with a smooth Wiener knee above it) was best on `nitrate degrade
/// --defects grain` over clean/bikes (43.99 dB against 42.64 dB at 1 on frames 20-25; 6
/// gave 43.97, 9 gave 43.74). Keep in sync with `WIENER_BETA` in `shaders/denoise_patch.wgsl`.
pub const WIENER_BETA: f32 = 4.0;

/// Patch side.
pub const P: usize = 8;

/// The orthonormal 8-point DCT-II matrix, `c[u][x]`.
pub fn dct_matrix() -> [[f32; P]; P] {
    std::array::from_fn(|u| {
        let a = if u == 0 {
            (1.0f64 / P as f64).sqrt()
        } else {
            (2.0f64 / P as f64).sqrt()
        };
        std::array::from_fn(|x| {
            (a * (std::f64::consts::PI * (2 * x + 1) as f64 * u as f64 / (2 * P) as f64).cos())
                as f32
        })
    })
}

/// The DCT matrix ([`dct_matrix`]) and its transpose, made once for all the patches of a
/// plane: the forward transform's row pass reads the transpose.
pub struct Dct {
    pub c: [[f32; P]; P],
    ct: [[f32; P]; P],
}

impl Dct {
    pub fn new() -> Self {
        let c = dct_matrix();
        Dct {
            ct: transpose(&c),
            c,
        }
    }
}

impl Default for Dct {
    fn default() -> Self {
        Self::new()
    }
}

/// 2D DCT of a patch (row-major `p[y * 8 + x]`): `c p cᵀ`, rows first. Every output sums
/// its eight products in index order (`x`, then `y`), as the shader does; the loops run over
/// eight outputs at once so the compiler can vectorise them.
#[inline(always)]
pub fn forward(dct: &Dct, p: &[f32; 64]) -> [f32; 64] {
    let (c, ct) = (&dct.c, &dct.ct);
    let mut r = [0.0f32; 64];
    for y in 0..P {
        let mut acc = [0.0f32; P];
        for x in 0..P {
            let v = p[y * P + x];
            for u in 0..P {
                acc[u] += ct[x][u] * v;
            }
        }
        r[y * P..(y + 1) * P].copy_from_slice(&acc);
    }
    let mut d = [0.0f32; 64];
    for v in 0..P {
        let mut acc = [0.0f32; P];
        for y in 0..P {
            let k = c[v][y];
            for u in 0..P {
                acc[u] += k * r[y * P + u];
            }
        }
        d[v * P..(v + 1) * P].copy_from_slice(&acc);
    }
    d
}

#[inline(always)]
fn transpose(c: &[[f32; P]; P]) -> [[f32; P]; P] {
    std::array::from_fn(|i| std::array::from_fn(|j| c[j][i]))
}

/// Inverse of [`forward`]: `cᵀ d c`, columns first (sums in index order: `v`, then `u`).
#[inline(always)]
pub fn inverse(dct: &Dct, d: &[f32; 64]) -> [f32; 64] {
    let c = &dct.c;
    let mut r = [0.0f32; 64];
    for y in 0..P {
        let mut acc = [0.0f32; P];
        for v in 0..P {
            let k = c[v][y];
            for u in 0..P {
                acc[u] += k * d[v * P + u];
            }
        }
        r[y * P..(y + 1) * P].copy_from_slice(&acc);
    }
    let mut p = [0.0f32; 64];
    for y in 0..P {
        let mut acc = [0.0f32; P];
        for u in 0..P {
            let v = r[y * P + u];
            for x in 0..P {
                acc[x] += c[u][x] * v;
            }
        }
        p[y * P..(y + 1) * P].copy_from_slice(&acc);
    }
    p
}

/// R, G, B to the opponent planes the denoiser works in: the mean `(r + g + b) / 3`, red
/// against blue `(r - b) / 2` and green against magenta `(r - 2g + b) / 4`. Grain the three
/// dye layers share gathers in the first; the others carry little noise and little picture,
/// so each plane's shrinkage fits its own signal and noise (as colour BM3D does).
/// `shaders/denoise_opponent.wgsl` is the twin.
pub fn to_opponent(f: &Frame) -> Frame {
    mix3(f, |r, g, b| {
        (
            (r + g + b) * (1.0 / 3.0),
            (r - b) * 0.5,
            (r - 2.0 * g + b) * 0.25,
        )
    })
}

/// The inverse of [`to_opponent`]; `shaders/denoise_rgb.wgsl` is the twin.
pub fn from_opponent(f: &Frame) -> Frame {
    mix3(f, |y, c1, c2| {
        (
            y + c1 + c2 * (2.0 / 3.0),
            y - c2 * (4.0 / 3.0),
            y - c1 + c2 * (2.0 / 3.0),
        )
    })
}

/// A three-plane frame whose every sample triple is `mix` of the input's, rows in parallel.
fn mix3(f: &Frame, mix: impl Fn(f32, f32, f32) -> (f32, f32, f32) + Sync) -> Frame {
    let n = f.plane_len();
    let mut out = Frame::new(f.width, f.height, f.planes, f.meta.clone());
    let (a, rest) = out.data.split_at_mut(n);
    let (b, c) = rest.split_at_mut(n);
    let w = f.width;
    a.par_chunks_mut(w)
        .zip(b.par_chunks_mut(w))
        .zip(c.par_chunks_mut(w))
        .enumerate()
        .for_each(|(y, ((a, b), c))| {
            let row = y * w..(y + 1) * w;
            let (p, q, r) = (
                &f.data[row.clone()],
                &f.data[n..][row.clone()],
                &f.data[2 * n..][row],
            );
            for x in 0..w {
                (a[x], b[x], c[x]) = mix(p[x], q[x], r[x]);
            }
        });
    out
}

/// Each sample of `src` plus its left and right neighbours (edges clamped), in that order:
/// the interior as three shifted slices, so the loop vectorises.
#[inline(always)]
fn sum3_row(out: &mut [f32], src: &[f32]) {
    let w = src.len();
    if w < 3 {
        for (x, o) in out.iter_mut().enumerate() {
            *o = src[x.saturating_sub(1)] + src[x] + src[(x + 1).min(w - 1)];
        }
        return;
    }
    out[0] = src[0] + src[0] + src[1];
    let inner = src[..w - 2].iter().zip(&src[1..w - 1]).zip(&src[2..]);
    for (o, ((l, c), r)) in out[1..w - 1].iter_mut().zip(inner) {
        *o = l + c + r;
    }
    out[w - 1] = src[w - 2] + src[w - 1] + src[w - 1];
}

/// Mean of the 3x3 neighbourhood of every sample, edges clamped: rows of three summed, then
/// three of those (the shader sums the nine in raster order: the same up to rounding).
pub fn box3(plane: &[f32], w: usize, h: usize) -> Vec<f32> {
    let mut rows = vec![0.0f32; w * h];
    rows.par_chunks_mut(w)
        .enumerate()
        .for_each(|(y, row)| sum3_row(row, &plane[y * w..(y + 1) * w]));
    let mut out = vec![0.0f32; w * h];
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        let (a, b, c) = (y.saturating_sub(1), y, (y + 1).min(h - 1));
        for (x, o) in row.iter_mut().enumerate() {
            *o = (rows[a * w + x] + rows[b * w + x] + rows[c * w + x]) * (1.0 / 9.0);
        }
    });
    out
}

/// Weight of a compensated neighbour at one sample: 1 while the 3x3 mean of its difference
/// from the centre `d` is within two standard deviations `sd` of what noise alone gives,
/// falling linearly to 0 at four (motion the compensation missed, occlusion).
#[inline(always)]
pub fn neighbour_weight(d: f32, sd: f32) -> f32 {
    // Computed, then selected: no branch in the loops that call it.
    let wk = ((4.0 * sd - d.abs()) / (2.0 * sd)).clamp(0.0, 1.0);
    if sd > 0.0 {
        wk
    } else {
        0.0
    }
}

/// Temporal step of one plane: the centre averaged with its compensated neighbours (in the
/// order given), each weighted by [`neighbour_weight`]; the noise expected at a sample is the
/// noise-level function at the 3x3 mean of `level` (the plane itself, or the centre's first
/// opponent plane). Returns the average and, per sample, the factor by which averaging cut
/// the noise variance (`Σw² / (Σw)²`, the centre weighing 1).
#[allow(clippy::too_many_arguments)]
pub fn temporal(
    c: &[f32],
    nb: &[&[f32]],
    level: &[f32],
    w: usize,
    h: usize,
    m: &PlaneModel,
    strength: f32,
) -> (Vec<f32>, Vec<f32>) {
    let mut avg = vec![0.0f32; w * h];
    let mut fac = vec![0.0f32; w * h];
    // The level is often the centre itself (one plane, or the first opponent plane).
    let level_is_c = std::ptr::eq(level, c);
    let mut planes: Vec<&[f32]> = vec![c, level];
    planes.extend_from_slice(nb);
    // Bands of rows, each keeping the horizontal sums of the rows it has read.
    const BAND: usize = 16;
    avg.par_chunks_mut(w * BAND)
        .zip(fac.par_chunks_mut(w * BAND))
        .enumerate()
        .for_each(|(band, (aband, fband))| {
            let mut sums: Vec<HSums> = planes
                .iter()
                .enumerate()
                .map(|(k, _)| HSums::new(w, !(k == 1 && level_is_c)))
                .collect();
            let mut boxes: Vec<Vec<f32>> = vec![vec![0.0; w]; planes.len()];
            let (mut sd, mut sw) = (vec![0.0f32; w], vec![0.0f32; w]);
            for (dy, (arow, frow)) in aband.chunks_mut(w).zip(fband.chunks_mut(w)).enumerate() {
                let y = band * BAND + dy;
                box_rows(&mut sums, &mut boxes, &planes, w, h, y);
                let (cb, rest) = boxes.split_first().expect("centre");
                let (lb, nbb) = rest.split_first().expect("level");
                let lb = if level_is_c { cb } else { lb };
                let row = y * w..(y + 1) * w;
                weigh_row(
                    arow,
                    frow,
                    &mut sw,
                    &mut sd,
                    &c[row.clone()],
                    nb,
                    row.start,
                    cb,
                    lb,
                    nbb,
                    m,
                    strength,
                );
            }
        });
    (avg, fac)
}

crate::wide! {
    /// Row `y` of the 3x3 means of every used plane into `boxes`.
    fn box_rows(sums: &mut [HSums], boxes: &mut [Vec<f32>], planes: &[&[f32]], w: usize, h: usize, y: usize) {
        for ((sum, plane), out) in sums.iter_mut().zip(planes).zip(boxes.iter_mut()) {
            if sum.used {
                sum.box_row(out, plane, w, h, y);
            }
        }
    }
}

crate::wide! {
    /// One row of [`temporal`]: the centre row `c` averaged with the neighbours' rows (from
    /// `start` in each of `nb`), weighted by their 3x3 means `nbb` against the centre's `cb`,
    /// the noise read at the level's means `lb`. `sw` and `sd` are scratch rows.
    fn weigh_row(
        arow: &mut [f32],
        frow: &mut [f32],
        sw: &mut [f32],
        sd: &mut [f32],
        c: &[f32],
        nb: &[&[f32]],
        start: usize,
        cb: &[f32],
        lb: &[f32],
        nbb: &[Vec<f32>],
        m: &PlaneModel,
        strength: f32,
    ) {
        let w = c.len();
        // Neighbour by neighbour over the row (each sample's sums still run in neighbour
        // order): loops the compiler can vectorise.
        for (x, o) in sd.iter_mut().enumerate() {
            *o = strength * sigma_at(&m.sigma, lb[x]) * m.diff_sd;
        }
        arow.copy_from_slice(c);
        frow.fill(1.0);
        sw.fill(1.0);
        for (n, nbb) in nb.iter().zip(nbb.iter()) {
            let n = &n[start..start + w];
            for x in 0..w {
                let wk = neighbour_weight(nbb[x] - cb[x], sd[x]);
                sw[x] += wk;
                frow[x] += wk * wk;
                arow[x] += wk * n[x];
            }
        }
        for x in 0..w {
            arow[x] /= sw[x];
            frow[x] /= sw[x] * sw[x];
        }
    }
}

/// The horizontal 3-sums of the last three rows of a plane read, for [`temporal`]'s 3x3 means.
struct HSums {
    rows: [Vec<f32>; 3],
    of: [usize; 3],
    used: bool,
}

impl HSums {
    fn new(w: usize, used: bool) -> Self {
        HSums {
            rows: std::array::from_fn(|_| vec![0.0; if used { w } else { 0 }]),
            of: [usize::MAX; 3],
            used,
        }
    }

    /// Row `y` of [`box3`] of `plane` into `out`: the same sums in the same order.
    #[inline(always)]
    fn box_row(&mut self, out: &mut [f32], plane: &[f32], w: usize, h: usize, y: usize) {
        let ys = [y.saturating_sub(1), y, (y + 1).min(h - 1)];
        for &yy in &ys {
            let slot = yy % 3;
            if self.of[slot] != yy {
                sum3_row(&mut self.rows[slot], &plane[yy * w..(yy + 1) * w]);
                self.of[slot] = yy;
            }
        }
        let [a, b, c] = ys.map(|yy| &self.rows[yy % 3]);
        for (o, ((a, b), c)) in out.iter_mut().zip(a.iter().zip(b).zip(c)) {
            *o = (a + b + c) * (1.0 / 9.0);
        }
    }
}

/// Patches along one axis of `len` samples at `step`: the last one is moved back to end at the
/// edge, so every sample is covered.
pub fn patch_count(len: usize, step: usize) -> usize {
    if len <= P {
        1
    } else {
        (len - P).div_ceil(step) + 1
    }
}

/// Start of patch `i` along an axis of `len` samples.
pub fn patch_pos(i: usize, len: usize, step: usize) -> usize {
    (i * step).min(len.saturating_sub(P))
}

crate::wide! {
    /// Shrink one patch of the temporal average `y` in the DCT domain. The noise left in the
    /// patch has variance `(strength * sigma(mean))² * mean(f)` (the noise-level function at the
    /// mean of the patch of `level`, `y` itself or the first opponent plane's average, cut by the
    /// temporal averaging), spread over the coefficients as the grain's
    /// spectrum says (`shape`). Each coefficient but the mean keeps the share its estimated signal
    /// power has of its power (empirical Wiener, `s / (s + n)` with `s = max(d² - β n, 0)`,
    /// β = [`WIENER_BETA`]), so
    /// the patch mean is never moved (a constant frame stays constant). Returns the filtered patch
    /// and its aggregation weight `1 / (1 + Σ gain²)`: patches kept nearly whole count less, as
    /// they carry more noise (BM3D's weighting).
    pub fn filter_patch(
        dct: &Dct,
        y: &[f32],
        f: &[f32],
        level: &[f32],
        w: usize,
        h: usize,
        px: usize,
        py: usize,
        m: &PlaneModel,
        strength: f32,
    ) -> ([f32; 64], f32) {
        let mut p = [0.0f32; 64];
        // Sums row by row, then the rows: eight short chains the CPU runs side by side.
        let (mut sum, mut fsum) = (0.0f32, 0.0f32);
        for j in 0..P {
            let yy = (py + j).min(h - 1);
            let (mut rs, mut rf) = (0.0f32, 0.0f32);
            if px + P <= w {
                let k = yy * w + px;
                p[j * P..(j + 1) * P].copy_from_slice(&y[k..k + P]);
                for (l, g) in level[k..k + P].iter().zip(&f[k..k + P]) {
                    rs += l;
                    rf += g;
                }
            } else {
                for i in 0..P {
                    let k = yy * w + (px + i).min(w - 1);
                    p[j * P + i] = y[k];
                    rs += level[k];
                    rf += f[k];
                }
            }
            sum += rs;
            fsum += rf;
        }
        let mean = sum * (1.0 / 64.0);
        let s = strength * sigma_at(&m.sigma, mean);
        let var = s * s * (fsum * (1.0 / 64.0));
        let mut d = forward(dct, &p);
        // The gains first (independent: the compiler vectorises them), then their squares summed
        // in coefficient order.
        let mut gain = [1.0f32; 64];
        for k in 1..64 {
            let n = var * m.shape[k];
            let sig = (d[k] * d[k] - WIENER_BETA * n).max(0.0);
            let den = sig + n;
            let g = sig / den;
            gain[k] = if den > 0.0 { g } else { 1.0 };
        }
        // The squared gains summed row by row (the first row from its second coefficient),
        // then the rows: short chains, as for the level sums above.
        let mut g2 = 0.0f32;
        for j in 0..P {
            let mut rs = 0.0f32;
            for k in (j * P).max(1)..(j + 1) * P {
                d[k] *= gain[k];
                rs += gain[k] * gain[k];
            }
            g2 += rs;
        }
        (inverse(dct, &d), 1.0 / (1.0 + g2))
    }
}

/// Filtered patches of one plane, row-major over the patch grid.
#[allow(clippy::too_many_arguments)]
pub fn patches(
    y: &[f32],
    f: &[f32],
    level: &[f32],
    w: usize,
    h: usize,
    step: usize,
    m: &PlaneModel,
    strength: f32,
) -> Vec<([f32; 64], f32)> {
    let dct = Dct::new();
    let (nx, ny) = (patch_count(w, step), patch_count(h, step));
    (0..nx * ny)
        .into_par_iter()
        .map(|i| {
            let (px, py) = (patch_pos(i % nx, w, step), patch_pos(i / nx, h, step));
            filter_patch(&dct, y, f, level, w, h, px, py, m, strength)
        })
        .collect()
}

/// First patch along an axis that may cover sample `x`.
pub fn first_cover(x: usize, step: usize) -> usize {
    if x >= P - 1 {
        (x - (P - 1)).div_ceil(step)
    } else {
        0
    }
}

/// Each sample the weighted mean of the patches covering it, patch rows then columns in order
/// (each row adds the patches over it, in that order, into the row: the same sums as one
/// sample at a time, in the same order).
pub fn gather(patches: &[([f32; 64], f32)], w: usize, h: usize, step: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; w * h];
    out.par_chunks_mut(w).enumerate().for_each_init(
        || vec![0.0f32; w],
        |sw, (y, row)| gather_row(row, sw, patches, y, h, step),
    );
    out
}

crate::wide! {
    /// Row `y` of [`gather`] (`sw` a scratch row).
    fn gather_row(row: &mut [f32], sw: &mut [f32], patches: &[([f32; 64], f32)], y: usize, h: usize, step: usize) {
        let w = row.len();
        let (nx, ny) = (patch_count(w, step), patch_count(h, step));
        sw.fill(0.0);
        let mut j = first_cover(y, step);
        while j < ny && patch_pos(j, h, step) <= y {
            let py = patch_pos(j, h, step);
            for i in 0..nx {
                let px = patch_pos(i, w, step);
                let (p, wt) = &patches[j * nx + i];
                let src = &p[(y - py) * P..(y - py + 1) * P];
                let end = (px + P).min(w);
                for ((o, s), v) in row[px..end].iter_mut().zip(&mut sw[px..end]).zip(src) {
                    *o += wt * v;
                    *s += wt;
                }
            }
            j += 1;
        }
        for (o, s) in row.iter_mut().zip(sw.iter()) {
            *o /= *s;
        }
    }
}

/// lowbias32 (Chris Wellons): a 32-bit integer hash, the same in `denoise_grain.wgsl`.
pub fn hash32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// The grain stream of one plane of one frame.
pub fn grain_key(seed: u64, frame: i64, plane: usize) -> u32 {
    let f = frame as u64;
    let mut k = hash32(plane as u32);
    k = hash32(k ^ (f >> 32) as u32);
    k = hash32(k ^ f as u32);
    k = hash32(k ^ (seed >> 32) as u32);
    hash32(k ^ seed as u32)
}

/// Unit gaussian white noise at integer `(x, y)` of a stream (Box–Muller on two hashes):
/// defined everywhere, so blurring it needs no edge rule.
pub fn gauss(key: u32, x: i32, y: i32) -> f32 {
    let h1 = hash32(key ^ hash32(x as u32 ^ hash32(y as u32)));
    let h2 = hash32(h1 ^ 0x9e37_79b9);
    let u1 = ((h1 >> 8) as f32 + 0.5) * (1.0 / 16_777_216.0);
    let u2 = (h2 >> 8) as f32 * (1.0 / 16_777_216.0);
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// The horizontal pass of the grain blur: rows `-r..h + r` (`r` the kernel radius) of white
/// noise blurred along x by the plane's kernel.
pub fn grain_rows(key: u32, w: usize, h: usize, m: &PlaneModel) -> Vec<f32> {
    let r = m.taps.len() / 2;
    let rows = h + 2 * r;
    let mut out = vec![0.0f32; w * rows];
    out.par_chunks_mut(w).enumerate().for_each(|(yy, row)| {
        let y = yy as i32 - r as i32;
        for (x, o) in row.iter_mut().enumerate() {
            let mut s = 0.0f32;
            for (t, k) in m.taps.iter().enumerate() {
                s += k * gauss(key, x as i32 + t as i32 - r as i32, y);
            }
            *o = s;
        }
    });
    out
}

/// The output of one plane: the denoised `x`, plus `keep` of what was taken from the centre
/// `c`, plus `regrain` times synthetic grain (`rows` from [`grain_rows`], blurred down the
/// columns here, scaled to unit variance and then to the noise-level function at the output's
/// level, `level` being the denoised plane itself or the first opponent plane). `rows` is
/// ignored when `regrain` is 0.
#[allow(clippy::too_many_arguments)]
pub fn finish(
    c: &[f32],
    x: &[f32],
    level: &[f32],
    rows: &[f32],
    w: usize,
    h: usize,
    m: &PlaneModel,
    keep: f32,
    regrain: f32,
) -> Vec<f32> {
    let mut out = vec![0.0f32; w * h];
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for (xi, o) in row.iter_mut().enumerate() {
            let i = y * w + xi;
            let mut v = x[i] + keep * (c[i] - x[i]);
            if regrain > 0.0 {
                let mut s = 0.0f32;
                for (t, k) in m.taps.iter().enumerate() {
                    s += k * rows[(y + t) * w + xi];
                }
                v += regrain * sigma_at(&m.sigma, level[i]) * m.tap_scale * s;
            }
            *o = v;
        }
    });
    out
}
