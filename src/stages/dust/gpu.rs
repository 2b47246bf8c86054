//! GPU `dust`: motion by [`crate::motion::gpu`], then `shaders/dust_detect.wgsl`,
//! `dust_spatial.wgsl`, `dust_clean.wgsl`, `dust_spread_h.wgsl`, `dust_decide.wgsl`, `dust_range.wgsl`,
//! `dust_rematch.wgsl`, `dust_pieces.wgsl`, `dust_grow.wgsl`, `dust_level.wgsl`, `dust_link.wgsl`,
//! `dust_alpha.wgsl` and
//! `dust_repair.wgsl`, one invocation per pixel each, twins of the passes in [`super::cpu`].

use anyhow::Result;

use super::{cpu, Settings};
use crate::frame::{Frame, FrameMeta};
use crate::gpu::{Dims, GpuContext, GpuFrame, Kernel};
use crate::motion::{self, MotionParams};

const DETECT: Kernel = Kernel {
    name: "dust_detect",
    source: include_str!("../../../shaders/dust_detect.wgsl"),
};
const SPATIAL: Kernel = Kernel {
    name: "dust_spatial",
    source: include_str!("../../../shaders/dust_spatial.wgsl"),
};
const CLEAN: Kernel = Kernel {
    name: "dust_clean",
    source: include_str!("../../../shaders/dust_clean.wgsl"),
};
const SPREAD_H: Kernel = Kernel {
    name: "dust_spread_h",
    source: include_str!("../../../shaders/dust_spread_h.wgsl"),
};
const DECIDE: Kernel = Kernel {
    name: "dust_decide",
    source: include_str!("../../../shaders/dust_decide.wgsl"),
};
const RANGE: Kernel = Kernel {
    name: "dust_range",
    source: include_str!("../../../shaders/dust_range.wgsl"),
};
const REMATCH: Kernel = Kernel {
    name: "dust_rematch",
    source: include_str!("../../../shaders/dust_rematch.wgsl"),
};
const PIECES: Kernel = Kernel {
    name: "dust_pieces",
    source: include_str!("../../../shaders/dust_pieces.wgsl"),
};
const GROW: Kernel = Kernel {
    name: "dust_grow",
    source: include_str!("../../../shaders/dust_grow.wgsl"),
};
const LEVEL: Kernel = Kernel {
    name: "dust_level",
    source: include_str!("../../../shaders/dust_level.wgsl"),
};
const LINK: Kernel = Kernel {
    name: "dust_link",
    source: include_str!("../../../shaders/dust_link.wgsl"),
};
const ALPHA: Kernel = Kernel {
    name: "dust_alpha",
    source: include_str!("../../../shaders/dust_alpha.wgsl"),
};
const REPAIR: Kernel = Kernel {
    name: "dust_repair",
    source: include_str!("../../../shaders/dust_repair.wgsl"),
};

/// Keep in sync with `struct Params` in `shaders/dust_detect.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct DetectUniform {
    w: u32,
    h: u32,
    present: u32,
    wide_radius: u32,
    t0: f32,
    noise_factor: f32,
    wide_factor: f32,
    one_sided: f32,
    consistent: f32,
    edge_k: f32,
    edge: u32,
    spatial_scale: f32,
    occluded_consistent: f32,
    _pad: [u32; 3],
}

/// Keep in sync with `struct Params` in `shaders/dust_spatial.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct SpatialUniform {
    w: u32,
    h: u32,
    reach: u32,
    votes: u32,
    leave: f32,
    share: f32,
    _p: [u32; 2],
}

/// Keep in sync with `struct Params` in `shaders/dust_clean.wgsl` and `dust_spread_h.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct PlaneUniform {
    w: u32,
    h: u32,
    radius: u32,
    _pad: u32,
}

/// Keep in sync with `struct Params` in `shaders/dust_decide.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct DecideUniform {
    w: u32,
    h: u32,
    radius: u32,
    pm_check: u32,
    have_prev: u32,
    have_next: u32,
    has_ext: u32,
    _pad: u32,
}

/// Keep in sync with `struct Params` in `shaders/dust_rematch.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct RematchUniform {
    w: u32,
    h: u32,
    half: i32,
    step_a: i32,
    step_b: i32,
    has_ext: u32,
    center: f32,
    patch: f32,
    texture: f32,
    _p: [u32; 3],
}

/// Keep in sync with `struct Params` in `shaders/dust_pieces.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct PiecesUniform {
    w: u32,
    h: u32,
    phase: u32,
    has_ext: u32,
    whole: f32,
    _p: [u32; 3],
}

/// Keep in sync with `struct Params` in `shaders/dust_grow.wgsl` and `dust_alpha.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct AlphaUniform {
    w: u32,
    h: u32,
    dilate: u32,
    feather: u32,
}

/// Keep in sync with `struct Params` in `shaders/dust_level.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct LevelUniform {
    w: u32,
    h: u32,
    phase: u32,
    _pad: u32,
}

/// Keep in sync with `struct Params` in `shaders/dust_link.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct LinkUniform {
    w: u32,
    h: u32,
    phase: u32,
    _pad: u32,
    t0: f32,
    noise_factor: f32,
    link: f32,
    _pad1: f32,
}

/// Keep in sync with `struct Params` in `shaders/dust_repair.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct RepairUniform {
    dims: Dims,
    present: u32,
    reach: u32,
    disagree: f32,
    inv_planes: f32,
    margin: f32,
    _p: [f32; 3],
}

/// Bit `i` set where neighbour slot `i` is present (the shaders' `present`).
fn present_bits(nb: [Option<&GpuFrame>; 4]) -> u32 {
    (0..4).fold(0, |acc, i| acc | ((nb[i].is_some() as u32) << i))
}

/// The candidate bits of detection and its spatial check ([`cpu::detect`] then
/// [`cpu::spatial`]) from the centre's luma `lc` and the compensated neighbours' `lumas`
/// (slots as in [`cpu::Lumas`]): one u32 per pixel, in a one-plane buffer.
pub fn candidates(
    gpu: &GpuContext,
    lc: &GpuFrame,
    lumas: [Option<&GpuFrame>; 4],
    s: &Settings,
) -> Result<GpuFrame> {
    let (w, h) = (lc.width, lc.height);
    let present = present_bits(lumas);
    // Absent neighbours are never read; the centre fills their bindings.
    let lum = |i: usize| lumas[i].unwrap_or(lc);
    let groups = GpuContext::workgroups(w, h, 1);

    let bits = motion::gpu::scratch(gpu, w, h, 1);
    let u = DetectUniform {
        w: w as u32,
        h: h as u32,
        present,
        wide_radius: s.wide_radius as u32,
        t0: s.t0,
        noise_factor: s.noise_factor,
        wide_factor: s.wide_factor,
        one_sided: s.one_sided,
        consistent: s.consistent,
        edge_k: s.edge_k,
        edge: s.edge as u32,
        spatial_scale: s.spatial_scale,
        occluded_consistent: s.occluded_consistent,
        _pad: [0; 3],
    };
    gpu.run_kernel(
        &DETECT,
        &[
            &lc.buffer,
            &lum(0).buffer,
            &lum(1).buffer,
            &lum(2).buffer,
            &lum(3).buffer,
            &bits.buffer,
        ],
        bytemuck::bytes_of(&u),
        groups,
    )?;
    // The spatial check on the candidates taken at a relaxed threshold (one side; both in the
    // border band) or despite a motion failure around them.
    let bits = match cpu::spatial_slots(lumas.map(|l| l.is_some()), s) {
        Some([a, b]) => {
            let u = SpatialUniform {
                w: w as u32,
                h: h as u32,
                reach: s.spatial_reach as u32,
                votes: cpu::spatial_votes([a, b]) as u32,
                leave: s.spatial_leave,
                share: s.spatial_share,
                _p: [0; 2],
            };
            let checked = motion::gpu::scratch(gpu, w, h, 1);
            gpu.run_kernel(
                &SPATIAL,
                &[
                    &lc.buffer,
                    &lum(a).buffer,
                    &lum(b).buffer,
                    &bits.buffer,
                    &checked.buffer,
                ],
                bytemuck::bytes_of(&u),
                groups,
            )?;
            gpu.recycle(bits);
            checked
        }
        None => bits,
    };
    Ok(bits)
}

/// Restore the centre frame; returns the result and the soft repair mask (one plane).
/// `cp` is the centre's pyramid, `slots` the neighbours in use with their pyramids.
pub fn run(
    gpu: &GpuContext,
    c: &GpuFrame,
    cp: &motion::gpu::Pyramid,
    slots: [Option<(&GpuFrame, motion::gpu::Pyramid)>; 4],
    ext: Option<&[f32]>,
    mp: &MotionParams,
    s: &Settings,
) -> Result<(GpuFrame, GpuFrame, u64)> {
    let (w, h) = (c.width, c.height);
    let mut warped: Vec<Option<GpuFrame>> = Vec::with_capacity(4);
    let mut lumas: Vec<Option<GpuFrame>> = Vec::with_capacity(4);
    let mut raws: Vec<Option<GpuFrame>> = Vec::with_capacity(4);
    for f in slots {
        match f {
            Some((f, mut fp)) => {
                let field = motion::gpu::estimate(gpu, cp, &fp, mp)?;
                let wf = motion::gpu::compensate(gpu, f, &field, &cp.levels[0], &fp.levels[0], mp)?;
                lumas.push(Some(motion::gpu::luma(gpu, &wf)?));
                warped.push(Some(wf));
                // The uncompensated luma stays for the re-match.
                raws.push(Some(fp.levels.swap_remove(0)));
            }
            None => {
                warped.push(None);
                lumas.push(None);
                raws.push(None);
            }
        }
    }
    let nb: [Option<&GpuFrame>; 4] = std::array::from_fn(|i| lumas[i].as_ref());
    let present = present_bits(nb);
    let lc = &cp.levels[0];
    // Absent neighbours are never read; the centre fills their bindings.
    let lum = |i: usize| nb[i].unwrap_or(lc);
    let bits = candidates(gpu, lc, nb, s)?;
    let groups = GpuContext::workgroups(w, h, 1);
    let plane_u = |radius: usize| PlaneUniform {
        w: w as u32,
        h: h as u32,
        radius: radius as u32,
        _pad: 0,
    };
    let cleaned = motion::gpu::scratch(gpu, w, h, 1);
    gpu.run_kernel(
        &CLEAN,
        &[&bits.buffer, &cleaned.buffer],
        bytemuck::bytes_of(&plane_u(0)),
        groups,
    )?;
    let radius = if s.pm_check { s.pm_radius } else { 0 };
    gpu.run_kernel(
        &SPREAD_H,
        &[&cleaned.buffer, &bits.buffer],
        bytemuck::bytes_of(&plane_u(radius)),
        groups,
    )?;
    let ext_buf = match ext {
        Some(e) => gpu.upload(&Frame {
            width: w,
            height: h,
            planes: 1,
            data: e.to_vec(),
            meta: FrameMeta::default(),
        })?,
        None => motion::gpu::scratch(gpu, 1, 1, 1),
    };
    let flag = motion::gpu::scratch(gpu, w, h, 1);
    let u = DecideUniform {
        w: w as u32,
        h: h as u32,
        radius: radius as u32,
        pm_check: s.pm_check as u32,
        have_prev: s.have_prev as u32,
        have_next: s.have_next as u32,
        has_ext: ext.is_some() as u32,
        _pad: 0,
    };
    gpu.run_kernel(
        &DECIDE,
        &[&bits.buffer, &ext_buf.buffer, &flag.buffer],
        bytemuck::bytes_of(&u),
        groups,
    )?;
    let pair = cpu::pair_slots(std::array::from_fn(|i| raws[i].is_some()));
    let flag = match pair.filter(|_| s.rematch > 0) {
        Some((idx, steps)) => {
            let mut ranges = Vec::with_capacity(2);
            for (i, st) in idx.into_iter().zip(steps) {
                let r = motion::gpu::scratch(gpu, w, h, 2);
                let raw = raws[i].as_ref().expect("present");
                gpu.run_kernel(
                    &RANGE,
                    &[&raw.buffer, &r.buffer],
                    bytemuck::bytes_of(&plane_u(st.unsigned_abs() as usize)),
                    groups,
                )?;
                ranges.push(r);
            }
            let out = motion::gpu::scratch(gpu, w, h, 1);
            let u = RematchUniform {
                w: w as u32,
                h: h as u32,
                half: (s.rematch / 2) as i32,
                step_a: steps[0],
                step_b: steps[1],
                has_ext: ext.is_some() as u32,
                center: s.rematch_center,
                patch: s.rematch_patch,
                texture: s.rematch_texture,
                _p: [0; 3],
            };
            gpu.run_kernel(
                &REMATCH,
                &[
                    &flag.buffer,
                    &ext_buf.buffer,
                    &lc.buffer,
                    &lum(idx[0]).buffer,
                    &lum(idx[1]).buffer,
                    &ranges[0].buffer,
                    &ranges[1].buffer,
                    &out.buffer,
                ],
                bytemuck::bytes_of(&u),
                groups,
            )?;
            pieces(gpu, &flag, &out, ext.is_some().then_some(&ext_buf), s)?
        }
        None => flag,
    };
    let alpha = motion::gpu::scratch(gpu, w, h, 1);
    let u = AlphaUniform {
        w: w as u32,
        h: h as u32,
        dilate: s.dilate as u32,
        feather: s.feather as u32,
    };
    let grown = motion::gpu::scratch(gpu, w, h, 1);
    gpu.run_kernel(
        &GROW,
        &[&flag.buffer, &grown.buffer],
        bytemuck::bytes_of(&u),
        groups,
    )?;
    if let (Some(a), Some(b)) = (nb[0], nb[1]) {
        link(gpu, &flag, &grown, lc, (a, b), s)?;
    }
    gpu.run_kernel(
        &ALPHA,
        &[&grown.buffer, &alpha.buffer],
        bytemuck::bytes_of(&u),
        groups,
    )?;
    let out = gpu.new_frame_like(c);
    let refused = gpu.counter()?;
    let nbf = |i: usize| warped[i].as_ref().unwrap_or(c);
    let u = RepairUniform {
        dims: Dims::of(c),
        present,
        reach: s.spatial_reach as u32,
        disagree: s.disagree,
        inv_planes: 1.0 / c.planes as f32,
        margin: s.margin,
        _p: [0.0; 3],
    };
    gpu.run_kernel(
        &REPAIR,
        &[
            &alpha.buffer,
            &c.buffer,
            &nbf(0).buffer,
            &nbf(1).buffer,
            &nbf(2).buffer,
            &nbf(3).buffer,
            &out.buffer,
            &refused.buffer,
        ],
        bytemuck::bytes_of(&u),
        groups,
    )?;
    for f in warped.into_iter().flatten() {
        gpu.recycle(f);
    }
    let count = gpu.read_counter(&refused)?;
    gpu.recycle(refused);
    Ok((out, alpha, count))
}

/// The hysteresis growth ([`cpu::link`]) into `grown`: the level by `dust_level.wgsl`, then
/// `dust_link.wgsl`'s codes, `s.link_reach` steps and the join.
pub fn link(
    gpu: &GpuContext,
    flag: &GpuFrame,
    grown: &GpuFrame,
    lc: &GpuFrame,
    (a, b): (&GpuFrame, &GpuFrame),
    s: &Settings,
) -> Result<()> {
    if s.link_reach == 0 {
        return Ok(());
    }
    let (w, h) = (lc.width, lc.height);
    let groups = GpuContext::workgroups(w, h, 1);
    // Fresh buffers: wgpu zeroes them, as the histogram needs.
    let hist = motion::gpu::scratch(gpu, cpu::LEVEL_BINS, 1, 1);
    let level = motion::gpu::scratch(gpu, 1, 1, 1);
    for (phase, groups) in [(0, groups), (1, [1, 1, 1])] {
        let u = LevelUniform {
            w: w as u32,
            h: h as u32,
            phase,
            _pad: 0,
        };
        gpu.run_kernel(
            &LEVEL,
            &[
                &lc.buffer,
                &a.buffer,
                &b.buffer,
                &hist.buffer,
                &level.buffer,
            ],
            bytemuck::bytes_of(&u),
            groups,
        )?;
    }
    let mut codes = [
        motion::gpu::scratch(gpu, w, h, 1),
        motion::gpu::scratch(gpu, w, h, 1),
    ];
    let u = |phase: u32| LinkUniform {
        w: w as u32,
        h: h as u32,
        phase,
        _pad: 0,
        t0: s.t0,
        noise_factor: s.noise_factor,
        link: s.link,
        _pad1: 0.0,
    };
    let pass = |phase: u32, src: &GpuFrame, dst: &GpuFrame| {
        gpu.run_kernel(
            &LINK,
            &[
                &flag.buffer,
                &grown.buffer,
                &lc.buffer,
                &a.buffer,
                &b.buffer,
                &level.buffer,
                &src.buffer,
                &dst.buffer,
            ],
            bytemuck::bytes_of(&u(phase)),
            groups,
        )
    };
    // Phase 0 reads no source: the flags stand in for it.
    pass(0, flag, &codes[0])?;
    for _ in 0..s.link_reach {
        pass(1, &codes[0], &codes[1])?;
        codes.swap(0, 1);
    }
    pass(2, &codes[0], &codes[1])?;
    Ok(())
}

/// The re-match by pieces ([`cpu::rematch_pieces`]): `dust_pieces.wgsl`'s four passes over
/// the flags before (`flag`) and after (`matched`) the re-match, and the external mask.
pub fn pieces(
    gpu: &GpuContext,
    flag: &GpuFrame,
    matched: &GpuFrame,
    ext: Option<&GpuFrame>,
    s: &Settings,
) -> Result<GpuFrame> {
    let (w, h) = (flag.width, flag.height);
    let groups = GpuContext::workgroups(w, h, 1);
    let label = motion::gpu::scratch(gpu, w, h, 1);
    let counts = motion::gpu::scratch(gpu, w, h, 2);
    let out = motion::gpu::scratch(gpu, w, h, 1);
    for phase in 0..4 {
        let u = PiecesUniform {
            w: w as u32,
            h: h as u32,
            phase,
            has_ext: ext.is_some() as u32,
            whole: s.rematch_whole,
            _p: [0; 3],
        };
        gpu.run_kernel(
            &PIECES,
            &[
                &flag.buffer,
                // Without an external mask its binding is never read; the flags fill it.
                &ext.unwrap_or(flag).buffer,
                &matched.buffer,
                &label.buffer,
                &counts.buffer,
                &out.buffer,
            ],
            bytemuck::bytes_of(&u),
            groups,
        )?;
    }
    Ok(out)
}
