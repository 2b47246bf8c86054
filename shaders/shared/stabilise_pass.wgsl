// stabilise: the uniform every kernel of one Gauss–Newton pass reads (residual, hist, select,
// normal, sum), and the lattice's marker for a sample off the overlap.

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
