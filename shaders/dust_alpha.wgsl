// dust: the soft repair mask, 1 on the grown mask and fading over `feather + 1` pixels
// beyond. CPU twin: `stages::dust::cpu::alpha`.

// #include shared/common.wgsl

// Keep in sync with `AlphaUniform` in src/stages/dust/gpu.rs.
struct Params {
    w: u32,
    h: u32,
    dilate: u32,
    feather: u32,
}

@group(0) @binding(0) var<storage, read> flag: array<f32>;
@group(0) @binding(1) var<storage, read_write> alpha: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let w = i32(params.w);
    let h = i32(params.h);
    if id.x >= params.w || id.y >= params.h || id.z > 0u {
        return;
    }
    let r = i32(params.feather);
    var d2 = 2147483647;
    for (var j = -r; j <= r; j++) {
        for (var i = -r; i <= r; i++) {
            let xx = i32(id.x) + i;
            let yy = i32(id.y) + j;
            if xx >= 0 && yy >= 0 && xx < w && yy < h && flag[u32(yy * w + xx)] > 0.5 {
                d2 = min(d2, i * i + j * j);
            }
        }
    }
    var a = 0.0;
    if d2 != 2147483647 {
        a = max(1.0 - sqrt(f32(d2)) / (f32(params.feather) + 1.0), 0.0);
    }
    alpha[id.y * params.w + id.x] = a;
}
