// 10-bit filled (method A) DPX words -> planar normalised frame, one invocation per sample.
// CPU twin: `crate::io::dpx::unpack_filled10`; must agree exactly. Layout: shared/dpx10.wgsl.

// #include shared/common.wgsl
// #include shared/dpx10.wgsl

@group(0) @binding(0) var<storage, read> words: array<u32>;
// Code -> normalised value, built on the CPU so the values match it bit for bit.
@group(0) @binding(1) var<storage, read> lut: array<f32, 1024>;
@group(0) @binding(2) var<storage, read_write> frame: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let d = params.dims;
    if outside(d, id) {
        return;
    }
    let s = id.x * d.planes + id.z; // sample position within the line
    var w = words[id.y * params.words_per_line + s / 3u];
    if params.big_endian != 0u {
        w = byte_swap(w);
    }
    let code = (w >> slot_shift(d.planes, s % 3u)) & 0x3ffu;
    frame[sample_index(d, id.x, id.y, id.z)] = lut[code];
}
