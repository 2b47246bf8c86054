// motion: mean of the planes, one plane out. CPU twin: `motion::cpu::luma` (same order of
// additions).

// #include shared/common.wgsl

// Keep in sync with `LumaUniform` in src/motion/gpu.rs.
struct Params {
    dims: Dims,
    inv: f32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let d = params.dims;
    if id.x >= d.width || id.y >= d.height || id.z > 0u {
        return;
    }
    var s = 0.0;
    for (var p = 0u; p < d.planes; p++) {
        s += src[sample_index(d, id.x, id.y, p)];
    }
    dst[id.y * d.width + id.x] = s * params.inv;
}
