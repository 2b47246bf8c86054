// stabilise: the luma pyramid. Mode 0 blurs rows, mode 1 blurs columns (Gaussian taps, borders
// clamped, taps added in order), mode 2 is the 2x2 box average to the next level (an odd last
// row or column dropped), mode 3 the cut detector's thumbnail: means of `block` x `block`
// blocks (partial at the right and bottom). CPU twins: `blur`, `downsample` and `thumbnail` in
// src/stages/stabilise/motion.rs (equal up to rounding: fused multiply-adds, `f32` sums).

// Keep in sync with `PyramidUniform` in src/stages/stabilise/gpu.rs.
struct Params {
    // Source width and height (the output's for modes 0 and 1; twice it for mode 2).
    w: u32,
    h: u32,
    mode: u32,
    // Tap radius; `taps` holds 2 * radius + 1 weights.
    radius: u32,
    // Thumbnail block side and size.
    block: u32,
    tw: u32,
    th: u32,
    _pad: u32,
    taps: array<vec4<f32>, 4>,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

fn tap(i: u32) -> f32 {
    return params.taps[i / 4u][i % 4u];
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let w = params.w;
    let h = params.h;
    if params.mode == 3u {
        if id.x >= params.tw || id.y >= params.th {
            return;
        }
        let b = params.block;
        var s = 0.0;
        var n = 0u;
        for (var y = id.y * b; y < min(h, (id.y + 1u) * b); y++) {
            for (var x = id.x * b; x < min(w, (id.x + 1u) * b); x++) {
                s += src[y * w + x];
                n++;
            }
        }
        dst[id.y * params.tw + id.x] = s / f32(max(n, 1u));
        return;
    }
    if params.mode == 2u {
        let w2 = w / 2u;
        if id.x >= w2 || id.y >= h / 2u {
            return;
        }
        let a = 2u * id.y * w + 2u * id.x;
        let b = a + w;
        dst[id.y * w2 + id.x] = 0.25 * ((src[a] + src[a + 1u]) + (src[b] + src[b + 1u]));
        return;
    }
    if id.x >= w || id.y >= h {
        return;
    }
    let r = i32(params.radius);
    var s = 0.0;
    if params.mode == 0u {
        let row = id.y * w;
        for (var i = 0; i <= 2 * r; i++) {
            let x = u32(clamp(i32(id.x) + i - r, 0, i32(w) - 1));
            s += tap(u32(i)) * src[row + x];
        }
    } else {
        for (var i = 0; i <= 2 * r; i++) {
            let y = u32(clamp(i32(id.y) + i - r, 0, i32(h) - 1));
            s += tap(u32(i)) * src[y * w + id.x];
        }
    }
    dst[id.y * w + id.x] = s;
}
