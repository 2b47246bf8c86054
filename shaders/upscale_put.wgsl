// upscale: the result over tile t written into the output frame, clamped to the range of the
// 4x4 source samples around each pixel unless the method is lanczos. CPU twin:
// `stages::upscale::cpu::put`.

// #include shared/common.wgsl
// #include shared/upscale.wgsl
// #include shared/upscale_range.wgsl

// The estimate over region r1.
@group(0) @binding(0) var<storage, read> xs: array<f32>;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let t = params.t;
    let r1 = params.r1;
    let d = params.dims;
    if id.x >= t.z || id.y >= t.w || id.z >= d.planes {
        return;
    }
    let p = id.z;
    let x = t.x + id.x;
    let y = t.y + id.y;
    var v = xs[p * r1.z * r1.w + region_index(r1, i32(x), i32(y))];
    if params.method != 0u {
        let range = local_range(x, y, p);
        v = min(max(v, range.x), range.y);
    }
    dst[(p * params.oh + y) * params.ow + x] = v;
}
