// dust: the level of the centre against the frames just before and after, the median of
// `c - (a + b) / 2` by a histogram (phase 0, per pixel), then the median's bin (phase 1, one
// invocation). CPU twin: `stages::dust::cpu::level`.

// #include shared/common.wgsl

// Keep in sync with `LevelUniform` in src/stages/dust/gpu.rs.
struct Params {
    w: u32,
    h: u32,
    phase: u32,
    _pad: u32,
}

// Keep in sync with `cpu::LEVEL_BINS` and `cpu::LEVEL_SPAN`.
const LEVEL_BINS: u32 = 1024u;
const LEVEL_SPAN: f32 = 0.25;

@group(0) @binding(0) var<storage, read> lc: array<f32>;
@group(0) @binding(1) var<storage, read> la: array<f32>;
@group(0) @binding(2) var<storage, read> lb: array<f32>;
@group(0) @binding(3) var<storage, read_write> hist: array<atomic<u32>>;
@group(0) @binding(4) var<storage, read_write> level: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if params.phase == 0u {
        if id.x >= params.w || id.y >= params.h || id.z > 0u {
            return;
        }
        let k = id.y * params.w + id.x;
        let e = lc[k] - 0.5 * (la[k] + lb[k]);
        let b = floor((e + LEVEL_SPAN) * (f32(LEVEL_BINS) / (2.0 * LEVEL_SPAN)));
        atomicAdd(&hist[u32(clamp(b, 0.0, f32(LEVEL_BINS - 1u)))], 1u);
        return;
    }
    if id.x != 0u || id.y != 0u || id.z != 0u {
        return;
    }
    let total = params.w * params.h;
    var seen = 0u;
    var bin = LEVEL_BINS - 1u;
    for (var i = 0u; i < LEVEL_BINS; i++) {
        seen += atomicLoad(&hist[i]);
        if 2u * seen >= total {
            bin = i;
            break;
        }
    }
    level[0] = -LEVEL_SPAN + (f32(bin) + 0.5) * (2.0 * LEVEL_SPAN / f32(LEVEL_BINS));
}
