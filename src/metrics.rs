//! Quality measures against a reference frame.

use crate::frame::Frame;

/// PSNR in dB for normalised values (peak 1); infinite for identical frames.
pub fn psnr(reference: &Frame, test: &Frame) -> f64 {
    let mse = mse(reference, test);
    if mse == 0.0 {
        f64::INFINITY
    } else {
        -10.0 * mse.log10()
    }
}

/// Mean squared error over all samples.
pub fn mse(reference: &Frame, test: &Frame) -> f64 {
    assert_eq!(reference.data.len(), test.data.len(), "frames differ in shape");
    let sum: f64 = reference
        .data
        .iter()
        .zip(&test.data)
        .map(|(a, b)| {
            let d = (*a - *b) as f64;
            d * d
        })
        .sum();
    sum / reference.data.len().max(1) as f64
}

/// The value below which `fraction` of a plane's samples lie.
pub fn percentile(values: &[f32], fraction: f64) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v: Vec<f32> = values.iter().copied().filter(|x| x.is_finite()).collect();
    let k = ((v.len() - 1) as f64 * fraction.clamp(0.0, 1.0)).round() as usize;
    let (_, kth, _) = v.select_nth_unstable_by(k, |a, b| a.total_cmp(b));
    *kth
}
