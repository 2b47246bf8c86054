// upscale: the back-projection residual over source rectangle sr, src - D(x), D the exact
// area decimation of the estimate x (over region r1, read clamped into it). CPU twin:
// `stages::upscale::cpu::residual`.

// #include shared/common.wgsl
// #include shared/upscale.wgsl

@group(0) @binding(0) var<storage, read> xs: array<f32>;
@group(0) @binding(1) var<storage, read> src: array<f32>;
// First output pixel and count per source column, then per source row.
@group(0) @binding(2) var<storage, read> area_start: array<u32>;
// AREA_TAPS weights per source column, then per source row.
@group(0) @binding(3) var<storage, read> area_weight: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let sr = params.sr;
    let r1 = params.r1;
    let d = params.dims;
    if id.x >= sr.z || id.y >= sr.w || id.z >= d.planes {
        return;
    }
    let p = id.z;
    let base = p * r1.z * r1.w;
    let qx = sr.x + id.x;
    let qy = sr.y + id.y;
    let x0 = i32(area_start[2u * qx]);
    let nx = area_start[2u * qx + 1u];
    let y0 = i32(area_start[2u * (d.width + qy)]);
    let ny = area_start[2u * (d.width + qy) + 1u];
    let ax = qx * AREA_TAPS;
    let ay = (d.width + qy) * AREA_TAPS;
    var acc = 0.0;
    for (var j = 0u; j < ny; j++) {
        var l = 0.0;
        for (var i = 0u; i < nx; i++) {
            l += area_weight[ax + i] * xs[base + region_index(r1, x0 + i32(i), y0 + i32(j))];
        }
        acc += area_weight[ay + j] * l;
    }
    dst[p * sr.z * sr.w + id.y * sr.z + id.x] = src[sample_index(d, qx, qy, p)] - acc;
}
