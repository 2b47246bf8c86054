//! The camera path inside a window and its smoothing: from the motions between neighbouring
//! frames to the one warp of the centre frame (and the warps that bring its neighbours to the
//! same place, for filling the borders).
//!
//! 1. **Chain** ([`chain`]): starting at the centre (the identity), the pair motions are
//!    composed outwards, giving each frame of the centre's shot its *pose*: where a point of the
//!    centre frame lies in that frame. A cut or a lost registration ends the shot on that side,
//!    so nothing from another shot reaches the centre.
//! 2. **Smooth** ([`smooth`]): each pose is four numbers in pixels (translation, rotation and
//!    log-scale times the half-diagonal), fitted over time by a local polynomial (degree
//!    `degree`: 1 keeps steady pans, 2 also keeps accelerating ones; lower where the shot has
//!    too few frames) with Gaussian weights, made robust by Tukey's biweight on the pose
//!    residuals (scale 1.4826 × their median, at least [`NOISE_FLOOR_PX`]) so that a jump at a
//!    splice or a torn perforation is an outlier and does not drag the path. The fit's value at
//!    the centre is where the centre frame should be. Two such fits are made, a long one
//!    (`sigma`, half the window) and a short one (`short_sigma`): the long one is used unless it
//!    strays from the short one by more than `follow` px, which noise does not explain and a
//!    camera move the long window bends does; there the short one takes over.
//! 3. **Correction** ([`plan`]): the smoothed pose `S`, scaled by `strength` and limited so no
//!    pixel moves more than `max_shift`; the output is `centre(S⁻¹(y))`, and neighbour `j`
//!    contributes `frame_j(T_j(S⁻¹(y)))`, photometrically matched by the chained gain and lift.

use serde::Serialize;

use super::motion::{PairMotion, Similarity};

/// Frames nearest the centre (either side) offered to the border fill.
pub const FILL_NEIGHBOURS: usize = 4;
/// Robust scale of the path residuals, px, at least: jitter below this is never an outlier.
pub const NOISE_FLOOR_PX: f64 = 0.1;
const TUKEY: f64 = 4.685;
const ROBUST_ITERATIONS: usize = 4;

/// A frame of the centre's shot inside the window.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Node {
    /// Position relative to the centre (negative before).
    pub offset: isize,
    /// Where a point of the centre frame is in this frame.
    pub pose: Similarity,
    /// `frame ≈ gain * centre + lift` (luma).
    pub gain: f64,
    pub lift: f64,
}

/// The poses of the centre's shot. `pairs[i]` is the motion from frame `i` to frame `i + 1`
/// of the window in temporal order; `center` is the centre's index. Sorted by offset.
pub fn chain(pairs: &[PairMotion], center: usize) -> Vec<Node> {
    let centre = Node {
        offset: 0,
        pose: Similarity::IDENTITY,
        gain: 1.0,
        lift: 0.0,
    };
    // Before the centre: frame i = M⁻¹(frame i + 1), where M is the motion from i to i + 1.
    let mut before = Vec::new();
    let mut cur = centre;
    for p in pairs[..center].iter().rev() {
        let Some(m) = p.motion else { break };
        if p.gain.is_nan() || p.gain <= 0.0 {
            break;
        }
        cur = Node {
            offset: cur.offset - 1,
            pose: cur.pose.then(&m.inverse()),
            gain: cur.gain / p.gain,
            lift: (cur.lift - p.lift) / p.gain,
        };
        before.push(cur);
    }
    let mut nodes: Vec<Node> = before.into_iter().rev().collect();
    nodes.push(centre);
    let mut cur = centre;
    for p in &pairs[center..] {
        let Some(m) = p.motion else { break };
        cur = Node {
            offset: cur.offset + 1,
            pose: cur.pose.then(&m),
            gain: p.gain * cur.gain,
            lift: p.gain * cur.lift + p.lift,
        };
        nodes.push(cur);
    }
    nodes
}

/// How the path is smoothed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Smoothing {
    /// Standard deviation of the Gaussian weights of the long smoothing, frames.
    pub sigma: f64,
    /// The same for the short smoothing the path follows where the long one strays.
    pub short_sigma: f64,
    /// Disagreement (px) between the long and the short smoothing from which the short one
    /// takes over; fully from twice this. Infinite: the long one only.
    pub follow: f64,
    /// Degree of the local polynomial (1 or 2).
    pub degree: usize,
    /// Half-diagonal of the frame, px: rotation and log-scale are measured at this radius.
    pub radius: f64,
}

/// The smoothed pose at the centre: the long smoothing ([`fit_path`] with `sigma`), unless it
/// strays from the short one (`short_sigma`) by more than `follow` px — a camera move the long
/// window would bend — where the short one takes over, gradually up to `2 * follow`. A two-step
/// Lepski rule: the long estimate is kept while it agrees with the less biased short one within
/// what noise explains.
pub fn smooth(nodes: &[Node], s: &Smoothing) -> Similarity {
    let long = fit_path(nodes, s.sigma, s.degree, s.radius);
    if !(s.follow.is_finite()) || s.short_sigma >= s.sigma {
        return Similarity::from_px(long, s.radius);
    }
    let short = fit_path(nodes, s.short_sigma, s.degree, s.radius);
    let d = (0..4)
        .map(|i| (long[i] - short[i]).powi(2))
        .sum::<f64>()
        .sqrt();
    let k = if s.follow <= 0.0 {
        1.0
    } else {
        ((d - s.follow) / s.follow).clamp(0.0, 1.0)
    };
    Similarity::from_px(
        std::array::from_fn(|i| long[i] * (1.0 - k) + short[i] * k),
        s.radius,
    )
}

/// The robust local polynomial fit of the poses (as [`Similarity::to_px`]) at offset 0.
pub fn fit_path(nodes: &[Node], sigma: f64, degree: usize, radius: f64) -> [f64; 4] {
    let s = Smoothing {
        sigma,
        short_sigma: sigma,
        follow: f64::INFINITY,
        degree,
        radius,
    };
    // Frames beyond 3 sigma carry no weight worth the arithmetic.
    let nodes: Vec<Node> = nodes
        .iter()
        .filter(|n| (n.offset as f64).abs() <= (3.0 * s.sigma).max(1.0))
        .copied()
        .collect();
    if nodes.len() < 2 {
        return [0.0; 4];
    }
    let degree = s.degree.min(nodes.len() - 1);
    let ys: Vec<[f64; 4]> = nodes.iter().map(|n| n.pose.to_px(s.radius)).collect();
    let ts: Vec<f64> = nodes.iter().map(|n| n.offset as f64).collect();
    let base: Vec<f64> = ts
        .iter()
        .map(|t| (-t * t / (2.0 * s.sigma * s.sigma)).exp())
        .collect();
    // The robust iterations start from Siegel's repeated-median line, which half the frames
    // can be outliers without moving, so that a jump near the window's edge cannot bend the
    // first fit enough to hide from the weights.
    let mut coef = repeated_median(&ts, &ys);
    for it in 0..ROBUST_ITERATIONS {
        let res: Vec<f64> = ts
            .iter()
            .zip(&ys)
            .map(|(&t, y)| {
                (0..4)
                    .map(|d| {
                        let e = y[d] - (coef[d][0] + coef[d][1] * t + coef[d][2] * t * t);
                        e * e
                    })
                    .sum::<f64>()
                    .sqrt()
            })
            .collect();
        let mut sorted = res.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let med = sorted[sorted.len() / 2];
        let cut = TUKEY * (1.4826 * med).max(NOISE_FLOOR_PX);
        let w: Vec<f64> = res
            .iter()
            .zip(&base)
            .map(|(&r, &g)| {
                if r >= cut {
                    0.0
                } else {
                    let u = 1.0 - (r / cut).powi(2);
                    g * u * u
                }
            })
            .collect();
        match fit(&ts, &ys, &w, degree) {
            Some(c) => coef = c,
            None if it == 0 => {
                // Too few frames keep weight for this degree: the plain weighted fit.
                match fit(&ts, &ys, &base, degree) {
                    Some(c) => coef = c,
                    None => return [0.0; 4],
                }
                break;
            }
            None => break,
        }
    }
    [coef[0][0], coef[1][0], coef[2][0], coef[3][0]]
}

/// Siegel's repeated-median line per dimension: slope `med_i med_j (y_j - y_i) / (t_j - t_i)`,
/// intercept `med_i (y_i - slope t_i)`.
fn repeated_median(ts: &[f64], ys: &[[f64; 4]]) -> [[f64; 3]; 4] {
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        if n == 0 {
            0.0
        } else if n % 2 == 1 {
            v[n / 2]
        } else {
            0.5 * (v[n / 2 - 1] + v[n / 2])
        }
    };
    let mut out = [[0f64; 3]; 4];
    for (d, o) in out.iter_mut().enumerate() {
        let mut outer: Vec<f64> = (0..ts.len())
            .map(|i| {
                let mut inner: Vec<f64> = (0..ts.len())
                    .filter(|&j| j != i)
                    .map(|j| (ys[j][d] - ys[i][d]) / (ts[j] - ts[i]))
                    .collect();
                median(&mut inner)
            })
            .collect();
        let slope = if ts.len() > 1 {
            median(&mut outer)
        } else {
            0.0
        };
        let mut icpt: Vec<f64> = ts.iter().zip(ys).map(|(&t, y)| y[d] - slope * t).collect();
        *o = [median(&mut icpt), slope, 0.0];
    }
    out
}

/// Weighted least-squares polynomial of `degree` through `(ts, ys[.][d])` for each of the four
/// dimensions: coefficients `[c0, c1, c2]` per dimension; `None` when singular.
fn fit(ts: &[f64], ys: &[[f64; 4]], w: &[f64], degree: usize) -> Option<[[f64; 3]; 4]> {
    let n = degree + 1;
    let mut m = [[0f64; 3]; 3];
    let mut b = [[0f64; 3]; 4];
    let mut used = 0;
    for ((&t, y), &wi) in ts.iter().zip(ys).zip(w) {
        if wi <= 0.0 {
            continue;
        }
        used += 1;
        let pw = [1.0, t, t * t];
        for i in 0..n {
            for j in 0..n {
                m[i][j] += wi * pw[i] * pw[j];
            }
            for d in 0..4 {
                b[d][i] += wi * pw[i] * y[d];
            }
        }
    }
    if used < n {
        return None;
    }
    let mut out = [[0f64; 3]; 4];
    for d in 0..4 {
        let x = solve3(m, b[d], n)?;
        out[d] = x;
    }
    Some(out)
}

/// The leading `n`x`n` system of `m x = b`, solved by [`super::motion::solve`].
fn solve3(m: [[f64; 3]; 3], b: [f64; 3], n: usize) -> Option<[f64; 3]> {
    let rows = m[..n].iter().map(|r| r[..n].to_vec()).collect();
    let x = super::motion::solve(rows, b[..n].to_vec(), 1e-10)?;
    let mut out = [0f64; 3];
    out[..n].copy_from_slice(&x);
    Some(out)
}

/// One source of the warp: where output pixel `y` (full-frame coordinates) is found in that
/// source, `C + map(y - C)`, and how its values are matched to the centre's.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Source {
    /// Index in the window's temporal order.
    pub frame: usize,
    pub map: Similarity,
    /// `centre ≈ (value - lift) * inv_gain`.
    pub inv_gain: f64,
    pub lift: f64,
}

/// The warp of one output frame: `sources[0]` is the centre, the rest are neighbours for the
/// border fill, nearest first.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Plan {
    /// The smoothed pose before strength and the `max_shift` limit.
    pub smoothed: Similarity,
    /// The correction applied: the output shows the centre frame moved by this.
    pub correction: Similarity,
    pub sources: Vec<Source>,
    /// Frames of the centre's shot inside the window, before and after it.
    pub used_before: usize,
    pub used_after: usize,
}

/// The warp for the centre of a window: see the module documentation. `center` is the
/// centre's index in temporal order; `width`, `height` the frame size.
pub fn plan(
    pairs: &[PairMotion],
    center: usize,
    smoothing: &Smoothing,
    strength: f64,
    max_shift: f64,
    width: usize,
    height: usize,
) -> Plan {
    let nodes = chain(pairs, center);
    let smoothed = smooth(&nodes, smoothing);
    let mut px = smoothed.to_px(smoothing.radius);
    px.iter_mut().for_each(|v| *v *= strength);
    let mut correction = Similarity::from_px(px, smoothing.radius);
    let moved = correction.max_displacement(width, height);
    if moved > max_shift && moved > 0.0 {
        let k = max_shift / moved;
        px.iter_mut().for_each(|v| *v *= k);
        correction = Similarity::from_px(px, smoothing.radius);
        // The corner displacement is not exactly linear in the parameters: shrink until it fits.
        while correction.max_displacement(width, height) > max_shift {
            px.iter_mut().for_each(|v| *v *= 0.999);
            correction = Similarity::from_px(px, smoothing.radius);
        }
    }
    let back = correction.inverse();
    let mut sources = vec![Source {
        frame: center,
        map: back,
        inv_gain: 1.0,
        lift: 0.0,
    }];
    let mut near: Vec<&Node> = nodes.iter().filter(|n| n.offset != 0).collect();
    // Nearest first; before the centre first among equals.
    near.sort_by_key(|n| (n.offset.unsigned_abs(), n.offset > 0));
    for n in near.into_iter().take(FILL_NEIGHBOURS) {
        if !(n.gain > 0.1 && n.gain < 10.0) {
            continue;
        }
        sources.push(Source {
            frame: (center as isize + n.offset) as usize,
            map: back.then(&n.pose),
            inv_gain: 1.0 / n.gain,
            lift: n.lift,
        });
    }
    Plan {
        smoothed,
        correction,
        sources,
        used_before: nodes.iter().filter(|n| n.offset < 0).count(),
        used_after: nodes.iter().filter(|n| n.offset > 0).count(),
    }
}
