//! Blur: the softness of a camera lens, a printer's optics or a contact print's imperfect
//! contact, as a separable gaussian with mirrored borders. Also the gaussian kernel the grain
//! model uses for its spatial correlation.

use rayon::prelude::*;
use serde::Serialize;

use crate::frame::Frame;

/// Knobs of `blur` at strength 1.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BlurParams {
    /// Gaussian sigma in pixels (times the resolution scale and the strength). Default 0.8.
    pub sigma_px: f32,
}

impl Default for BlurParams {
    fn default() -> Self {
        BlurParams { sigma_px: 0.8 }
    }
}

/// Index `i` reflected into `0..n` about the outer edges of the first and last samples
/// (`-1 -> 0`, `n -> n - 1`), for any offset.
pub(crate) fn mirror(i: isize, n: usize) -> usize {
    let n = n as isize;
    if n <= 1 {
        return 0;
    }
    let period = 2 * n;
    let m = i.rem_euclid(period);
    (if m < n { m } else { period - 1 - m }) as usize
}

/// Normalised 1-D gaussian taps, radius `ceil(3 sigma)`, centre at index `radius`.
pub(crate) fn gaussian_kernel(sigma: f32) -> Vec<f32> {
    let radius = (3.0 * sigma).ceil().max(1.0) as isize;
    let taps: Vec<f32> = (-radius..=radius)
        .map(|i| (-0.5 * (i as f32 / sigma).powi(2)).exp())
        .collect();
    let sum: f32 = taps.iter().sum();
    taps.into_iter().map(|t| t / sum).collect()
}

/// Separable convolution of one plane with `kernel` (odd length, centred), mirrored borders.
pub(crate) fn convolve_plane(plane: &mut [f32], width: usize, height: usize, kernel: &[f32]) {
    if width == 0 || height == 0 {
        return;
    }
    let r = kernel.len() / 2;
    let mut tmp = vec![0.0f32; plane.len()];
    // Horizontal: each row padded by mirroring, then plain dot products.
    tmp.par_chunks_mut(width)
        .zip(plane.par_chunks(width))
        .for_each(|(out, row)| {
            let padded: Vec<f32> = (0..width + 2 * r)
                .map(|i| row[mirror(i as isize - r as isize, width)])
                .collect();
            for (x, o) in out.iter_mut().enumerate() {
                *o = kernel.iter().zip(&padded[x..]).map(|(w, v)| w * v).sum();
            }
        });
    // Vertical: whole rows at a time, so memory is read in order.
    plane
        .par_chunks_mut(width)
        .enumerate()
        .for_each(|(y, out)| {
            out.iter_mut().for_each(|o| *o = 0.0);
            for (k, &w) in kernel.iter().enumerate() {
                let src = mirror(y as isize + k as isize - r as isize, height);
                for (o, v) in out.iter_mut().zip(&tmp[src * width..(src + 1) * width]) {
                    *o += w * v;
                }
            }
        });
}

/// Blur every plane with a gaussian of `sigma` pixels; nothing happens below 0.05 px.
pub(crate) fn blur(frame: &mut Frame, sigma: f32) {
    if sigma.is_nan() || sigma < 0.05 {
        return;
    }
    let kernel = gaussian_kernel(sigma);
    let (w, h) = (frame.width, frame.height);
    for plane in frame.planes_mut() {
        convolve_plane(plane, w, h, &kernel);
    }
}
