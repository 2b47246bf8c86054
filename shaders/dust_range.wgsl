// dust: the luma range over the square of `radius` around each pixel (clamped at the edges),
// minima then maxima, for the re-match search. CPU twin: `stages::dust::cpu::range`.

// #include shared/common.wgsl

// Keep in sync with `PlaneUniform` in src/stages/dust/gpu.rs.
struct Params {
    w: u32,
    h: u32,
    radius: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let w = params.w;
    let h = params.h;
    if id.x >= w || id.y >= h || id.z > 0u {
        return;
    }
    var a = 3.0e38;
    var b = -3.0e38;
    let r = i32(params.radius);
    for (var j = -r; j <= r; j++) {
        for (var i = -r; i <= r; i++) {
            let xx = clamp(i32(id.x) + i, 0, i32(w) - 1);
            let yy = clamp(i32(id.y) + j, 0, i32(h) - 1);
            let v = src[u32(yy) * w + u32(xx)];
            a = min(a, v);
            b = max(b, v);
        }
    }
    let k = id.y * w + id.x;
    dst[k] = a;
    dst[w * h + k] = b;
}
