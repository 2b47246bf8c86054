// levels: per-plane black point, white point and gamma. CPU twin: `stages::levels::cpu::curve`.
// out = t^(1/gamma) for t > 0, else t, with t = (in - black) / (white - black).

// #include shared/common.wgsl

// Keep in sync with `LevelsUniform` in src/stages/levels/gpu.rs.
struct Params {
    dims: Dims,
    // Per plane: (black, 1 / (white - black), 1 / gamma, unused).
    k: array<vec4<f32>, 3>,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let d = params.dims;
    if outside(d, id) {
        return;
    }
    let i = sample_index(d, id.x, id.y, id.z);
    let k = params.k[id.z];
    let t = (src[i] - k.x) * k.y;
    // pow is only defined for t > 0; at or below the black point the curve stays linear.
    dst[i] = select(t, pow(t, k.z), t > 0.0);
}
