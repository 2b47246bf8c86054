// denoise: each sample of one plane the weighted mean of the filtered patches covering it,
// patch rows then columns in order. CPU twin: `denoise::cpu::gather`.

// #include shared/common.wgsl

// Keep in sync with `GatherUniform` in src/stages/denoise/gpu.rs.
struct Params {
    dims: Dims,
    nx: u32,
    ny: u32,
    step: u32,
    plane: u32,
}

@group(0) @binding(0) var<storage, read> patches: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

fn patch_pos(i: u32, len: u32) -> u32 {
    return min(i * params.step, select(0u, len - 8u, len > 8u));
}

fn first_cover(x: u32) -> u32 {
    if x >= 7u {
        return (x - 7u + params.step - 1u) / params.step;
    }
    return 0u;
}

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let d = params.dims;
    if id.x >= d.width || id.y >= d.height {
        return;
    }
    var sv = 0.0;
    var sw = 0.0;
    var j = first_cover(id.y);
    loop {
        if j >= params.ny || patch_pos(j, d.height) > id.y {
            break;
        }
        let py = patch_pos(j, d.height);
        var i = first_cover(id.x);
        loop {
            if i >= params.nx || patch_pos(i, d.width) > id.x {
                break;
            }
            let px = patch_pos(i, d.width);
            let o = (j * params.nx + i) * 65u;
            let wt = patches[o + 64u];
            sv += wt * patches[o + (id.y - py) * 8u + (id.x - px)];
            sw += wt;
            i++;
        }
        j++;
    }
    dst[sample_index(d, id.x, id.y, params.plane)] = sv / sw;
}
