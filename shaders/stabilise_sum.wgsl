// stabilise: one Gauss–Newton pass, step 4: the rows' sums added in row order (the first
// `params.cols` of 32 columns), with the overlap's sample count and the median's bits from
// `sel` in columns 29 and 30: the 32 numbers a pass sends back to the host.

// #include shared/stabilise_pass.wgsl

@group(0) @binding(0) var<storage, read> rows: array<f32>;
@group(0) @binding(1) var<storage, read> sel: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(32, 1, 1)
fn main(@builtin(local_invocation_index) lid: u32) {
    if lid < params.cols {
        var s = 0.0;
        for (var j = 0u; j < params.ny; j++) {
            s += rows[j * 32u + lid];
        }
        out[lid] = s;
    } else if lid == 29u {
        out[29] = bitcast<f32>(sel[0]);
    } else if lid == 30u {
        out[30] = bitcast<f32>(sel[3]);
    } else {
        out[lid] = 0.0;
    }
}
