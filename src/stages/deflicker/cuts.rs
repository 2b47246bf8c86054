//! Shot cuts between neighbouring frames, robust to flicker, grain, dust and camera motion.
//!
//! Frames are compared as small luma thumbnails (block means, about [`THUMB_SIDE`] blocks
//! along the longer side): the second is registered on the first by the integer shift of up
//! to [`MAX_SHIFT`] blocks (refined to a fraction by a parabola) that maximises their
//! normalised cross-correlation over the overlap. Correlation ignores gain and offset, so
//! flicker (even a one-frame flash) leaves it high, while a cut to other content drops it.
//! Two frames without structure (flat, e.g. black leader) are taken as the same shot; one flat
//! frame next to a structured one is a cut (a fade to black separates its shots).
//!
//! Use: `Thumbnail::of(&frame)` once per frame, [`compare`] neighbours, [`is_cut`] with a
//! threshold (0.5 is a good default: a correlation below 0.5 after registration). Stages that
//! keep other thumbnails may build one with [`Thumbnail::new`].

use super::analysis::Geometry;
use super::cpu::block_sums;
use crate::frame::Frame;

/// Blocks along the longer side of a thumbnail.
pub const THUMB_SIDE: usize = 80;
/// Largest shift searched, in blocks (about 8 % of the frame's longer side either way).
pub const MAX_SHIFT: i32 = 3;
/// Standard deviation below which a thumbnail counts as flat (normalised code values).
const FLAT: f64 = 2e-4;

/// A luma thumbnail: `width * height` block means, row-major. Non-finite values are ignored.
#[derive(Clone, Debug, PartialEq)]
pub struct Thumbnail {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

impl Thumbnail {
    pub fn new(width: usize, height: usize, data: Vec<f32>) -> Self {
        assert_eq!(data.len(), width * height, "thumbnail size");
        Thumbnail {
            width,
            height,
            data,
        }
    }

    /// The luma thumbnail of a frame (Rec.709 weights for three planes, else the first plane).
    pub fn of(frame: &Frame) -> Self {
        let geo = Geometry::of(frame.width, frame.height, frame.planes);
        let sums = block_sums(frame, &geo);
        let means = geo.means(&sums);
        Thumbnail::new(geo.tw, geo.th, luma(&means, geo.tw * geo.th, geo.planes))
    }
}

/// Rec.709 luma of planar data (`n` samples per plane) for three planes, the first plane
/// otherwise.
pub fn luma(planar: &[f32], n: usize, planes: usize) -> Vec<f32> {
    if planes == 3 {
        (0..n)
            .map(|i| 0.2126 * planar[i] + 0.7152 * planar[n + i] + 0.0722 * planar[2 * n + i])
            .collect()
    } else {
        planar[..n].to_vec()
    }
}

/// How alike two thumbnails are once registered.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Similarity {
    /// Normalised cross-correlation at the best shift, -1..1 (1 for two flat thumbnails).
    pub correlation: f32,
    /// Shift of the second on the first, in blocks: `b(x + dx, y + dy) ~ a(x, y)`.
    pub shift: (f32, f32),
}

impl Similarity {
    /// `1 - max(correlation, 0)`: 0 for the same picture, 1 for unrelated ones.
    pub fn dissimilarity(&self) -> f32 {
        1.0 - self.correlation.max(0.0)
    }
}

/// True when the two are different shots: dissimilarity above `threshold`.
pub fn is_cut(similarity: &Similarity, threshold: f64) -> bool {
    similarity.dissimilarity() as f64 > threshold
}

/// Register `b` on `a` and measure their correlation. Both must be the same size.
pub fn compare(a: &Thumbnail, b: &Thumbnail) -> Similarity {
    assert_eq!((a.width, a.height), (b.width, b.height), "thumbnail sizes");
    let (flat_a, flat_b) = (is_flat(a), is_flat(b));
    if flat_a || flat_b {
        return Similarity {
            correlation: if flat_a && flat_b { 1.0 } else { 0.0 },
            shift: (0.0, 0.0),
        };
    }
    let s = MAX_SHIFT
        .min(a.width as i32 / 4)
        .min(a.height as i32 / 4)
        .max(0);
    let side = (2 * s + 1) as usize;
    let mut table = vec![f64::NEG_INFINITY; side * side];
    let mut best = (0i32, 0i32, f64::NEG_INFINITY);
    for dy in -s..=s {
        for dx in -s..=s {
            let c = ncc(a, b, dx, dy);
            table[((dy + s) as usize) * side + (dx + s) as usize] = c;
            // Ties go to the smaller shift (visited order is not symmetric).
            if c > best.2 + 1e-12
                || (c >= best.2 - 1e-12 && dx.abs() + dy.abs() < best.0.abs() + best.1.abs())
            {
                best = (dx, dy, c);
            }
        }
    }
    if !best.2.is_finite() {
        return Similarity {
            correlation: 0.0,
            shift: (0.0, 0.0),
        };
    }
    let at = |dx: i32, dy: i32| {
        if dx.abs() > s || dy.abs() > s {
            f64::NEG_INFINITY
        } else {
            table[((dy + s) as usize) * side + (dx + s) as usize]
        }
    };
    let refine = |m: f64, c: f64, p: f64| {
        if !m.is_finite() || !p.is_finite() {
            return 0.0;
        }
        let den = m - 2.0 * c + p;
        if den >= -1e-12 {
            return 0.0;
        }
        (0.5 * (m - p) / den).clamp(-0.5, 0.5)
    };
    let (bx, by, c) = best;
    let fx = refine(at(bx - 1, by), c, at(bx + 1, by));
    let fy = refine(at(bx, by - 1), c, at(bx, by + 1));
    Similarity {
        correlation: c as f32,
        shift: ((bx as f64 + fx) as f32, (by as f64 + fy) as f32),
    }
}

fn is_flat(t: &Thumbnail) -> bool {
    let (mut n, mut s, mut s2) = (0.0f64, 0.0f64, 0.0f64);
    for &v in &t.data {
        if v.is_finite() {
            n += 1.0;
            s += v as f64;
            s2 += (v as f64) * (v as f64);
        }
    }
    if n < 2.0 {
        return true;
    }
    let var = (s2 - s * s / n) / n;
    var.max(0.0).sqrt() < FLAT
}

/// Normalised cross-correlation of `a(x, y)` with `b(x + dx, y + dy)` over their overlap.
fn ncc(a: &Thumbnail, b: &Thumbnail, dx: i32, dy: i32) -> f64 {
    let (w, h) = (a.width as i32, a.height as i32);
    let (x0, x1) = ((-dx).max(0), (w - dx).min(w));
    let (y0, y1) = ((-dy).max(0), (h - dy).min(h));
    let (mut n, mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0f64, 0.0, 0.0, 0.0, 0.0, 0.0);
    for y in y0..y1 {
        let ra = &a.data[(y * w + x0) as usize..(y * w + x1) as usize];
        let rb = &b.data[((y + dy) * w + x0 + dx) as usize..((y + dy) * w + x1 + dx) as usize];
        for (&u, &v) in ra.iter().zip(rb) {
            if !(u.is_finite() && v.is_finite()) {
                continue;
            }
            let (u, v) = (u as f64, v as f64);
            n += 1.0;
            sa += u;
            sb += v;
            saa += u * u;
            sbb += v * v;
            sab += u * v;
        }
    }
    if n < 4.0 {
        return f64::NEG_INFINITY;
    }
    let va = saa - sa * sa / n;
    let vb = sbb - sb * sb / n;
    let cov = sab - sa * sb / n;
    if va <= 0.0 || vb <= 0.0 {
        return 0.0;
    }
    cov / (va * vb).sqrt()
}
