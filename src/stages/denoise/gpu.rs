//! GPU `denoise`: motion by [`crate::motion::gpu`] on half-resolution luma
//! (`motion::gpu::reduce`, then `shaders/denoise_scale.wgsl`), block statistics for the noise
//! measurement (`denoise_stats.wgsl`, finished on the CPU by [`super::noise::estimate`] from the
//! same numbers), then `denoise_temporal.wgsl`, `denoise_patch.wgsl`, `denoise_gather.wgsl`,
//! `denoise_grain.wgsl` and `denoise_finish.wgsl`, twins of the functions in [`super::cpu`].

use anyhow::Result;

use super::noise::{self, BlockStat, PlaneNoise, BINS};
use super::{cpu, full_params, DenoiseParams, PlaneModel, MAX_TAP_RADIUS};
use crate::frame::{Frame, FrameMeta};
use crate::gpu::{Dims, GpuContext, GpuFrame, Kernel};
use crate::motion::{self, MotionParams};
use crate::stages::deflicker::cuts::Thumbnail;

const SCALE: Kernel = Kernel {
    name: "denoise_scale",
    source: include_str!("../../../shaders/denoise_scale.wgsl"),
};
const STATS: Kernel = Kernel {
    name: "denoise_stats",
    source: include_str!("../../../shaders/denoise_stats.wgsl"),
};
const TEMPORAL: Kernel = Kernel {
    name: "denoise_temporal",
    source: include_str!("../../../shaders/denoise_temporal.wgsl"),
};
const PATCH: Kernel = Kernel {
    name: "denoise_patch",
    source: include_str!("../../../shaders/denoise_patch.wgsl"),
};
const GATHER: Kernel = Kernel {
    name: "denoise_gather",
    source: include_str!("../../../shaders/denoise_gather.wgsl"),
};
const GRAIN: Kernel = Kernel {
    name: "denoise_grain",
    source: include_str!("../../../shaders/denoise_grain.wgsl"),
};
const OPPONENT: Kernel = Kernel {
    name: "denoise_opponent",
    source: include_str!("../../../shaders/denoise_opponent.wgsl"),
};
const FINISH: Kernel = Kernel {
    name: "denoise_finish",
    source: include_str!("../../../shaders/denoise_finish.wgsl"),
};

/// Keep in sync with `struct Params` in `shaders/denoise_scale.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct ScaleUniform {
    n: u32,
    width: u32,
    mode: u32,
    _p: u32,
}

/// `shaders/denoise_scale.wgsl`'s modes.
const DOUBLE_FIELD: u32 = 0;
const QUANTISE_LUMA: u32 = 1;

/// Run `shaders/denoise_scale.wgsl` in place over `width` x `rows` values of `buffer`.
fn scale(
    gpu: &GpuContext,
    buffer: &wgpu::Buffer,
    width: usize,
    rows: usize,
    mode: u32,
) -> Result<()> {
    let u = ScaleUniform {
        n: (width * rows) as u32,
        width: width as u32,
        mode,
        _p: 0,
    };
    gpu.run_kernel(
        &SCALE,
        &[buffer],
        bytemuck::bytes_of(&u),
        GpuContext::workgroups(width, rows, 1),
    )
}

/// Keep in sync with `struct Params` in `shaders/denoise_stats.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct StatsUniform {
    dims: Dims,
    bw: u32,
    bh: u32,
    diff: u32,
    first_level: u32,
}

/// Keep in sync with `struct Params` in `shaders/denoise_temporal.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct TemporalUniform {
    dims: Dims,
    count: u32,
    strength: f32,
    first_level: u32,
    _p: u32,
}

/// Keep in sync with `struct Params` in `shaders/denoise_patch.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct PatchUniform {
    dims: Dims,
    nx: u32,
    ny: u32,
    step: u32,
    plane: u32,
    strength: f32,
    first_level: u32,
    _p: [u32; 2],
}

/// Keep in sync with `struct Params` in `shaders/denoise_gather.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct GatherUniform {
    dims: Dims,
    nx: u32,
    ny: u32,
    step: u32,
    plane: u32,
}

/// Keep in sync with `struct Params` in `shaders/denoise_grain.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct GrainUniform {
    width: u32,
    rows: u32,
    plane: u32,
    key: u32,
}

/// Keep in sync with `struct Params` in `shaders/denoise_finish.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct FinishUniform {
    dims: Dims,
    plane: u32,
    keep: f32,
    regrain: f32,
    first_level: u32,
}

/// Keep in sync with `struct Params` in `shaders/denoise_opponent.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct OpponentUniform {
    dims: Dims,
    inverse: u32,
    _p: [u32; 3],
}

/// A three-plane frame to the opponent planes (`forward`) or back: the twin of
/// [`cpu::to_opponent`] and [`cpu::from_opponent`].
pub fn opponent(gpu: &GpuContext, f: &GpuFrame, forward: bool) -> Result<GpuFrame> {
    let out = gpu.new_frame_like(f);
    let u = OpponentUniform {
        dims: Dims::of(f),
        inverse: (!forward) as u32,
        _p: [0; 3],
    };
    gpu.run_kernel(
        &OPPONENT,
        &[&f.buffer, &out.buffer],
        bytemuck::bytes_of(&u),
        GpuContext::workgroups(f.width, f.height, 1),
    )?;
    Ok(out)
}

/// Values per plane in the table; keep in sync with `TABLE_PLANE` in
/// `shaders/shared/denoise.wgsl` (and the offsets there).
const TABLE_PLANE: usize = 96;

/// The table the kernels read: the DCT matrix, then each plane's model.
pub fn table(models: &[PlaneModel]) -> Vec<f32> {
    let mut t: Vec<f32> = cpu::dct_matrix().iter().flatten().copied().collect();
    for m in models {
        let mut p = vec![0.0f32; TABLE_PLANE];
        p[..BINS].copy_from_slice(&m.sigma);
        p[8..72].copy_from_slice(&m.shape);
        p[72] = m.diff_sd;
        p[73] = (m.taps.len() / 2) as f32;
        p[74] = m.tap_scale;
        debug_assert!(m.taps.len() <= 2 * MAX_TAP_RADIUS + 1);
        p[76..76 + m.taps.len()].copy_from_slice(&m.taps);
        t.extend(p);
    }
    t
}

fn upload_vec(gpu: &GpuContext, data: Vec<f32>) -> Result<GpuFrame> {
    gpu.upload(&Frame {
        width: data.len(),
        height: 1,
        planes: 1,
        data,
        meta: FrameMeta::default(),
    })
}

/// One frame's motion inputs on the device: its full-resolution luma and the pyramid of its
/// half-resolution luma.
pub struct Motion {
    pub luma: GpuFrame,
    pub half: motion::gpu::Pyramid,
}

impl Motion {
    pub fn of(gpu: &GpuContext, frame: &GpuFrame, mp: &MotionParams) -> Result<Self> {
        let luma = motion::gpu::luma(gpu, frame)?;
        let (hw, hh) = (frame.width / 2, frame.height / 2);
        let half = motion::gpu::reduce(gpu, &luma, hw, hh)?;
        // Quantised as `search::quantise` does, so the search's sums are exact.
        scale(gpu, &half.buffer, hw, hh, QUANTISE_LUMA)?;
        let pyramid = motion::gpu::Pyramid::of(gpu, &half, mp)?;
        Ok(Motion {
            luma,
            half: pyramid,
        })
    }

    /// The coarsest level, for the cut check (small: read back to the CPU).
    pub fn thumbnail(&self, gpu: &GpuContext) -> Result<Thumbnail> {
        let l = gpu.download(self.half.levels.last().expect("a level"))?;
        Ok(Thumbnail::new(l.width, l.height, l.data))
    }
}

/// Frame `f` compensated onto the centre: the field from the half-resolution pyramids,
/// doubled, applied at full resolution (per-pixel vector choice with `per_pixel`).
pub fn compensate(
    gpu: &GpuContext,
    center: &Motion,
    other: &Motion,
    f: &GpuFrame,
    mp: &MotionParams,
    per_pixel: bool,
) -> Result<GpuFrame> {
    let field = motion::gpu::estimate(gpu, &center.half, &other.half, mp)?;
    // Both components: two planes of the field's rows.
    scale(
        gpu,
        &field.buffer,
        field.width,
        field.height * 2,
        DOUBLE_FIELD,
    )?;
    let fp = full_params(mp);
    let out = if per_pixel {
        motion::gpu::compensate(gpu, f, &field, &center.luma, &other.luma, &fp)
    } else {
        motion::gpu::warp(gpu, f, &field, &fp)
    };
    gpu.recycle(field);
    out
}

/// Block statistics of every plane of `frames` (in temporal order) and of each neighbouring
/// pair on the device, read back and pooled per plane in the order of
/// [`noise::estimate_frames_by`], which finishes the estimate the same way.
pub fn estimate_noise(
    gpu: &GpuContext,
    frames: &[&GpuFrame],
    first_level: bool,
) -> Result<Vec<PlaneNoise>> {
    let Some(first) = frames.first() else {
        return Ok(Vec::new());
    };
    let (bw, bh, planes) = (first.width / 8, first.height / 8, first.planes);
    let mut spatial: Vec<Vec<BlockStat>> = vec![Vec::new(); planes];
    let mut temporal: Vec<Vec<BlockStat>> = vec![Vec::new(); planes];
    if bw * bh > 0 {
        let out = motion::gpu::scratch(gpu, bw * 3, bh, planes);
        let run = |a: &GpuFrame, b: Option<&GpuFrame>, into: &mut Vec<Vec<BlockStat>>| {
            let u = StatsUniform {
                dims: Dims::of(a),
                bw: bw as u32,
                bh: bh as u32,
                diff: b.is_some() as u32,
                first_level: first_level as u32,
            };
            gpu.run_kernel(
                &STATS,
                &[&a.buffer, &b.unwrap_or(a).buffer, &out.buffer],
                bytemuck::bytes_of(&u),
                GpuContext::workgroups(bw, bh, planes),
            )?;
            let data = gpu.download(&out)?.data;
            for (p, s) in into.iter_mut().enumerate() {
                let plane = &data[p * bw * bh * 3..(p + 1) * bw * bh * 3];
                s.extend(plane.chunks_exact(3).map(|v| BlockStat {
                    mean: v[0],
                    var: v[1],
                    lag: v[2],
                }));
            }
            anyhow::Ok(())
        };
        for f in frames {
            run(f, None, &mut spatial)?;
        }
        for pair in frames.windows(2) {
            run(pair[0], Some(pair[1]), &mut temporal)?;
        }
    }
    Ok((0..planes)
        .map(|p| noise::estimate(&spatial[p], &temporal[p]))
        .collect())
}

/// Steps 3 to 5 on the device: the twin of [`super::denoise_cpu`].
pub fn denoise(
    gpu: &GpuContext,
    c: &GpuFrame,
    nb: &[GpuFrame],
    noise: &[PlaneNoise],
    p: &DenoiseParams,
    first_level: bool,
) -> Result<GpuFrame> {
    let fl = first_level as u32;
    let (w, h) = (c.width, c.height);
    let models: Vec<PlaneModel> = noise.iter().map(PlaneModel::new).collect();
    let tbl = upload_vec(gpu, table(&models))?;
    let dims = Dims::of(c);
    let avg = gpu.new_frame_like(c);
    let fac = gpu.new_frame_like(c);
    let den = gpu.new_frame_like(c);
    let out = gpu.new_frame_like(c);
    let any = models.iter().any(|m| !m.silent());
    if any {
        let n = |i: usize| nb.get(i).unwrap_or(c);
        let u = TemporalUniform {
            dims,
            count: nb.len() as u32,
            strength: p.strength,
            first_level: fl,
            _p: 0,
        };
        gpu.run_kernel(
            &TEMPORAL,
            &[
                &c.buffer,
                &n(0).buffer,
                &n(1).buffer,
                &n(2).buffer,
                &n(3).buffer,
                &tbl.buffer,
                &avg.buffer,
                &fac.buffer,
            ],
            bytemuck::bytes_of(&u),
            GpuContext::frame_workgroups(c),
        )?;
    }
    let (nx, ny) = (cpu::patch_count(w, p.step), cpu::patch_count(h, p.step));
    let patches = any.then(|| motion::gpu::scratch(gpu, nx * 65, ny, 1));
    let dummy = motion::gpu::scratch(gpu, 1, 1, 1);
    for (pi, m) in models.iter().enumerate() {
        let finish = |x: &GpuFrame, rows: &GpuFrame, keep: f32, regrain: f32, dst: &GpuFrame| {
            let u = FinishUniform {
                dims,
                plane: pi as u32,
                keep,
                regrain,
                first_level: fl,
            };
            gpu.run_kernel(
                &FINISH,
                &[&c.buffer, &x.buffer, &rows.buffer, &tbl.buffer, &dst.buffer],
                bytemuck::bytes_of(&u),
                GpuContext::workgroups(w, h, 1),
            )
        };
        if m.silent() {
            // Nothing to remove: the plane as it is (x + 1 * (c - x) with x = c), also into
            // the denoised planes, where other planes may read their level.
            finish(c, &dummy, 1.0, 0.0, &den)?;
            finish(c, &dummy, 1.0, 0.0, &out)?;
            continue;
        }
        let patches = patches.as_ref().expect("made when a plane is denoised");
        let u = PatchUniform {
            dims,
            nx: nx as u32,
            ny: ny as u32,
            step: p.step as u32,
            plane: pi as u32,
            strength: p.strength,
            first_level: fl,
            _p: [0; 2],
        };
        gpu.run_kernel(
            &PATCH,
            &[&avg.buffer, &fac.buffer, &tbl.buffer, &patches.buffer],
            bytemuck::bytes_of(&u),
            GpuContext::workgroups(nx, ny, 1),
        )?;
        let u = GatherUniform {
            dims,
            nx: nx as u32,
            ny: ny as u32,
            step: p.step as u32,
            plane: pi as u32,
        };
        gpu.run_kernel(
            &GATHER,
            &[&patches.buffer, &den.buffer],
            bytemuck::bytes_of(&u),
            GpuContext::workgroups(w, h, 1),
        )?;
        if p.regrain > 0.0 {
            let r = m.taps.len() / 2;
            let rows = motion::gpu::scratch(gpu, w, h + 2 * r, 1);
            let u = GrainUniform {
                width: w as u32,
                rows: (h + 2 * r) as u32,
                plane: pi as u32,
                key: cpu::grain_key(p.seed, c.meta.number.unwrap_or(0), pi),
            };
            gpu.run_kernel(
                &GRAIN,
                &[&tbl.buffer, &rows.buffer],
                bytemuck::bytes_of(&u),
                GpuContext::workgroups(w, h + 2 * r, 1),
            )?;
            finish(&den, &rows, p.keep_grain, p.regrain, &out)?;
        } else {
            finish(&den, &dummy, p.keep_grain, 0.0, &out)?;
        }
    }
    for f in [avg, fac, den, tbl] {
        gpu.recycle(f);
    }
    Ok(out)
}
