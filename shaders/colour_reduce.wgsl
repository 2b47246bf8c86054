// colour, thumbnails: the sum of each block, row by row, left to right, into slot `slot` of the
// sums buffer. CPU twin: `stages::colour::cpu::block_sums` (same order of additions, so the
// thumbnails of both backends are bit-identical; no division here for the same reason).

// #include shared/common.wgsl

// Keep in sync with `ReduceUniform` in src/stages/colour/gpu.rs.
struct Params {
    dims: Dims,
    block: u32,
    tw: u32,
    th: u32,
    slot: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
// Per slot, planar block sums: `slot * tw * th * planes + (p * th + by) * tw + bx`.
@group(0) @binding(1) var<storage, read_write> sums: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let d = params.dims;
    if id.x >= params.tw || id.y >= params.th || id.z >= d.planes {
        return;
    }
    let x0 = id.x * params.block;
    let x1 = min(x0 + params.block, d.width);
    let y0 = id.y * params.block;
    let y1 = min(y0 + params.block, d.height);
    var s = 0.0;
    for (var y = y0; y < y1; y++) {
        let base = sample_index(d, 0u, y, id.z);
        for (var x = x0; x < x1; x++) {
            s += src[base + x];
        }
    }
    let per_slot = params.tw * params.th * d.planes;
    sums[params.slot * per_slot + (id.z * params.th + id.y) * params.tw + id.x] = s;
}
