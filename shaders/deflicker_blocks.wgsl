// deflicker, thumbnails pass 2: the sum of each block's row sums, top to bottom, into slot
// `slot` of the sums buffer. CPU twin: `stages::deflicker::cpu::block_sums`.

// #include shared/common.wgsl

// Keep in sync with `ReduceUniform` in src/stages/deflicker/gpu.rs.
struct Params {
    dims: Dims,
    block: u32,
    tw: u32,
    th: u32,
    slot: u32,
}

@group(0) @binding(0) var<storage, read> rows: array<f32>;
// Per slot, planar block sums: `slot * tw * th * planes + (p * th + by) * tw + bx`.
@group(0) @binding(1) var<storage, read_write> sums: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let d = params.dims;
    if id.x >= params.tw || id.y >= params.th || id.z >= d.planes {
        return;
    }
    let y0 = id.y * params.block;
    let y1 = min(y0 + params.block, d.height);
    var s = 0.0;
    for (var y = y0; y < y1; y++) {
        s += rows[(id.z * d.height + y) * params.tw + id.x];
    }
    let per_slot = params.tw * params.th * d.planes;
    sums[params.slot * per_slot + (id.z * params.th + id.y) * params.tw + id.x] = s;
}
