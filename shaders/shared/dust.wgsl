// dust: how far `v` lies outside the range of the pair `(a, b)` (signed, 0 inside). CPU twin:
// `stages::dust::cpu::outside`.
fn beyond(v: f32, a: f32, b: f32) -> f32 {
    let lo = min(a, b);
    let hi = max(a, b);
    if v > hi {
        return v - hi;
    } else if v < lo {
        return v - lo;
    }
    return 0.0;
}
