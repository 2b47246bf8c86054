// dust: the re-match by pieces of dirt (8-connected pieces of the pixels taken for dirt, the
// external mask's aside): where at least `whole` of a piece was not found by the re-match, all
// of it is dirt. Four passes over one layout (`params.phase`):
//   0  each piece pixel labelled with its own index, the counts cleared;
//   1  each joined to its piece neighbours to the left and above (union-find on atomics; a
//      root is the smallest index of its piece, so the labelling is the same every run);
//   2  each labelled with its root, and counted there: all pixels, and those still dirt;
//   3  the decision.
// CPU twin: `stages::dust::cpu::rematch_pieces`.

// #include shared/common.wgsl

// Keep in sync with `PiecesUniform` in src/stages/dust/gpu.rs.
struct Params {
    w: u32,
    h: u32,
    phase: u32,
    has_ext: u32,
    whole: f32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<storage, read> flag: array<f32>;
@group(0) @binding(1) var<storage, read> ext: array<f32>;
@group(0) @binding(2) var<storage, read> matched: array<f32>;
@group(0) @binding(3) var<storage, read_write> label: array<atomic<u32>>;
// Per root: all pixels at 2 * root, those still dirt at 2 * root + 1.
@group(0) @binding(4) var<storage, read_write> counts: array<atomic<u32>>;
@group(0) @binding(5) var<storage, read_write> dst: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;

const NONE: u32 = 0xffffffffu;

fn in_piece(k: u32) -> bool {
    return flag[k] > 0.75 && !(params.has_ext != 0u && ext[k] > 0.5);
}

fn find(k0: u32) -> u32 {
    var k = k0;
    loop {
        let up = atomicLoad(&label[k]);
        if up == k {
            break;
        }
        k = up;
    }
    return k;
}

// Join the pieces of `a0` and `b0`: the larger root is hung under the smaller. Where another
// invocation re-hung that root meanwhile, the atomic min keeps the smaller parent and the
// join goes on from the parent it found.
fn unite(a0: u32, b0: u32) {
    var a = find(a0);
    var b = find(b0);
    loop {
        if a == b {
            break;
        }
        if a < b {
            let t = a;
            a = b;
            b = t;
        }
        let old = atomicMin(&label[a], b);
        if old == a {
            break;
        }
        a = find(old);
        b = find(b);
    }
}

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let w = params.w;
    let h = params.h;
    if id.x >= w || id.y >= h || id.z > 0u {
        return;
    }
    let k = id.y * w + id.x;
    switch params.phase {
        case 0u: {
            atomicStore(&label[k], select(NONE, k, in_piece(k)));
            atomicStore(&counts[2u * k], 0u);
            atomicStore(&counts[2u * k + 1u], 0u);
        }
        case 1u: {
            if in_piece(k) {
                // Left, and the three above: with the other four's own joins, all eight.
                let x = i32(id.x);
                let y = i32(id.y);
                for (var q = 0; q < 4; q++) {
                    let xx = x + select(q - 2, -1, q == 0);
                    let yy = y - select(1, 0, q == 0);
                    if xx >= 0 && yy >= 0 && xx < i32(w) {
                        let kk = u32(yy) * w + u32(xx);
                        if in_piece(kk) {
                            unite(k, kk);
                        }
                    }
                }
            }
        }
        case 2u: {
            if in_piece(k) {
                let root = find(k);
                atomicStore(&label[k], root);
                atomicAdd(&counts[2u * root], 1u);
                if matched[k] > 0.75 {
                    atomicAdd(&counts[2u * root + 1u], 1u);
                }
            }
        }
        default: {
            var f = matched[k];
            if in_piece(k) {
                let root = atomicLoad(&label[k]);
                let all = atomicLoad(&counts[2u * root]);
                let kept = atomicLoad(&counts[2u * root + 1u]);
                if f32(kept) >= params.whole * f32(all) {
                    f = flag[k];
                }
            }
            dst[k] = f;
        }
    }
}
