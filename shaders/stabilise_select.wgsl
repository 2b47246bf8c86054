// stabilise: one Gauss–Newton pass, step 2 (continued): the bin of `hist` that holds the
// median, appended to the prefix in `sel`, and `hist` cleared for the next stage.
// `sel` = [samples on the overlap, rank left, prefix, median bits].

// #include shared/stabilise_pass.wgsl

@group(0) @binding(0) var<storage, read_write> hist: array<u32>;
@group(0) @binding(1) var<storage, read_write> sel: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;

const BINS: u32 = 2048u;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(local_invocation_index) lid: u32) {
    if lid == 0u {
        var rank: u32;
        var bins = 1024u;
        if params.mode == 0u {
            let total = params.nx * params.ny - hist[0x7ffu];
            sel[0] = total;
            rank = total / 2u;
            bins = 2047u;
        } else {
            rank = sel[1];
        }
        var below = 0u;
        var bin = 0u;
        for (; bin < bins; bin++) {
            let n = hist[bin];
            if below + n > rank {
                break;
            }
            below += n;
        }
        sel[1] = rank - below;
        if params.mode == 0u {
            sel[2] = bin;
        } else if params.mode == 1u {
            sel[2] = (sel[2] << 10u) | bin;
        } else {
            sel[3] = (sel[2] << 10u) | bin;
        }
    }
    storageBarrier();
    for (var i = lid; i < BINS; i += 256u) {
        hist[i] = 0u;
    }
}
