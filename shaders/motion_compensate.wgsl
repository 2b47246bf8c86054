// motion: frame B moved onto A's pixel grid, the vector chosen per pixel among the
// interpolated one and those of the four nearest blocks by the 3x3 luma patch difference.
// CPU twin: `motion::cpu::compensate`.

// #include shared/common.wgsl

// #include shared/motion_field.wgsl
// #include shared/block_field.wgsl

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> field: array<f32>;
@group(0) @binding(2) var<storage, read> la: array<f32>;
@group(0) @binding(3) var<storage, read> lb: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

fn vec_at(bx: u32, by: u32) -> vec2<f32> {
    let i = by * params.cols + bx;
    return vec2<f32>(field[i], field[params.cols * params.rows + i]);
}

fn luma_at(which: u32, x: i32, y: i32) -> f32 {
    let d = params.dims;
    let cx = u32(clamp(x, 0, i32(d.width) - 1));
    let cy = u32(clamp(y, 0, i32(d.height) - 1));
    if which == 0u {
        return la[cy * d.width + cx];
    }
    return lb[cy * d.width + cx];
}

fn patch_cost(x: u32, y: u32, v: vec2<f32>) -> f32 {
    var s = 0.0;
    for (var j = -1; j <= 1; j++) {
        for (var i = -1; i <= 1; i++) {
            let xx = i32(x) + i;
            let yy = i32(y) + j;
            let bx = i32(floor(f32(xx) + v.x + 0.5));
            let by = i32(floor(f32(yy) + v.y + 0.5));
            s += abs(luma_at(0u, xx, yy) - luma_at(1u, bx, by));
        }
    }
    return s;
}

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let d = params.dims;
    if id.x >= d.width || id.y >= d.height || id.z > 0u {
        return;
    }
    let gx = grid_pos(f32(id.x), params.cols);
    let gy = grid_pos(f32(id.y), params.rows);
    var cands: array<vec2<f32>, 5>;
    cands[0] = vec2<f32>(field_bilinear(0u, gx, gy), field_bilinear(1u, gx, gy));
    cands[1] = vec_at(u32(gx.x), u32(gy.x));
    cands[2] = vec_at(u32(gx.y), u32(gy.x));
    cands[3] = vec_at(u32(gx.x), u32(gy.y));
    cands[4] = vec_at(u32(gx.y), u32(gy.y));
    var best = vec2<f32>(0.0, 0.0);
    var best_cost = 3.4e38;
    for (var c = 0; c < 5; c++) {
        let cost = patch_cost(id.x, id.y, cands[c]);
        if cost < best_cost {
            best_cost = cost;
            best = cands[c];
        }
    }
    let x = clamp(f32(id.x) + best.x, 0.0, f32(d.width - 1u));
    let y = clamp(f32(id.y) + best.y, 0.0, f32(d.height - 1u));
    for (var p = 0u; p < d.planes; p++) {
        dst[sample_index(d, id.x, id.y, p)] = src_bilinear(d, x, y, p);
    }
}
