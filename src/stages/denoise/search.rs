//! `denoise`'s motion search on the CPU: [`crate::motion::cpu::estimate`], result for result,
//! on a pyramid of luma quantised to [`LUMA_STEPS`] levels, in integer arithmetic.
//!
//! Quantised luma (multiples of 1/1024 in 0..1, and the pyramid's 2x2 means of them) makes
//! every sum of the search exact in `f32`: each absolute difference, the bilinear samples of
//! the quarter-pixel refinement, and the window sums all have fewer than 24 significant bits
//! (up to five pyramid levels). Exact sums do not depend on their order, so the same costs come
//! out of the shared, sample-by-sample `f32` reference, of the shaders (fused multiply-adds
//! included) and of the integer sums here, which the compiler can vectorise. `tests/denoise.rs`
//! holds this to equality with [`crate::motion::cpu::estimate`]. The quantisation (a 1/1024
//! step, far below any grain worth removing) does not change what the search finds.

use crate::frame::{Frame, FrameMeta};
use crate::motion::cpu::{Plane, Pyramid, SearchPlane};
use crate::motion::{Field, MotionParams};

/// Luma levels the motion search sees: `floor(clamp(v, 0, 1) * 1024 + 0.5) / 1024`.
pub const LUMA_STEPS: f32 = 1024.0;

/// Samples of the integer pyramid are in units of 2^-20 (level `l` holds multiples of
/// 2^(10 - 2l) of them, as the 2x2 means of level 0's multiples of 1/1024).
const UNIT: f32 = (1u32 << 20) as f32;

/// Quantise luma for the search (`shaders/denoise_scale.wgsl`, mode 1, is the twin).
pub fn quantise(v: f32) -> f32 {
    // Not negative after the clamp: truncation is the floor.
    ((v.clamp(0.0, 1.0) * LUMA_STEPS + 0.5) as i32) as f32 * (1.0 / LUMA_STEPS)
}

/// The pyramid the search runs on: `luma` (full resolution) reduced to half resolution by 2x2
/// means, [`quantise`]d, then [`Pyramid::of`] that.
pub fn half_pyramid(luma: &Plane, params: &MotionParams) -> Pyramid {
    let (hw, hh) = (luma.width / 2, luma.height / 2);
    let half = crate::motion::cpu::reduce(luma, hw, hh);
    let hf = Frame {
        width: hw,
        height: hh,
        planes: 1,
        data: half.data.into_iter().map(quantise).collect(),
        meta: FrameMeta::default(),
    };
    Pyramid::of(&hf, params)
}

/// One level in integer units.
#[derive(Clone, Debug)]
pub struct Level {
    pub width: usize,
    pub height: usize,
    pub data: Vec<i32>,
}

/// A pyramid of quantised luma ([`Pyramid::of`] on [`quantise`]d samples) in integer units.
#[derive(Clone, Debug)]
pub struct IntPyramid {
    pub levels: Vec<Level>,
}

impl IntPyramid {
    /// The integer twin of a pyramid built from quantised luma (exact: every sample is a
    /// multiple of 2^-20 below 1).
    pub fn of(p: &Pyramid) -> Self {
        IntPyramid {
            levels: p
                .levels
                .iter()
                .map(|l| Level {
                    width: l.width,
                    height: l.height,
                    data: l.data.iter().map(|v| (v * UNIT) as i32).collect(),
                })
                .collect(),
        }
    }
}

/// The motion field from A to B, as [`crate::motion::cpu::estimate`] finds it.
pub fn estimate(a: &IntPyramid, b: &IntPyramid, params: &MotionParams) -> Field {
    crate::motion::cpu::estimate_levels(&a.levels, &b.levels, params)
}

impl SearchPlane for Level {
    fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    fn cost(&self, b: &Self, block: usize, bx: usize, by: usize, v: (i32, i32)) -> f32 {
        block_cost(self, b, block, bx, by, v)
    }

    fn cost_quarter(&self, b: &Self, block: usize, bx: usize, by: usize, q: (i32, i32)) -> f32 {
        block_cost_frac(self, b, block, bx, by, q)
    }
}

/// `motion::cpu::block_cost`: mean absolute difference over the block's window (twice its
/// side) and the same window moved by `v` in B, coordinates clamped.
fn block_cost(a: &Level, b: &Level, block: usize, bx: usize, by: usize, v: (i32, i32)) -> f32 {
    let bs = block as i32;
    let (x0, y0) = (bx as i32 * bs - bs / 2, by as i32 * bs - bs / 2);
    let n = 2 * bs;
    let inside = |l: &Level, x: i32, y: i32| {
        x >= 0 && y >= 0 && x + n <= l.width as i32 && y + n <= l.height as i32
    };
    let mut s: i64 = 0;
    if inside(a, x0, y0) && inside(b, x0 + v.0, y0 + v.1) {
        let nu = n as usize;
        for j in 0..n {
            let ra = (y0 + j) as usize * a.width + x0 as usize;
            let rb = (y0 + j + v.1) as usize * b.width + (x0 + v.0) as usize;
            let (ra, rb) = (&a.data[ra..ra + nu], &b.data[rb..rb + nu]);
            s += ra.iter().zip(rb).map(|(p, q)| (p - q).abs()).sum::<i32>() as i64;
        }
    } else {
        // Clamped coordinates found once per column and row.
        let cl = |p: i32, len: usize| p.clamp(0, len as i32 - 1) as usize;
        let xa: Vec<usize> = (0..n).map(|i| cl(x0 + i, a.width)).collect();
        let xb: Vec<usize> = (0..n).map(|i| cl(x0 + i + v.0, b.width)).collect();
        for j in 0..n {
            let ra = cl(y0 + j, a.height) * a.width;
            let rb = cl(y0 + j + v.1, b.height) * b.width;
            let row: i32 = xa
                .iter()
                .zip(&xb)
                .map(|(&p, &q)| (a.data[ra + p] - b.data[rb + q]).abs())
                .sum();
            s += row as i64;
        }
    }
    (s as f32 * (1.0 / UNIT)) * (1.0 / (4 * bs * bs) as f32)
}

/// `motion::cpu::block_cost_frac` at a vector in quarter pixels (`q`), B sampled bilinearly as
/// `motion::cpu::sample` does (positions clamped to the plane, the next tap clamped). Level 0
/// holds multiples of 2^-10; with two quarter-weight interpolations the samples are multiples
/// of 2^-14, the units of these sums.
fn block_cost_frac(a: &Level, b: &Level, block: usize, bx: usize, by: usize, q: (i32, i32)) -> f32 {
    let bs = block as i32;
    let (x0, y0) = (bx as i32 * bs - bs / 2, by as i32 * bs - bs / 2);
    let n = 2 * bs;
    let (w, h) = (b.width as i32, b.height as i32);
    // Per column and per row: the taps and the weight (quarters) of each sample of B.
    let tap = |p: i32, q: i32, len: i32| {
        let p4 = (4 * p + q).clamp(0, 4 * (len - 1));
        let i0 = p4 >> 2;
        (i0 as usize, (i0 + 1).min(len - 1) as usize, p4 & 3)
    };
    let (ox, oy) = (q.0.div_euclid(4), q.1.div_euclid(4));
    let (tx, ty) = (q.0.rem_euclid(4), q.1.rem_euclid(4));
    let inside = x0 >= 0
        && y0 >= 0
        && x0 + n <= a.width as i32
        && y0 + n <= a.height as i32
        && x0 + ox >= 0
        && y0 + oy >= 0
        && x0 + ox + n < w
        && y0 + oy + n < h;
    if inside {
        // Every sample has the same taps offset and weights: rows read straight, each row of
        // B interpolated along x once (it is the lower tap of one output row and the upper
        // of the next).
        let nu = n as usize;
        let mut s: i64 = 0;
        let across = |out: &mut [i32; 64], yb: i32| {
            let r = yb as usize * b.width + (x0 + ox) as usize;
            let row = &b.data[r..r + nu + 1];
            for i in 0..nu {
                let (b0, b1) = (row[i] >> 10, row[i + 1] >> 10);
                // 2^-12 units.
                out[i] = 4 * b0 + (b1 - b0) * tx;
            }
        };
        let (mut top, mut bot) = ([0i32; 64], [0i32; 64]);
        across(&mut top, y0 + oy);
        for j in 0..n {
            across(&mut bot, y0 + j + oy + 1);
            let ra = (y0 + j) as usize * a.width + x0 as usize;
            let row: i32 = a.data[ra..ra + nu]
                .iter()
                .zip(&top[..nu])
                .zip(&bot[..nu])
                // 2^-14 units.
                .map(|((&av, &t), &bv)| (16 * (av >> 10) - (4 * t + (bv - t) * ty)).abs())
                .sum();
            s += row as i64;
            std::mem::swap(&mut top, &mut bot);
        }
        return (s as f32 * (1.0 / (1 << 14) as f32)) * (1.0 / (4 * bs * bs) as f32);
    }
    let cols: [(usize, usize, i32); 64] = std::array::from_fn(|i| {
        if (i as i32) < n {
            tap(x0 + i as i32, q.0, w)
        } else {
            (0, 0, 0)
        }
    });
    let mut s: i64 = 0;
    for j in 0..n {
        let y = y0 + j;
        let (t0, t1, ty) = tap(y, q.1, h);
        let (r0, r1) = (t0 * b.width, t1 * b.width);
        let ra = y.clamp(0, a.height as i32 - 1) as usize * a.width;
        let mut row: i32 = 0;
        for (i, &(s0, s1, tx)) in cols[..n as usize].iter().enumerate() {
            let xa = (x0 + i as i32).clamp(0, a.width as i32 - 1) as usize;
            // Level 0 holds multiples of 2^10 units: shifted down, samples in 2^-10.
            let (b00, b01) = (b.data[r0 + s0] >> 10, b.data[r0 + s1] >> 10);
            let (b10, b11) = (b.data[r1 + s0] >> 10, b.data[r1 + s1] >> 10);
            // 2^-12 units, then 2^-14.
            let top = 4 * b00 + (b01 - b00) * tx;
            let bot = 4 * b10 + (b11 - b10) * tx;
            let v = 4 * top + (bot - top) * ty;
            row += (16 * (a.data[ra + xa] >> 10) - v).abs();
        }
        s += row as i64;
    }
    (s as f32 * (1.0 / (1 << 14) as f32)) * (1.0 / (4 * bs * bs) as f32)
}
