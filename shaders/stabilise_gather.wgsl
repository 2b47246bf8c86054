// stabilise: a frame's fingerprint, the samples at a list of indices, into slot `slot`.
// CPU twin: `stages::fingerprint`.

// Keep in sync with `GatherUniform` in src/stages/stabilise/gpu.rs.
struct Params {
    count: u32,
    slot: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> indices: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= params.count {
        return;
    }
    dst[params.slot * params.count + id.x] = src[indices[id.x]];
}
