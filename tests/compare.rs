//! `nitrate compare`'s engine: known answers for every measure, on seeded synthetic frames
//! written to disk in the formats the command reads.

use std::path::{Path, PathBuf};

use nitrate::compare::{self, CompareOptions};
use nitrate::frame::{Frame, FrameMeta};
use nitrate::io::{write_frame, OutputFormat};
use nitrate::metrics;
use nitrate::synth::{hash01, scene_frame};

const EXR32: OutputFormat = OutputFormat::Exr { half: false };

fn write_seq(dir: &Path, frames: &[Frame], format: OutputFormat) {
    std::fs::create_dir_all(dir).unwrap();
    for (i, f) in frames.iter().enumerate() {
        let path = dir.join(format!("{:06}.{}", i + 1, format.extension()));
        write_frame(&path, f, format).unwrap();
    }
}

fn opts(reference: &Path, restored: &Path, mask: Option<&Path>, margin: usize) -> CompareOptions {
    CompareOptions {
        reference: reference.to_path_buf(),
        restored: restored.to_path_buf(),
        mask: mask.map(Path::to_path_buf),
        detected: None,
        margin,
    }
}

/// A scene frame with every value rounded to a multiple of 2^-12, so that adding 2^-6 and
/// subtracting again are exact in `f32` and the error of every sample is exactly known.
fn dyadic_scene(w: usize, h: usize, planes: usize, t: usize) -> Frame {
    let mut f = scene_frame(w, h, planes, t, 7);
    for v in &mut f.data {
        *v = (*v * 4096.0).round() / 4096.0;
    }
    f
}

fn mask_frame(w: usize, h: usize, inside: impl Fn(usize, usize) -> bool) -> Frame {
    let mut m = Frame::new(w, h, 1, FrameMeta::default());
    for y in 0..h {
        for x in 0..w {
            m.set(0, x, y, if inside(x, y) { 1.0 } else { 0.0 });
        }
    }
    m
}

fn dirs() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, m) = (
        tmp.path().join("ref"),
        tmp.path().join("out"),
        tmp.path().join("mask"),
    );
    (tmp, a, b, m)
}

#[test]
fn identical_sequences_are_infinite_psnr_and_ssim_one() {
    let (_tmp, a, b, _) = dirs();
    let frames: Vec<Frame> = (0..5).map(|t| scene_frame(72, 56, 3, t, 3)).collect();
    // Different formats, same 16-bit codes: matched by stem, decoded to the same values.
    write_seq(&a, &frames, OutputFormat::Png { bits: 16 });
    write_seq(&b, &frames, OutputFormat::Tiff { bits: 16 });
    let report = compare::run(&opts(&a, &b, None, 0)).unwrap();
    assert_eq!(report.frames.len(), 5);
    for f in &report.frames {
        assert_eq!(f.psnr, f64::INFINITY, "{}", f.name);
        assert_eq!(f.ssim, 1.0, "{}", f.name);
        assert_eq!((f.dx, f.dy), (0.0, 0.0), "{}", f.name);
        assert_eq!(f.luma_error, 0.0);
        assert_eq!((f.psnr_in_mask, f.psnr_out_mask), (None, None));
    }
    let s = &report.summary;
    assert_eq!(
        (s.mean_psnr, s.pooled_psnr, s.mean_ssim),
        (f64::INFINITY, f64::INFINITY, 1.0)
    );
    assert_eq!((s.shake_px, s.flicker_rms, s.flicker_max), (0.0, 0.0, 0.0));
    let json = report.to_json();
    assert_eq!(json["summary"]["mean_psnr"], "inf");
    assert_eq!(json["frames"][0]["psnr"], "inf");
    assert!(json["summary"]["psnr_in_mask"].is_null());
    assert_eq!(json["summary"]["mean_ssim"], 1.0);
    let table = report.to_string();
    assert!(table.contains("inf"), "{table}");
    assert_eq!(table.matches("000003").count(), 1, "{table}");
}

#[test]
fn uniform_error_gives_exact_psnr_and_alternating_flicker() {
    let (_tmp, a, b, _) = dirs();
    let e = 1.0 / 64.0f32;
    let n = 8;
    let reference: Vec<Frame> = (0..n).map(|t| dyadic_scene(64, 48, 3, t)).collect();
    // Every sample off by exactly +e on even frames and -e on odd ones.
    let restored: Vec<Frame> = reference
        .iter()
        .enumerate()
        .map(|(t, f)| {
            let mut g = f.clone();
            let s = if t % 2 == 0 { e } else { -e };
            g.data.iter_mut().for_each(|v| *v += s);
            g
        })
        .collect();
    write_seq(&a, &reference, EXR32);
    write_seq(&b, &restored, EXR32);
    let report = compare::run(&opts(&a, &b, None, 0)).unwrap();
    let want = -10.0 * ((e as f64) * (e as f64)).log10();
    for f in &report.frames {
        assert!(
            (f.psnr - want).abs() < 1e-6,
            "{}: {} dB, want {want}",
            f.name,
            f.psnr
        );
        assert!(
            (f.luma_error.abs() - e as f64).abs() < 1e-6,
            "{}: luma error {}",
            f.name,
            f.luma_error
        );
        assert!(
            f.dx.abs() < 0.01 && f.dy.abs() < 0.01,
            "{}: offset {} {}",
            f.name,
            f.dx,
            f.dy
        );
    }
    let s = &report.summary;
    assert!((s.mean_psnr - want).abs() < 1e-6, "{}", s.mean_psnr);
    assert!((s.pooled_psnr - want).abs() < 1e-6, "{}", s.pooled_psnr);
    // e_t alternates +e, -e: every e_t - e_{t-1} is +-2e.
    let flicker = 2.0 * e as f64;
    assert!(
        (s.flicker_rms - flicker).abs() < 1e-6 * flicker,
        "{} vs {flicker}",
        s.flicker_rms
    );
    assert!(
        (s.flicker_max - flicker).abs() < 1e-6 * flicker,
        "{} vs {flicker}",
        s.flicker_max
    );
    assert!(s.mean_ssim < 1.0 && s.mean_ssim > 0.9, "{}", s.mean_ssim);
}

#[test]
fn flicker_and_shake_formulas() {
    // Flicker of a steady error is zero; of alternating +-e it is 2e, RMS and max.
    assert_eq!(compare::flicker(&[0.3; 10]), (0.0, 0.0));
    let alt: Vec<f64> = (0..11)
        .map(|t| if t % 2 == 0 { 0.01 } else { -0.01 })
        .collect();
    let (rms, max) = compare::flicker(&alt);
    assert!((rms - 0.02).abs() < 1e-15 && (max - 0.02).abs() < 1e-15);
    // A ramp with a step of 0.004 in one frame: differences 0,...,0.004,...: RMS = 0.004/sqrt(n-1).
    let mut step = vec![0.0; 11];
    step[5..].iter_mut().for_each(|v| *v = 0.004);
    let (rms, max) = compare::flicker(&step);
    assert!((rms - 0.004 / 10f64.sqrt()).abs() < 1e-15 && (max - 0.004).abs() < 1e-15);
    // Drift: a straight line is its own 9-frame average away from the ends.
    let line: Vec<f64> = (0..30).map(|t| 0.1 * t as f64 + 2.0).collect();
    let d = compare::drift(&line);
    for t in 4..26 {
        assert!((d[t] - line[t]).abs() < 1e-12);
    }
    // Ends repeat the end values: at t = 0 the average is (5 * 0 + 1 + 2 + 3 + 4) / 9 steps.
    assert!((d[0] - (2.0 + 0.1 * 10.0 / 9.0)).abs() < 1e-12, "{}", d[0]);
    assert_eq!(compare::residual_shake(&[1.5; 12]), 0.0);
}

/// Box average of `ss x ss` blocks of `hi` (a `ss`-times supersampled frame) starting at
/// (`ox`, `oy`) hi-res pixels: the picture moved by `(-ox / ss, -oy / ss)` low-res pixels,
/// exactly, as a sensor integrating the same scene at a shifted position would see it.
fn box_down(hi: &Frame, ss: usize, w: usize, h: usize, ox: usize, oy: usize) -> Frame {
    let mut f = Frame::new(w, h, hi.planes, FrameMeta::default());
    let norm = 1.0 / (ss * ss) as f64;
    for p in 0..hi.planes {
        let src = hi.plane(p);
        for y in 0..h {
            for x in 0..w {
                let mut s = 0.0f64;
                for j in 0..ss {
                    let row = (oy + y * ss + j) * hi.width + ox + x * ss;
                    s += src[row..row + ss].iter().map(|&v| v as f64).sum::<f64>();
                }
                f.set(p, x, y, (s * norm) as f32);
            }
        }
    }
    f
}

#[test]
fn known_subpixel_shifts_and_jitter_are_measured() {
    let (_tmp, a, b, _) = dirs();
    const SS: usize = 8; // offsets in steps of 1/8 px
    let (w, h, pad, n) = (160usize, 120usize, 4usize, 24usize);
    let hi = scene_frame(SS * (w + 2 * pad), SS * (h + 2 * pad), 1, 0, 11);
    let origin = SS * pad;
    let reference = box_down(&hi, SS, w, h, origin, origin);
    // Slow drift plus seeded jitter of up to 0.6 px, quantised to the 1/8 px steps.
    let q = |v: f64| (v * SS as f64).round() / SS as f64;
    let truth: Vec<(f64, f64)> = (0..n)
        .map(|t| {
            let jx = 0.6 * (2.0 * hash01(t as u64, 0, 1, 5) as f64 - 1.0);
            let jy = 0.6 * (2.0 * hash01(t as u64, 1, 1, 5) as f64 - 1.0);
            (q(0.04 * t as f64 + jx), q(-0.03 * t as f64 + jy))
        })
        .collect();
    let restored: Vec<Frame> = truth
        .iter()
        .map(|&(dx, dy)| {
            let ox = origin as i64 - (dx * SS as f64).round() as i64;
            let oy = origin as i64 - (dy * SS as f64).round() as i64;
            box_down(&hi, SS, w, h, ox as usize, oy as usize)
        })
        .collect();
    write_seq(&a, &vec![reference; n], EXR32);
    write_seq(&b, &restored, EXR32);
    let report = compare::run(&opts(&a, &b, None, 0)).unwrap();
    let mut worst = 0.0f64;
    for (f, &(dx, dy)) in report.frames.iter().zip(&truth) {
        let err = (f.dx - dx).abs().max((f.dy - dy).abs());
        worst = worst.max(err);
        assert!(
            err < 0.05,
            "{}: measured ({:.4}, {:.4}), planted ({dx}, {dy})",
            f.name,
            f.dx,
            f.dy
        );
    }
    eprintln!("largest offset error {worst:.4} px");
    // The planted jitter: what is left of the truth after its slow drift (a line) is removed.
    let jitter_rms = (truth
        .iter()
        .enumerate()
        .map(|(t, &(dx, dy))| (dx - 0.04 * t as f64).powi(2) + (dy + 0.03 * t as f64).powi(2))
        .sum::<f64>()
        / n as f64)
        .sqrt();
    let s = &report.summary;
    assert!(
        (s.shake_px - jitter_rms).abs() < 0.1 * jitter_rms,
        "shake {:.4} px, planted jitter RMS {jitter_rms:.4} px",
        s.shake_px
    );
    // And exactly the formula applied to the planted offsets, up to the measurement error.
    let tx: Vec<f64> = truth.iter().map(|t| t.0).collect();
    let ty: Vec<f64> = truth.iter().map(|t| t.1).collect();
    let want = compare::residual_shake(&tx).hypot(compare::residual_shake(&ty));
    assert!(
        (s.shake_px - want).abs() < 0.02,
        "shake {:.4} px, formula on the truth {want:.4} px",
        s.shake_px
    );
}

#[test]
fn translation_estimate_on_integer_and_large_shifts() {
    // Larger than one pyramid level: exercises phase correlation and the pyramid.
    let (w, h) = (600usize, 400usize);
    let big = scene_frame(w + 80, h + 80, 1, 0, 21);
    let cut = |ox: usize, oy: usize| {
        let mut f = Frame::new(w, h, 1, FrameMeta::default());
        for y in 0..h {
            for x in 0..w {
                f.set(0, x, y, big.get(0, x + ox, y + oy));
            }
        }
        f
    };
    let reference = cut(40, 40);
    for (ox, oy) in [(40usize, 40usize), (17, 52), (73, 5), (40, 79)] {
        let (dx, dy) = metrics::estimate_translation(&reference, &cut(ox, oy));
        let (wx, wy) = (40.0 - ox as f64, 40.0 - oy as f64);
        assert!(
            (dx - wx).abs() < 0.05 && (dy - wy).abs() < 0.05,
            "({dx}, {dy}) want ({wx}, {wy})"
        );
    }
}

#[test]
fn masks_split_the_error() {
    let (_tmp, a, b, m) = dirs();
    let (w, h) = (64usize, 48usize);
    let e = 1.0 / 64.0f32;
    let inside = |t: usize| {
        move |x: usize, y: usize| {
            (10 + t..20 + t).contains(&x) && (5..30).contains(&y) || (x == 50 && y == 40)
        }
    };
    let reference: Vec<Frame> = (0..4).map(|t| dyadic_scene(w, h, 3, t)).collect();
    let restored: Vec<Frame> = reference
        .iter()
        .enumerate()
        .map(|(t, f)| {
            let mut g = f.clone();
            let mask = inside(t);
            for p in 0..3 {
                for y in 0..h {
                    for x in 0..w {
                        if mask(x, y) {
                            g.set(p, x, y, f.get(p, x, y) + e);
                        }
                    }
                }
            }
            g
        })
        .collect();
    let masks: Vec<Frame> = (0..4).map(|t| mask_frame(w, h, inside(t))).collect();
    write_seq(&a, &reference, EXR32);
    write_seq(&b, &restored, EXR32);
    write_seq(&m, &masks, OutputFormat::Png { bits: 8 });
    let report = compare::run(&opts(&a, &b, Some(&m), 0)).unwrap();
    let want_in = -10.0 * ((e as f64).powi(2)).log10();
    for f in &report.frames {
        assert_eq!(f.psnr_out_mask, Some(f64::INFINITY), "{}", f.name);
        assert!(
            (f.psnr_in_mask.unwrap() - want_in).abs() < 1e-6,
            "{}: {:?}",
            f.name,
            f.psnr_in_mask
        );
        let sums = f.mask.unwrap();
        assert_eq!(sums.n_in, 3 * (10 * 25 + 1));
        assert_eq!(sums.n_in + sums.n_out, 3 * (w * h) as u64);
        // The whole-frame PSNR sees the same error diluted over all pixels.
        let frac = (10.0 * 25.0 + 1.0) / (w * h) as f64;
        assert!((f.psnr - (want_in - 10.0 * frac.log10())).abs() < 1e-6);
    }
    let s = &report.summary;
    assert_eq!(s.psnr_out_mask, Some(f64::INFINITY));
    assert!((s.psnr_in_mask.unwrap() - want_in).abs() < 1e-6);
    let json = report.to_json();
    assert_eq!(json["summary"]["psnr_out_mask"], "inf");
    assert!(report.to_string().contains("in mask"));

    // The error planted outside the mask instead: inside is perfect, outside is not.
    let (_tmp2, a2, b2, m2) = dirs();
    write_seq(&a2, &reference, EXR32);
    write_seq(&b2, &restored, EXR32);
    let inverted: Vec<Frame> = (0..4)
        .map(|t| mask_frame(w, h, |x, y| !inside(t)(x, y)))
        .collect();
    write_seq(&m2, &inverted, OutputFormat::Png { bits: 8 });
    let report = compare::run(&opts(&a2, &b2, Some(&m2), 0)).unwrap();
    assert_eq!(report.summary.psnr_in_mask, Some(f64::INFINITY));
    assert!((report.summary.psnr_out_mask.unwrap() - want_in).abs() < 1e-6);

    // An empty mask: nothing inside, so no PSNR inside.
    let empty: Vec<Frame> = (0..4).map(|_| mask_frame(w, h, |_, _| false)).collect();
    write_seq(&m2, &empty, OutputFormat::Png { bits: 8 });
    let report = compare::run(&opts(&a2, &b2, Some(&m2), 0)).unwrap();
    assert!(report.frames.iter().all(|f| f.psnr_in_mask.is_none()));
    assert_eq!(report.summary.psnr_in_mask, None);
    assert!(report.to_json()["summary"]["psnr_in_mask"].is_null());
}

#[test]
fn margin_leaves_out_the_border() {
    let (_tmp, a, b, m) = dirs();
    let (w, h, border) = (60usize, 44usize, 3usize);
    let reference: Vec<Frame> = (0..3).map(|t| dyadic_scene(w, h, 1, t)).collect();
    // Damage only the outer 3 pixels, as a stabiliser's edges would be.
    let restored: Vec<Frame> = reference
        .iter()
        .map(|f| {
            let mut g = f.clone();
            for y in 0..h {
                for x in 0..w {
                    if x < border || y < border || x >= w - border || y >= h - border {
                        g.set(0, x, y, 0.0);
                    }
                }
            }
            g
        })
        .collect();
    let masks: Vec<Frame> = (0..3)
        .map(|_| mask_frame(w, h, |x, y| x < w / 2 && y < h / 2))
        .collect();
    write_seq(&a, &reference, EXR32);
    write_seq(&b, &restored, EXR32);
    write_seq(&m, &masks, OutputFormat::Png { bits: 8 });
    let report = compare::run(&opts(&a, &b, Some(&m), border)).unwrap();
    for f in &report.frames {
        assert_eq!(f.psnr, f64::INFINITY, "{}", f.name);
        assert_eq!(f.ssim, 1.0);
        assert_eq!(
            (f.psnr_in_mask, f.psnr_out_mask),
            (Some(f64::INFINITY), Some(f64::INFINITY))
        );
        assert_eq!(f.samples, ((w - 2 * border) * (h - 2 * border)) as u64);
    }
    assert!(report.to_string().contains("margin"));
    let report = compare::run(&opts(&a, &b, Some(&m), border - 1)).unwrap();
    for f in &report.frames {
        assert!(f.psnr.is_finite() && f.ssim < 1.0);
        assert!(f.psnr_in_mask.unwrap().is_finite() && f.psnr_out_mask.unwrap().is_finite());
    }
    let err = compare::run(&opts(&a, &b, None, h / 2)).unwrap_err();
    assert!(format!("{err:#}").contains("margin of 22 px"), "{err:#}");
}

#[test]
fn mismatched_names_and_sizes_are_clear_errors() {
    let (tmp, a, b, m) = dirs();
    let frames: Vec<Frame> = (0..4).map(|t| scene_frame(40, 32, 3, t, 1)).collect();
    write_seq(&a, &frames, OutputFormat::Png { bits: 16 });
    write_seq(&b, &frames[..3], OutputFormat::Png { bits: 16 });
    let msg = format!("{:#}", compare::run(&opts(&a, &b, None, 0)).unwrap_err());
    assert!(
        msg.contains("missing from the restored set: 000004"),
        "{msg}"
    );

    // An extra restored frame with no reference.
    write_seq(&b, &frames, OutputFormat::Png { bits: 16 });
    write_frame(
        &b.join("000005.png"),
        &frames[0],
        OutputFormat::Png { bits: 16 },
    )
    .unwrap();
    let msg = format!("{:#}", compare::run(&opts(&a, &b, None, 0)).unwrap_err());
    assert!(
        msg.contains("restored frames with no reference: 000005"),
        "{msg}"
    );
    std::fs::remove_file(b.join("000005.png")).unwrap();

    // A frame of the wrong size, named with both sizes.
    write_frame(
        &b.join("000002.png"),
        &scene_frame(40, 30, 3, 1, 1),
        OutputFormat::Png { bits: 16 },
    )
    .unwrap();
    let msg = format!("{:#}", compare::run(&opts(&a, &b, None, 0)).unwrap_err());
    assert!(
        msg.contains("000002.png") && msg.contains("40x30") && msg.contains("40x32"),
        "{msg}"
    );
    write_frame(
        &b.join("000002.png"),
        &frames[1],
        OutputFormat::Png { bits: 16 },
    )
    .unwrap();
    // Mono against colour.
    write_frame(
        &b.join("000003.png"),
        &scene_frame(40, 32, 1, 2, 1),
        OutputFormat::Png { bits: 16 },
    )
    .unwrap();
    let msg = format!("{:#}", compare::run(&opts(&a, &b, None, 0)).unwrap_err());
    assert!(
        msg.contains("000003.png") && msg.contains("1 planes") && msg.contains("3 planes"),
        "{msg}"
    );
    write_frame(
        &b.join("000003.png"),
        &frames[2],
        OutputFormat::Png { bits: 16 },
    )
    .unwrap();
    assert!(compare::run(&opts(&a, &b, None, 0)).is_ok());

    // Masks: one missing, one of the wrong size.
    let masks: Vec<Frame> = (0..3).map(|_| mask_frame(40, 32, |x, _| x < 5)).collect();
    write_seq(&m, &masks, OutputFormat::Png { bits: 8 });
    let msg = format!(
        "{:#}",
        compare::run(&opts(&a, &b, Some(&m), 0)).unwrap_err()
    );
    assert!(msg.contains("no mask for frame 000004"), "{msg}");
    write_frame(
        &m.join("000004.png"),
        &mask_frame(32, 32, |_, _| true),
        OutputFormat::Png { bits: 8 },
    )
    .unwrap();
    let msg = format!(
        "{:#}",
        compare::run(&opts(&a, &b, Some(&m), 0)).unwrap_err()
    );
    assert!(
        msg.contains("000004.png") && msg.contains("mask is 32x32") && msg.contains("40x32"),
        "{msg}"
    );

    // Nothing to compare at all.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let msg = format!(
        "{:#}",
        compare::run(&opts(&a, &empty, None, 0)).unwrap_err()
    );
    assert!(
        msg.contains("restored frames") && msg.contains("no numbered frame files"),
        "{msg}"
    );
}

#[test]
fn ssim_known_values() {
    // A constant offset c on flat frames: luminance term only, (2 mu (mu + c) + C1) / (mu^2 + (mu + c)^2 + C1).
    let (w, h) = (32usize, 32usize);
    let a = Frame {
        data: vec![0.4; w * h],
        ..Frame::new(w, h, 1, FrameMeta::default())
    };
    let b = Frame {
        data: vec![0.5; w * h],
        ..Frame::new(w, h, 1, FrameMeta::default())
    };
    let (mu, nu, c1) = (0.4f32 as f64, 0.5f32 as f64, 1e-4);
    let want = (2.0 * mu * nu + c1) / (mu * mu + nu * nu + c1);
    assert!((metrics::ssim(&a, &b) - want).abs() < 1e-9);
    // Structure destroyed: a frame against its negative around the mean is strongly negative.
    let t = scene_frame(64, 48, 1, 0, 2);
    let mut neg = t.clone();
    let mean = metrics::mean_luma(&t) as f32;
    neg.data.iter_mut().for_each(|v| *v = 2.0 * mean - *v);
    assert!(metrics::ssim(&t, &neg) < 0.0);
    assert_eq!(metrics::ssim(&t, &t), 1.0);
}

#[test]
fn translation_of_a_band_limited_pattern_is_exact() {
    // A smooth pattern evaluated at shifted coordinates: an exact sub-pixel translation with no
    // aliasing, so the estimate should be within a few thousandths of a pixel.
    let (w, h) = (120usize, 90usize);
    let pattern = |dx: f64, dy: f64| {
        let mut f = Frame::new(w, h, 1, FrameMeta::default());
        for y in 0..h {
            for x in 0..w {
                let (u, v) = (x as f64 - dx, y as f64 - dy);
                let val = 0.5
                    + 0.1 * (u * 0.31 + v * 0.17).sin()
                    + 0.1 * (u * 0.07 - v * 0.23).cos()
                    + 0.05 * (u * 0.53 + v * 0.41).sin();
                f.set(0, x, y, val as f32);
            }
        }
        f
    };
    let reference = pattern(0.0, 0.0);
    for (wx, wy) in [
        (0.1, -0.05),
        (0.25, 0.4),
        (-0.5, 0.33),
        (0.77, -0.9),
        (1.6, 2.3),
    ] {
        let (dx, dy) = metrics::estimate_translation(&reference, &pattern(wx, wy));
        assert!(
            (dx - wx).abs() < 0.01 && (dy - wy).abs() < 0.01,
            "({dx}, {dy}) want ({wx}, {wy})"
        );
    }
}

#[test]
fn translation_survives_ghosting_noise_and_spots() {
    // A temporal median of three jittered frames (as tmedian makes), with noise and dust, on a
    // frame large enough for a pyramid: once sent phase correlation to a false peak 200 px
    // away. The answer is ill-defined, but must stay near the jitter.
    let (w, h, pad) = (480usize, 208usize, 8usize);
    let big = scene_frame(w + 2 * pad, h + 2 * pad, 1, 0, 31);
    let cut = |ox: i64, oy: i64| {
        let mut f = Frame::new(w, h, 1, FrameMeta::default());
        for y in 0..h {
            for x in 0..w {
                let (sx, sy) = (
                    (x as i64 + pad as i64 - ox) as usize,
                    (y as i64 + pad as i64 - oy) as usize,
                );
                f.set(0, x, y, big.get(0, sx, sy));
            }
        }
        f
    };
    let reference = cut(0, 0);
    let (a, b, c) = (cut(3, -2), cut(-2, 1), cut(1, 2));
    let mut ghost = Frame::new(w, h, 1, FrameMeta::default());
    for i in 0..w * h {
        let mut v = [a.data[i], b.data[i], c.data[i]];
        v.sort_by(f32::total_cmp);
        let noise = 0.08 * (hash01(i as u64, 0, 9, 4) - 0.5);
        let spot = if (i / w) % 50 < 6 && (i % w) % 90 < 8 {
            0.9
        } else {
            0.0
        };
        ghost.data[i] = (v[1] + noise).max(spot);
    }
    let (dx, dy) = metrics::estimate_translation(&reference, &ghost);
    assert!(dx.abs() < 3.0 && dy.abs() < 3.0, "({dx}, {dy})");
}

#[test]
fn detection_counts_pixels_and_regions_against_the_truth() {
    let (tmp, a, b, m) = dirs();
    let d = tmp.path().join("repaired");
    let (w, h) = (40, 30);
    let frames: Vec<Frame> = (0..2).map(|t| scene_frame(w, h, 3, t, 5)).collect();
    write_seq(&a, &frames, OutputFormat::Png { bits: 16 });
    write_seq(&b, &frames, OutputFormat::Png { bits: 16 });
    // Truth: a 4x4 square (16 px) and a diagonal pair (one 8-connected region of 2 px) in
    // frame 1; a 3x3 square (9 px) in frame 2.
    let square4 = |x: usize, y: usize| (5..9).contains(&x) && (5..9).contains(&y);
    let diagonal = |x: usize, y: usize| (x, y) == (20, 20) || (x, y) == (21, 21);
    let square3 = |x: usize, y: usize| (30..33).contains(&x) && (10..13).contains(&y);
    let truth = [
        mask_frame(w, h, |x, y| square4(x, y) || diagonal(x, y)),
        mask_frame(w, h, square3),
    ];
    // Repaired: half of the 4x4 square plus 4 px beside it (one region touching the truth),
    // and a false 2x1 region far away, in frame 1; nothing in frame 2.
    let repaired = [
        mask_frame(w, h, |x, y| {
            ((5..11).contains(&x) && (5..7).contains(&y)) || ((34..36).contains(&x) && y == 25)
        }),
        mask_frame(w, h, |_, _| false),
    ];
    write_seq(&m, &truth, OutputFormat::Png { bits: 8 });
    write_seq(&d, &repaired, OutputFormat::Png { bits: 8 });
    let mut o = opts(&a, &b, Some(&m), 0);
    o.detected = Some(d.clone());
    let report = compare::run(&o).unwrap();
    let f1 = report.frames[0].detection.unwrap();
    assert_eq!(
        (f1.truth_pixels, f1.detected_pixels, f1.hit_pixels),
        (18, 14, 8)
    );
    assert_eq!((f1.truth_regions, f1.found_regions), (2, 1));
    assert_eq!((f1.detected_regions, f1.true_regions), (2, 1));
    let s = report.summary.detection.unwrap();
    assert_eq!(s.counts.truth_pixels, 27);
    assert_eq!(s.pixel_recall, Some(8.0 / 27.0));
    assert_eq!(s.pixel_precision, Some(8.0 / 14.0));
    assert_eq!(s.region_recall, Some(1.0 / 3.0));
    assert_eq!(s.region_precision, Some(0.5));
    let table = report.to_string();
    assert!(table.contains("recall 0.296 (8 of 27)"), "{table}");
    assert_eq!(report.to_json()["summary"]["detection"]["hit_pixels"], 8);

    // A margin crops the repair masks too: 7 px leaves a corner of the square and the pair.
    o.margin = 7;
    let cropped = compare::run(&o).unwrap().frames[0].detection.unwrap();
    assert_eq!((cropped.truth_pixels, cropped.hit_pixels), (4 + 2, 0));

    // Repair masks without truth masks, and a missing repair mask, are refused by name.
    let mut no_truth = opts(&a, &b, None, 0);
    no_truth.detected = Some(d.clone());
    let err = compare::run(&no_truth).unwrap_err().to_string();
    assert!(err.contains("truth masks"), "{err}");
    std::fs::remove_file(d.join("000002.png")).unwrap();
    let err = format!("{:#}", compare::run(&o).unwrap_err());
    assert!(err.contains("no repair mask for frame 000002"), "{err}");
}
