//! `scratch`: synthetic static and wandering scratches are removed, real vertical structure (a
//! pole in a panning shot, door-frame edges in a still one) is left alone, the GPU agrees with
//! the CPU, masks are written, bad parameters are refused.

mod common;

use common::gpu;
use nitrate::frame::{Frame, FrameMeta};
use nitrate::metrics::psnr_from_mse;
use nitrate::stages::scratch::{self, Scratch, ScratchParams};
use nitrate::stages::{Stage, Window};
use nitrate::synth::hash01;

const W: usize = 96;
const H: usize = 64;
const FRAMES: usize = 7;

/// A textured scene seen through a camera panning `pan` px per frame, with per-frame grain, an
/// optional pole (3 px bright bar, part of the scene) and door-frame edges (steps).
fn scene(t: usize, planes: usize, pan: f32, pole: bool) -> Frame {
    let meta = FrameMeta {
        number: Some(t as i64),
        ..FrameMeta::default()
    };
    let mut f = Frame::new(W, H, planes, meta);
    for p in 0..planes {
        for y in 0..H {
            for x in 0..W {
                let sx = x as f32 + pan * t as f32;
                let yf = y as f32;
                let mut v = 0.45
                    + 0.07 * (0.21 * sx + 0.13 * yf).sin()
                    + 0.05 * (0.07 * sx - 0.29 * yf + 1.0 + p as f32).sin();
                // Door frame: a darker panel between two vertical edges.
                if (58.0..74.0).contains(&sx) {
                    v -= 0.2;
                }
                if pole && (20.0..23.0).contains(&sx) {
                    v = 0.9;
                }
                v += 0.02 * (hash01(x as u64, y as u64, t as u64 * 4 + p as u64, 11) - 0.5);
                f.data[(p * H + y) * W + x] = v;
            }
        }
    }
    f
}

/// Blend a vertical scratch into `f`: centre column `cx`, full width at half maximum `width`,
/// rows `rows`, pulled toward `level` with peak opacity `opacity` (cos² profile). Returns the
/// per-pixel mask of what changed.
fn scratch(
    f: &mut Frame,
    cx: f32,
    width: f32,
    rows: std::ops::Range<usize>,
    level: f32,
    opacity: f32,
    mask: &mut [bool],
) {
    for y in rows {
        for x in 0..W {
            let d = (x as f32 - cx).abs();
            if d >= width {
                continue;
            }
            let c = (std::f32::consts::FRAC_PI_2 * d / width).cos();
            let a = opacity * c * c;
            if a < 0.004 {
                continue;
            }
            mask[y * W + x] = true;
            for p in 0..f.planes {
                let v = &mut f.data[(p * H + y) * W + x];
                *v += a * (level - *v);
            }
        }
    }
}

/// The film strip's weave left after `stabilise` steadied the scene, px per frame: a scratch
/// on the film jitters by it, and the frames carry it as `film_move`, as `stabilise` writes.
const JITTER: [f32; FRAMES] = [0.0, 1.7, -1.3, 0.9, -1.8, 1.2, -0.6];

/// Mark frame `t` as steadied with the film moved by `JITTER[t]`, and give the column where a
/// scratch at film column `cx` lands.
fn on_film(f: &mut Frame, t: usize, cx: f32) -> f32 {
    f.meta.film_move = Some([JITTER[t] as f64, 0.0, 0.0, 1.0]);
    cx + JITTER[t]
}

fn run_cpu(stage: &Scratch, frames: &[Frame]) -> Vec<Frame> {
    (0..frames.len())
        .map(|i| stage.run_cpu(&window(frames, i)).unwrap())
        .collect()
}

fn window<T>(frames: &[T], i: usize) -> Window<'_, T> {
    common::window(frames, i, stage_radius())
}

fn stage_radius() -> usize {
    scratch::RADIUS
}

/// Mean squared error over the pixels where `select(x, y)`.
fn mse_where(a: &Frame, b: &Frame, select: impl Fn(usize, usize) -> bool) -> f64 {
    let (mut s, mut n) = (0.0f64, 0usize);
    for p in 0..a.planes {
        for y in 0..H {
            for x in 0..W {
                if select(x, y) {
                    let i = (p * H + y) * W + x;
                    s += ((a.data[i] - b.data[i]) as f64).powi(2);
                    n += 1;
                }
            }
        }
    }
    s / n.max(1) as f64
}

struct Scores {
    in_before: f64,
    in_after: f64,
    out_after: f64,
}

fn score(clean: &[Frame], damaged: &[Frame], restored: &[Frame], masks: &[Vec<bool>]) -> Scores {
    let mut s = [0.0f64; 3];
    for t in 0..clean.len() {
        let m = &masks[t];
        s[0] += mse_where(&clean[t], &damaged[t], |x, y| m[y * W + x]);
        s[1] += mse_where(&clean[t], &restored[t], |x, y| m[y * W + x]);
        s[2] += mse_where(&clean[t], &restored[t], |x, y| !m[y * W + x]);
    }
    let n = clean.len() as f64;
    Scores {
        in_before: psnr_from_mse(s[0] / n),
        in_after: psnr_from_mse(s[1] / n),
        out_after: psnr_from_mse(s[2] / n),
    }
}

/// A still scene with a bright scratch static on the film, and a panning one with a
/// wandering, partial dark scratch; the film weaves under the steadied scene in both.
/// A named set: clean frames, damaged frames, and the per-pixel masks of the damage.
type Set = (&'static str, Vec<Frame>, Vec<Frame>, Vec<Vec<bool>>);

fn damaged_sets() -> Vec<Set> {
    let mut sets = Vec::new();
    // Static: the scratch sits on the same scene spot in every frame, so only spatial
    // interpolation can fill it.
    let clean: Vec<Frame> = (0..FRAMES).map(|t| scene(t, 3, 0.0, false)).collect();
    let mut damaged = clean.clone();
    let mut masks = vec![vec![false; W * H]; FRAMES];
    for (t, (f, m)) in damaged.iter_mut().zip(&mut masks).enumerate() {
        let cx = on_film(f, t, 40.3);
        scratch(f, cx, 2.0, 0..H, 0.95, 0.7, m);
    }
    sets.push(("static", clean, damaged, masks));
    // Wandering: the camera pans 2 px per frame and the scratch drifts and wanders the other way,
    // over two thirds of the height.
    let clean: Vec<Frame> = (0..FRAMES).map(|t| scene(t, 3, 2.0, false)).collect();
    let mut damaged = clean.clone();
    let mut masks = vec![vec![false; W * H]; FRAMES];
    for (t, (f, m)) in damaged.iter_mut().zip(&mut masks).enumerate() {
        let cx = on_film(f, t, 30.0 + 0.2 * t as f32 + 0.7 * (t as f32 * 0.45).sin());
        scratch(f, cx, 3.0, 8..52, 0.08, 0.6, m);
    }
    sets.push(("wandering", clean, damaged, masks));
    sets
}

#[test]
fn static_and_wandering_scratches_are_removed() {
    let stage = Scratch::new(ScratchParams::default()).unwrap();
    for (name, clean, damaged, masks) in damaged_sets() {
        let restored = run_cpu(&stage, &damaged);
        let s = score(&clean, &damaged, &restored, &masks);
        eprintln!(
            "{name}: PSNR in scratch {:.2} -> {:.2} dB, outside {:.2} dB",
            s.in_before, s.in_after, s.out_after
        );
        assert!(
            s.in_after >= s.in_before + 10.0,
            "{name}: inside the scratch {:.2} dB before, {:.2} dB after (want +10 dB)",
            s.in_before,
            s.in_after
        );
        assert!(
            s.in_after >= 27.0,
            "{name}: inside the scratch only {:.2} dB after",
            s.in_after
        );
        assert!(
            s.out_after >= 50.0,
            "{name}: outside the scratch {:.2} dB (want 50 dB or more)",
            s.out_after
        );
    }
}

/// A scene graded from dark at the top to bright at the bottom (so the two halves of every
/// band sit at different levels), textured, panning 1 px per frame, with strong flicker.
fn graded_scene(t: usize) -> Frame {
    let mut f = Frame::new(W, H, 3, FrameMeta::default());
    let gain = 1.0 + 0.1 * (2.1 * t as f32).sin();
    for p in 0..3 {
        for y in 0..H {
            for x in 0..W {
                let (sx, yf) = (x as f32 + t as f32, y as f32);
                let v = 0.25
                    + 0.4 * yf / H as f32
                    + 0.02 * (0.21 * sx + 0.13 * yf).sin()
                    + 0.015 * (0.07 * sx - 0.29 * yf + 1.0 + p as f32).sin()
                    + 0.02 * (hash01(x as u64, y as u64, t as u64 * 4 + p as u64, 13) - 0.5);
                f.data[(p * H + y) * W + x] = gain * v;
            }
        }
    }
    f
}

#[test]
fn faint_scratch_over_graded_flickering_scene_is_found_in_every_frame() {
    // The level changes by more than the scratch's contrast between the halves of a band; a
    // line must still be seen in both halves, and its contrast varies from frame to frame.
    let stage = Scratch::new(ScratchParams::default()).unwrap();
    let clean: Vec<Frame> = (0..FRAMES).map(graded_scene).collect();
    let mut damaged = clean.clone();
    let mut masks = vec![vec![false; W * H]; FRAMES];
    for (t, (f, m)) in damaged.iter_mut().zip(&mut masks).enumerate() {
        let opacity = 0.1 + 0.04 * (1.3 * t as f32).cos();
        let cx = on_film(f, t, 47.5);
        scratch(f, cx, 2.0, 0..H, 0.0, opacity, m);
    }
    let restored = run_cpu(&stage, &damaged);
    for t in 0..FRAMES {
        let m = &masks[t];
        let before = mse_where(&clean[t], &damaged[t], |x, y| m[y * W + x]);
        let after = mse_where(&clean[t], &restored[t], |x, y| m[y * W + x]);
        eprintln!(
            "frame {t}: PSNR in scratch {:.2} -> {:.2} dB",
            psnr_from_mse(before),
            psnr_from_mse(after)
        );
        assert!(
            psnr_from_mse(after) >= psnr_from_mse(before) + 4.0 && psnr_from_mse(after) >= 36.5,
            "frame {t}: the faint scratch was not removed (MSE {before:e} -> {after:e})"
        );
    }
    let s = score(&clean, &damaged, &restored, &masks);
    eprintln!(
        "graded: PSNR in scratch {:.2} -> {:.2} dB, outside {:.2} dB",
        s.in_before, s.in_after, s.out_after
    );
    assert!(
        s.in_after >= s.in_before + 10.0,
        "inside the scratch {:.2} -> {:.2} dB (want +10 dB)",
        s.in_before,
        s.in_after
    );
    assert!(
        s.out_after >= 50.0,
        "outside the scratch {:.2} dB (want 50 dB or more)",
        s.out_after
    );
}

#[test]
fn a_scratch_no_cue_can_place_is_left_alone_and_named_in_the_record() {
    // A still scene on a scan that was never steadied: a static scratch and a thin pole look
    // alike to every cue, so neither is touched and the record names the line.
    let stage = Scratch::new(ScratchParams::default()).unwrap();
    let clean: Vec<Frame> = (0..FRAMES).map(|t| scene(t, 3, 0.0, false)).collect();
    let mut damaged = clean.clone();
    let mut masks = vec![vec![false; W * H]; FRAMES];
    for (f, m) in damaged.iter_mut().zip(&mut masks) {
        scratch(f, 40.3, 2.0, 0..H, 0.95, 0.7, m);
    }
    let restored = run_cpu(&stage, &damaged);
    for (t, (a, b)) in damaged.iter().zip(&restored).enumerate() {
        assert_eq!(a.data, b.data, "frame {t} was changed");
    }
    let report = stage.report().unwrap();
    assert_eq!(report["repaired"]["pixels"], 0, "{report}");
    let undecided = &report["undecided_lines"]["frames"];
    for t in 0..FRAMES {
        let at = undecided[t.to_string()].as_array().expect("frame listed");
        assert!(
            at.iter().any(|x| (x.as_f64().unwrap() - 40.3).abs() < 1.0),
            "frame {t}: {undecided}"
        );
    }
}

#[test]
fn the_line_follows_the_film_or_the_scene_or_neither() {
    use scratch::{carrier, Carrier, Sighting};
    let sight = |at: f32, scene: f32, film: f32, dt: f32| Sighting {
        at,
        scene,
        film,
        dt,
    };
    let dts = [-2.0, -1.0, 1.0, 2.0];
    let seen = |at: [f32; 4], scene: [f32; 4], film: [f32; 4]| -> Vec<Sighting> {
        (0..4)
            .map(|i| sight(at[i], scene[i], film[i], dts[i]))
            .collect()
    };
    let weave = [1.2, -1.3, 1.4, -0.9];
    // Jitters with the film, the scene steady: a scratch.
    let film = seen([1.3, -1.2, 1.4, -1.0], [0.0; 4], weave);
    assert_eq!(carrier(&film), Carrier::Film);
    // Stays put while the scene weaves (a scan never steadied): a scratch, or a mark on the
    // gate, or the scene's motion misjudged (a figure walking past pulls it): no cue decides.
    let still = seen([0.1, 0.0, -0.1, 0.0], weave, [0.0; 4]);
    assert_eq!(carrier(&still), Carrier::Unknown);
    // Follows the scene while the film jitters: a pole.
    let pole = seen([0.1, 0.0, -0.1, 0.0], [0.0; 4], weave);
    assert_eq!(carrier(&pole), Carrier::Scene);
    // Moves smoothly against a steady scene (parallax, a followed subject): no cue decides,
    // even where a slow drift along the film would fit.
    let parallax = seen(
        [-1.0, -0.5, 0.5, 1.0],
        [0.6, 0.3, -0.3, -0.6],
        [0.1, -0.1, 0.2, 0.0],
    );
    assert_eq!(carrier(&parallax), Carrier::Unknown);
    // A still shot on a steady scan: film and scene put it in the same place.
    let locked = seen([0.1, 0.0, -0.1, 0.1], [0.0; 4], [0.0; 4]);
    assert_eq!(carrier(&locked), Carrier::Unknown);
    // A scratch wandering smoothly along the film is still the film's.
    let wander = seen(
        [1.2 - 0.9, -1.3 - 0.5, 1.4 + 0.5, -0.9 + 0.9],
        [0.0; 4],
        weave,
    );
    assert_eq!(carrier(&wander), Carrier::Film);
    // One sighting never decides for the film: some drift always fits it.
    assert_eq!(carrier(&film[..1]), Carrier::Unknown);
}

#[test]
fn polarity_knob_limits_what_is_removed() {
    // Only dark scratches asked for: the bright one stays exactly as it was.
    let params = ScratchParams {
        polarity: scratch::Polarity::Dark,
        ..ScratchParams::default()
    };
    let stage = Scratch::new(params).unwrap();
    let (_, _, damaged, _) = damaged_sets().remove(0);
    let restored = run_cpu(&stage, &damaged);
    for (t, (a, b)) in damaged.iter().zip(&restored).enumerate() {
        let changed = a.data.iter().zip(&b.data).filter(|(x, y)| x != y).count();
        assert_eq!(
            changed, 0,
            "frame {t}: {changed} samples changed with polarity = dark"
        );
    }
}

#[test]
fn poles_and_door_frames_are_left_intact() {
    let stage = Scratch::new(ScratchParams::default()).unwrap();
    // Still shot: the door-frame edges are steps, not lines. Panning shot: the pole is a line
    // but moves with the scene.
    for (name, pan, pole) in [("still", 0.0, false), ("panning", 3.0, true)] {
        let clean: Vec<Frame> = (0..FRAMES).map(|t| scene(t, 3, pan, pole)).collect();
        if pole {
            // The pole is a line to the detector; it is the tracking that keeps it.
            let cands = scratch::detect(&scratch::cpu::profiles(&clean[3]), &stage.params);
            let x = 21.5 - 3.0 * 3.0;
            assert!(
                cands.iter().any(|c| c.strong && (c.center - x).abs() < 1.0),
                "the pole at x = {x} is not even a candidate: {cands:?}"
            );
        }
        let stage = Scratch::new(ScratchParams::default()).unwrap();
        let restored = run_cpu(&stage, &clean);
        let report = stage.report().unwrap();
        assert_eq!(report["repaired"]["pixels"], 0, "{name}: {report}");
        assert_eq!(report["repaired"]["regions"], 0, "{name}: {report}");
        for (t, (a, b)) in clean.iter().zip(&restored).enumerate() {
            let changed = a.data.iter().zip(&b.data).filter(|(x, y)| x != y).count();
            assert_eq!(
                changed, 0,
                "{name}: frame {t} has {changed} samples changed (no scratch)"
            );
        }
    }
    // The pole in a panning shot beside a static scratch: the scratch goes, the pole stays.
    let clean: Vec<Frame> = (0..FRAMES).map(|t| scene(t, 1, 3.0, true)).collect();
    let mut damaged = clean.clone();
    let mut masks = vec![vec![false; W * H]; FRAMES];
    for (t, (f, m)) in damaged.iter_mut().zip(&mut masks).enumerate() {
        let cx = on_film(f, t, 70.0);
        scratch(f, cx, 2.0, 0..H, 0.95, 0.7, m);
    }
    let restored = run_cpu(&stage, &damaged);
    let s = score(&clean, &damaged, &restored, &masks);
    assert!(
        s.in_after >= s.in_before + 10.0,
        "pole + scratch: inside the scratch {:.2} -> {:.2} dB",
        s.in_before,
        s.in_after
    );
    for t in 0..FRAMES {
        let pole = |x: usize, _y: usize| {
            let sx = x as f32 + 3.0 * t as f32;
            (18.0..25.0).contains(&sx)
        };
        let e = mse_where(&clean[t], &restored[t], pole);
        assert!(e < 1e-10, "frame {t}: the pole was changed (MSE {e:e})");
    }
}

#[test]
fn masks_are_written_over_the_scratch() {
    let dir = std::env::temp_dir().join(format!("nitrate-scratch-masks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let params = ScratchParams {
        emit_masks: Some(dir.clone()),
        ..ScratchParams::default()
    };
    let stage = Scratch::new(params).unwrap();
    let (_, _, damaged, masks) = damaged_sets().remove(0);
    run_cpu(&stage, &damaged);
    for (t, truth) in masks.iter().enumerate() {
        let path = dir.join("scratch").join(format!("{t:06}.png"));
        let img = image::open(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .to_luma8();
        assert_eq!(img.dimensions(), (W as u32, H as u32));
        let covered = truth
            .iter()
            .enumerate()
            .filter(|(_, m)| **m)
            .all(|(i, _)| img.as_raw()[i] == 255);
        let missing: Vec<(usize, usize)> = truth
            .iter()
            .enumerate()
            .filter(|(i, m)| **m && img.as_raw()[*i] != 255)
            .map(|(i, _)| (i % W, i / W))
            .collect();
        assert!(
            covered,
            "frame {t}: the mask misses scratch pixels (x, y): {missing:?}"
        );
        let marked = img.as_raw().iter().filter(|v| **v == 255).count();
        let truth_n = truth.iter().filter(|m| **m).count();
        assert!(
            marked <= 3 * truth_n,
            "frame {t}: {marked} pixels marked for a {truth_n}-pixel scratch"
        );
        // The run's record counts the same pixels, in one region per scratch line.
        let report = stage.report().unwrap();
        let logged = &report["repaired"]["frames"][t.to_string()];
        assert_eq!(logged["pixels"], marked as u64, "frame {t}: {report}");
        assert!(
            logged["regions"].as_u64().unwrap() >= 1,
            "frame {t}: {report}"
        );
    }
    let report = stage.report().unwrap();
    assert_eq!(report["repaired"]["frames_touched"], masks.len());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gpu_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let stage = Scratch::new(ScratchParams::default()).unwrap();
    for (name, _, damaged, _) in damaged_sets() {
        let want = run_cpu(&stage, &damaged);
        let on_gpu: Vec<_> = damaged.iter().map(|f| gpu.upload(f).unwrap()).collect();
        for (i, want) in want.iter().enumerate() {
            let out = stage.run_gpu(&gpu, &window(&on_gpu, i)).unwrap();
            let got = gpu.download(&out).unwrap();
            gpu.recycle(out);
            let c = common::compare(
                &format!("scratch {name} frame {i}"),
                &got,
                want,
                scratch::GPU_TOLERANCE,
            );
            let allowed = (scratch::GPU_OUTLIERS * got.data.len() as f64).floor() as usize;
            assert!(c.over <= allowed, "{c} (allowed {allowed} outliers)");
            // Outliers are alternative repairs, never wild values.
            assert!(c.max_diff < 0.1, "{c}");
        }
    }
}

#[test]
fn profiles_are_identical_on_gpu_and_cpu() {
    let Some(gpu) = gpu() else { return };
    for (w, h, planes) in [(97, 65, 3), (33, 17, 1), (5, 3, 3)] {
        let f = common::random_frame(w, h, planes, 7);
        let want = scratch::cpu::profiles(&f);
        let got = scratch::gpu::profiles(&gpu, &gpu.upload(&f).unwrap()).unwrap();
        assert_eq!(got, want, "{w}x{h}x{planes}: profiles differ");
    }
}

#[test]
fn bad_parameters_are_refused_by_name() {
    let cases = [
        ("max_width = 0", "scratch.max_width"),
        ("sensitivity = 1.5", "scratch.sensitivity"),
        ("persistence = 9", "scratch.persistence"),
        ("consistency = 0", "scratch.consistency"),
        ("polarity = \"up\"", "polarity"),
        ("widht = 3", "widht"),
    ];
    for (text, key) in cases {
        let table: toml::Table = text.parse().unwrap();
        let err = match nitrate::stages::build("scratch", &table) {
            Ok(_) => panic!("{text}: accepted"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            err.contains(key),
            "{text}: message does not name {key}: {err}"
        );
    }
}

/// A vetoed scratch comes back as it was in the input, every other sample is bit-identical to
/// the run without the veto, and the record and repairs list it; on both backends.
#[test]
fn a_vetoed_scratch_is_left_and_the_rest_is_bit_identical() {
    let (_, _, damaged, _) = damaged_sets().remove(0);
    let plain = Scratch::new(ScratchParams::default()).unwrap();
    let vetoing = Scratch::new(ScratchParams {
        veto: vec!["scratch:3:1".into()],
        ..ScratchParams::default()
    })
    .unwrap();
    let want = run_cpu(&plain, &damaged);
    let got = run_cpu(&vetoing, &damaged);
    let check = |backend: &str, want: &[Frame], got: &[Frame], stage: &Scratch| {
        for (t, (w, g)) in want.iter().zip(got).enumerate() {
            let differ = w.data.iter().zip(&g.data).filter(|(a, b)| a != b).count();
            if t == 3 {
                assert!(differ > 0, "{backend}: the vetoed scratch was repaired");
                for (i, (a, b)) in w.data.iter().zip(&g.data).enumerate() {
                    if a != b {
                        assert_eq!(*b, damaged[3].data[i], "{backend}: sample {i}");
                    }
                }
            } else {
                assert_eq!(differ, 0, "{backend}: frame {t} changed");
            }
        }
        let rs = stage.repairs();
        let vetoed: Vec<&str> = rs
            .iter()
            .filter(|r| r.vetoed)
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(vetoed, ["scratch:3:1"], "{backend}");
        assert!(rs.iter().all(|r| r.stand_out >= 1.0), "{backend}: {rs:?}");
        let report = stage.report().unwrap();
        assert_eq!(report["repaired"]["frames"]["3"]["vetoed"], 1, "{report}");
        assert_eq!(report["repaired"]["frames"]["3"]["pixels"], 0, "{report}");
    };
    check("cpu", &want, &got, &vetoing);
    let Some(gpu) = gpu() else { return };
    let on_gpu: Vec<_> = damaged.iter().map(|f| gpu.upload(f).unwrap()).collect();
    let run = |stage: &Scratch| -> Vec<Frame> {
        (0..on_gpu.len())
            .map(|i| {
                let out = stage.run_gpu(&gpu, &window(&on_gpu, i)).unwrap();
                let f = gpu.download(&out).unwrap();
                gpu.recycle(out);
                f
            })
            .collect()
    };
    let vetoing = Scratch::new(ScratchParams {
        veto: vec!["scratch:3@0,0,96,64".into()],
        ..ScratchParams::default()
    })
    .unwrap();
    let (want, got) = (run(&plain), run(&vetoing));
    check("gpu", &want, &got, &vetoing);
}
