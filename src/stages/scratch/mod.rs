//! `scratch`: remove vertical scratches, static or slowly wandering, bright or dark, full or
//! partial height, and leave real vertical structure (poles, door frames, cords, panelling)
//! alone: a line is repaired only where it moves with the film strip, not with the scene.
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
//! 4. **Tracking** ([`Plan::build`]): the centre's candidates are joined into runs over
//!    consecutive bands, one-band gaps bridged, at least [`MIN_LENGTH`] of the height, holding
//!    a candidate that is strong here or in a neighbour (faint scratches flicker around the
//!    threshold). Each run is then judged whole by what carries it ([`carrier`]): its bands'
//!    sightings in each neighbour ([`sighting`]: where the scene's motion puts the line, else
//!    near where the film strip's move puts it) are pooled, and it is a scratch only where it
//!    jitters with the film strip. `stabilise` records how it moved each frame
//!    (`FrameMeta::film_move`); a scratch on the print moves with that correction while the
//!    steadied scene, and everything in it (poles, door frames, a figure, a cord), moves
//!    smoothly. A line that stays put or moves smoothly is never taken: in a still shot, a
//!    slow pan, or a scan never steadied (or steadied with no weave to remove) a scratch and a
//!    pole look alike to every cue, so such lines are left and named in the record
//!    ([`Plan::undecided`]). A run must be seen in `persistence` frames of the window. Its
//!    ends grow half band by half band while the line still stands there, following its lean
//!    and bridging one half band where it fades (partial-height scratches).
//! 5. **Repair** (`cpu::repair`, `shaders/scratch_repair.wgsl`), per pixel of a line's region
//!    (its extent widened by a third and a pixel each side): from the nearest neighbours (at
//!    most [`MAX_SOURCES`]) whose motion-compensated sample is off their own scratches and whose
//!    flanks of the line (four columns, five rows) agree with the centre's after a level
//!    offset (`consistency`); where none does (occlusion, neighbours' scratches in the way),
//!    by directional interpolation across the line between its flanks, along the slope (of
//!    seven) on which the flanks agree best, so edges cross the line and the flanks' own grain
//!    is carried in. The result replaces the pixel only as far as the pixel stands out from it
//!    in the scratch's polarity ([`GATE_LO`] to [`GATE_HI`]), so rows where the scratch breaks
//!    off stay as they were, and by no more than [`LIMIT_GAIN`] times the line's contrast in
//!    that column ([`Plan::limits`]). The harm guard ([`super::pushed_beyond`]) then refuses any
//!    pixel pushed beyond the range that its flanks, its compensated neighbours and the
//!    interpolation's own flank samples show there; refused pixels keep their values and are
//!    counted in the record.
//!
//! Masks (`emit_masks`): the line regions repaired, 255 inside (the gate may leave pixels there
//! unchanged).

pub mod cpu;
pub mod gpu;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::repairs::{cpu_samples, Region, Repair, RepairLog, Repaired, Revert, Veto};
use super::{Stage, Window};
use crate::frame::{Frame, FrameMeta};
use crate::gpu::{GpuContext, GpuFrame};
use crate::stages::stabilise::motion::Similarity;

/// Largest allowed difference between the GPU and CPU results. Detection and motion come from
/// bit-identical profiles on both backends; the per-pixel repair differs by the GPU's freedom to
/// fuse multiply-adds in the interpolations, and where such a difference flips a near-tie
/// (direction choice, consistency test) the two results are two equally good repairs.
/// Held for all but [`GPU_OUTLIERS`] of the samples.
pub const GPU_TOLERANCE: f32 = 1e-4;
/// Share of samples allowed beyond [`GPU_TOLERANCE`] (near-ties, see there).
pub const GPU_OUTLIERS: f64 = 1e-3;

/// Frames used on either side of the centre to tell scratches from scene lines: three, so
/// that even the first and last frames of a shot see a line in three others.
pub const RADIUS: usize = 3;
/// Frames on either side a repair takes samples from (the nearest).
pub const REPAIR_RADIUS: usize = 2;
/// Smallest contrast (code values) of a strong candidate, whatever the texture.
pub const MIN_CONTRAST: f32 = 0.01;
/// A pixel standing out from its repair by less than this (in the scratch's polarity) is kept.
pub const GATE_LO: f32 = 0.01;
/// A pixel standing out by this or more is replaced; linear between.
pub const GATE_HI: f32 = 0.03;
/// Shortest scratch taken, as a share of the frame height (at least two bands). Scene lines
/// that pass for scratches (an outline on a still object) are mostly shorter.
pub const MIN_LENGTH: f32 = 0.3;
/// A repair changes a sample at most this many times the line's contrast in its column (the
/// half band's mean profile): a scratch's intensity varies along its length around that mean.
pub const LIMIT_GAIN: f32 = 2.0;
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
    /// Frames of the window (up to 7: the centre and 3 on either side) in which a line must be
    /// seen to count as a scratch. Range 1..7, default 3. At the ends of a sequence the window
    /// is shorter and the demand shrinks with it. (Telling a scratch from a scene line takes
    /// four frames in any case.)
    pub persistence: usize,
    /// Largest mean difference (code values) between the centre and a motion-compensated
    /// neighbour on the flanks of the line for that neighbour to be used. Range 0.001..0.5,
    /// default 0.03.
    pub consistency: f64,
    /// Folder for masks of what was repaired (`<folder>/scratch/<frame>.png`); set by
    /// `restore --emit-masks`. Default none.
    pub emit_masks: Option<PathBuf>,
    /// Repairs to leave out (set by `restore --veto FILE`): ids `scratch:FRAME:N` from the
    /// repairs file, or `scratch:FRAME@X,Y,W,H` for every repair of a frame meeting a box. The
    /// rest of the output is bit-identical to the run without them. Default none.
    pub veto: Vec<String>,
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
            veto: Vec::new(),
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
    /// How the film strip was moved in this frame (`FrameMeta::film_move`).
    pub film_move: Option<[f64; 4]>,
}

impl Profiles {
    /// How far across the film strip's move carried the picture at `(x, y)`, px.
    pub fn film_shift(&self, x: f32, y: f32) -> f32 {
        let Some(m) = self.film_move else { return 0.0 };
        let u = [
            x as f64 - (self.width as f64 - 1.0) / 2.0,
            y as f64 - (self.height as f64 - 1.0) / 2.0,
        ];
        (Similarity::from_track(m).apply(u)[0] - u[0]) as f32
    }
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
    /// skirts of the profile). How far each column may change is the plan's
    /// ([`Plan::limits`]): a step beside the line stands out by nothing.
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
    let residuals: Vec<Residual> = (0..p.bands()).map(|b| Residual::of(p, b, params)).collect();
    detect_in(p, &residuals, params)
}

/// [`detect`] on the bands' residuals, computed once.
fn detect_in(p: &Profiles, residuals: &[Residual], params: &ScratchParams) -> Vec<Candidate> {
    let w = p.width;
    let k = params.max_width + 2;
    let signs: &[i32] = match params.polarity {
        Polarity::Bright => &[1],
        Polarity::Dark => &[-1],
        Polarity::Both => &[1, -1],
    };
    let mut out = Vec::new();
    if w < 3 {
        return out;
    }
    for (b, res) in residuals.iter().enumerate() {
        let (m, r) = (&res.means, &res.r);
        // Each half against its own background: the level often changes between the halves
        // (a horizon, a gradient), which would bury the line in an offset.
        let halves: Vec<Vec<f32>> = (2 * b..(2 * b + 2).min(p.halves()))
            .map(|h| {
                let hm = p.half_means(h);
                let hbg = running_median(&hm, k);
                hm.iter().zip(&hbg).map(|(a, b)| a - b).collect()
            })
            .collect();
        let (weak, strong) = (res.weak, 2.0 * res.weak);
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

/// What the scene's motion is measured on, per frame: the bands' column backgrounds summed
/// (scratches and other narrow lines removed) and the row means.
pub struct SceneProfile {
    pub columns: Vec<f32>,
    pub rows: Vec<f32>,
}

impl SceneProfile {
    /// From a frame's profiles and its bands' residuals ([`Residual::of`], in band order).
    pub fn of(p: &Profiles, residuals: &[Residual]) -> Self {
        let mut columns = vec![0.0f32; p.width];
        for res in residuals {
            for (a, v) in columns.iter_mut().zip(&res.background) {
                *a += v;
            }
        }
        let n = (p.width * p.planes) as f32;
        SceneProfile {
            columns,
            rows: p.rows.iter().map(|s| s / n).collect(),
        }
    }
}

/// Global translation `(dx, dy)` of `neighbour` against `center`: `center(x, y) ≈
/// neighbour(x + dx, y + dy)`.
pub fn scene_shift(center: &SceneProfile, neighbour: &SceneProfile) -> (f32, f32) {
    let (w, h) = (center.columns.len(), center.rows.len());
    let dx = shift_1d(&center.columns, &neighbour.columns, (w / 8).max(4));
    let dy = shift_1d(&center.rows, &neighbour.rows, (h / 8).max(4));
    (dx, dy)
}

/// Largest drift of a scratch along the film, px per frame: it is scored by grit in a gate and
/// wanders slowly.
pub const DRIFT_MAX: f32 = 0.6;
/// Largest acceleration of a scratch's wander along the film, px per frame².
pub const ACCEL_MAX: f32 = 0.25;
/// A hypothesis (film or scene) fits a line's sightings where none lies further than this
/// from where it puts the line, px: the centroids' noise.
pub const FIT: f32 = 0.5;
/// A hypothesis is ruled out where a sighting lies at least this far from where it puts the
/// line, px.
pub const APART: f32 = 0.8;

/// One band's column means, and those less their running median over
/// `2 * (max_width + 2) + 1` columns: narrow lines stand out of it, steps do not. With the
/// least a weak candidate stands out there: half of `(12 - 10 * sensitivity)` robust
/// deviations of the residual (texture raises the bar), and of [`MIN_CONTRAST`].
pub struct Residual {
    pub means: Vec<f32>,
    /// The running median of `means`.
    pub background: Vec<f32>,
    pub r: Vec<f32>,
    pub weak: f32,
}

impl Residual {
    pub fn of(p: &Profiles, band: usize, params: &ScratchParams) -> Self {
        let means = p.band_means(band);
        let background = running_median(&means, params.max_width + 2);
        let r: Vec<f32> = means.iter().zip(&background).map(|(a, b)| a - b).collect();
        let mut abs: Vec<f32> = r.iter().map(|v| v.abs()).collect();
        let sigma = (1.4826 * median(&mut abs)).max(1e-4);
        let weak = 0.5 * (params.threshold() * sigma).max(MIN_CONTRAST);
        Residual {
            means,
            background,
            r,
            weak,
        }
    }

    /// Whether a line of polarity `sign` at least half as strong as `peak`, and as a weak
    /// candidate, stands at column `x`.
    pub fn shows(&self, x: f32, sign: i32, peak: f32) -> bool {
        self.stands(x, sign) >= (0.5 * peak).max(self.weak)
    }

    /// How far a line of polarity `sign` stands out at column `x`: over the two columns
    /// either side of it, as a thin line between two pixels shares itself between them.
    pub fn stands(&self, x: f32, sign: i32) -> f32 {
        let r = &self.r;
        let c = x.floor() as i64;
        (c..=c + 1)
            .filter(|&xi| xi >= 0 && (xi as usize) < r.len())
            .map(|xi| (sign as f32 * r[xi as usize]).max(0.0))
            .sum()
    }
}

/// A centre candidate seen in a neighbour: its offset from the centre's column, where the
/// scene's motion and where the film strip's move would put it, and the time apart.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sighting {
    pub at: f32,
    pub scene: f32,
    pub film: f32,
    pub dt: f32,
}

/// What carries a line: the film strip (a scratch), the scene (a pole, a door frame), or no
/// cue can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carrier {
    Film,
    Scene,
    Unknown,
}

/// The candidate of a neighbour (`cands`) that is `q` seen there, if any: same band and
/// polarity, where the scene's motion (`scene` px) would carry it, else nearest to where the
/// film strip would (`film` px, plus a drift of up to [`DRIFT_MAX`] a frame, `dt` frames
/// away), where it is the only line of its kind within `clear` px of there. The scene comes
/// first: in panelling or railings another line of the same kind always stands near the
/// film's place.
pub fn sighting<'a>(
    cands: &'a [Candidate],
    q: &Candidate,
    scene: f32,
    film: f32,
    dt: f32,
    clear: f32,
) -> Option<&'a Candidate> {
    let reach = 1.0 + 0.25 * (q.x1 - q.x0) as f32;
    let drift = DRIFT_MAX * dt.abs();
    let kin = |r: &&Candidate| r.band == q.band && r.sign == q.sign;
    let to_scene = |r: &Candidate| (r.center - q.center - scene).abs();
    let to_film = |r: &Candidate| ((r.center - q.center - film).abs() - drift).max(0.0);
    let nearest = |off: &dyn Fn(&Candidate) -> f32| {
        cands
            .iter()
            .filter(kin)
            .filter(|r| off(r) <= reach)
            .min_by(|a, b| off(a).total_cmp(&off(b)))
    };
    if let Some(r) = nearest(&to_scene) {
        return Some(r);
    }
    // Near the film's place the sighting must be the only line of its kind within `clear` px:
    // in panelling or railings one always stands there by chance.
    let around = cands
        .iter()
        .filter(kin)
        .filter(|r| to_film(r) <= reach + clear)
        .count();
    if around == 1 {
        nearest(&to_film)
    } else {
        None
    }
}

/// Worst distance of offsets `r` (at times `dt`) from the best smooth path through the
/// centre, `a * dt + b * dt²`, with `|a| <= speed` and `|b| <= ACCEL_MAX / 2`.
fn off_smooth(r: &[(f32, f32)], speed: f32) -> f32 {
    let (mut s2, mut s3, mut s4, mut r1, mut r2) = (0.0f32, 0.0f32, 0.0f32, 0.0f32, 0.0f32);
    for &(dt, v) in r {
        let d2 = dt * dt;
        s2 += d2;
        s3 += d2 * dt;
        s4 += d2 * d2;
        r1 += v * dt;
        r2 += v * d2;
    }
    let det = s2 * s4 - s3 * s3;
    let half = 0.5 * ACCEL_MAX;
    let mut b = if det.abs() > 1e-6 {
        (s2 * r2 - s3 * r1) / det
    } else {
        0.0
    };
    b = b.clamp(-half, half);
    let a = ((r1 - b * s3) / s2.max(1e-6)).clamp(-speed, speed);
    r.iter().fold(0.0f32, |m, &(dt, v)| {
        m.max((v - a * dt - b * dt * dt).abs())
    })
}

/// Which carries a line seen at `sightings`. The film when the line jitters with the film
/// strip: the film's moves (as `stabilise` recorded them), plus a smooth wander of the
/// scratch's own (at most [`DRIFT_MAX`] a frame, [`ACCEL_MAX`] a frame²), fit every sighting
/// within [`FIT`], while no smooth path of the line's own, nor the scene's motion, comes within
/// [`APART`] of one. It takes three sightings: two unrelated lines of panelling or railings
/// fall near the film's places by chance too often. Scene lines move smoothly in steadied
/// picture (the camera's path is smooth; parallax, a walking figure and a swaying cord are
/// too), so a line that stays put or moves smoothly is never taken for the film: on a scan
/// that was never steadied, or steadied with no weave to remove, no scratch is repaired. The
/// scene carries a line its motion fits while the film's misses. Otherwise no cue decides.
pub fn carrier(sightings: &[Sighting]) -> Carrier {
    if sightings.is_empty() {
        return Carrier::Unknown;
    }
    let offsets = |f: &dyn Fn(&Sighting) -> f32| -> Vec<(f32, f32)> {
        sightings.iter().map(|s| (s.dt, f(s))).collect()
    };
    let scene = sightings
        .iter()
        .fold(0.0f32, |m, s| m.max((s.at - s.scene).abs()));
    let film = off_smooth(&offsets(&|s| s.at - s.film), DRIFT_MAX);
    let steady = off_smooth(&offsets(&|s| s.at), f32::INFINITY);
    if sightings.len() >= 3 && film <= FIT && scene >= APART && steady >= APART {
        Carrier::Film
    } else if scene <= FIT && film >= APART {
        Carrier::Scene
    } else {
        Carrier::Unknown
    }
}

/// One neighbour's sightings of a run's bands (`bands` of them) pooled into one, where they
/// agree: seen in half the bands at least, two thirds of those within [`FIT`] of their median
/// (the bands that saw something else, a texture line or the scene's, are left out). Bands
/// that disagree more than that leave the neighbour without a sighting.
fn pool(got: &[Sighting], bands: usize) -> Option<Sighting> {
    if got.is_empty() || 2 * got.len() < bands {
        return None;
    }
    let mut at: Vec<f32> = got.iter().map(|s| s.at).collect();
    let mid = median(&mut at);
    let agree: Vec<&Sighting> = got.iter().filter(|s| (s.at - mid).abs() <= FIT).collect();
    if 3 * agree.len() < 2 * got.len() {
        return None;
    }
    let n = agree.len() as f32;
    let mean = |f: fn(&Sighting) -> f32| agree.iter().map(|s| f(s)).sum::<f32>() / n;
    Some(Sighting {
        at: mean(|s| s.at),
        scene: mean(|s| s.scene),
        film: mean(|s| s.film),
        dt: got[0].dt,
    })
}

/// Runs of `all` (one frame's candidates) over consecutive bands, one-band gaps bridged (a
/// faint scratch fades out in a band; the bridged band is repaired too, where the line was,
/// and the gate keeps what it did not reach), kept where they span at least `min_run` bands.
/// A real scratch may lean or bend a little, and a faint one's centroid wanders with the
/// texture under it, so a run follows candidates within 1.5 px. Strong candidates seed runs
/// first; a candidate belongs to one run.
fn runs(all: &[Candidate], min_run: usize) -> Vec<Vec<Candidate>> {
    let near =
        |a: &Candidate, b: &Candidate| a.sign == b.sign && (a.center - b.center).abs() <= 1.5;
    let mut seeds: Vec<&Candidate> = all.iter().collect();
    seeds.sort_by_key(|q| !q.strong);
    let mut taken: Vec<Candidate> = Vec::new();
    let mut out = Vec::new();
    for q in seeds {
        if taken.contains(q) {
            continue;
        }
        let mut run = vec![*q];
        let (mut top, mut bottom) = (q.band, q.band);
        for dir in [-1i64, 1] {
            let mut cur = *q;
            'walk: loop {
                for step in [1, 2] {
                    let band = cur.band as i64 + dir * step;
                    if let Some(r) = all
                        .iter()
                        .find(|r| r.band as i64 == band && near(r, &cur) && !taken.contains(r))
                    {
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
        if bottom - top + 1 >= min_run {
            taken.extend(run.iter().copied());
            out.push(run);
        }
    }
    out
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
    /// How many times the band's detection threshold the line stands out by.
    pub stand_out: f32,
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
    /// `limits[b * width + x]`: the most a repair may change a sample of column `x` of half
    /// band `b`: [`LIMIT_GAIN`] times how far the line stands out of the half band's column
    /// profile there. Beside the line (a door edge inside the repaired region) it stands out
    /// by nothing, and the picture is kept.
    pub limits: Vec<f32>,
    /// Per neighbour (nearest first: before[0], after[0], before[1], ...): its shift and where
    /// its own line candidates are (`bands * width`, 1 = avoid).
    pub neighbours: Vec<((f32, f32), Vec<u32>)>,
    /// Index of each used neighbour in the window's temporal order.
    pub order: Vec<usize>,
    /// Columns of lines that looked like scratches but that no cue could tell from scene
    /// lines: left alone.
    pub undecided: Vec<f32>,
}

impl Plan {
    /// `profiles` in temporal order, `center` the centre's index among them.
    pub fn build(profiles: &[Profiles], center: usize, params: &ScratchParams) -> Plan {
        let c = &profiles[center];
        let (w, h) = (c.width, c.height);
        let residuals: Vec<Vec<Residual>> = profiles
            .iter()
            .map(|p| (0..p.bands()).map(|b| Residual::of(p, b, params)).collect())
            .collect();
        let cands: Vec<Vec<Candidate>> = profiles
            .iter()
            .zip(&residuals)
            .map(|(p, r)| detect_in(p, r, params))
            .collect();
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
        let scene = |i: usize| SceneProfile::of(&profiles[i], &residuals[i]);
        let own_scene = scene(center);
        let shifts: Vec<(f32, f32)> = order
            .iter()
            .map(|&i| scene_shift(&own_scene, &scene(i)))
            .collect();
        let need = params.persistence.min(profiles.len());
        let clear = 2.0 * params.max_width as f32;
        // Each candidate's sightings in the neighbours, and whether it or one of them is
        // strong (a faint scratch flickers around the threshold from frame to frame).
        let row_of = |band: usize| ((2 * band + 1) * c.half).min(h) as f32;
        let residual = |i: usize, band: usize| &residuals[i][band];
        let seen: Vec<(Vec<Option<Sighting>>, bool)> = cands[center]
            .iter()
            .map(|q| {
                let mut strong = q.strong;
                let y = row_of(q.band);
                let own = c.film_shift(q.center, y);
                let sightings = order
                    .iter()
                    .zip(&shifts)
                    .map(|(&i, &(dx, _))| {
                        let dt = i as f32 - center as f32;
                        let film = profiles[i].film_shift(q.center, y) - own;
                        let seen_at = |at: f32| Sighting {
                            at,
                            scene: dx,
                            film,
                            dt,
                        };
                        // A faint line where the scene puts it (too faint there for a
                        // candidate: a groove at another sub-pixel phase) keeps the scene in
                        // play, whatever stands near the film's place, where the two places
                        // are apart by more than the line's own width.
                        let apart = (film - dx).abs() > 1.5 + 0.5 * (q.x1 - q.x0 + 1) as f32;
                        if apart && residual(i, q.band).shows(q.center + dx, q.sign, q.peak) {
                            return Some(seen_at(dx));
                        }
                        let r = sighting(&cands[i], q, dx, film, dt, clear)?;
                        strong |= r.strong;
                        Some(seen_at(r.center - q.center))
                    })
                    .collect();
                (sightings, strong)
            })
            .collect();
        // A scratch runs a good part of the height at one column: runs of candidates over
        // consecutive bands, at least [`MIN_LENGTH`] of the height (and two bands). Each run is
        // judged whole, from its bands' sightings pooled per neighbour, which steadies the
        // centroids enough to see a weave of under a pixel.
        let min_run = (h as f32 * MIN_LENGTH / c.band() as f32).ceil().max(2.0) as usize;
        let min_run = min_run.min(c.bands());
        let mut accepted: Vec<Candidate> = Vec::new();
        let mut undecided_at: Vec<f32> = Vec::new();
        for run in runs(&cands[center], min_run) {
            let members: Vec<usize> = run
                .iter()
                .filter_map(|r| cands[center].iter().position(|q| q == r))
                .collect();
            if !members.iter().any(|&m| seen[m].1) {
                continue;
            }
            let pooled: Vec<Sighting> = (0..order.len())
                .filter_map(|k| {
                    let got: Vec<Sighting> = members.iter().filter_map(|&m| seen[m].0[k]).collect();
                    pool(&got, members.len())
                })
                .collect();
            if 1 + pooled.len() < need {
                continue;
            }
            match carrier(&pooled) {
                Carrier::Film => accepted.extend(run),
                // Lines no cue could place (a thin pole in a locked-off shot, a scratch on a
                // scan that was never steadied): left alone, and named in the record.
                Carrier::Unknown => {
                    let n = members.len() as f32;
                    undecided_at.push(
                        members
                            .iter()
                            .map(|&m| cands[center][m].center)
                            .sum::<f32>()
                            / n,
                    )
                }
                Carrier::Scene => {}
            }
        }
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
        let mut limits = vec![0.0f32; halves * w];
        for q in &accepted {
            let (x0, x1) = q.region(w);
            lines.push(Line {
                band: q.band,
                center: q.center,
                x0,
                x1,
                sign: q.sign,
                stand_out: q.peak / residuals[center][q.band].weak.max(f32::MIN_POSITIVE),
            });
            let id = lines.len() as u32;
            let first = 2 * q.band;
            let last = (2 * q.band + 1).min(halves - 1);
            let mut covered: Vec<usize> = (first..=last).collect();
            covered.extend(grow(q, first as i64 - 1, -1));
            covered.extend(grow(q, last as i64 + 1, 1));
            for hb in covered {
                labels[hb * w + x0..=hb * w + x1].fill(id);
                for x in x0..=x1 {
                    let stands = (q.sign as f32 * half_res[hb][x]).max(0.0);
                    limits[hb * w + x] = LIMIT_GAIN * stands;
                }
            }
        }
        // The repair reads the nearest neighbours only.
        let repairs = order
            .iter()
            .take_while(|&&i| i.abs_diff(center) <= REPAIR_RADIUS)
            .count();
        order.truncate(repairs);
        let neighbours = order
            .iter()
            .zip(&shifts)
            .map(|(&i, &s)| {
                let mut avoid = vec![0u32; halves * w];
                for q in &cands[i] {
                    // Its core and a pixel: its faint skirts cost less than losing the source.
                    // A half band beyond its band each way: a scratch that ends mid-band is
                    // too faint there to stand as a band's candidate.
                    let (x0, x1) = (q.x0.saturating_sub(1), (q.x1 + 1).min(w - 1));
                    for hb in (2 * q.band).saturating_sub(1)..(2 * q.band + 3).min(halves) {
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
            limits,
            neighbours,
            order,
            undecided: undecided_at,
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
    repaired: RepairLog,
    /// The repairs to leave out.
    veto: Veto,
    /// Per frame, the columns of the lines left alone as undecided ([`Plan::undecided`]).
    undecided: Mutex<BTreeMap<i64, Vec<f32>>>,
}

impl Scratch {
    pub fn new(params: ScratchParams) -> Result<Self> {
        params.validate()?;
        Ok(Scratch {
            veto: Veto::of("scratch", &params.veto)?,
            params,
            repaired: Default::default(),
            undecided: Default::default(),
        })
    }

    pub fn from_table(table: &toml::Table) -> Result<Self> {
        let params: ScratchParams = table.clone().try_into().context(
            "invalid parameters for stage 'scratch' \
             (keys: polarity = \"bright\" | \"dark\" | \"both\", max_width, sensitivity, \
             persistence, consistency, emit_masks, veto)",
        )?;
        Self::new(params)
    }

    /// Log what the plan repaired in frame `meta` (`samples` gives the input and output at
    /// sample indices), write its mask when `emit_masks` is set, and return the samples to put
    /// back for the vetoed repairs.
    fn settle(
        &self,
        plan: &Plan,
        meta: &FrameMeta,
        planes: usize,
        samples: impl FnOnce(&[u32]) -> Result<(Vec<f32>, Vec<f32>)>,
    ) -> Result<Revert> {
        let mut mask = plan.mask();
        if let (Some(n), false) = (meta.number, plan.undecided.is_empty()) {
            let mut log = self.undecided.lock().unwrap_or_else(|p| p.into_inner());
            log.insert(n, plan.undecided.clone());
        }
        let at = Repaired {
            stage: "scratch",
            meta,
            width: plan.width,
            height: plan.height,
            planes,
        };
        // A region's confidence: its strongest line's.
        let stand_out = |r: &Region, _: f32| {
            r.pixels
                .iter()
                .map(|&p| {
                    let (x, y) = (p as usize % plan.width, p as usize / plan.width);
                    match plan.labels[(y / plan.band) * plan.width + x] {
                        0 => 0.0,
                        l => plan.lines[l as usize - 1].stand_out,
                    }
                })
                .fold(0.0, f32::max)
        };
        let revert = self
            .repaired
            .settle(&at, &mut mask, &self.veto, stand_out, samples)?;
        if let (Some(dir), Some(n)) = (&self.params.emit_masks, meta.number) {
            super::write_mask(dir, "scratch", n, plan.width, plan.height, &mask)?;
        }
        Ok(revert)
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

    fn repairs(&self) -> Vec<Repair> {
        self.repaired.repairs()
    }

    /// Pixels and line regions repaired, pixels the harm guard refused and repairs vetoed, per
    /// frame; and the lines left alone because no cue told them from scene lines (frame:
    /// columns).
    fn report(&self) -> Option<serde_json::Value> {
        let undecided = self.undecided.lock().unwrap_or_else(|p| p.into_inner());
        let frames: serde_json::Map<String, serde_json::Value> = undecided
            .iter()
            .map(|(n, at)| (n.to_string(), serde_json::json!(at)))
            .collect();
        Some(serde_json::json!({
            "repaired": self.repaired.json(&self.veto),
            "undecided_lines": {
                "lines": undecided.values().map(Vec::len).sum::<usize>(),
                "frames": frames,
            },
        }))
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
        let c = window.center;
        let neighbours: Vec<&Frame> = plan.order.iter().map(|&i| frames[i]).collect();
        let (mut out, refused) = cpu::repair(c, &neighbours, &plan, &self.params);
        let revert = self.settle(&plan, &c.meta, c.planes, |idx| {
            Ok(cpu_samples(c, &out, idx))
        })?;
        revert.apply_cpu(&mut out);
        self.repaired.refused(c.meta.number, refused);
        Ok(out)
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
        let c = window.center;
        let neighbours: Vec<&GpuFrame> = plan.order.iter().map(|&i| frames[i]).collect();
        let (out, refused) = gpu::repair(gpu, c, &neighbours, &plan, &self.params)?;
        let revert = self.settle(&plan, &c.meta, c.planes, |idx| {
            Ok((gpu.gather(c, idx)?, gpu.gather(&out, idx)?))
        })?;
        revert.apply_gpu(gpu, &out)?;
        self.repaired.refused(c.meta.number, refused);
        Ok(out)
    }
}
