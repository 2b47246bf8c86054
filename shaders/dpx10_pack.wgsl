// Planar normalised frame -> 10-bit filled (method A) DPX words, one invocation per word.
// CPU twin: `crate::io::dpx::pack_filled10`; must agree exactly. Layout: shared/dpx10.wgsl;
// padding bits and slots past the line's last sample are zero.

// #include shared/common.wgsl
// #include shared/dpx10.wgsl
// #include shared/quantise.wgsl

@group(0) @binding(0) var<storage, read> frame: array<f32>;
@group(0) @binding(1) var<storage, read_write> words: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let d = params.dims;
    if id.x >= params.words_per_line || id.y >= d.height {
        return;
    }
    let line_samples = d.width * d.planes;
    var w = 0u;
    for (var slot = 0u; slot < 3u; slot++) {
        let s = id.x * 3u + slot;
        if s < line_samples {
            let v = frame[sample_index(d, s / d.planes, id.y, s % d.planes)];
            w |= quantise(v, 1023u) << slot_shift(d.planes, slot);
        }
    }
    if params.big_endian != 0u {
        w = byte_swap(w);
    }
    words[id.y * params.words_per_line + id.x] = w;
}
