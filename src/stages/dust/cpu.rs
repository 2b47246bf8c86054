//! CPU reference of `dust`: detection, mask cleanup, the pathological-motion check, the soft
//! repair mask and the repair, each a plain per-pixel function mirrored by one shader
//! (`shaders/dust_*.wgsl`). Neighbour slots are `[p1, n1, p2, n2]`: the frames one and two
//! before and after the centre, already compensated onto it by [`crate::motion`].

use rayon::prelude::*;

use super::Settings;
use crate::frame::Frame;

/// Candidate bits per pixel, written by [`detect`]; the shaders read the same layout from
/// `shaders/shared/dust.wgsl`.
pub const C_POS: u32 = 1;
pub const C_NEG: u32 = 2;
pub const C_STRONG: u32 = 4;
pub const P_POS: u32 = 8;
pub const P_NEG: u32 = 16;
pub const P_STRONG: u32 = 32;
pub const N_POS: u32 = 64;
pub const N_NEG: u32 = 128;
pub const N_STRONG: u32 = 256;
/// The centre lies outside its neighbours' range by a quarter of the threshold: may join the
/// mask next to detected dirt (its soft edge).
pub const C_WEAK: u32 = 512;
/// The candidate stands out only by the relaxed threshold (from one side, or in the border
/// band), or the motion failed around it: it stays dirt only if it is a spike in space as
/// well ([`spatial`]).
pub const C_SPATIAL: u32 = 1024;
/// Set by [`clean`] on a centre candidate kept for its strength alone, with no candidate of
/// its polarity beside it: one pixel (a spark, a rain drop), which a spike of one pixel on a
/// neighbouring frame may excuse ([`decide_pixel`]).
pub const C_LONE: u32 = 8192;
/// A neighbour-frame spike kept by [`clean`] for its strength alone (one pixel, nothing of its
/// polarity beside it) moves to its bit shifted by `LONE_SHIFT` (`P_POS << LONE_SHIFT`...):
/// evidence of motion only for a candidate as small ([`C_LONE`]).
pub const LONE_SHIFT: u32 = 8;

/// The luma planes detection reads: the centre, then `[p1, n1, p2, n2]` where present.
pub struct Lumas<'a> {
    pub width: usize,
    pub height: usize,
    pub center: &'a [f32],
    pub nb: [Option<&'a [f32]>; 4],
}

/// How far `v` lies outside the range of `a` and `b`: positive above, negative below, zero
/// inside.
pub fn outside(v: f32, a: f32, b: f32) -> f32 {
    let (lo, hi) = (a.min(b), a.max(b));
    if v > hi {
        v - hi
    } else if v < lo {
        v - lo
    } else {
        0.0
    }
}

/// Mean of `|a - b|` over the 3x3 neighbourhood of `(x, y)`, clamped at the edges: the local
/// disagreement of two frames (grain, unresolved motion) that raises the detection threshold.
fn disagreement(a: &[f32], b: &[f32], w: usize, h: usize, x: usize, y: usize) -> f32 {
    let mut s = 0.0f32;
    for j in -1i32..=1 {
        for i in -1i32..=1 {
            let xx = (x as i32 + i).clamp(0, w as i32 - 1) as usize;
            let yy = (y as i32 + j).clamp(0, h as i32 - 1) as usize;
            let k = yy * w + xx;
            s += (a[k] - b[k]).abs();
        }
    }
    s * (1.0 / 9.0)
}

/// Mean of `|a - b|` over the square of `radius` around `(x, y)`, clamped at the edges.
fn wide_disagreement(
    a: &[f32],
    b: &[f32],
    w: usize,
    h: usize,
    x: usize,
    y: usize,
    radius: usize,
) -> f32 {
    let r = radius as i32;
    let mut s = 0.0f32;
    for j in -r..=r {
        for i in -r..=r {
            let xx = (x as i32 + i).clamp(0, w as i32 - 1) as usize;
            let yy = (y as i32 + j).clamp(0, h as i32 - 1) as usize;
            let k = yy * w + xx;
            s += (a[k] - b[k]).abs();
        }
    }
    s / ((2 * r + 1) * (2 * r + 1)) as f32
}

/// Threshold factor at `(x, y)`: `edge_k` on the frame border, falling linearly to 1 at
/// `edge` pixels in. Picture entering or leaving view there (a handlebar swinging in, a
/// figure at the edge) is in no neighbour and looks just like dirt.
pub fn edge_factor(x: usize, y: usize, w: usize, h: usize, s: &Settings) -> f32 {
    if s.edge == 0 {
        return 1.0;
    }
    let d = x.min(y).min(w - 1 - x).min(h - 1 - y) as f32;
    1.0 + (s.edge_k - 1.0) * (1.0 - d / s.edge as f32).max(0.0)
}

/// How far `v` lies outside the range of the pair `(a, b)` at pixel `(x, y)`, and the local
/// threshold for it: `t0` plus `noise_factor` times the pair's local disagreement.
fn spike(
    v: &[f32],
    a: &[f32],
    b: &[f32],
    lm: &Lumas,
    x: usize,
    y: usize,
    s: &Settings,
) -> (f32, f32) {
    let k = y * lm.width + x;
    (outside(v[k], a[k], b[k]), threshold(a, b, lm, x, y, s))
}

/// The local threshold at `(x, y)` against the pair `(a, b)`: `t0` plus `noise_factor` times
/// their local disagreement.
fn threshold(a: &[f32], b: &[f32], lm: &Lumas, x: usize, y: usize, s: &Settings) -> f32 {
    s.t0 + s.noise_factor * disagreement(a, b, lm.width, lm.height, x, y)
}

/// `pos`/`neg` bits where `|d|` is above `thr`, `strong` above twice it.
fn spike_bits(d: f32, thr: f32, bits: [u32; 3]) -> u32 {
    let mut out = 0;
    if d > thr {
        out |= bits[0];
    }
    if d < -thr {
        out |= bits[1];
    }
    if d.abs() > 2.0 * thr {
        out |= bits[2];
    }
    out
}

/// Candidate bits of one pixel. The centre is a candidate where it lies outside the range of
/// its compensated neighbours one each side by more than the threshold, and those two agree
/// with each other to within half that distance; where the frames two away exist too, the
/// centre must
/// also lie outside their range, the same way, by half their threshold (a second opinion
/// that vetoes spikes made by a poorly compensated neighbour). For the pathological-motion
/// check the same test marks spikes of the frame before (against the one before it and the
/// centre) and after. From one side only ([`detection_pair`]), a spike under `one_sided` times
/// the threshold but over `spatial_scale` times it is marked [`C_SPATIAL`], and so, from both
/// sides, is one in the border band under its raised threshold but over the plain one:
/// [`spatial`] keeps it only if it stands out in space too.
pub fn detect_pixel(lm: &Lumas, x: usize, y: usize, s: &Settings) -> u32 {
    let [p1, n1, p2, n2] = lm.nb;
    let c = lm.center;
    let k = y * lm.width + x;
    let mut bits = 0;
    // Both sides: the frames just before and after, confirmed by the two away. One side only
    // (the ends of a sequence or shot): the two frames on that side, at `s.one_sided` times
    // the threshold, as picture coming into view looks like dirt there.
    if let Some((a, b, confirm, scale)) = detection_pair(lm, s) {
        let (d, thr) = spike(c, a, b, lm, x, y, s);
        // A weaker spike is dirt if it is a spike in space too (`spatial`): from one side
        // from `spatial_scale` times the threshold; from both, in the border band, from the
        // threshold itself.
        let edge = edge_factor(x, y, lm.width, lm.height, s);
        let strict = thr * scale * edge;
        // As `pair_slots` chooses: the frames just before and after are both present.
        let both = p1.is_some() && n1.is_some();
        let base = thr;
        let thr = base * scale.min(s.spatial_scale) * edge;
        let relaxed = if both { base } else { thr };
        // Neighbours that disagree with each other (occlusion, motion blur, a compensation
        // that failed) are no evidence of dirt on their own: there the centre must stand out
        // of all four neighbours ([`occluded_spike`]).
        let cb = if (a[k] - b[k]).abs() >= 0.5 * d.abs() {
            confirm.map_or(0, |far| occluded_spike(lm, (a, b), far, x, y, edge, s))
        } else {
            agreed_spike(lm, (a, b), confirm, (d, relaxed, strict), both, x, y, s)
        };
        bits |= cb;
        if d.abs() > 0.25 * thr {
            bits |= C_WEAK;
        }
    }
    if let (Some(p1), Some(p2)) = (p1, p2) {
        let (d, thr) = spike(p1, p2, c, lm, x, y, s);
        bits |= spike_bits(d, thr, [P_POS, P_NEG, P_STRONG]);
    }
    if let (Some(n1), Some(n2)) = (n1, n2) {
        let (d, thr) = spike(n1, c, n2, lm, x, y, s);
        bits |= spike_bits(d, thr, [N_POS, N_NEG, N_STRONG]);
    }
    bits
}

/// Candidate bits where the frames just before and after agree with each other: the centre
/// stands `d` out of them, over the threshold `thr` (`strict` without the spatial relief), and
/// where the frames two away exist it must stand out of them too, and the neighbours must
/// agree over the area around it (no motion failure) or, with neighbours on `both` sides
/// all following each other at the pixel, it must be a spike in space ([`C_SPATIAL`]). With
/// neighbours on both sides, a candidate under `strict` (in the border band) needs all four
/// frames to follow each other at the pixel, and is strong only beyond twice `strict`.
#[allow(clippy::too_many_arguments)]
fn agreed_spike(
    lm: &Lumas,
    (a, b): (&[f32], &[f32]),
    confirm: Option<(&[f32], &[f32])>,
    (d, thr, strict): (f32, f32, f32),
    both: bool,
    x: usize,
    y: usize,
    s: &Settings,
) -> u32 {
    let k = y * lm.width + x;
    let c = lm.center;
    let mut cb = spike_bits(d, thr, [C_POS, C_NEG, C_STRONG]);
    // A frame two away counts only where it matches the frame between it and the centre
    // (to within `s.consistent` of the spike): one that compensation lost (a block off,
    // a figure moving fast) says nothing about the centre, and must not veto strong dirt
    // that the frames just before and after agree on.
    let (ua, ub) = match confirm {
        Some((a2, b2)) => (
            (a2[k] - a[k]).abs() < s.consistent * d.abs(),
            (b2[k] - b[k]).abs() < s.consistent * d.abs(),
        ),
        None => (false, false),
    };
    // The frames two away (those present, one at least) show the centre's picture: it is
    // picture, which the frames just before and after lost (a thin line at another sub-pixel
    // phase there, softened by their compensation). Dirt sits on one frame and is in none.
    if both {
        let far: Vec<&[f32]> = [lm.nb[2], lm.nb[3]].into_iter().flatten().collect();
        let shows = |f: &&[f32]| (f[k] - c[k]).abs() < s.consistent * d.abs();
        if !far.is_empty() && far.iter().all(shows) {
            return 0;
        }
    }
    if let Some((a2, b2)) = confirm {
        let far = match (ua, ub) {
            (true, true) => Some((a2, b2)),
            (true, false) => Some((a2, a2)),
            (false, true) => Some((b2, b2)),
            (false, false) => None,
        };
        if let Some((u, v)) = far {
            let (d2, thr2) = spike(c, u, v, lm, x, y, s);
            let ok = if d > 0.0 {
                d2 > 0.5 * thr2
            } else {
                d2 < -0.5 * thr2
            };
            if !ok {
                cb = 0;
            }
        }
    }
    // Motion failure: the neighbours, which the dirt does not touch, disagree over a wider
    // area around the candidate (compensation off by a block, an occlusion): the pair
    // either side, and with the frames two away that count, each side's own pair (a
    // figure whose motion the compensation loses between the frames before, or after).
    // Only where a candidate remains: the rest never reads it. Where all four neighbours
    // follow each other at the pixel, they are evidence there even if the motion failed
    // around it: a spike over `strict` is dirt if it stands out in space, closed on all
    // sides ([`spatial`]), as a figure the compensation lost continues the picture beside
    // it (and something that moves across the frames is left to the motion check).
    if cb != 0 {
        let (w, h, r) = (lm.width, lm.height, s.wide_radius);
        let mut wide = wide_disagreement(a, b, w, h, x, y, r);
        if let Some((a2, b2)) = confirm {
            if ua && ub {
                wide = wide.max(wide_disagreement(a2, b2, w, h, x, y, r));
            }
            if ua {
                wide = wide.max(wide_disagreement(a, a2, w, h, x, y, r));
            }
            if ub {
                wide = wide.max(wide_disagreement(b, b2, w, h, x, y, r));
            }
        }
        if s.wide_factor * wide >= d.abs() {
            cb = if both && ua && ub && d.abs() > strict {
                (cb & !C_STRONG) | C_SPATIAL
            } else {
                0
            };
        }
    }
    // In the border band, picture entering view may be missing from the frames just before
    // and after alike: the frames two away must follow them, and the spike is strong only as
    // it would be at the band's threshold.
    if both && d.abs() <= 2.0 * strict {
        cb &= !C_STRONG;
    }
    if cb != 0 && d.abs() <= strict {
        cb |= C_SPATIAL;
        if both && !(ua && ub) {
            cb = 0;
        }
    }
    cb
}

/// Candidate bits where the frames just before and after disagree: one shows picture the
/// other's hides (an occlusion), and the centre shows one side's picture. Dirt shows neither:
/// the centre is a candidate where it lies beyond all four neighbours by more than the
/// threshold of each side's own pair (frame -1 against -2, +1 against +2), and each side
/// agrees with itself, at the pixel to within `s.occluded_consistent` of the spike and over
/// the area around it (the motion-failure check).
pub fn occluded_spike(
    lm: &Lumas,
    (a, b): (&[f32], &[f32]),
    (a2, b2): (&[f32], &[f32]),
    x: usize,
    y: usize,
    edge: f32,
    s: &Settings,
) -> u32 {
    let (w, h) = (lm.width, lm.height);
    let k = y * w + x;
    let lo = a[k].min(b[k]).min(a2[k]).min(b2[k]);
    let hi = a[k].max(b[k]).max(a2[k]).max(b2[k]);
    let d = outside(lm.center[k], lo, hi);
    let near = s.occluded_consistent * d.abs();
    if (a2[k] - a[k]).abs() >= near || (b2[k] - b[k]).abs() >= near {
        return 0;
    }
    let side = disagreement(a, a2, w, h, x, y).max(disagreement(b, b2, w, h, x, y));
    let thr = (s.t0 + s.noise_factor * side) * edge;
    // As where the sides agree, the frames two away must confirm it by half their threshold
    // (a strong occluding edge needs strong dirt).
    let (_, far_thr) = spike(lm.center, a2, b2, lm, x, y, s);
    if d.abs() <= thr || d.abs() <= 0.5 * far_thr {
        return 0;
    }
    let r = s.wide_radius;
    let wide = wide_disagreement(a, a2, w, h, x, y, r).max(wide_disagreement(b, b2, w, h, x, y, r));
    if s.wide_factor * wide >= d.abs() {
        return 0;
    }
    spike_bits(d, thr, [C_POS, C_NEG, C_STRONG])
}

/// The pair of compensated neighbours a spike is measured against, the pair of frames two away
/// that confirm it, and the threshold factor. Both sides: the frames just before and after,
/// confirmed by the two away. One side only (the ends of a sequence or shot): the two frames
/// on that side, at `s.one_sided` times the threshold, as picture coming into view looks like
/// dirt there.
pub type Pair<'a> = (&'a [f32], &'a [f32], Option<(&'a [f32], &'a [f32])>, f32);

pub fn detection_pair<'a>(lm: &Lumas<'a>, s: &Settings) -> Option<Pair<'a>> {
    let (slots, _) = pair_slots(lm.nb.map(|l| l.is_some()))?;
    let (a, b) = (lm.nb[slots[0]]?, lm.nb[slots[1]]?);
    Some(if slots == BOTH_SIDES {
        (a, b, lm.nb[2].zip(lm.nb[3]), 1.0)
    } else {
        (a, b, None, s.one_sided)
    })
}

/// The slots of the frames just before and after, the pair detection uses with both sides.
const BOTH_SIDES: [usize; 2] = [0, 1];

/// The slots [`spatial`] reads: detection's pair where candidates can be marked
/// [`C_SPATIAL`] (one-sided with a threshold above `spatial_scale` times the base; both
/// sides, in the border band or where the motion failed around the spike); `None` elsewhere
/// (no candidate to check).
pub fn spatial_slots(present: [bool; 4], s: &Settings) -> Option<[usize; 2]> {
    let (slots, _) = pair_slots(present)?;
    (slots == BOTH_SIDES || s.one_sided > s.spatial_scale).then_some(slots)
}

/// Directions that must leave the defect for [`spatial_spike`] to judge a candidate found
/// against `slots`: from one side [`SPATIAL_VOTES`]; from both sides (the border band, a
/// motion failure around the spike) all eight, so a candidate that runs off the frame, as
/// picture entering view does, is not taken.
pub fn spatial_votes(slots: [usize; 2]) -> usize {
    if slots == BOTH_SIDES {
        DIRS.len()
    } else {
        SPATIAL_VOTES
    }
}

/// Is the candidate at `(x, y)`, standing `d` out of its neighbours `a` and `b`, a spike in
/// space too? Picture that the neighbours do not show (uncovered behind a moving figure,
/// coming into view) continues the picture beside it in the frame itself; dirt stands out of
/// what surrounds it. In each of eight directions the first pixel that has left the defect
/// (its own spike under `s.spatial_leave` of `d`) is read, up to `spatial_reach` away; with
/// at least `need` of them, the centre must lie beyond all but the most extreme one on the
/// spike's side by `s.spatial_share` of `d`.
#[allow(clippy::too_many_arguments)]
pub fn spatial_spike(
    lm: &Lumas,
    (a, b): (&[f32], &[f32]),
    x: usize,
    y: usize,
    d: f32,
    need: usize,
    s: &Settings,
) -> bool {
    let (w, h) = (lm.width as i32, lm.height as i32);
    let c = lm.center;
    let leave = s.spatial_leave * d.abs();
    // The two highest and two lowest of the surroundings.
    let (mut hi1, mut hi2) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    let (mut lo1, mut lo2) = (f32::INFINITY, f32::INFINITY);
    let mut votes = 0;
    for (dx, dy) in DIRS {
        for step in 1..=s.spatial_reach as i32 {
            let (xx, yy) = (x as i32 + dx * step, y as i32 + dy * step);
            if xx < 0 || yy < 0 || xx >= w || yy >= h {
                break;
            }
            let k = (yy * w + xx) as usize;
            if outside(c[k], a[k], b[k]).abs() < leave {
                let v = c[k];
                if v > hi1 {
                    hi2 = hi1;
                    hi1 = v;
                } else if v > hi2 {
                    hi2 = v;
                }
                if v < lo1 {
                    lo2 = lo1;
                    lo1 = v;
                } else if v < lo2 {
                    lo2 = v;
                }
                votes += 1;
                break;
            }
        }
    }
    let v = c[y * lm.width + x];
    let margin = s.spatial_share * d.abs();
    votes >= need
        && if d > 0.0 {
            v - hi2 > margin
        } else {
            lo2 - v > margin
        }
}

/// Fewest directions that must leave the defect for [`spatial_spike`] to judge a candidate
/// from one side.
pub const SPATIAL_VOTES: usize = 4;

/// The spatial check on candidates marked [`C_SPATIAL`] (found only at the relaxed threshold,
/// or where the motion failed around them): where they are not a spike in space
/// ([`spatial_spike`]) they drop to weak candidates.
pub fn spatial(bits: &[u32], lm: &Lumas, s: &Settings) -> Vec<u32> {
    let w = lm.width;
    let mut out = bits.to_vec();
    let Some([i, j]) = spatial_slots(lm.nb.map(|l| l.is_some()), s) else {
        return out;
    };
    let (a, b) = (lm.nb[i].expect("present"), lm.nb[j].expect("present"));
    let need = spatial_votes([i, j]);
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for (x, o) in row.iter_mut().enumerate() {
            if *o & C_SPATIAL == 0 || *o & (C_POS | C_NEG) == 0 {
                continue;
            }
            let k = y * w + x;
            let d = outside(lm.center[k], a[k], b[k]);
            if !spatial_spike(lm, (a, b), x, y, d, need, s) {
                *o &= !(C_POS | C_NEG | C_STRONG);
            }
        }
    });
    out
}

pub fn detect(lm: &Lumas, s: &Settings) -> Vec<u32> {
    let w = lm.width;
    let mut out = vec![0u32; w * lm.height];
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for (x, o) in row.iter_mut().enumerate() {
            *o = detect_pixel(lm, x, y, s);
        }
    });
    out
}

/// Mask cleanup: a candidate bit survives where it is strong or where one of its eight
/// neighbours has it too, so lone grain peaks drop out while specks of two pixels and more
/// (and strong single pixels) stay. Strong bits are dropped, weak bits kept as they are. A
/// strong single pixel is marked: the centre's with [`C_LONE`], a neighbour frame's by moving
/// its bit up by [`LONE_SHIFT`].
pub fn clean(bits: &[u32], w: usize, h: usize) -> Vec<u32> {
    let mut out = vec![0u32; w * h];
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for (x, o) in row.iter_mut().enumerate() {
            let own = bits[y * w + x];
            let mut around = 0u32;
            let weak = own & C_WEAK;
            for j in -1i32..=1 {
                for i in -1i32..=1 {
                    let (xx, yy) = (x as i32 + i, y as i32 + j);
                    if (i, j) != (0, 0) && xx >= 0 && yy >= 0 && xx < w as i32 && yy < h as i32 {
                        around |= bits[yy as usize * w + xx as usize];
                    }
                }
            }
            let mut keep = 0;
            for (pos, neg, strong) in [
                (C_POS, C_NEG, C_STRONG),
                (P_POS, P_NEG, P_STRONG),
                (N_POS, N_NEG, N_STRONG),
            ] {
                for b in [pos, neg] {
                    if own & b == 0 {
                        continue;
                    }
                    if around & b != 0 {
                        keep |= b;
                    } else if own & strong != 0 {
                        keep |= if b & (C_POS | C_NEG) != 0 {
                            b | C_LONE
                        } else {
                            b << LONE_SHIFT
                        };
                    }
                }
            }
            *o = keep | weak;
        }
    });
    out
}

const PN_AREA: u32 = P_POS | P_NEG | N_POS | N_NEG;
const PN_BITS: u32 = PN_AREA | PN_AREA << LONE_SHIFT;
const C_BITS: u32 = C_POS | C_NEG | C_WEAK | C_LONE;

/// Horizontal half of spreading the neighbour-spike bits over `radius` pixels (a square
/// dilation in two passes); the centre bits stay as they are.
pub fn spread_h(bits: &[u32], w: usize, h: usize, radius: usize) -> Vec<u32> {
    let mut out = vec![0u32; w * h];
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for (x, o) in row.iter_mut().enumerate() {
            let mut acc = bits[y * w + x] & C_BITS;
            let lo = x.saturating_sub(radius);
            let hi = (x + radius).min(w - 1);
            for xx in lo..=hi {
                acc |= bits[y * w + xx] & PN_BITS;
            }
            *o = acc;
        }
    });
    out
}

/// Vertical half of the spread, then the decision: a centre candidate is dust unless the
/// frames on both sides (those that can be checked) have a spike of the same polarity within
/// the radius: something that is in every frame, somewhere near, is picture (a fast-moving
/// object, rain, sparks), not dirt. `ext` (an external defect mask) is taken as is.
/// Result per pixel: 1 dirt, 0.5 a weak candidate (may join the mask beside dirt), 0 clean.
pub fn decide(hbits: &[u32], ext: Option<&[f32]>, s: &Settings, w: usize, h: usize) -> Vec<f32> {
    let pn_plane = if s.pm_check {
        or_down(hbits, PN_BITS, s.pm_radius, w, h)
    } else {
        vec![0; w * h]
    };
    let mut out = vec![0f32; w * h];
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for (x, o) in row.iter_mut().enumerate() {
            let own = hbits[y * w + x];
            let pn = pn_plane[y * w + x];
            *o = if decide_pixel(own, pn, ext.map(|e| e[y * w + x]), s) {
                1.0
            } else if own & C_WEAK != 0 {
                0.5
            } else {
                0.0
            };
        }
    });
    out
}

/// For each pixel, the OR of `bits & keep` over rows `y - r ..= y + r` (cut at the frame) of
/// its column. Rows are cut into blocks of `2r + 1`, with the OR from each row to its block's
/// end and from its block's start to it; a window then joins at most two blocks, so each pixel
/// costs two reads whatever the radius.
fn or_down(bits: &[u32], keep: u32, r: usize, w: usize, h: usize) -> Vec<u32> {
    if w == 0 || h == 0 {
        return Vec::new();
    }
    let k = 2 * r + 1;
    let mut from_start = vec![0u32; w * h];
    let mut to_end = vec![0u32; w * h];
    from_start
        .par_chunks_mut(k * w)
        .zip(to_end.par_chunks_mut(k * w))
        .enumerate()
        .for_each(|(b, (fs, te))| {
            let rows = fs.len() / w.max(1);
            let y0 = b * k;
            for j in 0..rows {
                let src = &bits[(y0 + j) * w..][..w];
                for x in 0..w {
                    let prev = if j > 0 { fs[(j - 1) * w + x] } else { 0 };
                    fs[j * w + x] = prev | (src[x] & keep);
                }
            }
            for j in (0..rows).rev() {
                let src = &bits[(y0 + j) * w..][..w];
                for x in 0..w {
                    let next = if j + 1 < rows { te[(j + 1) * w + x] } else { 0 };
                    te[j * w + x] = next | (src[x] & keep);
                }
            }
        });
    let mut out = vec![0u32; w * h];
    out.par_chunks_mut(w.max(1))
        .enumerate()
        .for_each(|(y, row)| {
            let (lo, hi) = (y.saturating_sub(r), (y + r).min(h - 1));
            let (bl, bh) = (lo / k, hi / k);
            for (x, o) in row.iter_mut().enumerate() {
                *o = if bl == bh {
                    // One block: the window starts at the block's start or ends at the frame's
                    // (a full window in one block is the whole block).
                    if lo == bl * k {
                        from_start[hi * w + x]
                    } else {
                        to_end[lo * w + x]
                    }
                } else {
                    to_end[lo * w + x] | from_start[hi * w + x]
                };
            }
        });
    out
}

/// The decision for one pixel from its own bits, the spread neighbour bits and the external
/// mask value. A spike of one pixel on a neighbouring frame is motion only for a candidate of
/// one pixel ([`C_LONE`]: a spark moves as a spark); a speck beside a lone grain peak, or
/// beside a speck on the frame before that shows as one pixel there, is still dirt.
pub fn decide_pixel(own: u32, pn: u32, ext: Option<f32>, s: &Settings) -> bool {
    let lone = own & C_LONE != 0;
    let seen = |b: u32| pn & b != 0 || (lone && pn & (b << LONE_SHIFT) != 0);
    let motion = |p: u32, n: u32| {
        s.pm_check
            && (s.have_prev || s.have_next)
            && (!s.have_prev || seen(p))
            && (!s.have_next || seen(n))
    };
    (own & C_POS != 0 && !motion(P_POS, N_POS))
        || (own & C_NEG != 0 && !motion(P_NEG, N_NEG))
        || ext.is_some_and(|e| e > 0.5)
}

/// Mask growth: weak candidates within `dilate` pixels (a disc) of dirt join it, so the soft
/// edges of specks are repaired without touching the clean picture around them.
pub fn grow(flag: &[f32], s: &Settings, w: usize, h: usize) -> Vec<f32> {
    let r = s.dilate as i32;
    let mut out = vec![0f32; w * h];
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for (x, o) in row.iter_mut().enumerate() {
            let f = flag[y * w + x];
            let mut grown = f > 0.75;
            if !grown && f > 0.25 {
                for j in -r..=r {
                    for i in -r..=r {
                        let (xx, yy) = (x as i32 + i, y as i32 + j);
                        if i * i + j * j <= r * r
                            && xx >= 0
                            && yy >= 0
                            && xx < w as i32
                            && yy < h as i32
                            && flag[yy as usize * w + xx as usize] > 0.75
                        {
                            grown = true;
                        }
                    }
                }
            }
            *o = grown as u32 as f32;
        }
    });
    out
}

/// The indices of the eight neighbours of pixel `k` inside a `w` x `h` frame.
fn neighbours8(k: usize, w: usize, h: usize) -> impl Iterator<Item = usize> {
    let (x, y) = ((k % w) as i32, (k / w) as i32);
    DIRS.into_iter().filter_map(move |(dx, dy)| {
        let (xx, yy) = (x + dx, y + dy);
        (xx >= 0 && yy >= 0 && xx < w as i32 && yy < h as i32)
            .then(|| yy as usize * w + xx as usize)
    })
}

/// Flag of a pixel the re-match found in a neighbour: a weak candidate for the disc of
/// [`grow`], but picture, so [`link`] does not pass through it.
pub const FOUND: f32 = 0.4;

/// Bins of the histogram of the centre's departure from its neighbours ([`level`]), over
/// `-LEVEL_SPAN..LEVEL_SPAN` (the ends take everything beyond).
pub const LEVEL_BINS: usize = 1024;
pub const LEVEL_SPAN: f32 = 0.25;

/// Histogram bin of a departure `e` of the centre from the mean of its pair.
pub fn level_bin(e: f32) -> usize {
    let b = ((e + LEVEL_SPAN) * (LEVEL_BINS as f32 / (2.0 * LEVEL_SPAN))).floor();
    b.clamp(0.0, (LEVEL_BINS - 1) as f32) as usize
}

/// The level of a frame against its neighbours from the histogram of [`level_bin`]: the
/// centre of the bin holding the median. A frame lighter or darker than its neighbours
/// (flicker, printing) departs from them everywhere by about this much.
pub fn level_of(hist: &[u32]) -> f32 {
    let total: u64 = hist.iter().map(|&n| n as u64).sum();
    let mut seen = 0u64;
    let mut bin = hist.len() - 1;
    for (i, &n) in hist.iter().enumerate() {
        seen += n as u64;
        if 2 * seen >= total {
            bin = i;
            break;
        }
    }
    -LEVEL_SPAN + (bin as f32 + 0.5) * (2.0 * LEVEL_SPAN / LEVEL_BINS as f32)
}

/// The level ([`level_of`]) of the centre against the pair `(a, b)`.
pub fn level(lm: &Lumas, (a, b): (&[f32], &[f32])) -> f32 {
    let mut hist = vec![0u32; LEVEL_BINS];
    for ((&c, &a), &b) in lm.center.iter().zip(a).zip(b) {
        hist[level_bin(c - 0.5 * (a + b))] += 1;
    }
    level_of(&hist)
}

/// Where [`link`] may pass: +1 or -1 (the polarity) for a pixel of the grown mask or a
/// weak candidate (not [`FOUND`]) whose spike, with the frame's `level` taken off, is over
/// `s.link` times the threshold; 0 elsewhere. Codes: 2 on the grown mask, 1 where it may join.
pub fn link_code(
    (flag, grown): (f32, f32),
    lm: &Lumas,
    (a, b): (&[f32], &[f32]),
    level: f32,
    x: usize,
    y: usize,
    s: &Settings,
) -> f32 {
    let weak = flag > 0.45 && flag < 0.75;
    if grown <= 0.5 && !weak {
        return 0.0;
    }
    let k = y * lm.width + x;
    let d = outside(lm.center[k] - level, a[k], b[k]);
    let polarity = if d > 0.0 {
        1.0
    } else if d < 0.0 {
        -1.0
    } else {
        0.0
    };
    if grown > 0.5 {
        return 2.0 * polarity;
    }
    if d.abs() > s.link * threshold(a, b, lm, x, y, s) {
        polarity
    } else {
        0.0
    }
}

/// Hysteresis growth: weak candidates joined to the grown mask through weak candidates of
/// the same polarity (8-connected), up to `s.link_reach` steps, join it too. Faint dirt is
/// whole where part of it is strong: the body and soft edges of a semi-transparent blotch,
/// the thin ends of a hair. The frame's level against its neighbours ([`level`]) is taken off
/// first, as flicker makes every pixel a faint spike of one polarity; the re-match's
/// [`FOUND`] pixels are picture and do not pass; and only with neighbours on both sides, as
/// picture coming into view at the ends of a shot is a faint spike too.
pub fn link(flag: &[f32], grown: &[f32], lm: &Lumas, s: &Settings) -> Vec<f32> {
    let (w, h) = (lm.width, lm.height);
    let Some((a, b)) = lm.nb[0].zip(lm.nb[1]).filter(|_| s.link_reach > 0) else {
        return grown.to_vec();
    };
    let level = level(lm, (a, b));
    let mut code = vec![0f32; w * h];
    code.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for (x, o) in row.iter_mut().enumerate() {
            let k = y * w + x;
            *o = link_code((flag[k], grown[k]), lm, (a, b), level, x, y, s);
        }
    });
    // Steps in lockstep, as the shader runs them: a pixel joins at step t if a neighbour of
    // its polarity had joined by step t - 1.
    let mut front: Vec<usize> = (0..w * h).filter(|&k| code[k].abs() == 2.0).collect();
    for _ in 0..s.link_reach {
        let mut next = Vec::new();
        for &k in &front {
            for kk in neighbours8(k, w, h) {
                if code[kk].abs() == 1.0 && 2.0 * code[kk] == code[k] {
                    code[kk] *= 2.0;
                    next.push(kk);
                }
            }
        }
        if next.is_empty() {
            break;
        }
        front = next;
    }
    code.iter()
        .zip(grown)
        .map(|(&c, &g)| if c.abs() == 2.0 || g > 0.5 { 1.0 } else { 0.0 })
        .collect()
}

/// The soft repair mask: 1 on the grown mask, falling linearly to 0 over the next
/// `feather + 1` pixels, so the repair blends into the untouched picture.
pub fn alpha(grown: &[f32], s: &Settings, w: usize, h: usize) -> Vec<f32> {
    let r = s.feather as i32;
    let mut out = vec![0f32; w * h];
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for (x, o) in row.iter_mut().enumerate() {
            let mut d2 = i32::MAX;
            for j in -r..=r {
                for i in -r..=r {
                    let (xx, yy) = (x as i32 + i, y as i32 + j);
                    if xx >= 0
                        && yy >= 0
                        && xx < w as i32
                        && yy < h as i32
                        && grown[yy as usize * w + xx as usize] > 0.5
                    {
                        d2 = d2.min(i * i + j * j);
                    }
                }
            }
            *o = alpha_of(d2, s);
        }
    });
    out
}

/// Mask value at squared distance `d2` from the nearest detected pixel.
pub fn alpha_of(d2: i32, s: &Settings) -> f32 {
    if d2 == i32::MAX {
        return 0.0;
    }
    (1.0 - (d2 as f32).sqrt() / (s.feather as f32 + 1.0)).max(0.0)
}

/// How far the centre's plane `p` lies above its compensated neighbours' median at the
/// spatial fill's `hits` (the first pixels outside the mask): the median of those
/// differences, 0 without hits.
fn level_offset(center: &Frame, nb: &[Option<&Frame>; 4], hits: &[(usize, f32)], p: usize) -> f32 {
    let n = center.width * center.height;
    let mut diffs: Vec<f32> = hits
        .iter()
        .map(|&(kk, _)| {
            let mut vals: Vec<f32> = nb.iter().flatten().map(|f| f.data[p * n + kk]).collect();
            center.data[p * n + kk] - median(&mut vals)
        })
        .collect();
    if diffs.is_empty() {
        0.0
    } else {
        median(&mut diffs)
    }
}

/// Median of the present values: the middle one, or the mean of the middle two.
fn median(v: &mut [f32]) -> f32 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) * 0.5
    }
}

const DIRS: [(i32, i32); 8] = [
    (1, 0),
    (-1, 0),
    (0, 1),
    (0, -1),
    (1, 1),
    (1, -1),
    (-1, 1),
    (-1, -1),
];

/// The repair's change to a sample `c`, `delta`, limited to how far `c` stands out of the
/// range of the compensated neighbours `vals` (sorted; of four, the middle two) plus
/// `s.margin` of their spread: dirt far outside is fully repaired, while a false alarm
/// (picture two or more neighbours also show, or where they disagree) is changed little.
/// Without neighbours the change is free.
pub fn limit_change(delta: f32, c: f32, vals: &[f32], s: &Settings) -> f32 {
    let (lo, hi) = match *vals {
        [] => return delta,
        // Of four, the outermost each side are left out: one neighbour showing something
        // else at the spot (its own dirt, a line passing) must not hold the repair back.
        [_, lo, .., hi, _] => (lo, hi),
        [lo, .., hi] => (lo, hi),
        [v] => (v, v),
    };
    let lim = outside(c, lo, hi).abs() + s.margin * (hi - lo);
    delta.clamp(-lim, lim)
}

/// Repair: inside the mask, the per-plane median of the compensated neighbours, lifted by
/// how far the centre lies above that median just outside the defect ([`level_offset`]:
/// flicker, an exposure that differs from frame to frame), blended toward a spatial fill where
/// the neighbours disagree with each other (their luma spread above `disagree`, fully spatial
/// at twice it) or are missing. The spatial fill is the inverse-distance mean of the first
/// unmasked pixel in each of eight directions, up to `spatial_reach` pixels away; those
/// pixels also give the level. The change is limited by how far the centre, less that level,
/// stands out of the neighbours ([`limit_change`]). Outside the mask the centre is copied.
/// The harm guard ([`crate::stages::pushed_beyond`]) leaves a pixel as it was where the repair
/// would push a plane beyond the range that the compensated neighbours and the spatial fill's
/// untouched pixels show there; the number of such pixels comes back with the frame.
pub fn repair(
    center: &Frame,
    nb: &[Option<&Frame>; 4],
    lm: &Lumas,
    a: &[f32],
    s: &Settings,
) -> (Frame, u64) {
    let (w, h, planes) = (center.width, center.height, center.planes);
    let n = w * h;
    let mut out = center.clone();
    let rows: Vec<(Vec<f32>, u64)> = (0..h)
        .into_par_iter()
        .map(|y| {
            let mut row = vec![0f32; w * planes];
            let mut refused = 0u64;
            for x in 0..w {
                let k = y * w + x;
                for p in 0..planes {
                    row[p * w + x] = center.data[p * n + k];
                }
                if a[k] <= 0.0 {
                    continue;
                }
                let mut lo = f32::INFINITY;
                let mut hi = f32::NEG_INFINITY;
                let mut count = 0;
                for l in lm.nb.iter().flatten() {
                    lo = lo.min(l[k]);
                    hi = hi.max(l[k]);
                    count += 1;
                }
                // Spatial fill: where each direction first leaves the mask.
                let mut hits: Vec<(usize, f32)> = Vec::with_capacity(8);
                for (dx, dy) in DIRS {
                    for step in 1..=s.spatial_reach as i32 {
                        let (xx, yy) = (x as i32 + dx * step, y as i32 + dy * step);
                        if xx < 0 || yy < 0 || xx >= w as i32 || yy >= h as i32 {
                            break;
                        }
                        let kk = yy as usize * w + xx as usize;
                        if a[kk] <= 0.0 {
                            hits.push((kk, 1.0 / step as f32));
                            break;
                        }
                    }
                }
                let spatial_weight = if hits.is_empty() {
                    0.0
                } else if count == 0 {
                    1.0
                } else {
                    ((hi - lo - s.disagree) / s.disagree).clamp(0.0, 1.0)
                };
                if count == 0 && hits.is_empty() {
                    continue;
                }
                let mut harm = false;
                for p in 0..planes {
                    let mut vals: Vec<f32> =
                        nb.iter().flatten().map(|f| f.data[p * n + k]).collect();
                    let temporal = if vals.is_empty() {
                        0.0
                    } else {
                        median(&mut vals)
                    };
                    // A fill at the neighbours' level would leave a hole (or a patch) where
                    // the centre is lighter or darker than they are around the defect.
                    let offset = if vals.is_empty() {
                        0.0
                    } else {
                        level_offset(center, nb, &hits, p)
                    };
                    let temporal = temporal + offset;
                    let mut sum = 0.0f32;
                    let mut wsum = 0.0f32;
                    for &(kk, wt) in &hits {
                        sum += center.data[p * n + kk] * wt;
                        wsum += wt;
                    }
                    let spatial = if wsum > 0.0 { sum / wsum } else { 0.0 };
                    let fill = temporal + (spatial - temporal) * spatial_weight;
                    let c = center.data[p * n + k];
                    let fixed = c + limit_change(fill - c, c - offset, &vals, s) * a[k];
                    row[p * w + x] = fixed;
                    // What the picture around shows here: the neighbours and the fill's pixels.
                    let (lo, hi) = hits
                        .iter()
                        .map(|&(kk, _)| center.data[p * n + kk])
                        .chain(vals.iter().copied())
                        .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), v| {
                            (l.min(v), h.max(v))
                        });
                    harm |= crate::stages::pushed_beyond(c, fixed, lo, hi);
                }
                if harm {
                    refused += 1;
                    for p in 0..planes {
                        row[p * w + x] = center.data[p * n + k];
                    }
                }
            }
            (row, refused)
        })
        .collect();
    let mut refused = 0;
    for (y, (row, r)) in rows.iter().enumerate() {
        refused += r;
        for p in 0..planes {
            out.data[p * n + y * w..p * n + y * w + w].copy_from_slice(&row[p * w..p * w + w]);
        }
    }
    (out, refused)
}

/// The luma range over the square of `radius` around each pixel (clamped at the edges):
/// minima in the first `w * h` values, maxima in the next. A patch compared against these
/// ranges matches picture shifted by up to `radius` pixels, so the re-match search
/// ([`rematch`]) can step by two pixels (four on a frame two away) and still follow thin
/// structures.
pub fn range(l: &[f32], w: usize, h: usize, radius: usize) -> Vec<f32> {
    // Separable: the least and most along each row, then down each column (min and max are
    // exact and order-free, and a clamped window holds the same values as the cut one).
    let n = w * h;
    let mut across = vec![0f32; 2 * n];
    let (alo, ahi) = across.split_at_mut(n);
    alo.par_chunks_mut(w)
        .zip(ahi.par_chunks_mut(w))
        .enumerate()
        .for_each(|(y, (lrow, hrow))| {
            let row = &l[y * w..(y + 1) * w];
            for x in 0..w {
                let span = &row[x.saturating_sub(radius)..(x + radius + 1).min(w)];
                lrow[x] = span.iter().copied().fold(f32::INFINITY, f32::min);
                hrow[x] = span.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            }
        });
    let mut out = vec![0f32; 2 * n];
    let (lo, hi) = out.split_at_mut(n);
    lo.par_chunks_mut(w)
        .zip(hi.par_chunks_mut(w))
        .enumerate()
        .for_each(|(y, (lrow, hrow))| {
            lrow.fill(f32::INFINITY);
            hrow.fill(f32::NEG_INFINITY);
            for yy in y.saturating_sub(radius)..(y + radius + 1).min(h) {
                let (a, b) = (&across[yy * w..][..w], &across[n + yy * w..][..w]);
                for x in 0..w {
                    lrow[x] = lrow[x].min(a[x]);
                    hrow[x] = hrow[x].max(b[x]);
                }
            }
        });
    out
}

/// The two neighbour slots a spike is measured against ([`detection_pair`]) and the re-match
/// reads, with the steps the re-match takes in each per unit of displacement: both sides
/// `(p1, -1), (n1, +1)`; one side only `(p1, -1), (p2, -2)` or `(n1, +1), (n2, +2)` (constant
/// motion). `None` without a pair.
pub fn pair_slots(present: [bool; 4]) -> Option<([usize; 2], [i32; 2])> {
    match present {
        [true, true, _, _] => Some((BOTH_SIDES, [-1, 1])),
        [false, true, _, true] => Some(([1, 3], [1, 2])),
        [true, false, true, _] => Some(([0, 2], [-1, -2])),
        _ => None,
    }
}

/// Is the centre's picture around `(x, y)` found in the uncompensated neighbours, displaced by
/// some `v` within `s.rematch` pixels (stepping by two; `ranges` tolerate the rest)? Dirt is in
/// no other frame; a thin edge or a figure the block motion lost is, nearby. Found where the
/// pixel itself lies within `s.rematch_center` of its spike `d` from both neighbours' ranges
/// and the 5x5 patch around it within `s.rematch_patch` of `d` on average.
#[allow(clippy::too_many_arguments)]
pub fn rematch_pixel(
    center: &[f32],
    ranges: [&[f32]; 2],
    steps: [i32; 2],
    d: f32,
    w: usize,
    h: usize,
    x: usize,
    y: usize,
    s: &Settings,
) -> bool {
    let n = w * h;
    let at = |r: &[f32], xx: i32, yy: i32, v: f32| {
        let xx = xx.clamp(0, w as i32 - 1) as usize;
        let yy = yy.clamp(0, h as i32 - 1) as usize;
        let k = yy * w + xx;
        outside(v, r[k], r[n + k]).abs()
    };
    let (xi, yi) = (x as i32, y as i32);
    let c = center[y * w + x];
    let half = (s.rematch / 2) as i32;
    let tc = s.rematch_center * d.abs();
    let tp = s.rematch_patch * d.abs() * 50.0;
    // The 5x5 patch around the pixel (clamped at the edges), row by row, read once.
    let patch: [f32; 25] = std::array::from_fn(|q| {
        let px = (xi + q as i32 % 5 - 2).clamp(0, w as i32 - 1);
        let py = (yi + q as i32 / 5 - 2).clamp(0, h as i32 - 1);
        center[py as usize * w + px as usize]
    });
    // A flat patch (the inside of a blotch) matches any flat picture of its level: only a
    // patch with structure of its own, about the size of the spike, is searched for.
    let lo = patch.iter().fold(f32::INFINITY, |a, &v| a.min(v));
    let hi = patch.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
    if hi - lo < s.rematch_texture * d.abs() {
        return false;
    }
    for vy in -half..=half {
        for vx in -half..=half {
            let (vx, vy) = (2 * vx, 2 * vy);
            let off = |i: usize| (steps[i] * vx, steps[i] * vy);
            let (ax, ay) = off(0);
            let (bx, by) = off(1);
            let ec = at(ranges[0], xi + ax, yi + ay, c) + at(ranges[1], xi + bx, yi + by, c);
            if ec >= 2.0 * tc {
                continue;
            }
            let mut sum = 0.0f32;
            for (q, &v) in patch.iter().enumerate() {
                let (i, j) = (q as i32 % 5 - 2, q as i32 / 5 - 2);
                sum += at(ranges[0], xi + i + ax, yi + j + ay, v)
                    + at(ranges[1], xi + i + bx, yi + j + by, v);
            }
            if sum < tp {
                return true;
            }
        }
    }
    false
}

/// Is the pixel at `(x, y)` a thin line that moved by under a pixel? A line straddling two
/// pixels in a neighbour is fainter in each than the centre's, which lies on one, so it
/// stands out of the compensated pair (`a`, `b`) like dirt; but the light it carries is the
/// same. Where the sum of three samples across the pixel (across a vertical line, and across
/// a horizontal one) matches such a sum in each neighbour within a pixel of it (whole pixels
/// and halfway, for a step beside the line), to within half the spike `d`, it is picture:
/// dirt adds at least its spike to the sum. Twin:
/// `thin_line` in `shaders/dust_rematch.wgsl`.
pub fn thin_line(
    center: &[f32],
    (a, b): (&[f32], &[f32]),
    d: f32,
    w: usize,
    h: usize,
    x: usize,
    y: usize,
) -> bool {
    let at = |f: &[f32], xx: i32, yy: i32| {
        let xx = xx.clamp(0, w as i32 - 1) as usize;
        let yy = yy.clamp(0, h as i32 - 1) as usize;
        f[yy * w + xx]
    };
    let sum3 = |f: &[f32], xx: i32, yy: i32, (dx, dy): (i32, i32)| {
        at(f, xx - dx, yy - dy) + at(f, xx, yy) + at(f, xx + dx, yy + dy)
    };
    let (xi, yi) = (x as i32, y as i32);
    let tol = 0.5 * d.abs();
    [(1, 0), (0, 1)].into_iter().any(|dir| {
        let own = sum3(center, xi, yi, dir);
        // Sums a whole pixel apart, and halfway between (a step moved by half a pixel).
        let found = |f: &[f32]| {
            let at_v = |v: i32| sum3(f, xi + v * dir.0, yi + v * dir.1, dir);
            let sums = [at_v(-1), at_v(0), at_v(1)];
            let between = [0.5 * (sums[0] + sums[1]), 0.5 * (sums[1] + sums[2])];
            sums.iter().chain(&between).any(|t| (t - own).abs() < tol)
        };
        found(a) && found(b)
    })
}

/// The re-match check on every pixel taken for dirt (`flag` 1, not from the external mask):
/// where its picture is found in the neighbours ([`rematch_pixel`]) it drops to a weak
/// candidate ([`FOUND`]), unless most of its piece of dirt was not found ([`rematch_pieces`]).
/// `raw` are the uncompensated neighbour lumas in slot order; the spike is measured against
/// the compensated pair (`lm`), as detection did.
pub fn rematch(
    flag: &[f32],
    ext: Option<&[f32]>,
    lm: &Lumas,
    raw: &[Option<&[f32]>; 4],
    s: &Settings,
) -> Vec<f32> {
    let (w, h) = (lm.width, lm.height);
    let pair = pair_slots(std::array::from_fn(|i| {
        raw[i].is_some() && lm.nb[i].is_some()
    }));
    let Some((idx, steps)) = pair.filter(|_| s.rematch > 0) else {
        return flag.to_vec();
    };
    let ranges: Vec<Vec<f32>> = idx
        .iter()
        .zip(steps)
        .map(|(&i, st)| range(raw[i].expect("present"), w, h, st.unsigned_abs() as usize))
        .collect();
    let (ca, cb) = (
        lm.nb[idx[0]].expect("present"),
        lm.nb[idx[1]].expect("present"),
    );
    let mut out = flag.to_vec();
    let rs = [ranges[0].as_slice(), ranges[1].as_slice()];
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for (x, o) in row.iter_mut().enumerate() {
            let k = y * w + x;
            if *o <= 0.75 || ext.is_some_and(|e| e[k] > 0.5) {
                continue;
            }
            let d = outside(lm.center[k], ca[k], cb[k]);
            if d != 0.0
                && (thin_line(lm.center, (ca, cb), d, w, h, x, y)
                    || rematch_pixel(lm.center, rs, steps, d, w, h, x, y, s))
            {
                *o = FOUND;
            }
        }
    });
    rematch_pieces(flag, &out, ext, s, w, h)
}

/// Whether a pixel belongs to the pieces [`rematch_pieces`] weighs: taken for dirt by
/// detection, not by the external mask.
fn in_piece(flag: &[f32], ext: Option<&[f32]>, k: usize) -> bool {
    flag[k] > 0.75 && !ext.is_some_and(|e| e[k] > 0.5)
}

/// The re-match by pieces: it decides pixel by pixel, but dirt comes in pieces (a speck, a
/// hair). Where at least `s.rematch_whole` of an 8-connected piece of the pixels taken for
/// dirt (`flag` 1, not the external mask's) was not found in the neighbours (`matched` still
/// 1), all of it is dirt: the few pixels found were matched by picture of their own shape (a
/// hair over a bright rim). A piece found mostly is left as the re-match decided, pixel by
/// pixel. Returns `matched` with those pixels back at `flag`.
pub fn rematch_pieces(
    flag: &[f32],
    matched: &[f32],
    ext: Option<&[f32]>,
    s: &Settings,
    w: usize,
    h: usize,
) -> Vec<f32> {
    let mut out = matched.to_vec();
    let mut seen = vec![false; w * h];
    let mut piece = Vec::new();
    for start in 0..w * h {
        if seen[start] || !in_piece(flag, ext, start) {
            continue;
        }
        // Flood the piece from its first pixel.
        piece.clear();
        piece.push(start);
        seen[start] = true;
        let mut next = 0;
        while next < piece.len() {
            let k = piece[next];
            next += 1;
            for kk in neighbours8(k, w, h) {
                if !seen[kk] && in_piece(flag, ext, kk) {
                    seen[kk] = true;
                    piece.push(kk);
                }
            }
        }
        let kept = piece.iter().filter(|&&k| matched[k] > 0.75).count();
        if kept as f32 >= s.rematch_whole * piece.len() as f32 {
            for &k in &piece {
                out[k] = flag[k];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn or_down_is_the_or_over_the_cut_window_and_range_the_min_and_max() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for (w, h, r) in [
            (5, 1, 0),
            (3, 7, 1),
            (4, 10, 2),
            (6, 33, 16),
            (2, 40, 3),
            (1, 5, 9),
        ] {
            let bits: Vec<u32> = (0..w * h).map(|_| 1 << (next() % 12)).collect();
            let keep = 0b1010_1010_1010;
            let got = or_down(&bits, keep, r, w, h);
            let l: Vec<f32> = bits.iter().map(|&b| b.trailing_zeros() as f32).collect();
            let ranges = range(&l, w, h, r.min(3));
            for y in 0..h {
                for x in 0..w {
                    let want = (y.saturating_sub(r)..=(y + r).min(h - 1))
                        .fold(0, |a, yy| a | (bits[yy * w + x] & keep));
                    assert_eq!(got[y * w + x], want, "{w}x{h} r {r} at ({x}, {y})");
                    let q = r.min(3) as i32;
                    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
                    for j in -q..=q {
                        for i in -q..=q {
                            let xx = (x as i32 + i).clamp(0, w as i32 - 1) as usize;
                            let yy = (y as i32 + j).clamp(0, h as i32 - 1) as usize;
                            lo = lo.min(l[yy * w + xx]);
                            hi = hi.max(l[yy * w + xx]);
                        }
                    }
                    assert_eq!((ranges[y * w + x], ranges[w * h + y * w + x]), (lo, hi));
                }
            }
        }
    }
}
