// dust: shared by the dust shaders. How far `v` lies outside the range of the pair `(a, b)` (signed, 0 inside). CPU twin:
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

// Candidate bits per pixel, as `stages::dust::cpu` (C_POS...): the centre's spike, the frame
// before's and the frame after's, each positive, negative and strong; then the centre's weak,
// spatial and lone marks. A neighbour's lone spike sits at its bit << LONE_SHIFT.
const C_POS: u32 = 1u;
const C_NEG: u32 = 2u;
const C_STRONG: u32 = 4u;
const P_POS: u32 = 8u;
const P_NEG: u32 = 16u;
const P_STRONG: u32 = 32u;
const N_POS: u32 = 64u;
const N_NEG: u32 = 128u;
const N_STRONG: u32 = 256u;
const C_WEAK: u32 = 512u;
const C_SPATIAL: u32 = 1024u;
const C_LONE: u32 = 8192u;
const LONE_SHIFT: u32 = 8u;
const PN_AREA: u32 = P_POS | P_NEG | N_POS | N_NEG;
const PN_BITS: u32 = PN_AREA | (PN_AREA << LONE_SHIFT);
const C_BITS: u32 = C_POS | C_NEG | C_WEAK | C_LONE;

// Flag of a pixel the re-match found in a neighbour: weak for the disc of `dust_grow`, but
// picture for `dust_link`. CPU twin: `stages::dust::cpu::FOUND`.
const FOUND: f32 = 0.4;
