// motion: frame B moved onto A's pixel grid with the block field from A to B; vectors
// bilinear between block centres, samples bilinear, clamped at the edges. CPU twin:
// `motion::cpu::warp`.

// #include shared/common.wgsl

// #include shared/motion_field.wgsl
// #include shared/block_field.wgsl

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> field: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let d = params.dims;
    if outside(d, id) {
        return;
    }
    let gx = grid_pos(f32(id.x), params.cols);
    let gy = grid_pos(f32(id.y), params.rows);
    let vx = field_bilinear(0u, gx, gy);
    let vy = field_bilinear(1u, gx, gy);
    let x = clamp(f32(id.x) + vx, 0.0, f32(d.width - 1u));
    let y = clamp(f32(id.y) + vy, 0.0, f32(d.height - 1u));
    dst[sample_index(d, id.x, id.y, id.z)] = src_bilinear(d, x, y, id.z);
}
