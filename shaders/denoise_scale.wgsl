// denoise: a motion field found on half-resolution luma doubled for the full frame. CPU twin:
// `denoise::scale_field`.

// #include shared/common.wgsl

// Keep in sync with `ScaleUniform` in src/stages/denoise/gpu.rs.
struct Params {
    n: u32,
    width: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<storage, read_write> field: array<f32>;
@group(0) @binding(1) var<uniform> params: Params;

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.y * params.width + id.x;
    if id.x >= params.width || i >= params.n {
        return;
    }
    field[i] = field[i] * 2.0;
}
