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
