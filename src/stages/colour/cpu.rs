//! CPU reference for `colour`: the block sums the thumbnails are made of (twin of
//! `shaders/colour_reduce.wgsl`, adding in the same order so both backends measure the same
//! thumbnails bit for bit) and the per-pixel curves (twin of `shaders/colour.wgsl`).

use rayon::prelude::*;

use super::analysis::{Curve, Geometry, FLOOR};
use crate::frame::Frame;

/// Sum of each `block` x `block` block of every plane (edge blocks may be smaller), planar,
/// `geo.tw * geo.th` per plane: each block row by row, left to right, in `f32` from 0.
pub fn block_sums(frame: &Frame, geo: &Geometry) -> Vec<f32> {
    let (w, h, f, tw, th) = (geo.width, geo.height, geo.block, geo.tw, geo.th);
    let mut out = vec![0.0f32; tw * th * geo.planes];
    if w == 0 || h == 0 {
        return out;
    }
    out.par_chunks_mut(tw).enumerate().for_each(|(pb, dst)| {
        let (p, by) = (pb / th, pb % th);
        let plane = frame.plane(p);
        let (y0, y1) = (by * f, ((by + 1) * f).min(h));
        for (bx, d) in dst.iter_mut().enumerate() {
            let (x0, x1) = (bx * f, ((bx + 1) * f).min(w));
            let mut s = 0.0f32;
            for y in y0..y1 {
                for v in &plane[y * w + x0..y * w + x1] {
                    s += *v;
                }
            }
            *d = s;
        }
    });
    out
}

/// One sample through a plane's curve. Twin of `curve` in `shaders/colour.wgsl`.
pub fn curve(v: f32, c: &Curve) -> f32 {
    match *c {
        Curve::Power { k, e, slope } => {
            if v >= FLOOR {
                k * v.powf(e)
            } else {
                slope * v
            }
        }
        Curve::Affine { g, o } => g * v + o,
        Curve::Levels {
            black,
            inv,
            e,
            lo,
            hi,
            s,
        } => {
            let t = (v - black) * inv;
            let t = if t > 0.0 { t.powf(e) } else { t };
            let out = lo + (hi - lo) * t;
            v + s * (out - v)
        }
    }
}

/// Apply one curve per plane (a plane past the list keeps the last curve).
pub fn apply(frame: &mut Frame, curves: &[Curve]) {
    let width = frame.width.max(1);
    for (p, plane) in frame.planes_mut().into_iter().enumerate() {
        let Some(c) = curves.get(p).or(curves.last()) else {
            return;
        };
        plane.par_chunks_mut(width).for_each(|row| {
            for v in row {
                *v = curve(*v, c);
            }
        });
    }
}
