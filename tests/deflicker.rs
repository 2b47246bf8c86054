//! `deflicker`: known answers on synthetic flicker (gain and offset jumps, fades, regional and
//! per-channel breathing, cuts, moving objects and dust), chunk equivalence, the cut detector,
//! parameters, and GPU/CPU parity (skipped without a GPU unless `NITRATE_REQUIRE_GPU=1`).

mod common;

use common::{compare, gpu, random_frame, restore_range, Rng};
use nitrate::frame::Frame;
use nitrate::stages::deflicker::analysis::{Geometry, Thumb};
use nitrate::stages::deflicker::cuts::{self, Thumbnail};
use nitrate::stages::deflicker::{self, cpu, Deflicker, DeflickerParams, GPU_TOLERANCE};
use nitrate::stages::{Stage, Window};
use nitrate::synth::scene_frame;

const W: usize = 96;
const H: usize = 64;

fn stage(params: DeflickerParams) -> Deflicker {
    Deflicker::new(params).unwrap()
}

fn defaults() -> DeflickerParams {
    DeflickerParams::default()
}

/// `v' = gain(x, y, p) * v + offset` over a frame.
fn flicker(frame: &Frame, gain: impl Fn(usize, usize, usize) -> f32, offset: f32) -> Frame {
    let mut out = frame.clone();
    let (w, h) = (frame.width, frame.height);
    for p in 0..frame.planes {
        for y in 0..h {
            for x in 0..w {
                let i = (p * h + y) * w + x;
                out.data[i] = gain(x, y, p) * frame.data[i] + offset;
            }
        }
    }
    out
}

/// A different shot: another seed, turned upside down and mirrored (the synthetic scenes
/// share their layout).
fn other_scene(width: usize, height: usize, planes: usize, seed: u64) -> Frame {
    let f = scene_frame(width, height, planes, 0, seed);
    let mut out = f.clone();
    for p in 0..planes {
        for y in 0..height {
            for x in 0..width {
                out.data[(p * height + y) * width + x] = f.get(p, width - 1 - x, height - 1 - y);
            }
        }
    }
    out
}

fn plane_mean(f: &Frame, p: usize) -> f64 {
    f.plane(p).iter().map(|&v| v as f64).sum::<f64>() / f.plane_len() as f64
}

fn mean(f: &Frame) -> f64 {
    f.data.iter().map(|&v| v as f64).sum::<f64>() / f.data.len() as f64
}

fn restore(params: DeflickerParams, frames: &[Frame]) -> Vec<Frame> {
    let stages: Vec<Box<dyn Stage>> = vec![Box::new(stage(params))];
    let out = restore_range(&stages, frames, 0, frames.len() - 1);
    assert_eq!(out.len(), frames.len());
    out.into_iter().map(|(_, f)| f).collect()
}

/// Worst relative error of the mean level over frames (every plane on its own).
fn worst_level_error(restored: &[Frame], clean: &[Frame]) -> f64 {
    let mut worst = 0.0f64;
    for (r, c) in restored.iter().zip(clean) {
        for p in 0..c.planes {
            let e = (plane_mean(r, p) / plane_mean(c, p) - 1.0).abs();
            worst = worst.max(e);
        }
    }
    worst
}

/// RMS over frames of the frame-to-frame change of the relative mean-level error.
fn level_flicker(frames: &[Frame], clean: &[Frame]) -> f64 {
    let e: Vec<f64> = frames
        .iter()
        .zip(clean)
        .map(|(f, c)| mean(f) / mean(c) - 1.0)
        .collect();
    let d2: f64 = e.windows(2).map(|w| (w[1] - w[0]).powi(2)).sum();
    (d2 / (e.len() - 1).max(1) as f64).sqrt()
}

/// Known jumps: about a quarter of the frames get a gain of ±4..15 % and an offset of
/// ±0.005..0.03; the rest are untouched.
fn jumps(n: usize, seed: u64) -> Vec<(f32, f32)> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            if rng.range(0.0, 1.0) < 0.25 {
                let sign = |r: &mut Rng| if r.range(0.0, 1.0) < 0.5 { -1.0 } else { 1.0 };
                let g = 1.0 + sign(&mut rng) * rng.range(0.04, 0.15);
                let o = sign(&mut rng) * rng.range(0.005, 0.03);
                (g, o)
            } else {
                (1.0, 0.0)
            }
        })
        .collect()
}

#[test]
fn static_scene_with_gain_and_offset_jumps_is_restored_within_half_a_percent() {
    for planes in [1, 3] {
        let clean: Vec<Frame> = (0..40).map(|_| scene_frame(W, H, planes, 0, 5)).collect();
        let j = jumps(clean.len(), 17 + planes as u64);
        let damaged: Vec<Frame> = clean
            .iter()
            .zip(&j)
            .map(|(f, &(g, o))| flicker(f, |_, _, _| g, o))
            .collect();
        let before = worst_level_error(&damaged, &clean);
        let restored = restore(defaults(), &damaged);
        let after = worst_level_error(&restored, &clean);
        eprintln!("planes {planes}: worst mean-level error {before:.4} -> {after:.5}");
        assert!(before > 0.05, "the test must damage something ({before})");
        assert!(
            after < 0.005,
            "worst mean-level error {after} (limit 0.005)"
        );
        // Not just the mean: every pixel is back within a fraction of a percent.
        for (t, (r, c)) in restored.iter().zip(&clean).enumerate() {
            let worst = r
                .data
                .iter()
                .zip(&c.data)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 0.006, "frame {t}: largest pixel error {worst}");
        }
    }
}

#[test]
fn dense_jitter_is_smoothed() {
    let clean: Vec<Frame> = (0..48).map(|_| scene_frame(W, H, 3, 0, 6)).collect();
    let mut rng = Rng::new(99);
    let damaged: Vec<Frame> = clean
        .iter()
        .map(|f| {
            let g = 1.0 + rng.range(-0.06, 0.06);
            let o = rng.range(-0.01, 0.01);
            flicker(f, |_, _, _| g, o)
        })
        .collect();
    let restored = restore(defaults(), &damaged);
    let (before, after) = (
        level_flicker(&damaged, &clean),
        level_flicker(&restored, &clean),
    );
    eprintln!("frame-to-frame level change: {before:.5} -> {after:.5}");
    assert!(after < before / 8.0, "{before} -> {after}");
}

#[test]
fn linear_fade_is_preserved() {
    for planes in [1, 3] {
        let scene = scene_frame(W, H, planes, 0, 7);
        let n = 40;
        // Fade out from 1 to 0.22 (and the same reversed: a fade in).
        let gain = |t: usize| 1.0 - 0.02 * t as f32;
        let fade: Vec<Frame> = (0..n)
            .map(|t| flicker(&scene, |_, _, _| gain(t), 0.0))
            .collect();
        let restored = restore(defaults(), &fade);
        let err = worst_level_error(&restored, &fade);
        eprintln!("planes {planes}: fade kept within {err:.6}");
        assert!(err < 0.002, "fade changed by {err}");
        let rev: Vec<Frame> = fade.iter().rev().cloned().collect();
        let err = worst_level_error(&restore(defaults(), &rev), &rev);
        assert!(err < 0.002, "fade-in changed by {err}");

        // The fade with flicker jumps on top: the jumps go, the fade stays.
        let j = jumps(n, 3);
        let damaged: Vec<Frame> = fade
            .iter()
            .zip(&j)
            .map(|(f, &(g, o))| flicker(f, |_, _, _| g, o * 0.5))
            .collect();
        let restored = restore(defaults(), &damaged);
        let before = worst_level_error(&damaged, &fade);
        let after = worst_level_error(&restored, &fade);
        eprintln!("planes {planes}: fade with jumps {before:.4} -> {after:.5}");
        assert!(after < 0.005, "fade with jumps: {after}");
    }
}

/// Mean of `restored / clean` over the left and right thirds and the top and bottom thirds.
fn gradient(r: &Frame, c: &Frame) -> (f64, f64) {
    let (w, h) = (c.width, c.height);
    let region = |x0: usize, x1: usize, y0: usize, y1: usize| {
        let (mut a, mut b) = (0.0f64, 0.0f64);
        for p in 0..c.planes {
            for y in y0..y1 {
                for x in x0..x1 {
                    a += r.get(p, x, y) as f64;
                    b += c.get(p, x, y) as f64;
                }
            }
        }
        a / b
    };
    (
        region(2 * w / 3, w, 0, h) - region(0, w / 3, 0, h),
        region(0, w, 2 * h / 3, h) - region(0, w, 0, h / 3),
    )
}

/// Static frames under a gradient across and down the frame that changes from frame to frame:
/// on about a quarter of the frames (`dense`: on every frame) by up to ±8 % across and ±6 %
/// down, with a global gain on top.
fn regional(clean: &[Frame], seed: u64, dense: bool) -> Vec<Frame> {
    let mut rng = Rng::new(seed);
    clean
        .iter()
        .map(|f| {
            let on = dense || rng.range(0.0, 1.0) < 0.25;
            let (a, b) = (rng.range(-0.08, 0.08), rng.range(-0.06, 0.06));
            let g = 1.0 + rng.range(-0.03, 0.03);
            let (a, b, g) = if on { (a, b, g) } else { (0.0, 0.0, 1.0) };
            let (w, h) = (f.width as f32, f.height as f32);
            flicker(
                f,
                |x, y, _| {
                    g * (1.0
                        + a * (2.0 * (x as f32 + 0.5) / w - 1.0)
                        + b * (2.0 * (y as f32 + 0.5) / h - 1.0))
                },
                0.0,
            )
        })
        .collect()
}

/// RMS over frames of the [`gradient`]s of restored against clean frames.
fn gradient_rms(frames: &[Frame], clean: &[Frame]) -> (f64, f64) {
    let (mut sx, mut sy) = (0.0f64, 0.0f64);
    for (f, c) in frames.iter().zip(clean) {
        let (gx, gy) = gradient(f, c);
        sx += gx * gx;
        sy += gy * gy;
    }
    let n = frames.len() as f64;
    ((sx / n).sqrt(), (sy / n).sqrt())
}

#[test]
fn regional_flicker_is_removed() {
    let clean: Vec<Frame> = (0..40).map(|_| scene_frame(W, H, 3, 0, 8)).collect();
    let damaged = regional(&clean, 5, false);
    let restored = restore(defaults(), &damaged);
    let (bx, by) = gradient_rms(&damaged, &clean);
    let (ax, ay) = gradient_rms(&restored, &clean);
    eprintln!("gradient RMS across {bx:.4} -> {ax:.5}, down {by:.4} -> {ay:.5}");
    assert!(bx > 0.02 && by > 0.02);
    assert!(ax < 0.002 && ay < 0.002, "({ax}, {ay})");
    assert!(worst_level_error(&restored, &clean) < 0.005);
    // A global-only correction cannot do this.
    let global = restore(
        DeflickerParams {
            grid: [1, 1],
            ..defaults()
        },
        &damaged,
    );
    let (gx, gy) = gradient_rms(&global, &clean);
    eprintln!("grid 1x1: ({gx:.4}, {gy:.4})");
    // (Down the frame a global gain and offset undo part of it: this scene is bright at the
    // top and dark at the bottom.)
    assert!(
        gx > bx / 2.0 && gx.max(gy) > 20.0 * ax.max(ay),
        "grid 1x1: ({gx}, {gy})"
    );

    // A gradient that changes on every frame is averaged over the window.
    let damaged = regional(&clean, 6, true);
    let restored = restore(defaults(), &damaged);
    let (bx, by) = gradient_rms(&damaged, &clean);
    let (ax, ay) = gradient_rms(&restored, &clean);
    eprintln!("dense: gradient RMS across {bx:.4} -> {ax:.5}, down {by:.4} -> {ay:.5}");
    assert!(ax < bx / 2.0 && ay < by / 2.0);
}

#[test]
fn colour_breathing_is_removed_per_channel() {
    let clean: Vec<Frame> = (0..40).map(|_| scene_frame(W, H, 3, 0, 9)).collect();
    let j = jumps(clean.len(), 77);
    let damaged: Vec<Frame> = clean
        .iter()
        .zip(&j)
        .enumerate()
        .map(|(t, (f, &(g, _)))| {
            // Each dye layer breathes on its own; their mean stays.
            let d = g - 1.0;
            let k = [1.0 + d, 1.0 - 0.5 * d, 1.0 - 0.5 * d];
            let k = if t % 2 == 0 { k } else { [k[1], k[2], k[0]] };
            flicker(f, |_, _, p| k[p], 0.0)
        })
        .collect();
    let restored = restore(defaults(), &damaged);
    let after = worst_level_error(&restored, &clean);
    eprintln!(
        "per-channel: {:.4} -> {after:.5}",
        worst_level_error(&damaged, &clean)
    );
    assert!(after < 0.005, "{after}");
}

#[test]
fn moving_objects_and_dust_do_not_count_as_flicker() {
    // The disc crosses the frame (the clean mean level changes with it); dust on some frames.
    let clean: Vec<Frame> = (0..40).map(|t| scene_frame(W, H, 3, t * 2, 10)).collect();
    let j = jumps(clean.len(), 21);
    let mut rng = Rng::new(4);
    let damaged: Vec<Frame> = clean
        .iter()
        .zip(&j)
        .map(|(f, &(g, o))| {
            let mut d = flicker(f, |_, _, _| g, o);
            if rng.range(0.0, 1.0) < 0.4 {
                // A dark blotch of 10x8 pixels.
                let (x0, y0) = (
                    (rng.range(0.0, 80.0)) as usize,
                    (rng.range(0.0, 50.0)) as usize,
                );
                for p in 0..3 {
                    for y in y0..y0 + 8 {
                        for x in x0..x0 + 10 {
                            let i = (p * H + y) * W + x;
                            d.data[i] = 0.03;
                        }
                    }
                }
            }
            d
        })
        .collect();
    let restored = restore(defaults(), &damaged);
    // Measure outside the blotches: compare medians of the per-pixel ratio.
    let mut worst = 0.0f64;
    for (t, (r, c)) in restored.iter().zip(&clean).enumerate() {
        let mut ratios: Vec<f64> = r
            .data
            .iter()
            .zip(&c.data)
            .map(|(a, b)| *a as f64 / *b as f64)
            .collect();
        ratios.sort_by(|a, b| a.total_cmp(b));
        let med = ratios[ratios.len() / 2];
        worst = worst.max((med - 1.0).abs());
        assert!((med - 1.0).abs() < 0.006, "frame {t}: median ratio {med}");
    }
    eprintln!("moving + dust: worst median ratio error {worst:.5}");
}

#[test]
fn cuts_split_the_window() {
    // Two shots of different scenes and brightness, each with its own flicker jumps.
    let a = scene_frame(W, H, 3, 0, 11);
    let b = flicker(&other_scene(W, H, 3, 12), |_, _, _| 0.6, 0.0);
    let clean: Vec<Frame> = (0..36)
        .map(|t| if t < 18 { a.clone() } else { b.clone() })
        .collect();
    let j = jumps(clean.len(), 31);
    let damaged: Vec<Frame> = clean
        .iter()
        .zip(&j)
        .map(|(f, &(g, o))| flicker(f, |_, _, _| g, o * 0.5))
        .collect();
    let restored = restore(defaults(), &damaged);
    let err = worst_level_error(&restored, &clean);
    eprintln!("with a cut: worst level error {err:.5}");
    assert!(err < 0.005, "{err}");

    // The curve marks the cut and holds one point per frame.
    let st = Deflicker::new(defaults()).unwrap();
    let mut out = Vec::new();
    for q in 0..damaged.len() {
        let r = st.params.window;
        let lo = q.saturating_sub(r);
        let hi = (q + r).min(damaged.len() - 1);
        let w = Window {
            before: (lo..q).rev().map(|i| &damaged[i]).collect(),
            center: &damaged[q],
            after: (q + 1..=hi).map(|i| &damaged[i]).collect(),
        };
        out.push(st.run_cpu(&w).unwrap());
    }
    let curve = st.curve();
    assert_eq!(curve.len(), damaged.len());
    let cuts: Vec<usize> = curve
        .iter()
        .filter(|p| p.summary.cut_before)
        .map(|p| p.index)
        .collect();
    assert_eq!(cuts, vec![18]);
    assert_eq!(curve[17].summary.used_after, 0);
    assert_eq!(curve[18].summary.used_before, 0);
    for (p, (d, r)) in curve.iter().zip(damaged.iter().zip(&out)) {
        let luma = |f: &Frame| {
            0.2126 * plane_mean(f, 0) + 0.7152 * plane_mean(f, 1) + 0.0722 * plane_mean(f, 2)
        };
        assert!((p.summary.measured - luma(d)).abs() < 1e-4, "{p:?}");
        assert!(
            (p.summary.corrected - luma(r)).abs() < 2e-3,
            "{p:?} vs {}",
            luma(r)
        );
    }
    let json = st.curve_json();
    assert_eq!(json["measured"].as_array().unwrap().len(), damaged.len());
}

#[test]
fn chunks_equal_a_whole_run_bit_for_bit() {
    let clean: Vec<Frame> = (0..30).map(|t| scene_frame(64, 40, 3, t, 13)).collect();
    let j = jumps(clean.len(), 8);
    let damaged: Vec<Frame> = clean
        .iter()
        .zip(&j)
        .map(|(f, &(g, o))| flicker(f, |x, _, _| g * (1.0 + 0.0005 * x as f32), o))
        .collect();
    let params = DeflickerParams {
        window: 5,
        ..defaults()
    };
    let whole = {
        let stages: Vec<Box<dyn Stage>> = vec![Box::new(stage(params.clone()))];
        restore_range(&stages, &damaged, 0, 29)
    };
    for (lo, hi) in [(0, 9), (10, 19), (20, 29), (7, 13)] {
        // A fresh stage per chunk, as a render-farm node would have.
        let stages: Vec<Box<dyn Stage>> = vec![Box::new(stage(params.clone()))];
        for (q, f) in restore_range(&stages, &damaged, lo, hi) {
            let bits = |f: &Frame| f.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert!(
                bits(&f) == bits(&whole[q].1),
                "frame {q} differs in chunk {lo}-{hi}"
            );
        }
    }
}

#[test]
fn result_depends_only_on_the_window() {
    // The same windows given in a scrambled order, and to a stage that has seen other frames,
    // give the same bits.
    let frames: Vec<Frame> = (0..12).map(|t| scene_frame(48, 32, 3, t, 14)).collect();
    let j = jumps(frames.len(), 2);
    let frames: Vec<Frame> = frames
        .iter()
        .zip(&j)
        .map(|(f, &(g, o))| flicker(f, |_, _, _| g, o))
        .collect();
    let r = 3;
    let window = |q: usize| Window {
        before: (q.saturating_sub(r)..q).rev().map(|i| &frames[i]).collect(),
        center: &frames[q],
        after: (q + 1..=(q + r).min(frames.len() - 1))
            .map(|i| &frames[i])
            .collect(),
    };
    let params = DeflickerParams {
        window: r,
        ..defaults()
    };
    let streaming = stage(params.clone());
    let want: Vec<Frame> = (0..frames.len())
        .map(|q| streaming.run_cpu(&window(q)).unwrap())
        .collect();
    let scrambled = stage(params);
    for q in [5, 0, 11, 3, 3, 7, 1, 10, 2, 9, 4, 6, 8] {
        let got = scrambled.run_cpu(&window(q)).unwrap();
        compare(&format!("window {q}"), &got, &want[q], 0.0).assert_ok();
    }
    // Copies of the frames (new buffers, same content) give the same result too.
    let copies: Vec<Frame> = frames.clone();
    let w = Window {
        before: vec![&copies[4], &copies[3]],
        center: &copies[5],
        after: vec![&copies[6], &copies[7], &copies[8]],
    };
    let fresh = stage(DeflickerParams {
        window: r,
        ..defaults()
    });
    compare(
        "copies",
        &scrambled.run_cpu(&w).unwrap(),
        &fresh.run_cpu(&w).unwrap(),
        0.0,
    )
    .assert_ok();
}

#[test]
fn strength_zero_and_single_frames_change_nothing() {
    let frames: Vec<Frame> = (0..8).map(|t| scene_frame(40, 30, 3, t, 15)).collect();
    let j = jumps(frames.len(), 4);
    let damaged: Vec<Frame> = frames
        .iter()
        .zip(&j)
        .map(|(f, &(g, o))| flicker(f, |_, _, _| g, o))
        .collect();
    let restored = restore(
        DeflickerParams {
            strength: 0.0,
            ..defaults()
        },
        &damaged,
    );
    for (r, d) in restored.iter().zip(&damaged) {
        compare("strength 0", r, d, 0.0).assert_ok();
    }
    let st = stage(defaults());
    let one = st.run_cpu(&Window::single(&damaged[3])).unwrap();
    compare("single frame", &one, &damaged[3], 0.0).assert_ok();
}

#[test]
fn flat_frames_and_odd_shapes_are_handled() {
    // Flat grey frames with gain jumps: no structure, but the level is still measurable.
    let flat = |v: f32| {
        let mut f = Frame::new(20, 10, 1, Default::default());
        f.data.iter_mut().for_each(|x| *x = v);
        f
    };
    let damaged: Vec<Frame> = jumps(24, 12).iter().map(|&(g, _)| flat(0.5 * g)).collect();
    let restored = restore(defaults(), &damaged);
    for r in &restored {
        assert!((mean(r) - 0.5).abs() < 0.0025, "{}", mean(r));
    }
    // Tiny, one-pixel and non-finite frames do not panic.
    for (w, h, planes) in [(1, 1, 1), (1, 1, 3), (2, 3, 3), (3, 200, 1), (300, 2, 3)] {
        let mut frames: Vec<Frame> = (0..6).map(|s| random_frame(w, h, planes, s)).collect();
        frames[2].data[0] = f32::NAN;
        frames[3].data[0] = f32::INFINITY;
        let out = restore(defaults(), &frames);
        assert_eq!(out.len(), 6);
    }
}

#[test]
fn cut_detector_ignores_flicker_and_finds_cuts() {
    let a = scene_frame(160, 90, 3, 0, 20);
    let ta = Thumbnail::of(&a);
    // Flicker (even strong, regional) is no cut.
    let flickered = flicker(&a, |x, _, _| 0.7 * (1.0 + 0.1 * x as f32 / 160.0), 0.05);
    let s = cuts::compare(&ta, &Thumbnail::of(&flickered));
    assert!(s.correlation > 0.97 && !cuts::is_cut(&s, 0.5), "{s:?}");
    // Motion is registered: the scene moved 4 pixels right (2 blocks of 2 pixels).
    let mut moved = a.clone();
    for p in 0..3 {
        for y in 0..90 {
            for x in 0..160 {
                moved.data[(p * 90 + y) * 160 + x] = a.get(p, x.saturating_sub(4), y);
            }
        }
    }
    let s = cuts::compare(&ta, &Thumbnail::of(&moved));
    assert!(
        (s.shift.0 - 2.0).abs() < 0.3 && s.shift.1.abs() < 0.3,
        "{s:?}"
    );
    // Another scene is a cut.
    let s = cuts::compare(&ta, &Thumbnail::of(&other_scene(160, 90, 3, 21)));
    assert!(cuts::is_cut(&s, 0.5), "{s:?}");
    // Black next to a picture is a cut; black next to black is not.
    let black = Frame::new(160, 90, 3, Default::default());
    assert!(cuts::is_cut(
        &cuts::compare(&ta, &Thumbnail::of(&black)),
        0.5
    ));
    let tb = Thumbnail::of(&black);
    assert!(!cuts::is_cut(&cuts::compare(&tb, &tb), 0.5));
}

#[test]
fn parameters_are_validated() {
    let ok: toml::Table = toml::from_str("window = 8\nstrength = 0.5\ngrid = [6, 4]\nper_channel = false\noffset = false\ncut_threshold = 0.3").unwrap();
    let st = Deflicker::from_table(&ok).unwrap();
    assert_eq!(st.temporal_radius(), 8);
    assert_eq!(st.params_json()["grid"], serde_json::json!([6, 4]));
    assert!(Deflicker::from_table(&toml::Table::new()).is_ok());
    for bad in [
        "windw = 3",
        "window = 0",
        "window = 100",
        "strength = 1.5",
        "grid = [0, 4]",
        "grid = [4, 17]",
        "grid = [4]",
        "cut_threshold = 0.0",
        "per_channel = 1",
    ] {
        let t: toml::Table = toml::from_str(bad).unwrap();
        let err = Deflicker::from_table(&t)
            .err()
            .unwrap_or_else(|| panic!("accepted {bad}"));
        eprintln!("{bad}: {err:#}");
    }
}

#[test]
fn a_torn_frame_is_bridged_not_taken_for_a_cut() {
    // A static shot with flicker jumps; frame 10 is mostly covered by a white blotch.
    let clean: Vec<Frame> = (0..24).map(|_| scene_frame(W, H, 3, 0, 16)).collect();
    let j = jumps(clean.len(), 40);
    let mut damaged: Vec<Frame> = clean
        .iter()
        .zip(&j)
        .map(|(f, &(g, o))| flicker(f, |_, _, _| g, o))
        .collect();
    for p in 0..3 {
        for y in 4..H - 4 {
            for x in 6..W - 20 {
                damaged[10].data[(p * H + y) * W + x] = 1.0;
            }
        }
    }
    let st = stage(defaults());
    let r = st.params.window;
    let mut out = Vec::new();
    for q in 0..damaged.len() {
        let (lo, hi) = (q.saturating_sub(r), (q + r).min(damaged.len() - 1));
        out.push(
            st.run_cpu(&Window {
                before: (lo..q).rev().map(|i| &damaged[i]).collect(),
                center: &damaged[q],
                after: (q + 1..=hi).map(|i| &damaged[i]).collect(),
            })
            .unwrap(),
        );
    }
    let curve = st.curve();
    assert!(curve[10].summary.isolated, "{:?}", curve[10]);
    assert!(
        curve.iter().all(|p| !p.summary.cut_before),
        "no cut in one shot"
    );
    // Its neighbours still see both sides (all frames but the torn one).
    assert_eq!(
        (curve[9].summary.used_before, curve[9].summary.used_after),
        (9, 11)
    );
    assert_eq!(
        (curve[11].summary.used_before, curve[11].summary.used_after),
        (10, 12)
    );
    // The torn frame is left as it was; every other frame is restored.
    compare("torn frame", &out[10], &damaged[10], 0.0).assert_ok();
    let others: Vec<usize> = (0..damaged.len()).filter(|&t| t != 10).collect();
    let restored: Vec<Frame> = others.iter().map(|&t| out[t].clone()).collect();
    let reference: Vec<Frame> = others.iter().map(|&t| clean[t].clone()).collect();
    let err = worst_level_error(&restored, &reference);
    assert!(err < 0.005, "{err}");
}

// ---------------------------------------------------------------------------------------------
// GPU parity

fn parity_cases() -> Vec<DeflickerParams> {
    vec![
        defaults(),
        DeflickerParams {
            grid: [1, 1],
            per_channel: false,
            ..defaults()
        },
        DeflickerParams {
            grid: [16, 16],
            offset: false,
            strength: 0.6,
            window: 3,
            ..defaults()
        },
        DeflickerParams {
            grid: [7, 2],
            cut_threshold: 0.1,
            ..defaults()
        },
    ]
}

/// A flickering sequence with motion, regional gain and colour breathing.
fn flickering(w: usize, h: usize, planes: usize, n: usize, seed: u64) -> Vec<Frame> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|t| {
            let f = scene_frame(w, h, planes, t, seed);
            let (g, a, o) = (
                rng.range(0.85, 1.15),
                rng.range(-0.1, 0.1),
                rng.range(-0.02, 0.02),
            );
            let k = [
                rng.range(0.97, 1.03),
                rng.range(0.97, 1.03),
                rng.range(0.97, 1.03),
            ];
            flicker(&f, |x, _, p| g * k[p] * (1.0 + a * x as f32 / w as f32), o)
        })
        .collect()
}

#[test]
fn gpu_thumbnails_are_bit_identical() {
    let Some(gpu) = gpu() else { return };
    for (i, &(w, h, planes)) in [
        (257, 131, 3),
        (1, 1, 1),
        (2, 3, 3),
        (33, 17, 1),
        (400, 81, 3),
    ]
    .iter()
    .enumerate()
    {
        let frames: Vec<Frame> = (0..3)
            .map(|s| random_frame(w, h, planes, 50 + 7 * i as u64 + s))
            .collect();
        let up: Vec<_> = frames.iter().map(|f| gpu.upload(f).unwrap()).collect();
        let refs: Vec<_> = up.iter().collect();
        let mut scratch = None;
        let got = deflicker::gpu::thumbs(&gpu, &refs, &mut scratch).unwrap();
        for (f, t) in frames.iter().zip(&got) {
            let geo = Geometry::of(w, h, planes);
            let want = Thumb::from_sums(geo, &cpu::block_sums(f, &geo));
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&t.means), bits(&want.means), "{w}x{h}x{planes}");
            assert_eq!(t.hash, want.hash);
        }
        for f in up {
            gpu.recycle(f);
        }
    }
}

#[test]
fn gpu_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let shapes = [(97, 61, 3), (64, 48, 1), (33, 17, 3), (1, 1, 1), (2, 3, 3)];
    for (case, params) in parity_cases().into_iter().enumerate() {
        for (s, &(w, h, planes)) in shapes.iter().enumerate() {
            let mut frames = flickering(w, h, planes, 9, 100 + s as u64);
            // Noise frames mixed in: cuts.
            frames[6] = random_frame(w, h, planes, 7 + s as u64);
            let gpu_frames: Vec<_> = frames.iter().map(|f| gpu.upload(f).unwrap()).collect();
            let cpu_stage = stage(params.clone());
            let gpu_stage = stage(params.clone());
            let r = params.window;
            for q in 0..frames.len() {
                let lo = q.saturating_sub(r);
                let hi = (q + r).min(frames.len() - 1);
                let want = cpu_stage
                    .run_cpu(&Window {
                        before: (lo..q).rev().map(|i| &frames[i]).collect(),
                        center: &frames[q],
                        after: (q + 1..=hi).map(|i| &frames[i]).collect(),
                    })
                    .unwrap();
                let out = gpu_stage
                    .run_gpu(
                        &gpu,
                        &Window {
                            before: (lo..q).rev().map(|i| &gpu_frames[i]).collect(),
                            center: &gpu_frames[q],
                            after: (q + 1..=hi).map(|i| &gpu_frames[i]).collect(),
                        },
                    )
                    .unwrap();
                let got = gpu.download(&out).unwrap();
                gpu.recycle(out);
                let name = format!("deflicker case {case} {w}x{h}x{planes} frame {q}");
                compare(&name, &got, &want, GPU_TOLERANCE).assert_ok();
            }
            // Both stages measured the same curve.
            let strip = |c: Vec<deflicker::CurvePoint>| {
                c.into_iter()
                    .map(|p| deflicker::CurvePoint { backend: "", ..p })
                    .collect::<Vec<_>>()
            };
            let (a, b) = (strip(cpu_stage.curve()), strip(gpu_stage.curve()));
            assert_eq!(a, b, "case {case} {w}x{h}x{planes}: curves differ");
            for f in gpu_frames {
                gpu.recycle(f);
            }
        }
    }
}

#[test]
fn gpu_apply_matches_cpu_on_random_input() {
    // The per-pixel kernel alone, on noise with negatives and values above 1, for random node
    // corrections.
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(3);
    for (i, &(w, h, planes, cols, rows)) in [
        (257, 131, 3, 4, 3),
        (1, 1, 1, 1, 1),
        (2, 3, 3, 16, 16),
        (33, 17, 1, 5, 1),
        (64, 16, 3, 1, 7),
    ]
    .iter()
    .enumerate()
    {
        let frame = random_frame(w, h, planes, 500 + i as u64);
        let correction = deflicker::analysis::Correction {
            cols,
            rows,
            planes,
            scale: [cols as f32 / w as f32, rows as f32 / h as f32],
            nodes: (0..cols * rows * planes)
                .map(|_| [rng.range(0.5, 1.8), rng.range(-0.2, 0.2)])
                .collect(),
        };
        let mut want = frame.clone();
        cpu::apply(&mut want, &correction);
        let input = gpu.upload(&frame).unwrap();
        let out = deflicker::gpu::apply(&gpu, &input, &correction).unwrap();
        let got = gpu.download(&out).unwrap();
        compare(
            &format!("apply {w}x{h}x{planes} grid {cols}x{rows}"),
            &got,
            &want,
            GPU_TOLERANCE,
        )
        .assert_ok();
        compare(
            "input untouched",
            &gpu.download(&input).unwrap(),
            &frame,
            0.0,
        )
        .assert_ok();
        gpu.recycle(input);
        gpu.recycle(out);
    }
}
