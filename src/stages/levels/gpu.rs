//! GPU `levels`: dispatch of `shaders/levels.wgsl`, one invocation per sample.

use anyhow::Result;

use super::LevelsParams;
use crate::gpu::{Dims, GpuContext, GpuFrame, Kernel};

const KERNEL: Kernel = Kernel {
    name: "levels",
    source: include_str!("../../../shaders/levels.wgsl"),
};

/// Keep in sync with `struct Params` in `shaders/levels.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct LevelsUniform {
    dims: Dims,
    /// Per plane `(black, 1 / (white - black), 1 / gamma, unused)`: a `vec4` per array element
    /// because uniform arrays have a 16-byte stride.
    k: [[f32; 4]; 3],
}

/// Apply levels to `input` into a new frame; `input` is left as it was.
pub fn apply(gpu: &GpuContext, input: &GpuFrame, params: &LevelsParams) -> Result<GpuFrame> {
    let k = params.coefficients().map(|[b, s, g]| [b, s, g, 0.0]);
    let uniform = LevelsUniform {
        dims: Dims::of(input),
        k,
    };
    let out = gpu.new_frame_like(input);
    gpu.run_kernel(
        &KERNEL,
        &[&input.buffer, &out.buffer],
        bytemuck::bytes_of(&uniform),
        GpuContext::frame_workgroups(input),
    )?;
    Ok(out)
}
