//! Fading: dye (or silver) loss, as a per-channel curve in a density-like domain.
//!
//! With `D = -log10(max(v, 10^-dmax))` the density the code value stands for, a channel keeps
//! the fraction `keep` of its density and gains a base stain: `v' = 10^-(keep * D + stain)`.
//! Lower `keep` lifts the blacks and flattens the contrast of that channel; `stain` dims its
//! whites. Colour defaults are a faded Eastmancolor print: the cyan dye (which holds back red)
//! and the yellow dye (blue) fade fastest, leaving the magenta, so the picture turns red-magenta
//! with lifted, reddish blacks and yellowed whites. Monochrome prints lose density evenly.

use serde::Serialize;

/// Knobs of `fading` at strength 1.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FadingParams {
    /// Fraction of density kept per channel R, G, B (cyan, magenta, yellow dye). Default
    /// `[0.55, 0.92, 0.72]`. At strength `s` a channel keeps `1 - s * (1 - keep)`.
    pub keep_rgb: [f32; 3],
    /// Base stain density added per channel R, G, B (yellowed base). Default `[0, 0.01, 0.04]`.
    pub stain_rgb: [f32; 3],
    /// Density kept by a monochrome print. Default 0.78.
    pub keep_mono: f32,
    /// Stain density of a monochrome print. Default 0.02.
    pub stain_mono: f32,
    /// Largest density the curve reads (values below `10^-dmax` count as that). Default 3.
    pub dmax: f32,
}

impl Default for FadingParams {
    fn default() -> Self {
        FadingParams {
            keep_rgb: [0.55, 0.92, 0.72],
            stain_rgb: [0.0, 0.01, 0.04],
            keep_mono: 0.78,
            stain_mono: 0.02,
            dmax: 3.0,
        }
    }
}

/// One channel's resolved curve, with samples for the truth file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FadeCurve {
    pub keep: f32,
    pub stain: f32,
    /// `[input, output]` at 17 evenly spaced inputs 0..1.
    pub samples: Vec<[f32; 2]>,
}

/// Fading as applied to a sequence: one curve per plane, constant over the sequence.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FadingPlan {
    pub law: &'static str,
    pub dmax: f32,
    pub curves: Vec<FadeCurve>,
}

impl FadingPlan {
    pub fn new(p: &FadingParams, strength: f32, planes: usize) -> Self {
        let chans: Vec<(f32, f32)> = if planes >= 3 {
            (0..planes)
                .map(|c| (p.keep_rgb[c.min(2)], p.stain_rgb[c.min(2)]))
                .collect()
        } else {
            vec![(p.keep_mono, p.stain_mono); planes]
        };
        let dmax = p.dmax.max(0.5);
        let curves = chans
            .into_iter()
            .map(|(keep, stain)| {
                let keep = (1.0 - strength * (1.0 - keep)).clamp(0.05, 1.0);
                let stain = stain * strength;
                let samples = (0..17)
                    .map(|i| {
                        let v = i as f32 / 16.0;
                        [v, curve(v, keep, stain, dmax)]
                    })
                    .collect();
                FadeCurve {
                    keep,
                    stain,
                    samples,
                }
            })
            .collect();
        FadingPlan {
            law: "v' = 10^-(keep*D + stain), D = -log10(max(v, 10^-dmax))",
            dmax,
            curves,
        }
    }
}

fn curve(v: f32, keep: f32, stain: f32, dmax: f32) -> f32 {
    let d = -(v.max(10f32.powf(-dmax))).log10();
    10f32.powf(-(keep * d + stain))
}

pub(crate) fn apply(frame: &mut crate::frame::Frame, plan: &FadingPlan) {
    for (plane, c) in frame.planes_mut().into_iter().zip(&plan.curves) {
        if c.keep == 1.0 && c.stain == 0.0 {
            continue; // no loss: leave the plane bit-exact
        }
        plane
            .iter_mut()
            .for_each(|v| *v = curve(*v, c.keep, c.stain, plan.dmax));
    }
}
