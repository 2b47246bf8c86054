// motion: what warp and compensate share. The shader declares `params: Params`, `src` (the
// frame being moved) and `field` (the block field, x plane then y plane).

// Keep in sync with `WarpUniform` in src/motion/gpu.rs.
struct Params {
    dims: Dims,
    cols: u32,
    rows: u32,
    block: u32,
    _pad: u32,
}

fn lerp(a: f32, b: f32, t: f32) -> f32 {
    return a + (b - a) * t;
}

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

// Plane `p` of `src` at (x, y), already clamped to the frame, bilinear.
fn src_bilinear(d: Dims, x: f32, y: f32, p: u32) -> f32 {
    let fx = floor(x);
    let fy = floor(y);
    let x0 = u32(fx);
    let y0 = u32(fy);
    let x1 = min(x0 + 1u, d.width - 1u);
    let y1 = min(y0 + 1u, d.height - 1u);
    let tx = x - fx;
    let ty = y - fy;
    let top = lerp(src[sample_index(d, x0, y0, p)], src[sample_index(d, x1, y0, p)], tx);
    let bot = lerp(src[sample_index(d, x0, y1, p)], src[sample_index(d, x1, y1, p)], tx);
    return lerp(top, bot, ty);
}
