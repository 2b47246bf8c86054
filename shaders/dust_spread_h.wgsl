// dust: horizontal half of spreading the neighbour-spike bits over `radius` pixels.
// CPU twin: `stages::dust::cpu::spread_h`.

// #include shared/common.wgsl
// #include shared/dust.wgsl

// Keep in sync with `PlaneUniform` in src/stages/dust/gpu.rs.
struct Params {
    w: u32,
    h: u32,
    radius: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> bits: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let w = params.w;
    if id.x >= w || id.y >= params.h || id.z > 0u {
        return;
    }
    let row = id.y * w;
    var acc = bits[row + id.x] & C_BITS;
    let lo = u32(max(i32(id.x) - i32(params.radius), 0));
    let hi = min(id.x + params.radius, w - 1u);
    for (var x = lo; x <= hi; x++) {
        acc |= bits[row + x] & PN_BITS;
    }
    dst[row + id.x] = acc;
}
