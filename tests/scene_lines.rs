//! Do no harm: a corpus of scene lines (door frames with mouldings, panelling, a pole, a cord,
//! window bars, facade columns) in still, panning, weaving and steadied shots, with a figure
//! walking in front. `scratch` and `dust` change no pixel of it (one known limit of `dust`, at
//! the last frame, named below); scratches on the film and one-frame specks added on top are
//! still removed, with little change beside them.

mod common;

use nitrate::frame::{Frame, FrameMeta};
use nitrate::metrics::psnr_from_mse;
use nitrate::stages::dust::{Dust, DustParams};
use nitrate::stages::scratch::{Scratch, ScratchParams};
use nitrate::stages::Stage;
use nitrate::synth::hash01;

const W: usize = 128;
const H: usize = 96;
const FRAMES: usize = 9;
/// Weave of the film in the gate, px per frame.
const WEAVE: [f32; FRAMES] = [0.0, 1.8, -1.4, 2.6, -0.9, 1.3, -2.2, 0.7, -1.6];

#[derive(Clone, Copy, Debug)]
enum Shot {
    /// Locked-off camera, steady scan.
    Still,
    /// The camera pans 2.5 px a frame.
    Panning,
    /// The picture weaves in the gate (a scan never steadied).
    Weaving,
    /// Weave removed by `stabilise`: the scene is steady, the film strip moved by the weave.
    Steadied,
    /// A pan steadied the same way: the scene pans smoothly, the film strip jitters.
    SteadiedPan,
}

impl Shot {
    /// Where scene column `x` lands in frame `t`, and how far the film strip was moved across
    /// in that frame, if it was.
    fn offsets(self, t: usize) -> (f32, Option<f32>) {
        let pan = -2.5 * t as f32;
        match self {
            Shot::Still => (0.0, None),
            Shot::Panning => (pan, None),
            Shot::Weaving => (WEAVE[t], None),
            Shot::Steadied => (0.0, Some(-WEAVE[t])),
            Shot::SteadiedPan => (pan, Some(-WEAVE[t])),
        }
    }
}

/// The scene at scene column `sx`, row `y`: texture, a door frame (a dark panel between
/// edges, a bright moulding on each), panelling grooves, a bright pole, a dark cord swaying,
/// window bars and a shaded facade column.
fn scene_at(sx: f32, y: f32, t: usize) -> f32 {
    let mut v = 0.45 + 0.05 * (0.19 * sx + 0.11 * y).sin() + 0.03 * (0.05 * sx - 0.23 * y).sin();
    let bar = |c: f32, half: f32| ((sx - c).abs() <= half) as u8 as f32;
    // Door frame: a step each side with a moulding line just inside it.
    if (20.0..36.0).contains(&sx) {
        v -= 0.18;
    }
    v += 0.2 * (bar(21.0, 0.6) + bar(35.0, 0.6));
    // Panelling: narrow dark grooves every 7 px.
    if (44.0..72.0).contains(&sx) && (sx - 44.0) % 7.0 < 1.0 {
        v -= 0.15;
    }
    // A pole, bright, 3 px.
    v += 0.35 * bar(80.0, 1.5);
    // A cord hanging over two thirds of the height, swaying a little.
    if y < 64.0 {
        v -= 0.25 * bar(88.0 + 0.8 * (0.9 * t as f32).sin(), 0.5);
    }
    // Window bars.
    if (30.0..70.0).contains(&y) {
        v -= 0.3 * (bar(96.0, 0.5) + bar(102.0, 0.5));
    }
    // A facade column: bright, shaded across.
    if (108.0..116.0).contains(&sx) {
        v += 0.2 - 0.02 * (sx - 108.0);
    }
    v
}

/// Frame `t` of `shot`, each pixel the mean of the scene over its width, with fine grain and,
/// where `walker`, a dark figure walking across in front of everything.
fn frame(shot: Shot, t: usize, walker: bool) -> Frame {
    let (off, film) = shot.offsets(t);
    let meta = FrameMeta {
        number: Some(t as i64),
        film_move: film.map(|f| [f as f64, 0.0, 0.0, 1.0]),
        ..FrameMeta::default()
    };
    let mut f = Frame::new(W, H, 3, meta);
    for p in 0..3 {
        for y in 0..H {
            for x in 0..W {
                // The sensor integrates light over the pixel: a line moving by a fraction
                // of a pixel changes the pixels it covers smoothly, as on a real scan.
                let sx = x as f32 - off;
                let taps = (0..8).map(|i| scene_at(sx + (i as f32 - 3.5) / 8.0, y as f32, t));
                let mut v = taps.sum::<f32>() / 8.0 + 0.01 * p as f32;
                if walker {
                    let (cx, cy) = (18.0 + 2.5 * t as f32, 60.0);
                    let (dx, dy) = ((x as f32 - cx) / 7.0, (y as f32 - cy) / 26.0);
                    if dx * dx + dy * dy < 1.0 {
                        v = 0.15 + 0.02 * (0.5 * y as f32).sin();
                    }
                }
                v += 0.015 * (hash01(x as u64, y as u64, (t * 3 + p) as u64, 5) - 0.5);
                f.data[(p * H + y) * W + x] = v;
            }
        }
    }
    f
}

fn run(stage: &dyn Stage, frames: &[Frame]) -> Vec<Frame> {
    let r = stage.temporal_radius();
    (0..frames.len())
        .map(|i| stage.run_cpu(&common::window(frames, i, r)).unwrap())
        .collect()
}

fn stages() -> Vec<(&'static str, Box<dyn Stage>)> {
    vec![
        (
            "scratch",
            Box::new(Scratch::new(ScratchParams::default()).unwrap()),
        ),
        ("dust", Box::new(Dust::new(DustParams::default()).unwrap())),
    ]
}

const SHOTS: [Shot; 5] = [
    Shot::Still,
    Shot::Panning,
    Shot::Weaving,
    Shot::Steadied,
    Shot::SteadiedPan,
];

/// Samples of `b` that differ from `a`, per frame.
fn changed(a: &[Frame], b: &[Frame]) -> Vec<usize> {
    a.iter()
        .zip(b)
        .map(|(a, b)| a.data.iter().zip(&b.data).filter(|(x, y)| x != y).count())
        .collect()
}

#[test]
fn scene_lines_are_never_repaired() {
    for shot in SHOTS {
        for walker in [false, true] {
            let frames: Vec<Frame> = (0..FRAMES).map(|t| frame(shot, t, walker)).collect();
            for (name, stage) in stages() {
                let n = changed(&frames, &run(stage.as_ref(), &frames));
                // Known limit of `dust`: on the last frame of a shot a figure uncovers picture
                // that no neighbour shows (the moulding beside the walker's head), and a
                // sliver of it that stands out in space is taken for dirt. Held to that
                // sliver; everything else must be untouched.
                let last = FRAMES - 1;
                let allowed = |t: usize| {
                    if name == "dust" && walker && t == last {
                        3 * 40
                    } else {
                        0
                    }
                };
                for (t, &c) in n.iter().enumerate() {
                    assert!(
                        c <= allowed(t),
                        "{name} changed {c} samples of frame {t} ({shot:?}, walker {walker}): {n:?}"
                    );
                }
            }
        }
    }
}

/// Damage on the film: a bright scratch at film column 40.4 (between the door frame and the
/// panelling) and a dark one at 12.6 (on the open wall left of the door), moving with the
/// film strip, and a few one-frame specks. The truth mask is every pixel the damage changed.
fn damage(frames: &mut [Frame], shot: Shot) -> Vec<Vec<bool>> {
    let mut masks = vec![vec![false; W * H]; frames.len()];
    for (t, (f, m)) in frames.iter_mut().zip(&mut masks).enumerate() {
        // The film's own position: steady in the scan, moved where the picture was steadied.
        let film = shot.offsets(t).1.unwrap_or(0.0);
        for (cx, level) in [(40.4 + film, 0.95), (12.6 + film, 0.05)] {
            for y in 6..H - 6 {
                for x in 0..W {
                    let d = (x as f32 - cx).abs();
                    if d >= 2.0 {
                        continue;
                    }
                    let c = (std::f32::consts::FRAC_PI_2 * d / 2.0).cos();
                    let a = 0.7 * c * c;
                    m[y * W + x] = true;
                    for p in 0..3 {
                        let v = &mut f.data[(p * H + y) * W + x];
                        *v += a * (level - *v);
                    }
                }
            }
        }
        // One-frame specks, 3x3, away from the scratches.
        let (sx, sy) = (12 + (t * 13) % 30, 14 + (t * 17) % 60);
        for y in sy..sy + 3 {
            for x in sx..sx + 3 {
                m[y * W + x] = true;
                for p in 0..3 {
                    f.data[(p * H + y) * W + x] = 0.97;
                }
            }
        }
    }
    masks
}

fn psnr_where(a: &[Frame], b: &[Frame], masks: &[Vec<bool>], inside: bool) -> f64 {
    let (mut s, mut n) = (0.0f64, 0usize);
    for ((fa, fb), m) in a.iter().zip(b).zip(masks) {
        for p in 0..3 {
            for (k, &inm) in m.iter().enumerate() {
                if inm == inside {
                    s += ((fa.data[p * W * H + k] - fb.data[p * W * H + k]) as f64).powi(2);
                    n += 1;
                }
            }
        }
    }
    psnr_from_mse(s / n.max(1) as f64)
}

/// Run scratch then dust over `damaged`; the output and the scratch stage's record.
fn restore(damaged: &[Frame]) -> (Vec<Frame>, serde_json::Value) {
    let scratch = Scratch::new(ScratchParams::default()).unwrap();
    let dust = Dust::new(DustParams::default()).unwrap();
    let out = run(&dust, &run(&scratch, damaged));
    (out, scratch.report().unwrap())
}

/// How far beside a defect its repair may reach, px: a scratch's repaired columns and dirt's
/// feathered mask. Inside this rim a repair can still change picture (a door edge beside a
/// scratch: a known gap, reported by [`rim_change`]); beyond it nothing may change.
const RIM: i64 = 3;

/// Whether pixel `k` lies within `RIM` of the mask `m`.
fn near(m: &[bool], k: usize) -> bool {
    let (x, y) = ((k % W) as i64, (k / W) as i64);
    (-RIM..=RIM).any(|j| {
        (-RIM..=RIM).any(|i| {
            let (xx, yy) = (x + i, y + j);
            (0..W as i64).contains(&xx)
                && (0..H as i64).contains(&yy)
                && m[yy as usize * W + xx as usize]
        })
    })
}

/// Samples changed beyond the rim of the truth masks, per frame.
fn changed_outside(damaged: &[Frame], out: &[Frame], masks: &[Vec<bool>]) -> Vec<usize> {
    damaged
        .iter()
        .zip(out)
        .zip(masks)
        .map(|((a, b), m)| {
            (0..3 * W * H)
                .filter(|&i| a.data[i] != b.data[i] && !near(m, i % (W * H)))
                .count()
        })
        .collect()
}

/// The largest change outside the truth masks but within their rim.
fn rim_change(damaged: &[Frame], out: &[Frame], masks: &[Vec<bool>]) -> f32 {
    let mut worst = 0.0f32;
    for ((a, b), m) in damaged.iter().zip(out).zip(masks) {
        for i in 0..3 * W * H {
            if !m[i % (W * H)] {
                worst = worst.max((a.data[i] - b.data[i]).abs());
            }
        }
    }
    worst
}

#[test]
fn damage_on_the_film_is_removed_and_spills_little() {
    // Steadied shots, still and panning: the film strip's jitter tells the scratches from
    // the scene lines.
    for shot in [Shot::Steadied, Shot::SteadiedPan] {
        for walker in [false, true] {
            let clean: Vec<Frame> = (0..FRAMES).map(|t| frame(shot, t, walker)).collect();
            let mut damaged = clean.clone();
            let masks = damage(&mut damaged, shot);
            let (out, _) = restore(&damaged);
            let before = psnr_where(&clean, &damaged, &masks, true);
            let after = psnr_where(&clean, &out, &masks, true);
            eprintln!("{shot:?}, walker {walker}: inside the damage {before:.2} -> {after:.2} dB");
            // Where the figure crosses a scratch, the bands it covers break the line's run
            // and that stretch is left: less is gained there.
            let gain = if walker { 6.0 } else { 8.0 };
            assert!(
                after >= before + gain,
                "{shot:?}, walker {walker}: inside the damage {before:.2} -> {after:.2} dB"
            );
            // Known gap: beside a scratch that runs next to other lines (the door frame, the
            // panelling) or a figure, the repair still reaches into them by a few pixels, and
            // its half bands reach a few rows past a scratch's ends. Held under 2 % of a
            // frame's samples here; the real footage's masks are the judge.
            let changed = changed_outside(&damaged, &out, &masks);
            let spill = rim_change(&damaged, &out, &masks);
            eprintln!("{shot:?}, walker {walker}: beside the damage up to {spill:.3}, {changed:?}");
            assert!(
                changed.iter().all(|&n| n * 100 <= 2 * 3 * W * H),
                "{shot:?}, walker {walker}: samples changed beyond {RIM} px of the damage, per \
                 frame: {changed:?}"
            );
        }
    }
}

#[test]
fn scratches_no_cue_can_place_are_left_and_named() {
    // A scan never steadied, still or weaving: the scratches stay put in the frame like the
    // pole and the door frame, so `scratch` leaves them, changing nothing, and its record
    // names them.
    for shot in [Shot::Still, Shot::Weaving] {
        let clean: Vec<Frame> = (0..FRAMES).map(|t| frame(shot, t, false)).collect();
        let mut damaged = clean.clone();
        damage(&mut damaged, shot);
        let stage = Scratch::new(ScratchParams::default()).unwrap();
        let out = run(&stage, &damaged);
        let report = stage.report().unwrap();
        assert_eq!(
            changed(&damaged, &out),
            vec![0; FRAMES],
            "{shot:?}: {report}"
        );
        let named = &report["undecided_lines"]["frames"];
        for t in 0..FRAMES {
            let at: Vec<f64> = named[t.to_string()]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
                .unwrap_or_default();
            for x in [40.4, 12.6] {
                assert!(
                    at.iter().any(|a| (a - x).abs() < 1.5),
                    "{shot:?} frame {t}: the scratch at {x} is not named: {at:?}"
                );
            }
        }
    }
}

#[test]
fn stabilise_tells_scratch_where_the_film_went() {
    // The picture weaves in the scan while the print's scratches stay put in it. `stabilise`
    // steadies the picture and records how it moved each frame; `scratch` then sees the
    // scratches jitter with those moves, removes them, and leaves the scene lines.
    use nitrate::stages::stabilise::{Stabilise, StabiliseParams};
    let clean: Vec<Frame> = (0..FRAMES)
        .map(|t| frame(Shot::Weaving, t, false))
        .collect();
    let mut damaged = clean.clone();
    damage(&mut damaged, Shot::Weaving);
    let stabilise = Stabilise::new(StabiliseParams::default()).unwrap();
    let steadied = run(&stabilise, &damaged);
    // The film moved against the weave (up to the path stabilise keeps).
    let moved: Vec<f32> = steadied
        .iter()
        .map(|f| f.meta.film_move.expect("stabilise records the film's move")[0] as f32)
        .collect();
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    let (mm, mw) = (mean(&moved), mean(&WEAVE));
    let (mut sxy, mut sxx, mut syy) = (0.0f32, 0.0f32, 0.0f32);
    for (m, w) in moved.iter().zip(WEAVE) {
        let (a, b) = (m - mm, mw - w);
        sxy += a * b;
        sxx += a * a;
        syy += b * b;
    }
    let r = sxy / (sxx * syy).sqrt();
    assert!(
        r > 0.9,
        "film moves {moved:?} against weave {WEAVE:?}: r = {r}"
    );
    let scratch = Scratch::new(ScratchParams::default()).unwrap();
    let out = run(&scratch, &steadied);
    let report = scratch.report().unwrap();
    let frames_repaired = (0..FRAMES)
        .filter(|t| report["repaired"]["frames"][t.to_string()]["regions"] == 2)
        .count();
    assert!(
        frames_repaired >= FRAMES - 2,
        "both scratches repaired in only {frames_repaired} frames: {report}"
    );
    // Every frame had something repaired.
    let changed = changed(&steadied, &out);
    assert!(changed.iter().all(|&n| n > 0), "{changed:?}");
}
