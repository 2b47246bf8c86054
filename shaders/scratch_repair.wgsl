// scratch_repair: repair the pixels of the detected lines, copy the rest. CPU twin:
// `stages::scratch::cpu::repair` (`reconstruct`); keep the arithmetic in the same order.

// #include shared/common.wgsl
// #include shared/guard.wgsl

// Keep in sync with `RepairUniform` in src/stages/scratch/gpu.rs.
struct Params {
    dims: Dims,
    band: u32,
    bands: u32,
    neighbours: u32,
    lines_at: u32,
    consistency: f32,
    gate_lo: f32,
    gate_hi: f32,
    // Where the per-cell change limits start in `info`.
    limits_at: u32,
    // Per neighbour (dx, dy, unused, unused).
    shift: array<vec4<f32>, 4>,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> n0: array<f32>;
@group(0) @binding(2) var<storage, read> n1: array<f32>;
@group(0) @binding(3) var<storage, read> n2: array<f32>;
@group(0) @binding(4) var<storage, read> n3: array<f32>;
// Centre labels (bands * width), each neighbour's avoid map, 4 words per line, then the
// change limit of each labelled cell (f32 bits, bands * width).
@group(0) @binding(5) var<storage, read> info: array<u32>;
@group(0) @binding(6) var<storage, read_write> dst: array<f32>;
// Pixels whose repair the harm guard refused.
@group(0) @binding(7) var<storage, read_write> refused: atomic<u32>;
@group(0) @binding(8) var<uniform> params: Params;

const MAX_SOURCES: u32 = 2u;

// Frame k: 0 the centre, 1 + i neighbour i.
fn load(k: u32, i: u32) -> f32 {
    switch k {
        case 0u: { return src[i]; }
        case 1u: { return n0[i]; }
        case 2u: { return n1[i]; }
        case 3u: { return n2[i]; }
        default: { return n3[i]; }
    }
}

fn at(k: u32, p: u32, x: i32, y: i32) -> f32 {
    let d = params.dims;
    let xc = u32(clamp(x, 0, i32(d.width) - 1));
    let yc = u32(clamp(y, 0, i32(d.height) - 1));
    return load(k, sample_index(d, xc, yc, p));
}

fn column(k: u32, p: u32, x: i32, yf: f32) -> f32 {
    let y = clamp(yf, 0.0, f32(params.dims.height - 1u));
    let y0 = floor(y);
    let t = y - y0;
    let a = at(k, p, x, i32(y0));
    let b = at(k, p, x, i32(y0) + 1);
    return a + (b - a) * t;
}

fn bilinear(k: u32, p: u32, xf: f32, yf: f32) -> f32 {
    let x = clamp(xf, 0.0, f32(params.dims.width - 1u));
    let x0 = floor(x);
    let t = x - x0;
    let a = column(k, p, i32(x0), yf);
    let b = column(k, p, i32(x0) + 1, yf);
    return a + (b - a) * t;
}

// Whether position (x, y) (clamped into the frame) of neighbour k is on or beside one of its
// own line candidates.
fn avoided(k: u32, xf: f32, yf: f32) -> bool {
    let d = params.dims;
    let x = clamp(xf, 0.0, f32(d.width - 1u));
    let y = clamp(yf, 0.0, f32(d.height - 1u));
    let band = min(u32(round(y)) / params.band, params.bands - 1u);
    let xa = u32(floor(x));
    let xb = min(xa + 1u, d.width - 1u);
    let base = params.bands * d.width * (1u + k) + band * d.width;
    return info[base + xa] != 0u || info[base + xb] != 0u;
}

// The range of plane p that the picture around (x, y) shows: the line's untouched flanks
// (columns xl - 1, xl, xr, xr + 1; five rows) and the compensated neighbours at the pixel.
// CPU twin: `cpu::guard_range`.
fn guard_range(p: u32, x: i32, y: i32, xl: i32, xr: i32) -> vec2<f32> {
    var lo = 3.0e38;
    var hi = -3.0e38;
    var fxs = array<i32, 4>(xl - 1, xl, xr, xr + 1);
    for (var f = 0; f < 4; f++) {
        for (var j = -2; j <= 2; j++) {
            let v = at(0u, p, fxs[f], y + j);
            lo = min(lo, v);
            hi = max(hi, v);
        }
    }
    let w = i32(params.dims.width);
    let h = i32(params.dims.height);
    for (var k = 0u; k < params.neighbours; k++) {
        let xs = f32(x) + params.shift[k].x;
        let ys = f32(y) + params.shift[k].y;
        if xs < 0.0 || xs > f32(w - 1) || ys < 0.0 || ys > f32(h - 1) {
            continue;
        }
        let v = bilinear(1u + k, p, xs, ys);
        lo = min(lo, v);
        hi = max(hi, v);
    }
    return vec2<f32>(lo, hi);
}

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let d = params.dims;
    if id.x >= d.width || id.y >= d.height || id.z > 0u {
        return;
    }
    let np = d.planes;
    let b = id.y / params.band;
    let label = info[b * d.width + id.x];
    if label == 0u {
        for (var p = 0u; p < np; p++) {
            let i = sample_index(d, id.x, id.y, p);
            dst[i] = src[i];
        }
        return;
    }
    let li = params.lines_at + 4u * (label - 1u);
    let lx0 = info[li];
    let lx1 = info[li + 1u];
    let sign = f32(bitcast<i32>(info[li + 2u]));
    let w = i32(d.width);
    let h = i32(d.height);
    let x = i32(id.x);
    let y = i32(id.y);
    var xl = i32(lx0) - 1;
    var xr = i32(lx1) + 1;

    var r = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
    // A spatial repair's flank samples, which widen the harm guard's range (as in
    // `cpu::reconstruct`).
    var ends_lo = array<f32, 4>(3.0e38, 3.0e38, 3.0e38, 3.0e38);
    var ends_hi = array<f32, 4>(-3.0e38, -3.0e38, -3.0e38, -3.0e38);
    var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
    var used = 0u;
    var fxs = array<i32, 4>(xl - 1, xl, xr, xr + 1);
    for (var k = 0u; k < params.neighbours; k++) {
        if used == MAX_SOURCES {
            break;
        }
        let dx = params.shift[k].x;
        let dy = params.shift[k].y;
        let xs = f32(x) + dx;
        let ys = f32(y) + dy;
        if xs < 0.0 || xs > f32(w - 1) || ys < 0.0 || ys > f32(h - 1) {
            continue;
        }
        if avoided(k, xs, ys) {
            continue;
        }
        // Flank samples off the neighbour's own scratches: at least half of them.
        var count = 0u;
        var err = 0.0;
        var offs = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
        for (var p = 0u; p < np; p++) {
            var s = 0.0;
            count = 0u;
            for (var f = 0; f < 4; f++) {
                for (var j = -2; j <= 2; j++) {
                    let nx = f32(fxs[f]) + dx;
                    let ny = f32(y + j) + dy;
                    if avoided(k, nx, ny) {
                        continue;
                    }
                    s += at(0u, p, fxs[f], y + j) - bilinear(1u + k, p, nx, ny);
                    count += 1u;
                }
            }
            if count < 10u {
                break;
            }
            let off = s / f32(count);
            offs[p] = off;
            for (var f = 0; f < 4; f++) {
                for (var j = -2; j <= 2; j++) {
                    let nx = f32(fxs[f]) + dx;
                    let ny = f32(y + j) + dy;
                    if avoided(k, nx, ny) {
                        continue;
                    }
                    err += abs(at(0u, p, fxs[f], y + j) - bilinear(1u + k, p, nx, ny) - off);
                }
            }
        }
        if count < 10u {
            continue;
        }
        if err / f32(count * np) > params.consistency {
            continue;
        }
        for (var p = 0u; p < np; p++) {
            acc[p] += bilinear(1u + k, p, xs, ys) + offs[p];
        }
        used += 1u;
    }
    if used > 0u {
        for (var p = 0u; p < np; p++) {
            r[p] = acc[p] / f32(used);
        }
    } else {
        // Spatial: across the line along the slope on which its flanks agree best.
        xl = max(xl, 0);
        xr = min(xr, w - 1);
        let g = f32(max(xr - xl, 1));
        let dl = f32(x - xl);
        let dr = f32(xr - x);
        let yf = f32(y);
        var slopes = array<f32, 7>(0.0, -0.5, 0.5, -1.0, 1.0, -2.0, 2.0);
        var best = 3.0e38;
        var slope = 0.0;
        for (var si = 0; si < 7; si++) {
            let s = slopes[si];
            var cost = 0.0;
            for (var p = 0u; p < np; p++) {
                for (var j = -2; j <= 2; j++) {
                    let l = column(0u, p, xl, yf - s * dl + f32(j));
                    let rr = column(0u, p, xr, yf + s * dr + f32(j));
                    cost += abs(l - rr);
                }
            }
            cost *= 1.0 + 0.25 * abs(s);
            if cost < best {
                best = cost;
                slope = s;
            }
        }
        let t = dl / g;
        for (var p = 0u; p < np; p++) {
            let l = column(0u, p, xl, yf - slope * dl);
            let rr = column(0u, p, xr, yf + slope * dr);
            r[p] = l + (rr - l) * t;
            ends_lo[p] = min(l, rr);
            ends_hi[p] = max(l, rr);
        }
    }
    var dev = 0.0;
    for (var p = 0u; p < np; p++) {
        dev += src[sample_index(d, id.x, id.y, p)] - r[p];
    }
    dev = sign * dev / f32(np);
    let wgt = clamp((dev - params.gate_lo) / (params.gate_hi - params.gate_lo), 0.0, 1.0);
    var fixed = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
    var harm = false;
    // No more than the line stands out of its column profile here (CPU twin: `Plan::limits`).
    let lim = bitcast<f32>(info[params.limits_at + b * d.width + id.x]);
    for (var p = 0u; p < np; p++) {
        let v = src[sample_index(d, id.x, id.y, p)];
        fixed[p] = v + clamp((r[p] - v) * wgt, -lim, lim);
        let range = guard_range(p, x, y, i32(lx0) - 1, i32(lx1) + 1);
        let lo = min(range.x, ends_lo[p]);
        let hi = max(range.y, ends_hi[p]);
        harm = harm || pushed_beyond(v, fixed[p], lo, hi);
    }
    if harm {
        atomicAdd(&refused, 1u);
    }
    for (var p = 0u; p < np; p++) {
        let i = sample_index(d, id.x, id.y, p);
        if harm {
            dst[i] = src[i];
        } else {
            dst[i] = fixed[p];
        }
    }
}
