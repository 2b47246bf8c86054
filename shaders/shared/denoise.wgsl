// denoise: what its kernels share. The table (binding `table` in each shader) holds the 8x8
// DCT matrix (64 values, `c[u][x]` at `u * 8 + x`), then per plane `TABLE_PLANE` values:
// noise sigma per intensity bin (8), DCT noise shape (64), difference sd factor, regrain tap
// radius, regrain tap scale, unused, taps (up to 19). Keep in sync with `gpu::table` in
// src/stages/denoise/gpu.rs.

const TABLE_DCT: u32 = 64u;
const TABLE_PLANE: u32 = 96u;
const T_SIGMA: u32 = 0u;
const T_SHAPE: u32 = 8u;
const T_DIFF_SD: u32 = 72u;
const T_RADIUS: u32 = 73u;
const T_TAP_SCALE: u32 = 74u;
const T_TAPS: u32 = 76u;

// The noise-level function at level v: linear between bin centres, constant beyond. CPU twin:
// `denoise::noise::sigma_at`.
fn nlf(s: array<f32, 8>, v: f32) -> f32 {
    let t = clamp(v * 8.0 - 0.5, 0.0, 7.0);
    let i = min(u32(floor(t)), 7u);
    let j = min(i + 1u, 7u);
    return s[i] + (s[j] - s[i]) * (t - f32(i));
}

// lowbias32. CPU twin: `denoise::cpu::hash32`.
fn hash32(v: u32) -> u32 {
    var x = v;
    x ^= x >> 16u;
    x *= 0x7feb352du;
    x ^= x >> 15u;
    x *= 0x846ca68bu;
    x ^= x >> 16u;
    return x;
}

// Unit gaussian white noise at integer (x, y) of a stream. CPU twin: `denoise::cpu::gauss`.
fn gauss(key: u32, x: i32, y: i32) -> f32 {
    let h1 = hash32(key ^ hash32(bitcast<u32>(x) ^ hash32(bitcast<u32>(y))));
    let h2 = hash32(h1 ^ 0x9e3779b9u);
    let u1 = (f32(h1 >> 8u) + 0.5) * (1.0 / 16777216.0);
    let u2 = f32(h2 >> 8u) * (1.0 / 16777216.0);
    return sqrt(-2.0 * log(u1)) * cos(6.2831855 * u2);
}
