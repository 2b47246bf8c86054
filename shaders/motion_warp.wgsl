// motion: frame B moved onto A's pixel grid with the block field from A to B; vectors
// bilinear between block centres, samples bilinear, clamped at the edges. CPU twin:
// `motion::cpu::warp`.

// #include shared/common.wgsl

// Keep in sync with `WarpUniform` in src/motion/gpu.rs.
struct Params {
    dims: Dims,
    cols: u32,
    rows: u32,
    block: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> field: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

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
    let fx = floor(x);
    let fy = floor(y);
    let x0 = u32(fx);
    let y0 = u32(fy);
    let x1 = min(x0 + 1u, d.width - 1u);
    let y1 = min(y0 + 1u, d.height - 1u);
    let tx = x - fx;
    let ty = y - fy;
    let top = lerp(src[sample_index(d, x0, y0, id.z)], src[sample_index(d, x1, y0, id.z)], tx);
    let bot = lerp(src[sample_index(d, x0, y1, id.z)], src[sample_index(d, x1, y1, id.z)], tx);
    dst[sample_index(d, id.x, id.y, id.z)] = lerp(top, bot, ty);
}
