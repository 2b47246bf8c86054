// scratch_rows: sum of each row over its columns, all planes, after the band sums in the same
// buffer. CPU twin: `stages::scratch::cpu::profiles` (same order: columns outer, planes inner).

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
    let y = id.x;
    if y >= d.height || id.y > 0u {
        return;
    }
    var s = 0.0;
    for (var x = 0u; x < d.width; x++) {
        for (var p = 0u; p < d.planes; p++) {
            s += src[sample_index(d, x, y, p)];
        }
    }
    sums[params.bands * d.width + y] = s;
}
