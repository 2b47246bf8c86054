// denoise: per 8x8 block of every plane, the mean, the residual variance about a fitted plane
// and the mean product of adjacent residuals; of `src - other` (halved) where `diff` is set.
// CPU twin: `denoise::noise::block_stat` (same order of additions).

// #include shared/common.wgsl

// Keep in sync with `StatsUniform` in src/stages/denoise/gpu.rs.
struct Params {
    dims: Dims,
    bw: u32,
    bh: u32,
    diff: u32,
    // Nonzero: blocks are binned by the first plane's mean (opponent planes).
    first_level: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> other: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

var<private> blk: array<f32, 64>;

fn centred(i: u32) -> f32 {
    return f32(i) - 3.5;
}

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let d = params.dims;
    if id.x >= params.bw || id.y >= params.bh || id.z >= d.planes {
        return;
    }
    let lvl = select(id.z, 0u, params.first_level != 0u);
    var m = 0.0;
    var s = 0.0;
    var sx = 0.0;
    var sy = 0.0;
    for (var y = 0u; y < 8u; y++) {
        for (var x = 0u; x < 8u; x++) {
            let k = sample_index(d, id.x * 8u + x, id.y * 8u + y, id.z);
            var v = src[k];
            if params.diff != 0u {
                v = src[k] - other[k];
            }
            blk[y * 8u + x] = v;
            m += src[sample_index(d, id.x * 8u + x, id.y * 8u + y, lvl)];
            s += v;
            sx += v * centred(x);
            sy += v * centred(y);
        }
    }
    let mean = s / 64.0;
    let gx = sx / 336.0;
    let gy = sy / 336.0;
    for (var y = 0u; y < 8u; y++) {
        for (var x = 0u; x < 8u; x++) {
            blk[y * 8u + x] = blk[y * 8u + x] - mean - gx * centred(x) - gy * centred(y);
        }
    }
    var ss = 0.0;
    var lag = 0.0;
    for (var y = 0u; y < 8u; y++) {
        for (var x = 0u; x < 8u; x++) {
            let v = blk[y * 8u + x];
            ss += v * v;
            if x + 1u < 8u {
                lag += v * blk[y * 8u + x + 1u];
            }
            if y + 1u < 8u {
                lag += v * blk[(y + 1u) * 8u + x];
            }
        }
    }
    let half = select(1.0, 0.5, params.diff != 0u);
    let o = ((id.z * params.bh + id.y) * params.bw + id.x) * 3u;
    dst[o] = m / 64.0;
    dst[o + 1u] = half * ss / 61.0;
    dst[o + 2u] = half * lag / 112.0;
}
