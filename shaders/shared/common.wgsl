// Shared by every kernel (pulled in with `// #include shared/common.wgsl`).

// Workgroup side; keep in sync with `gpu::WORKGROUP_SIZE`.
const WG: u32 = 16u;

// Frame geometry, the first member of every uniform block; keep in sync with `gpu::Dims`.
struct Dims {
    width: u32,
    height: u32,
    planes: u32,
    _pad: u32,
}

// Index of sample (x, y) of plane p in a planar, row-major frame buffer (as `Frame::data`).
fn sample_index(d: Dims, x: u32, y: u32, p: u32) -> u32 {
    return (p * d.height + y) * d.width + x;
}

// True for invocations of the padding workgroups past the frame's edge.
fn outside(d: Dims, id: vec3<u32>) -> bool {
    return id.x >= d.width || id.y >= d.height || id.z >= d.planes;
}
