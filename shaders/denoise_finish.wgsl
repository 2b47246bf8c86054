// denoise: the output of one plane, the denoised sample plus `keep` of what was taken out plus
// `regrain` times the synthetic grain (blurred down the columns here). CPU twin:
// `denoise::cpu::finish`.

// #include shared/common.wgsl
// #include shared/denoise.wgsl

// Keep in sync with `FinishUniform` in src/stages/denoise/gpu.rs.
struct Params {
    dims: Dims,
    plane: u32,
    keep: f32,
    regrain: f32,
    // Nonzero: the grain follows the first plane's level (opponent planes).
    first_level: u32,
}

@group(0) @binding(0) var<storage, read> center: array<f32>;
@group(0) @binding(1) var<storage, read> den: array<f32>;
@group(0) @binding(2) var<storage, read> rows: array<f32>;
@group(0) @binding(3) var<storage, read> table: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let d = params.dims;
    if id.x >= d.width || id.y >= d.height {
        return;
    }
    let i = sample_index(d, id.x, id.y, params.plane);
    let x = den[i];
    var v = x + params.keep * (center[i] - x);
    if params.regrain > 0.0 {
        let base = TABLE_DCT + params.plane * TABLE_PLANE;
        var sig: array<f32, 8>;
        for (var b = 0u; b < 8u; b++) {
            sig[b] = table[base + T_SIGMA + b];
        }
        let r = u32(table[base + T_RADIUS]);
        var s = 0.0;
        for (var t = 0u; t <= 2u * r; t++) {
            s += table[base + T_TAPS + t] * rows[(id.y + t) * d.width + id.x];
        }
        let lvl = select(params.plane, 0u, params.first_level != 0u);
        let level = den[sample_index(d, id.x, id.y, lvl)];
        v += params.regrain * nlf(sig, level) * table[base + T_TAP_SCALE] * s;
    }
    dst[i] = v;
}
