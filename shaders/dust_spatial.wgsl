// dust: the spatial check on candidates marked C_SPATIAL (found at the relaxed threshold from
// one side or in the border band, or where the motion failed around them): where the centre
// does not stand out of the picture around it in the frame itself, the candidate drops to
// weak. CPU twin: `stages::dust::cpu::spatial`.

// #include shared/common.wgsl
// #include shared/dust.wgsl

// Keep in sync with `SpatialUniform` in src/stages/dust/gpu.rs.
struct Params {
    w: u32,
    h: u32,
    reach: u32,
    votes: u32,
    // A pixel has left the defect where its spike is under this share of the candidate's.
    leave: f32,
    // Share of the spike by which the candidate must stand out of its surroundings.
    share: f32,
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<storage, read> lc: array<f32>;
@group(0) @binding(1) var<storage, read> la: array<f32>;
@group(0) @binding(2) var<storage, read> lb: array<f32>;
@group(0) @binding(3) var<storage, read> bits: array<u32>;
@group(0) @binding(4) var<storage, read_write> dst: array<u32>;
@group(0) @binding(5) var<uniform> params: Params;

// CPU twin: `DIRS` in stages/dust/cpu.rs, in the same order.
const DIRS = array<vec2<i32>, 8>(
    vec2<i32>(1, 0), vec2<i32>(-1, 0), vec2<i32>(0, 1), vec2<i32>(0, -1),
    vec2<i32>(1, 1), vec2<i32>(1, -1), vec2<i32>(-1, 1), vec2<i32>(-1, -1),
);

// CPU twin: `spatial_spike`.
fn spatial_spike(x: u32, y: u32, d: f32) -> bool {
    let w = i32(params.w);
    let h = i32(params.h);
    let leave = params.leave * abs(d);
    var hi1 = -3.4e38;
    var hi2 = -3.4e38;
    var lo1 = 3.4e38;
    var lo2 = 3.4e38;
    var votes = 0u;
    for (var i = 0u; i < 8u; i++) {
        let dir = DIRS[i];
        for (var step = 1; step <= i32(params.reach); step++) {
            let xx = i32(x) + dir.x * step;
            let yy = i32(y) + dir.y * step;
            if xx < 0 || yy < 0 || xx >= w || yy >= h {
                break;
            }
            let k = u32(yy * w + xx);
            if abs(beyond(lc[k], la[k], lb[k])) < leave {
                let v = lc[k];
                if v > hi1 {
                    hi2 = hi1;
                    hi1 = v;
                } else if v > hi2 {
                    hi2 = v;
                }
                if v < lo1 {
                    lo2 = lo1;
                    lo1 = v;
                } else if v < lo2 {
                    lo2 = v;
                }
                votes += 1u;
                break;
            }
        }
    }
    let v = lc[y * params.w + x];
    let margin = params.share * abs(d);
    if votes < params.votes {
        return false;
    }
    if d > 0.0 {
        return v - hi2 > margin;
    }
    return lo2 - v > margin;
}

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= params.w || id.y >= params.h || id.z > 0u {
        return;
    }
    let k = id.y * params.w + id.x;
    var own = bits[k];
    if (own & C_SPATIAL) != 0u && (own & (C_POS | C_NEG)) != 0u {
        let d = beyond(lc[k], la[k], lb[k]);
        if !spatial_spike(id.x, id.y, d) {
            own &= ~(C_POS | C_NEG | C_STRONG);
        }
    }
    dst[k] = own;
}
