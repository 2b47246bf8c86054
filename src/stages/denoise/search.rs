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

/// Samples each level repeats beyond its edges: a block's window (twice its side, from half a
/// side before it) moved by vectors of up to 48 levels' pixels for the largest block (32)
/// reads only stored samples, with no clamping. Rarer reaches take the clamped path.
const PAD: usize = 96;

/// One level in integer units, its edge samples repeated [`PAD`] times beyond every edge, so
/// reading at any position within the pad gives the sample at the clamped position.
#[derive(Clone, Debug)]
pub struct Level {
    pub width: usize,
    pub height: usize,
    /// Samples per stored row: `width + 2 * PAD`.
    stride: usize,
    data: Vec<i32>,
}

impl Level {
    /// `samples` (row-major `width` x `height`) with the edges repeated.
    fn padded(samples: &[i32], width: usize, height: usize) -> Self {
        let stride = width + 2 * PAD;
        let mut data = vec![0; stride * (height + 2 * PAD)];
        for (yy, row) in data.chunks_exact_mut(stride).enumerate() {
            let y = yy.saturating_sub(PAD).min(height - 1);
            let src = &samples[y * width..(y + 1) * width];
            row[..PAD].fill(src[0]);
            row[PAD..PAD + width].copy_from_slice(src);
            row[PAD + width..].fill(src[width - 1]);
        }
        Level {
            width,
            height,
            stride,
            data,
        }
    }

    /// Whether the `nx` x `ny` window at `(x, y)` lies within the stored samples.
    fn holds(&self, x: i32, y: i32, nx: i32, ny: i32) -> bool {
        let p = PAD as i32;
        x >= -p
            && y >= -p
            && x + nx <= (self.width + PAD) as i32
            && y + ny <= (self.height + PAD) as i32
    }

    /// `n` samples of row `y` from column `x` (the window must be [`Level::holds`]).
    fn row(&self, x: i32, y: i32, n: usize) -> &[i32] {
        let i = (y + PAD as i32) as usize * self.stride + (x + PAD as i32) as usize;
        &self.data[i..i + n]
    }

    /// The sample at `(x, y)` clamped to the level.
    fn clamped(&self, x: i32, y: i32) -> i32 {
        let x = x.clamp(0, self.width as i32 - 1) as usize;
        let y = y.clamp(0, self.height as i32 - 1) as usize;
        self.data[(y + PAD) * self.stride + x + PAD]
    }
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
                .map(|l| {
                    let ints: Vec<i32> = l.data.iter().map(|v| (v * UNIT) as i32).collect();
                    Level::padded(&ints, l.width, l.height)
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

/// Absolute differences of two rows added into eight lanes (the row's length a multiple of
/// eight) or, past the last multiple of eight, into `tail`. Exact, so the order is free: the
/// lanes are summed once per block.
#[inline(always)]
fn sad_into(acc: &mut [i32; 8], tail: &mut i32, a: &[i32], b: &[i32]) {
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    for (p, q) in ca.remainder().iter().zip(cb.remainder()) {
        *tail += (p - q).abs();
    }
    for (ra, rb) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += (ra[k] - rb[k]).abs();
        }
    }
}

/// Block `(bx, by)`'s matching window as `motion::cpu` has it: the block side, the window's
/// top-left corner (half a side before the block) and its width (twice the side).
#[inline(always)]
fn window(block: usize, bx: usize, by: usize) -> (i32, i32, i32, i32) {
    let bs = block as i32;
    (bs, bx as i32 * bs - bs / 2, by as i32 * bs - bs / 2, 2 * bs)
}

crate::wide! {
    /// `motion::cpu::block_cost`: mean absolute difference over the block's window (twice its
    /// side) and the same window moved by `v` in B, coordinates clamped.
    fn block_cost(a: &Level, b: &Level, block: usize, bx: usize, by: usize, v: (i32, i32)) -> f32 {
        let (bs, x0, y0, n) = window(block, bx, by);
        let nu = n as usize;
        let mut s: i64 = 0;
        if a.holds(x0, y0, n, n) && b.holds(x0 + v.0, y0 + v.1, n, n) {
            // Lanes hold at most n² / 8 differences below 2^20: no overflow for n up to 64.
            let (mut acc, mut tail) = ([0i32; 8], 0i32);
            for j in 0..n {
                let (ra, rb) = (a.row(x0, y0 + j, nu), b.row(x0 + v.0, y0 + j + v.1, nu));
                sad_into(&mut acc, &mut tail, ra, rb);
            }
            s = acc.iter().map(|&l| l as i64).sum::<i64>() + tail as i64;
        } else {
            for j in 0..n {
                let row: i32 = (0..n)
                    .map(|i| (a.clamped(x0 + i, y0 + j) - b.clamped(x0 + i + v.0, y0 + j + v.1)).abs())
                    .sum();
                s += row as i64;
            }
        }
        (s as f32 * (1.0 / UNIT)) * (1.0 / (4 * bs * bs) as f32)
    }
}

/// Sum of absolute differences between a row of A and B interpolated between rows `top` and
/// `bot` (each one sample longer) at `tx`, `ty` quarters, in 2^-14 units. Each B row is
/// interpolated along x for both output rows it serves rather than kept between them: the
/// arithmetic is cheaper than the store and reload.
#[inline(always)]
fn frac_row(a: &[i32], top: &[i32], bot: &[i32], tx: i32, ty: i32) -> i32 {
    let n = a.len();
    a.iter()
        .zip(&top[..n])
        .zip(&top[1..=n])
        .zip(&bot[..n])
        .zip(&bot[1..=n])
        .map(|((((&av, &t0), &t1), &b0), &b1)| {
            // Level 0 holds multiples of 2^10 units: shifted down, samples in 2^-10.
            let (t0, t1, b0, b1) = (t0 >> 10, t1 >> 10, b0 >> 10, b1 >> 10);
            // 2^-12 units, then 2^-14.
            let t = 4 * t0 + (t1 - t0) * tx;
            let b = 4 * b0 + (b1 - b0) * tx;
            (16 * (av >> 10) - (4 * t + (b - t) * ty)).abs()
        })
        .sum()
}

crate::wide! {
    /// `motion::cpu::block_cost_frac` at a vector in quarter pixels (`q`), B sampled bilinearly
    /// as `motion::cpu::sample` does (positions clamped to the plane, the next tap clamped).
    /// Level 0 holds multiples of 2^-10; with two quarter-weight interpolations the samples are
    /// multiples of 2^-14, the units of these sums. Within the pad the taps need no clamping:
    /// the repeated edge samples give what the clamped positions would.
    fn block_cost_frac(a: &Level, b: &Level, block: usize, bx: usize, by: usize, q: (i32, i32)) -> f32 {
        let (bs, x0, y0, n) = window(block, bx, by);
        let nu = n as usize;
        let (ox, oy) = (q.0.div_euclid(4), q.1.div_euclid(4));
        let (tx, ty) = (q.0.rem_euclid(4), q.1.rem_euclid(4));
        let mut s: i64 = 0;
        if a.holds(x0, y0, n, n) && b.holds(x0 + ox, y0 + oy, n + 1, n + 1) {
            // Every sample has the same taps offset and weights: rows read straight.
            for j in 0..n {
                let top = b.row(x0 + ox, y0 + j + oy, nu + 1);
                let bot = b.row(x0 + ox, y0 + j + oy + 1, nu + 1);
                s += frac_row(a.row(x0, y0 + j, nu), top, bot, tx, ty) as i64;
            }
        } else {
            let (w, h) = (b.width as i32, b.height as i32);
            // Taps and weight (quarters) of a position, clamped as `motion::cpu::sample` does.
            let tap = |p: i32, q: i32, len: i32| {
                let p4 = (4 * p + q).clamp(0, 4 * (len - 1));
                let i0 = p4 >> 2;
                (i0, (i0 + 1).min(len - 1), p4 & 3)
            };
            for j in 0..n {
                let (r0, r1, ty) = tap(y0 + j, q.1, h);
                let mut row: i32 = 0;
                for i in 0..n {
                    let (s0, s1, tx) = tap(x0 + i, q.0, w);
                    // Level 0 holds multiples of 2^10 units: shifted down, samples in 2^-10.
                    let (b00, b01) = (b.clamped(s0, r0) >> 10, b.clamped(s1, r0) >> 10);
                    let (b10, b11) = (b.clamped(s0, r1) >> 10, b.clamped(s1, r1) >> 10);
                    // 2^-12 units, then 2^-14.
                    let top = 4 * b00 + (b01 - b00) * tx;
                    let bot = 4 * b10 + (b11 - b10) * tx;
                    let v = 4 * top + (bot - top) * ty;
                    row += (16 * (a.clamped(x0 + i, y0 + j) >> 10) - v).abs();
                }
                s += row as i64;
            }
        }
        (s as f32 * (1.0 / (1 << 14) as f32)) * (1.0 / (4 * bs * bs) as f32)
    }
}
