// dust: repair inside the soft mask from the compensated neighbours' median, lifted to the
// centre's level around the defect, blended toward an eight-direction spatial fill where they
// disagree. CPU twin: `stages::dust::cpu::repair`.

// #include shared/common.wgsl
// #include shared/dust.wgsl
// #include shared/guard.wgsl

// Keep in sync with `RepairUniform` in src/stages/dust/gpu.rs.
struct Params {
    dims: Dims,
    present: u32,
    reach: u32,
    disagree: f32,
    inv_planes: f32,
    margin: f32,
    _p1: f32,
    _p2: f32,
    _p3: f32,
}

@group(0) @binding(0) var<storage, read> alpha: array<f32>;
@group(0) @binding(1) var<storage, read> center: array<f32>;
@group(0) @binding(2) var<storage, read> w0: array<f32>;
@group(0) @binding(3) var<storage, read> w1: array<f32>;
@group(0) @binding(4) var<storage, read> w2: array<f32>;
@group(0) @binding(5) var<storage, read> w3: array<f32>;
@group(0) @binding(6) var<storage, read_write> dst: array<f32>;
// Pixels whose repair the harm guard refused.
@group(0) @binding(7) var<storage, read_write> refused: atomic<u32>;
@group(0) @binding(8) var<uniform> params: Params;

fn nb(slot: u32, i: u32) -> f32 {
    switch slot {
        case 0u: { return w0[i]; }
        case 1u: { return w1[i]; }
        case 2u: { return w2[i]; }
        default: { return w3[i]; }
    }
}

// Mean of the planes of a neighbour, as `motion::cpu::luma`.
fn luma(slot: u32, x: u32, y: u32) -> f32 {
    let d = params.dims;
    var s = 0.0;
    for (var p = 0u; p < d.planes; p++) {
        s += nb(slot, sample_index(d, x, y, p));
    }
    return s * params.inv_planes;
}

// The present neighbours' samples at index `i`, in ascending order (insertion sort of at
// most four).
struct Sorted {
    v: array<f32, 4>,
    m: u32,
}

fn sorted_at(i: u32) -> Sorted {
    var out: Sorted;
    out.m = 0u;
    for (var s = 0u; s < 4u; s++) {
        if (params.present & (1u << s)) != 0u {
            let x = nb(s, i);
            var j = i32(out.m) - 1;
            while j >= 0 && out.v[j] > x {
                out.v[j + 1] = out.v[j];
                j--;
            }
            out.v[j + 1] = x;
            out.m++;
        }
    }
    return out;
}

// Median of sorted values (as `cpu::median`); 0 without any.
fn median_of(s: Sorted) -> f32 {
    var v = s.v;
    let m = s.m;
    if m == 0u {
        return 0.0;
    }
    if m % 2u == 1u {
        return v[m / 2u];
    }
    return (v[m / 2u - 1u] + v[m / 2u]) * 0.5;
}

const DIRS = array<vec2<i32>, 8>(
    vec2<i32>(1, 0), vec2<i32>(-1, 0), vec2<i32>(0, 1), vec2<i32>(0, -1),
    vec2<i32>(1, 1), vec2<i32>(1, -1), vec2<i32>(-1, 1), vec2<i32>(-1, -1),
);

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let d = params.dims;
    if id.x >= d.width || id.y >= d.height || id.z > 0u {
        return;
    }
    let w = d.width;
    let k = id.y * w + id.x;
    let a = alpha[k];
    if a <= 0.0 {
        for (var p = 0u; p < d.planes; p++) {
            let i = sample_index(d, id.x, id.y, p);
            dst[i] = center[i];
        }
        return;
    }
    var lo = 3.4e38;
    var hi = -3.4e38;
    var count = 0u;
    for (var s = 0u; s < 4u; s++) {
        if (params.present & (1u << s)) != 0u {
            let l = luma(s, id.x, id.y);
            lo = min(lo, l);
            hi = max(hi, l);
            count++;
        }
    }
    var hits: array<u32, 8>;
    var weights: array<f32, 8>;
    var nhits = 0u;
    for (var di = 0u; di < 8u; di++) {
        let dir = DIRS[di];
        for (var step = 1; step <= i32(params.reach); step++) {
            let xx = i32(id.x) + dir.x * step;
            let yy = i32(id.y) + dir.y * step;
            if xx < 0 || yy < 0 || xx >= i32(w) || yy >= i32(d.height) {
                break;
            }
            let kk = u32(yy) * w + u32(xx);
            if alpha[kk] <= 0.0 {
                hits[nhits] = kk;
                weights[nhits] = 1.0 / f32(step);
                nhits++;
                break;
            }
        }
    }
    var sw = 0.0;
    if nhits > 0u {
        if count == 0u {
            sw = 1.0;
        } else {
            sw = clamp((hi - lo - params.disagree) / params.disagree, 0.0, 1.0);
        }
    }
    let n = w * d.height;
    var harm = false;
    for (var p = 0u; p < d.planes; p++) {
        let i = sample_index(d, id.x, id.y, p);
        let c = center[i];
        if count == 0u && nhits == 0u {
            dst[i] = c;
            continue;
        }
        var sorted = sorted_at(i);
        var v = sorted.v;
        let m = sorted.m;
        var temporal = median_of(sorted);
        // The centre's level above the neighbours' just outside the defect: the median over
        // the hits of centre less their median (CPU twin: `level_offset`).
        var offset = 0.0;
        if m > 0u && nhits > 0u {
            var o: array<f32, 8>;
            for (var h = 0u; h < nhits; h++) {
                let x = center[p * n + hits[h]] - median_of(sorted_at(p * n + hits[h]));
                var j = i32(h) - 1;
                while j >= 0 && o[j] > x {
                    o[j + 1] = o[j];
                    j--;
                }
                o[j + 1] = x;
            }
            if nhits % 2u == 1u {
                offset = o[nhits / 2u];
            } else {
                offset = (o[nhits / 2u - 1u] + o[nhits / 2u]) * 0.5;
            }
            temporal += offset;
        }
        var sum = 0.0;
        var wsum = 0.0;
        for (var h = 0u; h < nhits; h++) {
            sum += center[p * n + hits[h]] * weights[h];
            wsum += weights[h];
        }
        var spatial = 0.0;
        if wsum > 0.0 {
            spatial = sum / wsum;
        }
        let fill = temporal + (spatial - temporal) * sw;
        var delta = fill - c;
        // Change no more than the sample stands out of the neighbours' range (limit_change;
        // of four, the middle two).
        if m > 0u {
            var lo = v[0];
            var hi = v[m - 1u];
            if m >= 4u {
                lo = v[1];
                hi = v[m - 2u];
            }
            let lim = abs(beyond(c - offset, lo, hi)) + params.margin * (hi - lo);
            delta = clamp(delta, -lim, lim);
        }
        let fixed = c + delta * a;
        dst[i] = fixed;
        // What the picture around shows here: the neighbours and the fill's pixels
        // (CPU twin: the guard in `cpu::repair`).
        var glo = 3.4e38;
        var ghi = -3.4e38;
        for (var h = 0u; h < nhits; h++) {
            glo = min(glo, center[p * n + hits[h]]);
            ghi = max(ghi, center[p * n + hits[h]]);
        }
        for (var j = 0u; j < m; j++) {
            glo = min(glo, v[j]);
            ghi = max(ghi, v[j]);
        }
        harm = harm || pushed_beyond(c, fixed, glo, ghi);
    }
    if harm {
        atomicAdd(&refused, 1u);
        for (var p = 0u; p < d.planes; p++) {
            let i = sample_index(d, id.x, id.y, p);
            dst[i] = center[i];
        }
    }
}
