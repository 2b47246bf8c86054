// stabilise: one Gauss–Newton pass, step 1: the residual r = b(M(x)) - gain * a(x) - lift of
// every lattice sample (Catmull–Rom sampling of b) whose warped position lies on the overlap,
// as f32 bits, NONE elsewhere. CPU twin: `CpuMeasure::pass` in
// src/stages/stabilise/motion.rs.

// #include shared/stabilise_pass.wgsl

@group(0) @binding(0) var<storage, read> la: array<f32>;
@group(0) @binding(1) var<storage, read> lb: array<f32>;
@group(0) @binding(2) var<storage, read_write> res: array<u32>;
@group(0) @binding(3) var<uniform> params: Params;

fn cubic_weights(t: f32) -> vec4<f32> {
    let t2 = t * t;
    let t3 = t2 * t;
    return 0.5 * vec4<f32>(
        -t3 + 2.0 * t2 - t,
        3.0 * t3 - 5.0 * t2 + 2.0,
        -3.0 * t3 + 4.0 * t2 + t,
        t3 - t2,
    );
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= params.nx || id.y >= params.ny {
        return;
    }
    let x = params.x0 + id.x * params.stride;
    let y = params.y0 + id.y * params.stride;
    let k = id.y * params.nx + id.x;
    // The displacement, small, kept apart from the integer position for precision.
    let u = vec2<f32>(f32(x), f32(y)) - params.c;
    let d = vec2<f32>(
        params.m.x * u.x - params.m.y * u.y + params.t.x,
        params.m.y * u.x + params.m.x * u.y + params.t.y,
    );
    let p = vec2<f32>(f32(x), f32(y)) + d;
    if p.x < params.lim.x || p.y < params.lim.x || p.x > params.lim.y || p.y > params.lim.z {
        res[k] = NONE;
        return;
    }
    let fd = floor(d);
    let f = d - fd;
    let ix = i32(x) + i32(fd.x) - 1;
    let iy = i32(y) + i32(fd.y) - 1;
    let wx = cubic_weights(f.x);
    let wy = cubic_weights(f.y);
    let w = i32(params.w);
    var s = 0.0;
    for (var j = 0; j < 4; j++) {
        let row = u32((iy + j) * w + ix);
        let t = wx.x * lb[row] + wx.y * lb[row + 1u] + wx.z * lb[row + 2u] + wx.w * lb[row + 3u];
        s += wy[j] * t;
    }
    let r = s - params.gl.x * la[y * params.w + x] - params.gl.y;
    res[k] = bitcast<u32>(r);
}
