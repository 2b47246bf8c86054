//! Dust, dirt, hairs and blotches: local damage that lives on one frame only.
//!
//! A dust speck is an irregular soft-edged blob built from a few overlapping ellipses whose
//! radii are perturbed by low harmonics of the angle and whose edge is roughened by value
//! noise; a hair or fibre is a thin curved stroke (a cubic Bézier); a blotch is a large,
//! semi-transparent, mottled stain with wide soft edges. Each covers the pixels it touches with
//! an opacity `alpha` and pulls them toward its level: `v' = v + alpha * (level - v)`.

use serde::Serialize;

use super::rng::{value_noise, Rng};
use super::Local;

/// Dark (dirt on the print stops light) or bright (dirt on the negative printed white; emulsion
/// lost down to the clear base).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Polarity {
    Dark,
    Bright,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpotKind {
    Dust,
    Hair,
    Blotch,
}

/// Knobs of `dust` at strength 1. Lengths are pixels at the resolution scale 1.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DustParams {
    /// Mean number of specks and hairs per frame (Poisson; times the strength). Default 15.
    pub per_frame: f32,
    /// Share of them that are hairs or fibres. Default 0.12.
    pub hair_fraction: f32,
    /// Share that is bright rather than dark. Default 0.3.
    pub bright_fraction: f32,
    /// Speck diameter range in pixels; small ones are much more common. Default (1, 12).
    pub size_px: (f32, f32),
    /// Exponent skewing sizes toward the small end (`size = lo + (hi - lo) * u^skew`). Default 2.5.
    pub size_skew: f32,
    /// Hair length range in pixels. Default (15, 70).
    pub hair_length_px: (f32, f32),
    /// Hair width range in pixels. Default (0.7, 1.6).
    pub hair_width_px: (f32, f32),
    /// Opacity range. Default (0.7, 1.0).
    pub opacity: (f32, f32),
    /// Level a dark speck pulls toward. Default (0.02, 0.12).
    pub dark_level: (f32, f32),
    /// Level a bright speck pulls toward. Default (0.85, 1.0).
    pub bright_level: (f32, f32),
}

impl Default for DustParams {
    fn default() -> Self {
        DustParams {
            per_frame: 15.0,
            hair_fraction: 0.12,
            bright_fraction: 0.3,
            size_px: (1.0, 12.0),
            size_skew: 2.5,
            hair_length_px: (15.0, 70.0),
            hair_width_px: (0.7, 1.6),
            opacity: (0.7, 1.0),
            dark_level: (0.02, 0.12),
            bright_level: (0.85, 1.0),
        }
    }
}

/// Knobs of `blotches` at strength 1. Lengths are pixels at the resolution scale 1.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BlotchParams {
    /// Mean number of blotches per frame (Poisson; times the strength). Default 0.5.
    pub per_frame: f32,
    /// Share that darkens rather than lightens. Default 0.7.
    pub dark_fraction: f32,
    /// Diameter range in pixels. Default (10, 60).
    pub size_px: (f32, f32),
    /// Peak opacity range: blotches are semi-transparent. Default (0.15, 0.5).
    pub opacity: (f32, f32),
    /// Level a dark blotch pulls toward. Default (0.03, 0.2).
    pub dark_level: (f32, f32),
    /// Level a light blotch pulls toward. Default (0.8, 1.0).
    pub bright_level: (f32, f32),
}

impl Default for BlotchParams {
    fn default() -> Self {
        BlotchParams {
            per_frame: 0.5,
            dark_fraction: 0.7,
            size_px: (10.0, 60.0),
            opacity: (0.15, 0.5),
            dark_level: (0.03, 0.2),
            bright_level: (0.8, 1.0),
        }
    }
}

#[derive(Clone, Debug)]
struct Ellipse {
    cx: f32,
    cy: f32,
    a: f32,
    b: f32,
    cos: f32,
    sin: f32,
    /// `(amplitude, phase)` of the radius harmonics of order 2, 3 and 5.
    harmonics: [(f32, f32); 3],
}

#[derive(Clone, Debug)]
enum Shape {
    Blob {
        ellipses: Vec<Ellipse>,
        /// Width of the soft edge in pixels.
        soft: f32,
        /// Edge roughness in pixels, and the roughening noise's key and cell size.
        rough: f32,
        rough_key: u64,
        rough_cell: f32,
        /// Interior mottling depth (0: even), key and cell size.
        mottle: f32,
        mottle_key: u64,
        mottle_cell: f32,
    },
    Stroke {
        points: Vec<(f32, f32)>,
        half_width: f32,
        soft: f32,
    },
}

/// One speck, hair or blotch, as recorded in the truth file.
#[derive(Clone, Debug, Serialize)]
pub struct Spot {
    pub kind: SpotKind,
    /// Centre in pixels (pixel centres at integer coordinates), in film/reference coordinates.
    pub x: f32,
    pub y: f32,
    /// Diameter (dust, blotch) or length (hair) in pixels.
    pub size: f32,
    /// Stroke width in pixels (hairs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<f32>,
    pub polarity: Polarity,
    pub opacity: f32,
    /// The level the spot pulls pixels toward.
    pub level: f32,
    /// Pixels it may touch: `[x0, y0, x1, y1)`.
    pub bbox: [usize; 4],
    #[serde(skip)]
    shape: Shape,
}

fn smoothstep01(e: f32) -> f32 {
    let e = e.clamp(0.0, 1.0);
    e * e * (3.0 - 2.0 * e)
}

fn clip_box(x0: f32, y0: f32, x1: f32, y1: f32, w: usize, h: usize) -> [usize; 4] {
    let lo = |v: f32, n: usize| (v.floor().max(0.0) as usize).min(n);
    let hi = |v: f32, n: usize| ((v.ceil() + 1.0).max(0.0) as usize).min(n);
    [lo(x0, w), lo(y0, h), hi(x1, w), hi(y1, h)]
}

impl Ellipse {
    fn random(rng: &mut Rng, cx: f32, cy: f32, a: f32, b: f32, wobble: f32) -> Self {
        let angle = rng.range(0.0, std::f32::consts::PI);
        let mut harmonics = [(0.0, 0.0); 3];
        for h in &mut harmonics {
            *h = (
                rng.range(0.0, wobble),
                rng.range(0.0, std::f32::consts::TAU),
            );
        }
        Ellipse {
            cx,
            cy,
            a: a.max(0.3),
            b: b.max(0.3),
            cos: angle.cos(),
            sin: angle.sin(),
            harmonics,
        }
    }

    /// Approximate signed distance in pixels (negative inside) of the perturbed ellipse.
    fn distance(&self, x: f32, y: f32) -> f32 {
        let (dx, dy) = (x - self.cx, y - self.cy);
        let u = (dx * self.cos + dy * self.sin) / self.a;
        let v = (-dx * self.sin + dy * self.cos) / self.b;
        let r = (u * u + v * v).sqrt();
        let t = v.atan2(u);
        let [(a2, p2), (a3, p3), (a5, p5)] = self.harmonics;
        let radius =
            1.0 + a2 * (2.0 * t + p2).sin() + a3 * (3.0 * t + p3).sin() + a5 * (5.0 * t + p5).sin();
        (r - radius) * (self.a * self.b).sqrt()
    }

    fn reach(&self) -> f32 {
        let wobble: f32 = self.harmonics.iter().map(|h| h.0).sum();
        self.a.max(self.b) * (1.0 + wobble)
    }
}

impl Spot {
    /// A blob of `n` ellipses, the first centred at `(x, y)`.
    #[allow(clippy::too_many_arguments)]
    fn blob(
        rng: &mut Rng,
        kind: SpotKind,
        (x, y): (f32, f32),
        d: f32,
        n: usize,
        spread: f32,
        wobble: f32,
        soft: f32,
        rough: f32,
        mottle: f32,
        (polarity, opacity, level): (Polarity, f32, f32),
        (w, h): (usize, usize),
    ) -> Spot {
        let mut ellipses = Vec::with_capacity(n);
        for i in 0..n {
            let (cx, cy, a) = if i == 0 {
                (x, y, 0.5 * d * rng.range(0.7, 1.0))
            } else {
                let r = spread * d * rng.unit().sqrt();
                let t = rng.range(0.0, std::f32::consts::TAU);
                (
                    x + r * t.cos(),
                    y + r * t.sin(),
                    0.5 * d * rng.range(0.3, 0.65),
                )
            };
            let b = a * rng.range(0.45, 1.0);
            ellipses.push(Ellipse::random(rng, cx, cy, a, b, wobble));
        }
        let reach = soft + rough;
        let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for e in &ellipses {
            let r = e.reach() + reach;
            x0 = x0.min(e.cx - r);
            y0 = y0.min(e.cy - r);
            x1 = x1.max(e.cx + r);
            y1 = y1.max(e.cy + r);
        }
        let rough_key = rng.next_u64();
        let mottle_key = rng.next_u64();
        Spot {
            kind,
            x,
            y,
            size: d,
            width: None,
            polarity,
            opacity,
            level,
            bbox: clip_box(x0, y0, x1, y1, w, h),
            shape: Shape::Blob {
                ellipses,
                soft,
                rough,
                rough_key,
                rough_cell: (d / 4.0).max(1.5),
                mottle,
                mottle_key,
                mottle_cell: (d / 6.0).max(3.0),
            },
        }
    }

    fn hair(
        rng: &mut Rng,
        (x, y): (f32, f32),
        length: f32,
        width: f32,
        (polarity, opacity, level): (Polarity, f32, f32),
        (w, h): (usize, usize),
    ) -> Spot {
        let t = rng.range(0.0, std::f32::consts::PI);
        let (c, s) = (t.cos(), t.sin());
        let half = 0.5 * length;
        let p0 = (x - half * c, y - half * s);
        let p3 = (x + half * c, y + half * s);
        // Control points bowed off the chord: curls, hooks and gentle arcs.
        let bow1 = rng.normal() * 0.3 * length;
        let bow2 = rng.normal() * 0.3 * length;
        let p1 = (x - half / 3.0 * c - bow1 * s, y - half / 3.0 * s + bow1 * c);
        let p2 = (x + half / 3.0 * c - bow2 * s, y + half / 3.0 * s + bow2 * c);
        let n = ((length / 1.5).ceil() as usize).max(8);
        let points: Vec<(f32, f32)> = (0..=n)
            .map(|i| {
                let u = i as f32 / n as f32;
                let v = 1.0 - u;
                let (b0, b1, b2, b3) = (v * v * v, 3.0 * v * v * u, 3.0 * v * u * u, u * u * u);
                (
                    b0 * p0.0 + b1 * p1.0 + b2 * p2.0 + b3 * p3.0,
                    b0 * p0.1 + b1 * p1.1 + b2 * p2.1 + b3 * p3.1,
                )
            })
            .collect();
        let soft = 0.6;
        let reach = 0.5 * width + soft;
        let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for &(px, py) in &points {
            x0 = x0.min(px - reach);
            y0 = y0.min(py - reach);
            x1 = x1.max(px + reach);
            y1 = y1.max(py + reach);
        }
        Spot {
            kind: SpotKind::Hair,
            x,
            y,
            size: length,
            width: Some(width),
            polarity,
            opacity,
            level,
            bbox: clip_box(x0, y0, x1, y1, w, h),
            shape: Shape::Stroke {
                points,
                half_width: 0.5 * width,
                soft,
            },
        }
    }
}

fn segment_distance(p: (f32, f32), a: (f32, f32), b: (f32, f32)) -> f32 {
    let (abx, aby) = (b.0 - a.0, b.1 - a.1);
    let (apx, apy) = (p.0 - a.0, p.1 - a.1);
    let len2 = abx * abx + aby * aby;
    let t = if len2 > 0.0 {
        ((apx * abx + apy * aby) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (dx, dy) = (apx - t * abx, apy - t * aby);
    (dx * dx + dy * dy).sqrt()
}

impl Local for Spot {
    fn bbox(&self) -> [usize; 4] {
        self.bbox
    }

    fn level(&self) -> f32 {
        self.level
    }

    fn alpha(&self, x: f32, y: f32) -> f32 {
        match &self.shape {
            Shape::Blob {
                ellipses,
                soft,
                rough,
                rough_key,
                rough_cell,
                mottle,
                mottle_key,
                mottle_cell,
            } => {
                let mut d = ellipses
                    .iter()
                    .map(|e| e.distance(x, y))
                    .fold(f32::MAX, f32::min);
                if *rough > 0.0 {
                    d += rough * (2.0 * value_noise(*rough_key, x, y, *rough_cell) - 1.0);
                }
                let mut a = self.opacity * smoothstep01(0.5 - d / soft);
                if *mottle > 0.0 && a > 0.0 {
                    a *= 1.0 - mottle * value_noise(*mottle_key, x, y, *mottle_cell);
                }
                a
            }
            Shape::Stroke {
                points,
                half_width,
                soft,
            } => {
                let d = points
                    .windows(2)
                    .map(|s| segment_distance((x, y), s[0], s[1]))
                    .fold(f32::MAX, f32::min);
                self.opacity * smoothstep01(0.5 - (d - half_width) / soft)
            }
        }
    }
}

/// The dust specks and hairs of one frame.
pub(crate) fn dust(
    rng: &mut Rng,
    p: &DustParams,
    strength: f32,
    scale: f32,
    (w, h): (usize, usize),
) -> Vec<Spot> {
    let count = rng.poisson(p.per_frame * strength);
    (0..count)
        .map(|_| {
            let at = (
                rng.range(-0.5, w as f32 - 0.5),
                rng.range(-0.5, h as f32 - 0.5),
            );
            let bright = rng.chance(p.bright_fraction);
            let polarity = if bright {
                Polarity::Bright
            } else {
                Polarity::Dark
            };
            let level = rng.within(if bright { p.bright_level } else { p.dark_level });
            let look = (polarity, rng.within(p.opacity), level);
            if rng.chance(p.hair_fraction) {
                let length = rng.within(p.hair_length_px) * scale;
                let width = rng.within(p.hair_width_px) * scale;
                Spot::hair(rng, at, length, width, look, (w, h))
            } else {
                let d = (p.size_px.0
                    + (p.size_px.1 - p.size_px.0) * rng.unit().powf(p.size_skew.max(0.1)))
                    * scale;
                let n = 1 + (rng.unit() * (1.0 + d / 3.0).min(3.0)) as usize;
                let wobble = if d < 3.0 * scale { 0.05 } else { 0.12 };
                let soft = 0.5 + 0.06 * d;
                let rough = 0.25 * (d / 4.0).min(1.0);
                Spot::blob(
                    rng,
                    SpotKind::Dust,
                    at,
                    d,
                    n,
                    0.25,
                    wobble,
                    soft,
                    rough,
                    0.0,
                    look,
                    (w, h),
                )
            }
        })
        .collect()
}

/// The blotches of one frame.
pub(crate) fn blotches(
    rng: &mut Rng,
    p: &BlotchParams,
    strength: f32,
    scale: f32,
    (w, h): (usize, usize),
) -> Vec<Spot> {
    let count = rng.poisson(p.per_frame * strength);
    (0..count)
        .map(|_| {
            let at = (
                rng.range(-0.5, w as f32 - 0.5),
                rng.range(-0.5, h as f32 - 0.5),
            );
            let dark = rng.chance(p.dark_fraction);
            let polarity = if dark {
                Polarity::Dark
            } else {
                Polarity::Bright
            };
            let level = rng.within(if dark { p.dark_level } else { p.bright_level });
            let look = (polarity, rng.within(p.opacity), level);
            let d = (p.size_px.0 + (p.size_px.1 - p.size_px.0) * rng.unit().powf(1.5)) * scale;
            let n = 3 + (rng.unit() * 4.0) as usize;
            let soft = 0.22 * d * rng.range(0.8, 1.2);
            Spot::blob(
                rng,
                SpotKind::Blotch,
                at,
                d,
                n,
                0.3,
                0.2,
                soft,
                0.08 * d,
                0.35,
                look,
                (w, h),
            )
        })
        .collect()
}
