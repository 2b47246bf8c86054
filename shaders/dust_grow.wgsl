// dust: weak candidates within `dilate` pixels (a disc) of dirt join the mask. CPU twin:
// `stages::dust::cpu::grow`.

// #include shared/common.wgsl

// Keep in sync with `AlphaUniform` in src/stages/dust/gpu.rs.
struct Params {
    w: u32,
    h: u32,
    dilate: u32,
    feather: u32,
}

@group(0) @binding(0) var<storage, read> flag: array<f32>;
@group(0) @binding(1) var<storage, read_write> grown: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let w = i32(params.w);
    let h = i32(params.h);
    if id.x >= params.w || id.y >= params.h || id.z > 0u {
        return;
    }
    let f = flag[id.y * params.w + id.x];
    var g = f > 0.75;
    if !g && f > 0.25 {
        let r = i32(params.dilate);
        for (var j = -r; j <= r; j++) {
            for (var i = -r; i <= r; i++) {
                let xx = i32(id.x) + i;
                let yy = i32(id.y) + j;
                if i * i + j * j <= r * r && xx >= 0 && yy >= 0 && xx < w && yy < h
                    && flag[u32(yy * w + xx)] > 0.75 {
                    g = true;
                }
            }
        }
    }
    grown[id.y * params.w + id.x] = select(0.0, 1.0, g);
}
