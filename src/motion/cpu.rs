//! CPU reference of the motion estimator, warp and compensation (see the module documentation of
//! [`crate::motion`]). The shaders `shaders/motion_*.wgsl` do the same arithmetic in the same
//! order.

use rayon::prelude::*;

use super::{level_sizes, Field, MotionParams};
use crate::frame::Frame;

/// One plane of samples, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Plane {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

impl Plane {
    fn get(&self, x: usize, y: usize) -> f32 {
        self.data[y * self.width + x]
    }

    /// Sample at integer `(x, y)` clamped into the plane.
    fn clamped(&self, x: i32, y: i32) -> f32 {
        let x = x.clamp(0, self.width as i32 - 1) as usize;
        let y = y.clamp(0, self.height as i32 - 1) as usize;
        self.get(x, y)
    }
}

/// The luma pyramid of one frame; level 0 is full size.
#[derive(Clone, Debug)]
pub struct Pyramid {
    pub levels: Vec<Plane>,
}

impl Pyramid {
    pub fn of(frame: &Frame, params: &MotionParams) -> Self {
        let n = params.levels(frame.width, frame.height);
        let mut levels = vec![luma(frame)];
        for (w, h) in level_sizes(frame.width, frame.height, n)
            .into_iter()
            .skip(1)
        {
            let prev = levels.last().unwrap();
            levels.push(reduce(prev, w, h));
        }
        Pyramid { levels }
    }
}

/// Mean of the planes: `(p0 + p1 + ...) * (1 / planes)`, summed in plane order.
pub fn luma(frame: &Frame) -> Plane {
    let n = frame.plane_len();
    let inv = 1.0 / frame.planes as f32;
    let data = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut s = 0.0f32;
            for p in 0..frame.planes {
                s += frame.data[p * n + i];
            }
            s * inv
        })
        .collect();
    Plane {
        width: frame.width,
        height: frame.height,
        data,
    }
}

/// 2x2 box average to `w` x `h` (at most half the size of `src`).
pub fn reduce(src: &Plane, w: usize, h: usize) -> Plane {
    let mut data = vec![0.0f32; w * h];
    data.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for (x, v) in row.iter_mut().enumerate() {
            let (sx, sy) = (2 * x, 2 * y);
            let s = src.get(sx, sy)
                + src.get(sx + 1, sy)
                + src.get(sx, sy + 1)
                + src.get(sx + 1, sy + 1);
            *v = s * 0.25;
        }
    });
    Plane {
        width: w,
        height: h,
        data,
    }
}

/// Mean absolute difference between the window of block `(bx, by)` in `a` and the same window
/// moved by `(vx, vy)` in `b`. The window is the block grown by half a block on every side;
/// coordinates are clamped into the planes.
pub fn block_cost(a: &Plane, b: &Plane, block: usize, bx: usize, by: usize, v: (i32, i32)) -> f32 {
    let bs = block as i32;
    let x0 = bx as i32 * bs - bs / 2;
    let y0 = by as i32 * bs - bs / 2;
    let n = 2 * bs;
    let inside = |p: &Plane, (x, y): (i32, i32)| {
        x >= 0 && y >= 0 && x + n <= p.width as i32 && y + n <= p.height as i32
    };
    let mut s = 0.0f32;
    if inside(a, (x0, y0)) && inside(b, (x0 + v.0, y0 + v.1)) {
        // No clamping needed: the same sum, read straight from the rows.
        for j in 0..n {
            let ra = (y0 + j) as usize * a.width;
            let rb = (y0 + j + v.1) as usize * b.width;
            for i in 0..n {
                let (xa, xb) = ((x0 + i) as usize, (x0 + i + v.0) as usize);
                s += (a.data[ra + xa] - b.data[rb + xb]).abs();
            }
        }
        return s * (1.0 / (4 * bs * bs) as f32);
    }
    for j in 0..n {
        for i in 0..n {
            let (x, y) = (x0 + i, y0 + j);
            s += (a.clamped(x, y) - b.clamped(x + v.0, y + v.1)).abs();
        }
    }
    s * (1.0 / (4 * bs * bs) as f32)
}

/// [`block_cost`] of several vectors at once, where the window and every moved window lie
/// inside the planes: row by row, each vector's sum taken in the same order as alone (so the
/// same value), the vectors' sums running side by side instead of one after another. False
/// (nothing written) where that does not hold.
fn block_costs_inside(
    a: &Plane,
    b: &Plane,
    block: usize,
    (bx, by): (usize, usize),
    vs: &[(i32, i32)],
    out: &mut [f32],
) -> bool {
    const MOST: usize = 32;
    let bs = block as i32;
    let (x0, y0, n) = (bx as i32 * bs - bs / 2, by as i32 * bs - bs / 2, 2 * bs);
    let inside = |p: &Plane, (x, y): (i32, i32)| {
        x >= 0 && y >= 0 && x + n <= p.width as i32 && y + n <= p.height as i32
    };
    if vs.len() > MOST
        || !inside(a, (x0, y0))
        || !vs.iter().all(|v| inside(b, (x0 + v.0, y0 + v.1)))
    {
        return false;
    }
    let mut acc = [0.0f32; MOST];
    let nu = n as usize;
    for j in 0..n {
        let row_a = &a.data[(y0 + j) as usize * a.width + x0 as usize..][..nu];
        for (k, v) in vs.iter().enumerate() {
            let start = (y0 + j + v.1) as usize * b.width + (x0 + v.0) as usize;
            let row_b = &b.data[start..][..nu];
            let mut s = acc[k];
            for (pa, pb) in row_a.iter().zip(row_b) {
                s += (pa - pb).abs();
            }
            acc[k] = s;
        }
    }
    for (o, s) in out.iter_mut().zip(acc) {
        *o = s * (1.0 / (4 * bs * bs) as f32);
    }
    true
}

/// Median of nine values (sorted copy; the same on every platform).
fn median9(mut v: [i32; 9]) -> i32 {
    v.sort_unstable();
    v[4]
}

/// The predictor of block `(bx, by)` from the coarser level's integer field: twice the
/// component-wise median of the 3x3 coarse vectors around the parent block.
fn predictor(coarse: &Field, bx: usize, by: usize) -> (i32, i32) {
    let cx = (bx / 2).min(coarse.cols - 1) as i32;
    let cy = (by / 2).min(coarse.rows - 1) as i32;
    let mut xs = [0i32; 9];
    let mut ys = [0i32; 9];
    for j in 0..3i32 {
        for i in 0..3i32 {
            let x = (cx + i - 1).clamp(0, coarse.cols as i32 - 1) as usize;
            let y = (cy + j - 1).clamp(0, coarse.rows as i32 - 1) as usize;
            let (vx, vy) = coarse.at(x, y);
            xs[(j * 3 + i) as usize] = vx as i32;
            ys[(j * 3 + i) as usize] = vy as i32;
        }
    }
    (2 * median9(xs), 2 * median9(ys))
}

/// A pyramid level the block search runs on: its size and the cost of a block's vector.
/// [`Plane`] is the reference; `denoise` searches an exact integer twin of it.
pub trait SearchPlane: Sync {
    fn size(&self) -> (usize, usize);
    /// [`block_cost`] at an integer vector.
    fn cost(&self, b: &Self, block: usize, bx: usize, by: usize, v: (i32, i32)) -> f32;
    /// [`block_cost_frac`] at a vector in quarter pixels.
    fn cost_quarter(&self, b: &Self, block: usize, bx: usize, by: usize, q: (i32, i32)) -> f32;
    /// [`SearchPlane::cost`] of each of `vs` into `out`, each exactly as alone.
    fn costs(
        &self,
        b: &Self,
        block: usize,
        (bx, by): (usize, usize),
        vs: &[(i32, i32)],
        out: &mut [f32],
    ) {
        for (v, o) in vs.iter().zip(out.iter_mut()) {
            *o = self.cost(b, block, bx, by, *v);
        }
    }
}

impl SearchPlane for Plane {
    fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    fn cost(&self, b: &Self, block: usize, bx: usize, by: usize, v: (i32, i32)) -> f32 {
        block_cost(self, b, block, bx, by, v)
    }

    fn costs(
        &self,
        b: &Self,
        block: usize,
        (bx, by): (usize, usize),
        vs: &[(i32, i32)],
        out: &mut [f32],
    ) {
        if !block_costs_inside(self, b, block, (bx, by), vs, out) {
            for (v, o) in vs.iter().zip(out.iter_mut()) {
                *o = block_cost(self, b, block, bx, by, *v);
            }
        }
    }

    fn cost_quarter(&self, b: &Self, block: usize, bx: usize, by: usize, q: (i32, i32)) -> f32 {
        block_cost_frac(
            self,
            b,
            block,
            bx,
            by,
            (q.0 as f32 * 0.25, q.1 as f32 * 0.25),
        )
    }
}

/// Search one level: the integer vector of least cost per block, refined to a fraction on the
/// finest level (`subpixel`). `coarse` is the coarser level's result, `None` on the coarsest.
pub fn search_level<L: SearchPlane>(
    a: &L,
    b: &L,
    coarse: Option<&Field>,
    radius: i32,
    subpixel: bool,
    params: &MotionParams,
) -> Field {
    let (width, height) = a.size();
    let mut field = Field::zero(width, height, params.block);
    let cols = field.cols;
    let vectors: Vec<(f32, f32)> = (0..field.cols * field.rows)
        .into_par_iter()
        .map(|i| {
            let (bx, by) = (i % cols, i / cols);
            let p = coarse.map_or((0, 0), |c| predictor(c, bx, by));
            search_block(a, b, bx, by, p, radius, subpixel, params)
        })
        .collect();
    for (i, (vx, vy)) in vectors.into_iter().enumerate() {
        field.vx[i] = vx;
        field.vy[i] = vy;
    }
    field
}

/// The best vector for one block: zero motion first, then `p + (dx, dy)` for `dx, dy` in
/// `-radius..=radius` in raster order; a later candidate wins only if strictly cheaper.
#[allow(clippy::too_many_arguments)]
fn search_block<L: SearchPlane>(
    a: &L,
    b: &L,
    bx: usize,
    by: usize,
    p: (i32, i32),
    radius: i32,
    subpixel: bool,
    params: &MotionParams,
) -> (f32, f32) {
    let bs = params.block;
    let penalty = |v: (i32, i32)| params.lambda * ((v.0 - p.0).abs() + (v.1 - p.1).abs()) as f32;
    // Zero motion first, then the raster (where it passes zero again, the same cost could not
    // be strictly cheaper). Costed together, chosen in that order.
    let mut vs: Vec<(i32, i32)> = vec![(0, 0)];
    for dy in -radius..=radius {
        for dx in -radius..=radius {
            let v = (p.0 + dx, p.1 + dy);
            if v != (0, 0) {
                vs.push(v);
            }
        }
    }
    let mut matches = vec![0.0f32; vs.len()];
    for (chunk, out) in vs.chunks(32).zip(matches.chunks_mut(32)) {
        a.costs(b, bs, (bx, by), chunk, out);
    }
    let mut best = (0, 0);
    // The winner's cost without the penalty: where the sub-pixel steps start.
    let mut best_match = matches[0];
    let mut best_cost = best_match + penalty(best);
    for (&v, &m) in vs.iter().zip(&matches).skip(1) {
        let c = m + penalty(v);
        if c < best_cost {
            (best_cost, best, best_match) = (c, v, m);
        }
    }
    // In quarter pixels, so that every candidate is exact.
    let (mut fx, mut fy) = (best.0 * 4, best.1 * 4);
    if subpixel {
        // Half, then quarter pixel steps along each axis; a step is taken only if strictly
        // cheaper, so an exact integer match stays exact.
        let mut cost = best_match;
        for step in [2, 1] {
            let (mut nx, mut cx) = (fx, cost);
            for cand in [fx - step, fx + step] {
                let c = a.cost_quarter(b, bs, bx, by, (cand, fy));
                if c < cx {
                    (nx, cx) = (cand, c);
                }
            }
            let (mut ny, mut cy) = (fy, cost);
            for cand in [fy - step, fy + step] {
                let c = a.cost_quarter(b, bs, bx, by, (fx, cand));
                if c < cy {
                    (ny, cy) = (cand, c);
                }
            }
            if (nx, ny) != (fx, fy) {
                (fx, fy) = (nx, ny);
                cost = a.cost_quarter(b, bs, bx, by, (fx, fy));
            }
        }
    }
    (fx as f32 * 0.25, fy as f32 * 0.25)
}

/// [`block_cost`] at a fractional vector, B sampled bilinearly.
pub fn block_cost_frac(
    a: &Plane,
    b: &Plane,
    block: usize,
    bx: usize,
    by: usize,
    v: (f32, f32),
) -> f32 {
    let bs = block as i32;
    let x0 = bx as i32 * bs - bs / 2;
    let y0 = by as i32 * bs - bs / 2;
    if let Some(s) = block_cost_frac_inside(a, b, bs, (x0, y0), v) {
        return s;
    }
    let mut s = 0.0f32;
    for j in 0..2 * bs {
        for i in 0..2 * bs {
            let (x, y) = (x0 + i, y0 + j);
            let bv = sample(&b.data, b.width, b.height, x as f32 + v.0, y as f32 + v.1);
            s += (a.clamped(x, y) - bv).abs();
        }
    }
    s * (1.0 / (4 * bs * bs) as f32)
}

/// [`block_cost_frac`] where the window lies inside A and every bilinear sample of B (both
/// taps) inside B, with `x + v` exact for every pixel (a vector that is a multiple of a
/// quarter pixel, as the search makes): then every sample has the same taps offset and
/// weights, found once, and the sum is the same, term by term, as sampling each pixel.
/// `None` where that does not hold (frame edges, other vectors).
fn block_cost_frac_inside(
    a: &Plane,
    b: &Plane,
    bs: i32,
    (x0, y0): (i32, i32),
    v: (f32, f32),
) -> Option<f32> {
    let quarter = |c: f32| (c * 4.0).fract() == 0.0 && c.abs() < 4096.0;
    if !quarter(v.0) || !quarter(v.1) || a.width != b.width || a.height != b.height {
        return None;
    }
    let (fx, fy) = (v.0.floor(), v.1.floor());
    let (tx, ty) = (v.0 - fx, v.1 - fy);
    let (ox, oy) = (fx as i32, fy as i32);
    let (w, h) = (a.width as i32, a.height as i32);
    let n = 2 * bs;
    let inside = x0 >= 0
        && y0 >= 0
        && x0 + n <= w
        && y0 + n <= h
        && x0 + ox >= 0
        && y0 + oy >= 0
        && x0 + ox + n < w
        && y0 + oy + n < h;
    if !inside {
        return None;
    }
    let (wu, bd, nu) = (b.width, &b.data, n as usize);
    let xb0 = (x0 + ox) as usize;
    let mut s = 0.0f32;
    for j in 0..n {
        let row_a = &a.data[(y0 + j) as usize * wu + x0 as usize..][..nu];
        let yb = (y0 + j + oy) as usize;
        let (r0, r1) = (yb * wu, (yb + 1) * wu);
        // A step along one axis has a zero weight on the other, and `lerp(p, q, 0) = p` for
        // finite samples: the same sum from half the reads (most of the sub-pixel steps).
        if ty == 0.0 {
            let row_b = &bd[r0 + xb0..][..nu + 1];
            for (i, &va) in row_a.iter().enumerate() {
                s += (va - lerp(row_b[i], row_b[i + 1], tx)).abs();
            }
        } else if tx == 0.0 {
            let (t, u) = (&bd[r0 + xb0..][..nu], &bd[r1 + xb0..][..nu]);
            for (i, &va) in row_a.iter().enumerate() {
                s += (va - lerp(t[i], u[i], ty)).abs();
            }
        } else {
            for (i, &va) in row_a.iter().enumerate() {
                let xb = xb0 + i;
                let top = lerp(bd[r0 + xb], bd[r0 + xb + 1], tx);
                let bot = lerp(bd[r1 + xb], bd[r1 + xb + 1], tx);
                s += (va - lerp(top, bot, ty)).abs();
            }
        }
    }
    Some(s * (1.0 / (4 * bs * bs) as f32))
}

/// The motion field from A to B: where each block of A is found in B.
pub fn estimate(a: &Pyramid, b: &Pyramid, params: &MotionParams) -> Field {
    estimate_levels(&a.levels, &b.levels, params)
}

/// [`estimate`] on any pyramid of [`SearchPlane`]s, finest level first.
pub fn estimate_levels<L: SearchPlane>(a: &[L], b: &[L], params: &MotionParams) -> Field {
    let n = a.len().min(b.len());
    let mut coarse: Option<Field> = None;
    for l in (0..n).rev() {
        let radius = if l == n - 1 { params.search as i32 } else { 1 };
        let f = search_level(&a[l], &b[l], coarse.as_ref(), radius, l == 0, params);
        coarse = Some(f);
    }
    coarse.expect("at least one level")
}

/// `x.floor() as i32` for finite `x` within `i32`'s range, without a call to floorf.
#[inline(always)]
fn floor_i32(x: f32) -> i32 {
    let t = x as i32;
    t - (t as f32 > x) as i32
}

/// Linear interpolation `a + (b - a) * t`, written once so the warp's rounding is explicit.
#[inline(always)]
fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}

/// A block-centre coordinate: integer index below and the fraction toward the next, clamped
/// to the grid.
fn grid_pos(p: f32, block: usize, n: usize) -> (usize, usize, f32) {
    let f = ((p + 0.5) / block as f32 - 0.5).clamp(0.0, (n - 1) as f32);
    // `f` is not negative: truncation is its floor (without a call to the C library's floorf).
    let i = f as usize;
    (i, (i + 1).min(n - 1), f - i as f32)
}

/// The field's vector at pixel `(x, y)`, bilinear between block centres.
pub fn field_at(field: &Field, x: f32, y: f32) -> (f32, f32) {
    field_between(
        field,
        grid_pos(x, field.block, field.cols),
        grid_pos(y, field.block, field.rows),
    )
}

/// [`field_at`] from the [`grid_pos`] of the pixel's column and row.
fn field_between(
    field: &Field,
    (x0, x1, tx): (usize, usize, f32),
    (y0, y1, ty): (usize, usize, f32),
) -> (f32, f32) {
    let c = field.cols;
    let bil = |v: &[f32]| {
        let top = lerp(v[y0 * c + x0], v[y0 * c + x1], tx);
        let bot = lerp(v[y1 * c + x0], v[y1 * c + x1], tx);
        lerp(top, bot, ty)
    };
    (bil(&field.vx), bil(&field.vy))
}

/// Bilinear sample of a plane at `(x, y)`, clamped to the plane.
pub fn sample(plane: &[f32], w: usize, h: usize, x: f32, y: f32) -> f32 {
    let x = x.clamp(0.0, (w - 1) as f32);
    let y = y.clamp(0.0, (h - 1) as f32);
    // Not negative: truncation is the floor.
    let (x0, y0) = (x as usize, y as usize);
    let (fx, fy) = (x0 as f32, y0 as f32);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (tx, ty) = (x - fx, y - fy);
    let top = lerp(plane[y0 * w + x0], plane[y0 * w + x1], tx);
    let bot = lerp(plane[y1 * w + x0], plane[y1 * w + x1], tx);
    lerp(top, bot, ty)
}

/// B moved onto A's pixel grid with the field from A to B: every plane, bilinear. Each
/// sample is [`sample`] at its pixel moved by [`field_at`], bit for bit (`tests/motion.rs`),
/// computed row by row: the block-grid positions of every column and row found once, the field
/// interpolated along x once per block row, each row's taps and weights once for all planes.
pub fn warp(b: &Frame, field: &Field) -> Frame {
    let (w, h, n) = (b.width, b.height, b.plane_len());
    assert!(
        n <= u32::MAX as usize,
        "warp: a plane of {w}x{h} has 2^32 samples or more"
    );
    // Each block row's vectors interpolated along x to every column: the first of the three
    // interpolations of the block field, the same for every pixel row between two block rows.
    let gx: Vec<(usize, usize, f32)> = (0..w)
        .map(|x| grid_pos(x as f32, field.block, field.cols))
        .collect();
    let across = |v: &[f32]| -> Vec<f32> {
        (0..field.rows)
            .flat_map(|r| {
                let row = &v[r * field.cols..(r + 1) * field.cols];
                gx.iter()
                    .map(move |&(x0, x1, tx)| lerp(row[x0], row[x1], tx))
            })
            .collect()
    };
    let (hx, hy) = (across(&field.vx), across(&field.vy));
    let mut out = Frame::new(w, h, b.planes, b.meta.clone());
    // Row `y` of every plane, written by one task.
    let mut rows: Vec<Vec<&mut [f32]>> = (0..h).map(|_| Vec::new()).collect();
    for plane in out.data.chunks_mut(n) {
        for (r, line) in rows.iter_mut().zip(plane.chunks_mut(w)) {
            r.push(line);
        }
    }
    rows.into_par_iter().enumerate().for_each_init(
        || RowTaps::new(w),
        |taps, (y, mut row)| {
            let (r0, r1, ty) = grid_pos(y as f32, field.block, field.rows);
            let (t, u) = (&hx[r0 * w..(r0 + 1) * w], &hx[r1 * w..(r1 + 1) * w]);
            let (tv, uv) = (&hy[r0 * w..(r0 + 1) * w], &hy[r1 * w..(r1 + 1) * w]);
            find_taps(taps, t, u, tv, uv, ty, y, h);
            for (p, line) in row.iter_mut().enumerate() {
                sample_taps(line, &b.data[p * n..(p + 1) * n], taps);
            }
        },
    );
    out
}

/// Where each sample of one warped row comes from: the top-left tap, the steps to the right
/// and lower taps (0 where the edge clamps them) and the bilinear weights.
/// 32-bit indices: their conversions from `f32` vectorise (a plane holds fewer than 2^32
/// samples, which `warp` checks).
struct RowTaps {
    at: Vec<u32>,
    right: Vec<u32>,
    down: Vec<u32>,
    tx: Vec<f32>,
    ty: Vec<f32>,
}

impl RowTaps {
    fn new(w: usize) -> Self {
        RowTaps {
            at: vec![0; w],
            right: vec![0; w],
            down: vec![0; w],
            tx: vec![0.0; w],
            ty: vec![0.0; w],
        }
    }
}

crate::wide! {
    /// The taps of row `y` (of `h`): the vector interpolated between the block rows above and
    /// below (`top`, `bot` for x, `topv`, `botv` for y, already interpolated along x) at
    /// `wy`, then [`sample`]'s clamped position.
    fn find_taps(
        taps: &mut RowTaps,
        top: &[f32],
        bot: &[f32],
        topv: &[f32],
        botv: &[f32],
        wy: f32,
        y: usize,
        h: usize,
    ) {
        let w = top.len();
        let (xmax, ymax) = ((w - 1) as f32, (h - 1) as f32);
        let vectors = top.iter().zip(bot).zip(topv.iter().zip(botv));
        let outs = taps.at.iter_mut().zip(taps.right.iter_mut()).zip(taps.down.iter_mut());
        let weights = taps.tx.iter_mut().zip(taps.ty.iter_mut());
        let all = vectors.zip(outs).zip(weights).enumerate();
        for (x, ((((&a, &b), (&av, &bv)), ((at, right), down)), (tx, ty))) in all {
            let (vx, vy) = (lerp(a, b, wy), lerp(av, bv, wy));
            // Clamped, so not negative: truncation is the floor.
            let sx = (x as f32 + vx).clamp(0.0, xmax);
            let sy = (y as f32 + vy).clamp(0.0, ymax);
            let (x0, y0) = (sx as u32, sy as u32);
            *at = y0 * w as u32 + x0;
            *right = u32::from(x0 + 1 < w as u32);
            *down = if y0 + 1 < h as u32 { w as u32 } else { 0 };
            *tx = sx - x0 as f32;
            *ty = sy - y0 as f32;
        }
    }
}

crate::wide! {
    /// One plane's row sampled at the taps.
    fn sample_taps(line: &mut [f32], src: &[f32], taps: &RowTaps) {
        let at = taps.at.iter().zip(&taps.right).zip(&taps.down);
        let weights = taps.tx.iter().zip(&taps.ty);
        for (o, (((&i, &r), &d), (&tx, &ty))) in line.iter_mut().zip(at.zip(weights)) {
            let (i, r, d) = (i as usize, r as usize, d as usize);
            let top = lerp(src[i], src[i + r], tx);
            let bot = lerp(src[i + d], src[i + d + r], tx);
            *o = lerp(top, bot, ty);
        }
    }
}

/// The candidate vectors at pixel `(x, y)`, in the order they are tried: the interpolated one,
/// then those of the four nearest block centres.
pub fn candidates(field: &Field, x: f32, y: f32) -> [(f32, f32); 5] {
    candidates_between(
        field,
        grid_pos(x, field.block, field.cols),
        grid_pos(y, field.block, field.rows),
    )
}

/// [`candidates`] from the [`grid_pos`] of the pixel's column and row.
fn candidates_between(
    field: &Field,
    gx: (usize, usize, f32),
    gy: (usize, usize, f32),
) -> [(f32, f32); 5] {
    let ((x0, x1, _), (y0, y1, _)) = (gx, gy);
    [
        field_between(field, gx, gy),
        field.at(x0, y0),
        field.at(x1, y0),
        field.at(x0, y1),
        field.at(x1, y1),
    ]
}

/// Sum of absolute luma differences over the 3x3 patch at `(x, y)` between A and B moved by
/// `v`, B read at the nearest pixel; coordinates clamped.
pub fn patch_cost(a: &Plane, b: &Plane, x: usize, y: usize, v: (f32, f32)) -> f32 {
    // The nearest pixel of B per column and per row, found once for the nine samples.
    let near = |p: i32, c: f32| floor_i32(p as f32 + c + 0.5);
    let (x, y) = (x as i32, y as i32);
    let bxs = [near(x - 1, v.0), near(x, v.0), near(x + 1, v.0)];
    let bys = [near(y - 1, v.1), near(y, v.1), near(y + 1, v.1)];
    let mut s = 0.0f32;
    let inside = |p: &Plane, lo: (i32, i32), hi: (i32, i32)| {
        lo.0 >= 0 && lo.1 >= 0 && hi.0 < p.width as i32 && hi.1 < p.height as i32
    };
    if inside(a, (x - 1, y - 1), (x + 1, y + 1)) && inside(b, (bxs[0], bys[0]), (bxs[2], bys[2])) {
        // Nothing to clamp: the same nine terms in the same order, read straight.
        for (j, &by) in bys.iter().enumerate() {
            let ra = (y + j as i32 - 1) as usize * a.width;
            let rb = by as usize * b.width;
            for (i, &bx) in bxs.iter().enumerate() {
                s += (a.data[ra + (x + i as i32 - 1) as usize] - b.data[rb + bx as usize]).abs();
            }
        }
        return s;
    }
    for (j, &by) in bys.iter().enumerate() {
        for (i, &bx) in bxs.iter().enumerate() {
            let (xx, yy) = (x + i as i32 - 1, y + j as i32 - 1);
            s += (a.clamped(xx, yy) - b.clamped(bx, by)).abs();
        }
    }
    s
}

/// B moved onto A's pixel grid, choosing per pixel among [`candidates`] the vector whose 3x3
/// luma patch matches best (the first of equals), then sampling every plane bilinearly.
/// Sharper than [`warp`] at motion boundaries, where a block's vector belongs to one side
/// only. `a` and `b` are the lumas of A and B (level 0 of their [`Pyramid`]s).
pub fn compensate(bf: &Frame, field: &Field, a: &Plane, b: &Plane) -> Frame {
    let (w, h) = (bf.width, bf.height);
    let n = bf.plane_len();
    let gx: Vec<(usize, usize, f32)> = (0..w)
        .map(|x| grid_pos(x as f32, field.block, field.cols))
        .collect();
    let mut vectors = vec![(0.0f32, 0.0f32); n];
    vectors
        .par_chunks_mut(w.max(1))
        .enumerate()
        .for_each(|(y, row)| {
            let gy = grid_pos(y as f32, field.block, field.rows);
            for (x, out) in row.iter_mut().enumerate() {
                let mut best = (0.0, 0.0);
                let mut best_cost = f32::INFINITY;
                let cands = candidates_between(field, gx[x], gy);
                for (k, &v) in cands.iter().enumerate() {
                    // A vector tried before costs the same and cannot win (first of equals).
                    if cands[..k].contains(&v) {
                        continue;
                    }
                    let c = patch_cost(a, b, x, y, v);
                    if c < best_cost {
                        best_cost = c;
                        best = v;
                    }
                }
                *out = best;
            }
        });
    let mut out = bf.clone();
    out.data
        .par_chunks_mut(w)
        .enumerate()
        .for_each(|(row, line)| {
            let (p, y) = (row / h, row % h);
            let src = &bf.data[p * n..(p + 1) * n];
            for (x, o) in line.iter_mut().enumerate() {
                let (vx, vy) = vectors[y * w + x];
                *o = sample(src, w, h, x as f32 + vx, y as f32 + vy);
            }
        });
    out
}
