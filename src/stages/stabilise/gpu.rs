//! GPU `stabilise`: frame fingerprints (`shaders/stabilise_gather.wgsl`, one small download per
//! window) so each frame is analysed once; the reduction of a new frame to the analysis
//! resolution (`shaders/stabilise_reduce.wgsl`) and its download; the estimation and the path
//! on the CPU (shared with the CPU backend, on bit-identical data); and the warp with its
//! border fill (`shaders/stabilise_warp.wgsl`).

use anyhow::{bail, Result};

use super::cpu::{fingerprint_indices, SourceMap, FINGERPRINT_SAMPLES};
use super::Fill;
use crate::frame::{Frame, FrameMeta};
use crate::gpu::{Dims, GpuContext, GpuFrame, Kernel};

const GATHER: Kernel = Kernel {
    name: "stabilise_gather",
    source: include_str!("../../../shaders/stabilise_gather.wgsl"),
};

const REDUCE: Kernel = Kernel {
    name: "stabilise_reduce",
    source: include_str!("../../../shaders/stabilise_reduce.wgsl"),
};

const WARP: Kernel = Kernel {
    name: "stabilise_warp",
    source: include_str!("../../../shaders/stabilise_warp.wgsl"),
};

/// Sources the warp kernel binds: the centre and up to four neighbours.
pub const MAX_SOURCES: usize = 5;

/// Keep in sync with `struct Params` in `shaders/stabilise_gather.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct GatherUniform {
    count: u32,
    slot: u32,
    _pad: [u32; 2],
}

/// Keep in sync with `struct Params` in `shaders/stabilise_reduce.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct ReduceUniform {
    dims: Dims,
    factor: u32,
    out_w: u32,
    out_h: u32,
    inv: f32,
}

/// Keep in sync with `struct Source` in `shaders/stabilise_warp.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct SourceUniform {
    m: [f32; 4],
    /// `(tx, ty, inv_gain, lift)`.
    t: [f32; 4],
}

/// Keep in sync with `struct Params` in `shaders/stabilise_warp.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct WarpUniform {
    dims: Dims,
    /// Output width, height, margin, fill code.
    out: [u32; 4],
    /// Sources in use.
    info: [u32; 4],
    center: [f32; 4],
    src: [SourceUniform; MAX_SOURCES],
}

/// Buffers kept from one window to the next.
pub struct Scratch {
    device: wgpu::Device,
    /// Fingerprint indices for frames of `len` samples.
    len: usize,
    indices: GpuFrame,
    /// Fingerprints of `slots` frames.
    prints: GpuFrame,
    slots: usize,
}

fn flat(gpu: &GpuContext, data: Vec<f32>) -> Result<GpuFrame> {
    let n = data.len().max(1);
    let mut data = data;
    data.resize(n, 0.0);
    gpu.upload(&Frame {
        width: n,
        height: 1,
        planes: 1,
        data,
        meta: FrameMeta::default(),
    })
}

/// The fingerprints of `frames` (all of one shape), the same samples as
/// `cpu::fingerprint`.
pub fn fingerprints(
    gpu: &GpuContext,
    frames: &[&GpuFrame],
    scratch: &mut Option<Scratch>,
) -> Result<Vec<Vec<f32>>> {
    let Some(first) = frames.first() else {
        return Ok(Vec::new());
    };
    let len = first.len();
    let fits = scratch
        .as_ref()
        .is_some_and(|s| s.device == gpu.device && s.len == len && s.slots >= frames.len());
    if !fits {
        let slots = frames.len().max(scratch.as_ref().map_or(0, |s| s.slots));
        if let Some(old) = scratch.take() {
            if old.device == gpu.device {
                gpu.recycle(old.indices);
                gpu.recycle(old.prints);
            }
        }
        // Indices travel as the bits of f32 samples (values below 2^32 are denormals or
        // ordinary numbers, never rewritten by a copy).
        let indices = fingerprint_indices(len)
            .into_iter()
            .map(f32::from_bits)
            .collect();
        *scratch = Some(Scratch {
            device: gpu.device.clone(),
            len,
            indices: flat(gpu, indices)?,
            prints: flat(gpu, vec![0.0; FINGERPRINT_SAMPLES * slots])?,
            slots,
        });
    }
    let s = scratch.as_ref().expect("just made");
    for (slot, frame) in frames.iter().enumerate() {
        if frame.len() != len {
            bail!("stabilise: frames of one window differ in shape");
        }
        let uniform = GatherUniform {
            count: FINGERPRINT_SAMPLES as u32,
            slot: slot as u32,
            _pad: [0; 2],
        };
        gpu.run_kernel(
            &GATHER,
            &[&frame.buffer, &s.indices.buffer, &s.prints.buffer],
            bytemuck::bytes_of(&uniform),
            [(FINGERPRINT_SAMPLES as u32).div_ceil(64), 1, 1],
        )?;
    }
    let all = gpu.download(&s.prints)?;
    Ok(all
        .data
        .chunks(FINGERPRINT_SAMPLES)
        .take(frames.len())
        .map(|c| c.to_vec())
        .collect())
}

/// The frame reduced to the analysis resolution (`cpu::reduce`), downloaded.
pub fn reduce(gpu: &GpuContext, frame: &GpuFrame, factor: usize) -> Result<Vec<f32>> {
    if factor <= 1 {
        return Ok(gpu.download(frame)?.data);
    }
    let (ow, oh) = (frame.width / factor, frame.height / factor);
    let out = flat(gpu, vec![0.0; ow * oh * frame.planes])?;
    let uniform = ReduceUniform {
        dims: Dims::of(frame),
        factor: factor as u32,
        out_w: ow as u32,
        out_h: oh as u32,
        inv: 1.0 / (factor * factor) as f32,
    };
    let result = gpu
        .run_kernel(
            &REDUCE,
            &[&frame.buffer, &out.buffer],
            bytemuck::bytes_of(&uniform),
            GpuContext::workgroups(ow, oh, frame.planes),
        )
        .and_then(|_| gpu.download(&out));
    gpu.recycle(out);
    let mut data = result?.data;
    data.truncate(ow * oh * frame.planes);
    Ok(data)
}

/// The warped centre with its border filled: `sources[i] = (index into frames, map)`,
/// `sources[0]` the centre; at most [`MAX_SOURCES`] are used.
pub fn warp(
    gpu: &GpuContext,
    frames: &[&GpuFrame],
    sources: &[(usize, SourceMap)],
    fill: Fill,
    margin: usize,
) -> Result<GpuFrame> {
    let center = frames[sources[0].0];
    let margin = if fill == Fill::Crop { margin } else { 0 };
    let (ow, oh) = (center.width - 2 * margin, center.height - 2 * margin);
    let used = sources.len().min(MAX_SOURCES);
    let mut src = [SourceUniform::default(); MAX_SOURCES];
    for (u, (_, s)) in src.iter_mut().zip(sources) {
        *u = SourceUniform {
            m: s.m,
            t: [s.t[0], s.t[1], s.inv_gain, s.lift],
        };
    }
    let uniform = WarpUniform {
        dims: Dims::of(center),
        out: [ow as u32, oh as u32, margin as u32, fill.code()],
        info: [used as u32, 0, 0, 0],
        center: [
            (center.width as f32 - 1.0) * 0.5,
            (center.height as f32 - 1.0) * 0.5,
            0.0,
            0.0,
        ],
        src,
    };
    let buffers: Vec<&wgpu::Buffer> = (0..MAX_SOURCES)
        .map(|k| {
            let i = if k < used { sources[k].0 } else { sources[0].0 };
            &frames[i].buffer
        })
        .collect();
    let mut out = gpu.new_frame_like(center);
    // A cropped frame keeps the (larger) buffer; only its leading samples are used.
    out.width = ow;
    out.height = oh;
    let mut bind: Vec<&wgpu::Buffer> = buffers;
    bind.push(&out.buffer);
    let result = gpu.run_kernel(
        &WARP,
        &bind,
        bytemuck::bytes_of(&uniform),
        GpuContext::workgroups(ow, oh, 1),
    );
    if let Err(e) = result {
        gpu.recycle(out);
        return Err(e);
    }
    Ok(out)
}
