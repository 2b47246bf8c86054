// The samples of a buffer at a list of indices, into slot `slot` of the output (slots of
// `count` each, so one buffer can gather several frames). Used for stabilise's fingerprints and
// for the samples a defect stage repaired. CPU twin: indexing (`gpu::samples`).

// Keep in sync with `GatherUniform` in src/gpu/samples.rs.
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
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = id.x + id.y * groups.x * 64u;
    if i >= params.count {
        return;
    }
    dst[params.slot * params.count + i] = src[indices[i]];
}
