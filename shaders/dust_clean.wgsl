// dust: mask cleanup; a candidate bit survives where it is strong or an 8-neighbour has it,
// strong single pixels marked lone.
// CPU twin: `stages::dust::cpu::clean`.

// #include shared/common.wgsl
// #include shared/dust.wgsl

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
    // (pos, neg, strong) bits of the centre, previous and next maps. A strong single pixel is
    // marked: the centre's with C_LONE, a neighbour map's bit moved up by LONE_SHIFT.
    for (var m = 0u; m < 3u; m++) {
        let strong = 4u << (3u * m);
        for (var q = 0u; q < 2u; q++) {
            let b = (1u << q) << (3u * m);
            if (own & b) == 0u {
                continue;
            }
            if (around & b) != 0u {
                keep |= b;
            } else if (own & strong) != 0u {
                if m == 0u {
                    keep |= b | C_LONE;
                } else {
                    keep |= b << LONE_SHIFT;
                }
            }
        }
    }
    // Weak bits pass through.
    dst[id.y * w + id.x] = keep | (own & C_WEAK);
}
