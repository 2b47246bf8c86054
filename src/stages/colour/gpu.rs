//! GPU `colour`: thumbnails by a block reduction (`shaders/colour_reduce.wgsl`) with one small
//! download per window, the analysis on the CPU (it works on thumbnails of a few ten thousand
//! values), and the per-pixel curves by `shaders/colour.wgsl`.

use anyhow::{bail, Result};

use super::analysis::{Curve, Geometry, FLOOR};
use crate::frame::{Frame, FrameMeta};
use crate::gpu::{Dims, GpuContext, GpuFrame, Kernel};

const REDUCE: Kernel = Kernel {
    name: "colour_reduce",
    source: include_str!("../../../shaders/colour_reduce.wgsl"),
};

const APPLY: Kernel = Kernel {
    name: "colour",
    source: include_str!("../../../shaders/colour.wgsl"),
};

/// Keep in sync with `struct Params` in `shaders/colour_reduce.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct ReduceUniform {
    dims: Dims,
    block: u32,
    tw: u32,
    th: u32,
    slot: u32,
}

/// Keep in sync with `struct Params` in `shaders/colour.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct ApplyUniform {
    dims: Dims,
    a: [[f32; 4]; 3],
    b: [[f32; 4]; 3],
    floor_v: f32,
    _pad: [f32; 3],
}

/// A curve as the shader's two `vec4`s.
fn packed(c: &Curve) -> ([f32; 4], [f32; 4]) {
    match *c {
        Curve::Power { k, e, slope } => ([0.0, k, e, slope], [0.0; 4]),
        Curve::Affine { g, o } => ([1.0, g, o, 0.0], [0.0; 4]),
        Curve::Levels {
            black,
            inv,
            e,
            lo,
            hi,
            s,
        } => ([2.0, black, inv, e], [lo, hi, s, 0.0]),
    }
}

/// The sums buffer, kept from one window to the next.
pub struct Scratch {
    device: wgpu::Device,
    geo: Geometry,
    sums: GpuFrame,
    slots: usize,
}

/// Block sums of each of `frames` (all one shape), planar per frame, computed on the device.
pub fn block_sums(
    gpu: &GpuContext,
    frames: &[&GpuFrame],
    scratch: &mut Option<Scratch>,
) -> Result<Vec<Vec<f32>>> {
    let Some(first) = frames.first() else {
        return Ok(Vec::new());
    };
    let geo = super::analysis::geometry(first.width, first.height, first.planes);
    let per_slot = geo.len() * geo.planes;
    if per_slot == 0 {
        return Ok(frames.iter().map(|_| Vec::new()).collect());
    }
    let fits = scratch
        .as_ref()
        .is_some_and(|s| s.device == gpu.device && s.geo == geo && s.slots >= frames.len());
    if !fits {
        // Room for the longest window seen so far; a window only grows to 2 * radius + 1.
        let slots = frames.len().max(scratch.as_ref().map_or(0, |s| s.slots));
        if let Some(old) = scratch.take() {
            if old.device == gpu.device {
                gpu.recycle(old.sums);
            }
        }
        let sums = gpu.upload(&Frame::new(per_slot * slots, 1, 1, FrameMeta::default()))?;
        *scratch = Some(Scratch {
            device: gpu.device.clone(),
            geo,
            sums,
            slots,
        });
    }
    let s = scratch.as_ref().expect("just made");
    for (slot, frame) in frames.iter().enumerate() {
        if (frame.width, frame.height, frame.planes) != (geo.width, geo.height, geo.planes) {
            bail!("colour: frames of one window differ in shape");
        }
        let uniform = ReduceUniform {
            dims: Dims::of(frame),
            block: geo.block as u32,
            tw: geo.tw as u32,
            th: geo.th as u32,
            slot: slot as u32,
        };
        gpu.run_kernel(
            &REDUCE,
            &[&frame.buffer, &s.sums.buffer],
            bytemuck::bytes_of(&uniform),
            GpuContext::workgroups(geo.tw, geo.th, geo.planes),
        )?;
    }
    let sums = gpu.download(&s.sums)?;
    Ok(sums
        .data
        .chunks(per_slot)
        .take(frames.len())
        .map(|c| c.to_vec())
        .collect())
}

/// Apply one curve per plane to `input` into a new frame; `input` is left as it was.
pub fn apply(gpu: &GpuContext, input: &GpuFrame, curves: &[Curve]) -> Result<GpuFrame> {
    let mut a = [[1.0, 1.0, 0.0, 0.0]; 3];
    let mut b = [[0.0; 4]; 3];
    for p in 0..3 {
        if let Some(c) = curves.get(p).or(curves.last()) {
            (a[p], b[p]) = packed(c);
        }
    }
    let uniform = ApplyUniform {
        dims: Dims::of(input),
        a,
        b,
        floor_v: FLOOR,
        _pad: [0.0; 3],
    };
    let out = gpu.new_frame_like(input);
    if let Err(e) = gpu.run_kernel(
        &APPLY,
        &[&input.buffer, &out.buffer],
        bytemuck::bytes_of(&uniform),
        GpuContext::frame_workgroups(input),
    ) {
        gpu.recycle(out);
        return Err(e);
    }
    Ok(out)
}
