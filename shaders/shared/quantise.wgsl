// Normalised value to an integer code, the GPU twin of `crate::frame::quantise`:
// round half away from zero, clamp to 0..=max_code, NaN to 0; valid for max_code < 2^23.
//
// Works on the bits of the (correctly rounded) product rather than with floor(p + 0.5) and
// float compares: WGSL lets compilers assume there are no NaNs or infinities, and the extra
// addition rounds a second time. A Rust port of this function agrees with `quantise` on all
// 2^32 inputs for max_code 1023, 4095 and 65535 (checked once, exhaustively).
fn quantise(v: f32, max_code: u32) -> u32 {
    let b = bitcast<u32>(v * f32(max_code));
    let e = (b >> 23u) & 0xffu;
    if (b >> 31u) != 0u {
        return 0u; // negative, -0 or -NaN
    }
    if e == 0xffu {
        return select(max_code, 0u, (b & 0x7fffffu) != 0u); // +inf clamps, NaN gives 0
    }
    if e < 126u {
        return 0u; // below 0.5
    }
    if e >= 150u {
        return max_code; // 2^23 and above: far past any code range
    }
    // p = m * 2^(e - 150) with m the 24-bit significand; add half of the last kept bit's unit.
    let m = (b & 0x7fffffu) | 0x800000u;
    let sh = 150u - e;
    return min((m + (1u << (sh - 1u))) >> sh, max_code);
}
