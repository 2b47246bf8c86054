// stabilise: one Gauss–Newton pass, step 1: the residual r = b(M(x)) - gain * a(x) - lift of
// every lattice sample (Catmull–Rom sampling of b) whose warped position lies on the overlap,
// as f32 bits, NONE elsewhere. CPU twin: `CpuMeasure::pass` in
// src/stages/stabilise/motion.rs.

// Keep in sync with `PassUniform` in src/stages/stabilise/gpu.rs (one layout for every
// kernel of a pass).
struct Params {
    // Level width and height; the lattice: first sample, samples per row and rows, stride.
    w: u32,
    h: u32,
    x0: u32,
    y0: u32,
    nx: u32,
    ny: u32,
    stride: u32,
    // Kernel-specific: histogram stage (hist, select), 0 sums / 1 loss (normal).
    mode: u32,
    // Level centre; `a / radius` and `b / radius` of the linear part.
    c: vec2<f32>,
    m: vec2<f32>,
    // Translation; gain and lift.
    t: vec2<f32>,
    gl: vec2<f32>,
    // Warped samples must lie in [lo, hi_x] x [lo, hi_y]; the level half-diagonal.
    lim: vec4<f32>,
    // The Tukey cut for the loss (mode 1 of normal); columns to add (sum).
    cut: f32,
    cols: u32,
    _pad0: u32,
    _pad1: u32,
}

// A lattice sample off the overlap.
const NONE: u32 = 0xffffffffu;

@group(0) @binding(0) var<storage, read> la: array<f32>;
@group(0) @binding(1) var<storage, read> lb: array<f32>;
@group(0) @binding(2) var<storage, read_write> res: array<u32>;
@group(0) @binding(3) var<uniform> params: Params;

fn cubic_weights(t: f32) -> vec4<f32> {
    let t2 = t * t;
    let t3 = t2 * t;
    return 0.5 * vec4<f32>(
        -t3 + 2.0 * t2 - t,
        3.0 * t3 - 5.0 * t2 + 2.0,
        -3.0 * t3 + 4.0 * t2 + t,
        t3 - t2,
    );
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= params.nx || id.y >= params.ny {
        return;
    }
    let x = params.x0 + id.x * params.stride;
    let y = params.y0 + id.y * params.stride;
    let k = id.y * params.nx + id.x;
    // The displacement, small, kept apart from the integer position for precision.
    let u = vec2<f32>(f32(x), f32(y)) - params.c;
    let d = vec2<f32>(
        params.m.x * u.x - params.m.y * u.y + params.t.x,
        params.m.y * u.x + params.m.x * u.y + params.t.y,
    );
    let p = vec2<f32>(f32(x), f32(y)) + d;
    if p.x < params.lim.x || p.y < params.lim.x || p.x > params.lim.y || p.y > params.lim.z {
        res[k] = NONE;
        return;
    }
    let fd = floor(d);
    let f = d - fd;
    let ix = i32(x) + i32(fd.x) - 1;
    let iy = i32(y) + i32(fd.y) - 1;
    let wx = cubic_weights(f.x);
    let wy = cubic_weights(f.y);
    let w = i32(params.w);
    var s = 0.0;
    for (var j = 0; j < 4; j++) {
        let row = u32((iy + j) * w + ix);
        let t = wx.x * lb[row] + wx.y * lb[row + 1u] + wx.z * lb[row + 2u] + wx.w * lb[row + 3u];
        s += wy[j] * t;
    }
    let r = s - params.gl.x * la[y * params.w + x] - params.gl.y;
    res[k] = bitcast<u32>(r);
}
