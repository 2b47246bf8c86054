// Bilinear interpolation of a block motion field at a pixel: what motion warp/compensate and
// upscale fusion share. The including shader declares `field` (x plane, then y plane) and
// `params` with `block`, `cols` and `rows`, and provides `lerp` (shared/motion_field.wgsl or
// shared/upscale.wgsl).

// (index below, index above, fraction) of a pixel coordinate on the block-centre grid.
fn grid_pos(p: f32, n: u32) -> vec3<f32> {
    let f = clamp((p + 0.5) / f32(params.block) - 0.5, 0.0, f32(n - 1u));
    let i0 = floor(f);
    return vec3<f32>(i0, min(i0 + 1.0, f32(n - 1u)), f - i0);
}

fn field_bilinear(plane: u32, gx: vec3<f32>, gy: vec3<f32>) -> f32 {
    let c = params.cols;
    let base = plane * c * params.rows;
    let x0 = u32(gx.x);
    let x1 = u32(gx.y);
    let y0 = u32(gy.x);
    let y1 = u32(gy.y);
    let top = lerp(field[base + y0 * c + x0], field[base + y0 * c + x1], gx.z);
    let bot = lerp(field[base + y1 * c + x0], field[base + y1 * c + x1], gx.z);
    return lerp(top, bot, gy.z);
}
