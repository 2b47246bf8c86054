//! `levels`: per-channel black point, white point and gamma.
//!
//! `out = t^(1/gamma)` with `t = (in - black) / (white - black)`, for `t > 0`; values at or
//! below the black point map linearly (`out = t`), so nothing is clipped in the float domain
//! and the stage stays invertible. CPU reference: [`cpu::apply`]; shader: `shaders/levels.wgsl`;
//! parity tolerance: [`GPU_TOLERANCE`].

pub mod cpu;
pub mod gpu;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{Stage, Window};
use crate::frame::Frame;
use crate::gpu::{GpuContext, GpuFrame};

/// Largest allowed difference between the GPU and CPU results: absolute for values up to 1,
/// relative above (extreme settings push outputs far above 1, where an f32 step exceeds any
/// absolute bound). The GPU's `pow` is exp2/log2 based with a few ulp of error; 2e-5 is a
/// seventh of a 16-bit code value. Seen on lavapipe: about 5e-7 in the normal range.
pub const GPU_TOLERANCE: f32 = 2e-5;

/// A value given once for all channels or once per channel (R, G, B). Kept as `f64` so the
/// record shows exactly what was asked for; kernels get `f32`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PerChannel {
    All(f64),
    Each([f64; 3]),
}

impl PerChannel {
    /// The value for plane `p` (a monochrome frame uses the first).
    pub fn get(&self, p: usize) -> f64 {
        match self {
            PerChannel::All(v) => *v,
            PerChannel::Each(a) => a[p.min(2)],
        }
    }

    fn values(&self) -> [f64; 3] {
        [self.get(0), self.get(1), self.get(2)]
    }
}

/// Parameters of `levels`. Cost: one read and one write per sample; negligible.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LevelsParams {
    /// Input value mapped to 0. Range -0.5..1, default 0.
    pub black: PerChannel,
    /// Input value mapped to 1. Range 0..2 and above `black`, default 1.
    pub white: PerChannel,
    /// Midtone exponent; above 1 brightens. Range 0.1..10, default 1.
    pub gamma: PerChannel,
}

impl Default for LevelsParams {
    fn default() -> Self {
        LevelsParams {
            black: PerChannel::All(0.0),
            white: PerChannel::All(1.0),
            gamma: PerChannel::All(1.0),
        }
    }
}

impl LevelsParams {
    pub fn validate(&self) -> Result<()> {
        for c in 0..3 {
            let (b, w, g) = (self.black.get(c), self.white.get(c), self.gamma.get(c));
            if !(-0.5..1.0).contains(&b) {
                bail!("levels.black = {b} is out of range (valid: -0.5 to 1)");
            }
            if !(0.0..=2.0).contains(&w) || w <= 0.0 {
                bail!("levels.white = {w} is out of range (valid: above 0, at most 2)");
            }
            if w - b < 1e-3 {
                bail!("levels.white ({w}) must be above levels.black ({b}) by at least 0.001");
            }
            if !(0.1..=10.0).contains(&g) {
                bail!("levels.gamma = {g} is out of range (valid: 0.1 to 10)");
            }
        }
        Ok(())
    }

    /// Per-plane coefficients: `(black, 1 / (white - black), 1 / gamma)`.
    pub fn coefficients(&self) -> [[f32; 3]; 3] {
        let (b, w, g) = (
            self.black.values(),
            self.white.values(),
            self.gamma.values(),
        );
        std::array::from_fn(|c| {
            [
                b[c] as f32,
                (1.0 / (w[c] - b[c])) as f32,
                (1.0 / g[c]) as f32,
            ]
        })
    }
}

pub struct Levels {
    pub params: LevelsParams,
}

impl Levels {
    pub fn new(params: LevelsParams) -> Result<Self> {
        params.validate()?;
        Ok(Levels { params })
    }

    pub fn from_table(table: &toml::Table) -> Result<Self> {
        let params: LevelsParams = table
            .clone()
            .try_into()
            .context("invalid parameters for stage 'levels' (keys: black, white, gamma)")?;
        Self::new(params)
    }
}

impl Stage for Levels {
    fn name(&self) -> &'static str {
        "levels"
    }

    fn gpu_tolerance(&self) -> f32 {
        GPU_TOLERANCE
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn run_cpu(&self, window: &Window<'_, Frame>) -> Result<Frame> {
        let mut out = window.center.clone();
        cpu::apply(&mut out, &self.params);
        Ok(out)
    }

    fn run_gpu(&self, gpu: &GpuContext, window: &Window<'_, GpuFrame>) -> Result<GpuFrame> {
        gpu::apply(gpu, window.center, &self.params)
    }
}
