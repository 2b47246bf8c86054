//! GPU `scratch`: the profiles by two reductions (`shaders/scratch_columns.wgsl`,
//! `scratch_rows.wgsl`) with one small download per frame, the detection and tracking on the
//! CPU (they work on profiles), and the per-pixel repair by `shaders/scratch_repair.wgsl`.

use anyhow::{bail, Result};

use super::{Plan, Profiles, ScratchParams, GATE_HI, GATE_LO, REPAIR_RADIUS};
use crate::gpu::{Dims, GpuContext, GpuFrame, Kernel};

const COLUMNS: Kernel = Kernel {
    name: "scratch_columns",
    source: include_str!("../../../shaders/scratch_columns.wgsl"),
};

const ROWS: Kernel = Kernel {
    name: "scratch_rows",
    source: include_str!("../../../shaders/scratch_rows.wgsl"),
};

const REPAIR: Kernel = Kernel {
    name: "scratch_repair",
    source: include_str!("../../../shaders/scratch_repair.wgsl"),
};

/// Keep in sync with `struct Params` in `shaders/scratch_columns.wgsl` and `scratch_rows.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct ProfileUniform {
    dims: Dims,
    band: u32,
    bands: u32,
    _pad: [u32; 2],
}

/// Keep in sync with `struct Params` in `shaders/scratch_repair.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct RepairUniform {
    dims: Dims,
    band: u32,
    bands: u32,
    neighbours: u32,
    lines_at: u32,
    consistency: f32,
    gate_lo: f32,
    gate_hi: f32,
    /// Where the per-cell change limits (`Plan::limits`, f32 bits) start in the info buffer.
    limits_at: u32,
    /// Per neighbour `(dx, dy, unused, unused)`.
    shift: [[f32; 4]; 2 * REPAIR_RADIUS],
}

/// The profiles of `frame`, computed on the device and read back.
pub fn profiles(gpu: &GpuContext, frame: &GpuFrame) -> Result<Profiles> {
    let (w, h) = (frame.width, frame.height);
    let band = super::half_band_height(h);
    let bands = h.div_ceil(band);
    let sums = gpu.flat(vec![0.0; bands * w + h])?;
    let uniform = ProfileUniform {
        dims: Dims::of(frame),
        band: band as u32,
        bands: bands as u32,
        _pad: [0; 2],
    };
    let result = (|| {
        gpu.run_kernel(
            &COLUMNS,
            &[&frame.buffer, &sums.buffer],
            bytemuck::bytes_of(&uniform),
            GpuContext::workgroups(w, bands, 1),
        )?;
        gpu.run_kernel(
            &ROWS,
            &[&frame.buffer, &sums.buffer],
            bytemuck::bytes_of(&uniform),
            GpuContext::workgroups(h, 1, 1),
        )?;
        gpu.download(&sums)
    })();
    gpu.recycle(sums);
    let data = result?.data;
    Ok(Profiles {
        width: w,
        height: h,
        planes: frame.planes,
        half: band,
        columns: data[..bands * w].to_vec(),
        rows: data[bands * w..bands * w + h].to_vec(),
        film_move: frame.meta.film_move,
    })
}

/// Repair the lines of `plan` in `center` into a new frame; `neighbours` in the plan's order.
/// Also gives the number of pixels whose repair the harm guard refused.
pub fn repair(
    gpu: &GpuContext,
    center: &GpuFrame,
    neighbours: &[&GpuFrame],
    plan: &Plan,
    params: &ScratchParams,
) -> Result<(GpuFrame, u64)> {
    if center.planes > 4 {
        bail!("scratch: frames of {} planes (at most 4)", center.planes);
    }
    let area = plan.bands * plan.width;
    let lines_at = area * (1 + neighbours.len());
    let mut info: Vec<u32> = Vec::with_capacity(lines_at + 4 * plan.lines.len());
    info.extend_from_slice(&plan.labels);
    for (_, avoid) in &plan.neighbours {
        info.extend_from_slice(avoid);
    }
    for l in &plan.lines {
        info.extend_from_slice(&[l.x0 as u32, l.x1 as u32, l.sign as u32, 0]);
    }
    let limits_at = info.len();
    info.extend(plan.limits.iter().map(|v| v.to_bits()));
    let info = gpu.flat_indices(&info)?;
    let mut shift = [[0.0f32; 4]; 2 * REPAIR_RADIUS];
    for (s, ((dx, dy), _)) in shift.iter_mut().zip(&plan.neighbours) {
        *s = [*dx, *dy, 0.0, 0.0];
    }
    let uniform = RepairUniform {
        dims: Dims::of(center),
        band: plan.band as u32,
        bands: plan.bands as u32,
        neighbours: neighbours.len() as u32,
        lines_at: lines_at as u32,
        consistency: params.consistency as f32,
        gate_lo: GATE_LO,
        gate_hi: GATE_HI,
        limits_at: limits_at as u32,
        shift,
    };
    // Missing neighbours are bound to the centre and never read.
    let n = |k: usize| neighbours.get(k).map_or(&center.buffer, |f| &f.buffer);
    let out = gpu.new_frame_like(center);
    let refused = gpu.counter()?;
    let result = gpu
        .run_kernel(
            &REPAIR,
            &[
                &center.buffer,
                n(0),
                n(1),
                n(2),
                n(3),
                &info.buffer,
                &out.buffer,
                &refused.buffer,
            ],
            bytemuck::bytes_of(&uniform),
            GpuContext::workgroups(center.width, center.height, 1),
        )
        .and_then(|_| gpu.read_counter(&refused));
    gpu.recycle(info);
    gpu.recycle(refused);
    match result {
        Ok(count) => Ok((out, count)),
        Err(e) => {
            gpu.recycle(out);
            Err(e)
        }
    }
}
