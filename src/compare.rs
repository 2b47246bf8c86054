//! `nitrate compare`: score a restored sequence against clean reference frames.
//!
//! Frames are matched by stem (the file name without its extension), so the two sequences may
//! be in different formats. Optional defect masks (8-bit grey images, nonzero = defect) are
//! matched the same way and split the error into inside and outside the defects. A margin
//! crops a border of that many pixels from every frame (and mask) before **every** measure,
//! so that a stabiliser's edges do not count.
//!
//! # Measures
//!
//! Per frame `t`, on the cropped frames `ref_t`, `res_t` of `N` samples (pixels x planes):
//! - `mse = (1/N) sum (res - ref)^2`, `psnr = -10 log10(mse)` dB (peak 1 on normalised
//!   values; infinite for identical frames).
//! - `ssim`: mean SSIM (Wang et al., 11x11 Gaussian sigma 1.5, K1 0.01, K2 0.03, L 1), computed
//!   per plane over the valid window positions and averaged over planes
//!   ([`metrics::ssim`]).
//! - `psnr_in_mask`, `psnr_out_mask`: the PSNR of the samples of pixels inside / outside the
//!   mask; `None` without masks or where that side is empty.
//! - `dx`, `dy`: global translation of the restored frame against the reference, in pixels:
//!   `res(x, y) ≈ ref(x - dx, y - dy)` ([`metrics::estimate_translation`]).
//! - `luma_error = mean_luma(res) - mean_luma(ref)`, luma by Rec.709 weights for 3 planes.
//!
//! Over the sequence of `n` frames, in the reference's frame-number order (the frames present
//! are taken as consecutive; a gap in the numbering is not bridged):
//! - `mean_psnr = (1/n) sum psnr_t` (infinite if any frame is identical);
//!   `pooled_psnr = -10 log10(sum_t N_t mse_t / sum_t N_t)`.
//! - `mean_ssim = (1/n) sum ssim_t`.
//! - `psnr_in_mask`, `psnr_out_mask`: PSNR of the squared error pooled over all frames inside
//!   (outside) the masks.
//! - `shake_px`: with the drift `m_t = (1/9) sum_{k=-4..4} d_{clamp(t+k, 0, n-1)}` (a centred
//!   moving average over 9 frames, indices clamped at the ends, i.e. the end frames repeated),
//!   `shake = sqrt((1/n) sum_t |d_t - m_t|^2)` over both axes; `shake_x_px`, `shake_y_px` the
//!   same per axis (`shake^2 = shake_x^2 + shake_y^2`).
//! - `flicker_rms = sqrt((1/(n-1)) sum_{t>=1} (e_t - e_{t-1})^2)` and
//!   `flicker_max = max_t |e_t - e_{t-1}|` of the luma error `e_t`; 0 for a single frame.
//!
//! # Detection
//!
//! With `detected` masks as well (what a defect stage reports it repaired, e.g. `restore
//! --emit-masks DIR`'s `DIR/dust`), each frame's detection is counted against the truth masks,
//! on the same cropped area:
//! - pixels: `pixel_recall = |truth ∩ detected| / |truth|`,
//!   `pixel_precision = |truth ∩ detected| / |detected|`;
//! - 8-connected regions: `region_recall` is the share of truth regions with at least one
//!   detected pixel, `region_precision` the share of detected regions that touch at least one
//!   truth pixel (a detected region touching none is a false repair).
//!
//! Over the sequence the counts are summed before the ratios are taken; a ratio with nothing
//! to divide by is `null`.
//!
//! # JSON
//!
//! [`CompareReport::to_json`]: PSNR fields are a number of dB, the **string `"inf"`** for
//! identical frames, and `null` where not defined (no masks, or an empty side of the mask).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde::Serialize;

use crate::frame::Frame;
use crate::io::sequence::Sequence;
use crate::io::{read_frame, read_info};
use crate::metrics::{self, MaskedSums};

/// Frames in the centred moving average that is taken as slow drift before measuring shake.
pub const DRIFT_WINDOW: usize = 9;

/// What `nitrate compare` compares.
#[derive(Clone, Debug)]
pub struct CompareOptions {
    /// Clean frames: a directory, a pattern or one file.
    pub reference: PathBuf,
    /// Frames to score, matched to the reference by stem.
    pub restored: PathBuf,
    /// Defect masks (nonzero = defect), matched by stem; one per reference frame.
    pub mask: Option<PathBuf>,
    /// Repair masks to score against `mask` (nonzero = repaired), matched by stem.
    pub detected: Option<PathBuf>,
    /// Border in pixels left out of every measure.
    pub margin: usize,
}

/// The measures of one frame.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FrameReport {
    /// File stem shared by the reference and restored files.
    pub name: String,
    #[serde(serialize_with = "ser_db")]
    pub psnr: f64,
    pub mse: f64,
    /// Samples measured (pixels x planes, after the margin).
    pub samples: u64,
    pub ssim: f64,
    #[serde(serialize_with = "ser_opt_db")]
    pub psnr_in_mask: Option<f64>,
    #[serde(serialize_with = "ser_opt_db")]
    pub psnr_out_mask: Option<f64>,
    /// Squared-error sums inside and outside the mask, when there is one.
    pub mask: Option<MaskedSums>,
    /// Detection counts, when repair masks were given.
    pub detection: Option<Detection>,
    /// Translation of the restored frame against the reference, px.
    pub dx: f64,
    pub dy: f64,
    /// `mean_luma(restored) - mean_luma(reference)`.
    pub luma_error: f64,
}

/// The sequence measures (see the module documentation for the formulas).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub frames: usize,
    /// Mean of the per-frame PSNR in dB.
    #[serde(serialize_with = "ser_db")]
    pub mean_psnr: f64,
    /// PSNR of the MSE pooled over all samples of all frames.
    #[serde(serialize_with = "ser_db")]
    pub pooled_psnr: f64,
    pub mean_ssim: f64,
    #[serde(serialize_with = "ser_opt_db")]
    pub psnr_in_mask: Option<f64>,
    #[serde(serialize_with = "ser_opt_db")]
    pub psnr_out_mask: Option<f64>,
    /// RMS of the offsets after removing the drift, px (both axes together).
    pub shake_px: f64,
    pub shake_x_px: f64,
    pub shake_y_px: f64,
    /// RMS of the frame-to-frame change of the luma error.
    pub flicker_rms: f64,
    /// Largest absolute frame-to-frame change of the luma error.
    pub flicker_max: f64,
    /// Mean of the luma error (a steady lift or loss of brightness).
    pub mean_luma_error: f64,
    /// Detection over all frames, when repair masks were given.
    pub detection: Option<DetectionSummary>,
}

/// One frame's repair mask counted against its truth mask (see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Detection {
    pub truth_pixels: u64,
    pub detected_pixels: u64,
    /// Pixels both in the truth and in the repair mask.
    pub hit_pixels: u64,
    pub truth_regions: u64,
    /// Truth regions with at least one detected pixel.
    pub found_regions: u64,
    pub detected_regions: u64,
    /// Detected regions touching at least one truth pixel.
    pub true_regions: u64,
}

impl Detection {
    /// Count `detected` against `truth` (one flag per pixel, `width` pixels a row).
    pub fn of(truth: &[bool], detected: &[bool], width: usize) -> Self {
        assert_eq!(truth.len(), detected.len(), "mask sizes");
        let (truth_labels, truth_regions) = metrics::label_regions(truth, width);
        let (detected_labels, detected_regions) = metrics::label_regions(detected, width);
        let mut found = vec![false; truth_regions as usize + 1];
        let mut touching = vec![false; detected_regions as usize + 1];
        let mut hit_pixels = 0;
        for i in 0..truth.len() {
            if truth[i] && detected[i] {
                hit_pixels += 1;
                found[truth_labels[i] as usize] = true;
                touching[detected_labels[i] as usize] = true;
            }
        }
        Detection {
            truth_pixels: truth.iter().filter(|&&t| t).count() as u64,
            detected_pixels: detected.iter().filter(|&&d| d).count() as u64,
            hit_pixels,
            truth_regions: truth_regions as u64,
            found_regions: found.iter().filter(|&&f| f).count() as u64,
            detected_regions: detected_regions as u64,
            true_regions: touching.iter().filter(|&&t| t).count() as u64,
        }
    }

    /// Pool another frame's counts into these.
    pub fn add(&mut self, o: &Detection) {
        self.truth_pixels += o.truth_pixels;
        self.detected_pixels += o.detected_pixels;
        self.hit_pixels += o.hit_pixels;
        self.truth_regions += o.truth_regions;
        self.found_regions += o.found_regions;
        self.detected_regions += o.detected_regions;
        self.true_regions += o.true_regions;
    }
}

/// Pooled detection counts and their ratios.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct DetectionSummary {
    #[serde(flatten)]
    pub counts: Detection,
    pub pixel_recall: Option<f64>,
    pub pixel_precision: Option<f64>,
    pub region_recall: Option<f64>,
    pub region_precision: Option<f64>,
}

impl DetectionSummary {
    pub fn of(c: Detection) -> Self {
        let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
        DetectionSummary {
            counts: c,
            pixel_recall: ratio(c.hit_pixels, c.truth_pixels),
            pixel_precision: ratio(c.hit_pixels, c.detected_pixels),
            region_recall: ratio(c.found_regions, c.truth_regions),
            region_precision: ratio(c.true_regions, c.detected_regions),
        }
    }
}

/// Everything `nitrate compare` found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CompareReport {
    pub reference: String,
    pub restored: String,
    pub mask: Option<String>,
    pub detected: Option<String>,
    pub margin: usize,
    pub frames: Vec<FrameReport>,
    pub summary: Summary,
}

impl CompareReport {
    /// The report as JSON (see the module documentation for how infinite PSNR is written).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a compare report always serialises")
    }
}

fn ser_db<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() {
        s.serialize_f64(*v)
    } else if *v == f64::INFINITY {
        s.serialize_str("inf")
    } else {
        s.serialize_none()
    }
}

fn ser_opt_db<S: serde::Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => ser_db(v, s),
        None => s.serialize_none(),
    }
}

/// Compare the sequences `opts` names.
pub fn run(opts: &CompareOptions) -> Result<CompareReport> {
    let reference = Sequence::discover(&opts.reference)
        .with_context(|| format!("reference frames {}", opts.reference.display()))?;
    let restored = Sequence::discover(&opts.restored)
        .with_context(|| format!("restored frames {}", opts.restored.display()))?;
    let restored_by_stem = by_stem(&restored)?;
    let ref_stems = by_stem(&reference)?;

    let missing: Vec<String> = reference
        .frames
        .iter()
        .map(|f| stem(&f.path))
        .filter(|s| !restored_by_stem.contains_key(s))
        .collect();
    let extra: Vec<String> = restored_by_stem
        .keys()
        .filter(|s| !ref_stems.contains_key(*s))
        .cloned()
        .collect();
    if !missing.is_empty() || !extra.is_empty() {
        let mut msg = format!(
            "the restored frames {} do not match the reference frames {} by name",
            restored.pattern, reference.pattern
        );
        if !missing.is_empty() {
            msg += &format!("; missing from the restored set: {}", name_list(&missing));
        }
        if !extra.is_empty() {
            msg += &format!("; restored frames with no reference: {}", name_list(&extra));
        }
        bail!(msg);
    }

    if opts.detected.is_some() && opts.mask.is_none() {
        bail!("repair masks (detected) are scored against truth masks: give the masks too");
    }
    let masks = match &opts.mask {
        Some(m) => Some(masks_by_stem(m, "mask", &reference)?),
        None => None,
    };
    let detected = match &opts.detected {
        Some(m) => Some(masks_by_stem(m, "repair mask", &reference)?),
        None => None,
    };

    struct Job {
        name: String,
        reference: PathBuf,
        restored: PathBuf,
        mask: Option<PathBuf>,
        detected: Option<PathBuf>,
    }
    let jobs: Vec<Job> = reference
        .frames
        .iter()
        .map(|f| {
            let name = stem(&f.path);
            Job {
                restored: restored_by_stem[&name].clone(),
                mask: masks.as_ref().map(|m| m[&name].clone()),
                detected: detected.as_ref().map(|m| m[&name].clone()),
                reference: f.path.clone(),
                name,
            }
        })
        .collect();

    // Headers first: sizes that cannot match fail before any pixels are decoded.
    let checked: Vec<Result<()>> = jobs
        .par_iter()
        .map(|j| {
            let a = read_info(&j.reference)?;
            let b = read_info(&j.restored)?;
            if (a.width, a.height, a.planes) != (b.width, b.height, b.planes) {
                bail!(
                    "{}: {}x{} with {} planes, but its reference {} is {}x{} with {} planes",
                    j.restored.display(),
                    b.width,
                    b.height,
                    b.planes,
                    j.reference.display(),
                    a.width,
                    a.height,
                    a.planes
                );
            }
            for m in j.mask.iter().chain(&j.detected) {
                let mi = read_info(m)?;
                if (mi.width, mi.height) != (a.width, a.height) {
                    bail!(
                        "{}: mask is {}x{} but its frame {} is {}x{}",
                        m.display(),
                        mi.width,
                        mi.height,
                        j.reference.display(),
                        a.width,
                        a.height
                    );
                }
            }
            if 2 * opts.margin >= a.width || 2 * opts.margin >= a.height {
                bail!(
                    "a margin of {} px leaves nothing of the {}x{} frame {}",
                    opts.margin,
                    a.width,
                    a.height,
                    j.reference.display()
                );
            }
            Ok(())
        })
        .collect();
    checked.into_iter().collect::<Result<Vec<()>>>()?;

    // A few frames at a time (each measure is itself parallel), so that memory stays bounded
    // on long 4K sequences; the first failing frame in order is the one reported.
    let mut frames = Vec::with_capacity(jobs.len());
    for chunk in jobs.chunks(rayon::current_num_threads().max(2)) {
        let measured: Vec<Result<FrameReport>> = chunk
            .par_iter()
            .map(|j| {
                let a = read_frame(&j.reference)?;
                let b = read_frame(&j.restored)?;
                let mask = match &j.mask {
                    Some(m) => Some(mask_flags(&read_frame(m)?)),
                    None => None,
                };
                let mut report = measure_frame(&j.name, &a, &b, mask.as_deref(), opts.margin)
                    .with_context(|| {
                        format!("{} against {}", j.restored.display(), j.reference.display())
                    })?;
                if let (Some(truth), Some(d)) = (&mask, &j.detected) {
                    let repaired = mask_flags(&read_frame(d)?);
                    let (w, h) = (a.width, a.height);
                    let inner = |m: &[bool]| crop_flags(m, w, h, opts.margin);
                    report.detection = Some(Detection::of(
                        &inner(truth),
                        &inner(&repaired),
                        w - 2 * opts.margin,
                    ));
                }
                Ok(report)
            })
            .collect();
        for m in measured {
            frames.push(m?);
        }
    }
    let summary = summarise(&frames);
    Ok(CompareReport {
        reference: reference.pattern,
        restored: restored.pattern,
        mask: opts.mask.as_ref().map(|m| m.display().to_string()),
        detected: opts.detected.as_ref().map(|m| m.display().to_string()),
        margin: opts.margin,
        frames,
        summary,
    })
}

/// Masks in `dir` by stem, one for every reference frame.
fn masks_by_stem(
    dir: &Path,
    what: &str,
    reference: &Sequence,
) -> Result<BTreeMap<String, PathBuf>> {
    let seq =
        Sequence::discover(dir).with_context(|| format!("{what} frames {}", dir.display()))?;
    let map = by_stem(&seq)?;
    let missing: Vec<String> = reference
        .frames
        .iter()
        .map(|f| stem(&f.path))
        .filter(|s| !map.contains_key(s))
        .collect();
    if !missing.is_empty() {
        bail!(
            "{}: no {what} for frame {} ({what}s are matched to frames by name)",
            seq.pattern,
            name_list(&missing)
        );
    }
    Ok(map)
}

/// The flags of a `width` x `height` mask inside a border of `margin` pixels.
fn crop_flags(mask: &[bool], width: usize, height: usize, margin: usize) -> Vec<bool> {
    (margin..height - margin)
        .flat_map(|y| {
            mask[y * width + margin..(y + 1) * width - margin]
                .iter()
                .copied()
        })
        .collect()
}

/// Per-pixel mask flags from a decoded mask image: a pixel is inside if any plane is nonzero.
pub fn mask_flags(mask: &Frame) -> Vec<bool> {
    let n = mask.plane_len();
    (0..n)
        .map(|i| (0..mask.planes).any(|p| mask.data[p * n + i] > 0.0))
        .collect()
}

/// Measure one frame pair (and its mask flags, one per pixel), after cropping `margin` pixels
/// from every side.
pub fn measure_frame(
    name: &str,
    reference: &Frame,
    restored: &Frame,
    mask: Option<&[bool]>,
    margin: usize,
) -> Result<FrameReport> {
    if (reference.width, reference.height, reference.planes)
        != (restored.width, restored.height, restored.planes)
    {
        bail!(
            "{name}: restored frame is {} but the reference is {}",
            restored.shape(),
            reference.shape()
        );
    }
    let (w, h) = (reference.width, reference.height);
    if 2 * margin >= w || 2 * margin >= h {
        bail!("{name}: a margin of {margin} px leaves nothing of a {w}x{h} frame");
    }
    if let Some(m) = mask {
        if m.len() != w * h {
            bail!(
                "{name}: mask has {} pixels but the frame has {w}x{h}",
                m.len()
            );
        }
    }
    let a = metrics::crop(reference, margin);
    let b = metrics::crop(restored, margin);
    let masked = mask.map(|m| metrics::masked_error(&a, &b, &crop_flags(m, w, h, margin), 0));
    let ((mse, ssim), (offset, luma_error)) = rayon::join(
        || rayon::join(|| metrics::mse(&a, &b), || metrics::ssim(&a, &b)),
        || {
            rayon::join(
                || metrics::estimate_translation(&a, &b),
                || metrics::mean_luma(&b) - metrics::mean_luma(&a),
            )
        },
    );
    Ok(FrameReport {
        name: name.to_string(),
        psnr: metrics::psnr_from_mse(mse),
        mse,
        samples: a.data.len() as u64,
        ssim,
        psnr_in_mask: masked.and_then(|m| m.psnr_in()),
        psnr_out_mask: masked.and_then(|m| m.psnr_out()),
        mask: masked,
        detection: None,
        dx: offset.0,
        dy: offset.1,
        luma_error,
    })
}

/// The sequence measures of frames in order.
pub fn summarise(frames: &[FrameReport]) -> Summary {
    let n = frames.len();
    let nf = n.max(1) as f64;
    let samples: u64 = frames.iter().map(|f| f.samples).sum();
    let pooled_sq: f64 = frames.iter().map(|f| f.mse * f.samples as f64).sum();
    let pooled_mse = pooled_sq / samples.max(1) as f64;
    let mut pooled_mask: Option<MaskedSums> = None;
    for f in frames {
        if let Some(m) = &f.mask {
            pooled_mask.get_or_insert_with(MaskedSums::default).add(m);
        }
    }
    let dx: Vec<f64> = frames.iter().map(|f| f.dx).collect();
    let dy: Vec<f64> = frames.iter().map(|f| f.dy).collect();
    let (shake_x, shake_y) = (residual_shake(&dx), residual_shake(&dy));
    let luma: Vec<f64> = frames.iter().map(|f| f.luma_error).collect();
    let (flicker_rms, flicker_max) = flicker(&luma);
    let mut detection: Option<Detection> = None;
    for d in frames.iter().filter_map(|f| f.detection.as_ref()) {
        detection.get_or_insert_with(Detection::default).add(d);
    }
    Summary {
        frames: n,
        mean_psnr: if n == 0 {
            f64::NAN
        } else {
            frames.iter().map(|f| f.psnr).sum::<f64>() / nf
        },
        pooled_psnr: if n == 0 {
            f64::NAN
        } else {
            metrics::psnr_from_mse(pooled_mse)
        },
        mean_ssim: frames.iter().map(|f| f.ssim).sum::<f64>() / nf,
        psnr_in_mask: pooled_mask.and_then(|m| m.psnr_in()),
        psnr_out_mask: pooled_mask.and_then(|m| m.psnr_out()),
        shake_px: (shake_x * shake_x + shake_y * shake_y).sqrt(),
        shake_x_px: shake_x,
        shake_y_px: shake_y,
        flicker_rms,
        flicker_max,
        mean_luma_error: luma.iter().sum::<f64>() / nf,
        detection: detection.map(DetectionSummary::of),
    }
}

/// The drift of a series: a centred moving average over [`DRIFT_WINDOW`] values, indices
/// clamped to the series (the end values repeated).
pub fn drift(values: &[f64]) -> Vec<f64> {
    let n = values.len() as i64;
    let r = (DRIFT_WINDOW / 2) as i64;
    (0..n)
        .map(|t| {
            (-r..=r)
                .map(|k| values[(t + k).clamp(0, n - 1) as usize])
                .sum::<f64>()
                / (2 * r + 1) as f64
        })
        .collect()
}

/// RMS of a series after subtracting its [`drift`].
pub fn residual_shake(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let m = drift(values);
    (values
        .iter()
        .zip(&m)
        .map(|(v, m)| (v - m).powi(2))
        .sum::<f64>()
        / values.len() as f64)
        .sqrt()
}

/// RMS and largest absolute value of the frame-to-frame differences `e_t - e_{t-1}`; zeros for
/// fewer than two values.
pub fn flicker(errors: &[f64]) -> (f64, f64) {
    if errors.len() < 2 {
        return (0.0, 0.0);
    }
    let d: Vec<f64> = errors.windows(2).map(|w| w[1] - w[0]).collect();
    let rms = (d.iter().map(|v| v * v).sum::<f64>() / d.len() as f64).sqrt();
    let max = d.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    (rms, max)
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn by_stem(seq: &Sequence) -> Result<BTreeMap<String, PathBuf>> {
    let mut map = BTreeMap::new();
    for f in &seq.frames {
        if let Some(prev) = map.insert(stem(&f.path), f.path.clone()) {
            bail!(
                "{} and {} have the same name apart from the extension",
                prev.display(),
                f.path.display()
            );
        }
    }
    Ok(map)
}

/// "a, b, c" or "a, b, c, d, e and 12 more".
fn name_list(names: &[String]) -> String {
    const SHOWN: usize = 5;
    let head = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        format!("{head} and {} more", names.len() - SHOWN)
    } else {
        head
    }
}

/// dB as text: "inf" for identical, "-" where undefined.
fn db(v: Option<f64>) -> String {
    match v {
        Some(v) if v == f64::INFINITY => "inf".to_string(),
        Some(v) if v.is_finite() => format!("{v:.2}"),
        _ => "-".to_string(),
    }
}

impl fmt::Display for CompareReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let masks = self.mask.is_some();
        writeln!(f, "reference {}", self.reference)?;
        writeln!(f, "restored  {}", self.restored)?;
        if let Some(m) = &self.mask {
            writeln!(f, "masks     {m}")?;
        }
        if self.margin > 0 {
            writeln!(f, "margin    {} px left out on every side", self.margin)?;
        }
        let width = self
            .frames
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        write!(f, "{:<width$} {:>8} {:>7}", "frame", "PSNR dB", "SSIM")?;
        if masks {
            write!(f, " {:>8} {:>8}", "in mask", "outside")?;
        }
        writeln!(f, " {:>8} {:>8} {:>9}", "dx px", "dy px", "luma err")?;
        for r in &self.frames {
            write!(
                f,
                "{:<width$} {:>8} {:>7.4}",
                r.name,
                db(Some(r.psnr)),
                r.ssim
            )?;
            if masks {
                write!(f, " {:>8} {:>8}", db(r.psnr_in_mask), db(r.psnr_out_mask))?;
            }
            writeln!(f, " {:>8.3} {:>8.3} {:>+9.5}", r.dx, r.dy, r.luma_error)?;
        }
        let s = &self.summary;
        writeln!(
            f,
            "summary over {} frame{}",
            s.frames,
            if s.frames == 1 { "" } else { "s" }
        )?;
        writeln!(
            f,
            "  PSNR     {} dB mean of frames, {} dB pooled",
            db(Some(s.mean_psnr)),
            db(Some(s.pooled_psnr))
        )?;
        writeln!(f, "  SSIM     {:.4} mean", s.mean_ssim)?;
        if masks {
            writeln!(
                f,
                "  masks    {} dB inside, {} dB outside",
                db(s.psnr_in_mask),
                db(s.psnr_out_mask)
            )?;
        }
        if let Some(d) = &s.detection {
            let c = &d.counts;
            let pct = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{:.3}", r));
            writeln!(
                f,
                "  detected pixels: recall {} ({} of {}), precision {} ({} of {} repaired)",
                pct(d.pixel_recall),
                c.hit_pixels,
                c.truth_pixels,
                pct(d.pixel_precision),
                c.hit_pixels,
                c.detected_pixels
            )?;
            writeln!(
                f,
                "  detected regions: recall {} ({} of {}), precision {} ({} of {} touch a defect)",
                pct(d.region_recall),
                c.found_regions,
                c.truth_regions,
                pct(d.region_precision),
                c.true_regions,
                c.detected_regions
            )?;
        }
        writeln!(
            f,
            "  shake    {:.3} px RMS after removing drift ({DRIFT_WINDOW}-frame moving average); x {:.3}, y {:.3}",
            s.shake_px, s.shake_x_px, s.shake_y_px
        )?;
        write!(
            f,
            "  flicker  {:.5} RMS, {:.5} max frame-to-frame change of the luma error (mean {:+.5})",
            s.flicker_rms, s.flicker_max, s.mean_luma_error
        )
    }
}
