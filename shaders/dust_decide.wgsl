// dust: vertical half of the spread, then the decision (candidate and not pathological
// motion, or the external mask). CPU twin: `stages::dust::cpu::decide`.

// #include shared/common.wgsl
// #include shared/dust.wgsl

// Keep in sync with `DecideUniform` in src/stages/dust/gpu.rs.
struct Params {
    w: u32,
    h: u32,
    radius: u32,
    pm_check: u32,
    have_prev: u32,
    have_next: u32,
    has_ext: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> hbits: array<u32>;
@group(0) @binding(1) var<storage, read> ext: array<f32>;
@group(0) @binding(2) var<storage, read_write> flag: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

// A spike of one pixel on a neighbouring frame is motion only for a candidate of one pixel.
fn seen(pn: u32, b: u32, lone: bool) -> bool {
    return (pn & b) != 0u || (lone && (pn & (b << LONE_SHIFT)) != 0u);
}

fn motion(pn: u32, p: u32, n: u32, lone: bool) -> bool {
    let hp = params.have_prev != 0u;
    let hn = params.have_next != 0u;
    return params.pm_check != 0u && (hp || hn) && (!hp || seen(pn, p, lone))
        && (!hn || seen(pn, n, lone));
}

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let w = params.w;
    let h = params.h;
    if id.x >= w || id.y >= h || id.z > 0u {
        return;
    }
    let k = id.y * w + id.x;
    let own = hbits[k];
    var pn = 0u;
    if params.pm_check != 0u {
        let lo = u32(max(i32(id.y) - i32(params.radius), 0));
        let hi = min(id.y + params.radius, h - 1u);
        for (var y = lo; y <= hi; y++) {
            pn |= hbits[y * w + id.x] & PN_BITS;
        }
    }
    let lone = (own & C_LONE) != 0u;
    let dirt = ((own & C_POS) != 0u && !motion(pn, P_POS, N_POS, lone))
        || ((own & C_NEG) != 0u && !motion(pn, P_NEG, N_NEG, lone))
        || (params.has_ext != 0u && ext[k] > 0.5);
    var f = 0.0;
    if dirt {
        f = 1.0;
    } else if (own & C_WEAK) != 0u {
        // A weak candidate: may join the mask beside dirt.
        f = 0.5;
    }
    flag[k] = f;
}
