//! Blur: the softness of a camera lens, a printer's optics or a contact print's imperfect
//! contact, as a separable gaussian with mirrored borders. Also the gaussian kernel the grain
//! model uses for its spatial correlation.

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
    let r = (kernel.len() / 2) as isize;
    let mut tmp = vec![0.0f32; plane.len()];
    for y in 0..height {
        let row = &plane[y * width..(y + 1) * width];
        for x in 0..width {
            let mut acc = 0.0;
            for (k, &w) in kernel.iter().enumerate() {
                acc += w * row[mirror(x as isize + k as isize - r, width)];
            }
            tmp[y * width + x] = acc;
        }
    }
    for y in 0..height {
        for x in 0..width {
            let mut acc = 0.0;
            for (k, &w) in kernel.iter().enumerate() {
                acc += w * tmp[mirror(y as isize + k as isize - r, height) * width + x];
            }
            plane[y * width + x] = acc;
        }
    }
}

/// Blur every plane with a gaussian of `sigma` pixels; nothing happens below 0.05 px.
pub(crate) fn blur(frame: &mut Frame, sigma: f32) {
    if !(sigma >= 0.05) {
        return;
    }
    let kernel = gaussian_kernel(sigma);
    let (w, h) = (frame.width, frame.height);
    for plane in frame.planes_mut() {
        convolve_plane(plane, w, h, &kernel);
    }
}
