//! `scratch`: remove vertical scratches, static or slowly wandering, bright or dark, full or
//! partial height, and leave real vertical structure (poles, door frames) alone.
//!
//! # Algorithm (per output frame, over a window of up to [`RADIUS`] frames on either side)
//!
//! 1. **Profiles** ([`Profiles`]): every frame of the window is reduced to column sums per half
//!    band of rows (a 32nd of the height, at least 8 rows; a band is two halves) and to row
//!    sums. Both backends add in the same order (`cpu::profiles`,
//!    `shaders/scratch_columns.wgsl`, `scratch_rows.wgsl`), so the profiles, and everything
//!    decided from them, are bit-identical.
//! 2. **Candidates** ([`detect`]): per band, the column means minus their running median over
//!    `2 * (max_width + 2) + 1` columns (a median keeps steps such as door frames and removes
//!    narrow lines) leave narrow peaks. A peak of the allowed polarity above
//!    `(12 - 10 * sensitivity)` robust deviations of that band's residual (texture raises the
//!    bar) and [`MIN_CONTRAST`] is a strong candidate, above half of that a weak one. It must be
//!    at most `max_width` wide (where the residual stays above 30 % of the peak), peak inside
//!    its extent (a ramp running into a step peaks at the end), stand out from both flanks,
//!    which must be alike (not a line along a step: a kerb, a moulding), stand at one column in
//!    both half bands, each against its own background (vertical, not slanted texture), and
//!    keep off the frame's edge.
//! 3. **Scene motion** ([`scene_shift`]): each neighbour's global translation against the
//!    centre frame, from the median-filtered column profiles (scratches removed) and the row
//!    profiles, by a 1-D search with sub-pixel refinement.
//! 4. **Tracking** ([`Plan::build`]): a candidate of the centre frame is a scratch when it is
//!    seen, with its polarity, near the same film column in `persistence` frames of the window
//!    (a scratch drifts about a pixel per frame at most), is strong here or in one of them
//!    (faint scratches flicker around the threshold), and does not follow the scene instead (a
//!    pole in a panning shot is found at its column plus the scene's shift). It must run over
//!    consecutive bands, one-band gaps bridged, for at least [`MIN_LENGTH`] of the height; the
//!    run's weaker candidates are taken with it, and its ends grow half band by half band while
//!    the line still stands there, following its lean and bridging one half band where it
//!    fades (partial-height scratches; faint ones over busy texture).
//! 5. **Repair** (`cpu::repair`, `shaders/scratch_repair.wgsl`), per pixel of a line's region
//!    (its extent widened by a third and a pixel each side): from the nearest neighbours (at
//!    most [`MAX_SOURCES`]) whose motion-compensated sample is off their own scratches and whose
//!    flanks of the line (four columns, five rows) agree with the centre's after a level
//!    offset (`consistency`); where none does (a static scratch in a still shot, occlusion), by
//!    directional interpolation across the line between its flanks, along the slope (of seven)
//!    on which the flanks agree best, so edges cross the line and the flanks' own grain is
//!    carried in. The result replaces the pixel only as far as the pixel stands out from it in
//!    the scratch's polarity ([`GATE_LO`] to [`GATE_HI`]), so rows where the scratch breaks off
//!    stay as they were.
//!
//! Masks (`emit_masks`): the line regions repaired, 255 inside (the gate may leave pixels there
//! unchanged).

pub mod cpu;
pub mod gpu;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{Stage, Window};
use crate::frame::Frame;
use crate::gpu::{GpuContext, GpuFrame};

/// Largest allowed difference between the GPU and CPU results. Detection and motion come from
/// bit-identical profiles on both backends; the per-pixel repair differs by the GPU's freedom to
/// fuse multiply-adds in the interpolations, and where such a difference flips a near-tie
/// (direction choice, consistency test) the two results are two equally good repairs.
/// Held for all but [`GPU_OUTLIERS`] of the samples.
pub const GPU_TOLERANCE: f32 = 1e-4;
/// Share of samples allowed beyond [`GPU_TOLERANCE`] (near-ties, see there).
pub const GPU_OUTLIERS: f64 = 1e-3;

/// Frames used on either side of the centre.
pub const RADIUS: usize = 2;
/// Smallest contrast (code values) of a strong candidate, whatever the texture.
pub const MIN_CONTRAST: f32 = 0.01;
/// A pixel standing out from its repair by less than this (in the scratch's polarity) is kept.
pub const GATE_LO: f32 = 0.01;
/// A pixel standing out by this or more is replaced; linear between.
pub const GATE_HI: f32 = 0.03;
/// Shortest scratch taken, as a share of the frame height (at least two bands). Scene lines
/// that pass for scratches (an outline on a still object) are mostly shorter.
pub const MIN_LENGTH: f32 = 0.3;
/// Neighbours used per pixel at most.
pub const MAX_SOURCES: usize = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Polarity {
    Bright,
    Dark,
    Both,
}

/// Parameters of `scratch`. Cost: two reductions per window frame, a little 1-D analysis, and a
/// repair of the line pixels only (about 100 samples read per repaired pixel); untouched pixels
/// are copied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScratchParams {
    /// Which scratches to remove: `bright` (emulsion scraped off a print), `dark` (base
    /// scratches, or printed in from the negative) or `both`. Default `both`.
    pub polarity: Polarity,
    /// Widest scratch removed, pixels; wider lines are left as scene. Range 1..32, default 6.
    /// Higher costs a wider median and risks taking thin scene lines.
    pub max_width: usize,
    /// 0..1, default 0.5. Higher finds fainter scratches and risks scene lines: the
    /// detection threshold is `12 - 10 * sensitivity` robust deviations of the band's profile.
    pub sensitivity: f64,
    /// Frames of the window (up to 5: the centre and 2 on either side) in which a line must be
    /// seen near the same column to count as a scratch. Range 1..5, default 3. At the ends of a
    /// sequence the window is shorter and the demand shrinks with it.
    pub persistence: usize,
    /// Largest mean difference (code values) between the centre and a motion-compensated
    /// neighbour on the flanks of the line for that neighbour to be used. Range 0.001..0.5,
    /// default 0.03.
    pub consistency: f64,
    /// Folder for masks of what was repaired (`<folder>/scratch/<frame>.png`); set by
    /// `restore --emit-masks`. Default none.
    pub emit_masks: Option<PathBuf>,
}

impl Default for ScratchParams {
    fn default() -> Self {
        ScratchParams {
            polarity: Polarity::Both,
            max_width: 6,
            sensitivity: 0.5,
            persistence: 3,
            consistency: 0.03,
            emit_masks: None,
        }
    }
}

impl ScratchParams {
    pub fn validate(&self) -> Result<()> {
        if !(1..=32).contains(&self.max_width) {
            bail!(
                "scratch.max_width = {} is out of range (valid: 1 to 32 pixels)",
                self.max_width
            );
        }
        if !(0.0..=1.0).contains(&self.sensitivity) {
            bail!(
                "scratch.sensitivity = {} is out of range (valid: 0 to 1)",
                self.sensitivity
            );
        }
        if !(1..=2 * RADIUS + 1).contains(&self.persistence) {
            bail!(
                "scratch.persistence = {} is out of range (valid: 1 to {} frames)",
                self.persistence,
                2 * RADIUS + 1
            );
        }
        if !(0.001..=0.5).contains(&self.consistency) {
            bail!(
                "scratch.consistency = {} is out of range (valid: 0.001 to 0.5)",
                self.consistency
            );
        }
        Ok(())
    }

    /// Detection threshold in robust deviations.
    fn threshold(&self) -> f32 {
        (12.0 - 10.0 * self.sensitivity) as f32
    }
}

/// Rows per half band (the profiles' unit) for a frame `height` rows high: a 32nd of the height,
/// at least 8. Lines are detected per band (two halves) and must stand in both halves at one
/// column (vertical), which tells them from slanted texture.
pub fn half_band_height(height: usize) -> usize {
    height.div_ceil(32).max(8).min(height.max(1))
}

/// One frame reduced: `columns[b * width + x]` sums half band `b` of column `x` over its rows
/// and planes; `rows[y]` sums row `y` over its columns and planes. Sums, in a fixed order.
#[derive(Clone, Debug, PartialEq)]
pub struct Profiles {
    pub width: usize,
    pub height: usize,
    pub planes: usize,
    /// Rows per half band.
    pub half: usize,
    pub columns: Vec<f32>,
    pub rows: Vec<f32>,
}

impl Profiles {
    pub fn halves(&self) -> usize {
        self.height.div_ceil(self.half)
    }

    /// Rows per band (two half bands).
    pub fn band(&self) -> usize {
        2 * self.half
    }

    pub fn bands(&self) -> usize {
        self.halves().div_ceil(2)
    }

    fn rows_of(&self, h: usize) -> usize {
        self.half.min(self.height - h * self.half)
    }

    /// Mean of half band `h` at each column.
    fn half_means(&self, h: usize) -> Vec<f32> {
        let n = (self.rows_of(h) * self.planes) as f32;
        self.columns[h * self.width..(h + 1) * self.width]
            .iter()
            .map(|s| s / n)
            .collect()
    }

    /// Mean of band `b` at each column (its half bands added in order).
    fn band_means(&self, b: usize) -> Vec<f32> {
        let (h0, h1) = (2 * b, (2 * b + 1).min(self.halves() - 1));
        if h0 == h1 {
            return self.half_means(h0);
        }
        let n = ((self.rows_of(h0) + self.rows_of(h1)) * self.planes) as f32;
        let (a, c) = (
            &self.columns[h0 * self.width..(h0 + 1) * self.width],
            &self.columns[h1 * self.width..(h1 + 1) * self.width],
        );
        a.iter().zip(c).map(|(a, c)| (a + c) / n).collect()
    }
}

/// A narrow peak in one band's column profile.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    pub band: usize,
    /// Centroid column.
    pub center: f32,
    /// First and last column above 30 % of the peak.
    pub x0: usize,
    pub x1: usize,
    /// +1 bright, -1 dark.
    pub sign: i32,
    /// Residual at the peak, in the polarity's direction.
    pub peak: f32,
    pub strong: bool,
}

impl Candidate {
    /// Columns repaired: the extent widened by a third of it and one pixel each side (the faint
    /// skirts of the profile).
    fn region(&self, width: usize) -> (usize, usize) {
        let dil = 1 + (self.x1 - self.x0 + 1) / 3;
        (self.x0.saturating_sub(dil), (self.x1 + dil).min(width - 1))
    }
}

fn median(v: &mut [f32]) -> f32 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Candidates of one frame, every band.
pub fn detect(p: &Profiles, params: &ScratchParams) -> Vec<Candidate> {
    let w = p.width;
    let k = params.max_width + 2;
    let t = params.threshold();
    let signs: &[i32] = match params.polarity {
        Polarity::Bright => &[1],
        Polarity::Dark => &[-1],
        Polarity::Both => &[1, -1],
    };
    let mut out = Vec::new();
    if w < 3 {
        return out;
    }
    for b in 0..p.bands() {
        let m = p.band_means(b);
        let bg = running_median(&m, k);
        let r: Vec<f32> = m.iter().zip(&bg).map(|(a, b)| a - b).collect();
        // Each half against its own background: the level often changes between the halves
        // (a horizon, a gradient), which would bury the line in an offset.
        let halves: Vec<Vec<f32>> = (2 * b..(2 * b + 2).min(p.halves()))
            .map(|h| {
                let hm = p.half_means(h);
                let hbg = running_median(&hm, k);
                hm.iter().zip(&hbg).map(|(a, b)| a - b).collect()
            })
            .collect();
        let mut abs: Vec<f32> = r.iter().map(|v| v.abs()).collect();
        let sigma = (1.4826 * median(&mut abs)).max(1e-4);
        let strong = (t * sigma).max(MIN_CONTRAST);
        let weak = 0.5 * strong;
        for &s in signs {
            let v = |x: usize| s as f32 * r[x];
            for x in 0..w {
                let here = v(x);

                if here <= weak || (x > 0 && v(x - 1) > here) || (x + 1 < w && v(x + 1) >= here) {
                    continue;
                }
                let cut = 0.3 * here;

                let mut x0 = x;
                while x0 > 0 && v(x0 - 1) > cut {
                    x0 -= 1;
                }
                let mut x1 = x;
                while x1 + 1 < w && v(x1 + 1) > cut {
                    x1 += 1;
                }
                // Too wide for a scratch; or peaking at one end of a wide extent, which is a
                // ramp running into a step (the median leaves a dip there), not a line.
                // A line needs both flanks: one at the frame's edge is the gate's border.
                if x0 < 2 || x1 + 2 >= w {
                    continue;
                }
                if x1 - x0 + 1 > params.max_width || (x1 - x0 >= 2 && (x == x0 || x == x1)) {
                    continue;
                }
                let (mut sw, mut sx) = (0.0f32, 0.0f32);
                for xi in x0..=x1 {
                    sw += v(xi);
                    sx += v(xi) * xi as f32;
                }
                let center = sx / sw;
                // A line stands out from both of its flanks (a ramp beside a step does not:
                // the median leaves a dip there with one high flank only).
                let peak = m[x1.min(x0.max(x))];
                let flank = |a: usize, b: usize| (m[a] + m[b]) * 0.5;
                let sides = [flank(x0 - 1, x0 - 2), flank(x1 + 1, x1 + 2)];
                // Nor from a step with an edge line (a door frame's moulding, a kerb): the
                // flanks must be alike.
                if (sides[0] - sides[1]).abs() > here
                    || sides.iter().any(|f| s as f32 * (peak - f) < 0.5 * here)
                {
                    continue;
                }
                // Vertical: both halves peak at the same column, nearly as high.
                let upright = halves.iter().all(|r| {
                    let (lo, hi) = (x0.saturating_sub(2), (x1 + 2).min(w - 1));
                    let (mut hw, mut hx, mut top) = (0.0f32, 0.0f32, 0.0f32);
                    for (xi, v) in r.iter().enumerate().take(hi + 1).skip(lo) {
                        let u = (s as f32 * v).max(0.0);
                        hw += u;
                        hx += u * xi as f32;
                        if xi >= x0 && xi <= x1 {
                            top = top.max(u);
                        }
                    }
                    top >= 0.4 * here && (hx / hw - center).abs() <= 1.0
                });
                if !upright {
                    continue;
                }
                out.push(Candidate {
                    band: b,
                    center: sx / sw,
                    x0,
                    x1,
                    sign: s,
                    peak: here,
                    strong: here > strong,
                });
            }
        }
    }
    out
}

/// Median of `v[x - k ..= x + k]` (clipped at the ends) for every `x`.
pub fn running_median(v: &[f32], k: usize) -> Vec<f32> {
    let mut buf = Vec::with_capacity(2 * k + 1);
    (0..v.len())
        .map(|x| {
            buf.clear();
            buf.extend_from_slice(&v[x.saturating_sub(k)..(x + k + 1).min(v.len())]);
            median(&mut buf)
        })
        .collect()
}

/// The shift `d` for which `b[i + d] ≈ a[i]`, searched up to `max` samples, by least squares on
/// the derivatives (so a level change between the frames does not bias it), refined to a
/// fraction of a sample by a parabola. 0 where nothing lines up better than no shift.
pub fn shift_1d(a: &[f32], b: &[f32], max: usize) -> f32 {
    let n = a.len().min(b.len());
    if n < 8 {
        return 0.0;
    }
    let deriv = |v: &[f32]| -> Vec<f64> { (1..n).map(|i| (v[i] - v[i - 1]) as f64).collect() };
    let (da, db) = (deriv(a), deriv(b));
    let m = da.len() as i64;
    let max = (max as i64).min(m / 4);
    let cost = |d: i64| -> f64 {
        let (lo, hi) = ((-d).max(0), (m - d).min(m));
        let mut s = 0.0;
        for i in lo..hi {
            let e = da[i as usize] - db[(i + d) as usize];
            s += e * e;
        }
        s / (hi - lo).max(1) as f64
    };
    let costs: Vec<f64> = (-max..=max).map(cost).collect();
    let mut best = max as usize;
    for (i, c) in costs.iter().enumerate() {
        if *c < costs[best] {
            best = i;
        }
    }
    let mut d = best as f64 - max as f64;
    if best > 0 && best + 1 < costs.len() {
        let (l, c, r) = (costs[best - 1], costs[best], costs[best + 1]);
        let den = l - 2.0 * c + r;
        if den > 0.0 {
            d += (0.5 * (l - r) / den).clamp(-0.5, 0.5);
        }
    }
    d as f32
}

/// Global translation `(dx, dy)` of `neighbour` against `center`: `center(x, y) ≈
/// neighbour(x + dx, y + dy)`.
pub fn scene_shift(center: &Profiles, neighbour: &Profiles, max_width: usize) -> (f32, f32) {
    let k = max_width + 2;
    let col = |p: &Profiles| -> Vec<f32> {
        let mut acc = vec![0.0f32; p.width];
        for b in 0..p.bands() {
            for (a, v) in acc.iter_mut().zip(running_median(&p.band_means(b), k)) {
                *a += v;
            }
        }
        acc
    };
    let row = |p: &Profiles| -> Vec<f32> {
        let n = (p.width * p.planes) as f32;
        p.rows.iter().map(|s| s / n).collect()
    };
    let dx = shift_1d(&col(center), &col(neighbour), (center.width / 8).max(4));
    let dy = shift_1d(&row(center), &row(neighbour), (center.height / 8).max(4));
    (dx, dy)
}

/// A scratch accepted in the centre frame, in one band.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Line {
    pub band: usize,
    pub center: f32,
    /// First and last column repaired.
    pub x0: usize,
    pub x1: usize,
    pub sign: i32,
}

/// Everything the per-pixel repair needs, decided from the profiles alone (so the same on both
/// backends).
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub width: usize,
    pub height: usize,
    pub band: usize,
    pub bands: usize,
    pub lines: Vec<Line>,
    /// `labels[b * width + x]`: 1 + the index of the line repairing column `x` of band `b`, or 0.
    pub labels: Vec<u32>,
    /// Per neighbour (nearest first: before[0], after[0], before[1], ...): its shift and where
    /// its own line candidates are (`bands * width`, 1 = avoid).
    pub neighbours: Vec<((f32, f32), Vec<u32>)>,
    /// Index of each used neighbour in the window's temporal order.
    pub order: Vec<usize>,
}

impl Plan {
    /// `profiles` in temporal order, `center` the centre's index among them.
    pub fn build(profiles: &[Profiles], center: usize, params: &ScratchParams) -> Plan {
        let c = &profiles[center];
        let (w, h) = (c.width, c.height);
        let cands: Vec<Vec<Candidate>> = profiles.iter().map(|p| detect(p, params)).collect();
        // Nearest first, before before after at equal distance.
        let mut order: Vec<usize> = Vec::new();
        for d in 1..=RADIUS {
            if center >= d {
                order.push(center - d);
            }
            if center + d < profiles.len() {
                order.push(center + d);
            }
        }
        let shifts: Vec<(f32, f32)> = order
            .iter()
            .map(|&i| scene_shift(c, &profiles[i], params.max_width))
            .collect();
        let need = params.persistence.min(profiles.len());
        let seen = |i: usize, band: usize, sign: i32, x: f32, tol: f32| {
            cands[i]
                .iter()
                .any(|q| q.band == band && q.sign == sign && (q.center - x).abs() <= tol)
        };
        let mut accepted: Vec<Candidate> = Vec::new();
        // Temporal hysteresis: a weak candidate counts where the same line is strong in a
        // neighbour (a faint scratch flickers around the threshold from frame to frame).
        let strong_at = |i: usize, band: usize, sign: i32, x: f32, tol: f32| {
            cands[i].iter().any(|q| {
                q.strong && q.band == band && q.sign == sign && (q.center - x).abs() <= tol
            })
        };
        for q in &cands[center] {
            let mut film = 1;
            let mut scene = 0;
            let mut strong = q.strong;
            for (&i, &(dx, _)) in order.iter().zip(&shifts) {
                let dt = i.abs_diff(center) as f32;
                let tol = 1.0 + dt + 0.5 * (q.x1 - q.x0) as f32;
                if seen(i, q.band, q.sign, q.center, tol) {
                    film += 1;
                    strong |= strong_at(i, q.band, q.sign, q.center, tol);
                } else if dx.abs() > tol + 1.0 && seen(i, q.band, q.sign, q.center + dx, 1.0) {
                    scene += 1;
                }
            }
            if strong && film >= need && film > scene {
                accepted.push(*q);
            }
        }
        // A scratch runs a good part of the height at one column: keep runs of candidates
        // over consecutive bands, at least [`MIN_LENGTH`] of the height (and two bands), holding an
        // accepted one; the rest of the run is taken with it.
        let band_rows = c.band();
        let min_run = (h as f32 * MIN_LENGTH / band_rows as f32).ceil().max(2.0) as usize;
        // A real scratch may lean or bend a little (a couple of pixels over the height), and a
        // faint one's centroid wanders with the texture under it.
        let near =
            |a: &Candidate, b: &Candidate| a.sign == b.sign && (a.center - b.center).abs() <= 1.5;
        let mut chosen: Vec<Candidate> = Vec::new();
        for q in &accepted {
            if chosen.contains(q) {
                continue;
            }
            // A faint scratch may fade out in a band: a gap of one band is bridged.
            let mut run = vec![*q];
            let (mut top, mut bottom) = (q.band, q.band);
            for dir in [-1i64, 1] {
                let mut cur = *q;
                'walk: loop {
                    for step in [1, 2] {
                        let band = cur.band as i64 + dir * step;
                        if let Some(r) = cands[center]
                            .iter()
                            .find(|r| r.band as i64 == band && near(r, &cur))
                        {
                            // The bands bridged are repaired too, where the line was (the
                            // gate keeps what it did not reach).
                            for gap in 1..step {
                                run.push(Candidate {
                                    band: (cur.band as i64 + dir * gap) as usize,
                                    strong: false,
                                    ..cur
                                });
                            }
                            run.push(*r);
                            cur = *r;
                            top = top.min(r.band);
                            bottom = bottom.max(r.band);
                            continue 'walk;
                        }
                    }
                    break;
                }
            }
            if bottom - top + 1 >= min_run.min(c.bands()) {
                chosen.extend(
                    run.into_iter()
                        .filter(|r| !chosen.contains(r))
                        .collect::<Vec<_>>(),
                );
            }
        }
        let accepted = chosen;
        // Lines are labelled per half band. A band's line covers both halves and grows up and
        // down, half by half, while the line stands there too (partial-height scratches end
        // mid-band; the repair's gate keeps what the scratch did not reach).
        let halves = c.halves();
        let half_res: Vec<Vec<f32>> = (0..halves)
            .map(|hb| {
                let m = c.half_means(hb);
                let bg = running_median(&m, params.max_width + 2);
                m.iter().zip(&bg).map(|(a, b)| a - b).collect()
            })
            .collect();
        // Where the line stands in half band `hb` near column `x`: its centroid there.
        let stands = |hb: usize, q: &Candidate, x: f32| -> Option<f32> {
            let r = &half_res[hb];
            let (lo, hi) = (q.x0.saturating_sub(1), (q.x1 + 1).min(w - 1));
            let (mut sw, mut sx, mut top) = (0.0f32, 0.0f32, 0.0f32);
            for (xi, v) in r.iter().enumerate().take(hi + 1).skip(lo) {
                let u = (q.sign as f32 * v).max(0.0);
                sw += u;
                sx += u * xi as f32;
                top = top.max(u);
            }
            let at = sx / sw;
            (top >= 0.3 * q.peak && top >= 0.5 * MIN_CONTRAST && (at - x).abs() <= 1.5)
                .then_some(at)
        };
        // Grow from `first` in direction `dir` while the line stands, following its lean and
        // bridging one half band where it fades (faint scratches over busy texture).
        let grow = |q: &Candidate, first: i64, dir: i64| -> Vec<usize> {
            let mut out = Vec::new();
            let (mut x, mut miss) = (q.center, 0);
            let mut hb = first;
            while hb >= 0 && (hb as usize) < halves {
                match stands(hb as usize, q, x) {
                    Some(at) => {
                        for back in 0..=miss {
                            out.push((hb - dir * back) as usize);
                        }
                        miss = 0;
                        x = at.clamp(q.center - 1.5, q.center + 1.5);
                    }
                    None if miss == 0 => miss = 1,
                    None => break,
                }
                hb += dir;
            }
            out
        };
        let mut lines = Vec::new();
        let mut labels = vec![0u32; halves * w];
        for q in &accepted {
            let (x0, x1) = q.region(w);
            lines.push(Line {
                band: q.band,
                center: q.center,
                x0,
                x1,
                sign: q.sign,
            });
            let id = lines.len() as u32;
            let first = 2 * q.band;
            let last = (2 * q.band + 1).min(halves - 1);
            let mut covered: Vec<usize> = (first..=last).collect();
            covered.extend(grow(q, first as i64 - 1, -1));
            covered.extend(grow(q, last as i64 + 1, 1));
            for hb in covered {
                labels[hb * w + x0..=hb * w + x1].fill(id);
            }
        }
        let neighbours = order
            .iter()
            .zip(&shifts)
            .map(|(&i, &s)| {
                let mut avoid = vec![0u32; halves * w];
                for q in &cands[i] {
                    // Its core and a pixel: its faint skirts cost less than losing the source.
                    let (x0, x1) = (q.x0.saturating_sub(1), (q.x1 + 1).min(w - 1));
                    for hb in 2 * q.band..(2 * q.band + 2).min(halves) {
                        avoid[hb * w + x0..=hb * w + x1].fill(1);
                    }
                }
                (s, avoid)
            })
            .collect();
        Plan {
            width: w,
            height: h,
            band: c.half,
            bands: halves,
            lines,
            labels,
            neighbours,
            order,
        }
    }

    /// The mask of the repaired regions: 255 inside, one byte per pixel.
    pub fn mask(&self) -> Vec<u8> {
        let mut m = vec![0u8; self.width * self.height];
        for (y, row) in m.chunks_mut(self.width).enumerate() {
            let b = y / self.band;
            for (x, v) in row.iter_mut().enumerate() {
                if self.labels[b * self.width + x] != 0 {
                    *v = 255;
                }
            }
        }
        m
    }
}

pub struct Scratch {
    pub params: ScratchParams,
    repaired: super::RepairLog,
}

impl Scratch {
    pub fn new(params: ScratchParams) -> Result<Self> {
        params.validate()?;
        Ok(Scratch {
            params,
            repaired: Default::default(),
        })
    }

    pub fn from_table(table: &toml::Table) -> Result<Self> {
        let params: ScratchParams = table.clone().try_into().context(
            "invalid parameters for stage 'scratch' \
             (keys: polarity = \"bright\" | \"dark\" | \"both\", max_width, sensitivity, \
             persistence, consistency, emit_masks)",
        )?;
        Self::new(params)
    }

    /// Log what the plan repairs, and write its mask when `emit_masks` is set.
    fn emit(&self, plan: &Plan, number: Option<i64>) -> Result<()> {
        let mask = plan.mask();
        self.repaired.note(number, &mask, plan.width);
        if let (Some(dir), Some(n)) = (&self.params.emit_masks, number) {
            super::write_mask(dir, "scratch", n, plan.width, plan.height, &mask)?;
        }
        Ok(())
    }
}

impl Stage for Scratch {
    fn name(&self) -> &'static str {
        "scratch"
    }

    fn temporal_radius(&self) -> usize {
        RADIUS
    }

    fn spatial_halo(&self) -> usize {
        // The median window, plus the flanks and the largest scene shift searched are
        // relative to the frame; a tile needs whole columns.
        2 * (self.params.max_width + 2) + 4
    }

    fn gpu_tolerance(&self) -> f32 {
        GPU_TOLERANCE
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    /// Pixels and line regions repaired, per frame.
    fn report(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "repaired": self.repaired.json() }))
    }

    fn run_cpu(&self, window: &Window<'_, Frame>) -> Result<Frame> {
        let (frames, center) = window.in_order();
        super::check_shapes(
            "scratch",
            frames.iter().map(|f| (f.width, f.height, f.planes)),
        )?;
        if window.center.planes > 4 {
            bail!(
                "scratch: frames of {} planes (at most 4)",
                window.center.planes
            );
        }
        let profiles: Vec<Profiles> = frames.iter().map(|f| cpu::profiles(f)).collect();
        let plan = Plan::build(&profiles, center, &self.params);
        self.emit(&plan, window.center.meta.number)?;
        let neighbours: Vec<&Frame> = plan.order.iter().map(|&i| frames[i]).collect();
        Ok(cpu::repair(window.center, &neighbours, &plan, &self.params))
    }

    fn run_gpu(&self, gpu: &GpuContext, window: &Window<'_, GpuFrame>) -> Result<GpuFrame> {
        let (frames, center) = window.in_order();
        super::check_shapes(
            "scratch",
            frames.iter().map(|f| (f.width, f.height, f.planes)),
        )?;
        let profiles = frames
            .iter()
            .map(|f| gpu::profiles(gpu, f))
            .collect::<Result<Vec<_>>>()?;
        let plan = Plan::build(&profiles, center, &self.params);
        self.emit(&plan, window.center.meta.number)?;
        let neighbours: Vec<&GpuFrame> = plan.order.iter().map(|&i| frames[i]).collect();
        gpu::repair(gpu, window.center, &neighbours, &plan, &self.params)
    }
}
