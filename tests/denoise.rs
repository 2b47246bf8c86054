//! `denoise`: the noise measurement against known noise, the properties the stage promises (a
//! constant frame stays constant, a noiseless sequence is left nearly alone, noise is taken out
//! and the neighbours help), grain kept and re-synthesised, shots and chunks, GPU parity.

mod common;

use common::{compare, gpu, restore_range, Rng};
use nitrate::frame::{Frame, FrameMeta};
use nitrate::stages::denoise::{noise, Denoise, DenoiseParams, GPU_TOLERANCE};
use nitrate::stages::{Stage, Window};
use nitrate::synth::scene_frame;

const W: usize = 96;
const H: usize = 64;

/// A unit gaussian from the test's own generator (Box–Muller), independent of the stage's.
fn gauss(rng: &mut Rng) -> f32 {
    let u1 = rng.range(1e-7, 1.0);
    let u2 = rng.range(0.0, 1.0);
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// Unit-variance noise for one plane, blurred by a gaussian of `size` pixels (0: white).
fn noise_plane(w: usize, h: usize, size: f32, rng: &mut Rng) -> Vec<f32> {
    let white: Vec<f32> = (0..w * h).map(|_| gauss(rng)).collect();
    if size <= 0.0 {
        return white;
    }
    let r = (3.0 * size).ceil() as i32;
    let k: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f32 / (2.0 * size * size)).exp())
        .collect();
    let s: f32 = k.iter().sum();
    let k: Vec<f32> = k.iter().map(|v| v / s).collect();
    let blur = |src: &[f32], dx: usize, dy: usize| -> Vec<f32> {
        let mut out = vec![0.0; w * h];
        for y in 0..h {
            for x in 0..w {
                let mut a = 0.0;
                for (t, kv) in k.iter().enumerate() {
                    let o = t as i32 - r;
                    let xx = (x as i32 + o * dx as i32).rem_euclid(w as i32) as usize;
                    let yy = (y as i32 + o * dy as i32).rem_euclid(h as i32) as usize;
                    a += kv * src[yy * w + xx];
                }
                out[y * w + x] = a;
            }
        }
        out
    };
    let b = blur(&blur(&white, 1, 0), 0, 1);
    let norm: f32 = k.iter().map(|v| v * v).sum();
    b.iter().map(|v| v / norm).collect()
}

/// `frame` plus noise of standard deviation `sigma(v)` (v the clean value) and grain `size`.
fn noisy(frame: &Frame, sigma: impl Fn(f32) -> f32, size: f32, seed: u64) -> Frame {
    let mut rng = Rng::new(seed);
    let mut out = frame.clone();
    for p in 0..frame.planes {
        let n = noise_plane(frame.width, frame.height, size, &mut rng);
        for (v, e) in out.plane_mut(p).iter_mut().zip(n) {
            *v += sigma(*v) * e;
        }
    }
    out
}

/// A smooth frame: a horizontal ramp over 0.05..0.95 with two hard-edged boxes.
fn ramp(w: usize, h: usize, planes: usize) -> Frame {
    let mut f = Frame::new(w, h, planes, FrameMeta::default());
    for p in 0..planes {
        for y in 0..h {
            for x in 0..w {
                let mut v = 0.05 + 0.9 * x as f32 / (w - 1) as f32 + 0.01 * p as f32;
                if (w / 5..w / 5 + 12).contains(&x) && (h / 4..h / 2).contains(&y) {
                    v = 0.8;
                }
                f.set(p, x, y, v);
            }
        }
    }
    f
}

fn numbered(mut f: Frame, n: i64) -> Frame {
    f.meta.number = Some(n);
    f
}

fn window(frames: &[Frame], c: usize, r: usize) -> Window<'_, Frame> {
    Window {
        before: (1..=r)
            .filter_map(|k| c.checked_sub(k).map(|i| &frames[i]))
            .collect(),
        center: &frames[c],
        after: (1..=r).filter_map(|k| frames.get(c + k)).collect(),
    }
}

fn rms(a: &Frame, b: &Frame) -> f32 {
    let s: f64 = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum();
    (s / a.data.len() as f64).sqrt() as f32
}

fn psnr(a: &Frame, b: &Frame) -> f32 {
    -20.0 * rms(a, b).log10()
}

fn stage(p: DenoiseParams) -> Denoise {
    Denoise::new(p).expect("valid parameters")
}

/// A scene panning right by `vx` pixels a frame (integer, so the truth is exact).
fn panning(n: usize, vx: usize, seed: u64) -> Vec<Frame> {
    let big = scene_frame(W + vx * n, H, 3, 0, seed);
    (0..n)
        .map(|t| {
            let mut f = Frame::new(W, H, 3, FrameMeta::default());
            for p in 0..3 {
                for y in 0..H {
                    for x in 0..W {
                        f.set(p, x, y, big.get(p, x + vx * (n - 1 - t), y));
                    }
                }
            }
            numbered(f, t as i64 + 1)
        })
        .collect()
}

#[test]
fn sigma_of_white_gaussian_noise_is_measured_within_ten_percent() {
    let clean = ramp(256, 64, 3);
    let frames: Vec<Frame> = (0..3)
        .map(|t| noisy(&clean, |_| 0.02, 0.0, 10 + t))
        .collect();
    let refs: Vec<&Frame> = frames.iter().collect();
    for (p, n) in noise::estimate_frames(&refs).iter().enumerate() {
        for (b, s) in n.sigma.iter().enumerate() {
            assert!(
                (s / 0.02 - 1.0).abs() < 0.1,
                "plane {p} bin {b}: sigma {s} for 0.02 ({n:?})"
            );
        }
        assert!(n.grain_size < 0.3, "white noise read as grain: {n:?}");
    }
}

#[test]
fn signal_dependent_noise_and_grain_size_are_measured() {
    let law = |v: f32| 0.008 + 0.03 * v.clamp(0.0, 1.0);
    let clean = ramp(256, 64, 1);
    let frames: Vec<Frame> = (0..3).map(|t| noisy(&clean, law, 0.0, 20 + t)).collect();
    let refs: Vec<&Frame> = frames.iter().collect();
    let n = &noise::estimate_frames(&refs)[0];
    for b in 0..noise::BINS {
        let v = (b as f32 + 0.5) / noise::BINS as f32;
        let want = law(v.clamp(0.05, 0.95));
        assert!(
            (n.sigma[b] / want - 1.0).abs() < 0.12,
            "bin {b}: sigma {} for {want} ({n:?})",
            n.sigma[b]
        );
    }
    // Correlated grain: its size is found, its level within 15 %.
    let frames: Vec<Frame> = (0..3)
        .map(|t| noisy(&clean, |_| 0.02, 0.8, 30 + t))
        .collect();
    let refs: Vec<&Frame> = frames.iter().collect();
    let n = &noise::estimate_frames(&refs)[0];
    assert!(
        (n.grain_size - 0.8).abs() < 0.2,
        "grain size {} for 0.8",
        n.grain_size
    );
    for s in n.sigma {
        assert!((s / 0.02 - 1.0).abs() < 0.15, "grain sigma {s} for 0.02");
    }
}

#[test]
fn a_constant_frame_stays_constant() {
    let mut f = Frame::new(W, H, 3, FrameMeta::default());
    for p in 0..3 {
        f.plane_mut(p).fill(0.2 + 0.3 * p as f32);
    }
    let frames: Vec<Frame> = (0..5).map(|t| numbered(f.clone(), t)).collect();
    // Measured (no noise found) and with a given sigma: the mean of a patch is never moved.
    for p in [
        DenoiseParams::default(),
        DenoiseParams {
            sigma: Some(0.05),
            ..DenoiseParams::default()
        },
    ] {
        let out = stage(p).run_cpu(&window(&frames, 2, 2)).unwrap();
        compare("constant", &out, &f, 1e-6).assert_ok();
    }
}

#[test]
fn a_noiseless_sequence_changes_by_less_than_a_tenth_of_a_percent() {
    // The synthetic scene: texture, hard edges and a moving disc, no noise.
    let frames: Vec<Frame> = (0..5)
        .map(|t| numbered(scene_frame(W, H, 3, t, 3), t as i64))
        .collect();
    let out = stage(DenoiseParams::default())
        .run_cpu(&window(&frames, 2, 2))
        .unwrap();
    let change = rms(&out, &frames[2]);
    assert!(change < 1e-3, "RMS change {change} (full scale 1)");
}

#[test]
fn noise_is_removed_and_the_neighbours_help() {
    let clean = panning(5, 2, 4);
    let law = |v: f32| 0.01 + 0.03 * v.clamp(0.0, 1.0).sqrt();
    let frames: Vec<Frame> = clean
        .iter()
        .enumerate()
        .map(|(t, f)| noisy(f, law, 0.7, 40 + t as u64))
        .collect();
    let before = psnr(&frames[2], &clean[2]);
    let spatial = stage(DenoiseParams {
        radius: 0,
        ..DenoiseParams::default()
    })
    .run_cpu(&window(&frames, 2, 0))
    .unwrap();
    let full = stage(DenoiseParams::default())
        .run_cpu(&window(&frames, 2, 2))
        .unwrap();
    let (s, f) = (psnr(&spatial, &clean[2]), psnr(&full, &clean[2]));
    assert!(s > before + 2.0, "spatial only: {before:.2} -> {s:.2} dB");
    assert!(
        f > s + 1.5,
        "with ±2 neighbours: {f:.2} dB, spatial only {s:.2} dB"
    );
}

#[test]
fn keep_grain_returns_that_share_of_what_was_removed() {
    let clean = panning(5, 1, 5);
    let frames: Vec<Frame> = clean
        .iter()
        .enumerate()
        .map(|(t, f)| noisy(f, |_| 0.02, 0.0, 50 + t as u64))
        .collect();
    let w = window(&frames, 2, 2);
    let none = stage(DenoiseParams::default()).run_cpu(&w).unwrap();
    let some = stage(DenoiseParams {
        keep_grain: 0.3,
        ..DenoiseParams::default()
    })
    .run_cpu(&w)
    .unwrap();
    for i in 0..none.data.len() {
        let want = none.data[i] + 0.3 * (frames[2].data[i] - none.data[i]);
        assert!((some.data[i] - want).abs() < 1e-6, "sample {i}");
    }
}

#[test]
fn regrain_is_deterministic_and_matches_the_grain_asked_for() {
    let clean = ramp(256, 64, 3);
    let frames: Vec<Frame> = (0..3).map(|t| numbered(clean.clone(), 7 + t)).collect();
    let p = DenoiseParams {
        sigma: Some(0.02),
        grain_size: Some(1.0),
        strength: 0.0,
        regrain: 1.0,
        seed: 9,
        ..DenoiseParams::default()
    };
    let a = stage(p.clone()).run_cpu(&window(&frames, 1, 1)).unwrap();
    let b = stage(p.clone()).run_cpu(&window(&frames, 1, 1)).unwrap();
    compare("regrain twice", &a, &b, 0.0).assert_ok();
    let other = stage(p.clone()).run_cpu(&window(&frames, 2, 1)).unwrap();
    assert!(rms(&a, &other) > 0.01, "frames 8 and 9 got the same grain");
    let reseeded = stage(DenoiseParams {
        seed: 10,
        ..p.clone()
    })
    .run_cpu(&window(&frames, 1, 1))
    .unwrap();
    assert!(
        rms(&a, &reseeded) > 0.01,
        "another seed gave the same grain"
    );
    // The grain itself (strength 0 leaves the frame as it is): the level and the size asked
    // for, in each of R, G and B, measured directly.
    let rho = noise::rho_of(1.0);
    for pl in 0..3 {
        let d: Vec<f32> = a
            .plane(pl)
            .iter()
            .zip(clean.plane(pl))
            .map(|(o, c)| o - c)
            .collect();
        let n = d.len() as f32;
        let mean = d.iter().sum::<f32>() / n;
        let var = d.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        let (w, mut lag, mut pairs) = (clean.width, 0.0f32, 0.0f32);
        for (i, v) in d.iter().enumerate() {
            if (i + 1) % w != 0 {
                lag += (v - mean) * (d[i + 1] - mean);
                pairs += 1.0;
            }
        }
        let (sd, r) = (var.sqrt(), lag / pairs / var);
        assert!(
            (sd / 0.02 - 1.0).abs() < 0.05,
            "plane {pl}: regrain sd {sd}"
        );
        assert!(
            (r - rho).abs() < 0.05,
            "plane {pl}: neighbour correlation {r}, want {rho}"
        );
    }
}

#[test]
fn regrain_after_denoising_matches_the_measured_grain() {
    let law = |v: f32| 0.01 + 0.02 * v.clamp(0.0, 1.0);
    let clean = ramp(256, 64, 1);
    let frames: Vec<Frame> = (0..5)
        .map(|t| numbered(noisy(&clean, law, 0.8, 60 + t), t as i64))
        .collect();
    let refs: Vec<&Frame> = frames.iter().collect();
    let input = &noise::estimate_frames(&refs)[0];
    let out = stage(DenoiseParams {
        regrain: 1.0,
        ..DenoiseParams::default()
    })
    .run_cpu(&window(&frames, 2, 2))
    .unwrap();
    let got = &noise::estimate_frames(&[&out])[0];
    for b in 0..noise::BINS {
        assert!(
            (got.sigma[b] / input.sigma[b] - 1.0).abs() < 0.15,
            "bin {b}: regrain {} against measured {}",
            got.sigma[b],
            input.sigma[b]
        );
    }
    assert!(
        (got.grain_size - input.grain_size).abs() < 0.25,
        "regrain size {} against measured {}",
        got.grain_size,
        input.grain_size
    );
}

#[test]
fn shots_do_not_leak_and_chunks_equal_a_whole_run() {
    let a: Vec<Frame> = panning(5, 1, 6)
        .iter()
        .enumerate()
        .map(|(t, f)| noisy(f, |_| 0.02, 0.5, 70 + t as u64))
        .collect();
    // Another shot: a ramp across, nothing like the scene.
    let b: Vec<Frame> = (0..4)
        .map(|t| noisy(&ramp(W, H, 3), |_| 0.03, 0.5, 80 + t as u64))
        .collect();
    let both: Vec<Frame> = a
        .iter()
        .chain(&b)
        .enumerate()
        .map(|(i, f)| numbered(f.clone(), i as i64))
        .collect();
    let p = DenoiseParams {
        regrain: 0.5,
        ..DenoiseParams::default()
    };
    // A fresh stage per run, as a render-farm node would have.
    let run = |frames: &[Frame], lo: usize, hi: usize| {
        let stages: Vec<Box<dyn Stage>> = vec![Box::new(stage(p.clone()))];
        restore_range(&stages, frames, lo, hi)
    };
    let whole: Vec<Frame> = run(&both, 0, both.len() - 1)
        .into_iter()
        .map(|(_, f)| f)
        .collect();
    let alone: Vec<Frame> = run(&both[..5], 0, 4)
        .into_iter()
        .chain(run(&both[5..], 0, 3))
        .map(|(_, f)| f)
        .collect();
    let bits = |f: &Frame| f.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    for (q, (w, s)) in whole.iter().zip(&alone).enumerate() {
        assert!(bits(w) == bits(s), "frame {q}: the other shot leaked in");
    }
    for (lo, hi) in [(0, 3), (4, 8), (2, 6)] {
        for (q, f) in run(&both, lo, hi) {
            assert!(
                bits(&f) == bits(&whole[q]),
                "frame {q} differs in chunk {lo}-{hi}"
            );
        }
    }
}

/// A render farm mixes CPUs: the AVX2 copies of the inner loops must give the same bits as
/// the baseline ones (on a CPU without AVX2 both runs take the baseline and agree trivially).
#[test]
fn every_cpu_makes_the_same_bits() {
    let frames: Vec<Frame> = panning(5, 2, 9)
        .iter()
        .enumerate()
        .map(|(t, f)| noisy(f, |v| 0.01 + 0.03 * v, 1.0, 90 + t as u64))
        .collect();
    let run = |baseline: bool| {
        nitrate::simd::baseline_only(baseline);
        let stages: Vec<Box<dyn Stage>> = vec![Box::new(stage(DenoiseParams {
            regrain: 0.5,
            ..DenoiseParams::default()
        }))];
        let out = restore_range(&stages, &frames, 0, frames.len() - 1);
        nitrate::simd::baseline_only(false);
        out
    };
    let (wide, baseline) = (run(false), run(true));
    for ((q, a), (_, b)) in wide.iter().zip(&baseline) {
        let differ = a
            .data
            .iter()
            .zip(&b.data)
            .filter(|(x, y)| x.to_bits() != y.to_bits());
        assert_eq!(
            differ.count(),
            0,
            "frame {q}: samples differ between the copies"
        );
    }
}

#[test]
fn the_noise_measured_is_reported() {
    let frames: Vec<Frame> = panning(3, 1, 9)
        .iter()
        .map(|f| noisy(f, |_| 0.02, 0.0, 90))
        .collect();
    let s = stage(DenoiseParams::default());
    s.run_cpu(&window(&frames, 1, 2)).unwrap();
    let report = s.report().expect("a report");
    let rec = &report["frames"][0];
    assert_eq!(rec["frame"], 2);
    assert_eq!(rec["neighbours"], 2);
    assert_eq!(rec["planes"].as_array().unwrap().len(), 3);
    let sigma = rec["planes"][1]["sigma"].as_array().unwrap();
    assert_eq!(sigma.len(), noise::BINS);
}

#[test]
fn parameters_are_validated() {
    let bad = [
        ("strength = 5.0", "denoise.strength"),
        ("keep_grain = -0.1", "denoise.keep_grain"),
        ("regrain = 3.0", "denoise.regrain"),
        ("radius = 3", "denoise.radius"),
        ("sigma = 0.9", "denoise.sigma"),
        ("grain_size = 9.0", "denoise.grain_size"),
        ("step = 0", "denoise.step"),
        ("cut_threshold = 0.0", "denoise.cut_threshold"),
        ("motion = { block = 2 }", "denoise.motion.block"),
    ];
    for (text, key) in bad {
        let table: toml::Table = text.parse().unwrap();
        let err = format!("{:#}", Denoise::from_table(&table).err().expect(text));
        assert!(err.contains(key), "{text}: {err}");
    }
    let table: toml::Table = "strenght = 1.0".parse().unwrap();
    let err = format!("{:#}", Denoise::from_table(&table).err().unwrap());
    assert!(err.contains("strenght"), "{err}");
    for (key, doc) in nitrate::stages::knobs("denoise") {
        assert!(
            doc.contains("efault"),
            "denoise.{key}: no default documented"
        );
    }
}

#[test]
fn gpu_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let clean = panning(5, 2, 11);
    let frames: Vec<Frame> = clean
        .iter()
        .enumerate()
        .map(|(t, f)| numbered(noisy(f, |v| 0.01 + 0.02 * v, 0.7, 100 + t as u64), t as i64))
        .collect();
    let up: Vec<_> = frames.iter().map(|f| gpu.upload(f).unwrap()).collect();
    for p in [
        DenoiseParams::default(),
        DenoiseParams {
            keep_grain: 0.3,
            regrain: 1.0,
            step: 3,
            per_pixel_motion: true,
            opponent: false,
            ..DenoiseParams::default()
        },
    ] {
        for c in [0, 2, 4] {
            let s = stage(p.clone());
            let want = s.run_cpu(&window(&frames, c, 2)).unwrap();
            let gw = Window {
                before: (1..=2)
                    .filter_map(|k| c.checked_sub(k).map(|i| &up[i]))
                    .collect(),
                center: &up[c],
                after: (1..=2).filter_map(|k| up.get(c + k)).collect(),
            };
            let got = gpu.download(&s.run_gpu(&gpu, &gw).unwrap()).unwrap();
            compare(
                &format!("denoise gpu frame {c}"),
                &got,
                &want,
                GPU_TOLERANCE,
            )
            .assert_ok();
            let d = rms(&got, &want);
            assert!(d < 1e-5, "frame {c}: RMS difference {d}");
            let recs = s.records();
            assert_eq!(recs[0].planes, recs[1].planes, "noise measured differs");
        }
    }
}

#[test]
fn the_integer_motion_search_equals_the_motion_modules() {
    use nitrate::motion::{cpu as mc, MotionParams};
    use nitrate::stages::denoise::search;
    // A moving scene with grain, large enough for two pyramid levels at half resolution.
    let (w, h) = (256, 192);
    let frames: Vec<Frame> = [0, 1, 3]
        .iter()
        .map(|&t| noisy(&scene_frame(w, h, 3, t, 5), |_| 0.02, 0.5, 40 + t as u64))
        .collect();
    for mp in [
        MotionParams::default(),
        MotionParams {
            block: 4,
            search: 2,
            lambda: 0.0,
            ..MotionParams::default()
        },
        MotionParams {
            max_levels: 1,
            search: 6,
            ..MotionParams::default()
        },
    ] {
        let pyr: Vec<mc::Pyramid> = frames
            .iter()
            .map(|f| search::half_pyramid(&mc::luma(f), &mp))
            .collect();
        let int: Vec<search::IntPyramid> = pyr.iter().map(search::IntPyramid::of).collect();
        let mut fractional = 0;
        for (a, b) in [(0, 1), (1, 0), (0, 2), (2, 1)] {
            let want = mc::estimate(&pyr[a], &pyr[b], &mp);
            let got = search::estimate(&int[a], &int[b], &mp);
            assert_eq!(got, want, "{mp:?}: field {a} -> {b}");
            fractional += want.vx.iter().filter(|v| v.fract() != 0.0).count();
        }
        assert!(fractional > 0, "{mp:?}: the refinement was exercised");
    }
}

#[test]
fn the_integer_block_costs_equal_the_motion_modules_everywhere() {
    use nitrate::motion::cpu::{self as mc, SearchPlane};
    use nitrate::motion::MotionParams;
    use nitrate::stages::denoise::search;
    let (w, h) = (96, 64);
    let frames: Vec<Frame> = [0, 2]
        .iter()
        .map(|&t| noisy(&scene_frame(w, h, 3, t, 5), |_| 0.02, 0.5, 70 + t as u64))
        .collect();
    let mp = MotionParams::default();
    let pyr: Vec<mc::Pyramid> = frames
        .iter()
        .map(|f| search::half_pyramid(&mc::luma(f), &mp))
        .collect();
    let int: Vec<search::IntPyramid> = pyr.iter().map(search::IntPyramid::of).collect();
    let (a, b) = (&pyr[0].levels[0], &pyr[1].levels[0]);
    let (ia, ib) = (&int[0].levels[0], &int[1].levels[0]);
    // Blocks inside and on every edge; vectors small, reaching past the edges, and far past
    // the samples the integer levels store beyond them; both compiled copies of the costs.
    for wide in [true, false] {
        nitrate::simd::baseline_only(!wide);
        for block in [4, 5, 8] {
            let (cols, rows) = (a.width.div_ceil(block), a.height.div_ceil(block));
            for (bx, by) in [
                (0, 0),
                (cols / 2, rows / 2),
                (cols - 1, rows - 1),
                (0, rows - 1),
            ] {
                for v in [(0, 0), (3, -2), (-7, 5), (40, -33), (-130, 120), (250, 3)] {
                    assert_eq!(
                        ia.cost(ib, block, bx, by, v),
                        a.cost(b, block, bx, by, v),
                        "cost: block {block} at ({bx}, {by}), vector {v:?}, wide {wide}"
                    );
                    for q in [(4 * v.0 + 1, 4 * v.1 - 3), (4 * v.0 - 2, 4 * v.1 + 2)] {
                        assert_eq!(
                            ia.cost_quarter(ib, block, bx, by, q),
                            a.cost_quarter(b, block, bx, by, q),
                            "quarter cost: block {block} at ({bx}, {by}), vector {q:?}/4, \
                             wide {wide}"
                        );
                    }
                }
            }
        }
    }
    nitrate::simd::baseline_only(false);
}
