// stabilise: a frame at the analysis resolution: the box average of `factor` x `factor`
// blocks of every plane (CPU twin `stages::stabilise::cpu::reduce`, same order of additions,
// bit-identical). Mode 0: its Rec.709 luma (three planes), the plane (one) or the planes' mean
// (other counts), non-finite samples as black (CPU twin `motion::luma`; equal up to the
// rounding of fused multiply-adds). Mode 1: the 32-bit FNV-1a hash of each row of each plane
// of the reduced data (CPU twin `motion::row_hashes`, bit-identical, so a frame's content hash
// is the same on both backends).

// #include shared/common.wgsl

// Keep in sync with `LumaUniform` in src/stages/stabilise/gpu.rs.
struct Params {
    dims: Dims,
    factor: u32,
    out_w: u32,
    out_h: u32,
    // 1 / factor^2, exact for a power of two.
    inv: f32,
    // 1 / planes, for plane counts other than 1 and 3.
    inv_planes: f32,
    mode: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

const R: f32 = 0.2126;
const G: f32 = 0.7152;
const B: f32 = 0.0722;

fn reduced(x: u32, y: u32, p: u32) -> f32 {
    let f = params.factor;
    if f == 1u {
        // A copy, as on the CPU (adding to 0 would turn -0 into +0).
        return src[sample_index(params.dims, x, y, p)];
    }
    var s = 0.0;
    for (var j = 0u; j < f; j++) {
        let row = sample_index(params.dims, x * f, y * f + j, p);
        for (var i = 0u; i < f; i++) {
            s += src[row + i];
        }
    }
    return s * params.inv;
}

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if params.mode == 1u {
        // Row id.x of plane id.y.
        if id.x >= params.out_h || id.y >= params.dims.planes || id.z > 0u {
            return;
        }
        var h = 0x811c9dc5u ^ (id.y * params.out_h + id.x);
        for (var x = 0u; x < params.out_w; x++) {
            h = (h ^ bitcast<u32>(reduced(x, id.x, id.y))) * 0x01000193u;
        }
        dst[id.y * params.out_h + id.x] = bitcast<f32>(h);
        return;
    }
    if id.x >= params.out_w || id.y >= params.out_h {
        return;
    }
    let planes = params.dims.planes;
    var v: f32;
    if planes == 3u {
        let r = reduced(id.x, id.y, 0u);
        let g = reduced(id.x, id.y, 1u);
        let b = reduced(id.x, id.y, 2u);
        v = R * r + G * g + B * b;
    } else if planes == 1u {
        v = reduced(id.x, id.y, 0u);
    } else {
        var s = 0.0;
        for (var p = 0u; p < planes; p++) {
            s += reduced(id.x, id.y, p);
        }
        v = s * params.inv_planes;
    }
    if (bitcast<u32>(v) & 0x7f800000u) == 0x7f800000u {
        v = 0.0;
    }
    dst[id.y * params.out_w + id.x] = v;
}
