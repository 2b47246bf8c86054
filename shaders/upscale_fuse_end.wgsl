// upscale: the fused estimate over region r1, the single-frame estimate (over r0) plus the
// neighbours' weighted mean residual. CPU twin: `stages::upscale::cpu::fuse_end`.

// #include shared/common.wgsl
// #include shared/upscale.wgsl

@group(0) @binding(0) var<storage, read> bs: array<f32>;
// Unused when has_acc = 0.
@group(0) @binding(1) var<storage, read> acc: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let r1 = params.r1;
    let r0 = params.r0;
    let d = params.dims;
    if id.x >= r1.z || id.y >= r1.w || id.z >= d.planes {
        return;
    }
    let p = id.z;
    let x = i32(r1.x + id.x);
    let y = i32(r1.y + id.y);
    var v = bs[p * r0.z * r0.w + region_index(r0, x, y)];
    let n1 = r1.z * r1.w;
    let i = p * n1 + id.y * r1.z + id.x;
    if params.has_acc == 1u {
        v += acc[i] / (params.prior + acc[d.planes * n1 + i]);
    }
    dst[i] = v;
}
