//! `degrade`: determinism, masks that cover exactly the local damage, weave and flicker as the
//! truth says, persistent scratches, and `run` end to end.

use std::path::Path;

use nitrate::degrade::{self, degrade_sequence, Defect, DegradeOptions, Plan, DEFAULT_DEFECTS};
use nitrate::frame::{Frame, FrameMeta};
use nitrate::io::{self, OutputFormat};
use nitrate::synth::scene_frame;
use serde_json::Value;

fn scene(width: usize, height: usize, planes: usize, frames: usize) -> Vec<Frame> {
    (0..frames)
        .map(|t| scene_frame(width, height, planes, t, 11))
        .collect()
}

fn flat(width: usize, height: usize, planes: usize, frames: usize, level: f32) -> Vec<Frame> {
    (0..frames)
        .map(|_| {
            let mut f = Frame::new(width, height, planes, FrameMeta::default());
            f.data.iter_mut().for_each(|v| *v = level);
            f
        })
        .collect()
}

fn mean(f: &Frame) -> f64 {
    f.data.iter().map(|&v| v as f64).sum::<f64>() / f.data.len() as f64
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn parse_defect_names() {
    assert_eq!("blotch".parse::<Defect>().unwrap(), Defect::Blotches);
    assert_eq!("Scratch".parse::<Defect>().unwrap(), Defect::Scratches);
    assert_eq!("fade".parse::<Defect>().unwrap(), Defect::Fading);
    assert_eq!(Defect::parse_list("all").unwrap(), Defect::ORDER.to_vec());
    assert_eq!(
        Defect::parse_list("default").unwrap(),
        Defect::in_order(DEFAULT_DEFECTS)
    );
    assert_eq!(
        Defect::parse_list("weave, dust,dust blur").unwrap(),
        vec![Defect::Blur, Defect::Dust, Defect::Weave]
    );
    let err = Defect::parse_list("dust,smudge").unwrap_err().to_string();
    assert!(err.contains("smudge") && err.contains("scratches"), "{err}");
    assert!(!DEFAULT_DEFECTS.contains(&Defect::Fading) && !DEFAULT_DEFECTS.contains(&Defect::Blur));
}

#[test]
fn same_seed_same_damage_other_seed_other_damage() {
    let clean = scene(48, 40, 3, 6);
    let all = Defect::ORDER;
    let (d1, m1, t1) = degrade_sequence(&clean, &all, 7, 1.5);
    let (d2, m2, t2) = degrade_sequence(&clean, &all, 7, 1.5);
    assert!(
        d1 == d2 && m1 == m2 && t1 == t2,
        "same seed gave different output"
    );
    let (d3, m3, t3) = degrade_sequence(&clean, &all, 8, 1.5);
    assert!(
        d1 != d3 && m1 != m3 && t1 != t3,
        "another seed gave the same output"
    );

    // Frames are independent of the order they are rendered in.
    let plan = Plan::new(
        (48, 40, 3),
        clean.len(),
        &all,
        7,
        1.5,
        &degrade::Model::default(),
    );
    for t in (0..clean.len()).rev() {
        let (d, m, _) = plan.render(t, &clean[t]);
        assert!(d == d1[t] && m == m1[t], "frame {t} rendered alone differs");
    }
    // Every defect leaves its mark in the truth.
    for key in ["blur", "grain", "fading", "scratch_tracks"] {
        assert!(!t1[key].is_null(), "truth lacks {key}");
    }
    let f0 = &t1["frames"][0];
    for key in ["weave", "flicker", "spots", "scratches", "mask_pixels"] {
        assert!(!f0[key].is_null(), "truth frame lacks {key}: {f0}");
    }
}

#[test]
fn strength_zero_changes_nothing() {
    let clean = scene(40, 32, 3, 3);
    let (d, m, _) = degrade_sequence(&clean, &Defect::ORDER, 3, 0.0);
    assert_eq!(d, clean);
    assert!(m.iter().all(|m| m.data.iter().all(|&v| v == 0.0)));
}

/// With only local defects the degraded frame equals the clean one outside the mask, bit for
/// bit, and differs from it at (nearly) every masked pixel.
fn check_masks(planes: usize) {
    let clean = scene(96, 64, planes, 8);
    let local = [Defect::Dust, Defect::Blotches, Defect::Scratches];
    let (deg, masks, truth) = degrade_sequence(&clean, &local, 21, 2.0);
    let (mut masked, mut changed, mut total) = (0usize, 0usize, 0usize);
    for (t, ((c, d), m)) in clean.iter().zip(&deg).zip(&masks).enumerate() {
        assert_eq!((m.width, m.height, m.planes), (96, 64, 1));
        let n = m.plane_len();
        let mut here = 0;
        for i in 0..n {
            let differs = (0..planes).any(|p| c.data[p * n + i] != d.data[p * n + i]);
            match m.data[i] {
                0.0 => assert!(!differs, "frame {t} pixel {i} changed outside the mask"),
                1.0 => {
                    here += 1;
                    changed += differs as usize;
                }
                other => panic!("mask value {other} is neither 0 nor 1"),
            }
        }
        assert_eq!(
            truth["frames"][t]["mask_pixels"].as_u64(),
            Some(here as u64),
            "frame {t}"
        );
        masked += here;
        total += n;
    }
    assert!(masked > 0, "no damage at all");
    assert!(masked < total / 3, "mask covers {masked} of {total} pixels");
    assert!(
        changed as f64 >= 0.98 * masked as f64,
        "only {changed} of {masked} masked pixels changed"
    );
}

#[test]
fn masks_cover_exactly_the_local_damage_colour() {
    check_masks(3);
}

#[test]
fn masks_cover_exactly_the_local_damage_mono() {
    check_masks(1);
}

/// A frame of gaussian blobs (sigma 2.5 px) on a flat background.
fn blobs(width: usize, height: usize, centres: &[(f32, f32)]) -> Frame {
    let mut f = Frame::new(width, height, 1, FrameMeta::default());
    for y in 0..height {
        for x in 0..width {
            let v: f32 = centres
                .iter()
                .map(|&(cx, cy)| {
                    (-((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)) / (2.0 * 2.5 * 2.5)).exp()
                })
                .sum();
            f.set(0, x, y, 0.1 + 0.8 * v);
        }
    }
    f
}

/// Centroid of `f - 0.1` within 9 px of `(x, y)`.
fn centroid(f: &Frame, (x, y): (f32, f32)) -> (f32, f32) {
    let (mut sx, mut sy, mut s) = (0.0f64, 0.0f64, 0.0f64);
    for py in 0..f.height {
        for px in 0..f.width {
            let (dx, dy) = (px as f32 - x, py as f32 - y);
            if dx * dx + dy * dy <= 81.0 {
                let v = (f.get(0, px, py) - 0.1) as f64;
                sx += v * px as f64;
                sy += v * py as f64;
                s += v;
            }
        }
    }
    ((sx / s) as f32, (sy / s) as f32)
}

#[test]
fn weave_moves_frames_as_the_truth_says() {
    let (w, h) = (128usize, 96usize);
    let c = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
    let centres = [c, (c.0 - 40.0, c.1 - 25.0), (c.0 + 38.0, c.1 + 22.0)];
    let clean = vec![blobs(w, h, &centres); 16];
    let (deg, masks, truth) = degrade_sequence(&clean, &[Defect::Weave], 5, 3.0);
    assert!(
        masks.iter().all(|m| m.data.iter().all(|&v| v == 0.0)),
        "weave is not local damage"
    );
    let mut largest = 0.0f32;
    for (t, d) in deg.iter().enumerate() {
        let wv = &truth["frames"][t]["weave"];
        let (dx, dy, rot) = (
            num(&wv["dx"]) as f32,
            num(&wv["dy"]) as f32,
            num(&wv["rotation_deg"]) as f32,
        );
        assert!(
            rot.abs() <= 0.3 + 1e-6,
            "rotation {rot} beyond 0.1 degree times strength"
        );
        largest = largest.max(dx.abs()).max(dy.abs());
        let (s, co) = rot.to_radians().sin_cos();
        for &(px, py) in &centres {
            let (ux, uy) = (px - c.0, py - c.1);
            let want = (co * ux - s * uy + c.0 + dx, s * ux + co * uy + c.1 + dy);
            let got = centroid(d, want);
            let err = ((got.0 - want.0).powi(2) + (got.1 - want.1).powi(2)).sqrt();
            assert!(
                err < 0.05,
                "frame {t}: blob at {want:?} found at {got:?} ({err:.3} px off)"
            );
        }
        // And the inverse brings the clean frame back, away from the borders.
        let back = degrade::weave::unwarp(d, dx, dy, rot);
        for y in 12..h - 12 {
            for x in 12..w - 12 {
                let e = (back.get(0, x, y) - clean[t].get(0, x, y)).abs();
                assert!(e < 5e-3, "frame {t}: unweaved pixel ({x}, {y}) is {e} off");
            }
        }
    }
    assert!(
        largest > 0.3,
        "weave too small to test anything: {largest} px"
    );
}

#[test]
fn flicker_follows_the_truth_gain_and_offset() {
    // A flat frame: the regional and channel terms average out exactly.
    let frames = 24;
    let clean = flat(40, 30, 3, frames, 0.4);
    let (deg, _, truth) = degrade_sequence(&clean, &[Defect::Flicker], 9, 1.0);
    let gains: Vec<f64> = (0..frames)
        .map(|t| num(&truth["frames"][t]["flicker"]["gain"]))
        .collect();
    for t in 0..frames {
        let f = &truth["frames"][t]["flicker"];
        let want = num(&f["gain"]) * 0.4 + num(&f["offset"]);
        let got = mean(&deg[t]);
        assert!(
            (got - want).abs() < 2e-4,
            "frame {t}: mean {got:.5}, truth predicts {want:.5}"
        );
    }
    let spread = gains.iter().cloned().fold(f64::MIN, f64::max)
        - gains.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread > 0.04, "gain hardly changes: spread {spread}");
    // Regional and per-channel breathing really vary over the frame and between channels.
    let d = &deg[3];
    let n = d.plane_len();
    let (lo, hi) = d.data[..n]
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    assert!(hi - lo > 1e-3, "no regional breathing");

    // A real picture: the ratio of means follows the global terms closely.
    let clean = scene(64, 48, 3, frames);
    let (deg, _, truth) = degrade_sequence(&clean, &[Defect::Flicker], 9, 1.0);
    for t in 0..frames {
        let f = &truth["frames"][t]["flicker"];
        let want = num(&f["gain"]) * mean(&clean[t]) + num(&f["offset"]);
        let got = mean(&deg[t]);
        assert!(
            (got - want).abs() < 0.01,
            "frame {t}: mean {got:.4}, truth predicts {want:.4}"
        );
    }
}

#[test]
fn scratches_persist_at_the_truth_columns() {
    let (w, h) = (96usize, 64usize);
    let frames = 12;
    let clean = flat(w, h, 1, frames, 0.5);
    let (deg, masks, truth) = degrade_sequence(&clean, &[Defect::Scratches], 4, 1.0);
    let tracks = truth["scratch_tracks"].as_array().unwrap();
    assert!(!tracks.is_empty(), "no scratch tracks");
    let mut longest = 0;
    for track in tracks {
        let id = track["id"].as_u64().unwrap();
        let (first, last) = (
            track["first_frame"].as_u64().unwrap() as usize,
            track["last_frame"].as_u64().unwrap() as usize,
        );
        longest = longest.max(last - first + 1);
        let mut previous: Option<f64> = None;
        for t in first..=last {
            let s = truth["frames"][t]["scratches"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["track"].as_u64() == Some(id))
                .unwrap_or_else(|| panic!("track {id} missing from frame {t}"));
            let col = num(&s["column"]);
            if let Some(p) = previous {
                assert!(
                    (col - p).abs() < 1.0,
                    "track {id} jumps from column {p} to {col} at frame {t}"
                );
            }
            previous = Some(col);
            // Most rows of its span are marked and changed at that column.
            let (y0, y1) = (
                num(&s["rows"][0]).ceil() as usize,
                num(&s["rows"][1]).floor() as usize,
            );
            let x = col.round() as usize;
            let rows = (y0..=y1)
                .filter(|&y| masks[t].get(0, x, y) == 1.0 && deg[t].get(0, x, y) != 0.5)
                .count();
            assert!(
                rows * 2 > y1 + 1 - y0,
                "frame {t}: track {id} marks only {rows} rows at column {x}"
            );
        }
        for (t, m) in masks.iter().enumerate() {
            if !(first..=last).contains(&t) {
                continue;
            }
            // Nothing is marked far from every scratch of the frame.
            let cols: Vec<f64> = truth["frames"][t]["scratches"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| num(&s["column"]))
                .collect();
            for x in 0..w {
                if cols.iter().all(|c| (x as f64 - c).abs() > 5.0) {
                    assert!(
                        (0..h).all(|y| m.get(0, x, y) == 0.0),
                        "frame {t}: column {x} marked away from scratches"
                    );
                }
            }
        }
    }
    assert!(
        longest >= 6,
        "scratches should persist over many frames, longest lives {longest}"
    );
}

fn write_clean(dir: &Path, frames: usize) -> Vec<Frame> {
    std::fs::create_dir_all(dir).unwrap();
    (0..frames)
        .map(|t| {
            let f = scene_frame(64, 48, 3, t, 2);
            io::write_frame(
                &dir.join(format!("shot_{:04}.png", 101 + t)),
                &f,
                OutputFormat::Png { bits: 8 },
            )
            .unwrap();
            io::read_frame(&dir.join(format!("shot_{:04}.png", 101 + t))).unwrap()
        })
        .collect()
}

#[test]
fn run_writes_degraded_clean_masks_and_truth() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    let clean = write_clean(&input, 5);
    let out = tmp.path().join("out");
    let mut opts = DegradeOptions::new(&input, &out);
    opts.seed = 42;
    let summary = degrade::run(&opts).unwrap();
    assert_eq!(summary.frames, 5);
    assert_eq!(summary.format, "PNG 16-bit");

    let (deg_mem, masks_mem, _) = degrade_sequence(&clean, DEFAULT_DEFECTS, 42, 1.0);
    for (t, c) in clean.iter().enumerate() {
        let name = format!("shot_{:04}.png", 101 + t);
        let d = out.join("degraded").join(&name);
        let r = out.join("clean").join(&name);
        let m = out.join("mask").join(&name);
        let (di, ri, mi) = (
            io::read_info(&d).unwrap(),
            io::read_info(&r).unwrap(),
            io::read_info(&m).unwrap(),
        );
        assert_eq!(
            (di.meta.bit_depth, di.planes, di.width, di.height),
            (16, 3, 64, 48)
        );
        assert_eq!(
            (ri.meta.bit_depth, ri.planes, ri.width, ri.height),
            (16, 3, 64, 48)
        );
        assert_eq!(
            (mi.meta.bit_depth, mi.planes, mi.width, mi.height),
            (8, 1, 64, 48)
        );
        // The reference is the clean frame at 16 bits; the degraded frame is the in-memory one.
        let rf = io::read_frame(&r).unwrap();
        assert!(
            rf.data
                .iter()
                .zip(&c.data)
                .all(|(a, b)| (a - b).abs() < 1e-6),
            "{name}: reference differs"
        );
        let df = io::read_frame(&d).unwrap();
        let worst = df
            .data
            .iter()
            .zip(&deg_mem[t].data)
            .map(|(a, b)| (a - b.clamp(0.0, 1.0)).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst <= 0.6 / 65535.0,
            "{name}: degraded file differs from degrade_sequence by {worst}"
        );
        let mf = io::read_frame(&m).unwrap();
        assert_eq!(mf.data, masks_mem[t].data, "{name}: mask differs");
    }
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("truth.json")).unwrap()).unwrap();
    assert_eq!(truth["seed"], 42);
    assert_eq!(truth["options"]["seed"], 42);
    assert_eq!(truth["frames"].as_array().unwrap().len(), 5);
    assert_eq!(truth["frames"][2]["name"], "shot_0103.png");
    assert_eq!(truth["frames"][2]["number"], 103);
    let names: Vec<&str> = truth["defects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["grain", "dust", "blotches", "scratches", "flicker", "weave"]
    );

    // A second run into the same place is refused, and leaves everything as it was.
    let before = std::fs::read(out.join("truth.json")).unwrap();
    let err = format!("{:#}", degrade::run(&opts).unwrap_err());
    assert!(
        err.contains("already holds") && err.contains(&out.display().to_string()),
        "{err}"
    );
    assert_eq!(std::fs::read(out.join("truth.json")).unwrap(), before);

    // With overwrite it replaces the run and removes frames the new run does not have.
    std::fs::remove_file(input.join("shot_0105.png")).unwrap();
    opts.overwrite = true;
    opts.seed = 43;
    let summary = degrade::run(&opts).unwrap();
    assert_eq!((summary.frames, summary.removed_stale), (4, 3));
    for dir in ["degraded", "clean", "mask"] {
        assert_eq!(
            std::fs::read_dir(out.join(dir)).unwrap().count(),
            4,
            "{dir}"
        );
    }
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("truth.json")).unwrap()).unwrap();
    assert_eq!(truth["seed"], 43);
}

#[test]
fn run_refuses_bad_options_and_its_own_input() {
    let tmp = tempfile::tempdir().unwrap();
    // Input frames in a folder named `clean`, output one level up: OUT/clean is the input.
    let input = tmp.path().join("clean");
    write_clean(&input, 2);
    let mut opts = DegradeOptions::new(&input, tmp.path());
    opts.overwrite = true;
    let err = format!("{:#}", degrade::run(&opts).unwrap_err());
    assert!(err.contains("input"), "{err}");
    assert_eq!(
        std::fs::read_dir(&input).unwrap().count(),
        2,
        "input folder touched"
    );

    let mut opts = DegradeOptions::new(&input, tmp.path().join("a"));
    opts.strength = 4.0;
    assert!(format!("{:#}", degrade::run(&opts).unwrap_err()).contains("strength"));
    opts.strength = 1.0;
    opts.format = Some("gif".into());
    assert!(format!("{:#}", degrade::run(&opts).unwrap_err()).contains("gif"));
    let opts = DegradeOptions::new(tmp.path().join("missing"), tmp.path().join("b"));
    assert!(format!("{:#}", degrade::run(&opts).unwrap_err()).contains("missing"));
}

/// A library of two kinds of matte, made here: a thin arc ("hair") and a soft disc ("blob"),
/// 64x64 RGBA, white with the artefact in alpha.
fn matte_library(dir: &Path) {
    for (kind, n) in [("hair", 3), ("blob", 2)] {
        std::fs::create_dir_all(dir.join(kind)).unwrap();
        for k in 0..n {
            let img = image::RgbaImage::from_fn(64, 64, |x, y| {
                let (dx, dy) = (x as f32 - 32.0, y as f32 - 32.0);
                let r = (dx * dx + dy * dy).sqrt();
                let a = match kind {
                    "hair" => {
                        (1.0 - (r - 20.0 - k as f32).abs()).max(0.0) * (dx > -10.0) as u8 as f32
                    }
                    _ => (1.0 - (r - 10.0 - 3.0 * k as f32) / 3.0).clamp(0.0, 1.0),
                };
                image::Rgba([255, 255, 255, (a * 255.0) as u8])
            });
            img.save(dir.join(kind).join(format!("{kind}-{k}.png")))
                .unwrap();
        }
    }
}

#[test]
fn artefacts_of_real_shapes_are_composited_and_masked_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let clean_dir = dir.path().join("clean");
    let clean = write_clean(&clean_dir, 6);
    let lib = dir.path().join("mattes");
    matte_library(&lib);
    let run = |out: &str, kinds: &[&str]| {
        degrade::run(&DegradeOptions {
            defects: Vec::new(),
            seed: 4,
            strength: 2.0,
            artifacts: Some(lib.clone()),
            artifact_kinds: kinds.iter().map(|k| k.to_string()).collect(),
            ..DegradeOptions::new(&clean_dir, dir.path().join(out))
        })
    };
    let s = run("a", &["hair"]).unwrap();
    assert!(s.artifacts >= 3, "{} artefacts", s.artifacts);
    assert_eq!(s.spots, 0);
    let truth: Value = serde_json::from_str(&std::fs::read_to_string(&s.truth).unwrap()).unwrap();
    let mut drawn = 0;
    for (t, c) in clean.iter().enumerate() {
        let name = truth["frames"][t]["name"].as_str().unwrap();
        for a in truth["frames"][t]["artifacts"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert_eq!(a["kind"], "hair", "{a}");
            drawn += 1;
        }
        // Changed exactly where the mask says, and nowhere else.
        let d = io::read_frame(&s.degraded_dir.join(name)).unwrap();
        let m = io::read_frame(&s.mask_dir.join(name.replace(".dpx", ".png"))).unwrap();
        let c16 = io::read_frame(&s.clean_dir.join(name)).unwrap();
        assert_eq!(c16.data.len(), c.data.len());
        let n = d.plane_len();
        for i in 0..n {
            let changed = (0..d.planes).any(|p| d.data[p * n + i] != c16.data[p * n + i]);
            if m.data[i] < 0.5 {
                assert!(!changed, "frame {t}: pixel {i} changed outside the mask");
            }
        }
    }
    assert_eq!(drawn, s.artifacts);
    // The same seed draws the same artefacts, bit for bit; the blobs are another library.
    let again = run("b", &["hair"]).unwrap();
    for t in 0..6 {
        let name = truth["frames"][t]["name"].as_str().unwrap();
        assert_eq!(
            std::fs::read(s.degraded_dir.join(name)).unwrap(),
            std::fs::read(again.degraded_dir.join(name)).unwrap()
        );
    }
    let blobs = run("c", &["blob"]).unwrap();
    assert!(
        blobs.masked_fraction > s.masked_fraction,
        "discs cover more than arcs"
    );
    // Bad libraries are refused by name.
    let e = format!("{:#}", run("d", &["lint"]).unwrap_err());
    assert!(
        e.contains("no mattes of kind 'lint'") && e.contains("blob, hair"),
        "{e}"
    );
    let flat = dir.path().join("flat");
    std::fs::create_dir_all(flat.join("grey")).unwrap();
    image::GrayImage::new(8, 8)
        .save(flat.join("grey").join("g.png"))
        .unwrap();
    let e = format!(
        "{:#}",
        degrade::run(&DegradeOptions {
            defects: Vec::new(),
            strength: 3.0,
            seed: 1,
            artifacts: Some(flat.clone()),
            ..DegradeOptions::new(&clean_dir, dir.path().join("e"))
        })
        .unwrap_err()
    );
    assert!(e.contains("g.png") && e.contains("no alpha"), "{e}");
}
