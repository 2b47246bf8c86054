//! Local motion between two frames: a block motion field estimated on a luma pyramid, and the
//! warp that compensates one frame onto another with it. Shared by the temporal stages that
//! need to line up neighbouring frames pixel by pixel (`dust`; later denoise, scratches,
//! upscale).
//!
//! Use (CPU; [`gpu`] has the same calls on device frames):
//! ```text
//! let a = cpu::Pyramid::of(&frame_a, &params);   // once per frame
//! let b = cpu::Pyramid::of(&frame_b, &params);
//! let field = cpu::estimate(&a, &b, &params);     // where each block of A is found in B
//! let b_on_a = cpu::warp(&frame_b, &field);        // B moved onto A's pixel grid
//! // or, sharper at motion boundaries, the vector chosen per pixel:
//! let b_on_a = cpu::compensate(&frame_b, &field, &a.levels[0], &b.levels[0]);
//! ```
//!
//! Method: the luma (mean of the planes) is reduced by 2x2 box averages into up to
//! `max_levels` levels, the coarsest at least four blocks across. On every level the picture is
//! cut into `block` x `block` blocks; each block is matched over a window twice its size (so
//! neighbouring blocks share pixels and the field stays smooth) by the mean absolute
//! difference plus `lambda` per pixel of departure from its predictor. The coarsest level
//! searches `search` pixels around zero; each finer level takes as predictor twice the
//! component-wise median of the 3x3 coarser vectors around its parent (robust to a block that
//! matched a defect) and searches one pixel around it, and zero motion is always tried too.
//! On the finest level each component is refined by half- then quarter-pixel steps (B sampled
//! bilinearly), each taken only if strictly cheaper, so an exact match stays exact. The warp interpolates the vectors bilinearly between block centres and
//! samples B bilinearly, clamped at the edges.
//!
//! A vector `(vx, vy)` at a pixel `(x, y)` of A says that A's content there is found at
//! `(x + vx, y + vy)` in B.
//!
//! The CPU functions ([`cpu`]) are the reference; the shaders (`shaders/motion_*.wgsl`) do the
//! same arithmetic in the same order. Parity: see [`FIELD_TOLERANCE`].

pub mod cpu;
pub mod gpu;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// Largest difference in pixels between GPU and CPU vectors. Vectors are multiples of a
/// quarter pixel, so the two agree exactly unless rounding (a fused multiply-add on the GPU)
/// tips a near-tie between candidates; the parity test allows no such flip on its scenes.
pub const FIELD_TOLERANCE: f32 = 0.0;

/// Knobs of the motion estimator. Cost grows with `search` squared on the coarsest level and
/// with the frame area over `block` on the others.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MotionParams {
    /// Block side in pixels on every level. Range 4..32, default 8. Smaller follows smaller
    /// moving objects; larger is steadier on grain and flat areas.
    pub block: usize,
    /// Search radius in pixels on the coarsest level. Range 1..16, default 4. The largest motion
    /// found is about `search * 2^(levels-1)` plus one pixel per finer level.
    pub search: usize,
    /// Most pyramid levels. Range 1..6, default 4.
    pub max_levels: usize,
    /// Cost per pixel of departure from the predicted vector, in mean-absolute-difference
    /// units. Range 0..0.1, default 0.002; higher prefers smooth fields over exact matches.
    pub lambda: f32,
}

impl Default for MotionParams {
    fn default() -> Self {
        MotionParams {
            block: 8,
            search: 4,
            max_levels: 4,
            lambda: 0.002,
        }
    }
}

impl MotionParams {
    /// Check ranges; `prefix` names the parameter table in messages (e.g. `dust.motion`).
    pub fn validate(&self, prefix: &str) -> Result<()> {
        if !(4..=32).contains(&self.block) {
            bail!(
                "{prefix}.block = {} is out of range (valid: 4 to 32)",
                self.block
            );
        }
        if !(1..=16).contains(&self.search) {
            bail!(
                "{prefix}.search = {} is out of range (valid: 1 to 16)",
                self.search
            );
        }
        if !(1..=6).contains(&self.max_levels) {
            bail!(
                "{prefix}.max_levels = {} is out of range (valid: 1 to 6)",
                self.max_levels
            );
        }
        if !(0.0..=0.1).contains(&self.lambda) {
            bail!(
                "{prefix}.lambda = {} is out of range (valid: 0 to 0.1)",
                self.lambda
            );
        }
        Ok(())
    }

    /// Pyramid levels for a `width` x `height` frame: the coarsest is at least four blocks
    /// across in both directions (one level for frames smaller than that).
    pub fn levels(&self, width: usize, height: usize) -> usize {
        let mut n = 1;
        while n < self.max_levels
            && (width >> n) >= 4 * self.block
            && (height >> n) >= 4 * self.block
        {
            n += 1;
        }
        n
    }

    /// Largest displacement the search can reach, in pixels of the full frame.
    pub fn reach(&self, width: usize, height: usize) -> usize {
        (self.search + 1) << (self.levels(width, height) - 1)
    }
}

/// Width and height of each pyramid level: halved (rounded down) from the level above.
pub fn level_sizes(width: usize, height: usize, levels: usize) -> Vec<(usize, usize)> {
    let mut sizes = vec![(width, height)];
    for _ in 1..levels {
        let (w, h) = *sizes.last().unwrap();
        sizes.push(((w / 2).max(1), (h / 2).max(1)));
    }
    sizes
}

/// A block motion field from frame A to frame B: one vector per `block` x `block` block of A,
/// `cols` x `rows` of them, row-major, `vx` and `vy` in pixels of the full frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub width: usize,
    pub height: usize,
    pub block: usize,
    pub cols: usize,
    pub rows: usize,
    pub vx: Vec<f32>,
    pub vy: Vec<f32>,
}

impl Field {
    /// Zero motion for a `width` x `height` frame.
    pub fn zero(width: usize, height: usize, block: usize) -> Self {
        let (cols, rows) = (width.div_ceil(block), height.div_ceil(block));
        Field {
            width,
            height,
            block,
            cols,
            rows,
            vx: vec![0.0; cols * rows],
            vy: vec![0.0; cols * rows],
        }
    }

    /// The vector of block `(bx, by)`.
    pub fn at(&self, bx: usize, by: usize) -> (f32, f32) {
        let i = by * self.cols + bx;
        (self.vx[i], self.vy[i])
    }

    /// The interpolated vector at pixel `(x, y)`, as the warp uses it.
    pub fn at_pixel(&self, x: usize, y: usize) -> (f32, f32) {
        cpu::field_at(self, x as f32, y as f32)
    }
}
