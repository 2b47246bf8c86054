// upscale: one back-projection step over region r1, x + beta * U(residual), U the Lanczos-3
// interpolation of the residual (over source rectangle sr, read clamped into it), clamped to
// the range of the 4x4 source samples around; with has_acc the step is the weighted mean of
// the centre's correction (weight prior) and the neighbours' accumulated residuals. CPU twin:
// `stages::upscale::cpu::back_project` (and `local_range`).

// #include shared/common.wgsl
// #include shared/upscale.wgsl
// #include shared/upscale_range.wgsl

@group(0) @binding(0) var<storage, read> xs: array<f32>;
@group(0) @binding(1) var<storage, read> resid: array<f32>;
// Six taps per output column, then six per output row.
@group(0) @binding(2) var<storage, read> tap_index: array<u32>;
@group(0) @binding(3) var<storage, read> tap_weight: array<f32>;
@group(0) @binding(4) var<storage, read> src: array<f32>;
// Per plane the neighbours' weighted residual sums over r1, then their weight sums (unused
// unless has_acc).
@group(0) @binding(5) var<storage, read> acc: array<f32>;
@group(0) @binding(6) var<storage, read_write> dst: array<f32>;
@group(0) @binding(7) var<uniform> params: Params;

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let r1 = params.r1;
    let sr = params.sr;
    let d = params.dims;
    if id.x >= r1.z || id.y >= r1.w || id.z >= d.planes {
        return;
    }
    let p = id.z;
    let gx = r1.x + id.x;
    let gy = r1.y + id.y;
    let rbase = p * sr.z * sr.w;
    let cx = gx * 6u;
    let cy = (params.ow + gy) * 6u;
    var u = 0.0;
    for (var j = 0u; j < 6u; j++) {
        let iy = i32(tap_index[cy + j]);
        var l = 0.0;
        for (var i = 0u; i < 6u; i++) {
            let ix = i32(tap_index[cx + i]);
            l += tap_weight[cx + i] * resid[rbase + region_index(sr, ix, iy)];
        }
        u += tap_weight[cy + j] * l;
    }
    let n1 = r1.z * r1.w;
    let i = p * n1 + id.y * r1.z + id.x;
    if params.has_acc != 0u {
        u = (params.prior * u + acc[i]) / (params.prior + acc[d.planes * n1 + i]);
    }
    let range = local_range(gx, gy, p);
    dst[i] = min(max(xs[i] + params.beta * u, range.x), range.y);
}
