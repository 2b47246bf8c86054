// Values written into a buffer at a list of indices: a vetoed repair's input samples put back
// into the stage's output. CPU twin: `stages::repairs::Revert::apply_cpu`.

// Keep in sync with `ScatterUniform` in src/gpu/samples.rs.
struct Params {
    count: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read_write> dst: array<f32>;
@group(0) @binding(1) var<storage, read> indices: array<u32>;
@group(0) @binding(2) var<storage, read> values: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = id.x + id.y * groups.x * 64u;
    if i >= params.count {
        return;
    }
    dst[indices[i]] = values[i];
}
