//! CPU reference for `deflicker`: the block sums that thumbnails are made of (twin of
//! `shaders/deflicker_rows.wgsl` + `shaders/deflicker_blocks.wgsl`, summing in the same order so
//! the results are bit-identical) and the per-pixel correction (twin of `shaders/deflicker.wgsl`).

use rayon::prelude::*;

use super::analysis::{Correction, Geometry};
use crate::frame::Frame;

/// Sums of each `block` x `block` block of every plane (the last row and column of blocks may
/// be smaller), planar, `geo.tw * geo.th` per plane. Each block is summed row by row: first
/// each row's samples left to right, then the row sums top to bottom, all in `f32` starting
/// from 0, exactly as the two GPU passes do.
pub fn block_sums(frame: &Frame, geo: &Geometry) -> Vec<f32> {
    let (w, h, f, tw, th) = (geo.width, geo.height, geo.block, geo.tw, geo.th);
    let mut out = vec![0.0f32; tw * th * geo.planes];
    if w == 0 || h == 0 {
        return out;
    }
    let full = w / f; // blocks of full width
    out.par_chunks_mut(tw).enumerate().for_each_init(
        || vec![0.0f32; tw],
        |row_sums, (pb, dst)| {
            let (p, by) = (pb / th, pb % th);
            let plane = frame.plane(p);
            let (y0, y1) = (by * f, ((by + 1) * f).min(h));
            for y in y0..y1 {
                let line = &plane[y * w..(y + 1) * w];
                row_sums.iter_mut().for_each(|s| *s = 0.0);
                // Left to right within each block; blocks interleaved so the independent
                // sums pipeline. The order of additions within a block is unchanged.
                for xo in 0..f {
                    for (bx, s) in row_sums[..full].iter_mut().enumerate() {
                        *s += line[bx * f + xo];
                    }
                }
                if full < tw {
                    let s = &mut row_sums[full];
                    for v in &line[full * f..w] {
                        *s += *v;
                    }
                }
                for (d, s) in dst.iter_mut().zip(row_sums.iter()) {
                    *d += *s;
                }
            }
        },
    );
    out
}

/// Position along one axis of the node grid for the sample at `pos` (pixel index):
/// `(i0, i1, t)` with the value `v[i0] * (1 - t) + v[i1] * t`. Nodes sit at the centres of
/// `nodes` equal regions, `u = (pos + 0.5) * scale - 0.5` with `scale = nodes / extent`; beyond
/// the outer nodes the line through the last two continues (`t` outside 0..1). Twin of `axis`
/// in `shaders/deflicker.wgsl`.
pub fn axis(pos: f32, nodes: usize, scale: f32) -> (usize, usize, f32) {
    if nodes < 2 {
        return (0, 0, 0.0);
    }
    let u = (pos + 0.5) * scale - 0.5;
    let i0 = u.floor().clamp(0.0, (nodes - 2) as f32);
    let t = u - i0;
    let i0 = i0 as usize;
    (i0, i0 + 1, t)
}

/// `a + (b - a) * t`: exactly `a` where the two are equal (an identity correction stays one).
/// Twin of `lerp` in `shaders/deflicker.wgsl`.
pub fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}

/// Apply the correction in place (see [`corrected`]).
pub fn apply(frame: &mut Frame, c: &Correction) {
    *frame = corrected(frame, c);
}

/// `out = g * in + o` with `(g, o)` interpolated bilinearly from the correction's nodes: per
/// row, the node values down each grid column first, then across, as the shader does.
pub fn corrected(frame: &Frame, c: &Correction) -> Frame {
    let (w, h) = (frame.width, frame.height);
    let mut out = Frame {
        width: w,
        height: h,
        planes: frame.planes,
        // Zeroed pages come from the allocator untouched, unlike a clone's copy.
        data: vec![0.0; frame.data.len()],
        meta: frame.meta.clone(),
    };
    if w == 0 || h == 0 {
        return out;
    }
    let (cols, rows) = (c.cols, c.rows);
    let xs: Vec<(usize, usize, f32)> = (0..w).map(|x| axis(x as f32, cols, c.scale[0])).collect();
    let n = w * h;
    out.data
        .par_chunks_mut(w)
        .zip(frame.data.par_chunks(w))
        .enumerate()
        .for_each_init(
            || vec![[0.0f32; 2]; cols],
            |column, (row, (dst, src))| {
                let (p, y) = (row * w / n, row % h);
                let nodes = c.plane_nodes(p);
                let (j0, j1, ty) = axis(y as f32, rows, c.scale[1]);
                for (i, v) in column.iter_mut().enumerate() {
                    let (a, b) = (nodes[j0 * cols + i], nodes[j1 * cols + i]);
                    *v = [lerp(a[0], b[0], ty), lerp(a[1], b[1], ty)];
                }
                for ((d, s), &(i0, i1, tx)) in dst.iter_mut().zip(src).zip(&xs) {
                    let (a, b) = (column[i0], column[i1]);
                    *d = lerp(a[0], b[0], tx) * *s + lerp(a[1], b[1], tx);
                }
            },
        );
    out
}
