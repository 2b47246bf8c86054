//! Flicker: exposure that changes from frame to frame (hand-cranked cameras, uneven printing
//! lights and development, fading that differs along the reel).
//!
//! `v' = gain * (1 + r(x, y)) * channel_gain[p] * v + offset`, with per frame:
//! - `gain = 1 + s * (drift + step + flash + jitter)`: a slow drift (Catmull-Rom noise with a
//!   knot every `drift_period_frames`), a level that jumps to a new value now and then and stays,
//!   one-frame flashes, and frame-to-frame jitter;
//! - `offset`: a small drift and jitter of its own;
//! - `r`, regional breathing: a smooth low-frequency gain field, a sum of low-order cosine terms
//!   `c * cos(pi i (x + 0.5) / W) * cos(pi j (y + 0.5) / H)` for `(i, j)` in (1,0), (0,1),
//!   (1,1), (2,0), (0,2), whose mean over the frame is exactly 0;
//! - `channel_gain`, per-channel breathing (colour only) whose deviations from 1 sum to 0.
//!
//! So the mean of a flat frame of level `v` becomes exactly `gain * v + offset`.

use serde::Serialize;

use super::rng::{key, smooth1, stream, sub, Rng, SEQUENCE};
use crate::frame::Frame;

/// Knobs of `flicker` at strength 1 (all amplitudes scale with the strength).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlickerParams {
    /// Amplitude of the slow gain drift. Default 0.1.
    pub drift: f32,
    /// Frames between the drift's knots. Default 16.
    pub drift_period_frames: f32,
    /// Uniform frame-to-frame gain jitter, ±. Default 0.055.
    pub jitter: f32,
    /// Chance per frame of a one-frame flash. Default 0.05.
    pub flash_probability: f32,
    /// Size range of a flash's gain jump (either sign). Default (0.06, 0.18).
    pub flash: (f32, f32),
    /// Chance per frame that the gain level steps to a new value and stays. Default 0.03.
    pub step_probability: f32,
    /// Range of that level, ±. Default 0.06.
    pub step: f32,
    /// Amplitude of the offset's slow drift. Default 0.015.
    pub offset_drift: f32,
    /// Uniform offset jitter, ±. Default 0.005.
    pub offset_jitter: f32,
    /// Amplitude of the regional breathing (first-order terms; higher orders get half).
    /// Default 0.04.
    pub regional: f32,
    /// Frames between the regional terms' knots. Default 8.
    pub regional_period_frames: f32,
    /// Amplitude of the per-channel breathing. Default 0.02.
    pub channel: f32,
    /// Frames between the channel terms' knots. Default 12.
    pub channel_period_frames: f32,
}

impl Default for FlickerParams {
    fn default() -> Self {
        FlickerParams {
            drift: 0.1,
            drift_period_frames: 16.0,
            jitter: 0.055,
            flash_probability: 0.05,
            flash: (0.06, 0.18),
            step_probability: 0.03,
            step: 0.06,
            offset_drift: 0.015,
            offset_jitter: 0.005,
            regional: 0.04,
            regional_period_frames: 8.0,
            channel: 0.02,
            channel_period_frames: 12.0,
        }
    }
}

/// One regional breathing term: `c * cos(pi i (x + 0.5) / W) * cos(pi j (y + 0.5) / H)`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RegionalTerm {
    pub i: u32,
    pub j: u32,
    pub c: f32,
}

/// Flicker of one frame.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlickerFrame {
    pub gain: f32,
    pub offset: f32,
    /// Whether this frame holds a one-frame flash.
    pub flash: bool,
    pub regional: Vec<RegionalTerm>,
    /// One per plane; for colour their deviations from 1 sum to 0.
    pub channel_gain: Vec<f32>,
}

const MODES: [(u32, u32, f32); 5] = [
    (1, 0, 1.0),
    (0, 1, 1.0),
    (1, 1, 0.6),
    (2, 0, 0.5),
    (0, 2, 0.5),
];

/// The flicker of every frame of a sequence of `n` frames.
pub(crate) fn plan(
    p: &FlickerParams,
    seed: u64,
    s: f32,
    n: usize,
    planes: usize,
) -> Vec<FlickerFrame> {
    let seq = key(seed, SEQUENCE, stream::FLICKER);
    let mut level = 0.0f32;
    (0..n)
        .map(|t| {
            let mut rng = Rng::new(key(seed, t as u64, stream::FLICKER));
            let tf = t as f32;
            if rng.chance(p.step_probability) {
                level = rng.range(-p.step, p.step);
            }
            let flash = rng.chance(p.flash_probability);
            let jump = if flash {
                rng.sign() * rng.within(p.flash)
            } else {
                0.0
            };
            let drift = p.drift * smooth1(sub(seq, 0), tf / p.drift_period_frames.max(1.0));
            let jitter = p.jitter * rng.range(-1.0, 1.0);
            let gain = (1.0 + s * (drift + level + jump + jitter)).max(0.05);
            let offset = s
                * (p.offset_drift * smooth1(sub(seq, 1), tf / p.drift_period_frames.max(1.0))
                    + p.offset_jitter * rng.range(-1.0, 1.0));
            let regional = MODES
                .iter()
                .enumerate()
                .map(|(m, &(i, j, weight))| {
                    let slow = smooth1(
                        sub(seq, 10 + m as u64),
                        tf / p.regional_period_frames.max(1.0),
                    );
                    let c = s * p.regional * weight * (0.75 * slow + 0.25 * rng.range(-1.0, 1.0));
                    RegionalTerm { i, j, c }
                })
                .collect();
            let mut channel: Vec<f32> = (0..planes)
                .map(|c| {
                    if planes < 3 {
                        return 0.0;
                    }
                    let slow = smooth1(
                        sub(seq, 20 + c as u64),
                        tf / p.channel_period_frames.max(1.0),
                    );
                    s * p.channel * (0.75 * slow + 0.25 * rng.range(-1.0, 1.0))
                })
                .collect();
            let mean = channel.iter().sum::<f32>() / planes.max(1) as f32;
            channel.iter_mut().for_each(|b| *b = 1.0 + *b - mean);
            FlickerFrame {
                gain,
                offset,
                flash,
                regional,
                channel_gain: channel,
            }
        })
        .collect()
}

/// `cos(pi k (i + 0.5) / n)` for `i` in `0..n`.
fn cosines(k: u32, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (std::f64::consts::PI * k as f64 * (i as f64 + 0.5) / n as f64).cos() as f32)
        .collect()
}

/// The regional gain field `r(x, y)` of one frame, `w * h` samples.
pub fn regional_field(terms: &[RegionalTerm], w: usize, h: usize) -> Vec<f32> {
    let mut r = vec![0.0f32; w * h];
    for t in terms {
        if t.c == 0.0 {
            continue;
        }
        let (cx, cy) = (cosines(t.i, w), cosines(t.j, h));
        for (y, row) in r.chunks_mut(w.max(1)).enumerate() {
            for (x, v) in row.iter_mut().enumerate() {
                *v += t.c * cx[x] * cy[y];
            }
        }
    }
    r
}

pub(crate) fn apply(frame: &mut Frame, f: &FlickerFrame) {
    let r = regional_field(&f.regional, frame.width, frame.height);
    for (p, plane) in frame.planes_mut().into_iter().enumerate() {
        let g = f.gain * f.channel_gain.get(p).copied().unwrap_or(1.0);
        for (v, r) in plane.iter_mut().zip(&r) {
            *v = g * (1.0 + r) * *v + f.offset;
        }
    }
}
