// denoise: 2x2 box average of a luma plane to half resolution, where motion is estimated.
// CPU twin: `motion::cpu::reduce` (same order of additions).

// #include shared/common.wgsl

// Keep in sync with `HalfUniform` in src/stages/denoise/gpu.rs.
struct Params {
    src_w: u32,
    out_w: u32,
    out_h: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= params.out_w || id.y >= params.out_h {
        return;
    }
    let w = params.src_w;
    let i = 2u * id.y * w + 2u * id.x;
    let s = src[i] + src[i + 1u] + src[i + w] + src[i + w + 1u];
    dst[id.y * params.out_w + id.x] = s * 0.25;
}
