// upscale: single-frame estimate over region r0, Lanczos-3 blended toward the steering
// kernel. CPU twin: `stages::upscale::cpu::single` (and `steering`).

// #include shared/common.wgsl
// #include shared/upscale.wgsl

@group(0) @binding(0) var<storage, read> src: array<f32>;
// Six taps per output column, then six per output row.
@group(0) @binding(1) var<storage, read> tap_index: array<u32>;
@group(0) @binding(2) var<storage, read> tap_weight: array<f32>;
// Jxx, Jxy, Jyy planes of the source (unused when edge = 0).
@group(0) @binding(3) var<storage, read> tensor: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

const INV_SA2: f32 = 4.0;
const INV_SL2: f32 = 0.44444445;
const TENSOR_EPS: f32 = 1e-4;

fn tensor_bilinear(k: u32, x0: f32, y0: f32) -> f32 {
    let d = params.dims;
    let base = k * d.width * d.height;
    let x = clamp(x0, 0.0, f32(d.width - 1u));
    let y = clamp(y0, 0.0, f32(d.height - 1u));
    let fx = floor(x);
    let fy = floor(y);
    let ix = u32(fx);
    let iy = u32(fy);
    let ix1 = min(ix + 1u, d.width - 1u);
    let iy1 = min(iy + 1u, d.height - 1u);
    let top = lerp(tensor[base + iy * d.width + ix], tensor[base + iy * d.width + ix1], x - fx);
    let bot = lerp(tensor[base + iy1 * d.width + ix], tensor[base + iy1 * d.width + ix1], x - fx);
    return lerp(top, bot, y - fy);
}

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let r = params.r0;
    let d = params.dims;
    if id.x >= r.z || id.y >= r.w || id.z >= d.planes {
        return;
    }
    let x = r.x + id.x;
    let y = r.y + id.y;
    let p = id.z;
    let xt = x * 6u;
    let yt = params.ow * 6u + y * 6u;
    var acc = 0.0;
    for (var j = 0u; j < 6u; j++) {
        let row = tap_index[yt + j];
        var l = 0.0;
        for (var i = 0u; i < 6u; i++) {
            l += tap_weight[xt + i] * src[sample_index(d, tap_index[xt + i], row, p)];
        }
        acc += tap_weight[yt + j] * l;
    }
    if params.edge > 0.0 {
        let u = src_pos(x, y);
        let a = tensor_bilinear(0u, u.x, u.y);
        let b = tensor_bilinear(1u, u.x, u.y);
        let c = tensor_bilinear(2u, u.x, u.y);
        let half = (a - c) * 0.5;
        let disc = sqrt(half * half + b * b);
        let tr = a + c;
        let coherence = min(2.0 * disc / (tr + TENSOR_EPS), 1.0);
        let l1 = tr * 0.5 + disc;
        var nx = b;
        var ny = l1 - a;
        let len2 = nx * nx + ny * ny;
        if len2 < 1e-20 {
            if a >= c {
                nx = 1.0;
                ny = 0.0;
            } else {
                nx = 0.0;
                ny = 1.0;
            }
        } else {
            let inv = 1.0 / sqrt(len2);
            nx *= inv;
            ny *= inv;
        }
        let fx = floor(u.x);
        let fy = floor(u.y);
        var wts: array<f32, 16>;
        var sum = 0.0;
        for (var j = 0; j < 4; j++) {
            for (var i = 0; i < 4; i++) {
                let dx = fx - 1.0 + f32(i) - u.x;
                let dy = fy - 1.0 + f32(j) - u.y;
                let da = dx * nx + dy * ny;
                let dl = dy * nx - dx * ny;
                let wt = exp(-(da * da * INV_SA2 + dl * dl * INV_SL2));
                wts[j * 4 + i] = wt;
                sum += wt;
            }
        }
        let inv = 1.0 / sum;
        var s = 0.0;
        for (var j = 0; j < 4; j++) {
            let sy = u32(reflect(i32(fy) - 1 + j, i32(d.height)));
            for (var i = 0; i < 4; i++) {
                let sx = u32(reflect(i32(fx) - 1 + i, i32(d.width)));
                s += (wts[j * 4 + i] * inv) * src[sample_index(d, sx, sy, p)];
            }
        }
        acc += params.edge * coherence * (s - acc);
    }
    dst[(p * r.w + id.y) * r.z + id.x] = acc;
}
