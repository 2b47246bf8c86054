// deflicker: out = g * in + o, with (g, o) interpolated bilinearly from a coarse grid of nodes
// per plane. CPU twin: `stages::deflicker::cpu::apply` (and `cpu::axis`).

// #include shared/common.wgsl

// Keep in sync with `ApplyUniform` in src/stages/deflicker/gpu.rs.
struct Params {
    dims: Dims,
    cols: u32,
    rows: u32,
    // nodes / extent along x and y.
    scale_x: f32,
    scale_y: f32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
// (gain, offset) per plane and node: `(p * rows + j) * cols + i`.
@group(0) @binding(1) var<storage, read> nodes: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

struct Axis {
    i0: u32,
    i1: u32,
    t: f32,
}

// Nodes at the centres of `n` equal regions; linear beyond the outer ones.
fn axis(pos: f32, n: u32, scale: f32) -> Axis {
    if n < 2u {
        return Axis(0u, 0u, 0.0);
    }
    let u = (pos + 0.5) * scale - 0.5;
    let i0 = clamp(floor(u), 0.0, f32(n - 2u));
    return Axis(u32(i0), u32(i0) + 1u, u - i0);
}

// a + (b - a) * t: exactly a where the two are equal, so an identity correction stays one.
// (Not WGSL's mix, whose formula is not fixed.) Twin of `cpu::lerp`.
fn lerp(a: vec2<f32>, b: vec2<f32>, t: f32) -> vec2<f32> {
    return a + (b - a) * t;
}

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let d = params.dims;
    if outside(d, id) {
        return;
    }
    let ax = axis(f32(id.x), params.cols, params.scale_x);
    let ay = axis(f32(id.y), params.rows, params.scale_y);
    let base = id.z * params.rows * params.cols;
    let r0 = base + ay.i0 * params.cols;
    let r1 = base + ay.i1 * params.cols;
    // Vertical first, then horizontal, as the CPU twin.
    let a = lerp(nodes[r0 + ax.i0], nodes[r1 + ax.i0], ay.t);
    let b = lerp(nodes[r0 + ax.i1], nodes[r1 + ax.i1], ay.t);
    let k = lerp(a, b, ax.t);
    let i = sample_index(d, id.x, id.y, id.z);
    dst[i] = k.x * src[i] + k.y;
}
