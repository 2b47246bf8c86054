// stabilise: one Gauss–Newton pass, step 3. Mode 0: per lattice row (one workgroup), the 29
// Tukey-weighted normal-equation sums (see `motion::Measure::pass`) with the cut
// 4.685 × max(1.4826 × median, 1e-5) from `sel`. Mode 1: per row, Tukey's loss at
// `params.cut` and the count of samples on the overlap. Each thread adds its samples in order,
// then the workgroup adds in a fixed tree: no result depends on scheduling.
// CPU twin: `CpuMeasure::pass` and `CpuMeasure::loss` in src/stages/stabilise/motion.rs.

// #include shared/stabilise_pass.wgsl

const SUMS: u32 = 29u;
const T: u32 = 64u;

@group(0) @binding(0) var<storage, read> la: array<f32>;
@group(0) @binding(1) var<storage, read> res: array<u32>;
@group(0) @binding(2) var<storage, read> sel: array<u32>;
// 32 columns per row.
@group(0) @binding(3) var<storage, read_write> rows: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

var<workgroup> part: array<f32, 1856>; // SUMS * T

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let j = wg.x;
    var acc: array<f32, 29>;
    for (var s = 0u; s < SUMS; s++) {
        acc[s] = 0.0;
    }
    let y = params.y0 + j * params.stride;
    let w = params.w;
    if params.mode == 0u {
        let sigma = max(1.4826 * bitcast<f32>(sel[3]), 1e-5);
        let cut = 4.685 * sigma;
        let gain = params.gl.x;
        for (var i = lid; i < params.nx; i += T) {
            let bits = res[j * params.nx + i];
            if bits == NONE {
                continue;
            }
            let r = bitcast<f32>(bits);
            if abs(r) >= cut {
                continue;
            }
            let x = params.x0 + i * params.stride;
            let k = y * w + x;
            let t = 1.0 - (r / cut) * (r / cut);
            let wt = t * t;
            let gx = gain * 0.5 * (la[k + 1u] - la[k - 1u]);
            let gy = gain * 0.5 * (la[k + w] - la[k - w]);
            let ux = (f32(x) - params.c.x) / params.lim.w;
            let uy = (f32(y) - params.c.y) / params.lim.w;
            var jac = array<f32, 6>(gx, gy, gx * ux + gy * uy, -gx * uy + gy * ux, -la[k], -1.0);
            var n = 0u;
            for (var p = 0u; p < 6u; p++) {
                let wp = wt * jac[p];
                for (var q = p; q < 6u; q++) {
                    acc[n] += wp * jac[q];
                    n++;
                }
            }
            for (var p = 0u; p < 6u; p++) {
                acc[21u + p] += wt * jac[p] * r;
            }
            acc[27] += wt;
            acc[28] += 1.0;
        }
    } else {
        for (var i = lid; i < params.nx; i += T) {
            let bits = res[j * params.nx + i];
            if bits == NONE {
                continue;
            }
            let u = min(abs(bitcast<f32>(bits)) / params.cut, 1.0);
            let v = 1.0 - u * u;
            acc[0] += 1.0 - v * v * v;
            acc[1] += 1.0;
        }
    }
    for (var s = 0u; s < SUMS; s++) {
        part[s * T + lid] = acc[s];
    }
    workgroupBarrier();
    for (var span = T / 2u; span > 0u; span /= 2u) {
        if lid < span {
            for (var s = 0u; s < SUMS; s++) {
                part[s * T + lid] += part[s * T + lid + span];
            }
        }
        workgroupBarrier();
    }
    if lid < SUMS {
        rows[j * 32u + lid] = part[lid * T];
    }
}
