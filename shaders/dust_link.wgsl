// dust: hysteresis growth. Phase 0 writes each pixel's code (2 or -2 on the grown mask, 1 or
// -1 where a weak candidate may join, by polarity; 0 elsewhere); phase 1 is one step, a pixel
// joining where a neighbour of its polarity has; phase 2 adds the joined pixels to the grown
// mask. CPU twins: `stages::dust::cpu::link_code` and `stages::dust::cpu::link`.

// #include shared/common.wgsl
// #include shared/dust.wgsl

// Keep in sync with `LinkUniform` in src/stages/dust/gpu.rs.
struct Params {
    w: u32,
    h: u32,
    phase: u32,
    _pad: u32,
    t0: f32,
    noise_factor: f32,
    link: f32,
    _pad1: f32,
}

@group(0) @binding(0) var<storage, read> flag: array<f32>;
@group(0) @binding(1) var<storage, read_write> grown: array<f32>;
@group(0) @binding(2) var<storage, read> lc: array<f32>;
@group(0) @binding(3) var<storage, read> la: array<f32>;
@group(0) @binding(4) var<storage, read> lb: array<f32>;
@group(0) @binding(5) var<storage, read> level: array<f32>;
@group(0) @binding(6) var<storage, read> src: array<f32>;
@group(0) @binding(7) var<storage, read_write> dst: array<f32>;
@group(0) @binding(8) var<uniform> params: Params;

// Mean |a - b| over 3x3, clamped at the edges. CPU twin: `cpu::disagreement`.
fn disagreement(x: u32, y: u32) -> f32 {
    var s = 0.0;
    for (var j = -1; j <= 1; j++) {
        for (var i = -1; i <= 1; i++) {
            let xx = u32(clamp(i32(x) + i, 0, i32(params.w) - 1));
            let yy = u32(clamp(i32(y) + j, 0, i32(params.h) - 1));
            let k = yy * params.w + xx;
            s += abs(la[k] - lb[k]);
        }
    }
    return s * (1.0 / 9.0);
}

fn code(x: u32, y: u32) -> f32 {
    let k = y * params.w + x;
    let f = flag[k];
    let weak = f > 0.45 && f < 0.75;
    if grown[k] <= 0.5 && !weak {
        return 0.0;
    }
    let d = beyond(lc[k] - level[0], la[k], lb[k]);
    if grown[k] > 0.5 {
        return 2.0 * sign(d);
    }
    let thr = params.t0 + params.noise_factor * disagreement(x, y);
    if abs(d) > params.link * thr {
        return sign(d);
    }
    return 0.0;
}

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let w = i32(params.w);
    let h = i32(params.h);
    if id.x >= params.w || id.y >= params.h || id.z > 0u {
        return;
    }
    let k = id.y * params.w + id.x;
    if params.phase == 0u {
        dst[k] = code(id.x, id.y);
        return;
    }
    let c = src[k];
    if params.phase == 2u {
        if abs(c) == 2.0 {
            grown[k] = 1.0;
        }
        return;
    }
    var out = c;
    if abs(c) == 1.0 {
        for (var j = -1; j <= 1; j++) {
            for (var i = -1; i <= 1; i++) {
                let xx = i32(id.x) + i;
                let yy = i32(id.y) + j;
                if (i != 0 || j != 0) && xx >= 0 && yy >= 0 && xx < w && yy < h
                    && src[u32(yy * w + xx)] == 2.0 * c {
                    out = 2.0 * c;
                }
            }
        }
    }
    dst[k] = out;
}
