// deflicker, thumbnails pass 1: the sum of each row segment of a block, left to right.
// CPU twin: `stages::deflicker::cpu::block_sums` (which sums in exactly this order, so the
// thumbnails of both backends are bit-identical; no division here for the same reason).

// #include shared/common.wgsl

// Keep in sync with `ReduceUniform` in src/stages/deflicker/gpu.rs.
struct Params {
    dims: Dims,
    block: u32,
    tw: u32,
    th: u32,
    slot: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
// Per plane and frame row, one sum per block column: `(p * height + y) * tw + bx`.
@group(0) @binding(1) var<storage, read_write> rows: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let d = params.dims;
    if id.x >= params.tw || id.y >= d.height || id.z >= d.planes {
        return;
    }
    let x0 = id.x * params.block;
    let x1 = min(x0 + params.block, d.width);
    let base = sample_index(d, 0u, id.y, id.z);
    var s = 0.0;
    for (var x = x0; x < x1; x++) {
        s += src[base + x];
    }
    rows[(id.z * d.height + id.y) * params.tw + id.x] = s;
}
