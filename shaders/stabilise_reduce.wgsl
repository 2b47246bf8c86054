// stabilise: box average of `factor` x `factor` blocks of every plane, to the analysis
// resolution. CPU twin: `stages::stabilise::cpu::reduce` (same order of additions, so the
// results are bit-identical).

// #include shared/common.wgsl

// Keep in sync with `ReduceUniform` in src/stages/stabilise/gpu.rs.
struct Params {
    dims: Dims,
    factor: u32,
    out_w: u32,
    out_h: u32,
    // 1 / factor^2, exact for a power of two.
    inv: f32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let d = params.dims;
    if id.x >= params.out_w || id.y >= params.out_h || id.z >= d.planes {
        return;
    }
    let f = params.factor;
    var s = 0.0;
    for (var j = 0u; j < f; j++) {
        let row = sample_index(d, id.x * f, id.y * f + j, id.z);
        for (var i = 0u; i < f; i++) {
            s += src[row + i];
        }
    }
    dst[(id.z * params.out_h + id.y) * params.out_w + id.x] = s * params.inv;
}
