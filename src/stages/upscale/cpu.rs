//! CPU reference of `upscale` (see the module documentation of [`super`]). The shaders
//! `shaders/upscale_*.wgsl` do the same arithmetic in the same order, pass by pass:
//! [`tensor`] (`upscale_tensor`), [`single`] (`upscale_single`), [`fuse`] (`upscale_fuse`),
//! [`fuse_end`] (`upscale_fuse_end`), per back-projection iteration [`residual`]
//! (`upscale_resid`) and [`back_project`] (`upscale_ibp`), and [`put`] (`upscale_put`).
//!
//! Coordinates: output pixel `X` sits at source coordinate `(X + 0.5) * w / ow - 0.5`
//! (pixel centres aligned, as an area downscale aligns them); source coordinate `c` sits at
//! output coordinate `(c + 0.5) * ow / w - 0.5`.

use rayon::prelude::*;

use super::{Method, UpscaleParams};
use crate::frame::Frame;
use crate::motion::{self, Field};
use crate::stages::stabilise::cpu::lanczos3;

/// Index `i` reflected into `0..n` about the frame's edges, the edge sample repeated
/// (half-sample symmetry: the frame's edge lies half a pixel beyond the edge sample, so a
/// ramp stays a ramp up to the edge).
pub fn reflect(i: i32, n: i32) -> i32 {
    let period = 2 * n;
    let m = i.rem_euclid(period);
    if m < n {
        m
    } else {
        period - 1 - m
    }
}

/// Most output pixels per axis under one source pixel (factor 8 needs 9).
pub const MAX_AREA_TAPS: usize = 12;
/// Most taps per axis of the area-sampling PSF on the fine grid (factor 8 needs 9).
pub const MAX_PSF_TAPS: usize = 12;

/// Lanczos-3 taps along one axis: per output coordinate, six source indices (reflected into
/// the frame) and their normalised weights.
#[derive(Clone, Debug)]
pub struct Taps {
    pub index: Vec<[u32; 6]>,
    pub weight: Vec<[f32; 6]>,
}

impl Taps {
    pub fn new(n_out: usize, n_src: usize) -> Self {
        let ratio = n_src as f32 / n_out as f32;
        let (mut index, mut weight) = (Vec::with_capacity(n_out), Vec::with_capacity(n_out));
        for x in 0..n_out {
            let u = (x as f32 + 0.5) * ratio - 0.5;
            let f = u.floor();
            weight.push(lanczos3(u - f));
            index.push(std::array::from_fn(|k| {
                reflect(f as i32 - 2 + k as i32, n_src as i32) as u32
            }));
        }
        Taps { index, weight }
    }
}

/// The exact area decimation from the fine grid back to the source grid along one axis:
/// source pixel `q` covers output coordinates `q * s .. (q + 1) * s` (`s` output pixels per
/// source pixel), so its sample is the coverage-weighted mean of the output pixels from
/// `start[q]` on (`count[q]` of them, at most [`MAX_AREA_TAPS`]: `weight[q]`, summing to 1).
#[derive(Clone, Debug)]
pub struct AreaTaps {
    pub start: Vec<u32>,
    pub count: Vec<u32>,
    pub weight: Vec<[f32; MAX_AREA_TAPS]>,
}

impl AreaTaps {
    pub fn new(n_src: usize, n_out: usize) -> Self {
        let s = n_out as f64 / n_src as f64;
        let mut taps = AreaTaps {
            start: Vec::with_capacity(n_src),
            count: Vec::with_capacity(n_src),
            weight: Vec::with_capacity(n_src),
        };
        for q in 0..n_src {
            let (a, b) = (q as f64 * s, ((q + 1) as f64 * s).min(n_out as f64));
            let first = a.floor() as usize;
            let count = ((b.ceil() as usize).min(n_out) - first).min(MAX_AREA_TAPS);
            let mut wts = [0.0f32; MAX_AREA_TAPS];
            for (k, wt) in wts.iter_mut().take(count).enumerate() {
                let x = (first + k) as f64;
                *wt = ((b.min(x + 1.0) - a.max(x)).max(0.0) / (b - a)) as f32;
            }
            taps.start.push(first as u32);
            taps.count.push(count as u32);
            taps.weight.push(wts);
        }
        taps
    }
}

/// The area-sampling PSF along one axis on the fine grid: a box `s` output pixels wide
/// (one source pixel), as weights for the offsets `-r..=r` (at most [`MAX_PSF_TAPS`]).
pub fn psf(s: f32) -> Vec<f32> {
    let r = (s * 0.5 - 0.5).ceil().max(0.0) as i32;
    (-r..=r)
        .map(|t| {
            let lo = (t as f32 - 0.5).max(-s * 0.5);
            let hi = (t as f32 + 0.5).min(s * 0.5);
            (hi - lo).max(0.0) / s
        })
        .collect()
}

/// A rectangle of the output grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x0: usize,
    pub y0: usize,
    pub w: usize,
    pub h: usize,
}

impl Rect {
    /// Grown by `m` on every side, clipped to a `ow` x `oh` frame.
    pub fn expand(&self, m: usize, ow: usize, oh: usize) -> Rect {
        let (x0, y0) = (self.x0.saturating_sub(m), self.y0.saturating_sub(m));
        let (x1, y1) = (
            (self.x0 + self.w + m).min(ow),
            (self.y0 + self.h + m).min(oh),
        );
        Rect {
            x0,
            y0,
            w: x1 - x0,
            h: y1 - y0,
        }
    }

    pub fn len(&self) -> usize {
        self.w * self.h
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Local index of global `(x, y)` after clamping it into the rectangle.
    pub fn clamped(&self, x: i64, y: i64) -> usize {
        let lx = (x - self.x0 as i64).clamp(0, self.w as i64 - 1) as usize;
        let ly = (y - self.y0 as i64).clamp(0, self.h as i64 - 1) as usize;
        ly * self.w + lx
    }
}

/// Output tiles of side `tile` covering a `ow` x `oh` frame (one tile when `tile` is 0).
pub fn tiles(ow: usize, oh: usize, tile: usize) -> Vec<Rect> {
    let t = if tile == 0 { ow.max(oh) } else { tile };
    let mut out = Vec::new();
    for y0 in (0..oh).step_by(t) {
        for x0 in (0..ow).step_by(t) {
            out.push(Rect {
                x0,
                y0,
                w: t.min(ow - x0),
                h: t.min(oh - y0),
            });
        }
    }
    out
}

/// Everything a frame's passes share: sizes, tap tables, resolved knobs.
pub struct Plan {
    pub method: Method,
    pub w: usize,
    pub h: usize,
    pub planes: usize,
    pub ow: usize,
    pub oh: usize,
    /// Source pixels per output pixel, and output pixels per source pixel.
    pub rx: f32,
    pub ry: f32,
    pub sx: f32,
    pub sy: f32,
    pub tx: Taps,
    pub ty: Taps,
    pub ax: AreaTaps,
    pub ay: AreaTaps,
    pub psf_x: Vec<f32>,
    pub psf_y: Vec<f32>,
    pub edge: f32,
    /// `1 / (2 spread^2)` in output pixels, `1 / tolerance^2`.
    pub inv_spread2: f32,
    pub inv_tol2: f32,
    pub prior: f32,
    pub beta: f32,
    pub iterations: usize,
    /// Output-pixel margin: per iteration the back-projection's reach, and for `multi` the
    /// fusion's look-ups plus the PSF's reach.
    pub m_dec: usize,
}

/// Steering kernel: `1 / sigma^2` across and along the edge, in source pixels.
pub const INV_SA2: f32 = 1.0 / (0.5 * 0.5);
pub const INV_SL2: f32 = 1.0 / (1.5 * 1.5);
/// Structure-tensor energy below which coherence fades (flat picture, grain).
pub const TENSOR_EPS: f32 = 1e-4;

impl Plan {
    pub fn new(p: &UpscaleParams, w: usize, h: usize, planes: usize, ow: usize, oh: usize) -> Plan {
        let (sx, sy) = (ow as f32 / w as f32, oh as f32 / h as f32);
        // One back-projection step reads the residual 3 source pixels away (Lanczos-3), and
        // each residual the output pixels under its source pixel.
        let reach = (4.0 * sx.max(sy)).ceil() as usize + 1;
        let (psf_x, psf_y) = (psf(sx), psf(sy));
        let r = psf_x.len().max(psf_y.len()) / 2;
        let single = p.method == Method::Lanczos;
        let iterations = if single || p.sharpen == 0.0 {
            0
        } else {
            p.iterations
        };
        Plan {
            method: p.method,
            w,
            h,
            planes,
            ow,
            oh,
            rx: w as f32 / ow as f32,
            ry: h as f32 / oh as f32,
            sx,
            sy,
            tx: Taps::new(ow, w),
            ty: Taps::new(oh, h),
            ax: AreaTaps::new(w, ow),
            ay: AreaTaps::new(h, oh),
            psf_x,
            psf_y,
            edge: if single { 0.0 } else { p.edge },
            inv_spread2: 1.0 / (2.0 * p.spread * p.spread),
            inv_tol2: 1.0 / (p.tolerance * p.tolerance),
            prior: p.prior,
            beta: p.sharpen,
            iterations,
            m_dec: iterations
                * (reach
                    + if p.method == Method::Multi {
                        sx.max(sy).ceil() as usize + 2 + r
                    } else {
                        0
                    }),
        }
    }

    /// Source coordinates of output pixel `(x, y)`.
    pub fn src_pos(&self, x: usize, y: usize) -> (f32, f32) {
        (
            (x as f32 + 0.5) * self.rx - 0.5,
            (y as f32 + 0.5) * self.ry - 0.5,
        )
    }
}

/// Structure tensor of the source luma (mean of the planes), three planes `Jxx, Jxy, Jyy`:
/// central differences (clamped at the edges), products summed over the 3x3 around.
pub fn tensor(frame: &Frame) -> Vec<f32> {
    let (w, h) = (frame.width, frame.height);
    let luma = motion::cpu::luma(frame).data;
    let at = |x: i64, y: i64| {
        luma[(y.clamp(0, h as i64 - 1) as usize) * w + x.clamp(0, w as i64 - 1) as usize]
    };
    let grad = |x: i64, y: i64| {
        (
            (at(x + 1, y) - at(x - 1, y)) * 0.5,
            (at(x, y + 1) - at(x, y - 1)) * 0.5,
        )
    };
    let n = w * h;
    let mut out = vec![0.0f32; 3 * n];
    let sums: Vec<[f32; 3]> = (0..n)
        .into_par_iter()
        .map(|i| {
            let (x, y) = ((i % w) as i64, (i / w) as i64);
            let mut s = [0.0f32; 3];
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let (gx, gy) = grad(
                        (x + dx).clamp(0, w as i64 - 1),
                        (y + dy).clamp(0, h as i64 - 1),
                    );
                    s[0] += gx * gx;
                    s[1] += gx * gy;
                    s[2] += gy * gy;
                }
            }
            s
        })
        .collect();
    for (i, s) in sums.iter().enumerate() {
        for k in 0..3 {
            out[k * n + i] = s[k];
        }
    }
    out
}

fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}

/// Where a bilinear sample of a `w` x `h` plane at `(x, y)` clamped into it reads: the four
/// indices (top left, top right, bottom left, bottom right) and the weights along x and y.
fn bilinear_at(w: usize, h: usize, x: f32, y: f32) -> ([usize; 4], f32, f32) {
    let x = x.clamp(0.0, (w - 1) as f32);
    let y = y.clamp(0.0, (h - 1) as f32);
    let (fx, fy) = (x.floor(), y.floor());
    let (x0, y0) = (fx as usize, fy as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    (
        [y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1],
        x - fx,
        y - fy,
    )
}

fn bilinear_from(plane: &[f32], (i, tx, ty): ([usize; 4], f32, f32)) -> f32 {
    let top = lerp(plane[i[0]], plane[i[1]], tx);
    let bot = lerp(plane[i[2]], plane[i[3]], tx);
    lerp(top, bot, ty)
}

/// Bilinear sample of a `w` x `h` plane at `(x, y)` clamped into it.
fn bilinear(plane: &[f32], w: usize, h: usize, x: f32, y: f32) -> f32 {
    bilinear_from(plane, bilinear_at(w, h, x, y))
}

/// `exp(-e)` is 0 in `f32` from here on: the robust weight of a sample that far off is skipped.
pub const EXP_ZERO: f32 = 104.0;

/// Steering weights over the 4x4 source samples around source position `(ux, uy)` (rows
/// first), normalised, and the coherence in 0..1 at which they are blended in.
pub fn steering(plan: &Plan, tensor: &[f32], ux: f32, uy: f32) -> ([f32; 16], f32) {
    let n = plan.w * plan.h;
    let a = bilinear(&tensor[..n], plan.w, plan.h, ux, uy);
    let b = bilinear(&tensor[n..2 * n], plan.w, plan.h, ux, uy);
    let c = bilinear(&tensor[2 * n..], plan.w, plan.h, ux, uy);
    let half = (a - c) * 0.5;
    let disc = (half * half + b * b).sqrt();
    let tr = a + c;
    let coherence = 2.0 * disc / (tr + TENSOR_EPS);
    let l1 = tr * 0.5 + disc;
    // Across the edge: the eigenvector of the larger eigenvalue.
    let (mut nx, mut ny) = (b, l1 - a);
    let len2 = nx * nx + ny * ny;
    if len2 < 1e-20 {
        (nx, ny) = if a >= c { (1.0, 0.0) } else { (0.0, 1.0) };
    } else {
        let inv = 1.0 / len2.sqrt();
        nx *= inv;
        ny *= inv;
    }
    let (fx, fy) = (ux.floor(), uy.floor());
    let mut wts = [0.0f32; 16];
    let mut sum = 0.0f32;
    for j in 0..4 {
        for i in 0..4 {
            let dx = fx - 1.0 + i as f32 - ux;
            let dy = fy - 1.0 + j as f32 - uy;
            let da = dx * nx + dy * ny;
            let dl = dy * nx - dx * ny;
            let wt = (-(da * da * INV_SA2 + dl * dl * INV_SL2)).exp();
            wts[j * 4 + i] = wt;
            sum += wt;
        }
    }
    let inv = 1.0 / sum;
    for v in &mut wts {
        *v *= inv;
    }
    (wts, coherence.min(1.0))
}

/// The single-frame estimate (of the area-blurred picture) over `region`: Lanczos-3, blended
/// toward the steering kernel by `edge * coherence` unless the method is `lanczos`.
pub fn single(plan: &Plan, src: &Frame, tensor: &[f32], region: Rect) -> Vec<f32> {
    let (w, h) = (plan.w, plan.h);
    let n = w * h;
    let planes = plan.planes;
    // One row of the region for every plane at once, so the steering weights are found once
    // per pixel; the samples are computed exactly as per plane.
    let rows: Vec<Vec<f32>> = (0..region.h)
        .into_par_iter()
        .map(|ly| {
            let y = region.y0 + ly;
            let mut line = vec![0.0f32; planes * region.w];
            for lx in 0..region.w {
                let x = region.x0 + lx;
                let (ix, wx) = (&plan.tx.index[x], &plan.tx.weight[x]);
                let (iy, wy) = (&plan.ty.index[y], &plan.ty.weight[y]);
                let steer = (plan.edge > 0.0).then(|| {
                    let (ux, uy) = plan.src_pos(x, y);
                    let (wts, k) = steering(plan, tensor, ux, uy);
                    (wts, k, ux.floor() as i32, uy.floor() as i32)
                });
                for p in 0..planes {
                    let plane = &src.data[p * n..(p + 1) * n];
                    let mut acc = 0.0f32;
                    for j in 0..6 {
                        let r = &plane[iy[j] as usize * w..];
                        let mut l = 0.0f32;
                        for i in 0..6 {
                            l += wx[i] * r[ix[i] as usize];
                        }
                        acc += wy[j] * l;
                    }
                    if let Some((wts, k, fx, fy)) = &steer {
                        let mut s = 0.0f32;
                        for j in 0..4 {
                            let sy = reflect(fy - 1 + j as i32, h as i32) as usize;
                            for i in 0..4 {
                                let sx = reflect(fx - 1 + i as i32, w as i32) as usize;
                                s += wts[j * 4 + i] * plane[sy * w + sx];
                            }
                        }
                        acc += plan.edge * k * (s - acc);
                    }
                    line[p * region.w + lx] = acc;
                }
            }
            line
        })
        .collect();
    let mut out = vec![0.0f32; planes * region.len()];
    for (ly, line) in rows.iter().enumerate() {
        for p in 0..planes {
            let at = p * region.len() + ly * region.w;
            out[at..at + region.w].copy_from_slice(&line[p * region.w..(p + 1) * region.w]);
        }
    }
    out
}

/// One neighbour's samples, registered by `field` (centre to neighbour), as residuals against
/// the blurred estimate `bs` (over `r0`, from [`blur`]) at their positions, accumulated into
/// `acc` (over `r1`: per plane the weighted residual sum, then the weight sum).
pub fn fuse(
    plan: &Plan,
    nb: &Frame,
    field: &Field,
    bs: &[f32],
    r0: Rect,
    acc: &mut [f32],
    r1: Rect,
) {
    let (w, h) = (plan.w as i32, plan.h as i32);
    let n = plan.w * plan.h;
    let planes = plan.planes;
    let (num, den) = acc.split_at_mut(planes * r1.len());
    // One row for every plane at once: the vector, sample positions and distance weights are
    // found once per pixel; each plane's residuals are computed exactly as per plane.
    let rows: Vec<(Vec<f32>, Vec<f32>)> = (0..r1.h)
        .into_par_iter()
        .map(|ly| {
            let y = r1.y0 + ly;
            let (mut nums, mut dens) = (vec![0.0f32; planes * r1.w], vec![0.0f32; planes * r1.w]);
            for lx in 0..r1.w {
                let x = r1.x0 + lx;
                let (ux, uy) = plan.src_pos(x, y);
                let (vx, vy) = motion::cpu::field_at(field, ux, uy);
                let (qx0, qy0) = ((ux + vx).floor() as i32, (uy + vy).floor() as i32);
                // (sample index, where the estimate is read at its position, distance weight) of
                // the samples in the frame.
                let mut taps = [(0usize, ([0usize; 4], 0.0f32, 0.0f32), 0.0f32); 4];
                let mut count = 0;
                for j in 0..2 {
                    for i in 0..2 {
                        let (qx, qy) = (qx0 + i, qy0 + j);
                        if qx < 0 || qy < 0 || qx >= w || qy >= h {
                            continue;
                        }
                        let fx = (qx as f32 - vx + 0.5) * plan.sx - 0.5;
                        let fy = (qy as f32 - vy + 0.5) * plan.sy - 0.5;
                        let (dx, dy) = (fx - x as f32, fy - y as f32);
                        let ws = (-(dx * dx + dy * dy) * plan.inv_spread2).exp();
                        let at = bilinear_at(r0.w, r0.h, fx - r0.x0 as f32, fy - r0.y0 as f32);
                        taps[count] = (qy as usize * plan.w + qx as usize, at, ws);
                        count += 1;
                    }
                }
                for p in 0..planes {
                    let plane = &nb.data[p * n..(p + 1) * n];
                    let est = &bs[p * r0.len()..(p + 1) * r0.len()];
                    let (mut s_num, mut s_den) = (0.0f32, 0.0f32);
                    for &(q, at, ws) in &taps[..count] {
                        let r = plane[q] - bilinear_from(est, at);
                        let e = r * r * plan.inv_tol2;
                        if e < EXP_ZERO {
                            let wt = ws * (-e).exp();
                            s_num += wt * r;
                            s_den += wt;
                        }
                    }
                    nums[p * r1.w + lx] = s_num;
                    dens[p * r1.w + lx] = s_den;
                }
            }
            (nums, dens)
        })
        .collect();
    for (ly, (nums, dens)) in rows.into_iter().enumerate() {
        for p in 0..planes {
            let at = p * r1.len() + ly * r1.w;
            for lx in 0..r1.w {
                num[at + lx] += nums[p * r1.w + lx];
                den[at + lx] += dens[p * r1.w + lx];
            }
        }
    }
}

/// The estimate `x` (over `r`) blurred by the area-sampling PSF, over `r`: what a source
/// sample anywhere on the fine grid would record. Reflected frame borders, read clamped into
/// the region.
pub fn blur(plan: &Plan, x: &[f32], r: Rect) -> Vec<f32> {
    let (rxp, ryp) = (plan.psf_x.len() / 2, plan.psf_y.len() / 2);
    let n = r.len();
    let mut out = vec![0.0f32; plan.planes * n];
    out.par_chunks_mut(r.w.max(1))
        .enumerate()
        .for_each(|(row, line)| {
            let (p, ly) = (row / r.h, row % r.h);
            let xs = &x[p * n..(p + 1) * n];
            let gy = (r.y0 + ly) as i32;
            for (lx, o) in line.iter_mut().enumerate() {
                let gx = (r.x0 + lx) as i32;
                let mut acc = 0.0f32;
                for (j, wy) in plan.psf_y.iter().enumerate() {
                    let yy = reflect(gy + j as i32 - ryp as i32, plan.oh as i32) as i64;
                    let mut l = 0.0f32;
                    for (i, wx) in plan.psf_x.iter().enumerate() {
                        let xx = reflect(gx + i as i32 - rxp as i32, plan.ow as i32) as i64;
                        l += wx * xs[r.clamped(xx, yy)];
                    }
                    acc += wy * l;
                }
                *o = acc;
            }
        });
    out
}

/// The source rectangle whose residuals a back-projection over `r1` reads: every source
/// index of the Lanczos taps of its columns and rows.
pub fn source_rect(plan: &Plan, r1: Rect) -> Rect {
    let span = |index: &[[u32; 6]], from: usize, n: usize| {
        let it = index[from..from + n].iter().flatten();
        let lo = *it.clone().min().expect("a tap") as usize;
        (lo, *it.max().expect("a tap") as usize + 1 - lo)
    };
    let (x0, w) = span(&plan.tx.index, r1.x0, r1.w);
    let (y0, h) = span(&plan.ty.index, r1.y0, r1.h);
    Rect { x0, y0, w, h }
}

/// The residual of the estimate `x` (over `r1`) against the recorded samples, over source
/// rectangle `sr`: `src - D(x)`, `D` the exact area decimation ([`AreaTaps`]), `x` read
/// clamped into the region.
pub fn residual(plan: &Plan, src: &Frame, x: &[f32], r1: Rect, sr: Rect) -> Vec<f32> {
    let n = plan.w * plan.h;
    let n1 = r1.len();
    let mut out = vec![0.0f32; plan.planes * sr.len()];
    out.par_chunks_mut(sr.w.max(1))
        .enumerate()
        .for_each(|(row, line)| {
            let (p, ly) = (row / sr.h, row % sr.h);
            let xs = &x[p * n1..(p + 1) * n1];
            let qy = sr.y0 + ly;
            let y0 = plan.ay.start[qy] as i64;
            let wy = &plan.ay.weight[qy][..plan.ay.count[qy] as usize];
            for (lx, o) in line.iter_mut().enumerate() {
                let qx = sr.x0 + lx;
                let x0 = plan.ax.start[qx] as i64;
                let wx = &plan.ax.weight[qx][..plan.ax.count[qx] as usize];
                let mut d = 0.0f32;
                for (j, &wj) in wy.iter().enumerate() {
                    let mut l = 0.0f32;
                    for (i, &wi) in wx.iter().enumerate() {
                        l += wi * xs[r1.clamped(x0 + i as i64, y0 + j as i64)];
                    }
                    d += wj * l;
                }
                *o = src.data[p * n + qy * plan.w + qx] - d;
            }
        });
    out
}

/// Range of the 4x4 source samples of `plane` around source position `(ux, uy)`.
pub fn local_range(plan: &Plan, plane: &[f32], ux: f32, uy: f32) -> (f32, f32) {
    let (w, h) = (plan.w, plan.h);
    let (fx, fy) = (ux.floor() as i32, uy.floor() as i32);
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for j in 0..4 {
        let sy = reflect(fy - 1 + j, h as i32) as usize;
        for i in 0..4 {
            let sx = reflect(fx - 1 + i, w as i32) as usize;
            let s = plane[sy * w + sx];
            lo = lo.min(s);
            hi = hi.max(s);
        }
    }
    (lo, hi)
}

/// [`local_range`] for every output pixel's 4x4 neighbourhood, found once per frame: per plane
/// the lows then the highs, indexed by [`Ranges::at`].
pub struct Ranges {
    pub w: usize,
    pub h: usize,
    pub data: Vec<f32>,
    /// Per output column and row, the neighbourhood's column and row in the table.
    pub col: Vec<usize>,
    pub row: Vec<usize>,
}

impl Ranges {
    /// Source neighbourhoods start at `floor(u) - 1` with `floor(u)` in `-1..w` (output pixel
    /// centres lie within the source frame's extent).
    pub fn new(plan: &Plan, src: &Frame) -> Ranges {
        let (w, h) = (plan.w + 1, plan.h + 1);
        let n = plan.w * plan.h;
        let mut data = vec![0.0f32; 2 * plan.planes * w * h];
        data.par_chunks_mut(w).enumerate().for_each(|(row, line)| {
            let (k, fy) = (row / h, row % h);
            let p = k % plan.planes;
            let plane = &src.data[p * n..(p + 1) * n];
            for (fx, o) in line.iter_mut().enumerate() {
                let (lo, hi) = local_range(plan, plane, fx as f32 - 0.5, fy as f32 - 0.5);
                *o = if k < plan.planes { lo } else { hi };
            }
        });
        let col = (0..plan.ow)
            .map(|x| (plan.src_pos(x, 0).0.floor() + 1.0) as usize)
            .collect();
        let row = (0..plan.oh)
            .map(|y| (plan.src_pos(0, y).1.floor() + 1.0) as usize)
            .collect();
        Ranges {
            w,
            h,
            data,
            col,
            row,
        }
    }

    /// The range around output pixel `(x, y)` of plane `p`.
    pub fn at(&self, plan: &Plan, p: usize, x: usize, y: usize) -> (f32, f32) {
        let i = self.row[y] * self.w + self.col[x];
        let n = self.w * self.h;
        (self.data[p * n + i], self.data[(plan.planes + p) * n + i])
    }
}

/// One back-projection step over `r1`: `x + beta * U(residual)`, `U` the Lanczos-3
/// interpolation of the residual (over `sr`, read clamped into it), then clamped to the local
/// range of the source samples, so the estimate moves toward agreeing with what was recorded
/// without ever overshooting it. With the neighbours' accumulated residuals `acc` (over `r1`,
/// from [`fuse`]) the step is their weighted mean with the centre's, which weighs `prior`.
pub fn back_project(
    plan: &Plan,
    ranges: &Ranges,
    x: &[f32],
    resid: &[f32],
    sr: Rect,
    acc: Option<&[f32]>,
    r1: Rect,
) -> Vec<f32> {
    let n1 = r1.len();
    let mut out = vec![0.0f32; plan.planes * n1];
    out.par_chunks_mut(r1.w.max(1))
        .enumerate()
        .for_each(|(row, line)| {
            let (p, ly) = (row / r1.h, row % r1.h);
            let rs = &resid[p * sr.len()..(p + 1) * sr.len()];
            let gy = r1.y0 + ly;
            let (iy, wy) = (&plan.ty.index[gy], &plan.ty.weight[gy]);
            // The taps of `r1` lie inside `sr` by construction ([`source_rect`]).
            let rows: [&[f32]; 6] = std::array::from_fn(|j| {
                let at = (iy[j] as usize - sr.y0) * sr.w;
                &rs[at..at + sr.w]
            });
            for (lx, o) in line.iter_mut().enumerate() {
                let gx = r1.x0 + lx;
                let (ix, wx) = (&plan.tx.index[gx], &plan.tx.weight[gx]);
                let mut u = 0.0f32;
                for j in 0..6 {
                    let mut l = 0.0f32;
                    for i in 0..6 {
                        l += wx[i] * rows[j][ix[i] as usize - sr.x0];
                    }
                    u += wy[j] * l;
                }
                let i = p * n1 + ly * r1.w + lx;
                if let Some(acc) = acc {
                    let (num, den) = (acc[i], acc[plan.planes * n1 + i]);
                    u = (plan.prior * u + num) / (plan.prior + den);
                }
                let (lo, hi) = ranges.at(plan, p, gx, gy);
                *o = (x[i] + plan.beta * u).max(lo).min(hi);
            }
        });
    out
}

/// The result over tile `t` from the estimate `x` (over `r1`), clamped to `ranges` (the 4x4
/// source samples around each pixel) when given: every method but `lanczos`.
pub fn put(plan: &Plan, ranges: Option<&Ranges>, x: &[f32], r1: Rect, t: Rect) -> Vec<f32> {
    let mut out = vec![0.0f32; plan.planes * t.len()];
    out.par_chunks_mut(t.w).enumerate().for_each(|(row, line)| {
        let (p, ly) = (row / t.h, row % t.h);
        let y = t.y0 + ly;
        for (lx, o) in line.iter_mut().enumerate() {
            let gx = t.x0 + lx;
            let mut v = x[p * r1.len() + r1.clamped(gx as i64, y as i64)];
            if let Some(ranges) = ranges {
                let (lo, hi) = ranges.at(plan, p, gx, y);
                v = v.max(lo).min(hi);
            }
            *o = v;
        }
    });
    out
}

/// The region one output tile needs: where the single-frame estimate is computed and
/// back-projected, the tile grown by the reach of all iterations.
pub fn region(plan: &Plan, t: Rect) -> Rect {
    t.expand(plan.m_dec, plan.ow, plan.oh)
}

/// Upscale `src` with its registered neighbours (frame and field from the centre to it), tile
/// by tile (`tile` 0: whole frame).
pub fn upscale(plan: &Plan, src: &Frame, registered: &[(&Frame, Field)], tile: usize) -> Frame {
    let tensor = if plan.edge > 0.0 {
        tensor(src)
    } else {
        Vec::new()
    };
    let ranges = (plan.method != Method::Lanczos).then(|| Ranges::new(plan, src));
    let mut out = Frame::new(plan.ow, plan.oh, plan.planes, src.meta.clone());
    let on = plan.ow * plan.oh;
    for t in tiles(plan.ow, plan.oh, tile) {
        let r = region(plan, t);
        let mut x = single(plan, src, &tensor, r);
        let sr = source_rect(plan, r);
        for _ in 0..plan.iterations {
            let resid = residual(plan, src, &x, r, sr);
            let acc = (!registered.is_empty()).then(|| {
                let b = blur(plan, &x, r);
                let mut acc = vec![0.0f32; 2 * plan.planes * r.len()];
                for (nb, field) in registered {
                    fuse(plan, nb, field, &b, r, &mut acc, r);
                }
                acc
            });
            x = back_project(
                plan,
                ranges.as_ref().expect("ranges"),
                &x,
                &resid,
                sr,
                acc.as_deref(),
                r,
            );
        }
        let result = put(plan, ranges.as_ref(), &x, r, t);
        for p in 0..plan.planes {
            for ly in 0..t.h {
                let at = p * on + (t.y0 + ly) * plan.ow + t.x0;
                let from = p * t.len() + ly * t.w;
                out.data[at..at + t.w].copy_from_slice(&result[from..from + t.w]);
            }
        }
    }
    out
}

/// Area (box) resize to `ow` x `oh`: each output pixel the mean of the source over its
/// footprint, fractional pixels weighted by coverage. Used to show an upscaled frame next to
/// its source at one size (preview), and by tests to make low-resolution frames.
pub fn area_resize(src: &Frame, ow: usize, oh: usize) -> Frame {
    let axis = |n_src: usize, n_out: usize| -> Vec<Vec<(usize, f32)>> {
        let scale = n_src as f64 / n_out as f64;
        (0..n_out)
            .map(|o| {
                let (a, b) = (o as f64 * scale, (o + 1) as f64 * scale);
                let mut taps = Vec::new();
                let mut i = a.floor() as usize;
                while (i as f64) < b && i < n_src {
                    let cover = (b.min(i as f64 + 1.0) - a.max(i as f64)) / scale;
                    if cover > 0.0 {
                        taps.push((i, cover as f32));
                    }
                    i += 1;
                }
                taps
            })
            .collect()
    };
    let (ax, ay) = (axis(src.width, ow), axis(src.height, oh));
    let mut out = Frame::new(ow, oh, src.planes, src.meta.clone());
    let n = src.plane_len();
    out.data
        .par_chunks_mut(ow.max(1))
        .enumerate()
        .for_each(|(row, line)| {
            let (p, y) = (row / oh, row % oh);
            let plane = &src.data[p * n..(p + 1) * n];
            for (x, o) in line.iter_mut().enumerate() {
                let mut acc = 0.0f32;
                for &(sy, wy) in &ay[y] {
                    let mut l = 0.0f32;
                    for &(sx, wx) in &ax[x] {
                        l += wx * plane[sy * src.width + sx];
                    }
                    acc += wy * l;
                }
                *o = acc;
            }
        });
    out
}
