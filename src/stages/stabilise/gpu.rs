//! GPU `stabilise`: frame fingerprints (`shaders/gather.wgsl`, one small download per
//! window) so each frame is analysed once; the analysis of a new frame (content hash, luma,
//! cut thumbnail and pyramid, `shaders/stabilise_{luma,pyramid}.wgsl`); the motion estimation's per-sample work
//! ([`GpuMeasure`]: residuals, their median, the robust normal equations, reduced on the device
//! to 32 numbers per Gauss–Newton iteration), with the candidates, the 6x6 solves and the path
//! on the host, shared with the CPU backend; and the warp with its border fill
//! (`shaders/stabilise_warp.wgsl`).

use anyhow::{bail, Result};

use super::cpu::SourceMap;
use super::motion::{self, Analysis, Lattice, Level, Measure, A, B, DX, DY, GAIN, LIFT, SUMS};
use super::Fill;
use crate::frame::FrameMeta;
use crate::gpu::{list_workgroups, Dims, GatherUniform, GpuContext, GpuFrame, Kernel, GATHER};
use crate::stages::deflicker::cuts::Thumbnail;
use crate::stages::{fingerprint_indices, FINGERPRINT_SAMPLES};

const LUMA: Kernel = Kernel {
    name: "stabilise_luma",
    source: include_str!("../../../shaders/stabilise_luma.wgsl"),
};

const PYRAMID: Kernel = Kernel {
    name: "stabilise_pyramid",
    source: include_str!("../../../shaders/stabilise_pyramid.wgsl"),
};

const RESIDUAL: Kernel = Kernel {
    name: "stabilise_residual",
    source: include_str!("../../../shaders/stabilise_residual.wgsl"),
};

const HIST: Kernel = Kernel {
    name: "stabilise_hist",
    source: include_str!("../../../shaders/stabilise_hist.wgsl"),
};

const SELECT: Kernel = Kernel {
    name: "stabilise_select",
    source: include_str!("../../../shaders/stabilise_select.wgsl"),
};

const NORMAL: Kernel = Kernel {
    name: "stabilise_normal",
    source: include_str!("../../../shaders/stabilise_normal.wgsl"),
};

const SUM: Kernel = Kernel {
    name: "stabilise_sum",
    source: include_str!("../../../shaders/stabilise_sum.wgsl"),
};

const WARP: Kernel = Kernel {
    name: "stabilise_warp",
    source: include_str!("../../../shaders/stabilise_warp.wgsl"),
};

/// Dispatches recorded into one command buffer and submitted together: the estimator's passes
/// are many small kernels, and one submission (and one wait, at the read-back) per pass instead
/// of one per kernel keeps the driver's overhead down. Each dispatch has its own compute pass,
/// so each sees the previous one's writes.
struct Batch<'g> {
    gpu: &'g GpuContext,
    encoder: wgpu::CommandEncoder,
}

impl<'g> Batch<'g> {
    fn new(gpu: &'g GpuContext) -> Self {
        let encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("stabilise"),
            });
        Batch { gpu, encoder }
    }

    /// As `GpuContext::run_kernel`: `buffers[i]` at binding `i`, the uniform after them.
    fn dispatch(
        &mut self,
        kernel: &Kernel,
        buffers: &[&wgpu::Buffer],
        uniform: &[u8],
        workgroups: [u32; 3],
    ) -> Result<()> {
        let pipeline = self.gpu.pipeline(kernel)?;
        let max = self
            .gpu
            .device
            .limits()
            .max_compute_workgroups_per_dimension;
        if workgroups.iter().any(|&n| n > max) {
            let name = kernel.name;
            bail!("kernel '{name}': {workgroups:?} workgroups exceed the device's {max} per axis");
        }
        let uniform = wgpu::util::DeviceExt::create_buffer_init(
            &self.gpu.device,
            &wgpu::util::BufferInitDescriptor {
                label: Some(kernel.name),
                contents: uniform,
                usage: wgpu::BufferUsages::UNIFORM,
            },
        );
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .copied()
            .chain([&uniform])
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        let bind_group = self
            .gpu
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(kernel.name),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            });
        let mut pass = self
            .encoder
            .begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(kernel.name),
                timestamp_writes: None,
            });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
        Ok(())
    }

    /// Submit; mistakes surface from the next checked call (the read-back that follows).
    fn submit(self) -> Result<()> {
        self.gpu.queue.submit([self.encoder.finish()]);
        self.gpu.check()
    }
}

/// Sources the warp kernel binds: the centre and up to four neighbours.
pub const MAX_SOURCES: usize = 5;

/// Keep in sync with `struct Params` in `shaders/stabilise_luma.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct LumaUniform {
    dims: Dims,
    factor: u32,
    out_w: u32,
    out_h: u32,
    inv: f32,
    inv_planes: f32,
    mode: u32,
    _pad: [u32; 2],
}

/// Keep in sync with `struct Params` in `shaders/stabilise_pyramid.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct PyramidUniform {
    w: u32,
    h: u32,
    mode: u32,
    radius: u32,
    block: u32,
    tw: u32,
    th: u32,
    _pad: u32,
    taps: [[f32; 4]; 4],
}

/// Keep in sync with `struct Params` in `shaders/shared/stabilise_pass.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct PassUniform {
    w: u32,
    h: u32,
    x0: u32,
    y0: u32,
    nx: u32,
    ny: u32,
    stride: u32,
    mode: u32,
    c: [f32; 2],
    m: [f32; 2],
    t: [f32; 2],
    gl: [f32; 2],
    lim: [f32; 4],
    cut: f32,
    cols: u32,
    _pad: [u32; 2],
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

/// The fingerprints of `frames` (all of one shape), the same samples as
/// `stages::fingerprint`.
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
        *scratch = Some(Scratch {
            device: gpu.device.clone(),
            len,
            indices: gpu.flat_indices(&fingerprint_indices(len))?,
            prints: gpu.flat(vec![0.0; FINGERPRINT_SAMPLES * slots])?,
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
            list_workgroups(FINGERPRINT_SAMPLES),
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

/// The analysis of a frame on the device: its content hash (row hashes of the reduced frame,
/// bit-identical to the CPU's, one number per row comes back), its luma at the analysis
/// resolution (`shaders/stabilise_luma.wgsl`), the cut detector's thumbnail (80 blocks across
/// come back) and the smoothed pyramid (`shaders/stabilise_pyramid.wgsl`), which stays on the
/// device; only the coarsest level (at most [`motion::TOP_SIDE`] px across) comes back too, for
/// the phase-correlation start and the photometric start.
pub fn analysis(gpu: &GpuContext, frame: &GpuFrame) -> Result<Analysis> {
    let factor = motion::analysis_factor(frame.width, frame.height);
    let (w0, h0) = (frame.width / factor, frame.height / factor);
    let sizes = motion::pyramid(w0, h0, factor);
    let y0 = plane(gpu, w0, h0)?;
    let rows = plane(gpu, h0, frame.planes)?;
    let mut uniform = LumaUniform {
        dims: Dims::of(frame),
        factor: factor as u32,
        out_w: w0 as u32,
        out_h: h0 as u32,
        inv: 1.0 / (factor * factor) as f32,
        inv_planes: 1.0 / frame.planes.max(1) as f32,
        mode: 0,
        _pad: [0; 2],
    };
    let mut batch = Batch::new(gpu);
    batch.dispatch(
        &LUMA,
        &[&frame.buffer, &y0.buffer],
        bytemuck::bytes_of(&uniform),
        GpuContext::workgroups(w0, h0, 1),
    )?;
    uniform.mode = 1;
    batch.dispatch(
        &LUMA,
        &[&frame.buffer, &rows.buffer],
        bytemuck::bytes_of(&uniform),
        GpuContext::workgroups(h0, frame.planes, 1),
    )?;
    let taps = motion::blur_taps(motion::BLUR_SIGMA);
    let mut tap_block = [[0f32; 4]; 4];
    for (i, &t) in taps.iter().enumerate() {
        tap_block[i / 4][i % 4] = t;
    }
    let (block, tw, th) = motion::thumbnail_blocks(w0, h0);
    let pyramid = |batch: &mut Batch, src: &GpuFrame, dst: &GpuFrame, w, h, mode| {
        let u = PyramidUniform {
            w: w as u32,
            h: h as u32,
            mode,
            radius: (taps.len() / 2) as u32,
            block: block as u32,
            tw: tw as u32,
            th: th as u32,
            _pad: 0,
            taps: tap_block,
        };
        let (gw, gh) = match mode {
            2 => (w / 2, h / 2),
            3 => (tw, th),
            _ => (w, h),
        };
        batch.dispatch(
            &PYRAMID,
            &[&src.buffer, &dst.buffer],
            bytemuck::bytes_of(&u),
            GpuContext::workgroups(gw, gh, 1),
        )
    };
    let thumb = plane(gpu, tw, th)?;
    pyramid(&mut batch, &y0, &thumb, w0, h0, 3)?;
    let mut levels = Vec::new();
    let mut raw = y0;
    for (i, &(w, h, k)) in sizes.iter().enumerate() {
        if i > 0 {
            let (pw, ph) = (sizes[i - 1].0, sizes[i - 1].1);
            let next = plane(gpu, w, h)?;
            pyramid(&mut batch, &raw, &next, pw, ph, 2)?;
            gpu.recycle(std::mem::replace(&mut raw, next));
        }
        let tmp = plane(gpu, w, h)?;
        let img = plane(gpu, w, h)?;
        pyramid(&mut batch, &raw, &tmp, w, h, 0)?;
        pyramid(&mut batch, &tmp, &img, w, h, 1)?;
        gpu.recycle(tmp);
        levels.push(Level {
            w,
            h,
            k,
            img: Vec::new(),
            // The analysis owns it from here; it is dropped with the analysis.
            device: Some(img.buffer),
        });
    }
    gpu.recycle(raw);
    // Everything in one submission; then the three small read-backs.
    batch.submit()?;
    let row_hashes: Vec<u32> = gpu
        .download(&rows)?
        .data
        .iter()
        .map(|v| v.to_bits())
        .collect();
    gpu.recycle(rows);
    let mut thumb_data = gpu.download(&thumb)?.data;
    thumb_data.truncate(tw * th);
    gpu.recycle(thumb);
    let top = levels.last_mut().expect("a level at least");
    top.img = read_plane(gpu, top)?;
    Ok(Analysis {
        width: frame.width,
        height: frame.height,
        levels,
        thumb: Thumbnail::new(tw, th, thumb_data),
        hash: motion::content_hash(frame.width, frame.height, frame.planes, &row_hashes),
    })
}

/// A pyramid level's image, downloaded.
fn read_plane(gpu: &GpuContext, level: &Level) -> Result<Vec<f32>> {
    let buffer = level.device.clone().expect("on the device");
    let frame = GpuFrame {
        buffer,
        width: level.w,
        height: level.h,
        planes: 1,
        meta: FrameMeta::default(),
    };
    Ok(gpu.download(&frame)?.data)
}

/// A `w` x `h` single-plane buffer from the pool, contents undefined.
fn plane(gpu: &GpuContext, w: usize, h: usize) -> Result<GpuFrame> {
    gpu.alloc_frame(w.max(1), h.max(1), 1, FrameMeta::default())
}

/// Buffers of the estimator's passes, kept from one pair to the next.
pub struct PassBuffers {
    device: wgpu::Device,
    /// Residual bits per lattice sample, one buffer per slot (see [`motion::Measure`]).
    res: Vec<GpuFrame>,
    /// 2048 counts, zero between passes (the select kernel clears them).
    hist: GpuFrame,
    /// `[total, rank, prefix, median bits]`.
    sel: GpuFrame,
    /// 32 partial sums per lattice row.
    rows: GpuFrame,
    /// The 32 numbers a pass sends back.
    out: GpuFrame,
}

impl PassBuffers {
    fn new(gpu: &GpuContext) -> Result<Self> {
        Ok(PassBuffers {
            device: gpu.device.clone(),
            res: Vec::new(),
            hist: gpu.flat(vec![0.0; 2048])?,
            sel: gpu.flat(vec![0.0; 8])?,
            rows: plane(gpu, 32, 64)?,
            out: plane(gpu, 32, 1)?,
        })
    }

    /// Buffers for `gpu`, made anew when `slot` holds some for another device.
    pub fn for_device<'s>(
        gpu: &GpuContext,
        slot: &'s mut Option<PassBuffers>,
    ) -> Result<&'s mut PassBuffers> {
        if slot.as_ref().is_none_or(|b| b.device != gpu.device) {
            *slot = Some(PassBuffers::new(gpu)?);
        }
        Ok(slot.as_mut().expect("just made"))
    }
}

/// The GPU twin of [`motion::CpuMeasure`]: each pass runs as shaders on the pyramid levels on
/// the device (`shaders/stabilise_{residual,hist,select,normal,sum}.wgsl`) and sends back 32
/// numbers (29 sums, the sample count and the median); the solve stays on the host.
pub struct GpuMeasure<'a> {
    gpu: &'a GpuContext,
    a: &'a Analysis,
    b: &'a Analysis,
    bufs: &'a mut PassBuffers,
    /// The lattice each slot's residuals were last computed on.
    lattices: Vec<Option<Lattice>>,
}

impl<'a> GpuMeasure<'a> {
    pub fn new(
        gpu: &'a GpuContext,
        a: &'a Analysis,
        b: &'a Analysis,
        bufs: &'a mut PassBuffers,
    ) -> Self {
        GpuMeasure {
            gpu,
            a,
            b,
            bufs,
            lattices: Vec::new(),
        }
    }

    fn level(&self, analysis: &'a Analysis, level: usize) -> Result<&'a wgpu::Buffer> {
        match analysis.levels.get(level).and_then(|l| l.device.as_ref()) {
            Some(b) => Ok(b),
            None => bail!("stabilise: pyramid level {level} is not on the GPU"),
        }
    }

    fn uniform(lat: &Lattice, w: usize, h: usize, q: &[f64; 6], mode: u32) -> PassUniform {
        PassUniform {
            w: w as u32,
            h: h as u32,
            x0: lat.x0 as u32,
            y0: lat.y0 as u32,
            nx: lat.nx as u32,
            ny: lat.ny as u32,
            stride: lat.stride as u32,
            mode,
            c: [lat.c.0 as f32, lat.c.1 as f32],
            m: [(q[A] / lat.radius) as f32, (q[B] / lat.radius) as f32],
            t: [q[DX] as f32, q[DY] as f32],
            gl: [q[GAIN] as f32, q[LIFT] as f32],
            lim: [
                lat.lim.0 as f32,
                lat.lim.1 as f32,
                lat.lim.2 as f32,
                lat.radius as f32,
            ],
            cut: 0.0,
            cols: SUMS as u32,
            _pad: [0; 2],
        }
    }

    /// Room for `ny` rows of partial sums and the residuals of `n` samples in `slot`.
    fn reserve(&mut self, slot: usize, n: usize, ny: usize) -> Result<()> {
        let gpu = self.gpu;
        while self.bufs.res.len() <= slot {
            self.bufs.res.push(plane(gpu, 1, 1)?);
        }
        if self.bufs.res[slot].len() < n {
            let old = std::mem::replace(&mut self.bufs.res[slot], plane(gpu, n, 1)?);
            gpu.recycle(old);
        }
        if self.bufs.rows.height < ny {
            let old = std::mem::replace(&mut self.bufs.rows, plane(gpu, 32, ny)?);
            gpu.recycle(old);
        }
        if self.lattices.len() <= slot {
            self.lattices.resize(slot + 1, None);
        }
        Ok(())
    }

    /// Add the rows' sums on the device, submit the batch and bring back the 32 numbers.
    fn totals(&self, mut batch: Batch, u: &PassUniform) -> Result<Vec<f32>> {
        let b = &self.bufs;
        batch.dispatch(
            &SUM,
            &[&b.rows.buffer, &b.sel.buffer, &b.out.buffer],
            bytemuck::bytes_of(u),
            [1, 1, 1],
        )?;
        batch.submit()?;
        Ok(self.gpu.download(&b.out)?.data)
    }
}

impl Measure for GpuMeasure<'_> {
    fn pass(
        &mut self,
        level: usize,
        lat: &Lattice,
        q: &[f64; 6],
        slot: usize,
    ) -> Result<Option<motion::Pass>> {
        let n = lat.len();
        self.reserve(slot, n, lat.ny)?;
        let (la, lb) = (self.level(self.a, level)?, self.level(self.b, level)?);
        let l = &self.a.levels[level];
        let gpu = self.gpu;
        let b = &*self.bufs;
        let res = &b.res[slot].buffer;
        let mut u = Self::uniform(lat, l.w, l.h, q, 0);
        let mut batch = Batch::new(gpu);
        batch.dispatch(
            &RESIDUAL,
            &[la, lb, res],
            bytemuck::bytes_of(&u),
            GpuContext::workgroups(lat.nx, lat.ny, 1),
        )?;
        for stage in 0..3 {
            u.mode = stage;
            batch.dispatch(
                &HIST,
                &[res, &b.sel.buffer, &b.hist.buffer],
                bytemuck::bytes_of(&u),
                [(n as u32).div_ceil(256), 1, 1],
            )?;
            batch.dispatch(
                &SELECT,
                &[&b.hist.buffer, &b.sel.buffer],
                bytemuck::bytes_of(&u),
                [1, 1, 1],
            )?;
        }
        u.mode = 0;
        batch.dispatch(
            &NORMAL,
            &[la, res, &b.sel.buffer, &b.rows.buffer],
            bytemuck::bytes_of(&u),
            [lat.ny as u32, 1, 1],
        )?;
        let out = self.totals(batch, &u)?;
        self.lattices[slot] = Some(*lat);
        let total = out[29].to_bits() as usize;
        if total < 64 {
            return Ok(None);
        }
        let median = f32::from_bits(out[30].to_bits());
        let mut sums = [0f64; SUMS];
        for (s, &v) in sums.iter_mut().zip(&out) {
            *s = v as f64;
        }
        Ok(Some(motion::Pass {
            sums,
            total,
            sigma: (1.4826 * median as f64).max(1e-5),
        }))
    }

    fn loss(&mut self, slot: usize, cut: f64) -> Result<(f64, usize)> {
        let Some(Some(lat)) = self.lattices.get(slot).copied() else {
            return Ok((0.0, 0));
        };
        let b = &*self.bufs;
        let l0 = &self.a.levels[0];
        let mut u = Self::uniform(&lat, l0.w, l0.h, &[0.0; 6], 1);
        u.cut = cut as f32;
        u.cols = 2;
        // The level image is not read in this mode; any buffer binds.
        let la = &b.out.buffer;
        let mut batch = Batch::new(self.gpu);
        batch.dispatch(
            &NORMAL,
            &[la, &b.res[slot].buffer, &b.sel.buffer, &b.rows.buffer],
            bytemuck::bytes_of(&u),
            [lat.ny as u32, 1, 1],
        )?;
        let out = self.totals(batch, &u)?;
        Ok((out[0] as f64, out[1] as usize))
    }
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
