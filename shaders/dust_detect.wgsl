// dust: candidate bits per pixel from the centre luma and the compensated neighbours' lumas.
// CPU twin: `stages::dust::cpu::detect_pixel`.

// #include shared/common.wgsl
// #include shared/dust.wgsl

// Keep in sync with `DetectUniform` in src/stages/dust/gpu.rs.
struct Params {
    w: u32,
    h: u32,
    // Bit i set: neighbour slot i (p1, n1, p2, n2) is present.
    present: u32,
    wide_radius: u32,
    t0: f32,
    noise_factor: f32,
    wide_factor: f32,
    // Threshold factor for detection from one side only.
    one_sided: f32,
    // A frame two away counts where it matches the one between within this share of the spike.
    consistent: f32,
    // Threshold factor on the frame border, falling to 1 at `edge` pixels in.
    edge_k: f32,
    edge: u32,
    // Threshold factor from one side at which a spike in space is taken (C_SPATIAL).
    spatial_scale: f32,
    // Across an occlusion each side's two frames agree within this share of the spike.
    occluded_consistent: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> lc: array<f32>;
@group(0) @binding(1) var<storage, read> lp1: array<f32>;
@group(0) @binding(2) var<storage, read> ln1: array<f32>;
@group(0) @binding(3) var<storage, read> lp2: array<f32>;
@group(0) @binding(4) var<storage, read> ln2: array<f32>;
@group(0) @binding(5) var<storage, read_write> bits: array<u32>;
@group(0) @binding(6) var<uniform> params: Params;

// Slots: 0 centre, 1 p1, 2 n1, 3 p2, 4 n2.
fn lum(slot: u32, k: u32) -> f32 {
    switch slot {
        case 0u: { return lc[k]; }
        case 1u: { return lp1[k]; }
        case 2u: { return ln1[k]; }
        case 3u: { return lp2[k]; }
        default: { return ln2[k]; }
    }
}

fn disagreement(a: u32, b: u32, x: u32, y: u32) -> f32 {
    var s = 0.0;
    for (var j = -1; j <= 1; j++) {
        for (var i = -1; i <= 1; i++) {
            let xx = u32(clamp(i32(x) + i, 0, i32(params.w) - 1));
            let yy = u32(clamp(i32(y) + j, 0, i32(params.h) - 1));
            let k = yy * params.w + xx;
            s += abs(lum(a, k) - lum(b, k));
        }
    }
    return s * (1.0 / 9.0);
}

// Mean |a - b| over the square of wide_radius, clamped at the edges.
fn wide_disagreement(a: u32, b: u32, x: u32, y: u32) -> f32 {
    let r = i32(params.wide_radius);
    var s = 0.0;
    for (var j = -r; j <= r; j++) {
        for (var i = -r; i <= r; i++) {
            let xx = u32(clamp(i32(x) + i, 0, i32(params.w) - 1));
            let yy = u32(clamp(i32(y) + j, 0, i32(params.h) - 1));
            let k = yy * params.w + xx;
            s += abs(lum(a, k) - lum(b, k));
        }
    }
    return s / f32((2 * r + 1) * (2 * r + 1));
}

// (how far v lies outside the pair's range, the local threshold)
fn spike(v: u32, a: u32, b: u32, x: u32, y: u32) -> vec2<f32> {
    let k = y * params.w + x;
    let thr = params.t0 + params.noise_factor * disagreement(a, b, x, y);
    return vec2<f32>(beyond(lum(v, k), lum(a, k), lum(b, k)), thr);
}

// CPU twin: `edge_factor`.
fn edge_factor(x: u32, y: u32) -> f32 {
    if params.edge == 0u {
        return 1.0;
    }
    let d = f32(min(min(x, y), min(params.w - 1u - x, params.h - 1u - y)));
    return 1.0 + (params.edge_k - 1.0) * max(1.0 - d / f32(params.edge), 0.0);
}

fn spike_bits(d: f32, thr: f32, pos: u32, neg: u32, strong: u32) -> u32 {
    var out = 0u;
    if d > thr {
        out |= pos;
    }
    if d < -thr {
        out |= neg;
    }
    if abs(d) > 2.0 * thr {
        out |= strong;
    }
    return out;
}

// Both sides, where the frames just before and after disagree (an occlusion): the centre
// beyond all four neighbours, each side agreeing with itself. CPU twin: `occluded_spike`.
fn occluded_spike(x: u32, y: u32, edge: f32) -> u32 {
    let k = y * params.w + x;
    let a = lum(1u, k);
    let b = lum(2u, k);
    let a2 = lum(3u, k);
    let b2 = lum(4u, k);
    let d = beyond(lum(0u, k), min(min(min(a, b), a2), b2), max(max(max(a, b), a2), b2));
    let near = params.occluded_consistent * abs(d);
    if abs(a2 - a) >= near || abs(b2 - b) >= near {
        return 0u;
    }
    let side = max(disagreement(1u, 3u, x, y), disagreement(2u, 4u, x, y));
    let thr = (params.t0 + params.noise_factor * side) * edge;
    let far_thr = spike(0u, 3u, 4u, x, y).y;
    if abs(d) <= thr || abs(d) <= 0.5 * far_thr {
        return 0u;
    }
    let wide = max(wide_disagreement(1u, 3u, x, y), wide_disagreement(2u, 4u, x, y));
    if params.wide_factor * wide >= abs(d) {
        return 0u;
    }
    return spike_bits(d, thr, C_POS, C_NEG, C_STRONG);
}

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= params.w || id.y >= params.h || id.z > 0u {
        return;
    }
    let has = params.present;
    let p1 = (has & 1u) != 0u;
    let n1 = (has & 2u) != 0u;
    let p2 = (has & 4u) != 0u;
    let n2 = (has & 8u) != 0u;
    var out = 0u;
    let k = id.y * params.w + id.x;
    // Both sides, confirmed by the frames two away; or the two frames on one side only, at
    // a raised threshold (CPU twin: `detection_pair`).
    var sa = 0u;
    var sb = 0u;
    var scale = params.one_sided;
    let both = p1 && n1;
    if both {
        sa = 1u;
        sb = 2u;
        scale = 1.0;
    } else if !p1 && n1 && n2 {
        sa = 2u;
        sb = 4u;
    } else if p1 && !n1 && p2 {
        sa = 1u;
        sb = 3u;
    }
    if sa != 0u {
        let r = spike(0u, sa, sb, id.x, id.y);
        let d = r.x;
        // A weaker spike is dirt if it is a spike in space too (dust_spatial): from one side
        // from spatial_scale times the threshold; from both, in the border band, from the
        // threshold itself.
        let edge = edge_factor(id.x, id.y);
        let strict = r.y * scale * edge;
        let thr = r.y * min(scale, params.spatial_scale) * edge;
        var relaxed = thr;
        if both {
            relaxed = r.y;
        }
        var cb = spike_bits(d, relaxed, C_POS, C_NEG, C_STRONG);
        let far = both && p2 && n2;
        // Neighbours that disagree with each other are no evidence of dirt on their own:
        // there the centre must stand out of all four (CPU twin: `occluded_spike`).
        let occluded = abs(lum(sa, k) - lum(sb, k)) >= 0.5 * abs(d);
        if occluded {
            cb = 0u;
            if far {
                cb = occluded_spike(id.x, id.y, edge);
            }
        }
        // A frame two away counts only where it matches the frame between it and the centre.
        var ua = false;
        var ub = false;
        if far {
            ua = abs(lum(3u, k) - lum(1u, k)) < params.consistent * abs(d);
            ub = abs(lum(4u, k) - lum(2u, k)) < params.consistent * abs(d);
        }
        // The frames two away (those present, one at least) show the centre's picture:
        // picture the frames just before and after lost (CPU twin: `agreed_spike`).
        if !occluded && both && (p2 || n2) {
            let near = params.consistent * abs(d);
            let c0 = lum(0u, k);
            let shows_p = !p2 || abs(lum(3u, k) - c0) < near;
            let shows_n = !n2 || abs(lum(4u, k) - c0) < near;
            if shows_p && shows_n {
                cb = 0u;
            }
        }
        if !occluded && far && (ua || ub) {
            var u = 3u;
            var v = 4u;
            if !ub {
                v = 3u;
            } else if !ua {
                u = 4u;
            }
            let r2 = spike(0u, u, v, id.x, id.y);
            var ok = r2.x < -0.5 * r2.y;
            if d > 0.0 {
                ok = r2.x > 0.5 * r2.y;
            }
            if !ok {
                cb = 0u;
            }
        }
        // Motion failure: the neighbours disagree over a wider area (either side's pair too,
        // with the frames two away that count); read only where a candidate remains. Where
        // all four follow each other at the pixel, a spike over strict must then stand out in
        // space (dust_spatial).
        if !occluded && cb != 0u {
            var wide = wide_disagreement(sa, sb, id.x, id.y);
            if far && ua && ub {
                wide = max(wide, wide_disagreement(3u, 4u, id.x, id.y));
            }
            if far && ua {
                wide = max(wide, wide_disagreement(1u, 3u, id.x, id.y));
            }
            if far && ub {
                wide = max(wide, wide_disagreement(2u, 4u, id.x, id.y));
            }
            if params.wide_factor * wide >= abs(d) {
                if both && ua && ub && abs(d) > strict {
                    cb = (cb & ~C_STRONG) | C_SPATIAL;
                } else {
                    cb = 0u;
                }
            }
        }
        // In the border band the frames two away must follow too, and the spike is strong
        // only as it would be at the band's threshold (CPU twin: `agreed_spike`).
        if !occluded && both && abs(d) <= 2.0 * strict {
            cb &= ~C_STRONG;
        }
        if !occluded && cb != 0u && abs(d) <= strict {
            cb |= C_SPATIAL;
            if both && !(ua && ub) {
                cb = 0u;
            }
        }
        out |= cb;
        if abs(d) > 0.25 * thr {
            out |= C_WEAK;
        }
    }
    if p1 && p2 {
        let r = spike(1u, 3u, 0u, id.x, id.y);
        out |= spike_bits(r.x, r.y, P_POS, P_NEG, P_STRONG);
    }
    if n1 && n2 {
        let r = spike(2u, 0u, 4u, id.x, id.y);
        out |= spike_bits(r.x, r.y, N_POS, N_NEG, N_STRONG);
    }
    bits[id.y * params.w + id.x] = out;
}
