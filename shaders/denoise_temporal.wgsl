// denoise: the centre averaged with its compensated neighbours, each weighted by how well its
// local difference is explained by noise; also the factor by which that cut the noise
// variance. CPU twin: `denoise::cpu::temporal` (with `box3` and `neighbour_weight`; the CPU sums
// the 3x3 box by rows: the same up to rounding).

// #include shared/common.wgsl
// #include shared/denoise.wgsl

// Keep in sync with `TemporalUniform` in src/stages/denoise/gpu.rs.
struct Params {
    dims: Dims,
    count: u32,
    strength: f32,
    // Nonzero: the noise is looked up at the first plane's level (opponent planes).
    first_level: u32,
    _p2: u32,
}

@group(0) @binding(0) var<storage, read> center: array<f32>;
@group(0) @binding(1) var<storage, read> n0: array<f32>;
@group(0) @binding(2) var<storage, read> n1: array<f32>;
@group(0) @binding(3) var<storage, read> n2: array<f32>;
@group(0) @binding(4) var<storage, read> n3: array<f32>;
@group(0) @binding(5) var<storage, read> table: array<f32>;
@group(0) @binding(6) var<storage, read_write> avg: array<f32>;
@group(0) @binding(7) var<storage, read_write> fac: array<f32>;
@group(0) @binding(8) var<uniform> params: Params;

fn nb(slot: u32, i: u32) -> f32 {
    switch slot {
        case 0u: { return n0[i]; }
        case 1u: { return n1[i]; }
        case 2u: { return n2[i]; }
        default: { return n3[i]; }
    }
}

// 3x3 mean of the centre (slot 4) or a neighbour, edges clamped, raster order.
fn box3(slot: u32, x: u32, y: u32, p: u32) -> f32 {
    let d = params.dims;
    var s = 0.0;
    for (var j = -1; j <= 1; j++) {
        let yy = u32(clamp(i32(y) + j, 0, i32(d.height) - 1));
        for (var i = -1; i <= 1; i++) {
            let xx = u32(clamp(i32(x) + i, 0, i32(d.width) - 1));
            let k = sample_index(d, xx, yy, p);
            if slot == 4u {
                s += center[k];
            } else {
                s += nb(slot, k);
            }
        }
    }
    return s * (1.0 / 9.0);
}

fn weight(dv: f32, sd: f32) -> f32 {
    if sd > 0.0 {
        return clamp((4.0 * sd - abs(dv)) / (2.0 * sd), 0.0, 1.0);
    }
    return 0.0;
}

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let d = params.dims;
    if outside(d, id) {
        return;
    }
    let base = TABLE_DCT + id.z * TABLE_PLANE;
    var sig: array<f32, 8>;
    for (var b = 0u; b < 8u; b++) {
        sig[b] = table[base + T_SIGMA + b];
    }
    let i = sample_index(d, id.x, id.y, id.z);
    let cb = box3(4u, id.x, id.y, id.z);
    let lb = box3(4u, id.x, id.y, select(id.z, 0u, params.first_level != 0u));
    let sd = params.strength * nlf(sig, lb) * table[base + T_DIFF_SD];
    var sw = 1.0;
    var sw2 = 1.0;
    var sv = center[i];
    for (var k = 0u; k < params.count; k++) {
        let wk = weight(box3(k, id.x, id.y, id.z) - cb, sd);
        sw += wk;
        sw2 += wk * wk;
        sv += wk * nb(k, i);
    }
    avg[i] = sv / sw;
    fac[i] = sw2 / (sw * sw);
}
