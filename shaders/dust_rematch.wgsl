// dust: the re-match check. A pixel taken for dirt whose 5x5 patch (with structure of its
// own) is found in the uncompensated neighbours, displaced by some v within the reach, is
// picture a block motion lost, not dirt: it drops to a weak candidate.
// CPU twin: `stages::dust::cpu::rematch`.

// #include shared/common.wgsl
// #include shared/dust.wgsl

// Keep in sync with `RematchUniform` in src/stages/dust/gpu.rs.
struct Params {
    w: u32,
    h: u32,
    half: i32,
    step_a: i32,
    step_b: i32,
    has_ext: u32,
    center_k: f32,
    patch_k: f32,
    texture_k: f32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<storage, read> flag: array<f32>;
@group(0) @binding(1) var<storage, read> ext: array<f32>;
@group(0) @binding(2) var<storage, read> lc: array<f32>;
@group(0) @binding(3) var<storage, read> ca: array<f32>;
@group(0) @binding(4) var<storage, read> cb: array<f32>;
@group(0) @binding(5) var<storage, read> ra: array<f32>;
@group(0) @binding(6) var<storage, read> rb: array<f32>;
@group(0) @binding(7) var<storage, read_write> dst: array<f32>;
@group(0) @binding(8) var<uniform> params: Params;

fn idx(x: i32, y: i32) -> u32 {
    let xx = clamp(x, 0, i32(params.w) - 1);
    let yy = clamp(y, 0, i32(params.h) - 1);
    return u32(yy) * params.w + u32(xx);
}

// How far `v` lies outside the 3x3 range at `(x, y)` of neighbour a (`which` 0) or b.
fn off_range(which: u32, x: i32, y: i32, v: f32) -> f32 {
    let k = idx(x, y);
    let n = params.w * params.h;
    if which == 0u {
        return abs(beyond(v, ra[k], ra[n + k]));
    }
    return abs(beyond(v, rb[k], rb[n + k]));
}

fn found(x: i32, y: i32, d: f32) -> bool {
    let c = lc[idx(x, y)];
    let tc = params.center_k * abs(d);
    let tp = params.patch_k * abs(d) * 50.0;
    // The 5x5 patch around the pixel, row by row, read once.
    var around: array<f32, 25>;
    var lo = 3.0e38;
    var hi = -3.0e38;
    for (var q = 0; q < 25; q++) {
        let v = lc[idx(x + q % 5 - 2, y + q / 5 - 2)];
        around[q] = v;
        lo = min(lo, v);
        hi = max(hi, v);
    }
    if hi - lo < params.texture_k * abs(d) {
        return false;
    }
    let half = params.half;
    for (var vy0 = -half; vy0 <= half; vy0++) {
        for (var vx0 = -half; vx0 <= half; vx0++) {
            let vx = 2 * vx0;
            let vy = 2 * vy0;
            let ax = params.step_a * vx;
            let ay = params.step_a * vy;
            let bx = params.step_b * vx;
            let by = params.step_b * vy;
            let ec = off_range(0u, x + ax, y + ay, c) + off_range(1u, x + bx, y + by, c);
            if ec >= 2.0 * tc {
                continue;
            }
            var sum = 0.0;
            for (var q = 0; q < 25; q++) {
                let i = q % 5 - 2;
                let j = q / 5 - 2;
                sum += off_range(0u, x + i + ax, y + j + ay, around[q])
                    + off_range(1u, x + i + bx, y + j + by, around[q]);
            }
            if sum < tp {
                return true;
            }
        }
    }
    return false;
}

// The sum of three samples of the centre (`which` 0) or compensated neighbour a (1) or b
// (2) across (x, y) along (dx, dy).
fn sum3(which: u32, x: i32, y: i32, dx: i32, dy: i32) -> f32 {
    var s = 0.0;
    for (var t = -1; t <= 1; t++) {
        let k = idx(x + t * dx, y + t * dy);
        switch which {
            case 0u: { s += lc[k]; }
            case 1u: { s += ca[k]; }
            default: { s += cb[k]; }
        }
    }
    return s;
}

// A thin line that moved by under a pixel carries the same light across it in every frame
// (CPU twin: `cpu::thin_line`).
fn thin_line(x: i32, y: i32, d: f32) -> bool {
    let tol = 0.5 * abs(d);
    for (var dir = 0; dir < 2; dir++) {
        let dx = 1 - dir;
        let dy = dir;
        let own = sum3(0u, x, y, dx, dy);
        // Sums a whole pixel apart, and halfway between.
        var fa = false;
        var fb = false;
        for (var which = 1u; which <= 2u; which++) {
            let s0 = sum3(which, x - dx, y - dy, dx, dy);
            let s1 = sum3(which, x, y, dx, dy);
            let s2 = sum3(which, x + dx, y + dy, dx, dy);
            let hit = abs(s0 - own) < tol || abs(s1 - own) < tol || abs(s2 - own) < tol
                || abs(0.5 * (s0 + s1) - own) < tol || abs(0.5 * (s1 + s2) - own) < tol;
            if which == 1u {
                fa = hit;
            } else {
                fb = hit;
            }
        }
        if fa && fb {
            return true;
        }
    }
    return false;
}

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let w = params.w;
    let h = params.h;
    if id.x >= w || id.y >= h || id.z > 0u {
        return;
    }
    let k = id.y * w + id.x;
    var f = flag[k];
    if f > 0.75 && !(params.has_ext != 0u && ext[k] > 0.5) {
        let d = beyond(lc[k], ca[k], cb[k]);
        if d != 0.0 && (thin_line(i32(id.x), i32(id.y), d) || found(i32(id.x), i32(id.y), d)) {
            f = FOUND;
        }
    }
    dst[k] = f;
}
