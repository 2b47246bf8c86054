//! GPU `upscale`: motion by [`crate::motion::gpu`], then per output tile
//! `shaders/upscale_single.wgsl`, per back-projection iteration `upscale_resid.wgsl`, for
//! `multi` `upscale_blur.wgsl` and `upscale_fuse.wgsl` (once per neighbour), and
//! `upscale_ibp.wgsl`; then `upscale_put.wgsl`,
//! twins of the passes in [`super::cpu`]; `upscale_tensor.wgsl` once per frame. Intermediates
//! are tile-sized, so the budget bounds them whatever the frame size.

use anyhow::Result;

use super::cpu::{self, Plan, Rect, MAX_AREA_TAPS, MAX_PSF_TAPS};
use super::{Method, UpscaleParams};
use crate::frame::FrameMeta;
use crate::gpu::{Dims, GpuContext, GpuFrame, Kernel};

const TENSOR: Kernel = Kernel {
    name: "upscale_tensor",
    source: include_str!("../../../shaders/upscale_tensor.wgsl"),
};
const SINGLE: Kernel = Kernel {
    name: "upscale_single",
    source: include_str!("../../../shaders/upscale_single.wgsl"),
};
const FUSE: Kernel = Kernel {
    name: "upscale_fuse",
    source: include_str!("../../../shaders/upscale_fuse.wgsl"),
};
const BLUR: Kernel = Kernel {
    name: "upscale_blur",
    source: include_str!("../../../shaders/upscale_blur.wgsl"),
};
const RESID: Kernel = Kernel {
    name: "upscale_resid",
    source: include_str!("../../../shaders/upscale_resid.wgsl"),
};
const IBP: Kernel = Kernel {
    name: "upscale_ibp",
    source: include_str!("../../../shaders/upscale_ibp.wgsl"),
};
const PUT: Kernel = Kernel {
    name: "upscale_put",
    source: include_str!("../../../shaders/upscale_put.wgsl"),
};

/// Keep in sync with `struct Params` in `shaders/shared/upscale.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct UpscaleUniform {
    dims: Dims,
    ow: u32,
    oh: u32,
    method: u32,
    first: u32,
    r0: [u32; 4],
    r1: [u32; 4],
    t: [u32; 4],
    sr: [u32; 4],
    cols: u32,
    rows: u32,
    block: u32,
    has_acc: u32,
    rx: f32,
    ry: f32,
    sx: f32,
    sy: f32,
    edge: f32,
    inv_spread2: f32,
    inv_tol2: f32,
    prior: f32,
    beta: f32,
    npsf_x: u32,
    npsf_y: u32,
    inv_planes: f32,
    psf_x: [f32; MAX_PSF_TAPS],
    psf_y: [f32; MAX_PSF_TAPS],
}

fn rect(r: Rect) -> [u32; 4] {
    [r.x0 as u32, r.y0 as u32, r.w as u32, r.h as u32]
}

/// Output tile side for the GPU: `tile` when given, else the largest multiple of 64 whose
/// intermediates (two iterates, the blurred estimate, two accumulators and the residual on
/// the source grid: under six samples per plane per pixel of the tile with its halo) fit
/// `gpu_memory_mb`.
pub fn tile_side(plan: &Plan, params: &UpscaleParams) -> usize {
    if params.tile != 0 {
        return params.tile;
    }
    let budget = params.gpu_memory_mb as f64 * (1u64 << 20) as f64;
    let per_pixel = (6 * plan.planes * 4) as f64;
    let halo = 2 * plan.m_dec;
    let side = (budget / per_pixel).sqrt() as usize;
    let side = side.saturating_sub(halo) / 64 * 64;
    if side >= plan.ow.max(plan.oh) {
        0
    } else {
        side.max(64)
    }
}

/// A device buffer of `len` samples laid out as one plane (contents undefined).
fn region(gpu: &GpuContext, len: usize) -> Result<GpuFrame> {
    gpu.alloc_frame(len.max(1), 1, 1, FrameMeta::default())
}

/// Upscale `src` with its registered neighbours (frame and device field from the centre).
pub fn upscale(
    gpu: &GpuContext,
    plan: &Plan,
    src: &GpuFrame,
    registered: &[(&GpuFrame, GpuFrame)],
    params: &UpscaleParams,
) -> Result<GpuFrame> {
    let out = gpu.alloc_frame(plan.ow, plan.oh, plan.planes, src.meta.clone())?;
    let mut psf_x = [0.0f32; MAX_PSF_TAPS];
    let mut psf_y = [0.0f32; MAX_PSF_TAPS];
    psf_x[..plan.psf_x.len()].copy_from_slice(&plan.psf_x);
    psf_y[..plan.psf_y.len()].copy_from_slice(&plan.psf_y);
    let mp = &params.motion;
    let base = UpscaleUniform {
        dims: Dims::of(src),
        ow: plan.ow as u32,
        oh: plan.oh as u32,
        method: match plan.method {
            Method::Lanczos => 0,
            Method::Edge => 1,
            Method::Multi => 2,
        },
        first: 0,
        r0: [0; 4],
        r1: [0; 4],
        t: [0; 4],
        sr: [0; 4],
        cols: 1,
        rows: 1,
        block: mp.block as u32,
        has_acc: 0,
        rx: plan.rx,
        ry: plan.ry,
        sx: plan.sx,
        sy: plan.sy,
        edge: plan.edge,
        inv_spread2: plan.inv_spread2,
        inv_tol2: plan.inv_tol2,
        prior: plan.prior,
        beta: plan.beta,
        npsf_x: plan.psf_x.len() as u32,
        npsf_y: plan.psf_y.len() as u32,
        inv_planes: 1.0 / plan.planes as f32,
        psf_x,
        psf_y,
    };
    // Tap tables: six per output column, then six per output row.
    let index: Vec<u32> = plan
        .tx
        .index
        .iter()
        .chain(&plan.ty.index)
        .flatten()
        .copied()
        .collect();
    let weight: Vec<f32> = plan
        .tx
        .weight
        .iter()
        .chain(&plan.ty.weight)
        .flatten()
        .copied()
        .collect();
    let tap_index = region(gpu, index.len())?;
    let tap_weight = region(gpu, weight.len())?;
    gpu.queue
        .write_buffer(&tap_index.buffer, 0, bytemuck::cast_slice(&index));
    gpu.queue
        .write_buffer(&tap_weight.buffer, 0, bytemuck::cast_slice(&weight));
    // Area decimation tables: first output pixel and count per source column then per source
    // row, and MAX_AREA_TAPS weights each.
    let area_start: Vec<u32> = plan
        .ax
        .start
        .iter()
        .zip(&plan.ax.count)
        .chain(plan.ay.start.iter().zip(&plan.ay.count))
        .flat_map(|(&s, &c)| [s, c])
        .collect();
    let area_weight: Vec<f32> = plan
        .ax
        .weight
        .iter()
        .chain(&plan.ay.weight)
        .flatten()
        .copied()
        .collect();
    debug_assert_eq!(area_weight.len() * 2, area_start.len() * MAX_AREA_TAPS);
    let area_first = region(gpu, area_start.len())?;
    let area_wts = region(gpu, area_weight.len())?;
    gpu.queue
        .write_buffer(&area_first.buffer, 0, bytemuck::cast_slice(&area_start));
    gpu.queue
        .write_buffer(&area_wts.buffer, 0, bytemuck::cast_slice(&area_weight));
    let tensor = region(
        gpu,
        if plan.edge > 0.0 {
            3 * plan.w * plan.h
        } else {
            1
        },
    )?;
    if plan.edge > 0.0 {
        gpu.run_kernel(
            &TENSOR,
            &[&src.buffer, &tensor.buffer],
            bytemuck::bytes_of(&base),
            GpuContext::workgroups(plan.w, plan.h, 1),
        )?;
    }
    let planes = plan.planes;
    let temps = [tap_index, tap_weight, tensor, area_first, area_wts];
    for t in cpu::tiles(plan.ow, plan.oh, tile_side(plan, params)) {
        let r = cpu::region(plan, t);
        let sr = cpu::source_rect(plan, r);
        let mut u = base;
        u.r0 = rect(r);
        u.r1 = rect(r);
        u.t = rect(t);
        u.sr = rect(sr);
        let mut x = region(gpu, planes * r.len())?;
        gpu.run_kernel(
            &SINGLE,
            &[
                &src.buffer,
                &temps[0].buffer,
                &temps[1].buffer,
                &temps[2].buffer,
                &x.buffer,
            ],
            bytemuck::bytes_of(&u),
            GpuContext::workgroups(r.w, r.h, planes),
        )?;
        let iterations = plan.iterations;
        let resid = region(gpu, if iterations > 0 { planes * sr.len() } else { 1 })?;
        let fusing = iterations > 0 && !registered.is_empty();
        let (blurred, acc) = if fusing {
            (
                region(gpu, planes * r.len())?,
                region(gpu, 2 * planes * r.len())?,
            )
        } else {
            (region(gpu, 1)?, region(gpu, 1)?)
        };
        u.has_acc = fusing as u32;
        for _ in 0..iterations {
            gpu.run_kernel(
                &RESID,
                &[
                    &x.buffer,
                    &src.buffer,
                    &temps[3].buffer,
                    &temps[4].buffer,
                    &resid.buffer,
                ],
                bytemuck::bytes_of(&u),
                GpuContext::workgroups(sr.w, sr.h, planes),
            )?;
            if fusing {
                gpu.run_kernel(
                    &BLUR,
                    &[&x.buffer, &blurred.buffer],
                    bytemuck::bytes_of(&u),
                    GpuContext::workgroups(r.w, r.h, planes),
                )?;
                for (k, (nb, field)) in registered.iter().enumerate() {
                    let mut uf = u;
                    uf.first = (k == 0) as u32;
                    uf.cols = field.width as u32;
                    uf.rows = field.height as u32;
                    gpu.run_kernel(
                        &FUSE,
                        &[&nb.buffer, &field.buffer, &blurred.buffer, &acc.buffer],
                        bytemuck::bytes_of(&uf),
                        GpuContext::workgroups(r.w, r.h, planes),
                    )?;
                }
            }
            let next = region(gpu, planes * r.len())?;
            gpu.run_kernel(
                &IBP,
                &[
                    &x.buffer,
                    &resid.buffer,
                    &temps[0].buffer,
                    &temps[1].buffer,
                    &src.buffer,
                    &acc.buffer,
                    &next.buffer,
                ],
                bytemuck::bytes_of(&u),
                GpuContext::workgroups(r.w, r.h, planes),
            )?;
            // Back to the pool at once: work still queued on it is fine.
            gpu.recycle(std::mem::replace(&mut x, next));
        }
        gpu.run_kernel(
            &PUT,
            &[&x.buffer, &src.buffer, &out.buffer],
            bytemuck::bytes_of(&u),
            GpuContext::workgroups(t.w, t.h, planes),
        )?;
        for f in [x, resid, blurred, acc] {
            gpu.recycle(f);
        }
    }
    for f in temps {
        gpu.recycle(f);
    }
    Ok(out)
}
