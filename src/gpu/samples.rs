//! Samples at a list of indices, to and from a frame on the device: the few samples a stage
//! needs on the host (stabilise's fingerprints, the pixels a defect stage repaired) come back
//! without downloading the frame (`shaders/gather.wgsl`), and a few go in (`shaders/scatter.wgsl`).

use anyhow::Result;

use super::{GpuContext, GpuFrame, Kernel};
use crate::frame::{Frame, FrameMeta};

pub const GATHER: Kernel = Kernel {
    name: "gather",
    source: include_str!("../../shaders/gather.wgsl"),
};

const SCATTER: Kernel = Kernel {
    name: "scatter",
    source: include_str!("../../shaders/scatter.wgsl"),
};

/// Keep in sync with `struct Params` in `shaders/gather.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GatherUniform {
    pub count: u32,
    pub slot: u32,
    pub _pad: [u32; 2],
}

/// Keep in sync with `struct Params` in `shaders/scatter.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct ScatterUniform {
    count: u32,
    _pad: [u32; 3],
}

/// Workgroups of 64 for `count` invocations, in rows of at most 65535 groups (the kernels
/// number an invocation `x + y * groups_x * 64`).
pub fn list_workgroups(count: usize) -> [u32; 3] {
    let groups = count.div_ceil(64).max(1);
    let x = groups.min(65535);
    [x as u32, groups.div_ceil(x) as u32, 1]
}

impl GpuContext {
    /// A one-row buffer holding `data` (at least one sample).
    pub fn flat(&self, mut data: Vec<f32>) -> Result<GpuFrame> {
        let n = data.len().max(1);
        data.resize(n, 0.0);
        self.upload(&Frame {
            width: n,
            height: 1,
            planes: 1,
            data,
            meta: FrameMeta::default(),
        })
    }

    /// Indices as a buffer: they travel as the bits of f32 samples (values below 2^32 are
    /// denormals or ordinary numbers, never rewritten by a copy).
    pub fn flat_indices(&self, indices: &[u32]) -> Result<GpuFrame> {
        self.flat(indices.iter().copied().map(f32::from_bits).collect())
    }

    /// `frame`'s samples at `indices`; waits for the work queued before it.
    pub fn gather(&self, frame: &GpuFrame, indices: &[u32]) -> Result<Vec<f32>> {
        if indices.is_empty() {
            return Ok(Vec::new());
        }
        let idx = self.flat_indices(indices)?;
        let dst = self.flat(vec![0.0; indices.len()])?;
        let uniform = GatherUniform {
            count: indices.len() as u32,
            slot: 0,
            _pad: [0; 2],
        };
        self.run_kernel(
            &GATHER,
            &[&frame.buffer, &idx.buffer, &dst.buffer],
            bytemuck::bytes_of(&uniform),
            list_workgroups(indices.len()),
        )?;
        let mut out = self.download(&dst)?.data;
        out.truncate(indices.len());
        self.recycle(idx);
        self.recycle(dst);
        Ok(out)
    }

    /// Write `values` into `frame` at `indices` (one value per index).
    pub fn scatter(&self, frame: &GpuFrame, indices: &[u32], values: &[f32]) -> Result<()> {
        assert_eq!(indices.len(), values.len(), "one value per index");
        if indices.is_empty() {
            return Ok(());
        }
        let idx = self.flat_indices(indices)?;
        let vals = self.flat(values.to_vec())?;
        let uniform = ScatterUniform {
            count: indices.len() as u32,
            _pad: [0; 3],
        };
        self.run_kernel(
            &SCATTER,
            &[&frame.buffer, &idx.buffer, &vals.buffer],
            bytemuck::bytes_of(&uniform),
            list_workgroups(indices.len()),
        )?;
        self.recycle(idx);
        self.recycle(vals);
        Ok(())
    }
}
