// The harm guard, twin of `stages::pushed_beyond` (keep GUARD_MARGIN in sync): whether a
// repair moving a sample from `before` to `after` pushes it more than the margin beyond
// lo..hi, the range the picture around the defect shows there.
const GUARD_MARGIN: f32 = 0.02;

fn pushed_beyond(before: f32, after: f32, lo: f32, hi: f32) -> bool {
    return (after < lo - GUARD_MARGIN && after < before) || (after > hi + GUARD_MARGIN && after > before);
}
