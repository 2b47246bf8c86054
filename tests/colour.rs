//! `colour`: a grey ramp under a known per-channel cast comes back neutral (both models), a
//! balanced sequence is left nearly alone, grey material stays exactly grey, monochrome gets
//! its density back, shots do not leak into each other, chunks equal a whole run, parameters
//! are checked, and GPU/CPU parity (skipped without a GPU unless `NITRATE_REQUIRE_GPU=1`).

mod common;

use common::{compare, gpu, restore_range};
use nitrate::frame::Frame;
use nitrate::stages::colour::{Colour, ColourParams, Model, Target, GPU_TOLERANCE};
use nitrate::stages::{build, Stage, Window};
use nitrate::synth::{hash01, scene_frame};

const W: usize = 96;
const H: usize = 64;
/// Rows of the grey ramp at the top of [`test_frame`].
const RAMP_ROWS: usize = 24;

/// Frame `t` of a balanced test scene: a grey ramp 0.04..0.96 across the top rows, below it a
/// grey textured ground with a red and a blue patch that move with `t`. `seed` changes the
/// texture (a different shot).
fn test_frame(planes: usize, t: usize, seed: u64) -> Frame {
    let mut f = Frame::new(W, H, planes, Default::default());
    let patches = [
        ((8 + 3 * t) % 60, 30, [0.7, 0.3, 0.25]),
        ((50 + 2 * t) % 70, 44, [0.2, 0.35, 0.65]),
    ];
    for y in 0..H {
        for x in 0..W {
            let grey = if y < RAMP_ROWS {
                0.04 + 0.92 * x as f32 / (W - 1) as f32
            } else {
                0.2 + 0.5 * hash01(x as u64 / 3, y as u64 / 3, seed, 5)
            };
            for p in 0..planes {
                let mut v = grey;
                for &(px, py, c) in &patches {
                    if planes == 3 && x >= px && x < px + 16 && y >= py && y < py + 12 {
                        v = c[p];
                    }
                }
                f.set(p, x, y, v);
            }
        }
    }
    f
}

/// Dye fading: each channel keeps `keep[c]` of its density and gains `stain[c]`.
fn fade(f: &Frame, keep: [f32; 3], stain: [f32; 3]) -> Frame {
    let mut out = f.clone();
    let n = f.plane_len();
    for (i, v) in out.data.iter_mut().enumerate() {
        let c = i / n;
        let d = -v.max(1e-4).log10();
        *v = 10f32.powf(-(keep[c] * d + stain[c]));
    }
    out
}

/// A levels-like cast on code values: `black + (white - black) * v^gamma` per channel.
fn levels_cast(f: &Frame, black: [f32; 3], white: [f32; 3], gamma: [f32; 3]) -> Frame {
    let mut out = f.clone();
    let n = f.plane_len();
    for (i, v) in out.data.iter_mut().enumerate() {
        let c = i / n;
        *v = black[c] + (white[c] - black[c]) * v.max(0.0).powf(gamma[c]);
    }
    out
}

fn boxed(stage: Colour) -> Box<dyn Stage> {
    Box::new(stage)
}

fn restore(params: ColourParams, frames: &[Frame]) -> Vec<Frame> {
    let out = restore_range(
        &[boxed(Colour::new(params).unwrap())],
        frames,
        0,
        frames.len() - 1,
    );
    assert_eq!(out.len(), frames.len());
    out.into_iter().map(|(_, f)| f).collect()
}

fn params(model: Model) -> ColourParams {
    ColourParams {
        model,
        window: 3,
        ..ColourParams::default()
    }
}

/// Largest `|R - G|`, `|B - G|` over the ramp rows.
fn worst_ramp_cast(f: &Frame) -> f32 {
    let mut worst = 0.0f32;
    for y in 0..RAMP_ROWS {
        for x in 0..W {
            let g = f.get(1, x, y);
            worst = worst
                .max((f.get(0, x, y) - g).abs())
                .max((f.get(2, x, y) - g).abs());
        }
    }
    worst
}

#[test]
fn dye_fading_of_a_grey_ramp_comes_back_neutral() {
    let clean: Vec<Frame> = (0..7).map(|t| test_frame(3, t, 1)).collect();
    let faded: Vec<Frame> = clean
        .iter()
        .map(|f| fade(f, [0.55, 0.92, 0.72], [0.0, 0.01, 0.04]))
        .collect();
    assert!(worst_ramp_cast(&faded[3]) > 0.15, "the cast is strong");
    let out = restore(params(Model::Dye), &faded);
    for (t, f) in out.iter().enumerate() {
        let cast = worst_ramp_cast(f);
        assert!(cast <= 0.01, "frame {t}: ramp off neutral by {cast}");
    }
}

#[test]
fn a_levels_cast_comes_back_neutral_with_curves() {
    let clean: Vec<Frame> = (0..7).map(|t| test_frame(3, t, 2)).collect();
    let cast: Vec<Frame> = clean
        .iter()
        .map(|f| levels_cast(f, [0.12, 0.02, 0.05], [0.98, 0.88, 0.8], [1.4, 1.0, 0.75]))
        .collect();
    assert!(worst_ramp_cast(&cast[3]) > 0.08, "the cast is strong");
    // A black lift is an offset on code values, which the curves model has and the dye model
    // (density changes only) does not: this is the curves model's case.
    let out = restore(params(Model::Curves), &cast);
    for (t, f) in out.iter().enumerate() {
        let cast = worst_ramp_cast(f);
        assert!(cast <= 0.01, "frame {t}: ramp off neutral by {cast}");
    }
}

#[test]
fn a_balanced_sequence_is_left_nearly_unchanged() {
    let clean: Vec<Frame> = (0..7).map(|t| test_frame(3, t, 3)).collect();
    for model in [Model::Dye, Model::Curves] {
        let out = restore(params(model), &clean);
        for (t, (o, c)) in out.iter().zip(&clean).enumerate() {
            let diffs: Vec<f32> = o
                .data
                .iter()
                .zip(&c.data)
                .map(|(a, b)| (a - b).abs())
                .collect();
            let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
            let max = diffs.iter().fold(0.0f32, |a, &b| a.max(b));
            assert!(
                mean < 0.002 && max < 0.01,
                "{model:?} frame {t}: mean change {mean}, max {max}"
            );
        }
    }
}

#[test]
fn grey_material_stays_exactly_grey() {
    // A greyscale film scanned as RGB: equal channels in, equal channels out, for any settings.
    let frames: Vec<Frame> = (0..6)
        .map(|t| {
            let m = scene_frame(W, H, 1, t, 4);
            let mut f = Frame::new(W, H, 3, m.meta.clone());
            for p in 0..3 {
                f.plane_mut(p).copy_from_slice(m.plane(0));
            }
            fade(&f, [0.8, 0.8, 0.8], [0.03, 0.03, 0.03])
        })
        .collect();
    for model in [Model::Dye, Model::Curves] {
        let p = ColourParams {
            max_black: 0.05,
            ..params(model)
        };
        for f in restore(p, &frames) {
            assert_eq!(f.plane(0), f.plane(1), "{model:?}");
            assert_eq!(f.plane(1), f.plane(2), "{model:?}");
        }
    }
}

#[test]
fn monochrome_density_and_contrast_are_restored() {
    let clean: Vec<Frame> = (0..5).map(|t| test_frame(1, t, 5)).collect();
    let faded: Vec<Frame> = clean.iter().map(|f| fade(f, [0.7; 3], [0.03; 3])).collect();
    let err = |a: &Frame, b: &Frame| {
        a.data
            .iter()
            .zip(&b.data)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    };
    assert!(err(&faded[2], &clean[2]) > 0.1);
    // The clean ramp's ends, at the percentiles the stage measures: the restorer's targets.
    let p = ColourParams {
        white: Target::All(0.96),
        max_black: 0.04,
        percentiles: [0.0, 100.0],
        ..params(Model::Dye)
    };
    let out = restore(p, &faded);
    for (t, (o, c)) in out.iter().zip(&clean).enumerate() {
        let e = err(o, c);
        assert!(e < 0.01, "frame {t}: off the clean frame by {e}");
    }
    // By default (no prior on the lost density) monochrome is left as it is.
    let out = restore(params(Model::Dye), &faded);
    assert!(err(&out[2], &faded[2]) < 1e-4);
}

#[test]
fn shots_do_not_leak_and_chunks_equal_a_whole_run() {
    // Two shots with different casts: each is restored as if alone.
    let a: Vec<Frame> = (0..8)
        .map(|t| fade(&test_frame(3, t, 6), [0.6, 0.9, 0.8], [0.0, 0.0, 0.02]))
        .collect();
    let b: Vec<Frame> = (0..8)
        .map(|t| {
            let f = scene_frame(W, H, 3, t, 7);
            levels_cast(&f, [0.08, 0.02, 0.02], [0.9, 0.95, 0.99], [1.0; 3])
        })
        .collect();
    let both: Vec<Frame> = a.iter().chain(&b).cloned().collect();
    let p = ColourParams {
        window: 4,
        ..ColourParams::default()
    };
    let whole = restore(p.clone(), &both);
    let alone: Vec<Frame> = restore(p.clone(), &a)
        .into_iter()
        .chain(restore(p.clone(), &b))
        .collect();
    let bits = |f: &Frame| f.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    for (q, (w, s)) in whole.iter().zip(&alone).enumerate() {
        assert!(bits(w) == bits(s), "frame {q}: the other shot leaked in");
    }
    for (lo, hi) in [(0, 5), (6, 11), (12, 15), (3, 9)] {
        // A fresh stage per chunk, as a render-farm node would have.
        let stage = Colour::new(p.clone()).unwrap();
        for (q, f) in restore_range(&[boxed(stage)], &both, lo, hi) {
            assert!(
                bits(&f) == bits(&whole[q]),
                "frame {q} differs in chunk {lo}-{hi}"
            );
        }
    }
}

#[test]
fn bad_parameters_name_the_key() {
    let cases: &[(&str, &str)] = &[
        ("model = \"magic\"", "model"),
        ("window = 0", "colour.window"),
        ("strength = 1.5", "colour.strength"),
        ("white = \"bright\"", "colour.white"),
        ("white = 3.0", "colour.white"),
        ("black = [0.0, 0.0, 0.95]", "colour.black"),
        ("black = 0.5\nwhite = 0.52", "colour.white"),
        ("max_black = -0.1", "colour.max_black"),
        ("percentiles = [30.0, 99.0]", "colour.percentiles"),
        ("neutral = 9.0", "colour.neutral"),
        ("cut_threshold = 0.0", "colour.cut_threshold"),
        ("gamma = 1.0", "gamma"),
    ];
    for (toml_text, key) in cases {
        let table: toml::Table = toml_text.parse().unwrap();
        let err = match build("color", &table) {
            Ok(_) => panic!("{toml_text}: accepted"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains(key), "{toml_text}: {err}");
    }
    let stage = build("color", &toml::Table::new()).unwrap();
    assert_eq!(stage.name(), "colour");
    assert_eq!(stage.temporal_radius(), 12);
}

#[test]
fn gpu_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let colour: Vec<Frame> = (0..5)
        .map(|t| fade(&test_frame(3, t, 8), [0.55, 0.92, 0.72], [0.0, 0.01, 0.04]))
        .collect();
    let mono: Vec<Frame> = (0..5)
        .map(|t| fade(&scene_frame(W, H, 1, t, 9), [0.7; 3], [0.03; 3]))
        .collect();
    let cases = [
        (&colour, params(Model::Dye)),
        (&colour, params(Model::Curves)),
        (
            &colour,
            ColourParams {
                strength: 0.6,
                white: Target::Each([0.95, 0.93, 0.9]),
                max_black: 0.05,
                ..params(Model::Dye)
            },
        ),
        (
            &mono,
            ColourParams {
                max_black: 0.05,
                ..params(Model::Dye)
            },
        ),
        (
            &mono,
            ColourParams {
                max_black: 0.05,
                ..params(Model::Curves)
            },
        ),
    ];
    for (case, (frames, p)) in cases.into_iter().enumerate() {
        let stage = Colour::new(p).unwrap();
        let up: Vec<_> = frames.iter().map(|f| gpu.upload(f).unwrap()).collect();
        for q in 0..frames.len() {
            let (lo, hi) = (q.saturating_sub(3), (q + 3).min(frames.len() - 1));
            let cpu_window = Window {
                before: (lo..q).rev().map(|i| &frames[i]).collect(),
                center: &frames[q],
                after: (q + 1..=hi).map(|i| &frames[i]).collect(),
            };
            let gpu_window = Window {
                before: (lo..q).rev().map(|i| &up[i]).collect(),
                center: &up[q],
                after: (q + 1..=hi).map(|i| &up[i]).collect(),
            };
            let want = stage.run_cpu(&cpu_window).unwrap();
            let got = gpu
                .download(&stage.run_gpu(&gpu, &gpu_window).unwrap())
                .unwrap();
            compare(
                &format!("colour case {case} frame {q}"),
                &got,
                &want,
                GPU_TOLERANCE,
            )
            .assert_ok();
        }
        // Bit-identical thumbnails: both backends measured the same.
        let (c, g) = (stage.points_of("cpu"), stage.points_of("gpu"));
        assert_eq!(c.len(), g.len());
        for (a, b) in c.iter().zip(&g) {
            assert_eq!(a.estimate, b.estimate, "case {case}");
        }
    }
}
