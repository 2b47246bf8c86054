// stabilise: one warp per frame, Lanczos-3 with mirrored edges, all planes, with the border
// filled from motion-compensated neighbours, mirrored, cropped or black.
// CPU twin: `stages::stabilise::cpu::warp` (and `locate`, `coverage`, `lanczos3`, `mirror`).

// #include shared/common.wgsl

// Where output pixel y is found in a source: p = y + m (y - C) + t.xy, with m = M - I;
// its values match the centre's as (v - t.w) * t.z.
struct Source {
    m: vec4<f32>,
    t: vec4<f32>,
}

// Keep in sync with `WarpUniform` in src/stages/stabilise/gpu.rs.
struct Params {
    dims: Dims,
    // Output width, height, margin (crop), fill (0 neighbours, 1 mirror, 2 crop, 3 black).
    out: vec4<u32>,
    // Sources in use (1 to 5): the centre, then neighbours nearest first.
    info: vec4<u32>,
    // Frame centre (cx, cy).
    center: vec4<f32>,
    src: array<Source, 5>,
}

@group(0) @binding(0) var<storage, read> src0: array<f32>;
@group(0) @binding(1) var<storage, read> src1: array<f32>;
@group(0) @binding(2) var<storage, read> src2: array<f32>;
@group(0) @binding(3) var<storage, read> src3: array<f32>;
@group(0) @binding(4) var<storage, read> src4: array<f32>;
@group(0) @binding(5) var<storage, read_write> dst: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;

const PI: f32 = 3.14159265358979;

fn mirror(i: i32, n: i32) -> i32 {
    if n <= 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let m = ((i % period) + period) % period;
    return select(period - m, m, m < n);
}

fn lanczos3(f: f32) -> array<f32, 6> {
    if f < 1e-5 {
        return array<f32, 6>(0.0, 0.0, 1.0, 0.0, 0.0, 0.0);
    }
    if f > 1.0 - 1e-5 {
        return array<f32, 6>(0.0, 0.0, 0.0, 1.0, 0.0, 0.0);
    }
    // cos and sin of m * pi / 3 for m = 2, 1, 0, -1, -2, -3.
    let c = array<f32, 6>(-0.5, 0.5, 1.0, 0.5, -0.5, -1.0);
    let s = array<f32, 6>(0.8660254, 0.8660254, 0.0, -0.8660254, -0.8660254, 0.0);
    let sa = sin(PI * f);
    let sb = sin(PI * f / 3.0);
    let cb = cos(PI * f / 3.0);
    var w: array<f32, 6>;
    var sum = 0.0;
    for (var k = 0; k < 6; k++) {
        let t = f + (2.0 - f32(k));
        let sin_pt = select(-sa, sa, k % 2 == 0);
        let sin_pt3 = sb * c[k] + cb * s[k];
        w[k] = 3.0 * sin_pt * sin_pt3 / (PI * PI * t * t);
        sum += w[k];
    }
    for (var k = 0; k < 6; k++) {
        w[k] = w[k] / sum;
    }
    return w;
}

struct Tap {
    ix: i32,
    iy: i32,
    fx: f32,
    fy: f32,
    inside: f32,
}

fn locate(k: u32, x: u32, y: u32) -> Tap {
    let s = params.src[k];
    let ux = f32(x) - params.center.x;
    let uy = f32(y) - params.center.y;
    let dx = s.m.x * ux + s.m.y * uy + s.t.x;
    let dy = s.m.z * ux + s.m.w * uy + s.t.y;
    let flx = floor(dx);
    let fly = floor(dy);
    let px = f32(x) + dx;
    let py = f32(y) + dy;
    let d = params.dims;
    let inside = min(min(px, py), min(f32(d.width - 1u) - px, f32(d.height - 1u) - py));
    return Tap(i32(x) + i32(flx), i32(y) + i32(fly), dx - flx, dy - fly, inside);
}

fn coverage(inside: f32) -> f32 {
    return clamp(inside + 1.0, 0.0, 1.0);
}

fn fetch(k: u32, i: u32) -> f32 {
    switch k {
        case 0u: { return src0[i]; }
        case 1u: { return src1[i]; }
        case 2u: { return src2[i]; }
        case 3u: { return src3[i]; }
        default: { return src4[i]; }
    }
}

// Lanczos-3 sample of plane p of source k at a tap.
fn sample(k: u32, p: u32, tap: Tap, wx: array<f32, 6>, wy: array<f32, 6>) -> f32 {
    let d = params.dims;
    let w = i32(d.width);
    let h = i32(d.height);
    var cols: array<u32, 6>;
    for (var i = 0; i < 6; i++) {
        cols[i] = u32(mirror(tap.ix - 2 + i, w));
    }
    var acc = 0.0;
    for (var j = 0; j < 6; j++) {
        let row = sample_index(d, 0u, u32(mirror(tap.iy - 2 + j, h)), p);
        var line = 0.0;
        for (var i = 0; i < 6; i++) {
            line += wx[i] * fetch(k, row + cols[i]);
        }
        acc += wy[j] * line;
    }
    return acc;
}

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let d = params.dims;
    let ow = params.out.x;
    let oh = params.out.y;
    if id.x >= ow || id.y >= oh {
        return;
    }
    let margin = params.out.z;
    let fill = params.out.w;
    let x = id.x + margin;
    let y = id.y + margin;
    let c = locate(0u, x, y);
    let cwx = lanczos3(c.fx);
    let cwy = lanczos3(c.fy);
    let c0 = coverage(c.inside);
    let sources = params.info.x;
    for (var p = 0u; p < d.planes; p++) {
        let s0 = sample(0u, p, c, cwx, cwy);
        var v = s0;
        if fill == 3u {
            v = c0 * s0;
        } else if fill == 0u && c0 < 1.0 {
            var rem = 1.0 - c0;
            var acc = c0 * s0;
            for (var k = 1u; k < sources; k++) {
                if rem <= 0.0 {
                    break;
                }
                let t = locate(k, x, y);
                let ck = coverage(t.inside);
                if ck <= 0.0 {
                    continue;
                }
                let sv = sample(k, p, t, lanczos3(t.fx), lanczos3(t.fy));
                let g = params.src[k].t;
                acc += rem * ck * ((sv - g.w) * g.z);
                rem *= 1.0 - ck;
            }
            v = acc + rem * s0;
        }
        dst[(p * oh + id.y) * ow + id.x] = v;
    }
}
