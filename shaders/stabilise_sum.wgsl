// stabilise: one Gauss–Newton pass, step 4: the rows' sums added in row order (the first
// `params.cols` of 32 columns), with the overlap's sample count and the median's bits from
// `sel` in columns 29 and 30: the 32 numbers a pass sends back to the host.

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

@group(0) @binding(0) var<storage, read> rows: array<f32>;
@group(0) @binding(1) var<storage, read> sel: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(32, 1, 1)
fn main(@builtin(local_invocation_index) lid: u32) {
    if lid < params.cols {
        var s = 0.0;
        for (var j = 0u; j < params.ny; j++) {
            s += rows[j * 32u + lid];
        }
        out[lid] = s;
    } else if lid == 29u {
        out[29] = bitcast<f32>(sel[0]);
    } else if lid == 30u {
        out[30] = bitcast<f32>(sel[3]);
    } else {
        out[lid] = 0.0;
    }
}
