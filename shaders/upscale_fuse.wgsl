// upscale: one registered neighbour's residuals against the single-frame estimate,
// accumulated over region r1 (per plane: weighted residual sum, then weight sum). CPU twin:
// `stages::upscale::cpu::fuse`.

// #include shared/common.wgsl
// #include shared/upscale.wgsl
// #include shared/block_field.wgsl

@group(0) @binding(0) var<storage, read> nb: array<f32>;
// Block field from the centre to the neighbour: vx plane, then vy plane.
@group(0) @binding(1) var<storage, read> field: array<f32>;
// Single-frame estimate over r0.
@group(0) @binding(2) var<storage, read> bs: array<f32>;
@group(0) @binding(3) var<storage, read_write> acc: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

// Bilinear sample of the r0 estimate of plane p at global output coordinates, clamped.
fn est(p: u32, x0: f32, y0: f32) -> f32 {
    let r = params.r0;
    let x = clamp(x0 - f32(r.x), 0.0, f32(r.z - 1u));
    let y = clamp(y0 - f32(r.y), 0.0, f32(r.w - 1u));
    let fx = floor(x);
    let fy = floor(y);
    let ix = u32(fx);
    let iy = u32(fy);
    let ix1 = min(ix + 1u, r.z - 1u);
    let iy1 = min(iy + 1u, r.w - 1u);
    let base = p * r.z * r.w;
    let top = lerp(bs[base + iy * r.z + ix], bs[base + iy * r.z + ix1], x - fx);
    let bot = lerp(bs[base + iy1 * r.z + ix], bs[base + iy1 * r.z + ix1], x - fx);
    return lerp(top, bot, y - fy);
}

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let r1 = params.r1;
    let d = params.dims;
    if id.x >= r1.z || id.y >= r1.w || id.z >= d.planes {
        return;
    }
    let x = r1.x + id.x;
    let y = r1.y + id.y;
    let p = id.z;
    let u = src_pos(x, y);
    let gx = grid_pos(u.x, params.cols);
    let gy = grid_pos(u.y, params.rows);
    let vx = field_bilinear(0u, gx, gy);
    let vy = field_bilinear(1u, gx, gy);
    let qx0 = i32(floor(u.x + vx));
    let qy0 = i32(floor(u.y + vy));
    var s_num = 0.0;
    var s_den = 0.0;
    for (var j = 0; j < 2; j++) {
        for (var i = 0; i < 2; i++) {
            let qx = qx0 + i;
            let qy = qy0 + j;
            if qx < 0 || qy < 0 || qx >= i32(d.width) || qy >= i32(d.height) {
                continue;
            }
            let fx = (f32(qx) - vx + 0.5) * params.sx - 0.5;
            let fy = (f32(qy) - vy + 0.5) * params.sy - 0.5;
            let dx = fx - f32(x);
            let dy = fy - f32(y);
            let ws = exp(-(dx * dx + dy * dy) * params.inv_spread2);
            let s = nb[sample_index(d, u32(qx), u32(qy), p)];
            let res = s - est(p, fx, fy);
            // exp(-e) is 0 in f32 from 104 on (cpu::EXP_ZERO).
            let e = res * res * params.inv_tol2;
            if e < 104.0 {
                let wt = ws * exp(-e);
                s_num += wt * res;
                s_den += wt;
            }
        }
    }
    let n1 = r1.z * r1.w;
    let i = p * n1 + id.y * r1.z + id.x;
    let k = d.planes * n1 + i;
    if params.first == 1u {
        acc[i] = s_num;
        acc[k] = s_den;
    } else {
        acc[i] += s_num;
        acc[k] += s_den;
    }
}
