// upscale: what the passes share (pulled in after shared/common.wgsl). Twins in
// src/stages/upscale/cpu.rs.

// Keep in sync with `UpscaleUniform` in src/stages/upscale/gpu.rs.
struct Params {
    // Source frame.
    dims: Dims,
    ow: u32,
    oh: u32,
    // 0 lanczos, 1 edge, 2 multi.
    method: u32,
    // Fuse: 1 for the first neighbour (assign), 0 after (accumulate).
    first: u32,
    // Regions of the output grid: (x0, y0, w, h).
    r0: vec4<u32>,
    r1: vec4<u32>,
    t: vec4<u32>,
    // Source rectangle of the back-projection residual.
    sr: vec4<u32>,
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
    psf_x: array<vec4<f32>, 3>,
    psf_y: array<vec4<f32>, 3>,
}

// Output pixels per axis under one source pixel (`cpu::MAX_AREA_TAPS`).
const AREA_TAPS: u32 = 12u;

// Index `i` reflected into 0..n, the edge sample repeated (`cpu::reflect`).
fn reflect(i: i32, n: i32) -> i32 {
    let period = 2 * n;
    let m = ((i % period) + period) % period;
    return select(period - 1 - m, m, m < n);
}

// Source coordinates of output pixel (x, y).
fn src_pos(x: u32, y: u32) -> vec2<f32> {
    return vec2<f32>((f32(x) + 0.5) * params.rx - 0.5, (f32(y) + 0.5) * params.ry - 0.5);
}

// Local index of global (x, y) clamped into region r (`Rect::clamped`).
fn region_index(r: vec4<u32>, x: i32, y: i32) -> u32 {
    let lx = clamp(x - i32(r.x), 0, i32(r.z) - 1);
    let ly = clamp(y - i32(r.y), 0, i32(r.w) - 1);
    return u32(ly) * r.z + u32(lx);
}

fn lerp(a: f32, b: f32, t: f32) -> f32 {
    return a + (b - a) * t;
}

