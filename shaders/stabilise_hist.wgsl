// stabilise: one Gauss–Newton pass, step 2: the exact median of the residual magnitudes by a
// three-stage radix selection on their bits (11, 10, 10 bits; non-negative floats order as
// their bits). Stage `mode` counts the magnitudes whose higher bits equal the prefix chosen so
// far (`sel`) into `hist`; `stabilise_select.wgsl` picks the bin. Counts are integers, so the
// result does not depend on the order the atomics land in.

// #include shared/stabilise_pass.wgsl

@group(0) @binding(0) var<storage, read> res: array<u32>;
@group(0) @binding(1) var<storage, read> sel: array<u32>;
@group(0) @binding(2) var<storage, read_write> hist: array<atomic<u32>>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let k = id.x;
    if k >= params.nx * params.ny {
        return;
    }
    // NONE becomes 0x7fffffff: bin 0x7ff, above every finite magnitude.
    let v = res[k] & 0x7fffffffu;
    var bin: u32;
    if params.mode == 0u {
        bin = v >> 20u;
    } else if params.mode == 1u {
        if (v >> 20u) != sel[2] {
            return;
        }
        bin = (v >> 10u) & 0x3ffu;
    } else {
        if (v >> 10u) != sel[2] {
            return;
        }
        bin = v & 0x3ffu;
    }
    atomicAdd(&hist[bin], 1u);
}
