//! The GPU layer: one [`GpuContext`] (adapter, device, queue, pipeline cache, buffer pool) and
//! frames resident on the device ([`GpuFrame`]).
//!
//! Frames keep the CPU layout on the device (planar, row-major `f32`, see [`crate::frame::Frame`])
//! so a stage's kernel indexes the same way as its CPU twin. Kernels are WGSL files in `shaders/`,
//! one `@compute` entry per file, embedded in the binary and dispatched through
//! [`GpuContext::run_kernel`] with workgroups over `(x, y, plane)`.
//!
//! Errors from the device (validation, out of memory, device lost) come back as
//! `anyhow::Error`s from the call that caused them, or from the next checked call, never as a
//! panic.

mod context;
mod dpx10;
mod frame;
mod kernel;
mod pool;
mod samples;

pub use context::{list_adapters, AdapterChoice, GpuContext};
pub use frame::GpuFrame;
pub use kernel::{preprocess, Kernel, WORKGROUP_SIZE};
pub use samples::{list_workgroups, GatherUniform, GATHER};

// The pipeline shares one context and its frames between reader, stage and writer threads.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<GpuContext>();
    send_sync::<GpuFrame>();
};

/// Frame geometry, the first member of every kernel's uniform block.
/// Keep in sync with `struct Dims` in `shaders/shared/common.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Dims {
    pub width: u32,
    pub height: u32,
    pub planes: u32,
    /// Uniform blocks are laid out in 16-byte rows.
    pub _pad: u32,
}

impl Dims {
    pub fn of(frame: &GpuFrame) -> Self {
        Dims {
            width: frame.width as u32,
            height: frame.height as u32,
            planes: frame.planes as u32,
            _pad: 0,
        }
    }
}
