// dust: mask cleanup; a candidate bit survives where it is strong or an 8-neighbour has it.
// CPU twin: `stages::dust::cpu::clean`.

// #include shared/common.wgsl

// Keep in sync with `PlaneUniform` in src/stages/dust/gpu.rs.
struct Params {
    w: u32,
    h: u32,
    radius: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> bits: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let w = params.w;
    let h = params.h;
    if id.x >= w || id.y >= h || id.z > 0u {
        return;
    }
    let own = bits[id.y * w + id.x];
    var around = 0u;
    for (var j = -1; j <= 1; j++) {
        for (var i = -1; i <= 1; i++) {
            let xx = i32(id.x) + i;
            let yy = i32(id.y) + j;
            if !(i == 0 && j == 0) && xx >= 0 && yy >= 0 && xx < i32(w) && yy < i32(h) {
                around |= bits[u32(yy) * w + u32(xx)];
            }
        }
    }
    var keep = 0u;
    // (pos, neg, strong) bits of the centre, previous and next maps.
    for (var m = 0u; m < 3u; m++) {
        let pos = 1u << (3u * m);
        let neg = 2u << (3u * m);
        let strong = 4u << (3u * m);
        if (own & pos) != 0u && ((own & strong) != 0u || (around & pos) != 0u) {
            keep |= pos;
        }
        if (own & neg) != 0u && ((own & strong) != 0u || (around & neg) != 0u) {
            keep |= neg;
        }
    }
    // Weak bits (512) pass through.
    dst[id.y * w + id.x] = keep | (own & 512u);
}
