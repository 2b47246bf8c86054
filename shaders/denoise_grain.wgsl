// denoise: the horizontal pass of the regrain blur, rows -r..h+r of white noise blurred along
// x by one plane's kernel. CPU twin: `denoise::cpu::grain_rows`.

// #include shared/common.wgsl
// #include shared/denoise.wgsl

// Keep in sync with `GrainUniform` in src/stages/denoise/gpu.rs.
struct Params {
    width: u32,
    rows: u32,
    plane: u32,
    key: u32,
}

@group(0) @binding(0) var<storage, read> table: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= params.width || id.y >= params.rows {
        return;
    }
    let base = TABLE_DCT + params.plane * TABLE_PLANE;
    let r = u32(table[base + T_RADIUS]);
    let y = i32(id.y) - i32(r);
    var s = 0.0;
    for (var t = 0u; t <= 2u * r; t++) {
        s += table[base + T_TAPS + t] * gauss(params.key, i32(id.x) + i32(t) - i32(r), y);
    }
    dst[id.y * params.width + id.x] = s;
}
