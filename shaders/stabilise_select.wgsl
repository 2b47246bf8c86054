// stabilise: one Gauss–Newton pass, step 2 (continued): the bin of `hist` that holds the
// median, appended to the prefix in `sel`, and `hist` cleared for the next stage.
// `sel` = [samples on the overlap, rank left, prefix, median bits].

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

@group(0) @binding(0) var<storage, read_write> hist: array<u32>;
@group(0) @binding(1) var<storage, read_write> sel: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;

const BINS: u32 = 2048u;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(local_invocation_index) lid: u32) {
    if lid == 0u {
        var rank: u32;
        var bins = 1024u;
        if params.mode == 0u {
            let total = params.nx * params.ny - hist[0x7ffu];
            sel[0] = total;
            rank = total / 2u;
            bins = 2047u;
        } else {
            rank = sel[1];
        }
        var below = 0u;
        var bin = 0u;
        for (; bin < bins; bin++) {
            let n = hist[bin];
            if below + n > rank {
                break;
            }
            below += n;
        }
        sel[1] = rank - below;
        if params.mode == 0u {
            sel[2] = bin;
        } else if params.mode == 1u {
            sel[2] = (sel[2] << 10u) | bin;
        } else {
            sel[3] = (sel[2] << 10u) | bin;
        }
    }
    storageBarrier();
    for (var i = lid; i < BINS; i += 256u) {
        hist[i] = 0u;
    }
}
