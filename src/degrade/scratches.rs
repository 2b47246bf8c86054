//! Vertical scratches: a projector or printer gate, or grit caught in it, scores the film along
//! its length, so a scratch persists over many frames at nearly the same column. Tracks are
//! drawn for the whole sequence first; each frame then shows the tracks alive at that frame.
//!
//! A track has a start column, a slow drift and a sinusoidal wander (or neither: a static
//! scratch), a width of 1–4 px with a smooth `cos^2` profile (the width is its full width at half
//! maximum), a polarity (bright: emulsion scraped off a print; dark: base scratch or a scratch
//! printed in from the negative), sometimes a partial row span with tapered ends, and an
//! intensity that varies along its length, with gaps where it breaks off.

use serde::Serialize;

use super::rng::{key, stream, sub, value_noise, Rng, SEQUENCE};
use super::spots::Polarity;
use super::Local;

/// Knobs of `scratches` at strength 1. Lengths are pixels at the resolution scale 1.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScratchParams {
    /// Mean number of tracks per 48 frames (Poisson; times the strength). There is always at
    /// least one when the strength is above 0. Default 1.5.
    pub per_48_frames: f32,
    /// Track duration as a share of the sequence (at least 6 frames, or all of a shorter one).
    /// Default (0.25, 1.0).
    pub length_fraction: (f32, f32),
    /// Share of tracks that do not move. Default 0.4.
    pub static_fraction: f32,
    /// Largest steady drift in pixels per frame. Default 0.25.
    pub drift_px_per_frame: f32,
    /// Largest sinusoidal wander in pixels. Default 1.5.
    pub wobble_px: f32,
    /// Wander period range in frames. Default (15, 60).
    pub wobble_period_frames: (f32, f32),
    /// Width range (FWHM) in pixels; narrow ones are more common. Default (1, 4).
    pub width_px: (f32, f32),
    /// Share of bright scratches. Default 0.6.
    pub bright_fraction: f32,
    /// Peak opacity range. Default (0.35, 0.8).
    pub opacity: (f32, f32),
    /// Level a dark scratch pulls toward. Default (0.03, 0.15).
    pub dark_level: (f32, f32),
    /// Level a bright scratch pulls toward. Default (0.88, 1.0).
    pub bright_level: (f32, f32),
    /// Share of tracks that cover only part of the frame height. Default 0.3.
    pub partial_fraction: f32,
    /// Scale in pixels of the intensity variation along the length (plus a finer octave at a
    /// fifth of it). Default 40.
    pub along_cell_px: f32,
    /// Depth of that variation, 0..1. Default 0.5.
    pub along_depth: f32,
    /// Roughly the share of the length where the scratch breaks off, 0..1. Default 0.12.
    pub gap: f32,
    /// Frame-to-frame variation of the opacity, 0..1. Default 0.25.
    pub frame_variation: f32,
}

impl Default for ScratchParams {
    fn default() -> Self {
        ScratchParams {
            per_48_frames: 1.5,
            length_fraction: (0.25, 1.0),
            static_fraction: 0.4,
            drift_px_per_frame: 0.25,
            wobble_px: 1.5,
            wobble_period_frames: (15.0, 60.0),
            width_px: (1.0, 4.0),
            bright_fraction: 0.6,
            opacity: (0.35, 0.8),
            dark_level: (0.03, 0.15),
            bright_level: (0.88, 1.0),
            partial_fraction: 0.3,
            along_cell_px: 40.0,
            along_depth: 0.5,
            gap: 0.12,
            frame_variation: 0.25,
        }
    }
}

/// One scratch over the frames it lives in.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Track {
    pub id: usize,
    pub first_frame: usize,
    pub last_frame: usize,
    /// Column at the first frame, pixels.
    pub x0: f32,
    pub drift_px_per_frame: f32,
    pub wobble_px: f32,
    pub wobble_period_frames: f32,
    pub wobble_phase: f32,
    /// Full width at half maximum, pixels.
    pub width: f32,
    pub polarity: Polarity,
    pub opacity: f32,
    pub level: f32,
    /// Rows `[first, last]` of a partial-height track (before per-frame jitter); `None` for full
    /// height.
    pub rows: Option<[f32; 2]>,
}

/// One track as it appears in one frame.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScratchFrame {
    pub track: usize,
    /// Centre column in pixels (pixel centres at integer coordinates), film coordinates.
    pub column: f32,
    pub width: f32,
    pub polarity: Polarity,
    pub level: f32,
    /// Peak opacity in this frame.
    pub opacity: f32,
    /// Rows `[first, last]` it spans; the ends of a partial span taper over `taper` pixels.
    pub rows: [f32; 2],
    pub taper: f32,
    #[serde(skip)]
    along_key: u64,
    #[serde(skip)]
    along_cell: f32,
    #[serde(skip)]
    along_depth: f32,
    #[serde(skip)]
    gap: f32,
    #[serde(skip)]
    bbox: [usize; 4],
}

/// The tracks of a sequence of `n` frames of width `w` and height `h`.
pub(crate) fn tracks(
    p: &ScratchParams,
    seed: u64,
    strength: f32,
    scale: f32,
    n: usize,
    (w, h): (usize, usize),
) -> Vec<Track> {
    if n == 0 || strength.is_nan() || strength <= 0.0 {
        return Vec::new();
    }
    let mut rng = Rng::new(key(seed, SEQUENCE, stream::SCRATCH));
    let count = rng
        .poisson(p.per_48_frames * strength * n as f32 / 48.0)
        .max(1);
    let (w, h) = (w as f32, h as f32);
    (0..count)
        .map(|id| {
            let len =
                ((n as f32 * rng.within(p.length_fraction)).round() as usize).clamp(n.min(6), n);
            let first = ((rng.unit() * (n - len + 1) as f32) as usize).min(n - len);
            let moving = !rng.chance(p.static_fraction);
            let drift = if moving {
                rng.range(-1.0, 1.0) * p.drift_px_per_frame * scale
            } else {
                0.0
            };
            let wobble = if moving {
                rng.unit() * p.wobble_px * scale
            } else {
                0.0
            };
            let period = rng.within(p.wobble_period_frames).max(2.0);
            let phase = rng.range(0.0, std::f32::consts::TAU);
            let width = (p.width_px.0 + (p.width_px.1 - p.width_px.0) * rng.unit().powi(2)) * scale;
            let bright = rng.chance(p.bright_fraction);
            let level = rng.within(if bright { p.bright_level } else { p.dark_level });
            let opacity = rng.within(p.opacity);
            let rows = rng.chance(p.partial_fraction).then(|| {
                let start = rng.range(-0.1, 0.5) * h;
                let end = start + rng.range(0.3, 0.8) * h;
                [start.max(0.0), end.min(h - 1.0)]
            });
            Track {
                id,
                first_frame: first,
                last_frame: first + len - 1,
                x0: rng.range(0.03, 0.97) * (w - 1.0),
                drift_px_per_frame: drift,
                wobble_px: wobble,
                wobble_period_frames: period,
                wobble_phase: phase,
                width,
                polarity: if bright {
                    Polarity::Bright
                } else {
                    Polarity::Dark
                },
                opacity,
                level,
                rows,
            }
        })
        .collect()
}

/// The tracks alive at frame `t`, as they appear there.
pub(crate) fn at_frame(
    tracks: &[Track],
    p: &ScratchParams,
    seed: u64,
    t: usize,
    scale: f32,
    (w, h): (usize, usize),
) -> Vec<ScratchFrame> {
    let frame_key = key(seed, t as u64, stream::SCRATCH);
    tracks
        .iter()
        .filter(|tr| (tr.first_frame..=tr.last_frame).contains(&t))
        .map(|tr| {
            let mut rng = Rng::new(sub(frame_key, tr.id as u64));
            let age = (t - tr.first_frame) as f32;
            let wander = tr.wobble_px
                * ((std::f32::consts::TAU * age / tr.wobble_period_frames + tr.wobble_phase).sin()
                    - tr.wobble_phase.sin());
            let column = (tr.x0 + tr.drift_px_per_frame * age + wander).clamp(0.0, w as f32 - 1.0);
            let opacity = tr.opacity * (1.0 - p.frame_variation.clamp(0.0, 1.0) * rng.unit());
            let (rows, taper) = match tr.rows {
                Some([a, b]) => {
                    let j = 0.03 * h as f32;
                    let a = (a + rng.range(-j, j)).max(0.0);
                    let b = (b + rng.range(-j, j)).min(h as f32 - 1.0).max(a + 1.0);
                    ([a, b], 6.0 * scale)
                }
                None => ([0.0, h as f32 - 1.0], 0.0),
            };
            let x0 = (column - tr.width).floor().max(0.0) as usize;
            let x1 = ((column + tr.width).ceil() as usize + 1).min(w);
            let y0 = (rows[0].floor().max(0.0) as usize).min(h);
            let y1 = (rows[1].ceil() as usize + 1).min(h);
            ScratchFrame {
                track: tr.id,
                column,
                width: tr.width,
                polarity: tr.polarity,
                level: tr.level,
                opacity,
                rows,
                taper,
                along_key: rng.next_u64(),
                along_cell: p.along_cell_px * scale,
                along_depth: p.along_depth.clamp(0.0, 1.0),
                gap: p.gap.clamp(0.0, 1.0),
                bbox: [x0, y0, x1, y1],
            }
        })
        .collect()
}

fn smoothstep01(e: f32) -> f32 {
    let e = e.clamp(0.0, 1.0);
    e * e * (3.0 - 2.0 * e)
}

impl ScratchFrame {
    /// Intensity factor along the length at row `y`, 0..1.
    fn along(&self, y: f32) -> f32 {
        // Two octaves: slow swells and a finer, scratchier flutter.
        let n = 0.7 * value_noise(self.along_key, 0.5, y, self.along_cell)
            + 0.3 * value_noise(self.along_key ^ 0x5bd1_e995, 0.5, y, self.along_cell / 5.0);
        let mut f = 1.0 - self.along_depth * (1.0 - n);
        if self.gap > 0.0 {
            f *= smoothstep01((n - self.gap) / 0.08 + 0.5);
        }
        if self.taper > 0.0 {
            f *= smoothstep01((y - self.rows[0]) / self.taper)
                * smoothstep01((self.rows[1] - y) / self.taper);
        }
        f
    }
}

impl Local for ScratchFrame {
    fn bbox(&self) -> [usize; 4] {
        self.bbox
    }

    fn level(&self) -> f32 {
        self.level
    }

    fn alpha(&self, x: f32, y: f32) -> f32 {
        let d = (x - self.column).abs();
        if d >= self.width || y < self.rows[0] || y > self.rows[1] {
            return 0.0;
        }
        let c = (std::f32::consts::FRAC_PI_2 * d / self.width).cos();
        self.opacity * c * c * self.along(y)
    }
}
