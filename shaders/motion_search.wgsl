// motion: block matching on one pyramid level, one invocation per block. CPU twin:
// `motion::cpu::search_level` (same candidates in the same order, same sums).

// #include shared/common.wgsl

// Keep in sync with `SearchUniform` in src/motion/gpu.rs.
struct Params {
    w: u32,
    h: u32,
    cols: u32,
    rows: u32,
    ccols: u32,
    crows: u32,
    block: u32,
    radius: i32,
    has_coarse: u32,
    subpixel: u32,
    lambda: f32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
// Coarser level's field: vx plane then vy plane, `ccols * crows` each.
@group(0) @binding(2) var<storage, read> coarse: array<f32>;
@group(0) @binding(3) var<storage, read_write> field: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

fn at(p: u32, x: i32, y: i32) -> f32 {
    let cx = u32(clamp(x, 0, i32(params.w) - 1));
    let cy = u32(clamp(y, 0, i32(params.h) - 1));
    if p == 0u {
        return a[cy * params.w + cx];
    }
    return b[cy * params.w + cx];
}

fn block_cost(bx: u32, by: u32, v: vec2<i32>) -> f32 {
    let bs = i32(params.block);
    let x0 = i32(bx) * bs - bs / 2;
    let y0 = i32(by) * bs - bs / 2;
    var s = 0.0;
    for (var j = 0; j < 2 * bs; j++) {
        for (var i = 0; i < 2 * bs; i++) {
            let x = x0 + i;
            let y = y0 + j;
            s += abs(at(0u, x, y) - at(1u, x + v.x, y + v.y));
        }
    }
    return s * (1.0 / f32(4 * bs * bs));
}

fn median9(v_in: array<i32, 9>) -> i32 {
    var v = v_in;
    for (var i = 1; i < 9; i++) {
        let k = v[i];
        var j = i - 1;
        while j >= 0 && v[j] > k {
            v[j + 1] = v[j];
            j--;
        }
        v[j + 1] = k;
    }
    return v[4];
}

fn predictor(bx: u32, by: u32) -> vec2<i32> {
    let cx = i32(min(bx / 2u, params.ccols - 1u));
    let cy = i32(min(by / 2u, params.crows - 1u));
    var xs: array<i32, 9>;
    var ys: array<i32, 9>;
    let n = params.ccols * params.crows;
    for (var j = 0; j < 3; j++) {
        for (var i = 0; i < 3; i++) {
            let x = u32(clamp(cx + i - 1, 0, i32(params.ccols) - 1));
            let y = u32(clamp(cy + j - 1, 0, i32(params.crows) - 1));
            xs[j * 3 + i] = i32(coarse[y * params.ccols + x]);
            ys[j * 3 + i] = i32(coarse[n + y * params.ccols + x]);
        }
    }
    return vec2<i32>(2 * median9(xs), 2 * median9(ys));
}

fn penalty(v: vec2<i32>, p: vec2<i32>) -> f32 {
    return params.lambda * f32(abs(v.x - p.x) + abs(v.y - p.y));
}

fn lerp(a: f32, b: f32, t: f32) -> f32 {
    return a + (b - a) * t;
}

// Bilinear sample of B, clamped, as `motion::cpu::sample`.
fn sample_b(xi: f32, yi: f32) -> f32 {
    let x = clamp(xi, 0.0, f32(params.w - 1u));
    let y = clamp(yi, 0.0, f32(params.h - 1u));
    let fx = floor(x);
    let fy = floor(y);
    let x0 = u32(fx);
    let y0 = u32(fy);
    let x1 = min(x0 + 1u, params.w - 1u);
    let y1 = min(y0 + 1u, params.h - 1u);
    let tx = x - fx;
    let ty = y - fy;
    let w = params.w;
    let top = lerp(b[y0 * w + x0], b[y0 * w + x1], tx);
    let bot = lerp(b[y1 * w + x0], b[y1 * w + x1], tx);
    return lerp(top, bot, ty);
}

fn block_cost_frac(bx: u32, by: u32, v: vec2<f32>) -> f32 {
    let bs = i32(params.block);
    let x0 = i32(bx) * bs - bs / 2;
    let y0 = i32(by) * bs - bs / 2;
    var s = 0.0;
    for (var j = 0; j < 2 * bs; j++) {
        for (var i = 0; i < 2 * bs; i++) {
            let x = x0 + i;
            let y = y0 + j;
            s += abs(at(0u, x, y) - sample_b(f32(x) + v.x, f32(y) + v.y));
        }
    }
    return s * (1.0 / f32(4 * bs * bs));
}

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= params.cols || id.y >= params.rows || id.z > 0u {
        return;
    }
    var p = vec2<i32>(0, 0);
    if params.has_coarse != 0u {
        p = predictor(id.x, id.y);
    }
    var best = vec2<i32>(0, 0);
    var best_cost = block_cost(id.x, id.y, best) + penalty(best, p);
    let r = params.radius;
    for (var dy = -r; dy <= r; dy++) {
        for (var dx = -r; dx <= r; dx++) {
            let v = p + vec2<i32>(dx, dy);
            let c = block_cost(id.x, id.y, v) + penalty(v, p);
            if c < best_cost {
                best_cost = c;
                best = v;
            }
        }
    }
    var fx = f32(best.x);
    var fy = f32(best.y);
    if params.subpixel != 0u {
        // Half, then quarter pixel steps per axis, taken only if strictly cheaper.
        var cost = block_cost(id.x, id.y, best);
        for (var k = 0; k < 2; k++) {
            let step = select(0.25, 0.5, k == 0);
            var nx = fx;
            var cx = cost;
            for (var e = -1; e <= 1; e += 2) {
                let cand = fx + f32(e) * step;
                let c = block_cost_frac(id.x, id.y, vec2<f32>(cand, fy));
                if c < cx {
                    nx = cand;
                    cx = c;
                }
            }
            var ny = fy;
            var cy = cost;
            for (var e = -1; e <= 1; e += 2) {
                let cand = fy + f32(e) * step;
                let c = block_cost_frac(id.x, id.y, vec2<f32>(fx, cand));
                if c < cy {
                    ny = cand;
                    cy = c;
                }
            }
            if nx != fx || ny != fy {
                fx = nx;
                fy = ny;
                cost = block_cost_frac(id.x, id.y, vec2<f32>(fx, fy));
            }
        }
    }
    let i = id.y * params.cols + id.x;
    field[i] = fx;
    field[params.cols * params.rows + i] = fy;
}
