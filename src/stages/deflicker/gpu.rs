//! GPU `deflicker`: thumbnails by a two-pass reduction (`shaders/deflicker_rows.wgsl`, then
//! `shaders/deflicker_blocks.wgsl`) with one small download per window, the analysis on the CPU
//! (it works on thumbnails), and the per-pixel correction by `shaders/deflicker.wgsl`.

use anyhow::{bail, Result};

use super::analysis::{Correction, Geometry, Thumb};
use crate::frame::{Frame, FrameMeta};
use crate::gpu::{Dims, GpuContext, GpuFrame, Kernel};

const ROWS: Kernel = Kernel {
    name: "deflicker_rows",
    source: include_str!("../../../shaders/deflicker_rows.wgsl"),
};

const BLOCKS: Kernel = Kernel {
    name: "deflicker_blocks",
    source: include_str!("../../../shaders/deflicker_blocks.wgsl"),
};

const APPLY: Kernel = Kernel {
    name: "deflicker",
    source: include_str!("../../../shaders/deflicker.wgsl"),
};

/// Keep in sync with `struct Params` in `shaders/deflicker_rows.wgsl` and
/// `shaders/deflicker_blocks.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct ReduceUniform {
    dims: Dims,
    block: u32,
    tw: u32,
    th: u32,
    /// Which slot of the sums buffer pass 2 writes.
    slot: u32,
}

/// Keep in sync with `struct Params` in `shaders/deflicker.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct ApplyUniform {
    dims: Dims,
    cols: u32,
    rows: u32,
    scale_x: f32,
    scale_y: f32,
}

/// Buffers of the reduction, kept from one window to the next: the row sums of one frame and
/// the block sums of every frame of a window (one slot each).
pub struct Scratch {
    device: wgpu::Device,
    geo: Geometry,
    rows: GpuFrame,
    sums: GpuFrame,
    slots: usize,
}

fn flat(gpu: &GpuContext, len: usize) -> Result<GpuFrame> {
    gpu.upload(&Frame::new(len.max(1), 1, 1, FrameMeta::default()))
}

/// The thumbnails of `frames` (all one shape), computed on the device.
pub fn thumbs(
    gpu: &GpuContext,
    frames: &[&GpuFrame],
    scratch: &mut Option<Scratch>,
) -> Result<Vec<Thumb>> {
    let Some(first) = frames.first() else {
        return Ok(Vec::new());
    };
    let geo = Geometry::of(first.width, first.height, first.planes);
    if geo.is_empty() || geo.planes == 0 {
        return Ok(frames.iter().map(|_| Thumb::from_sums(geo, &[])).collect());
    }
    let per_slot = geo.len() * geo.planes;
    let fits = scratch
        .as_ref()
        .is_some_and(|s| s.device == gpu.device && s.geo == geo && s.slots >= frames.len());
    if !fits {
        // Room for the longest window seen so far; a window only grows up to 2 * radius + 1.
        let slots = frames.len().max(scratch.as_ref().map_or(0, |s| s.slots));
        if let Some(old) = scratch.take() {
            if old.device == gpu.device {
                gpu.recycle(old.rows);
                gpu.recycle(old.sums);
            }
        }
        *scratch = Some(Scratch {
            device: gpu.device.clone(),
            geo,
            rows: flat(gpu, geo.tw * geo.height * geo.planes)?,
            sums: flat(gpu, per_slot * slots)?,
            slots,
        });
    }
    let s = scratch.as_ref().expect("just made");
    for (slot, frame) in frames.iter().enumerate() {
        if (frame.width, frame.height, frame.planes) != (geo.width, geo.height, geo.planes) {
            bail!("deflicker: frames of one window differ in shape");
        }
        let uniform = ReduceUniform {
            dims: Dims::of(frame),
            block: geo.block as u32,
            tw: geo.tw as u32,
            th: geo.th as u32,
            slot: slot as u32,
        };
        gpu.run_kernel(
            &ROWS,
            &[&frame.buffer, &s.rows.buffer],
            bytemuck::bytes_of(&uniform),
            GpuContext::workgroups(geo.tw, geo.height, geo.planes),
        )?;
        gpu.run_kernel(
            &BLOCKS,
            &[&s.rows.buffer, &s.sums.buffer],
            bytemuck::bytes_of(&uniform),
            GpuContext::workgroups(geo.tw, geo.th, geo.planes),
        )?;
    }
    let sums = gpu.download(&s.sums)?;
    Ok(sums
        .data
        .chunks(per_slot)
        .take(frames.len())
        .map(|chunk| Thumb::from_sums(geo, chunk))
        .collect())
}

/// Apply the correction to `input` into a new frame; `input` is left as it was.
pub fn apply(gpu: &GpuContext, input: &GpuFrame, c: &Correction) -> Result<GpuFrame> {
    let nodes: Vec<f32> = c.nodes.iter().flatten().copied().collect();
    let nodes = gpu.upload(&Frame {
        width: nodes.len().max(2),
        height: 1,
        planes: 1,
        data: if nodes.is_empty() {
            vec![1.0, 0.0]
        } else {
            nodes
        },
        meta: FrameMeta::default(),
    })?;
    let uniform = ApplyUniform {
        dims: Dims::of(input),
        cols: c.cols as u32,
        rows: c.rows as u32,
        scale_x: c.scale[0],
        scale_y: c.scale[1],
    };
    let out = gpu.new_frame_like(input);
    let result = gpu.run_kernel(
        &APPLY,
        &[&input.buffer, &nodes.buffer, &out.buffer],
        bytemuck::bytes_of(&uniform),
        GpuContext::frame_workgroups(input),
    );
    gpu.recycle(nodes);
    if let Err(e) = result {
        gpu.recycle(out);
        return Err(e);
    }
    Ok(out)
}
