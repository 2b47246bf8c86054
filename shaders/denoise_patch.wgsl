// denoise: one overlapping 8x8 patch of one plane of the temporal average, shrunk in the DCT
// domain by an empirical Wiener gain (the mean kept), with its aggregation weight. CPU twin:
// `denoise::cpu::filter_patch` (same order of additions).

// #include shared/common.wgsl
// #include shared/denoise.wgsl

// Keep in sync with `PatchUniform` in src/stages/denoise/gpu.rs.
struct Params {
    dims: Dims,
    nx: u32,
    ny: u32,
    step: u32,
    plane: u32,
    strength: f32,
    // Nonzero: the noise is looked up at the first plane's level (opponent planes).
    first_level: u32,
    _p2: u32,
    _p3: u32,
}

@group(0) @binding(0) var<storage, read> avg: array<f32>;
@group(0) @binding(1) var<storage, read> fac: array<f32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read_write> patches: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

// Keep in sync with `denoise::cpu::WIENER_BETA`.
const WIENER_BETA: f32 = 4.0;

var<private> p: array<f32, 64>;
var<private> r: array<f32, 64>;

fn patch_pos(i: u32, len: u32) -> u32 {
    return min(i * params.step, select(0u, len - 8u, len > 8u));
}

fn c(u: u32, x: u32) -> f32 {
    return table[u * 8u + x];
}

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let d = params.dims;
    if id.x >= params.nx || id.y >= params.ny {
        return;
    }
    let px = patch_pos(id.x, d.width);
    let py = patch_pos(id.y, d.height);
    let pl = params.plane;
    let lvl = select(pl, 0u, params.first_level != 0u);
    // Sums row by row, then the rows (as the CPU reference adds them).
    var sum = 0.0;
    var fsum = 0.0;
    for (var j = 0u; j < 8u; j++) {
        let yy = min(py + j, d.height - 1u);
        var rs = 0.0;
        var rf = 0.0;
        for (var i = 0u; i < 8u; i++) {
            let k = sample_index(d, min(px + i, d.width - 1u), yy, pl);
            p[j * 8u + i] = avg[k];
            rs += avg[sample_index(d, min(px + i, d.width - 1u), yy, lvl)];
            rf += fac[k];
        }
        sum += rs;
        fsum += rf;
    }
    let base = TABLE_DCT + pl * TABLE_PLANE;
    var sig: array<f32, 8>;
    for (var b = 0u; b < 8u; b++) {
        sig[b] = table[base + T_SIGMA + b];
    }
    let mean = sum * (1.0 / 64.0);
    let s = params.strength * nlf(sig, mean);
    let var_n = s * s * (fsum * (1.0 / 64.0));
    // Forward: rows, then columns.
    for (var y = 0u; y < 8u; y++) {
        for (var u = 0u; u < 8u; u++) {
            var a = 0.0;
            for (var x = 0u; x < 8u; x++) {
                a += c(u, x) * p[y * 8u + x];
            }
            r[y * 8u + u] = a;
        }
    }
    for (var v = 0u; v < 8u; v++) {
        for (var u = 0u; u < 8u; u++) {
            var a = 0.0;
            for (var y = 0u; y < 8u; y++) {
                a += c(v, y) * r[y * 8u + u];
            }
            p[v * 8u + u] = a;
        }
    }
    // Squared gains summed row by row (the first row from its second coefficient), then
    // the rows, as the CPU reference adds them.
    var g2 = 0.0;
    for (var j = 0u; j < 8u; j++) {
        var rs = 0.0;
        for (var k = max(j * 8u, 1u); k < j * 8u + 8u; k++) {
            let n = var_n * table[base + T_SHAPE + k];
            let dk = p[k];
            let sg = max(dk * dk - WIENER_BETA * n, 0.0);
            var g = 1.0;
            if sg + n > 0.0 {
                g = sg / (sg + n);
            }
            p[k] = dk * g;
            rs += g * g;
        }
        g2 += rs;
    }
    // Inverse: columns, then rows.
    for (var y = 0u; y < 8u; y++) {
        for (var u = 0u; u < 8u; u++) {
            var a = 0.0;
            for (var v = 0u; v < 8u; v++) {
                a += c(v, y) * p[v * 8u + u];
            }
            r[y * 8u + u] = a;
        }
    }
    let o = (id.y * params.nx + id.x) * 65u;
    for (var y = 0u; y < 8u; y++) {
        for (var x = 0u; x < 8u; x++) {
            var a = 0.0;
            for (var u = 0u; u < 8u; u++) {
                a += c(u, x) * r[y * 8u + u];
            }
            patches[o + y * 8u + x] = a;
        }
    }
    patches[o + 64u] = 1.0 / (1.0 + g2);
}
