//! Gate weave: the film never sits twice in the same place in the gate of the camera, the
//! printer or the scanner. Applied last, it moves the whole frame (picture and the damage on the
//! film together) by a sub-pixel translation and a small rotation about the frame centre.
//!
//! Per frame: a slow drift (Catmull-Rom noise with a knot every `drift_period_frames`), a small
//! jitter, and now and then a jump (a damaged perforation, a splice) that decays over a few
//! frames as the film settles; the rotation drifts slowly and is held within
//! `max_rotation_deg` times the strength. Resampling is Lanczos-3, borders filled by mirroring.
//!
//! Convention: a film point `p` lands in the degraded frame at `R(rotation) (p - c) + c + (dx, dy)`,
//! with `c = ((W - 1) / 2, (H - 1) / 2)`, pixel centres at integer coordinates, `x` right, `y`
//! down, and a positive rotation turning the picture clockwise on screen.

use rayon::prelude::*;
use serde::Serialize;

use super::optics::mirror;
use super::rng::{key, smooth1, stream, sub, Rng, SEQUENCE};
use crate::frame::Frame;

/// Knobs of `weave` at strength 1. Pixel amounts are at the resolution scale 1 and scale with
/// the strength.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WeaveParams {
    /// Amplitude of the slow drift, x and y, pixels. Default [0.6, 0.4].
    pub drift_px: [f32; 2],
    /// Frames between the drift's knots. Default 24.
    pub drift_period_frames: f32,
    /// Standard deviation of the frame-to-frame jitter, x and y, pixels. Default [0.12, 0.1].
    pub jitter_px: [f32; 2],
    /// Chance per frame of a jump. Default 0.03.
    pub jump_probability: f32,
    /// Size ranges of a jump, x and y, pixels (either sign). Default [(0.3, 1.0), (0.8, 2.5)].
    pub jump_px: [(f32, f32); 2],
    /// Frames over which a jump decays by a factor e. Default 4.
    pub jump_decay_frames: f32,
    /// Amplitude of the slow rotation drift, degrees. Default 0.05.
    pub rotation_deg: f32,
    /// Standard deviation of the rotation jitter, degrees. Default 0.01.
    pub rotation_jitter_deg: f32,
    /// Largest rotation, degrees (times the strength). Default 0.1.
    pub max_rotation_deg: f32,
}

impl Default for WeaveParams {
    fn default() -> Self {
        WeaveParams {
            drift_px: [0.6, 0.4],
            drift_period_frames: 24.0,
            jitter_px: [0.12, 0.1],
            jump_probability: 0.03,
            jump_px: [(0.3, 1.0), (0.8, 2.5)],
            jump_decay_frames: 4.0,
            rotation_deg: 0.05,
            rotation_jitter_deg: 0.01,
            max_rotation_deg: 0.1,
        }
    }
}

/// Weave of one frame.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WeaveFrame {
    /// Translation in pixels, `+x` right, `+y` down.
    pub dx: f32,
    pub dy: f32,
    /// Rotation about the frame centre in degrees, positive clockwise on screen.
    pub rotation_deg: f32,
    /// Whether a jump starts at this frame.
    pub jump: bool,
}

/// The weave of every frame of a sequence of `n` frames.
pub(crate) fn plan(p: &WeaveParams, seed: u64, s: f32, scale: f32, n: usize) -> Vec<WeaveFrame> {
    let seq = key(seed, SEQUENCE, stream::WEAVE);
    let period = p.drift_period_frames.max(1.0);
    let decay = p.jump_decay_frames.max(0.1);
    let mut kicks: Vec<(usize, f32, f32)> = Vec::new();
    (0..n)
        .map(|t| {
            let mut rng = Rng::new(key(seed, t as u64, stream::WEAVE));
            let tf = t as f32;
            let jump = rng.chance(p.jump_probability);
            if jump {
                let jx = rng.sign() * rng.within(p.jump_px[0]);
                let jy = rng.sign() * rng.within(p.jump_px[1]);
                kicks.push((t, jx, jy));
            }
            kicks.retain(|k| (t - k.0) as f32 <= 12.0 * decay);
            let (mut kx, mut ky) = (0.0, 0.0);
            for &(t0, jx, jy) in &kicks {
                let f = (-((t - t0) as f32) / decay).exp();
                kx += jx * f;
                ky += jy * f;
            }
            let dx = s
                * scale
                * (p.drift_px[0] * smooth1(sub(seq, 0), tf / period)
                    + p.jitter_px[0] * rng.normal()
                    + kx);
            let dy = s
                * scale
                * (p.drift_px[1] * smooth1(sub(seq, 1), tf / period)
                    + p.jitter_px[1] * rng.normal()
                    + ky);
            let limit = p.max_rotation_deg * s;
            let rotation = (s
                * (p.rotation_deg * smooth1(sub(seq, 2), tf / (1.5 * period))
                    + p.rotation_jitter_deg * rng.normal()))
            .clamp(-limit, limit);
            WeaveFrame {
                dx,
                dy,
                rotation_deg: rotation,
                jump,
            }
        })
        .collect()
}

/// Six normalised Lanczos-3 taps around `s`: the first tap's index and the weights. With
/// `f = s - floor(s)` the taps sit at offsets `t = f + 2 .. f - 3`; `sin(pi t)` and
/// `sin(pi t / 3)` follow from one `sin(pi f)` and one `sin_cos(pi f / 3)` by angle addition.
fn taps(s: f32) -> (isize, [f32; 6]) {
    let base = s.floor();
    let first = base as isize - 2;
    let f = s - base;
    if f < 1e-6 {
        return (first, [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
    }
    use std::f32::consts::PI;
    let sa = (PI * f).sin();
    let (sb, cb) = (PI * f / 3.0).sin_cos();
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
    let mut w = [0.0f32; 6];
    let mut sum = 0.0;
    for k in 0..6 {
        let m = 2 - k as i32;
        let t = f + m as f32;
        let sin_pt = if m % 2 == 0 { sa } else { -sa };
        let sin_pt3 = sb * C[k] + cb * S[k];
        w[k] = 3.0 * sin_pt * sin_pt3 / (PI * PI * t * t);
        sum += w[k];
    }
    w.iter_mut().for_each(|v| *v /= sum);
    (first, w)
}

/// `src` moved as the weave convention says: translated by `(dx, dy)` pixels and rotated by
/// `rotation_deg` about the centre, Lanczos-3 resampled with mirrored borders. A zero move
/// returns the frame unchanged.
pub fn warp(src: &Frame, dx: f32, dy: f32, rotation_deg: f32) -> Frame {
    let (w, h) = (src.width, src.height);
    let mut out = src.clone();
    if dx == 0.0 && dy == 0.0 && rotation_deg == 0.0 {
        return out;
    }
    let (sin, cos) = (rotation_deg.to_radians() as f64).sin_cos();
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    let n = w * h;
    // One output row (all planes) per task.
    let rows: Vec<Vec<f32>> = (0..h)
        .into_par_iter()
        .map(|y| {
            let mut line_out = vec![0.0f32; src.planes * w];
            for x in 0..w {
                // Inverse map: the film position that lands on (x, y).
                let (ux, uy) = (x as f64 - cx - dx as f64, y as f64 - cy - dy as f64);
                let sx = (cos * ux + sin * uy + cx) as f32;
                let sy = (-sin * ux + cos * uy + cy) as f32;
                let (fx, wx) = taps(sx);
                let (fy, wy) = taps(sy);
                let cols: [usize; 6] = std::array::from_fn(|k| mirror(fx + k as isize, w));
                let rows: [usize; 6] = std::array::from_fn(|k| mirror(fy + k as isize, h));
                for p in 0..src.planes {
                    let plane = &src.data[p * n..(p + 1) * n];
                    let mut acc = 0.0f32;
                    for (ry, wyk) in rows.iter().zip(&wy) {
                        let row = &plane[ry * w..(ry + 1) * w];
                        let mut line = 0.0f32;
                        for (cxk, wxk) in cols.iter().zip(&wx) {
                            line += wxk * row[*cxk];
                        }
                        acc += wyk * line;
                    }
                    line_out[p * w + x] = acc;
                }
            }
            line_out
        })
        .collect();
    for (y, line) in rows.iter().enumerate() {
        for p in 0..src.planes {
            out.data[p * n + y * w..p * n + (y + 1) * w].copy_from_slice(&line[p * w..(p + 1) * w]);
        }
    }
    out
}

/// Undo [`warp`]: the film-coordinate frame back from a weaved one (exact up to resampling).
pub fn unwarp(src: &Frame, dx: f32, dy: f32, rotation_deg: f32) -> Frame {
    // Inverse of p -> R(a)(p - c) + c + d is q -> R(-a)(q - c - d) + c = R(-a)(q - c) + c - R(-a)d.
    let (sin, cos) = (rotation_deg.to_radians() as f64).sin_cos();
    let (ix, iy) = (
        cos * dx as f64 + sin * dy as f64,
        -sin * dx as f64 + cos * dy as f64,
    );
    warp(src, -ix as f32, -iy as f32, -rotation_deg)
}

pub(crate) fn apply(frame: &Frame, f: &WeaveFrame) -> Frame {
    warp(frame, f.dx, f.dy, f.rotation_deg)
}

#[cfg(test)]
mod tests {
    use super::taps;

    /// The angle-addition taps equal the textbook kernel `sinc(t) sinc(t / 3)`, normalised.
    #[test]
    fn taps_match_the_lanczos3_kernel() {
        let sinc = |t: f64| {
            if t.abs() < 1e-12 {
                1.0
            } else {
                (std::f64::consts::PI * t).sin() / (std::f64::consts::PI * t)
            }
        };
        for i in 0..200 {
            let s = -3.7 + i as f32 * 0.0731;
            let (first, w) = taps(s);
            let raw: Vec<f64> = (0..6)
                .map(|k| {
                    let t = s as f64 - (first + k) as f64;
                    sinc(t) * sinc(t / 3.0)
                })
                .collect();
            let sum: f64 = raw.iter().sum();
            for k in 0..6 {
                assert!(
                    (w[k] as f64 - raw[k] / sum).abs() < 1e-5,
                    "s {s}, tap {k}: {} vs {}",
                    w[k],
                    raw[k] / sum
                );
            }
        }
    }
}
