//! Grain: the emulsion's silver or dye clouds, new in every frame.
//!
//! `v' = v + amount * sqrt(clamp(v, 0, 1) + floor) * n_p(x, y)`: the standard deviation grows
//! with the square root of the level, like a count of developed grains. The unit-variance field
//! `n_p` is white gaussian noise blurred with a gaussian of `size_px` (spatially correlated, so
//! it reads as grain rather than sensor noise) and rescaled to unit variance; in colour it is
//! `sqrt(shared) * S + sqrt(1 - shared) * C_p`, a component common to all channels (the
//! grains of the three dye layers overlap) plus one per channel.

use rayon::prelude::*;
use serde::Serialize;

use super::optics::{convolve_plane, gaussian_kernel};
use super::rng::{gauss_at, sub};
use crate::frame::Frame;

/// Knobs of `grain` at strength 1.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GrainParams {
    /// Standard deviation at level 1 (times the strength). Default 0.022.
    pub amount: f32,
    /// Added to the level under the square root, so blacks keep a little grain. Default 0.02.
    pub floor: f32,
    /// Correlation radius: sigma in pixels of the blur applied to white noise (times the
    /// resolution scale). Default 0.8.
    pub size_px: f32,
    /// Share of the variance common to all channels (colour only), 0..1. Default 0.85.
    pub shared: f32,
}

impl Default for GrainParams {
    fn default() -> Self {
        GrainParams {
            amount: 0.022,
            floor: 0.02,
            size_px: 0.8,
            shared: 0.85,
        }
    }
}

/// Grain as applied to a sequence (the knobs after strength and resolution scale).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GrainPlan {
    pub amount: f32,
    pub floor: f32,
    pub size_px: f32,
    pub shared: f32,
    pub law: &'static str,
}

impl GrainPlan {
    pub fn new(p: &GrainParams, strength: f32, scale: f32) -> Self {
        GrainPlan {
            amount: p.amount * strength,
            floor: p.floor.max(0.0),
            size_px: p.size_px * scale,
            shared: p.shared.clamp(0.0, 1.0),
            law: "v + amount*sqrt(clamp(v,0,1)+floor)*n, n unit-variance gaussian-correlated noise",
        }
    }
}

/// One unit-variance correlated noise field of `w * h` samples.
fn field(key: u64, w: usize, h: usize, kernel: Option<&[f32]>) -> Vec<f32> {
    let mut f: Vec<f32> = (0..w * h)
        .into_par_iter()
        .map(|i| gauss_at(key, i as u64))
        .collect();
    if let Some(k) = kernel {
        convolve_plane(&mut f, w, h, k);
        // Variance of white noise through a separable kernel: (sum k_i^2)^2.
        let norm: f32 = k.iter().map(|v| v * v).sum();
        f.iter_mut().for_each(|v| *v /= norm);
    }
    f
}

/// Add grain to `frame`, drawn from the stream `key` (one per frame).
pub(crate) fn apply(frame: &mut Frame, g: &GrainPlan, key: u64) {
    if g.amount <= 0.0 {
        return;
    }
    let (w, h) = (frame.width, frame.height);
    let kernel = (g.size_px >= 0.05).then(|| gaussian_kernel(g.size_px));
    let shared = field(sub(key, 0), w, h, kernel.as_deref());
    let colour = frame.planes > 1;
    let (ws, wc) = if colour {
        (g.shared.sqrt(), (1.0 - g.shared).sqrt())
    } else {
        (1.0, 0.0)
    };
    for (p, plane) in frame.planes_mut().into_iter().enumerate() {
        let own = if colour && wc > 0.0 {
            Some(field(sub(key, 1 + p as u64), w, h, kernel.as_deref()))
        } else {
            None
        };
        for (i, v) in plane.iter_mut().enumerate() {
            let n = ws * shared[i] + own.as_ref().map_or(0.0, |o| wc * o[i]);
            let std = g.amount * (v.clamp(0.0, 1.0) + g.floor).sqrt();
            *v += std * n;
        }
    }
}
