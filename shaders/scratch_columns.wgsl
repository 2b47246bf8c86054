// scratch_columns: sum of each column over each half band of rows, all planes. CPU twin:
// `stages::scratch::cpu::profiles` (same order: rows outer, planes inner).

// #include shared/common.wgsl

// Keep in sync with `ProfileUniform` in src/stages/scratch/gpu.rs.
struct Params {
    dims: Dims,
    band: u32,
    bands: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> sums: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let d = params.dims;
    let x = id.x;
    let b = id.y;
    if x >= d.width || b >= params.bands {
        return;
    }
    let y1 = min((b + 1u) * params.band, d.height);
    var s = 0.0;
    for (var y = b * params.band; y < y1; y++) {
        for (var p = 0u; p < d.planes; p++) {
            s += src[sample_index(d, x, y, p)];
        }
    }
    sums[b * d.width + x] = s;
}
