// The range (min, max) of the 4x4 source samples around output pixel (x, y) in plane p: the
// bound that keeps the upscale from ringing (`stages::upscale::cpu::local_range`). Reads the
// including shader's `src` binding (the source frame); needs shared/upscale.wgsl.
fn local_range(x: u32, y: u32, p: u32) -> vec2<f32> {
    let d = params.dims;
    let u = src_pos(x, y);
    let fx = i32(floor(u.x));
    let fy = i32(floor(u.y));
    var lo = 3.4028235e38;
    var hi = -3.4028235e38;
    for (var j = 0; j < 4; j++) {
        let sy = u32(reflect(fy - 1 + j, i32(d.height)));
        for (var i = 0; i < 4; i++) {
            let sx = u32(reflect(fx - 1 + i, i32(d.width)));
            let s = src[sample_index(d, sx, sy, p)];
            lo = min(lo, s);
            hi = max(hi, s);
        }
    }
    return vec2<f32>(lo, hi);
}
