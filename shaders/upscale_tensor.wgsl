// upscale: structure tensor of the source luma, planes Jxx, Jxy, Jyy. CPU twin:
// `stages::upscale::cpu::tensor`.

// #include shared/common.wgsl
// #include shared/upscale.wgsl

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

fn luma(x: i32, y: i32) -> f32 {
    let d = params.dims;
    let cx = u32(clamp(x, 0, i32(d.width) - 1));
    let cy = u32(clamp(y, 0, i32(d.height) - 1));
    var s = 0.0;
    for (var p = 0u; p < d.planes; p++) {
        s += src[sample_index(d, cx, cy, p)];
    }
    return s * params.inv_planes;
}

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let d = params.dims;
    if id.x >= d.width || id.y >= d.height || id.z > 0u {
        return;
    }
    let w = i32(d.width);
    let h = i32(d.height);
    var s = vec3<f32>(0.0);
    for (var dy = -1; dy <= 1; dy++) {
        for (var dx = -1; dx <= 1; dx++) {
            let x = clamp(i32(id.x) + dx, 0, w - 1);
            let y = clamp(i32(id.y) + dy, 0, h - 1);
            let gx = (luma(x + 1, y) - luma(x - 1, y)) * 0.5;
            let gy = (luma(x, y + 1) - luma(x, y - 1)) * 0.5;
            s.x += gx * gx;
            s.y += gx * gy;
            s.z += gy * gy;
        }
    }
    let n = d.width * d.height;
    let i = id.y * d.width + id.x;
    dst[i] = s.x;
    dst[n + i] = s.y;
    dst[2u * n + i] = s.z;
}
