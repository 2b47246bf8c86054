//! Quality measures against a reference frame.
//!
//! All measures work on normalised values (peak 1). Frames are compared sample for sample, so
//! callers check shapes first; the functions here assert it.
//!
//! - [`mse`], [`psnr`]: over every sample of every plane. `PSNR = -10 log10(MSE)`, infinite for
//!   identical frames.
//! - [`ssim`]: Wang et al. (2004) with an 11x11 Gaussian window (sigma 1.5), `K1 = 0.01`,
//!   `K2 = 0.03`, `L = 1`, computed **per plane and averaged** over the planes (mean over the
//!   "valid" window positions, those where the whole window lies inside the frame).
//! - [`masked_error`]: squared error summed separately inside and outside a 0/1 mask, with an
//!   optional border excluded from both.
//! - [`mean_luma`]: mean of the luma plane ([`luma`]: Rec.709 weights for three planes).
//! - [`estimate_translation`]: sub-pixel global translation between two frames, by phase
//!   correlation (hand-written radix-2 FFT) on a coarse pyramid level, refined by symmetric
//!   Lucas–Kanade (bicubic warps) down to full resolution.

use rayon::prelude::*;

use crate::frame::Frame;

/// PSNR in dB for normalised values (peak 1); infinite for identical frames.
pub fn psnr(reference: &Frame, test: &Frame) -> f64 {
    psnr_from_mse(mse(reference, test))
}

/// `-10 log10(mse)`: infinite for zero error.
pub fn psnr_from_mse(mse: f64) -> f64 {
    if mse == 0.0 {
        f64::INFINITY
    } else {
        -10.0 * mse.log10()
    }
}

/// Mean squared error over all samples.
pub fn mse(reference: &Frame, test: &Frame) -> f64 {
    assert_eq!(
        reference.data.len(),
        test.data.len(),
        "frames differ in shape"
    );
    let sum: f64 = reference
        .data
        .iter()
        .zip(&test.data)
        .map(|(a, b)| {
            let d = (*a - *b) as f64;
            d * d
        })
        .sum();
    sum / reference.data.len().max(1) as f64
}

/// The value below which `fraction` of a plane's samples lie.
pub fn percentile(values: &[f32], fraction: f64) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v: Vec<f32> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    let k = ((v.len() - 1) as f64 * fraction.clamp(0.0, 1.0)).round() as usize;
    let (_, kth, _) = v.select_nth_unstable_by(k, |a, b| a.total_cmp(b));
    *kth
}

/// The frame without a border of `margin` pixels on every side. Panics if nothing would remain
/// (callers check `2 * margin < width, height`).
pub fn crop(frame: &Frame, margin: usize) -> Frame {
    if margin == 0 {
        return frame.clone();
    }
    assert!(
        2 * margin < frame.width && 2 * margin < frame.height,
        "margin {margin} leaves nothing of {}",
        frame.shape()
    );
    let (w, h) = (frame.width - 2 * margin, frame.height - 2 * margin);
    let mut out = Frame::new(w, h, frame.planes, frame.meta.clone());
    for p in 0..frame.planes {
        let src = frame.plane(p);
        let dst = out.plane_mut(p);
        for y in 0..h {
            let s = (y + margin) * frame.width + margin;
            dst[y * w..(y + 1) * w].copy_from_slice(&src[s..s + w]);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// SSIM

const SSIM_K1: f64 = 0.01;
const SSIM_K2: f64 = 0.03;
const SSIM_SIGMA: f64 = 1.5;
const SSIM_RADIUS: usize = 5;
/// Dynamic range of normalised values.
const SSIM_L: f64 = 1.0;

/// Mean SSIM of two frames: per plane (Wang et al., 11x11 Gaussian window, sigma 1.5,
/// K1 = 0.01, K2 = 0.03, L = 1), averaged over planes. 1 for identical frames.
pub fn ssim(reference: &Frame, test: &Frame) -> f64 {
    assert_eq!(
        (reference.width, reference.height, reference.planes),
        (test.width, test.height, test.planes),
        "frames differ in shape"
    );
    let planes = reference.planes.max(1);
    (0..reference.planes)
        .map(|p| {
            ssim_plane(
                reference.plane(p),
                test.plane(p),
                reference.width,
                reference.height,
            )
        })
        .sum::<f64>()
        / planes as f64
}

/// Mean SSIM of one plane of `width * height` samples, over the window positions that lie
/// wholly inside the plane. Planes smaller than 11 pixels on a side use the largest centred
/// window that fits (the Gaussian truncated and renormalised).
pub fn ssim_plane(a: &[f32], b: &[f32], width: usize, height: usize) -> f64 {
    assert_eq!(a.len(), width * height);
    assert_eq!(b.len(), width * height);
    if width == 0 || height == 0 {
        return 1.0;
    }
    let r = SSIM_RADIUS.min((width.min(height) - 1) / 2);
    let kernel: Vec<f64> = {
        let k: Vec<f64> = (0..=2 * r)
            .map(|i| {
                let x = i as f64 - r as f64;
                (-x * x / (2.0 * SSIM_SIGMA * SSIM_SIGMA)).exp()
            })
            .collect();
        let s: f64 = k.iter().sum();
        k.into_iter().map(|v| v / s).collect()
    };
    let (c1, c2) = ((SSIM_K1 * SSIM_L).powi(2), (SSIM_K2 * SSIM_L).powi(2));
    let (ow, oh) = (width - 2 * r, height - 2 * r);
    let total: f64 = (0..oh)
        .into_par_iter()
        .map_init(
            || vec![[0f64; 5]; width],
            |col, oy| {
                // Vertical pass: the five moments of each column over this output row's window.
                for (x, c) in col.iter_mut().enumerate() {
                    let mut m = [0f64; 5];
                    for (k, &wk) in kernel.iter().enumerate() {
                        let i = (oy + k) * width + x;
                        let (va, vb) = (a[i] as f64, b[i] as f64);
                        m[0] += wk * va;
                        m[1] += wk * vb;
                        m[2] += wk * va * va;
                        m[3] += wk * vb * vb;
                        m[4] += wk * va * vb;
                    }
                    *c = m;
                }
                // Horizontal pass and the SSIM of each window.
                let mut row = 0.0;
                for ox in 0..ow {
                    let mut m = [0f64; 5];
                    for (k, &wk) in kernel.iter().enumerate() {
                        let c = &col[ox + k];
                        for (mj, cj) in m.iter_mut().zip(c) {
                            *mj += wk * cj;
                        }
                    }
                    let (mu_a, mu_b) = (m[0], m[1]);
                    let var_a = m[2] - mu_a * mu_a;
                    let var_b = m[3] - mu_b * mu_b;
                    let cov = m[4] - mu_a * mu_b;
                    row += ((2.0 * mu_a * mu_b + c1) * (2.0 * cov + c2))
                        / ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2));
                }
                row
            },
        )
        .sum();
    total / (ow * oh) as f64
}

// ---------------------------------------------------------------------------------------------
// Masked error

/// Squared error summed inside and outside a mask, with sample counts, so that frames can be
/// pooled over a sequence before taking the PSNR.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MaskedSums {
    pub sq_in: f64,
    pub n_in: u64,
    pub sq_out: f64,
    pub n_out: u64,
}

impl MaskedSums {
    /// MSE inside the mask; `None` where the mask selects no sample.
    pub fn mse_in(&self) -> Option<f64> {
        (self.n_in > 0).then(|| self.sq_in / self.n_in as f64)
    }

    /// MSE outside the mask; `None` where every sample is inside (or excluded).
    pub fn mse_out(&self) -> Option<f64> {
        (self.n_out > 0).then(|| self.sq_out / self.n_out as f64)
    }

    pub fn psnr_in(&self) -> Option<f64> {
        self.mse_in().map(psnr_from_mse)
    }

    pub fn psnr_out(&self) -> Option<f64> {
        self.mse_out().map(psnr_from_mse)
    }

    /// Pool another frame's sums into these.
    pub fn add(&mut self, other: &MaskedSums) {
        self.sq_in += other.sq_in;
        self.n_in += other.n_in;
        self.sq_out += other.sq_out;
        self.n_out += other.n_out;
    }
}

/// Squared error of every sample, split by `mask` (one flag per pixel, row-major,
/// `width * height`; `true` = inside, e.g. a defect), leaving out a border of `margin` pixels on
/// every side. Counts are samples (pixels times planes).
pub fn masked_error(reference: &Frame, test: &Frame, mask: &[bool], margin: usize) -> MaskedSums {
    assert_eq!(
        (reference.width, reference.height, reference.planes),
        (test.width, test.height, test.planes),
        "frames differ in shape"
    );
    let (w, h) = (reference.width, reference.height);
    assert_eq!(mask.len(), w * h, "mask differs in size from the frames");
    let n = w * h;
    let rows: Vec<MaskedSums> = (margin..h.saturating_sub(margin))
        .into_par_iter()
        .map(|y| {
            let mut s = MaskedSums::default();
            for x in margin..w.saturating_sub(margin) {
                let i = y * w + x;
                let mut sq = 0.0;
                for p in 0..reference.planes {
                    let d = (reference.data[p * n + i] - test.data[p * n + i]) as f64;
                    sq += d * d;
                }
                if mask[i] {
                    s.sq_in += sq;
                    s.n_in += reference.planes as u64;
                } else {
                    s.sq_out += sq;
                    s.n_out += reference.planes as u64;
                }
            }
            s
        })
        .collect();
    let mut total = MaskedSums::default();
    for r in &rows {
        total.add(r);
    }
    total
}

// ---------------------------------------------------------------------------------------------
// Luma

/// Rec.709 luma weights for R, G, B.
pub const REC709: [f32; 3] = [0.2126, 0.7152, 0.0722];

/// The luma plane: Rec.709 weights of R, G, B for three planes; the plane itself for one; the
/// plain mean of the planes otherwise.
pub fn luma(frame: &Frame) -> Vec<f32> {
    match frame.planes {
        1 => frame.plane(0).to_vec(),
        3 => {
            let (r, g, b) = (frame.plane(0), frame.plane(1), frame.plane(2));
            r.iter()
                .zip(g)
                .zip(b)
                .map(|((r, g), b)| REC709[0] * r + REC709[1] * g + REC709[2] * b)
                .collect()
        }
        p => {
            let n = frame.plane_len();
            (0..n)
                .map(|i| (0..p).map(|q| frame.data[q * n + i]).sum::<f32>() / p as f32)
                .collect()
        }
    }
}

/// Mean of the luma plane (see [`luma`]), accumulated in `f64`.
pub fn mean_luma(frame: &Frame) -> f64 {
    let n = frame.plane_len();
    if n == 0 {
        return 0.0;
    }
    let sum: f64 = match frame.planes {
        3 => (0..3)
            .map(|p| REC709[p] as f64 * frame.plane(p).iter().map(|&v| v as f64).sum::<f64>())
            .sum(),
        p => frame.data.iter().map(|&v| v as f64).sum::<f64>() / p.max(1) as f64,
    };
    sum / n as f64
}

// ---------------------------------------------------------------------------------------------
// Global translation

/// Sub-pixel global translation of `test` against `reference`: `(dx, dy)` such that
/// `test(x, y) ≈ reference(x - dx, y - dy)`, i.e. positive `dx` means the picture in `test`
/// sits further right. Estimated on luma, each frame normalised to zero mean and unit
/// variance, with a gain and lift between the two solved alongside (so flicker does not bias
/// it). `(0, 0)` for frames without texture.
pub fn estimate_translation(reference: &Frame, test: &Frame) -> (f64, f64) {
    assert_eq!(
        (reference.width, reference.height),
        (test.width, test.height),
        "frames differ in size"
    );
    estimate_translation_plane(
        &luma(reference),
        &luma(test),
        reference.width,
        reference.height,
    )
}

/// [`estimate_translation`] on single planes of `width * height` samples.
///
/// Method: a pyramid of 2x2 box averages down to at most 256 pixels on the longer side (and at
/// least 32 on the shorter). On the coarsest level, phase correlation (Hann window,
/// zero-padded radix-2 FFT, normalised cross-power spectrum under a Gaussian low-pass of
/// 0.2 cycles/px, parabolic peak refinement) proposes its 4 highest peaks; with "no shift"
/// they are ranked by residual, the best (and the second if within twice its residual) are
/// refined, and the best fit with a gain above 0.2 and a shift under a quarter of the frame
/// wins. Each level from coarse to fine then refines the estimate by Gauss–Newton on the
/// symmetric registration error `mean (test(x + d/2) - gain * ref(x - d/2) - lift)^2` with
/// Catmull–Rom bicubic warps, on both planes smoothed by a Gaussian of 2 px and away from the
/// border; steps that raise the error are halved, a level moves at most 2 px (the coarsest an
/// eighth of its shorter side) from where it started, and stops when a step is under 1e-3 px.
/// Levels over a million pixels sum every second (third, ...) row and column only. The gain
/// and lift absorb flicker between the frames. Shifts up to a quarter of the frame are found.
pub fn estimate_translation_plane(
    reference: &[f32],
    test: &[f32],
    width: usize,
    height: usize,
) -> (f64, f64) {
    assert_eq!(reference.len(), width * height);
    assert_eq!(test.len(), width * height);
    if width < 8 || height < 8 {
        return (0.0, 0.0);
    }
    let (Some(f0), Some(r0)) = (normalise(reference), normalise(test)) else {
        return (0.0, 0.0);
    };
    let mut levels = vec![Level {
        w: width,
        h: height,
        f: f0,
        r: r0,
    }];
    loop {
        let l = levels.last().expect("one level");
        if l.w.max(l.h) <= 256 || l.w.min(l.h) / 2 < 32 {
            break;
        }
        let next = Level {
            w: l.w / 2,
            h: l.h / 2,
            f: downsample(&l.f, l.w, l.h),
            r: downsample(&l.r, l.w, l.h),
        };
        levels.push(next);
    }
    // Coarsest level: the phase-correlation peaks and "no shift at all" are candidate starts;
    // the two that fit best as they stand are refined (the second only if its residual is
    // within twice the first's), and the better refined fit with a positive gain wins.
    let top = levels.last().expect("one level");
    let planes = LkPlanes::new(top);
    let reach = (top.w.min(top.h) as f64 / 8.0).max(LK_REACH);
    let (max_x, max_y) = (top.w as f64 / 4.0, top.h as f64 / 4.0);
    let mut candidates: Vec<(f64, f64)> = Vec::new();
    let peaks = phase_correlation_peaks(&top.f, &top.r, top.w, top.h, PC_PEAKS);
    for c in peaks.into_iter().chain([(0.0, 0.0)]) {
        let far = c.0.abs() > max_x || c.1.abs() > max_y;
        let seen = candidates
            .iter()
            .any(|o| (o.0 - c.0).abs() < 1.0 && (o.1 - c.1).abs() < 1.0);
        if !far && !seen {
            candidates.push(c);
        }
    }
    let mut ranked: Vec<(f64, (f64, f64))> = candidates
        .into_iter()
        .filter_map(|c| lk_step(&planes, [c.0, c.1, 1.0, 0.0]).map(|(cost, _)| (cost, c)))
        .collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut best: Option<LkFit> = None;
    let cheapest = ranked.first().map_or(0.0, |r| r.0);
    for &(_, c) in ranked
        .iter()
        .take(PC_REFINED)
        .filter(|r| r.0 <= 2.0 * cheapest)
    {
        let Some(fit) = lucas_kanade(&planes, c, reach) else {
            continue;
        };
        let plausible = fit.gain > MIN_GAIN && fit.d.0.abs() <= max_x && fit.d.1.abs() <= max_y;
        if plausible && best.as_ref().is_none_or(|b| fit.cost < b.cost) {
            best = Some(fit);
        }
    }
    let mut d = best.map_or((0.0, 0.0), |b| b.d);
    // Finer levels: refine, each starting from the coarser estimate scaled up.
    for level in levels[..levels.len() - 1].iter().rev() {
        d = (d.0 * 2.0, d.1 * 2.0);
        if let Some(fit) = lucas_kanade(&LkPlanes::new(level), d, LK_REACH) {
            if fit.gain > MIN_GAIN {
                d = fit.d;
            }
        }
    }
    d
}

/// Phase-correlation peaks tried as starting points on the coarsest level.
const PC_PEAKS: usize = 4;
/// Of those (and no shift), how many are refined at most: the ones with the smallest residual.
const PC_REFINED: usize = 2;
/// Fits with a smaller gain between the normalised frames (anti-correlated or unrelated
/// pictures) are rejected.
const MIN_GAIN: f64 = 0.2;

struct Level {
    w: usize,
    h: usize,
    f: Vec<f32>,
    r: Vec<f32>,
}

/// Zero mean, unit variance; `None` for a flat plane.
fn normalise(p: &[f32]) -> Option<Vec<f32>> {
    let n = p.len() as f64;
    let mean = p.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = p.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    if var.is_nan() || var <= 1e-12 {
        return None;
    }
    let s = 1.0 / var.sqrt();
    Some(p.iter().map(|&v| ((v as f64 - mean) * s) as f32).collect())
}

/// 2x2 box average (odd last row/column dropped).
fn downsample(p: &[f32], w: usize, h: usize) -> Vec<f32> {
    let (w2, h2) = (w / 2, h / 2);
    let mut out = vec![0f32; w2 * h2];
    out.par_chunks_mut(w2).enumerate().for_each(|(y, row)| {
        let (a, b) = (&p[2 * y * w..], &p[(2 * y + 1) * w..]);
        for (x, v) in row.iter_mut().enumerate() {
            *v = 0.25 * (a[2 * x] + a[2 * x + 1] + b[2 * x] + b[2 * x + 1]);
        }
    });
    out
}

/// In-place radix-2 complex FFT (`re.len()` a power of two); the inverse is scaled by `1/n`.
pub fn fft(re: &mut [f64], im: &mut [f64], inverse: bool) {
    let n = re.len();
    assert_eq!(n, im.len());
    assert!(n.is_power_of_two(), "FFT length {n} is not a power of two");
    if n < 2 {
        return;
    }
    let mut j = 0usize;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let sign = if inverse { 1.0 } else { -1.0 };
    let twiddles: Vec<(f64, f64)> = (0..n / 2)
        .map(|k| {
            let a = sign * 2.0 * std::f64::consts::PI * k as f64 / n as f64;
            (a.cos(), a.sin())
        })
        .collect();
    let mut len = 2;
    while len <= n {
        let half = len / 2;
        let step = n / len;
        for start in (0..n).step_by(len) {
            for k in 0..half {
                let (wr, wi) = twiddles[k * step];
                let (i, j) = (start + k, start + k + half);
                let (xr, xi) = (re[j] * wr - im[j] * wi, re[j] * wi + im[j] * wr);
                re[j] = re[i] - xr;
                im[j] = im[i] - xi;
                re[i] += xr;
                im[i] += xi;
            }
        }
        len <<= 1;
    }
    if inverse {
        let s = 1.0 / n as f64;
        re.iter_mut().for_each(|v| *v *= s);
        im.iter_mut().for_each(|v| *v *= s);
    }
}

/// 2-D FFT of a `w * h` row-major complex array (both powers of two): rows, then columns.
pub(crate) fn fft2(re: &mut [f64], im: &mut [f64], w: usize, h: usize, inverse: bool) {
    for y in 0..h {
        fft(
            &mut re[y * w..(y + 1) * w],
            &mut im[y * w..(y + 1) * w],
            inverse,
        );
    }
    let (mut cr, mut ci) = (vec![0f64; h], vec![0f64; h]);
    for x in 0..w {
        for y in 0..h {
            cr[y] = re[y * w + x];
            ci[y] = im[y * w + x];
        }
        fft(&mut cr, &mut ci, inverse);
        for y in 0..h {
            re[y * w + x] = cr[y];
            im[y * w + x] = ci[y];
        }
    }
}

/// Candidate translations of `r` against `f` by phase correlation: the `count` highest local
/// maxima of the inverse FFT of the normalised cross-power spectrum (weighted by a Gaussian
/// low-pass of 0.2 cycles/px, so that noise-dominated high frequencies do not scatter the
/// peak), each refined by a parabola through its neighbours. Best first.
fn phase_correlation_peaks(
    f: &[f32],
    r: &[f32],
    w: usize,
    h: usize,
    count: usize,
) -> Vec<(f64, f64)> {
    let (pw, ph) = (w.next_power_of_two(), h.next_power_of_two());
    let hann = |i: usize, n: usize| {
        0.5 - 0.5 * (2.0 * std::f64::consts::PI * (i as f64 + 0.5) / n as f64).cos()
    };
    let wx: Vec<f64> = (0..w).map(|x| hann(x, w)).collect();
    let wy: Vec<f64> = (0..h).map(|y| hann(y, h)).collect();
    let spectrum = |p: &[f32]| {
        let mut re = vec![0f64; pw * ph];
        let mut im = vec![0f64; pw * ph];
        for y in 0..h {
            for x in 0..w {
                re[y * pw + x] = p[y * w + x] as f64 * wx[x] * wy[y];
            }
        }
        fft2(&mut re, &mut im, pw, ph, false);
        (re, im)
    };
    let (fr, fi) = spectrum(f);
    let (mut cr, mut ci) = spectrum(r);
    // Signed frequency of bin k of n, in cycles per pixel.
    let freq = |k: usize, n: usize| {
        if k > n / 2 {
            k as f64 / n as f64 - 1.0
        } else {
            k as f64 / n as f64
        }
    };
    let sigma = 0.2f64;
    // R * conj(F) / |R * conj(F)|: its inverse transform peaks at the displacement of r.
    for i in 0..pw * ph {
        let (a, b) = (cr[i], ci[i]);
        let (re, im) = (a * fr[i] + b * fi[i], b * fr[i] - a * fi[i]);
        let m = (re * re + im * im).sqrt();
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
    fft2(&mut cr, &mut ci, pw, ph, true);
    correlation_peaks(&cr, pw, ph, count, Ties::ScanOrder)
}

/// How peaks of equal height are ordered.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ties {
    /// In the order the surface is scanned (row by row): a stable sort by height.
    ScanOrder,
    /// By column, then row.
    ByPosition,
}

/// The `count` highest local maxima of a periodic `pw * ph` correlation surface (highest first),
/// each refined by a parabola through its neighbours, as signed displacements.
pub(crate) fn correlation_peaks(
    surface: &[f64],
    pw: usize,
    ph: usize,
    count: usize,
    ties: Ties,
) -> Vec<(f64, f64)> {
    let at = |x: usize, y: usize| surface[(y % ph) * pw + (x % pw)];
    let mut peaks: Vec<(f64, usize, usize)> = Vec::new();
    for y in 0..ph {
        for x in 0..pw {
            let c = at(x, y);
            let is_max = (0..3).all(|j| {
                (0..3).all(|i| (i == 1 && j == 1) || at(x + pw + i - 1, y + ph + j - 1) < c)
            });
            if is_max {
                peaks.push((c, x, y));
            }
        }
    }
    match ties {
        Ties::ScanOrder => peaks.sort_by(|a, b| b.0.total_cmp(&a.0)),
        Ties::ByPosition => {
            peaks.sort_by(|p, q| q.0.total_cmp(&p.0).then((p.1, p.2).cmp(&(q.1, q.2))))
        }
    }
    let parabola = |m: f64, c: f64, p: f64| {
        let den = m - 2.0 * c + p;
        if den < 0.0 {
            (0.5 * (m - p) / den).clamp(-0.5, 0.5)
        } else {
            0.0
        }
    };
    let signed = |p: usize, n: usize| {
        if p > n / 2 {
            p as f64 - n as f64
        } else {
            p as f64
        }
    };
    peaks
        .into_iter()
        .take(count)
        .map(|(c, px, py)| {
            let sx = parabola(at(px + pw - 1, py), c, at(px + 1, py));
            let sy = parabola(at(px, py + ph - 1), c, at(px, py + 1));
            (signed(px, pw) + sx, signed(py, ph) + sy)
        })
        .collect()
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

/// Pixels that enter the Gauss–Newton sums of one level, at most: larger levels use every
/// second (third, ...) row and column. A million samples pin a translation far below the
/// 0.01 px that interpolation bias leaves anyway, and keep 2K and 4K frames fast.
const LK_MAX_SAMPLES: usize = 1 << 20;

/// Steps shorter than this (px) end the refinement of a level.
const LK_TOLERANCE: f64 = 1e-3;

/// Gauss–Newton iterations per pyramid level, at most.
const LK_MAX_ITERATIONS: usize = 40;
/// How far (px, per axis) the refinement may move from the estimate it starts from at a level.
/// (Finer levels; the coarsest may move an eighth of its shorter side.)
const LK_REACH: f64 = 2.0;

/// Gaussian pre-smoothing (px) of each pyramid level before the Lucas–Kanade refinement. On
/// box-sampled synthetic scenes with hard edges the largest error fell from 0.12 px unsmoothed
/// to 0.02 px at 2 px (and rose again to 0.03 px at 3 px).
const LK_BLUR_SIGMA: f64 = 2.0;

/// A pyramid level prepared for Lucas–Kanade: both planes smoothed, and their gradients.
struct LkPlanes {
    w: usize,
    h: usize,
    /// Only every `stride`-th row and column enter the sums (large levels).
    stride: usize,
    f: Vec<f32>,
    r: Vec<f32>,
    fgx: Vec<f32>,
    fgy: Vec<f32>,
    rgx: Vec<f32>,
    rgy: Vec<f32>,
}

impl LkPlanes {
    fn new(level: &Level) -> Self {
        let (w, h) = (level.w, level.h);
        // Central-difference gradients (one-sided at the border).
        let grad = |p: &[f32]| {
            let mut gx = vec![0f32; w * h];
            let mut gy = vec![0f32; w * h];
            for y in 0..h {
                for x in 0..w {
                    let (x0, x1) = (x.saturating_sub(1), (x + 1).min(w - 1));
                    let (y0, y1) = (y.saturating_sub(1), (y + 1).min(h - 1));
                    gx[y * w + x] = (p[y * w + x1] - p[y * w + x0]) / (x1 - x0) as f32;
                    gy[y * w + x] = (p[y1 * w + x] - p[y0 * w + x]) / (y1 - y0) as f32;
                }
            }
            (gx, gy)
        };
        // Pre-smoothing: sharp, aliased detail (hard edges sampled by a sensor) biases
        // sub-pixel estimates towards whole pixels; weighting the lower frequencies removes
        // most of that.
        let f = blur(&level.f, w, h, LK_BLUR_SIGMA);
        let r = blur(&level.r, w, h, LK_BLUR_SIGMA);
        let (fgx, fgy) = grad(&f);
        let (rgx, rgy) = grad(&r);
        let stride = ((w * h) as f64 / LK_MAX_SAMPLES as f64)
            .sqrt()
            .ceil()
            .max(1.0) as usize;
        LkPlanes {
            w,
            h,
            stride,
            f,
            r,
            fgx,
            fgy,
            rgx,
            rgy,
        }
    }
}

/// The outcome of [`lucas_kanade`]: translation, mean squared residual, gain.
struct LkFit {
    d: (f64, f64),
    cost: f64,
    gain: f64,
}

/// Gauss–Newton refinement of the translation at one pyramid level from `start` (see
/// [`estimate_translation_plane`]), staying within `reach` px of it on each axis; steps that
/// raise the residual are halved until they lower it. `None` where the frames do not overlap
/// enough to measure.
fn lucas_kanade(planes: &LkPlanes, start: (f64, f64), reach: f64) -> Option<LkFit> {
    // Parameters (dx, dy, gain, lift); `accepted` is the best point so far and its cost (mean
    // squared residual), `trial` the point being evaluated.
    let mut accepted: Option<([f64; 4], f64)> = None;
    let mut trial = [start.0, start.1, 1.0, 0.0];
    let mut step = [0f64; 4];
    let mut scale = 1.0;
    for _ in 0..LK_MAX_ITERATIONS {
        let result = lk_step(planes, trial);
        let worse = match (&result, accepted) {
            (None, None) => break,
            (None, Some(_)) => true,
            (Some((cost, _)), Some((_, best_cost))) => cost.is_nan() || *cost > best_cost,
            (Some(_), None) => false,
        };
        if worse {
            // Worse (or off the overlap): back off towards the accepted point and try again.
            let Some((best, _)) = accepted else { break };
            scale *= 0.5;
            if scale * step[0].hypot(step[1]) < LK_TOLERANCE {
                break;
            }
            trial = std::array::from_fn(|k| best[k] + scale * step[k]);
            continue;
        }
        let Some((cost, u)) = result else { break };
        accepted = Some((trial, cost));
        let Some(mut u) = u else { break };
        if u[0].hypot(u[1]) < LK_TOLERANCE {
            break;
        }
        // At most one pixel per step.
        let len = u[0].hypot(u[1]);
        if len > 1.0 {
            u.iter_mut().take(2).for_each(|v| *v /= len);
        }
        let base = trial;
        trial = std::array::from_fn(|k| base[k] + u[k]);
        trial[0] = trial[0].clamp(start.0 - reach, start.0 + reach);
        trial[1] = trial[1].clamp(start.1 - reach, start.1 + reach);
        step = std::array::from_fn(|k| trial[k] - base[k]);
        scale = 1.0;
    }
    accepted.map(|(p, cost)| LkFit {
        d: (p[0], p[1]),
        cost,
        gain: p[2],
    })
}

/// One Gauss–Newton evaluation at `p = (dx, dy, gain, lift)`: the mean squared residual and the
/// step `u` solving `(J^T J) u = -J^T e` (`None` where the system is singular); `None` where
/// the overlap is too small to measure.
fn lk_step(planes: &LkPlanes, p: [f64; 4]) -> Option<(f64, Option<[f64; 4]>)> {
    let (w, h) = (planes.w, planes.h);
    let (fgx, fgy, rgx, rgy) = (
        &planes.fgx[..],
        &planes.fgy[..],
        &planes.rgx[..],
        &planes.rgy[..],
    );
    let [dx, dy, gain, lift] = p;
    let (hx, hy) = (dx / 2.0, dy / 2.0);
    // Test sampled at x + d/2, reference at x - d/2: integer parts and cubic weights.
    let (rix, riy) = (hx.floor(), hy.floor());
    let (fix, fiy) = ((-hx).floor(), (-hy).floor());
    let (rwx, rwy) = (cubic_weights(hx - rix), cubic_weights(hy - riy));
    let (fwx, fwy) = (cubic_weights(-hx - fix), cubic_weights(-hy - fiy));
    let (rix, riy, fix, fiy) = (rix as i64, riy as i64, fix as i64, fiy as i64);
    // Pixels whose 4x4 neighbourhoods lie inside the plane for both warps, and away from the
    // border by the blur's reach (where the clamped blur differs between the frames).
    let e = (3.0 * LK_BLUR_SIGMA).ceil() as i64 + 1;
    let lo_x = e + 1 - rix.min(fix);
    let hi_x = w as i64 - 3 - e - rix.max(fix);
    let lo_y = e + 1 - riy.min(fiy);
    let hi_y = h as i64 - 3 - e - riy.max(fiy);
    if hi_x - lo_x < 8 || hi_y - lo_y < 8 {
        return None;
    }
    let sample = |p: &[f32], x: i64, y: i64, wx: &[f64; 4], wy: &[f64; 4]| {
        let mut s = 0.0;
        for (j, &wyj) in wy.iter().enumerate() {
            let row = ((y - 1 + j as i64) as usize) * w;
            let mut t = 0.0;
            for (i, &wxi) in wx.iter().enumerate() {
                t += wxi * p[row + (x - 1 + i as i64) as usize] as f64;
            }
            s += wyj * t;
        }
        s
    };
    // Model test(x + d/2) = gain * ref(x - d/2) + lift: residual e = test - gain * ref - lift,
    // Jacobian J = [gx, gy, -ref, -1] for the steps of (dx, dy, gain, lift), with
    // g = (grad test + gain * grad ref) / 2 at the warped positions. Identical frames give
    // e = 0 and no step at all. Sums: 10 of J^T J, 4 of J^T e, and e^2.
    let stride = planes.stride;
    let rows: Vec<i64> = (lo_y..hi_y).step_by(stride).collect();
    let sums = rows
        .into_par_iter()
        .map(|y| {
            let mut acc = [0f64; 15];
            for x in (lo_x..hi_x).step_by(stride) {
                let (xr, yr, xf, yf) = (x + rix, y + riy, x + fix, y + fiy);
                let t = sample(&planes.r, xr, yr, &rwx, &rwy);
                let f = sample(&planes.f, xf, yf, &fwx, &fwy);
                let gx = 0.5
                    * (sample(rgx, xr, yr, &rwx, &rwy) + gain * sample(fgx, xf, yf, &fwx, &fwy));
                let gy = 0.5
                    * (sample(rgy, xr, yr, &rwx, &rwy) + gain * sample(fgy, xf, yf, &fwx, &fwy));
                let e = t - gain * f - lift;
                let j = [gx, gy, -f, -1.0];
                for (k, &(a, b)) in UPPER4.iter().enumerate() {
                    acc[k] += j[a] * j[b];
                }
                for (k, ja) in j.iter().enumerate() {
                    acc[10 + k] += ja * e;
                }
                acc[14] += e * e;
            }
            acc
        })
        .reduce(
            || [0f64; 15],
            |mut a, b| {
                for (ai, bi) in a.iter_mut().zip(b) {
                    *ai += bi;
                }
                a
            },
        );
    let count = ((hi_x - lo_x) as usize).div_ceil(stride) as f64
        * ((hi_y - lo_y) as usize).div_ceil(stride) as f64;
    let mut m = [[0f64; 4]; 4];
    for (k, &(a, b)) in UPPER4.iter().enumerate() {
        m[a][b] = sums[k];
        m[b][a] = sums[k];
    }
    let rhs = [-sums[10], -sums[11], -sums[12], -sums[13]];
    let u = solve4(m, rhs).filter(|u| u.iter().all(|v| v.is_finite()));
    Some((sums[14] / count, u))
}

/// Separable Gaussian blur of standard deviation `sigma` px (borders clamped); a copy for
/// `sigma <= 0`.
fn blur(p: &[f32], w: usize, h: usize, sigma: f64) -> Vec<f32> {
    if sigma <= 0.0 {
        return p.to_vec();
    }
    let r = (3.0 * sigma).ceil() as i64;
    let k: Vec<f32> = {
        let k: Vec<f64> = (-r..=r)
            .map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp())
            .collect();
        let s: f64 = k.iter().sum();
        k.iter().map(|v| (v / s) as f32).collect()
    };
    let mut tmp = vec![0f32; w * h];
    tmp.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
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
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for (i, &ki) in k.iter().enumerate() {
            let yi = (y as i64 + i as i64 - r).clamp(0, h as i64 - 1) as usize;
            let src = &tmp[yi * w..(yi + 1) * w];
            for (v, &s) in row.iter_mut().zip(src) {
                *v += ki * s;
            }
        }
    });
    out
}

/// The upper triangle of a symmetric 4x4 matrix, row by row: where the 10 accumulated sums of
/// the normal equations go.
const UPPER4: [(usize, usize); 10] = [
    (0, 0),
    (0, 1),
    (0, 2),
    (0, 3),
    (1, 1),
    (1, 2),
    (1, 3),
    (2, 2),
    (2, 3),
    (3, 3),
];

/// Solve a 4x4 system by Gaussian elimination with partial pivoting; `None` when (nearly)
/// singular.
fn solve4(mut m: [[f64; 4]; 4], mut b: [f64; 4]) -> Option<[f64; 4]> {
    let scale = m.iter().flatten().fold(0.0f64, |s, v| s.max(v.abs()));
    if scale.is_nan() || scale <= 0.0 {
        return None;
    }
    for c in 0..4 {
        let p = (c..4).max_by(|&i, &j| m[i][c].abs().total_cmp(&m[j][c].abs()))?;
        if m[p][c].is_nan() || m[p][c].abs() <= 1e-12 * scale {
            return None;
        }
        m.swap(c, p);
        b.swap(c, p);
        for r in c + 1..4 {
            let f = m[r][c] / m[c][c];
            let pivot = m[c];
            for (v, p) in m[r][c..].iter_mut().zip(&pivot[c..]) {
                *v -= f * p;
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = [0f64; 4];
    for c in (0..4).rev() {
        let s: f64 = (c + 1..4).map(|k| m[c][k] * x[k]).sum();
        x[c] = (b[c] - s) / m[c][c];
    }
    Some(x)
}

/// Labels of the 8-connected regions of `mask` (`width` pixels a row): 0 outside the mask,
/// 1..=count inside, in raster order of each region's first pixel; and the count.
pub fn label_regions(mask: &[bool], width: usize) -> (Vec<u32>, u32) {
    let height = mask.len() / width.max(1);
    let mut labels = vec![0u32; mask.len()];
    let mut stack = Vec::new();
    let mut count = 0;
    for start in 0..mask.len() {
        if !mask[start] || labels[start] != 0 {
            continue;
        }
        count += 1;
        labels[start] = count;
        stack.push(start);
        while let Some(i) = stack.pop() {
            let (x, y) = (i % width, i / width);
            for ny in y.saturating_sub(1)..=(y + 1).min(height - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(width - 1) {
                    let j = ny * width + nx;
                    if mask[j] && labels[j] == 0 {
                        labels[j] = count;
                        stack.push(j);
                    }
                }
            }
        }
    }
    (labels, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fft_round_trip_and_delta() {
        let n = 16;
        let mut re: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
        let orig = re.clone();
        let mut im = vec![0.0; n];
        fft(&mut re, &mut im, false);
        fft(&mut re, &mut im, true);
        for (a, b) in re.iter().zip(&orig) {
            assert!((a - b).abs() < 1e-12);
        }
        let mut re = vec![0.0; 8];
        let mut im = vec![0.0; 8];
        re[0] = 1.0;
        fft(&mut re, &mut im, false);
        assert!(re.iter().all(|&v| (v - 1.0).abs() < 1e-12) && im.iter().all(|&v| v.abs() < 1e-12));
    }
}
