// denoise: R, G, B to the opponent planes ((r + g + b) / 3, (r - b) / 2, (r - 2g + b) / 4), or
// back (`inverse`). CPU twins: `denoise::cpu::to_opponent`, `from_opponent`.

// #include shared/common.wgsl

// Keep in sync with `OpponentUniform` in src/stages/denoise/gpu.rs.
struct Params {
    dims: Dims,
    inverse: u32,
    _p1: u32,
    _p2: u32,
    _p3: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let d = params.dims;
    if id.x >= d.width || id.y >= d.height {
        return;
    }
    let i0 = sample_index(d, id.x, id.y, 0u);
    let i1 = sample_index(d, id.x, id.y, 1u);
    let i2 = sample_index(d, id.x, id.y, 2u);
    let a = src[i0];
    let b = src[i1];
    let c = src[i2];
    if params.inverse == 0u {
        dst[i0] = (a + b + c) * (1.0 / 3.0);
        dst[i1] = (a - c) * 0.5;
        dst[i2] = (a - 2.0 * b + c) * 0.25;
    } else {
        dst[i0] = a + b + c * (2.0 / 3.0);
        dst[i1] = a - c * (4.0 / 3.0);
        dst[i2] = a - b + c * (2.0 / 3.0);
    }
}
