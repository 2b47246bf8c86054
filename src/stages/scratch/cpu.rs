//! CPU reference for `scratch`: the profiles and the per-pixel repair. The GPU twins are
//! `shaders/scratch_columns.wgsl`, `scratch_rows.wgsl` and `scratch_repair.wgsl`; keep the
//! arithmetic in the same order.

use rayon::prelude::*;

use super::{half_band_height, Plan, Profiles, ScratchParams, GATE_HI, GATE_LO, MAX_SOURCES};
use crate::frame::Frame;

/// Slopes tried across a line, in rows per column; the first of equal costs wins.
pub const SLOPES: [f32; 7] = [0.0, -0.5, 0.5, -1.0, 1.0, -2.0, 2.0];

/// Column sums per half band and row sums, over all planes, in a fixed order (rows outer, planes
/// inner), as the shaders add them.
pub fn profiles(frame: &Frame) -> Profiles {
    let (w, h, np) = (frame.width, frame.height, frame.planes);
    let band = half_band_height(h);
    let bands = h.div_ceil(band);
    let n = frame.plane_len();
    let d = &frame.data;
    // Per band, every column at once (x innermost for the cache); each column still adds its
    // samples in the shaders' order: rows outer, planes inner.
    let columns: Vec<f32> = (0..bands)
        .into_par_iter()
        .flat_map_iter(|b| {
            let mut acc = vec![0.0f32; w];
            for y in b * band..((b + 1) * band).min(h) {
                for p in 0..np {
                    let row = &d[p * n + y * w..p * n + (y + 1) * w];
                    for (a, v) in acc.iter_mut().zip(row) {
                        *a += v;
                    }
                }
            }
            acc
        })
        .collect();
    let rows: Vec<f32> = (0..h)
        .into_par_iter()
        .map(|y| {
            let mut s = 0.0f32;
            for x in 0..w {
                for p in 0..np {
                    s += d[p * n + y * w + x];
                }
            }
            s
        })
        .collect();
    Profiles {
        width: w,
        height: h,
        planes: np,
        half: band,
        columns,
        rows,
        film_move: frame.meta.film_move,
    }
}

/// Sample `(x, y)` of plane `p`, coordinates clamped into the frame.
fn at(f: &Frame, p: usize, x: i64, y: i64) -> f32 {
    let x = x.clamp(0, f.width as i64 - 1) as usize;
    let y = y.clamp(0, f.height as i64 - 1) as usize;
    f.data[(p * f.height + y) * f.width + x]
}

/// Column `x` of plane `p` at a fractional row, linear between rows.
fn column(f: &Frame, p: usize, x: i64, y: f32) -> f32 {
    let y = y.clamp(0.0, (f.height - 1) as f32);
    let y0 = y.floor();
    let t = y - y0;
    let a = at(f, p, x, y0 as i64);
    let b = at(f, p, x, y0 as i64 + 1);
    a + (b - a) * t
}

/// Bilinear sample at a fractional position, clamped into the frame.
fn bilinear(f: &Frame, p: usize, x: f32, y: f32) -> f32 {
    let x = x.clamp(0.0, (f.width - 1) as f32);
    let x0 = x.floor();
    let t = x - x0;
    let a = column(f, p, x0 as i64, y);
    let b = column(f, p, x0 as i64 + 1, y);
    a + (b - a) * t
}

/// Whether position `(x, y)` (clamped into the frame) of a neighbour is on or beside one of
/// its own line candidates.
fn avoided(plan: &Plan, avoid: &[u32], x: f32, y: f32) -> bool {
    let x = x.clamp(0.0, (plan.width - 1) as f32);
    let y = y.clamp(0.0, (plan.height - 1) as f32);
    let band = (y.round() as usize / plan.band).min(plan.bands - 1);
    let xa = x.floor() as usize;
    let xb = (xa + 1).min(plan.width - 1);
    avoid[band * plan.width + xa] != 0 || avoid[band * plan.width + xb] != 0
}

/// The repair of pixel `(x, y)`, which lies in line `line` spanning columns `x0..=x1`: the
/// reconstructed value per plane (`out[..planes]`). A spatial repair widens the harm guard's
/// `range` by the two flank samples it interpolates between: untouched picture along the
/// direction the line is crossed.
#[allow(clippy::too_many_arguments)]
fn reconstruct(
    c: &Frame,
    neighbours: &[&Frame],
    plan: &Plan,
    consistency: f32,
    x: usize,
    y: usize,
    (x0, x1): (usize, usize),
    out: &mut [f32; 4],
    range: &mut ([f32; 4], [f32; 4]),
) {
    let (w, h, np) = (c.width as i64, c.height as i64, c.planes);
    let (x, y) = (x as i64, y as i64);
    let xl = x0 as i64 - 1;
    let xr = x1 as i64 + 1;
    // Temporal: the nearest consistent neighbours off their own scratches.
    let mut used = 0;
    let mut acc = [0.0f32; 4];
    for (k, f) in neighbours.iter().enumerate() {
        if used == MAX_SOURCES {
            break;
        }
        let ((dx, dy), avoid) = (&plan.neighbours[k].0, &plan.neighbours[k].1);
        let (xs, ys) = (x as f32 + dx, y as f32 + dy);
        if xs < 0.0 || xs > (w - 1) as f32 || ys < 0.0 || ys > (h - 1) as f32 {
            continue;
        }
        if avoided(plan, avoid, xs, ys) {
            continue;
        }
        // Flank samples off the neighbour's own scratches: at least half of them.
        let mut count = 0usize;
        let mut err = 0.0f32;
        let mut offs = [0.0f32; 4];
        for (p, off) in offs.iter_mut().enumerate().take(np) {
            let mut s = 0.0f32;
            count = 0;
            for fx in [xl - 1, xl, xr, xr + 1] {
                for j in -2..=2i64 {
                    let (nx, ny) = (fx as f32 + dx, (y + j) as f32 + dy);
                    if avoided(plan, avoid, nx, ny) {
                        continue;
                    }
                    s += at(c, p, fx, y + j) - bilinear(f, p, nx, ny);
                    count += 1;
                }
            }
            if count < 10 {
                break;
            }
            *off = s / count as f32;
            for fx in [xl - 1, xl, xr, xr + 1] {
                for j in -2..=2i64 {
                    let (nx, ny) = (fx as f32 + dx, (y + j) as f32 + dy);
                    if avoided(plan, avoid, nx, ny) {
                        continue;
                    }
                    err += (at(c, p, fx, y + j) - bilinear(f, p, nx, ny) - *off).abs();
                }
            }
        }
        if count < 10 {
            continue;
        }
        if err / (count * np) as f32 > consistency {
            continue;
        }
        for p in 0..np {
            acc[p] += bilinear(f, p, xs, ys) + offs[p];
        }
        used += 1;
    }
    if used > 0 {
        for p in 0..np {
            out[p] = acc[p] / used as f32;
        }
        return;
    }
    // Spatial: across the line along the slope on which its flanks agree best.
    let xl = xl.max(0);
    let xr = xr.min(w - 1);
    let g = (xr - xl).max(1) as f32;
    let (dl, dr) = ((x - xl) as f32, (xr - x) as f32);
    let yf = y as f32;
    let mut best = f32::INFINITY;
    let mut slope = 0.0f32;
    for s in SLOPES {
        let mut cost = 0.0f32;
        for p in 0..np {
            for j in -2..=2i64 {
                let l = column(c, p, xl, yf - s * dl + j as f32);
                let r = column(c, p, xr, yf + s * dr + j as f32);
                cost += (l - r).abs();
            }
        }
        cost *= 1.0 + 0.25 * s.abs();
        if cost < best {
            best = cost;
            slope = s;
        }
    }
    let t = dl / g;
    for (p, o) in out.iter_mut().enumerate().take(np) {
        let l = column(c, p, xl, yf - slope * dl);
        let r = column(c, p, xr, yf + slope * dr);
        *o = l + (r - l) * t;
        range.0[p] = range.0[p].min(l.min(r));
        range.1[p] = range.1[p].max(l.max(r));
    }
}

/// The range per plane that the picture around pixel `(x, y)` of a line spanning `x0..=x1`
/// shows, for the harm guard: the line's untouched flanks (two columns each side, five rows)
/// and the motion-compensated neighbours at the pixel. Twin: `guard_range` in
/// `shaders/scratch_repair.wgsl`.
pub fn guard_range(
    c: &Frame,
    neighbours: &[&Frame],
    plan: &Plan,
    (x, y): (usize, usize),
    (x0, x1): (usize, usize),
) -> ([f32; 4], [f32; 4]) {
    let (w, h, np) = (c.width as i64, c.height as i64, c.planes);
    let (xl, xr) = (x0 as i64 - 1, x1 as i64 + 1);
    let mut lo = [f32::INFINITY; 4];
    let mut hi = [f32::NEG_INFINITY; 4];
    for p in 0..np {
        for fx in [xl - 1, xl, xr, xr + 1] {
            for j in -2..=2i64 {
                let v = at(c, p, fx, y as i64 + j);
                lo[p] = lo[p].min(v);
                hi[p] = hi[p].max(v);
            }
        }
        for (k, f) in neighbours.iter().enumerate() {
            let (dx, dy) = plan.neighbours[k].0;
            let (xs, ys) = (x as f32 + dx, y as f32 + dy);
            if xs < 0.0 || xs > (w - 1) as f32 || ys < 0.0 || ys > (h - 1) as f32 {
                continue;
            }
            let v = bilinear(f, p, xs, ys);
            lo[p] = lo[p].min(v);
            hi[p] = hi[p].max(v);
        }
    }
    (lo, hi)
}

/// Repair the lines of `plan` in `center`; `neighbours` in the plan's order. Also gives the
/// number of pixels whose repair the harm guard refused ([`crate::stages::pushed_beyond`]
/// against [`guard_range`]): they keep their values.
pub fn repair(
    center: &Frame,
    neighbours: &[&Frame],
    plan: &Plan,
    params: &ScratchParams,
) -> (Frame, u64) {
    let mut out = center.clone();
    if plan.lines.is_empty() {
        return (out, 0);
    }
    let (w, h, np) = (center.width, center.height, center.planes);
    let n = center.plane_len();
    let consistency = params.consistency as f32;
    // One row of every plane per task: (y, values for each plane).
    let rows: Vec<(usize, Vec<f32>, u64)> = (0..h)
        .into_par_iter()
        .filter_map(|y| {
            let b = y / plan.band;
            let labels = &plan.labels[b * w..(b + 1) * w];
            if labels.iter().all(|&l| l == 0) {
                return None;
            }
            let mut vals: Vec<f32> = (0..np)
                .flat_map(|p| {
                    center.data[p * n + y * w..p * n + (y + 1) * w]
                        .iter()
                        .copied()
                })
                .collect();
            let mut refused = 0u64;
            for (x, &l) in labels.iter().enumerate() {
                if l == 0 {
                    continue;
                }
                let line = &plan.lines[l as usize - 1];
                let mut r = [0.0f32; 4];
                let mut range = guard_range(center, neighbours, plan, (x, y), (line.x0, line.x1));
                reconstruct(
                    center,
                    neighbours,
                    plan,
                    consistency,
                    x,
                    y,
                    (line.x0, line.x1),
                    &mut r,
                    &mut range,
                );
                let mut d = 0.0f32;
                for (p, rv) in r.iter().enumerate().take(np) {
                    d += center.data[p * n + y * w + x] - rv;
                }
                d = line.sign as f32 * d / np as f32;
                let wgt = ((d - GATE_LO) / (GATE_HI - GATE_LO)).clamp(0.0, 1.0);
                let (lo, hi) = range;
                let lim = plan.limits[b * w + x];
                let mut fixed = [0.0f32; 4];
                let mut harm = false;
                for (p, rv) in r.iter().enumerate().take(np) {
                    let v = center.data[p * n + y * w + x];
                    fixed[p] = v + ((rv - v) * wgt).clamp(-lim, lim);
                    harm |= crate::stages::pushed_beyond(v, fixed[p], lo[p], hi[p]);
                }
                if harm {
                    refused += 1;
                    continue;
                }
                for (p, f) in fixed.iter().enumerate().take(np) {
                    vals[p * w + x] = *f;
                }
            }
            Some((y, vals, refused))
        })
        .collect();
    let mut refused = 0;
    for (y, vals, r) in rows {
        refused += r;
        for p in 0..np {
            out.data[p * n + y * w..p * n + (y + 1) * w].copy_from_slice(&vals[p * w..(p + 1) * w]);
        }
    }
    (out, refused)
}
