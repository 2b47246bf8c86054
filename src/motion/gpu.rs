//! GPU motion: the same pyramid, search and warp as [`super::cpu`], by
//! `shaders/motion_luma.wgsl`, `motion_reduce.wgsl`, `motion_search.wgsl`, `motion_warp.wgsl`
//! and `motion_compensate.wgsl`.
//! Pyramid levels are one-plane [`GpuFrame`]s; a field is a `cols` x `rows` [`GpuFrame`] of two
//! planes (`vx`, then `vy`).

use anyhow::Result;

use super::{level_sizes, Field, MotionParams};
use crate::frame::{Frame, FrameMeta};
use crate::gpu::{Dims, GpuContext, GpuFrame, Kernel};

const LUMA: Kernel = Kernel {
    name: "motion_luma",
    source: include_str!("../../shaders/motion_luma.wgsl"),
};
const REDUCE: Kernel = Kernel {
    name: "motion_reduce",
    source: include_str!("../../shaders/motion_reduce.wgsl"),
};
const SEARCH: Kernel = Kernel {
    name: "motion_search",
    source: include_str!("../../shaders/motion_search.wgsl"),
};
const COMPENSATE: Kernel = Kernel {
    name: "motion_compensate",
    source: include_str!("../../shaders/motion_compensate.wgsl"),
};
const WARP: Kernel = Kernel {
    name: "motion_warp",
    source: include_str!("../../shaders/motion_warp.wgsl"),
};

/// Keep in sync with `struct Params` in `shaders/motion_luma.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct LumaUniform {
    dims: Dims,
    inv: f32,
    _pad: [u32; 3],
}

/// Keep in sync with `struct Params` in `shaders/motion_reduce.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct ReduceUniform {
    src_w: u32,
    src_h: u32,
    out_w: u32,
    out_h: u32,
}

/// Keep in sync with `struct Params` in `shaders/motion_search.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct SearchUniform {
    w: u32,
    h: u32,
    cols: u32,
    rows: u32,
    ccols: u32,
    crows: u32,
    block: u32,
    radius: i32,
    has_coarse: u32,
    subpixel: u32,
    lambda: f32,
    _pad: u32,
}

/// Keep in sync with `struct Params` in `shaders/shared/motion_field.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct WarpUniform {
    dims: Dims,
    cols: u32,
    rows: u32,
    block: u32,
    _pad: u32,
}

impl WarpUniform {
    /// Moving `frame` by the block `field` of `params.block`-pixel blocks.
    fn new(frame: &GpuFrame, field: &GpuFrame, params: &MotionParams) -> Self {
        WarpUniform {
            dims: Dims::of(frame),
            cols: field.width as u32,
            rows: field.height as u32,
            block: params.block as u32,
            _pad: 0,
        }
    }
}

/// A device buffer shaped as a `width` x `height` frame of `planes` planes, contents undefined.
/// Used for planes and fields of other shapes than the frames a stage receives.
pub fn scratch(gpu: &GpuContext, width: usize, height: usize, planes: usize) -> GpuFrame {
    let bytes = ((width * height * planes).max(1) * 4) as u64;
    let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("motion scratch"),
        size: bytes.next_multiple_of(16),
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    GpuFrame {
        buffer,
        width,
        height,
        planes,
        meta: FrameMeta::default(),
    }
}

/// The luma pyramid of one device frame; level 0 is full size, one plane each.
pub struct Pyramid {
    pub levels: Vec<GpuFrame>,
}

impl Pyramid {
    pub fn of(gpu: &GpuContext, frame: &GpuFrame, params: &MotionParams) -> Result<Self> {
        let n = params.levels(frame.width, frame.height);
        let sizes = level_sizes(frame.width, frame.height, n);
        let mut levels = vec![luma(gpu, frame)?];
        for &(w, h) in &sizes[1..] {
            let out = reduce(gpu, levels.last().unwrap(), w, h)?;
            levels.push(out);
        }
        Ok(Pyramid { levels })
    }
}

/// A one-plane device frame 2x2 box-averaged to `w` x `h` (at most half its size). CPU twin:
/// [`super::cpu::reduce`].
pub fn reduce(gpu: &GpuContext, src: &GpuFrame, w: usize, h: usize) -> Result<GpuFrame> {
    let out = scratch(gpu, w, h, 1);
    let u = ReduceUniform {
        src_w: src.width as u32,
        src_h: src.height as u32,
        out_w: w as u32,
        out_h: h as u32,
    };
    gpu.run_kernel(
        &REDUCE,
        &[&src.buffer, &out.buffer],
        bytemuck::bytes_of(&u),
        GpuContext::workgroups(w, h, 1),
    )?;
    Ok(out)
}

/// The mean of the planes of a device frame, one plane (level 0 of a [`Pyramid`]).
pub fn luma(gpu: &GpuContext, frame: &GpuFrame) -> Result<GpuFrame> {
    let out = scratch(gpu, frame.width, frame.height, 1);
    let u = LumaUniform {
        dims: Dims::of(frame),
        inv: 1.0 / frame.planes as f32,
        _pad: [0; 3],
    };
    gpu.run_kernel(
        &LUMA,
        &[&frame.buffer, &out.buffer],
        bytemuck::bytes_of(&u),
        GpuContext::workgroups(frame.width, frame.height, 1),
    )?;
    Ok(out)
}

/// The motion field from A to B on the device (two planes, `vx` and `vy`, per block).
pub fn estimate(
    gpu: &GpuContext,
    a: &Pyramid,
    b: &Pyramid,
    params: &MotionParams,
) -> Result<GpuFrame> {
    let n = a.levels.len().min(b.levels.len());
    let mut coarse: Option<GpuFrame> = None;
    for l in (0..n).rev() {
        let (la, lb) = (&a.levels[l], &b.levels[l]);
        let (cols, rows) = (
            la.width.div_ceil(params.block),
            la.height.div_ceil(params.block),
        );
        let out = scratch(gpu, cols, rows, 2);
        let u = SearchUniform {
            w: la.width as u32,
            h: la.height as u32,
            cols: cols as u32,
            rows: rows as u32,
            ccols: coarse.as_ref().map_or(1, |c| c.width as u32),
            crows: coarse.as_ref().map_or(1, |c| c.height as u32),
            block: params.block as u32,
            radius: if l == n - 1 { params.search as i32 } else { 1 },
            has_coarse: coarse.is_some() as u32,
            subpixel: (l == 0) as u32,
            lambda: params.lambda,
            _pad: 0,
        };
        // The coarsest level has no coarser field; a dummy fills the binding.
        let dummy = coarse.is_none().then(|| scratch(gpu, 1, 1, 2));
        let c_buf = &coarse
            .as_ref()
            .or(dummy.as_ref())
            .expect("one of them")
            .buffer;
        gpu.run_kernel(
            &SEARCH,
            &[&la.buffer, &lb.buffer, c_buf, &out.buffer],
            bytemuck::bytes_of(&u),
            GpuContext::workgroups(cols, rows, 1),
        )?;
        coarse = Some(out);
    }
    Ok(coarse.expect("at least one level"))
}

/// B moved onto A's pixel grid with a device field from [`estimate`].
pub fn warp(
    gpu: &GpuContext,
    b: &GpuFrame,
    field: &GpuFrame,
    params: &MotionParams,
) -> Result<GpuFrame> {
    let out = gpu.new_frame_like(b);
    let u = WarpUniform::new(b, field, params);
    gpu.run_kernel(
        &WARP,
        &[&b.buffer, &field.buffer, &out.buffer],
        bytemuck::bytes_of(&u),
        GpuContext::frame_workgroups(b),
    )?;
    Ok(out)
}

/// B moved onto A's pixel grid choosing the vector per pixel (as
/// [`super::cpu::compensate`]); `a` and `b` are the level-0 lumas of A and B.
pub fn compensate(
    gpu: &GpuContext,
    bf: &GpuFrame,
    field: &GpuFrame,
    a: &GpuFrame,
    b: &GpuFrame,
    params: &MotionParams,
) -> Result<GpuFrame> {
    let out = gpu.new_frame_like(bf);
    let u = WarpUniform::new(bf, field, params);
    gpu.run_kernel(
        &COMPENSATE,
        &[&bf.buffer, &field.buffer, &a.buffer, &b.buffer, &out.buffer],
        bytemuck::bytes_of(&u),
        GpuContext::workgroups(bf.width, bf.height, 1),
    )?;
    Ok(out)
}

/// A device field back as a [`Field`] for a `width` x `height` frame.
pub fn download_field(
    gpu: &GpuContext,
    field: &GpuFrame,
    width: usize,
    height: usize,
    block: usize,
) -> Result<Field> {
    let f: Frame = gpu.download(field)?;
    let n = field.width * field.height;
    Ok(Field {
        width,
        height,
        block,
        cols: field.width,
        rows: field.height,
        vx: f.data[..n].to_vec(),
        vy: f.data[n..2 * n].to_vec(),
    })
}
