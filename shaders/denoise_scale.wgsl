// denoise: a motion field found on half-resolution luma doubled for the full frame (mode 0),
// or half-resolution luma quantised for the motion search (mode 1). CPU twins:
// `denoise::scale_field` and `denoise::search::quantise`.

// #include shared/common.wgsl

// Keep in sync with `ScaleUniform` in src/stages/denoise/gpu.rs.
struct Params {
    n: u32,
    width: u32,
    mode: u32,
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
    if params.mode == 0u {
        field[i] = field[i] * 2.0;
    } else {
        // Multiples of 1/1024 in 0..1 (the products are exact: no rounding to differ).
        field[i] = floor(clamp(field[i], 0.0, 1.0) * 1024.0 + 0.5) * (1.0 / 1024.0);
    }
}
