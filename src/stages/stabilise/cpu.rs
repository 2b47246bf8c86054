//! CPU reference for `stabilise`: the reduction to the analysis resolution (twin of
//! `shaders/stabilise_luma.wgsl`, summing in the same order so the results are bit-identical),
//! the frame fingerprint (twin of `shaders/gather.wgsl`) and the warp with its border
//! fill (twin of `shaders/stabilise_warp.wgsl`). The warp's Lanczos weights come from a table
//! of the closed form the shader evaluates ([`lanczos3_fast`], within 1e-7 of it).

use rayon::prelude::*;

use super::path::Source;
use super::Fill;
use crate::frame::Frame;

/// Box average of `factor` x `factor` blocks of every plane: `(width / factor) x
/// (height / factor)` samples per plane (a partial last row or column of blocks is dropped),
/// planar. Each block is summed row by row, left to right, in `f32` from 0, then multiplied by
/// `1 / factor²` (exact for a power of two), exactly as the shader does. `factor` 1 is a copy.
pub fn reduce(frame: &Frame, factor: usize) -> Vec<f32> {
    if factor <= 1 {
        return frame.data.clone();
    }
    let (w, h) = (frame.width, frame.height);
    let (w0, h0) = (w / factor, h / factor);
    let inv = 1.0 / (factor * factor) as f32;
    let mut out = vec![0f32; w0 * h0 * frame.planes];
    out.par_chunks_mut(w0.max(1))
        .enumerate()
        .for_each(|(py, row)| {
            let (p, y) = (py / h0.max(1), py % h0.max(1));
            let plane = frame.plane(p);
            for (x, v) in row.iter_mut().enumerate() {
                let mut s = 0.0f32;
                for j in 0..factor {
                    let line = &plane[(y * factor + j) * w + x * factor..];
                    for &sample in &line[..factor] {
                        s += sample;
                    }
                }
                *v = s * inv;
            }
        });
    out
}

/// Index `i` reflected into `0..n` (…, 2, 1, 0, 1, 2, …, n - 2, n - 1, n - 2, …): the edge
/// sample is not repeated. Twin of `mirror` in `shaders/stabilise_warp.wgsl`.
pub fn mirror(i: i32, n: i32) -> i32 {
    if i >= 0 && i < n {
        return i;
    }
    if n <= 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let m = i.rem_euclid(period);
    if m < n {
        m
    } else {
        period - m
    }
}

/// Six normalised Lanczos-3 weights for the taps `floor - 2 ..= floor + 3` around a position
/// with fractional part `f` (0 <= f < 1). `sin(pi t)` and `sin(pi t / 3)` at the six taps come
/// from one `sin(pi f)` and one `sin`/`cos` of `pi f / 3` by angle addition. Within 1e-5 of a
/// whole pixel the position is taken as on it (the formula cancels there; the kernel is 1 at
/// the tap and 0 elsewhere, and continuous). Twin of `lanczos3` in
/// `shaders/stabilise_warp.wgsl`.
pub fn lanczos3(f: f32) -> [f32; 6] {
    if f < 1e-5 {
        return [0.0, 0.0, 1.0, 0.0, 0.0, 0.0];
    }
    if f > 1.0 - 1e-5 {
        return [0.0, 0.0, 0.0, 1.0, 0.0, 0.0];
    }
    const PI: f32 = std::f32::consts::PI;
    // cos and sin of m * pi / 3 for m = 2, 1, 0, -1, -2, -3.
    const C: [f32; 6] = [-0.5, 0.5, 1.0, 0.5, -0.5, -1.0];
    const S: [f32; 6] = [
        0.866_025_4,
        0.866_025_4,
        0.0,
        -0.866_025_4,
        -0.866_025_4,
        0.0,
    ];
    let sa = (PI * f).sin();
    let sb = (PI * f / 3.0).sin();
    let cb = (PI * f / 3.0).cos();
    let mut w = [0.0f32; 6];
    let mut sum = 0.0f32;
    for k in 0..6 {
        let m = 2.0 - k as f32;
        let t = f + m;
        let sin_pt = if k % 2 == 0 { sa } else { -sa };
        let sin_pt3 = sb * C[k] + cb * S[k];
        w[k] = 3.0 * sin_pt * sin_pt3 / (PI * PI * t * t);
        sum += w[k];
    }
    for v in &mut w {
        *v /= sum;
    }
    w
}

/// A source's map in the form both backends evaluate: `p = y + (M - I)(y - C) + t`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SourceMap {
    /// `M - I`, row-major.
    pub m: [f32; 4],
    pub t: [f32; 2],
    pub inv_gain: f32,
    pub lift: f32,
}

impl SourceMap {
    pub fn of(s: &Source) -> Self {
        let m = s.map.matrix();
        SourceMap {
            m: [
                (m[0][0] - 1.0) as f32,
                m[0][1] as f32,
                m[1][0] as f32,
                (m[1][1] - 1.0) as f32,
            ],
            t: [s.map.dx as f32, s.map.dy as f32],
            inv_gain: s.inv_gain as f32,
            lift: s.lift as f32,
        }
    }
}

/// Where a source is sampled for output pixel `(x, y)` (full-frame coordinates): the integer
/// part (relative to `x`, `y`) and the fraction, per axis; and how far inside the source's
/// pixel-centre rectangle the position is (negative outside).
#[derive(Clone, Copy, Debug)]
pub struct Tap {
    pub ix: i32,
    pub iy: i32,
    pub fx: f32,
    pub fy: f32,
    pub inside: f32,
}

/// Twin of `locate` in `shaders/stabilise_warp.wgsl`.
pub fn locate(s: &SourceMap, x: u32, y: u32, cx: f32, cy: f32, w: u32, h: u32) -> Tap {
    let ux = x as f32 - cx;
    let uy = y as f32 - cy;
    let dx = s.m[0] * ux + s.m[1] * uy + s.t[0];
    let dy = s.m[2] * ux + s.m[3] * uy + s.t[1];
    let (flx, fly) = (dx.floor(), dy.floor());
    let (px, py) = (x as f32 + dx, y as f32 + dy);
    let inside = px.min(py).min((w - 1) as f32 - px).min((h - 1) as f32 - py);
    Tap {
        ix: x as i32 + flx as i32,
        iy: y as i32 + fly as i32,
        fx: dx - flx,
        fy: dy - fly,
        inside,
    }
}

/// How much of an output pixel a source covers: 1 inside its pixel-centre rectangle, 0 from a
/// pixel outside it, linear between (so the fill has no seam, an unmoved frame is its own
/// output, and both backends agree where a position falls on an edge).
pub fn coverage(inside: f32) -> f32 {
    (inside + 1.0).clamp(0.0, 1.0)
}

/// Phases of the Lanczos-3 weight table per pixel.
const PHASES: usize = 4096;

/// [`lanczos3`] tabulated at `PHASES + 1` fractions `0, 1/PHASES, …, 1`.
fn table() -> &'static [[f32; 6]] {
    static TABLE: std::sync::OnceLock<Vec<[f32; 6]>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=PHASES)
            .map(|i| {
                if i == PHASES {
                    [0.0, 0.0, 0.0, 1.0, 0.0, 0.0]
                } else {
                    lanczos3(i as f32 / PHASES as f32)
                }
            })
            .collect()
    })
}

/// [`lanczos3`] by linear interpolation in a table of 4096 phases: within 1e-7 of the closed
/// form (the kernel's curvature over a 1/4096 step), and the weights still sum to 1. Six trig
/// calls per pixel were most of the CPU warp's time.
pub fn lanczos3_fast(f: f32) -> [f32; 6] {
    let t = table();
    let pos = (f.clamp(0.0, 1.0) * PHASES as f32).min(PHASES as f32);
    let i = (pos as usize).min(PHASES - 1);
    let k = pos - i as f32;
    let (a, b) = (&t[i], &t[i + 1]);
    std::array::from_fn(|j| a[j] + k * (b[j] - a[j]))
}

/// Where the 6 x 6 taps of one sample lie: the first column when all six are inside the frame
/// (else each column mirrored), the rows (mirrored), and the weights.
struct Prepared {
    col0: Option<usize>,
    cols: [usize; 6],
    rows: [usize; 6],
    wx: [f32; 6],
    wy: [f32; 6],
    tap: Tap,
}

fn prepare(s: &SourceMap, x: u32, y: u32, cx: f32, cy: f32, w: usize, h: usize) -> Prepared {
    let tap = locate(s, x, y, cx, cy, w as u32, h as u32);
    let first = tap.ix - 2;
    let col0 = (first >= 0 && first as usize + 6 <= w).then_some(first as usize);
    Prepared {
        col0,
        cols: if col0.is_some() {
            [0; 6]
        } else {
            std::array::from_fn(|i| mirror(first + i as i32, w as i32) as usize)
        },
        rows: std::array::from_fn(|j| mirror(tap.iy - 2 + j as i32, h as i32) as usize * w),
        wx: lanczos3_fast(tap.fx),
        wy: lanczos3_fast(tap.fy),
        tap,
    }
}

/// Lanczos-3 sample of one plane at prepared taps.
fn sample(plane: &[f32], pr: &Prepared) -> f32 {
    let mut acc = 0.0f32;
    for (&r, wyj) in pr.rows.iter().zip(&pr.wy) {
        let line = match pr.col0 {
            Some(c0) => {
                let s: &[f32; 6] = plane[r + c0..r + c0 + 6].try_into().expect("six taps");
                pr.wx[0] * s[0]
                    + pr.wx[1] * s[1]
                    + pr.wx[2] * s[2]
                    + pr.wx[3] * s[3]
                    + pr.wx[4] * s[4]
                    + pr.wx[5] * s[5]
            }
            None => {
                let row = &plane[r..];
                pr.cols.iter().zip(&pr.wx).map(|(c, wx)| wx * row[*c]).sum()
            }
        };
        acc += wyj * line;
    }
    acc
}

/// The warped centre frame with its border filled: `sources[0]` is the centre, `frames[i]`
/// the frame `sources` index `i` refers to (see [`Source::frame`]). With [`Fill::Crop`] the
/// output is `margin` px smaller on every side.
pub fn warp(frames: &[&Frame], sources: &[(usize, SourceMap)], fill: Fill, margin: usize) -> Frame {
    let center = frames[sources[0].0];
    let (w, h, planes) = (center.width, center.height, center.planes);
    let margin = if fill == Fill::Crop { margin } else { 0 };
    let (ow, oh) = (w - 2 * margin, h - 2 * margin);
    let (cx, cy) = ((w as f32 - 1.0) * 0.5, (h as f32 - 1.0) * 0.5);
    let n = w * h;
    let mut rows = vec![0f32; ow * oh * planes];
    rows.par_chunks_mut((ow * planes).max(1))
        .enumerate()
        .for_each_init(
            || vec![0f32; planes],
            |vals, (oy, line)| {
                let y = (oy + margin) as u32;
                for ox in 0..ow {
                    let x = (ox + margin) as u32;
                    let c = prepare(&sources[0].1, x, y, cx, cy, w, h);
                    for (p, v) in vals.iter_mut().enumerate() {
                        *v = sample(&center.data[p * n..(p + 1) * n], &c);
                    }
                    match fill {
                        Fill::Mirror | Fill::Crop => {}
                        Fill::Black => {
                            let k = coverage(c.tap.inside);
                            vals.iter_mut().for_each(|v| *v *= k);
                        }
                        Fill::Neighbours => {
                            let c0 = coverage(c.tap.inside);
                            if c0 < 1.0 {
                                // acc = c0 s0 + (1 - c0)(c1 s1 + (1 - c1)(… + rem s0)).
                                let mut rem = 1.0 - c0;
                                let mut acc: Vec<f32> = vals.iter().map(|v| c0 * v).collect();
                                for (fi, s) in &sources[1..] {
                                    if rem <= 0.0 {
                                        break;
                                    }
                                    let pr = prepare(s, x, y, cx, cy, w, h);
                                    let ck = coverage(pr.tap.inside);
                                    if ck <= 0.0 {
                                        continue;
                                    }
                                    let f = frames[*fi];
                                    for (p, a) in acc.iter_mut().enumerate() {
                                        let v = sample(&f.data[p * n..(p + 1) * n], &pr);
                                        *a += rem * ck * ((v - s.lift) * s.inv_gain);
                                    }
                                    rem *= 1.0 - ck;
                                }
                                for (v, a) in vals.iter_mut().zip(&acc) {
                                    *v = a + rem * *v;
                                }
                            }
                        }
                    }
                    for (p, v) in vals.iter().enumerate() {
                        line[p * ow + ox] = *v;
                    }
                }
            },
        );
    let mut out = Frame::new(ow, oh, planes, center.meta.clone());
    let on = ow * oh;
    for (oy, line) in rows.chunks(ow * planes).enumerate() {
        for p in 0..planes {
            out.data[p * on + oy * ow..p * on + (oy + 1) * ow]
                .copy_from_slice(&line[p * ow..(p + 1) * ow]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanczos_matches_the_textbook_kernel() {
        let sinc = |t: f64| {
            if t.abs() < 1e-12 {
                1.0
            } else {
                (std::f64::consts::PI * t).sin() / (std::f64::consts::PI * t)
            }
        };
        for i in 0..100 {
            let f = i as f32 / 100.0;
            let w = lanczos3(f);
            let raw: Vec<f64> = (0..6)
                .map(|k| {
                    let t = f as f64 + 2.0 - k as f64;
                    sinc(t) * sinc(t / 3.0)
                })
                .collect();
            let s: f64 = raw.iter().sum();
            for k in 0..6 {
                assert!((w[k] as f64 - raw[k] / s).abs() < 2e-5, "f {f} k {k}");
            }
        }
    }

    #[test]
    fn tabulated_weights_match_the_closed_form() {
        for i in 0..=10_000 {
            let f = i as f32 / 10_000.0;
            let (a, b) = (lanczos3(f.min(0.99999)), lanczos3_fast(f.min(0.99999)));
            for k in 0..6 {
                assert!(
                    (a[k] - b[k]).abs() < 1e-6,
                    "f {f} k {k}: {} vs {}",
                    a[k],
                    b[k]
                );
            }
        }
    }

    #[test]
    fn mirror_reflects_without_repeating_the_edge() {
        let got: Vec<i32> = (-3..8).map(|i| mirror(i, 5)).collect();
        assert_eq!(got, vec![3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1]);
    }
}
