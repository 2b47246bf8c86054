//! What `colour` measures: per-frame statistics from a thumbnail of block means (robust
//! percentiles per channel, the neutral axis of likely-grey pixels), smoothed within the shot,
//! and the per-channel curves they give.

use std::hash::{Hash, Hasher};

use super::{ColourParams, Model, Target};
use crate::stages::deflicker::cuts::{self, Thumbnail};

/// Blocks along the longer side of a thumbnail: enough samples for a 0.5 % percentile to rest
/// on a few hundred blocks, few enough that the GPU reduction downloads little.
pub const THUMB_SIDE: usize = 160;
/// Lowest value the density domain reads (about 3.6 density): below it `log10` would run off.
pub const FLOOR: f32 = 1.0 / 4096.0;
/// Bins of the neutral axis along the grey scale.
const BINS: usize = 8;

/// How a frame is cut into blocks: deflicker's grid, finer.
pub use crate::stages::deflicker::analysis::Geometry;

/// The block grid colour measures on: about [`THUMB_SIDE`] blocks along the longer side.
pub fn geometry(width: usize, height: usize, planes: usize) -> Geometry {
    Geometry::with_side(width, height, planes, THUMB_SIDE)
}

/// Which domain the curves work in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Domain {
    /// Code values as they are (the `curves` model, and `dye` on log scans, whose code values
    /// already stand for density).
    Code,
    /// `log10` of the code value, i.e. minus a density up to a constant factor (`dye` on
    /// linear and display-referred frames: fading scales dye density, a power law there).
    Log,
}

impl Domain {
    pub fn to(self, v: f32) -> f32 {
        match self {
            Domain::Code => v,
            Domain::Log => v.max(FLOOR).log10(),
        }
    }

    pub fn from(self, x: f64) -> f64 {
        match self {
            Domain::Code => x,
            Domain::Log => 10f64.powf(x),
        }
    }
}

/// One plane's measure: black and white ends (percentiles, in the domain), and the neutral-axis
/// correction applied to the normalised value `t = (x - black) / (white - black)`:
/// `a * t^e + b` (`e = 1` for `dye`, whose correction stays affine in density; `t^e` is `t`
/// for `t <= 0`).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct PlaneStats {
    pub black: f64,
    pub white: f64,
    pub a: f64,
    pub b: f64,
    pub e: f64,
}

/// A frame's measure: per plane, `None` where the plane is flat (nothing to measure).
#[derive(Clone, Debug, PartialEq)]
pub struct FrameStats {
    pub planes: Vec<Option<PlaneStats>>,
    /// Likely-grey blocks the neutral axis was fitted on (0 where it was not).
    pub grey_blocks: usize,
    /// Luma thumbnail for the cut detector.
    pub luma: Thumbnail,
    /// Content hash of the thumbnail, to cache pair decisions.
    pub hash: u64,
}

/// Measure one frame from its block means (planar).
pub fn measure(geo: &Geometry, means: &[f32], p: &ColourParams, domain: Domain) -> FrameStats {
    let n = geo.len();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (geo.tw, geo.th, geo.planes).hash(&mut h);
    for v in means {
        v.to_bits().hash(&mut h);
    }
    let luma = Thumbnail::new(geo.tw, geo.th, cuts::luma(means, n, geo.planes));
    let xs: Vec<Vec<f32>> = (0..geo.planes)
        .map(|c| {
            means[c * n..(c + 1) * n]
                .iter()
                .map(|&v| domain.to(v))
                .collect()
        })
        .collect();
    let mut planes: Vec<Option<PlaneStats>> = xs
        .iter()
        .map(|x| {
            let (black, white) = ends(x, p.percentiles);
            (white - black > 1e-4).then_some(PlaneStats {
                black,
                white,
                a: 1.0,
                b: 0.0,
                e: 1.0,
            })
        })
        .collect();
    let mut grey_blocks = 0;
    if geo.planes == 3 && p.neutral > 0.0 && planes.iter().all(|s| s.is_some()) {
        let s: Vec<PlaneStats> = planes.iter().map(|s| s.expect("checked")).collect();
        if let Some((fits, count)) = neutral_axis(&xs, &s, p.model, p.neutral) {
            grey_blocks = count;
            for (plane, fit) in planes.iter_mut().zip(fits) {
                if let Some(st) = plane {
                    (st.a, st.b, st.e) = fit;
                }
            }
        }
    }
    FrameStats {
        planes,
        grey_blocks,
        luma,
        hash: h.finish(),
    }
}

/// Percentiles `lo`, `hi` (in percent) of `x`, finite values only.
fn ends(x: &[f32], pct: [f64; 2]) -> (f64, f64) {
    let mut v: Vec<f32> = x.iter().copied().filter(|v| v.is_finite()).collect();
    if v.is_empty() {
        return (0.0, 0.0);
    }
    v.sort_by(f32::total_cmp);
    (percentile(&v, pct[0]), percentile(&v, pct[1]))
}

/// Percentile of sorted values, linear between ranks.
fn percentile(sorted: &[f32], pct: f64) -> f64 {
    let r = (pct / 100.0).clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let i = r.floor() as usize;
    let j = (i + 1).min(sorted.len() - 1);
    let f = r - i as f64;
    sorted[i] as f64 * (1.0 - f) + sorted[j] as f64 * f
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// A channel's neutral-axis correction `(a, b, e)`: `t -> a * t^e + b`.
type Bend = (f64, f64, f64);

/// The neutral axis: blocks whose channels, each normalised by its own ends, nearly agree are
/// taken as grey; binned along the grey scale, their per-channel medians against the bin's
/// mean level say how each channel must bend for greys to be grey. Returns per channel the
/// fitted `(a, b)` and the number of grey blocks, or `None` with too few of them.
fn neutral_axis(
    xs: &[Vec<f32>],
    s: &[PlaneStats],
    model: Model,
    weight: f64,
) -> Option<(Vec<Bend>, usize)> {
    let n = xs[0].len();
    let t: Vec<[f64; 3]> = (0..n)
        .map(|i| {
            std::array::from_fn(|c| (xs[c][i] as f64 - s[c].black) / (s[c].white - s[c].black))
        })
        .filter(|v: &[f64; 3]| v.iter().all(|x| x.is_finite()))
        .collect();
    let bend = |fit: (f64, f64, f64), v: f64| {
        let p = if v > 0.0 { v.powf(fit.2) } else { v };
        fit.0 * p + fit.1
    };
    let mut fits = vec![(1.0, 0.0, 1.0); 3];
    let mut count = 0;
    // The selection of greys depends on the fit: a few rounds let true greys that the ends
    // alone left tinted join in.
    for _ in 0..3 {
        let mut cand: Vec<(usize, f64, f64)> = Vec::new(); // (block, mean level, chroma)
        for (i, v) in t.iter().enumerate() {
            let u: [f64; 3] = std::array::from_fn(|c| bend(fits[c], v[c]));
            let m = (u[0] + u[1] + u[2]) / 3.0;
            if !(0.04..=0.96).contains(&m) {
                continue;
            }
            let hi = u[0].max(u[1]).max(u[2]);
            let lo = u[0].min(u[1]).min(u[2]);
            cand.push((i, m, hi - lo));
        }
        if cand.len() < 64 {
            break;
        }
        // The least coloured quarter, and never what is plainly coloured.
        let mut chroma: Vec<f64> = cand.iter().map(|c| c.2).collect();
        chroma.sort_by(f64::total_cmp);
        let limit = chroma[chroma.len() / 4].min(0.12);
        let grey: Vec<&(usize, f64, f64)> = cand.iter().filter(|c| c.2 <= limit).collect();
        if grey.len() < 32 {
            break;
        }
        // Per bin: (median t per channel, median mean level, count).
        let mut points: Vec<([f64; 3], f64, usize)> = Vec::new();
        for k in 0..BINS {
            let (lo, hi) = (
                0.04 + 0.92 * k as f64 / BINS as f64,
                0.04 + 0.92 * (k + 1) as f64 / BINS as f64,
            );
            let in_bin: Vec<&&(usize, f64, f64)> =
                grey.iter().filter(|c| c.1 >= lo && c.1 < hi).collect();
            if in_bin.len() < 8 {
                continue;
            }
            let mut m: Vec<f64> = in_bin.iter().map(|c| c.1).collect();
            let tc: [f64; 3] = std::array::from_fn(|ch| {
                let mut v: Vec<f64> = in_bin.iter().map(|c| t[c.0][ch]).collect();
                median(&mut v)
            });
            points.push((tc, median(&mut m), in_bin.len()));
        }
        if points.is_empty() {
            break;
        }
        let total: f64 = points.iter().map(|p| p.2 as f64).sum();
        fits = (0..3)
            .map(|ch| {
                // Each end weighs 1; the grey axis weighs `2 * neutral` in all.
                let pts: Vec<(f64, f64, f64)> = points
                    .iter()
                    .map(|p| (p.0[ch], p.1, 2.0 * weight * p.2 as f64 / total))
                    .collect();
                match model {
                    Model::Dye => {
                        let (a, b, _) = fit_affine(&pts, 1.0);
                        (a, b, 1.0)
                    }
                    Model::Curves => fit_power(&pts),
                }
            })
            .collect();
        count = grey.len();
    }
    (count > 0).then_some((fits, count))
}

/// Weighted least squares `y = a * x^e + b` for a given `e` through `pts` `(x, y, w)` and the
/// two ends (0, 0) and (1, 1) at weight 1 each; the slope is kept within 0.5..2. Returns
/// `(a, b, weighted squared residual)`.
fn fit_affine(pts: &[(f64, f64, f64)], e: f64) -> (f64, f64, f64) {
    let pw = |x: f64| if x > 0.0 { x.powf(e) } else { x };
    let all: Vec<(f64, f64, f64)> = pts
        .iter()
        .map(|&(x, y, w)| (pw(x), y, w))
        .chain([(0.0, 0.0, 1.0), (1.0, 1.0, 1.0)])
        .collect();
    let (mut sw, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(x, y, w) in &all {
        sw += w;
        sx += w * x;
        sy += w * y;
        sxx += w * x * x;
        sxy += w * x * y;
    }
    let den = sw * sxx - sx * sx;
    let (a, b) = if den.abs() < 1e-12 {
        (1.0, 0.0)
    } else {
        let a = ((sw * sxy - sx * sy) / den).clamp(0.5, 2.0);
        (a, (sy - a * sx) / sw)
    };
    let r = all
        .iter()
        .map(|&(x, y, w)| w * (a * x + b - y).powi(2))
        .sum();
    (a, b, r)
}

/// `y = a * x^e + b` through the points and the ends: the best `e` of a log-spaced grid over
/// 1/3..3 (a little weight ties it to 1 where the axis says little), `a` and `b` by
/// [`fit_affine`].
fn fit_power(pts: &[(f64, f64, f64)]) -> (f64, f64, f64) {
    let mut best = (1.0, 0.0, 1.0, f64::INFINITY);
    for k in -48..=48 {
        let e = 3f64.powf(k as f64 / 48.0);
        let (a, b, r) = fit_affine(pts, e);
        let r = r + 1e-4 * e.ln().powi(2);
        if r < best.3 {
            best = (a, b, e, r);
        }
    }
    (best.0, best.1, best.2)
}

/// Per-plane curve, ready to apply (see [`super::cpu::curve`]).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Curve {
    /// `out = k * v^e` for `v >= FLOOR`, `slope * v` below (dye model on linear or video
    /// code values: an affine map of density).
    Power { k: f32, e: f32, slope: f32 },
    /// `out = g * v + o` (dye model on log scans).
    Affine { g: f32, o: f32 },
    /// `out = v + s * (lo + (hi - lo) * t' - v)`, `t = (v - black) * inv`, `t' = t^e` for
    /// `t > 0` else `t` (the curves model).
    Levels {
        black: f32,
        inv: f32,
        e: f32,
        lo: f32,
        hi: f32,
        s: f32,
    },
}

impl Curve {
    pub const IDENTITY: Curve = Curve::Affine { g: 1.0, o: 0.0 };
}

/// The smoothed measure of the centre frame and the curves it gives.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Estimate {
    /// Frames of the centre's shot that were used (the centre included).
    pub frames_used: usize,
    /// Smoothed per-plane measure (`None`: flat over the whole window, left alone).
    pub planes: Vec<Option<PlaneStats>>,
    /// Target black and white per plane, as code values.
    pub target_black: Vec<f64>,
    pub target_white: Vec<f64>,
    pub curves: Vec<Curve>,
}

/// The window's frames (temporal order) that belong to the centre's shot: a cut between two
/// neighbours stops the walk outward. `cut(i, j)` says whether neighbours `i`, `j` are
/// different shots.
pub fn shot_span(
    len: usize,
    center: usize,
    mut cut: impl FnMut(usize, usize) -> bool,
) -> (usize, usize) {
    let mut lo = center;
    while lo > 0 && !cut(lo - 1, lo) {
        lo -= 1;
    }
    let mut hi = center;
    while hi + 1 < len && !cut(hi, hi + 1) {
        hi += 1;
    }
    (lo, hi)
}

/// Smooth the stats of frames `lo..=hi` (tricube weights by distance from the centre, over
/// `radius`), set the targets and make the curves.
pub fn estimate(
    stats: &[&FrameStats],
    center: usize,
    span: (usize, usize),
    radius: usize,
    p: &ColourParams,
    domain: Domain,
) -> Estimate {
    let planes = stats[center].planes.len();
    let mut smoothed: Vec<Option<PlaneStats>> = Vec::with_capacity(planes);
    for c in 0..planes {
        let (mut sw, mut acc) = (0.0, [0.0f64; 5]);
        for (k, st) in stats.iter().enumerate().take(span.1 + 1).skip(span.0) {
            let Some(ps) = st.planes[c] else { continue };
            let d = (k as f64 - center as f64).abs() / (radius as f64 + 1.0);
            let w = (1.0 - d * d * d).powi(3);
            sw += w;
            for (a, v) in acc.iter_mut().zip([ps.black, ps.white, ps.a, ps.b, ps.e]) {
                *a += w * v;
            }
        }
        smoothed.push((sw > 0.0).then(|| PlaneStats {
            black: acc[0] / sw,
            white: acc[1] / sw,
            a: acc[2] / sw,
            b: acc[3] / sw,
            e: acc[4] / sw,
        }));
    }
    let known: Vec<PlaneStats> = smoothed.iter().flatten().copied().collect();
    // Automatic targets: the deepest black and brightest white among the channels (the dye
    // that lost least, the base least stained), the black no lighter than `max_black`.
    let auto_black = known
        .iter()
        .map(|s| s.black)
        .fold(f64::INFINITY, f64::min)
        .min(domain.to(p.max_black as f32) as f64);
    let auto_white = known
        .iter()
        .map(|s| s.white)
        .fold(f64::NEG_INFINITY, f64::max);
    let target = |t: &Target, c: usize, auto: f64| match t.get(c) {
        Some(v) => domain.to(v as f32) as f64,
        None => auto,
    };
    let mut curves = Vec::with_capacity(planes);
    let (mut tb_code, mut tw_code) = (Vec::new(), Vec::new());
    for (c, st) in smoothed.iter().enumerate() {
        let Some(st) = st else {
            curves.push(Curve::IDENTITY);
            tb_code.push(f64::NAN);
            tw_code.push(f64::NAN);
            continue;
        };
        let tb = target(&p.black, c, auto_black);
        let tw = target(&p.white, c, auto_white);
        tb_code.push(domain.from(tb));
        tw_code.push(domain.from(tw));
        let s = p.strength;
        let range = st.white - st.black;
        curves.push(match p.model {
            Model::Dye => {
                // x' = tb + (a * (x - black) / range + b) * (tw - tb) = g * x + o, blended
                // towards the identity by strength.
                let g = st.a * (tw - tb) / range;
                let o = tb + (st.b - st.a * st.black / range) * (tw - tb);
                let (g, o) = (1.0 + s * (g - 1.0), s * o);
                match domain {
                    Domain::Code => Curve::Affine {
                        g: g as f32,
                        o: o as f32,
                    },
                    Domain::Log => {
                        let k = 10f64.powf(o);
                        let floor = FLOOR as f64;
                        Curve::Power {
                            k: k as f32,
                            e: g as f32,
                            slope: (k * floor.powf(g) / floor) as f32,
                        }
                    }
                }
            }
            Model::Curves => Curve::Levels {
                // lo + (hi - lo) * (a * t^e + b), with a and b folded into the ends.
                black: st.black as f32,
                inv: (1.0 / range) as f32,
                e: st.e as f32,
                lo: (tb + (tw - tb) * st.b) as f32,
                hi: (tb + (tw - tb) * (st.a + st.b)) as f32,
                s: s as f32,
            },
        });
    }
    Estimate {
        frames_used: span.1 - span.0 + 1,
        planes: smoothed,
        target_black: tb_code,
        target_white: tw_code,
        curves,
    }
}

/// Whether neighbours are different shots.
pub fn is_cut(a: &FrameStats, b: &FrameStats, threshold: f64) -> bool {
    cuts::is_cut(&cuts::compare(&a.luma, &b.luma), threshold)
}
