// colour: one curve per plane. CPU twin: `stages::colour::cpu::curve`.
//   kind 0 (power, dye model on linear/video values): k * v^e for v >= floor, else slope * v
//   kind 1 (affine, dye model on log scans):          g * v + o
//   kind 2 (levels, curves model):                    v + s * (lo + (hi - lo) * t' - v),
//          t = (v - black) * inv, t' = t^e for t > 0, else t

// #include shared/common.wgsl

// Keep in sync with `ApplyUniform` in src/stages/colour/gpu.rs.
struct Params {
    dims: Dims,
    // Per plane: `a` = (kind, p0, p1, p2), `b` = (p3, p4, p5, unused); see `PlaneCurve` there.
    a: array<vec4<f32>, 3>,
    b: array<vec4<f32>, 3>,
    floor_v: f32,
    _pad0: f32,
    _pad1: f32,
    _pad2: f32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

fn curve(v: f32, a: vec4<f32>, b: vec4<f32>) -> f32 {
    let kind = u32(a.x);
    if kind == 0u {
        // pow is defined for v > 0 only; below the floor the curve is a line through 0.
        return select(a.w * v, a.y * pow(max(v, params.floor_v), a.z), v >= params.floor_v);
    }
    if kind == 1u {
        return a.y * v + a.z;
    }
    let t = (v - a.y) * a.z;
    let tp = select(t, pow(max(t, 1e-30), a.w), t > 0.0);
    let out = b.x + (b.y - b.x) * tp;
    return v + b.z * (out - v);
}

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let d = params.dims;
    if outside(d, id) {
        return;
    }
    let i = sample_index(d, id.x, id.y, id.z);
    let p = min(id.z, 2u);
    dst[i] = curve(src[i], params.a[p], params.b[p]);
}
