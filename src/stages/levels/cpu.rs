//! CPU reference for `levels`.

use rayon::prelude::*;

use super::LevelsParams;
use crate::frame::Frame;

/// The levels curve for one sample, given `(black, 1/(white-black), 1/gamma)`.
pub fn curve(v: f32, k: [f32; 3]) -> f32 {
    let t = (v - k[0]) * k[1];
    if t > 0.0 {
        t.powf(k[2])
    } else {
        t
    }
}

/// Apply levels in place, each plane with its own coefficients.
pub fn apply(frame: &mut Frame, params: &LevelsParams) {
    let coeffs = params.coefficients();
    let width = frame.width.max(1);
    for (p, plane) in frame.planes_mut().into_iter().enumerate() {
        let k = coeffs[p.min(2)];
        plane.par_chunks_mut(width).for_each(|row| {
            for v in row {
                *v = curve(*v, k);
            }
        });
    }
}
