// upscale: the estimate over region r1 blurred by the area-sampling PSF (reflected frame
// borders, read clamped into the region), for the fusion. CPU twin:
// `stages::upscale::cpu::blur`.

// #include shared/common.wgsl
// #include shared/upscale.wgsl

@group(0) @binding(0) var<storage, read> xs: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let r1 = params.r1;
    let d = params.dims;
    if id.x >= r1.z || id.y >= r1.w || id.z >= d.planes {
        return;
    }
    let p = id.z;
    let base = p * r1.z * r1.w;
    let gx = i32(r1.x + id.x);
    let gy = i32(r1.y + id.y);
    let rxp = i32(params.npsf_x / 2u);
    let ryp = i32(params.npsf_y / 2u);
    var acc = 0.0;
    for (var j = 0u; j < params.npsf_y; j++) {
        let yy = reflect(gy + i32(j) - ryp, i32(params.oh));
        var l = 0.0;
        for (var i = 0u; i < params.npsf_x; i++) {
            let xx = reflect(gx + i32(i) - rxp, i32(params.ow));
            l += params.psf_x[i / 4u][i % 4u] * xs[base + region_index(r1, xx, yy)];
        }
        acc += params.psf_y[j / 4u][j % 4u] * l;
    }
    dst[base + id.y * r1.z + id.x] = acc;
}
