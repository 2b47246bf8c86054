//! Seeds and random numbers for `degrade`. Every draw derives from `(seed, frame, stream)` by a
//! stateless hash ([`key`]), so frames render in any order, on any thread, and stay identical;
//! within one frame and stream a small splitmix64 generator ([`Rng`]) draws in sequence.

/// The splitmix64 finaliser: a bijective 64-bit mix.
pub(crate) const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Independent random streams, one per defect and purpose. Never renumber: truth files and
/// benchmarks rely on a seed giving the same damage release after release.
/// (1 and 3 are reserved for blur and fading, which draw nothing today.)
pub(crate) mod stream {
    pub const GRAIN: u64 = 2;
    pub const DUST: u64 = 4;
    pub const BLOTCH: u64 = 5;
    pub const SCRATCH: u64 = 6;
    pub const FLICKER: u64 = 7;
    pub const WEAVE: u64 = 8;
    pub const ARTIFACTS: u64 = 9;
}

/// The frame number used for whole-sequence draws (scratch tracks, drifts).
pub(crate) const SEQUENCE: u64 = u64::MAX;

/// Seed of one (frame, stream) pair.
pub(crate) fn key(seed: u64, frame: u64, stream: u64) -> u64 {
    let a = mix64(seed ^ 0x6E69_7472_6174_6521);
    let b = mix64(a ^ frame.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    mix64(b ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03))
}

/// A sub-key: `key` combined with an index (a pixel, a knot, a track).
pub(crate) fn sub(key: u64, i: u64) -> u64 {
    mix64(
        key ^ i
            .wrapping_mul(0xA076_1D64_78BD_642F)
            .wrapping_add(0xE703_7ED1_A0B4_28DB),
    )
}

/// Uniform in `[0, 1)` from a hash, 24 bits.
pub(crate) fn unit(h: u64) -> f32 {
    (h >> 40) as f32 / (1u64 << 24) as f32
}

/// A standard normal sample at index `i` of the stream `key` (Box–Muller on one 64-bit hash).
pub(crate) fn gauss_at(key: u64, i: u64) -> f32 {
    let h = sub(key, i);
    let u1 = ((h >> 40) + 1) as f32 / (1u64 << 24) as f32; // (0, 1]
    let u2 = (h & 0xFF_FFFF) as f32 / (1u64 << 24) as f32;
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// Smooth 1-D noise through one random knot per unit of `t`, Catmull-Rom interpolated; knots
/// are uniform in `-1..1` (the curve may overshoot them by a little).
pub(crate) fn smooth1(key: u64, t: f32) -> f32 {
    let i = t.floor();
    let f = t - i;
    let knot = |d: i64| 2.0 * unit(sub(key, (i as i64 + d) as u64)) - 1.0;
    let (p0, p1, p2, p3) = (knot(-1), knot(0), knot(1), knot(2));
    let f2 = f * f;
    let f3 = f2 * f;
    0.5 * (2.0 * p1
        + (p2 - p0) * f
        + (2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3) * f2
        + (3.0 * p1 - p0 - 3.0 * p2 + p3) * f3)
}

/// Smooth 2-D value noise in `[0, 1]` with lattice cells of `cell` pixels.
pub(crate) fn value_noise(key: u64, x: f32, y: f32, cell: f32) -> f32 {
    let (fx, fy) = (x / cell, y / cell);
    let (ix, iy) = (fx.floor(), fy.floor());
    let s = |v: f32| v * v * (3.0 - 2.0 * v);
    let (sx, sy) = (s(fx - ix), s(fy - iy));
    let h = |dx: i64, dy: i64| {
        let (gx, gy) = ((ix as i64 + dx) as u64, (iy as i64 + dy) as u64);
        unit(sub(sub(key, gx), gy))
    };
    let top = h(0, 0) * (1.0 - sx) + h(1, 0) * sx;
    let bottom = h(0, 1) * (1.0 - sx) + h(1, 1) * sx;
    top * (1.0 - sy) + bottom * sy
}

/// Sequential draws within one (frame, stream): splitmix64.
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(key: u64) -> Self {
        Rng(key)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f32 {
        unit(self.next_u64())
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform in `(lo, hi)` of a knob's `(lo, hi)` pair.
    pub fn within(&mut self, r: (f32, f32)) -> f32 {
        self.range(r.0, r.1)
    }

    pub fn chance(&mut self, p: f32) -> bool {
        self.unit() < p
    }

    /// `1` or `-1` with equal odds.
    pub fn sign(&mut self) -> f32 {
        if self.chance(0.5) {
            1.0
        } else {
            -1.0
        }
    }

    /// Standard normal.
    pub fn normal(&mut self) -> f32 {
        gauss_at(self.next_u64(), 0)
    }

    /// Poisson-distributed count with mean `lambda` (Knuth's product method; a rounded normal
    /// beyond 50).
    pub fn poisson(&mut self, lambda: f32) -> usize {
        if lambda.is_nan() || lambda <= 0.0 {
            return 0;
        }
        if lambda > 50.0 {
            return (lambda + lambda.sqrt() * self.normal()).round().max(0.0) as usize;
        }
        let limit = (-lambda as f64).exp();
        let mut p = 1.0f64;
        let mut k = 0;
        loop {
            p *= (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            if p <= limit {
                return k;
            }
            k += 1;
        }
    }
}
