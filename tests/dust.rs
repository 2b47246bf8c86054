//! `dust`: one-frame spots are removed on a static and on a panning scene, the rest of the
//! picture is left exactly as it was, a fast-moving object is left alone, masks go out and
//! come in, bad input is refused clearly, a spike where motion failed around it (or one side's
//! frames disagree around it) is dirt only if it stands out in space, closed on all sides, so a
//! speck on a panel swinging past is repaired and a line running off the frame is not, a
//! repair moves a sample
//! no further than it stands out (one neighbour showing something else there does not hold it
//! back), one-pixel spikes beside a speck on the frames around it do not excuse it while a
//! one-pixel spark is kept, a piece of dirt the re-match mostly did not find stays dirt whole
//! (the GPU's union-find giving the CPU's pieces), most of a semi-transparent blotch goes, dirt is found where a
//! frame two away was lost by the compensation, dirt over an occlusion (the frames before and
//! after disagree) is found, picture entering at the frame border is left
//! alone, at the ends of a shot faint dirt standing out in space is repaired while uncovered
//! picture is left alone, and the GPU agrees with the CPU reference.

mod common;

use common::{gpu, Rng};
use nitrate::frame::{Frame, FrameMeta};
use nitrate::gpu::{GpuContext, GpuFrame};
use nitrate::stages::dust::cpu::{self, Lumas};
use nitrate::stages::dust::{self, Dust, DustParams, Settings};
use nitrate::stages::{Stage, Window};
use nitrate::synth::hash01;

const W: usize = 96;
const H: usize = 64;

/// Smooth two-octave value noise, continuous so sub-pixel pans are true resamplings.
fn texture(x: f32, y: f32) -> f32 {
    let octave = |cell: f32, layer: u64| {
        let (fx, fy) = (x / cell, y / cell);
        let (ix, iy) = (fx.floor(), fy.floor());
        let (tx, ty) = (fx - ix, fy - iy);
        let h = |dx: f32, dy: f32| {
            hash01(
                (ix + dx + 1000.0) as u64,
                (iy + dy + 1000.0) as u64,
                layer,
                9,
            )
        };
        let top = h(0.0, 0.0) * (1.0 - tx) + h(1.0, 0.0) * tx;
        let bot = h(0.0, 1.0) * (1.0 - tx) + h(1.0, 1.0) * tx;
        top * (1.0 - ty) + bot * ty
    };
    0.2 + 0.35 * octave(6.0, 1) + 0.3 * octave(19.0, 2)
}

/// Frame `t` of a scene panning by `(vx, vy)` pixels per frame; RGB with slightly different
/// planes.
fn scene(t: usize, vx: f32, vy: f32) -> Frame {
    let mut f = Frame::new(W, H, 3, FrameMeta::default());
    f.meta.number = Some(100 + t as i64);
    for p in 0..3 {
        for y in 0..H {
            for x in 0..W {
                let v = texture(x as f32 + vx * t as f32, y as f32 + vy * t as f32);
                f.set(p, x, y, v * (1.0 - 0.08 * p as f32));
            }
        }
    }
    f
}

/// A spot: centre, radius and level (dark or bright dirt).
#[derive(Clone, Copy, Debug)]
struct Spot {
    x: f32,
    y: f32,
    r: f32,
    level: f32,
}

/// Seeded spots clear of the frame edge.
fn spots(seed: u64, n: usize) -> Vec<Spot> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| Spot {
            x: rng.range(8.0, W as f32 - 8.0),
            y: rng.range(8.0, H as f32 - 8.0),
            r: rng.range(1.2, 3.5),
            level: if rng.range(0.0, 1.0) < 0.7 {
                0.03
            } else {
                0.97
            },
        })
        .collect()
}

fn paint(frame: &mut Frame, spots: &[Spot]) {
    for s in spots {
        for y in 0..H {
            for x in 0..W {
                let d = ((x as f32 - s.x).powi(2) + (y as f32 - s.y).powi(2)).sqrt();
                if d <= s.r {
                    for p in 0..frame.planes {
                        frame.set(p, x, y, s.level);
                    }
                }
            }
        }
    }
}

/// Whether `(x, y)` is within `margin` pixels of a spot.
fn near(spots: &[Spot], x: usize, y: usize, margin: f32) -> bool {
    spots
        .iter()
        .any(|s| ((x as f32 - s.x).powi(2) + (y as f32 - s.y).powi(2)).sqrt() <= s.r + margin)
}

/// Five frames of a scene with different spots on each (dirt is on every frame, never in the
/// same place); returns the clean centre, the dirty frames and the centre's spots.
fn dirty_window(vx: f32, vy: f32, seed: u64) -> (Frame, Vec<Frame>, Vec<Spot>) {
    let mut frames = Vec::new();
    let mut center_spots = Vec::new();
    for t in 0..5 {
        let mut f = scene(t, vx, vy);
        let s = spots(seed * 10 + t as u64, 3);
        paint(&mut f, &s);
        if t == 2 {
            center_spots = s;
        }
        frames.push(f);
    }
    (scene(2, vx, vy), frames, center_spots)
}

/// A plane of `w` x `h` values on the GPU, as the shaders read luma and flags.
fn upload_plane(gpu: &GpuContext, w: usize, h: usize, v: &[f32]) -> GpuFrame {
    let f = Frame {
        data: v.to_vec(),
        ..Frame::new(w, h, 1, FrameMeta::default())
    };
    gpu.upload(&f).unwrap()
}

fn window<T>(frames: &[T], c: usize) -> Window<'_, T> {
    Window {
        before: (0..c).rev().map(|i| &frames[i]).collect(),
        center: &frames[c],
        after: (c + 1..frames.len()).map(|i| &frames[i]).collect(),
    }
}

/// Where a GPU exists, its output of `stage` on the window around frame 2 of `frames` equals
/// the CPU's, `want`, bit for bit (the shaders mirror the CPU reference's arithmetic).
fn assert_gpu_matches(name: &str, stage: &Dust, frames: &[Frame], want: &Frame) {
    let Some(gpu) = gpu() else { return };
    let up: Vec<_> = frames.iter().map(|f| gpu.upload(f).unwrap()).collect();
    let got = gpu
        .download(&stage.run_gpu(&gpu, &window(&up, 2)).unwrap())
        .unwrap();
    let cmp = common::compare(name, &got, want, 1e-5);
    assert!(
        cmp.max_diff <= stage.gpu_tolerance() && cmp.over == 0,
        "{cmp}"
    );
}

/// Spots are repaired to within `tol` of the clean frame, and every sample further than the
/// mask's reach from a spot is exactly the input's.
fn assert_removed(name: &str, out: &Frame, input: &Frame, clean: &Frame, spots: &[Spot], tol: f32) {
    let p = DustParams::default();
    let reach = (p.dilate + p.feather + 1) as f32;
    let mut worst_in = 0.0f32;
    for pl in 0..3 {
        for y in 0..H {
            for x in 0..W {
                let (o, i, c) = (out.get(pl, x, y), input.get(pl, x, y), clean.get(pl, x, y));
                if near(spots, x, y, 0.0) {
                    worst_in = worst_in.max((o - c).abs());
                } else if !near(spots, x, y, reach + 1.0) {
                    assert_eq!(
                        o, i,
                        "{name}: untouched sample ({x}, {y}) plane {pl} changed"
                    );
                }
            }
        }
    }
    assert!(
        worst_in <= tol,
        "{name}: a spot sample is {worst_in} from the clean frame (allowed {tol})"
    );
}

#[test]
fn spots_on_a_static_scene_are_removed() {
    let (clean, frames, s) = dirty_window(0.0, 0.0, 1);
    let stage = Dust::new(DustParams::default()).unwrap();
    let out = stage.run_cpu(&window(&frames, 2)).unwrap();
    assert_removed("static", &out, &frames[2], &clean, &s, 0.02);
}

#[test]
fn a_repair_takes_the_level_of_a_lighter_frame() {
    // The centre frame is 0.03 lighter than its four neighbours (flicker the deflicker stage
    // left, or a frame printed lighter). A fill at the neighbours' level would leave the spot
    // a dark hole of 0.03; lifted by the centre's level around the spot, the repair matches
    // the centre's own picture.
    let clean = scene(0, 0.0, 0.0);
    let mut center = clean.clone();
    center.data.iter_mut().for_each(|v| *v += 0.03);
    let lighter = center.clone();
    let spot = [Spot {
        x: 40.0,
        y: 30.0,
        r: 3.0,
        level: 0.03,
    }];
    paint(&mut center, &spot);
    let alpha: Vec<f32> = (0..W * H)
        .map(|k| near(&spot, k % W, k / W, 1.0) as u32 as f32)
        .collect();
    let luma = |f: &Frame| nitrate::motion::cpu::luma(f).data;
    let (lc, ln) = (luma(&center), luma(&clean));
    let lm = Lumas {
        width: W,
        height: H,
        center: &lc,
        nb: [Some(&ln), Some(&ln), Some(&ln), Some(&ln)],
    };
    let (out, _) = cpu::repair(&center, &[Some(&clean); 4], &lm, &alpha, &settings());
    for p in 0..3 {
        for y in 0..H {
            for x in 0..W {
                let (o, want) = (out.get(p, x, y), lighter.get(p, x, y));
                assert!(
                    (o - want).abs() < 1e-4,
                    "({x}, {y}) plane {p}: {o}, the lighter centre has {want}"
                );
            }
        }
    }
}

#[test]
fn spots_on_a_panning_scene_are_removed() {
    let (clean, frames, s) = dirty_window(2.5, -1.25, 2);
    let stage = Dust::new(DustParams::default()).unwrap();
    let out = stage.run_cpu(&window(&frames, 2)).unwrap();
    // Bilinear compensation of a sub-pixel pan is not exact; still far below the spot levels.
    assert_removed("pan", &out, &frames[2], &clean, &s, 0.08);
}

#[test]
fn on_the_first_frame_dirt_standing_out_in_space_is_repaired() {
    // Neighbours on one side only: a bright speck on dark picture is far beyond them, and a
    // faint one (0.1 above the picture, under the one-sided threshold of eight times the
    // base) stands out of the picture around it too: both are repaired, the rest untouched.
    let frames: Vec<Frame> = (0..5).map(|t| scene(t, 0.0, 0.0)).collect();
    let clean = frames[2].clone();
    let darkest = (8..H - 8)
        .flat_map(|y| (8..W / 2).map(move |x| (x, y)))
        .min_by(|a, b| clean.get(0, a.0, a.1).total_cmp(&clean.get(0, b.0, b.1)))
        .unwrap();
    let strong = Spot {
        x: darkest.0 as f32,
        y: darkest.1 as f32,
        r: 2.0,
        level: 0.97,
    };
    let (fx, fy) = (W * 3 / 4, H / 2);
    let faint = Spot {
        x: fx as f32,
        y: fy as f32,
        r: 2.0,
        level: clean.get(0, fx, fy) + 0.1,
    };
    let mut dirty = clean.clone();
    paint(&mut dirty, &[strong, faint]);
    let stage = Dust::new(DustParams::default()).unwrap();
    let w = Window {
        before: vec![],
        center: &dirty,
        after: vec![&frames[3], &frames[4]],
    };
    let out = stage.run_cpu(&w).unwrap();
    assert_removed("first frame", &out, &dirty, &clean, &[strong, faint], 0.08);
}

#[test]
fn picture_uncovered_at_the_end_of_a_shot_is_left_alone() {
    // The last frame of a shot: a dark square has moved right by four pixels, and the band it
    // uncovered shows the light picture beside it, where both frames before (compensated as
    // the background) still show the square. The band stands out of them as much as a faint
    // speck of the same size does, but it continues the picture around it: only the speck
    // stays dirt. The detection alone takes both (C_SPATIAL: for the spatial check to judge).
    let (w, h) = (64, 48);
    let light = |x: usize, y: usize| 0.6 + 0.02 * ((x * 7 + y * 3) % 5) as f32;
    let frame = |left: usize| -> Vec<f32> {
        (0..w * h)
            .map(|k| {
                let (x, y) = (k % w, k / w);
                if (left..left + 20).contains(&x) && (14..34).contains(&y) {
                    0.3
                } else {
                    light(x, y)
                }
            })
            .collect()
    };
    let before = frame(20);
    let mut center = frame(24);
    // The speck: 4x4, as far above the picture as the band is above the square.
    for y in 4..8 {
        for x in 44..48 {
            center[y * w + x] = light(x, y) + 0.3;
        }
    }
    let lm = Lumas {
        width: w,
        height: h,
        center: &center,
        nb: [Some(&before), None, Some(&before), None],
    };
    let mut s = settings();
    s.have_next = false;
    s.edge = 0;
    let bits = cpu::detect(&lm, &s);
    let band = 26 * w + 22;
    let speck = 6 * w + 45;
    for (name, k) in [("band", band), ("speck", speck)] {
        assert_eq!(
            bits[k] & (cpu::C_POS | cpu::C_SPATIAL),
            cpu::C_POS | cpu::C_SPATIAL,
            "{name}: {:b}",
            bits[k]
        );
    }
    let checked = cpu::spatial(&bits, &lm, &s);
    assert_eq!(checked[band] & cpu::C_POS, 0, "the uncovered band is taken");
    assert_ne!(checked[speck] & cpu::C_POS, 0, "the speck is not taken");
    // Under the one-sided threshold itself neither would be a candidate at all.
    let mut strict = s;
    strict.spatial_scale = strict.one_sided;
    let bits = cpu::detect(&lm, &strict);
    assert_eq!(bits[band] & cpu::C_POS, 0);
    assert_eq!(bits[speck] & cpu::C_POS, 0);
}

#[test]
fn most_of_a_semi_transparent_blotch_is_removed() {
    // A large soft stain at a third opacity on one frame of a static scene. Over the samples
    // it moved by more than 0.02, the RMS error against the clean frame falls at least
    // fourfold (0.130 to 0.030 now). Not to zero: the block matcher, pulled by the stain,
    // gives the blocks under it a vector of (1.75, 1.75) instead of zero, so the repair
    // takes its samples from shifted picture; the fringe under half the threshold, which
    // the growth does not pass, also stays.
    let clean: Vec<Frame> = (0..5).map(|t| scene(t, 0.0, 0.0)).collect();
    let mut frames = clean.clone();
    let (cx, cy, r, level) = (48.0f32, 32.0f32, 12.0f32, 0.05f32);
    for p in 0..3 {
        for y in 0..H {
            for x in 0..W {
                let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
                let a = 0.35 * (1.0 - (d - 0.6 * r) / (0.4 * r)).clamp(0.0, 1.0);
                let v = frames[2].get(p, x, y);
                frames[2].set(p, x, y, v + a * (level - v));
            }
        }
    }
    let stage = Dust::new(DustParams::default()).unwrap();
    let out = stage.run_cpu(&window(&frames, 2)).unwrap();
    let (mut before, mut after, mut n) = (0.0f64, 0.0f64, 0);
    for p in 0..3 {
        for y in 0..H {
            for x in 0..W {
                let c = clean[2].get(p, x, y);
                let e = frames[2].get(p, x, y) - c;
                if e.abs() > 0.02 {
                    n += 1;
                    before += (e as f64).powi(2);
                    after += ((out.get(p, x, y) - c) as f64).powi(2);
                }
            }
        }
    }
    assert!(n > 600, "{n} stained samples");
    let (before, after) = ((before / n as f64).sqrt(), (after / n as f64).sqrt());
    assert!(after * 4.0 <= before, "stain RMS {before} -> {after}");
    assert_gpu_matches("semi-transparent blotch", &stage, &frames, &out);
}

#[test]
fn radius_one_removes_spots_too() {
    let (clean, frames, s) = dirty_window(0.0, 0.0, 7);
    let stage = Dust::new(DustParams {
        radius: 1,
        ..DustParams::default()
    })
    .unwrap();
    let out = stage.run_cpu(&window(&frames, 2)).unwrap();
    // Two neighbours only: where one has dirt of its own the fill leans on the other and on
    // the spatial fill.
    assert_removed("radius 1", &out, &frames[2], &clean, &s, 0.05);
}

/// A bright 5x5 square that jumps 13 pixels a frame: in every frame, never in the same place.
fn with_fast_object(mut f: Frame, t: usize) -> Frame {
    let (x0, y0) = (20 + 13 * t, 24 + (t % 2) * 6);
    for p in 0..3 {
        for y in y0..y0 + 5 {
            for x in x0..x0 + 5 {
                f.set(p, x, y, 0.95);
            }
        }
    }
    f
}

#[test]
fn a_fast_moving_object_is_left_alone() {
    let frames: Vec<Frame> = (0..5)
        .map(|t| with_fast_object(scene(t, 0.0, 0.0), t))
        .collect();
    let stage = Dust::new(DustParams::default()).unwrap();
    let out = stage.run_cpu(&window(&frames, 2)).unwrap();
    assert_eq!(out.data, frames[2].data, "the moving square was touched");

    // With dirt elsewhere on the same frames, the dirt goes and the square stays.
    let s = vec![Spot {
        x: 70.0,
        y: 50.0,
        r: 2.5,
        level: 0.03,
    }];
    let mut dirty = frames.clone();
    paint(&mut dirty[2], &s);
    let out = stage.run_cpu(&window(&dirty, 2)).unwrap();
    assert_removed("object + spot", &out, &dirty[2], &frames[2], &s, 0.02);
}

/// Five frames of the still scene with a dark one-pixel dot on the frames either side of the
/// centre, 7 px from where the centre has `centre` (a spot), and a bright one-pixel spark
/// that jumps a few pixels a frame, unevenly (the re-match, which follows steady motion, does
/// not find it: only the motion check keeps it).
fn lone_dots(centre: &[Spot]) -> Vec<Frame> {
    (0..5)
        .map(|t| {
            let mut f = scene(t, 0.0, 0.0);
            let dot = match t {
                1 => Some((55, 32)),
                3 => Some((41, 32)),
                _ => None,
            };
            for p in 0..3 {
                if let Some((x, y)) = dot {
                    f.set(p, x, y, 0.03);
                }
                f.set(p, [12, 21, 26, 33, 38][t], 14, 1.0);
            }
            if t == 2 {
                paint(&mut f, centre);
            }
            f
        })
        .collect()
}

#[test]
fn one_pixel_spikes_beside_a_speck_are_not_motion_and_a_spark_is() {
    // A speck with a spike of one pixel near it on the frames before and after: grain or dirt
    // of their own, no object moving. The motion check used to keep the speck.
    let spot = [Spot {
        x: 48.0,
        y: 32.0,
        r: 2.5,
        level: 0.03,
    }];
    let frames = lone_dots(&spot);
    let clean = lone_dots(&[])[2].clone();
    let stage = Dust::new(DustParams::default()).unwrap();
    let out = stage.run_cpu(&window(&frames, 2)).unwrap();
    let reach = (DustParams::default().dilate + DustParams::default().feather + 1) as f32;
    let spark = [Spot {
        x: 26.0,
        y: 14.0,
        r: 0.5,
        level: 1.0,
    }];
    // The spark, one pixel in every frame and never in the same place, is moving picture: it
    // and all around it stay exactly as they were.
    for (x, y) in (0..W).flat_map(|x| (0..H).map(move |y| (x, y))) {
        if near(&spark, x, y, reach + 1.0) {
            for p in 0..3 {
                assert_eq!(out.get(p, x, y), frames[2].get(p, x, y), "spark ({x}, {y})");
            }
        }
    }
    let elsewhere: Vec<Spot> = spot.iter().chain(&spark).copied().collect();
    let mut want = out.clone();
    for p in 0..3 {
        want.set(p, 26, 14, clean.get(p, 26, 14));
    }
    assert_removed("speck", &want, &frames[2], &clean, &elsewhere, 0.03);
    assert_gpu_matches("one-pixel spikes", &stage, &frames, &out);

    // The spark is a candidate the motion check keeps: without the check it goes.
    let unchecked = Dust::new(DustParams {
        pm_radius: 0,
        ..DustParams::default()
    })
    .unwrap();
    let out = unchecked.run_cpu(&window(&frames, 2)).unwrap();
    assert!(
        (out.get(0, 26, 14) - frames[2].get(0, 26, 14)).abs() > 0.1,
        "the spark was no candidate"
    );
}

#[test]
fn without_the_motion_check_the_object_would_be_taken_for_dirt() {
    // The check is what keeps the square: turned off, the detector alone removes it.
    let frames: Vec<Frame> = (0..5)
        .map(|t| with_fast_object(scene(t, 0.0, 0.0), t))
        .collect();
    let stage = Dust::new(DustParams {
        pm_radius: 0,
        ..DustParams::default()
    })
    .unwrap();
    let out = stage.run_cpu(&window(&frames, 2)).unwrap();
    assert_ne!(out.data, frames[2].data);
}

/// Height of the rim frames: clear of the raised threshold of the frame border band.
const RH: usize = 120;

/// Frames of `w` x `RH` (the re-match reaches `w / 20`): a dimmed still scene crossed by a thin
/// bright line, two pixels wide and slanted, that moves `speed` pixels a frame: the rim of a
/// figure close to the camera, which block motion loses against the still background.
fn rim_frames(w: usize, speed: usize) -> Vec<Frame> {
    (0..5)
        .map(|t| {
            let mut f = Frame::new(w, RH, 3, FrameMeta::default());
            f.meta.number = Some(100 + t as i64);
            for y in 0..RH {
                let x0 = 60 + speed * t + y / 4;
                for x in 0..w {
                    let v = if (x0..x0 + 2).contains(&x) {
                        0.9
                    } else {
                        0.5 * texture(x as f32, y as f32)
                    };
                    for p in 0..3 {
                        f.set(p, x, y, v * (1.0 - 0.08 * p as f32));
                    }
                }
            }
            f
        })
        .collect()
}

#[test]
fn a_thin_fast_moving_rim_is_left_alone() {
    // 18 px a frame: beyond the motion check's 16 px, within the re-match's 20.
    let frames = rim_frames(400, 18);
    let stage = Dust::new(DustParams::default()).unwrap();
    let out = stage.run_cpu(&window(&frames, 2)).unwrap();
    assert_eq!(out.data, frames[2].data, "the moving rim was touched");

    // Turned off, the re-match is what kept it: the rim is taken for dirt.
    let off = Dust::new(DustParams {
        rematch: false,
        ..DustParams::default()
    })
    .unwrap();
    let out = off.run_cpu(&window(&frames, 2)).unwrap();
    let changed = out
        .data
        .iter()
        .zip(&frames[2].data)
        .filter(|(a, b)| a != b)
        .count();
    assert!(
        changed > 3 * 50,
        "only {changed} samples changed without the re-match"
    );

    // Dirt on the same frames still goes: a spot is not found in the neighbours.
    let s = vec![Spot {
        x: 200.0,
        y: 60.0,
        r: 2.5,
        level: 0.03,
    }];
    let mut dirty = frames.clone();
    paint(&mut dirty[2], &s);
    let out = stage.run_cpu(&window(&dirty, 2)).unwrap();
    for y in 0..RH {
        for x in 0..400 {
            let (o, c) = (out.get(0, x, y), frames[2].get(0, x, y));
            if near(&s, x, y, 0.0) {
                assert!((o - c).abs() < 0.03, "spot sample ({x}, {y}): {o} vs {c}");
            } else if !near(&s, x, y, 6.0) {
                assert_eq!(o, dirty[2].get(0, x, y), "({x}, {y}) changed");
            }
        }
    }
    if let Some(gpu) = gpu() {
        let up: Vec<_> = dirty.iter().map(|f| gpu.upload(f).unwrap()).collect();
        let got = gpu
            .download(&stage.run_gpu(&gpu, &window(&up, 2)).unwrap())
            .unwrap();
        let cmp = common::compare("rim + spot", &got, &out, 1e-5);
        assert!(
            cmp.max_diff <= stage.gpu_tolerance() && cmp.over == 0,
            "{cmp}"
        );
    }
}

/// A flag plane from rows of text: `#` dirt, `m` dirt the re-match found (before: 1, after:
/// 0.5), `e` the external mask's, `w` a weak candidate, `.` clean. Returns (flag, matched,
/// ext).
fn piece_planes(rows: &[&str]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let cells: Vec<char> = rows.iter().flat_map(|r| r.chars()).collect();
    let pick = |f: fn(char) -> f32| cells.iter().map(|&c| f(c)).collect::<Vec<f32>>();
    (
        pick(|c| match c {
            '#' | 'm' | 'e' => 1.0,
            'w' => 0.5,
            _ => 0.0,
        }),
        pick(|c| match c {
            '#' | 'e' => 1.0,
            'm' | 'w' => 0.5,
            _ => 0.0,
        }),
        pick(|c| if c == 'e' { 1.0 } else { 0.0 }),
    )
}

#[test]
fn a_piece_of_dirt_mostly_unfound_stays_dirt_whole() {
    let rows = [
        "##mm#########.........",
        ".............#........",
        "..............#mmmm##.",
        "......................",
        "#m#m.mm..eem#w#m......",
        "..........#...........",
    ];
    let (w, h) = (rows[0].len(), rows.len());
    let (flag, matched, ext) = piece_planes(&rows);
    let s = settings();
    let out = cpu::rematch_pieces(&flag, &matched, Some(&ext), &s, w, h);
    let at = |x: usize, y: usize| out[y * w + x];
    // Top: one piece joined diagonally, 21 pixels with 6 found: 15/21 >= 0.7, all dirt.
    for (x, y) in [(2, 0), (3, 0), (15, 2), (18, 2)] {
        assert_eq!(at(x, y), 1.0, "({x}, {y}) of the hair");
    }
    // Bottom left: 4 pixels, 2 found (a half): as the re-match decided. Beside it, a piece
    // found whole stays found.
    assert_eq!((at(1, 4), at(0, 4), at(3, 4)), (0.5, 1.0, 0.5));
    assert_eq!((at(5, 4), at(6, 4)), (0.5, 0.5));
    // The external mask's pixels are no part of a piece and a weak candidate parts two: (11,
    // 4), (12, 4) and (10, 5) are a piece of 3 with 1 found (2/3 < 0.7); (14, 4) and (15, 4)
    // one of 2 with 1 found.
    assert_eq!((at(9, 4), at(10, 4)), (1.0, 1.0));
    assert_eq!((at(11, 4), at(10, 5), at(13, 4)), (0.5, 1.0, 0.5));
    assert_eq!((at(14, 4), at(15, 4)), (1.0, 0.5));
    // Clean pixels stay clean.
    assert_eq!(at(19, 0), 0.0);
    // Without the external mask its pixels are dirt like any: the piece (9..12, 4) with
    // (10, 5) is 5 pixels with 1 found, 4/5 >= 0.7, all dirt.
    let out = cpu::rematch_pieces(&flag, &matched, None, &s, w, h);
    assert_eq!(out[4 * w + 11], 1.0);
}

/// A frame lighter than its neighbours by `offset` everywhere, weak candidates everywhere,
/// and rows of faint dirt beside seeds of dirt: the flags, the grown mask, the centre and the
/// pair, and the pixels [`cpu::link`] must add.
#[allow(clippy::type_complexity)]
fn link_scene(
    w: usize,
    h: usize,
    offset: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>, Vec<usize>) {
    let pair = vec![0.5f32; w * h];
    let mut center = vec![0.5 + offset; w * h];
    let mut flag = vec![0.5f32; w * h];
    let mut grown = vec![0f32; w * h];
    let mut want = Vec::new();
    let mut put = |x: usize, y: usize, v: f32, f: f32| {
        center[y * w + x] = 0.5 + offset + v;
        flag[y * w + x] = f;
    };
    // Row 2: a seed, then faint dirt of its polarity longer than the reach (4): four join.
    // Row 6: the re-match found the fourth pixel in a neighbour: the growth stops there.
    // Row 10: faint dirt of the other polarity: nothing joins.
    // Row 14: faint dirt joined to no seed: nothing joins.
    for (row, seed) in [(2, true), (6, true), (10, true), (14, false)] {
        if seed {
            put(5, row, 0.3, 1.0);
            grown[row * w + 5] = 1.0;
            want.push(row * w + 5);
        }
        for x in 6..30 {
            let v = if row == 10 { -0.04 } else { 0.04 };
            let f = if row == 6 && x == 9 { cpu::FOUND } else { 0.5 };
            put(x, row, v, f);
            if seed && row != 10 && x < 10 && !(row == 6 && x >= 9) {
                want.push(row * w + x);
            }
        }
    }
    (flag, grown, center, pair, want)
}

#[test]
fn link_grows_through_faint_dirt_of_its_polarity_within_reach() {
    // The frame is 0.03 lighter than its neighbours, over the link's bar of half the
    // threshold (0.0275): without the level taken off every pixel would join.
    let (w, h) = (67, 19);
    let (flag, grown, center, pair, want) = link_scene(w, h, 0.03);
    let lm = cpu::Lumas {
        width: w,
        height: h,
        center: &center,
        nb: [Some(&pair), Some(&pair), None, None],
    };
    let s = settings();
    let level = cpu::level(&lm, (&pair, &pair));
    assert!((level - 0.03).abs() < 0.5 / 1024.0, "level {level}");
    let out = cpu::link(&flag, &grown, &lm, &s);
    let got: Vec<usize> = (0..w * h).filter(|&k| out[k] > 0.5).collect();
    assert_eq!(got, want);
    // From one side only (the ends of a shot) nothing grows.
    let one = cpu::Lumas {
        nb: [None, Some(&pair), None, Some(&pair)],
        ..lm
    };
    assert_eq!(cpu::link(&flag, &grown, &one, &s), grown);
    let Some(gpu) = gpu() else { return };
    let plane = |v: &[f32]| upload_plane(&gpu, w, h, v);
    let (gf, gg, gc, gp) = (plane(&flag), plane(&grown), plane(&center), plane(&pair));
    dust::gpu::link(&gpu, &gf, &gg, &gc, (&gp, &gp), &s).unwrap();
    assert_eq!(gpu.download(&gg).unwrap().data, out);
}

#[test]
fn the_level_is_the_median_departure_from_the_neighbours() {
    let mut hist = vec![0u32; cpu::LEVEL_BINS];
    for (e, n) in [(-0.1f32, 3u32), (0.02, 5), (0.2, 3), (1.0, 1)] {
        hist[cpu::level_bin(e)] += n;
    }
    // 12 departures: the sixth and seventh are 0.02.
    let level = cpu::level_of(&hist);
    assert!((level - 0.02).abs() <= 0.25 / 1024.0, "{level}");
    // Beyond the span, departures count in the end bins.
    assert_eq!(cpu::level_bin(1.0), cpu::LEVEL_BINS - 1);
    assert_eq!(cpu::level_bin(-1.0), 0);
}

#[test]
fn gpu_pieces_match_the_cpu_on_tangled_masks() {
    // Blobs and long tangled lines, many pieces joined at every angle, on a frame not a
    // multiple of the workgroup: the union-find on atomics must give the CPU's pieces.
    let Some(gpu) = gpu() else { return };
    let (w, h) = (203, 77);
    let mut rng = Rng::new(31);
    let mut flag = vec![0f32; w * h];
    for _ in 0..60 {
        let (mut x, mut y) = (rng.range(0.0, w as f32), rng.range(0.0, h as f32));
        let (dx, dy) = (rng.range(-1.0, 1.0), rng.range(-1.0, 1.0));
        for _ in 0..(rng.range(3.0, 80.0) as usize) {
            let (xi, yi) = (x as usize, y as usize);
            if xi < w && yi < h {
                flag[yi * w + xi] = 1.0;
            }
            x += dx + rng.range(-0.7, 0.7);
            y += dy + rng.range(-0.7, 0.7);
        }
    }
    let matched: Vec<f32> = flag
        .iter()
        .map(|&f| {
            if f > 0.0 && rng.range(0.0, 1.0) < 0.25 {
                0.5
            } else {
                f
            }
        })
        .collect();
    let ext: Vec<f32> = (0..w * h)
        .map(|k| if k % 97 == 0 { 1.0 } else { 0.0 })
        .collect();
    let s = settings();
    let plane = |v: &[f32]| upload_plane(&gpu, w, h, v);
    let (gf, gm, ge) = (plane(&flag), plane(&matched), plane(&ext));
    for with_ext in [false, true] {
        let e = with_ext.then_some(&ext[..]);
        let want = cpu::rematch_pieces(&flag, &matched, e, &s, w, h);
        let restored = (0..w * h).filter(|&k| want[k] != matched[k]).count();
        let left = (0..w * h).filter(|&k| want[k] == 0.5).count();
        assert!(
            restored > 50 && left > 50,
            "{restored} restored, {left} left"
        );
        let got = dust::gpu::pieces(&gpu, &gf, &gm, with_ext.then_some(&ge), &s).unwrap();
        let got = gpu.download(&got).unwrap();
        assert_eq!(got.data, want, "external mask: {with_ext}");
    }
}

#[test]
fn rematch_finds_picture_and_not_dirt() {
    // A 3x3 dark mark on a flat ground at (20, 12) of the centre. In the neighbours the same
    // mark sits 6 px to the left (before) and to the right (after): picture moving through.
    let (w, h) = (40, 24);
    let plane = |mx: Option<usize>| {
        let mut v = vec![0.6f32; w * h];
        if let Some(mx) = mx {
            for y in 11..14 {
                for x in mx - 1..mx + 2 {
                    v[y * w + x] = 0.1;
                }
            }
        }
        v
    };
    let c = plane(Some(20));
    let (p1, n1) = (plane(Some(14)), plane(Some(26)));
    let flat = plane(None);
    let s = settings();
    let mut flag = vec![0f32; w * h];
    flag[12 * w + 20] = 1.0;
    let run = |a: &[f32], b: &[f32]| {
        let lm = Lumas {
            width: w,
            height: h,
            center: &c,
            nb: [Some(&flat), Some(&flat), None, None],
        };
        cpu::rematch(&flag, None, &lm, &[Some(a), Some(b), None, None], &s)[12 * w + 20]
    };
    assert_eq!(run(&p1, &n1), cpu::FOUND, "moving picture was not found");
    // Dirt: the neighbours have no mark.
    assert_eq!(run(&flat, &flat), 1.0, "dirt was found in the neighbours");
    // Well beyond the reach (8 px, and a pixel of tolerance): 14 px a frame.
    assert_eq!(run(&plane(Some(6)), &plane(Some(34))), 1.0);
    // Found on one side only: not picture moving steadily through.
    assert_eq!(run(&p1, &flat), 1.0);
    // A flat patch (the inside of a blotch) is not searched for: it would match any flat
    // picture of its level.
    let blot: Vec<f32> = (0..w * h)
        .map(|k| if (4..36).contains(&(k % w)) { 0.1 } else { 0.6 })
        .collect();
    let lm = Lumas {
        width: w,
        height: h,
        center: &blot,
        nb: [Some(&flat), Some(&flat), None, None],
    };
    let dark = vec![0.1f32; w * h];
    let got = cpu::rematch(
        &flag,
        None,
        &lm,
        &[Some(&dark), Some(&dark), None, None],
        &s,
    );
    assert_eq!(got[12 * w + 20], 1.0, "a flat patch was searched for");
}

#[test]
fn a_clean_sequence_is_left_exactly_alone() {
    let frames: Vec<Frame> = (0..5).map(|t| scene(t, 1.5, 0.5)).collect();
    let stage = Dust::new(DustParams::default()).unwrap();
    let out = stage.run_cpu(&window(&frames, 2)).unwrap();
    assert_eq!(out.data, frames[2].data);
    let report = stage.report().unwrap();
    assert_eq!(report["repaired"]["pixels"], 0, "{report}");
    assert_eq!(report["repaired"]["frames_touched"], 0, "{report}");
}

/// Settings as the stage derives them from the defaults with all four neighbours present.
fn settings() -> Settings {
    Settings {
        t0: DustParams::default().t0(),
        noise_factor: 2.5,
        pm_check: true,
        pm_radius: 16,
        have_prev: true,
        have_next: true,
        dilate: 3,
        feather: 1,
        spatial_reach: 48,
        disagree: 3.0 * DustParams::default().t0(),
        margin: 0.5,
        wide_radius: 4,
        wide_factor: 6.0,
        one_sided: 8.0,
        consistent: 0.25,
        edge_k: 4.0,
        edge: 4,
        spatial_scale: 1.5,
        spatial_leave: 0.5,
        spatial_share: 0.7,
        occluded_consistent: 0.15,
        rematch: 8,
        rematch_center: 0.25,
        rematch_patch: 0.25,
        rematch_texture: 0.5,
        rematch_whole: 0.7,
        link_reach: 4,
        link: 0.5,
    }
}

/// Luma planes of the frames before and after where they disagree (a checker of `0.5 +- amp`,
/// opposite on the two sides, as where a compensation failed) except where `agree(x, y)`.
fn failed_pair(
    w: usize,
    h: usize,
    amp: f32,
    agree: impl Fn(usize, usize) -> bool,
) -> [Vec<f32>; 2] {
    let off = |sign: f32| -> Vec<f32> {
        (0..w * h)
            .map(|k| {
                let (x, y) = (k % w, k / w);
                if !agree(x, y) && (x + y) % 2 == 0 {
                    0.5 + sign * amp
                } else {
                    0.5
                }
            })
            .collect()
    };
    [off(1.0), off(-1.0)]
}

#[test]
fn a_spike_where_the_neighbours_disagree_around_it_must_stand_out_in_space() {
    // A bright one-frame spike on a flat picture. The neighbours agree at and right next to
    // the spike, but two pixels out they disagree (compensation that failed over a block):
    // the neighbours are evidence at the pixel only, so the spike is dirt only where it
    // stands out in space too (C_SPATIAL, not strong), unlike with neighbours that agree
    // everywhere; with the frames two away not following at the pixel, it is none.
    let (w, h, x0, y0) = (32, 32, 16, 16);
    let mut center = vec![0.5f32; w * h];
    center[y0 * w + x0] = 0.9;
    let agree = vec![0.5f32; w * h];
    let [p, n] = failed_pair(w, h, 0.1, |x, y| x.abs_diff(x0).max(y.abs_diff(y0)) < 2);
    let s = settings();
    let good = Lumas {
        width: w,
        height: h,
        center: &center,
        nb: [Some(&agree), Some(&agree), Some(&agree), Some(&agree)],
    };
    let bits = cpu::detect_pixel(&good, x0, y0, &s);
    assert_ne!(bits & cpu::C_POS, 0);
    assert_eq!(bits & cpu::C_SPATIAL, 0);
    let failed = Lumas {
        width: w,
        height: h,
        center: &center,
        nb: [Some(&p), Some(&n), Some(&p), Some(&n)],
    };
    let bits = cpu::detect_pixel(&failed, x0, y0, &s);
    assert_eq!(
        bits & (cpu::C_POS | cpu::C_SPATIAL | cpu::C_STRONG),
        cpu::C_POS | cpu::C_SPATIAL
    );
    let mut lost = p.clone();
    lost[y0 * w + x0] = 0.8;
    let unfollowed = Lumas {
        nb: [Some(&p), Some(&n), Some(&lost), Some(&n)],
        ..failed
    };
    assert_eq!(cpu::detect_pixel(&unfollowed, x0, y0, &s) & cpu::C_POS, 0);
}

#[test]
fn where_motion_failed_a_speck_is_dirt_and_a_line_off_the_frame_is_not() {
    // The neighbours disagree all around (a failed compensation) but agree on and beside a
    // bright 3x3 speck and a bright line across the whole frame. Both are candidates to be
    // checked in space: the speck is closed on all sides and stays dirt; the line runs off
    // the frame, as picture the compensation lost would, and is dropped.
    let (w, h) = (40, 32);
    let speck = |x: usize, y: usize| x.abs_diff(12) <= 1 && y.abs_diff(8) <= 1;
    let line = |_: usize, y: usize| y == 22;
    let mut center = vec![0.5f32; w * h];
    for y in 0..h {
        for x in 0..w {
            if speck(x, y) || line(x, y) {
                center[y * w + x] = 0.9;
            }
        }
    }
    let [p, n] = failed_pair(w, h, 0.15, |x, y| {
        x.abs_diff(12) <= 2 && y.abs_diff(8) <= 2 || y.abs_diff(22) <= 1
    });
    let s = settings();
    let lm = Lumas {
        width: w,
        height: h,
        center: &center,
        nb: [Some(&p), Some(&n), Some(&p), Some(&n)],
    };
    let bits = cpu::detect(&lm, &s);
    for (x, y) in [(12, 8), (20, 22)] {
        let b = bits[y * w + x];
        assert_eq!(
            b & (cpu::C_POS | cpu::C_SPATIAL),
            cpu::C_POS | cpu::C_SPATIAL,
            "({x}, {y})"
        );
    }
    let checked = cpu::spatial(&bits, &lm, &s);
    assert_ne!(checked[8 * w + 12] & cpu::C_POS, 0, "the speck");
    assert!(
        (0..w).all(|x| checked[22 * w + x] & cpu::C_POS == 0),
        "the line"
    );
    // The shaders (dust_detect, dust_spatial) give the same bits.
    let Some(gpu) = gpu() else { return };
    let plane = |v: &[f32]| upload_plane(&gpu, w, h, v);
    let (lc, gp, gn) = (plane(&center), plane(&p), plane(&n));
    let got =
        dust::gpu::candidates(&gpu, &lc, [Some(&gp), Some(&gn), Some(&gp), Some(&gn)], &s).unwrap();
    let got: Vec<u32> = gpu
        .download(&got)
        .unwrap()
        .data
        .iter()
        .map(|v| v.to_bits())
        .collect();
    let differ = got.iter().zip(&checked).filter(|(g, c)| g != c).count();
    assert_eq!(
        differ, 0,
        "the GPU's candidate bits differ from the CPU's at {differ} pixels"
    );
}

#[test]
fn a_spike_where_one_side_loses_the_motion_must_stand_out_in_space() {
    // The frames just before and after agree with each other everywhere, and so do the frames
    // two away; but each side's own pair disagrees around the spike (a figure that the
    // compensation follows on the nearer frames and loses on the farther ones): the spike is
    // dirt only if it stands out in space too. Where the far frames match the near ones, it
    // is dirt as it is.
    let (w, h, x0, y0) = (32, 32, 16, 16);
    let mut center = vec![0.5f32; w * h];
    center[y0 * w + x0] = 0.9;
    let near = vec![0.5f32; w * h];
    let [far, _] = failed_pair(w, h, 0.3, |x, y| x.abs_diff(x0).max(y.abs_diff(y0)) < 2);
    let s = settings();
    let still = Lumas {
        width: w,
        height: h,
        center: &center,
        nb: [Some(&near), Some(&near), Some(&near), Some(&near)],
    };
    let bits = cpu::detect_pixel(&still, x0, y0, &s);
    assert_ne!(bits & cpu::C_POS, 0);
    assert_eq!(bits & cpu::C_SPATIAL, 0);
    let lost = Lumas {
        width: w,
        height: h,
        center: &center,
        nb: [Some(&near), Some(&near), Some(&far), Some(&far)],
    };
    let bits = cpu::detect_pixel(&lost, x0, y0, &s);
    assert_eq!(
        bits & (cpu::C_POS | cpu::C_SPATIAL | cpu::C_STRONG),
        cpu::C_POS | cpu::C_SPATIAL
    );
}

#[test]
fn dirt_over_an_occlusion_is_found_and_the_occlusion_left_alone() {
    // A dark figure (0.35) covers the picture (0.5) up to x = 20 in both frames before and up
    // to x = 12 in both after: between, the frames just before and after disagree. The centre
    // shows one side's picture there (its edge at 16), which is no dirt; a speck of 0.8 at
    // (14, 16) lies beyond all four neighbours and is. So is a dark one (0.05) at (18, 8).
    // Where the frames on one side disagree with each other too, the speck is no evidence.
    let (w, h) = (32, 32);
    let plane = |edge: usize| -> Vec<f32> {
        (0..w * h)
            .map(|k| if k % w < edge { 0.35 } else { 0.5 })
            .collect()
    };
    let (before, after) = (plane(20), plane(12));
    let mut center = plane(16);
    center[16 * w + 14] = 0.8;
    center[8 * w + 18] = 0.05;
    let s = settings();
    let bits = |p2: &[f32], s: &Settings| {
        let lm = Lumas {
            width: w,
            height: h,
            center: &center,
            nb: [Some(&before), Some(&after), Some(p2), Some(&after)],
        };
        cpu::detect(&lm, s)
    };
    let found = bits(&before, &s);
    assert_ne!(found[16 * w + 14] & cpu::C_POS, 0, "bright speck");
    assert_ne!(found[8 * w + 18] & cpu::C_NEG, 0, "dark speck");
    let taken = |b: &[u32]| {
        b.iter()
            .filter(|&&v| v & (cpu::C_POS | cpu::C_NEG) != 0)
            .count()
    };
    assert_eq!(taken(&found), 2, "only the specks");
    // The frame two before shows other picture at the bright speck: no longer evidence.
    let mut lost = before.clone();
    lost[16 * w + 14] = 0.7;
    assert_eq!(bits(&lost, &s)[16 * w + 14] & cpu::C_POS, 0);
    // Without the check across the occlusion, neither speck is found.
    let mut off = s;
    off.occluded_consistent = 0.0;
    assert_eq!(taken(&bits(&before, &off)), 0);
}

/// Five frames of a static picture, calm (0.6, gently textured) around the middle; a white
/// sheet (0.95) covers a square there in the two frames before the centre and has gone from
/// the centre on: an occlusion (and no cut: the rest of the picture stays).
/// The centre carries a dark speck inside the square, which the frames before and after
/// disagree on by nearly as much as it stands out.
fn sheet_leaving() -> (Vec<Frame>, Vec<Frame>, Vec<Spot>) {
    let clean: Vec<Frame> = (0..5)
        .map(|t| {
            let mut f = Frame::new(W, H, 3, FrameMeta::default());
            f.meta.number = Some(100 + t as i64);
            for p in 0..3 {
                for y in 0..H {
                    for x in 0..W {
                        let sheet = t < 2 && (32..48).contains(&x) && (24..40).contains(&y);
                        let tex = texture(x as f32, y as f32);
                        let calm = (24..56).contains(&x) && (16..48).contains(&y);
                        let v = if calm { 0.6 + 0.1 * (tex - 0.5) } else { tex };
                        f.set(p, x, y, if sheet { 0.95 } else { v });
                    }
                }
            }
            f
        })
        .collect();
    let spot = vec![Spot {
        x: 40.0,
        y: 32.0,
        r: 2.5,
        level: 0.02,
    }];
    let mut frames = clean.clone();
    paint(&mut frames[2], &spot);
    (clean, frames, spot)
}

#[test]
fn dirt_where_a_sheet_leaves_is_repaired_on_cpu_and_gpu() {
    let (clean, frames, spot) = sheet_leaving();
    let stage = Dust::new(DustParams::default()).unwrap();
    let out = stage.run_cpu(&window(&frames, 2)).unwrap();
    assert_removed("sheet leaving", &out, &frames[2], &clean[2], &spot, 0.05);
    assert_gpu_matches("sheet leaving", &stage, &frames, &out);
}

#[test]
fn dirt_is_found_where_a_frame_two_away_was_lost() {
    // Strong dirt that the frames just before and after agree on; the frame two after was
    // lost by the compensation (it shows other picture all around). It says nothing about the
    // centre and does not veto the spike (with all four frames following it is dirt too).
    let (w, h, x0, y0) = (32, 32, 16, 16);
    let mut center = vec![0.5f32; w * h];
    center[y0 * w + x0] = 0.9;
    let near = vec![0.5f32; w * h];
    let lost = vec![0.8f32; w * h];
    let s = settings();
    let lm = |n2: &[f32]| -> u32 {
        let l = Lumas {
            width: w,
            height: h,
            center: &center,
            nb: [Some(&near), Some(&near), Some(&near), Some(n2)],
        };
        cpu::detect_pixel(&l, x0, y0, &s) & cpu::C_POS
    };
    assert_ne!(lm(&near), 0, "all four follow");
    assert_ne!(lm(&lost), 0, "the frame two after was lost");
    // Were every far frame taken as it is, the lost one would veto it (the far frames that
    // follow still veto where they disagree around the spike: see
    // `a_spike_where_one_side_loses_the_motion_is_left_alone`).
    let mut old = s;
    old.consistent = f32::INFINITY;
    let l = Lumas {
        width: w,
        height: h,
        center: &center,
        nb: [Some(&near), Some(&near), Some(&near), Some(&lost)],
    };
    assert_eq!(cpu::detect_pixel(&l, x0, y0, &old) & cpu::C_POS, 0);
}

#[test]
fn picture_entering_at_the_frame_border_is_left_alone() {
    // The same faint light patch (0.12 above the picture) on the centre frame only: in the
    // middle of the frame it is dirt and is repaired; on the frame border, where picture
    // coming into view is in no neighbour, it is left exactly alone. Inside the border band
    // (under its raised threshold) but closed on all sides, with all four neighbours following
    // each other, it stands out in space as dirt does and is repaired.
    let clean: Vec<Frame> = (0..5).map(|t| scene(t, 0.0, 0.0)).collect();
    let (w, h) = (W * 4, H * 4);
    let big = |f: &Frame| {
        let mut g = Frame::new(w, h, 3, f.meta.clone());
        for p in 0..3 {
            for y in 0..h {
                for x in 0..w {
                    g.set(p, x, y, f.get(p, x % W, y % H));
                }
            }
        }
        g
    };
    let frames: Vec<Frame> = clean.iter().map(big).collect();
    let patch = |f: &mut Frame, cx: f32, cy: f32| {
        for p in 0..3 {
            for y in 0..h {
                for x in 0..w {
                    let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
                    if d <= 3.0 {
                        let v = f.get(p, x, y);
                        f.set(p, x, y, v + 0.12);
                    }
                }
            }
        }
    };
    let (mx, my) = (w as f32 / 2.0, h as f32 / 2.0);
    let stage = Dust::new(DustParams::default()).unwrap();
    let mut dirty = frames.clone();
    patch(&mut dirty[2], mx, my);
    let out = stage.run_cpu(&window(&dirty, 2)).unwrap();
    let at = |o: &Frame, f: &Frame, x: f32, y: f32| {
        (o.get(0, x as usize, y as usize) - f.get(0, x as usize, y as usize)).abs()
    };
    assert!(
        at(&out, &frames[2], mx, my) < 0.02,
        "middle: {} left",
        at(&out, &frames[2], mx, my)
    );
    let mut edge = frames.clone();
    patch(&mut edge[2], 0.0, my);
    let out = stage.run_cpu(&window(&edge, 2)).unwrap();
    assert_eq!(
        out.data, edge[2].data,
        "the patch on the border was touched"
    );
    let mut band = frames.clone();
    let bx = 8.0;
    patch(&mut band[2], bx, my);
    let out = stage.run_cpu(&window(&band, 2)).unwrap();
    assert!(
        at(&out, &frames[2], bx, my) < 0.02,
        "in the band: {} left",
        at(&out, &frames[2], bx, my)
    );
    assert_gpu_matches("border band", &stage, &band, &out);
}

#[test]
fn a_repair_changes_a_sample_only_as_far_as_it_stands_out() {
    let s = settings();
    let vals = [0.4f32, 0.5, 0.6, 0.7];
    // Inside the range of the middle two of four neighbours (a false alarm): moved by at most
    // half their spread.
    let d = cpu::limit_change(0.55 - 0.2, 0.2 + 0.35, &vals, &s);
    assert!((d - 0.05).abs() < 1e-6, "{d}");
    // Dirt far above them: fully repaired to their median.
    let d = cpu::limit_change(0.55 - 1.0, 1.0, &vals, &s);
    assert!((d + 0.45).abs() < 1e-6, "{d}");
    // Bright dirt where one neighbour is bright too (its own dirt, a line passing): the one
    // does not hold the repair back.
    let d = cpu::limit_change(0.5 - 0.97, 0.97, &[0.5, 0.5, 0.5, 0.95], &s);
    assert!((d + 0.47).abs() < 1e-6, "{d}");
    // Where two neighbours show it, it may be picture: it moves only as far as it stands out
    // of them, plus half their spread.
    let d = cpu::limit_change(0.5 - 0.97, 0.97, &[0.5, 0.5, 0.95, 0.95], &s);
    assert!((d + 0.02 + 0.5 * 0.45).abs() < 1e-6, "{d}");
    // With two or three neighbours, all of them count.
    let d = cpu::limit_change(0.5 - 0.97, 0.97, &[0.5, 0.5, 0.95], &s);
    assert!((d + 0.02 + 0.5 * 0.45).abs() < 1e-6, "{d}");
    // No neighbours: the change is free.
    assert_eq!(cpu::limit_change(-0.7, 1.0, &[], &s), -0.7);
}

#[test]
fn a_frame_two_away_with_a_line_at_the_spot_does_not_hold_the_repair_back() {
    // A bright spot on the centre; the frame two after has a bright line of its own across
    // the same place. The frames just before and after agree and find the spot; the line
    // must not limit its repair, on the CPU and the GPU alike.
    let spot = [Spot {
        x: 48.0,
        y: 32.0,
        r: 2.5,
        level: 0.97,
    }];
    let mut frames: Vec<Frame> = (0..5).map(|t| scene(t, 0.0, 0.0)).collect();
    let clean = frames[2].clone();
    paint(&mut frames[2], &spot);
    for p in 0..3 {
        for y in 0..H {
            for x in 46..51 {
                frames[4].set(p, x, y, 0.95);
            }
        }
    }
    let stage = Dust::new(DustParams::default()).unwrap();
    let out = stage.run_cpu(&window(&frames, 2)).unwrap();
    assert_removed("line two after", &out, &frames[2], &clean, &spot, 0.03);
    assert_gpu_matches("line two after", &stage, &frames, &out);
}

fn read_mask(path: &std::path::Path) -> Vec<u8> {
    image::open(path).unwrap().to_luma8().into_raw()
}

#[test]
fn masks_are_emitted_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let (clean, frames, s) = dirty_window(0.0, 0.0, 4);
    let emit = dir.path().join("emitted");
    let stage = Dust::new(DustParams {
        emit_masks: Some(emit.clone()),
        ..DustParams::default()
    })
    .unwrap();
    stage.run_cpu(&window(&frames, 2)).unwrap();
    let mask = read_mask(&emit.join("dust/000102.png"));
    for y in 0..H {
        for x in 0..W {
            let m = mask[y * W + x];
            if near(&s, x, y, 0.0) {
                assert_eq!(m, 255, "spot pixel ({x}, {y}) not in the emitted mask");
            } else if !near(&s, x, y, 6.0) {
                assert_eq!(m, 0, "clean pixel ({x}, {y}) in the emitted mask");
            }
        }
    }
    // The run's record counts the pixels the emitted mask marks, one region per spot at most.
    let report = stage.report().unwrap();
    let logged = &report["repaired"]["frames"]["102"];
    let marked = mask.iter().filter(|&&v| v > 0).count();
    assert_eq!(logged["pixels"], marked as u64, "{report}");
    let regions = logged["regions"].as_u64().unwrap() as usize;
    assert!(
        (1..=s.len()).contains(&regions),
        "{regions} regions for {} spots",
        s.len()
    );

    // A hand-painted (or infrared) mask over a defect too faint to detect gets it repaired.
    let painted = dir.path().join("painted");
    std::fs::create_dir(&painted).unwrap();
    let mut m = image::GrayImage::new(W as u32, H as u32);
    for y in 30..34 {
        for x in 40..44 {
            m.put_pixel(x, y, image::Luma([255]));
        }
    }
    for n in 100..105 {
        m.save(painted.join(format!("m_{n:04}.png"))).unwrap();
    }
    let mut faint: Vec<Frame> = (0..5).map(|t| scene(t, 0.0, 0.0)).collect();
    for y in 30..34 {
        for x in 40..44 {
            for p in 0..3 {
                let v = faint[2].get(p, x, y);
                faint[2].set(p, x, y, v - 0.03);
            }
        }
    }
    let plain = Dust::new(DustParams::default()).unwrap();
    assert_eq!(
        plain.run_cpu(&window(&faint, 2)).unwrap().data,
        faint[2].data,
        "the faint smudge should be below the detector"
    );
    let with_mask = Dust::new(DustParams {
        mask_in: Some(painted.clone()),
        ..DustParams::default()
    })
    .unwrap();
    let out = with_mask.run_cpu(&window(&faint, 2)).unwrap();
    let truth = scene(2, 0.0, 0.0);
    for y in 30..34 {
        for x in 40..44 {
            for p in 0..3 {
                let d = (out.get(p, x, y) - truth.get(p, x, y)).abs();
                assert!(
                    d < 1e-6,
                    "painted sample ({x}, {y}) is {d} from the picture"
                );
            }
        }
    }
    let _ = clean;
    let stuck = faint;

    // A mask of the wrong size and a missing frame are refused, naming the problem.
    image::GrayImage::new(10, 10)
        .save(painted.join("m_0102.png"))
        .unwrap();
    let msg = format!("{:#}", with_mask.run_cpu(&window(&stuck, 2)).err().unwrap());
    assert!(
        msg.contains("dust.mask_in") && msg.contains("10x10"),
        "{msg}"
    );
    let mut late = stuck[2].clone();
    late.meta.number = Some(200);
    let msg = format!(
        "{:#}",
        with_mask.run_cpu(&Window::single(&late)).err().unwrap()
    );
    assert!(msg.contains("no mask for frame 200"), "{msg}");
    let msg = format!(
        "{:#}",
        Dust::new(DustParams {
            mask_in: Some(dir.path().join("absent")),
            ..DustParams::default()
        })
        .err()
        .unwrap()
    );
    assert!(msg.contains("dust.mask_in"), "{msg}");
}

#[test]
fn parameters_are_validated() {
    let table: toml::Table = toml::from_str("sensitivity = 1.5").unwrap();
    let msg = format!(
        "{:#}",
        nitrate::stages::build("dust", &table).err().unwrap()
    );
    assert!(
        msg.contains("dust.sensitivity = 1.5") && msg.contains("0 to 1"),
        "{msg}"
    );
    let table: toml::Table = toml::from_str("radius = 3").unwrap();
    let msg = format!(
        "{:#}",
        nitrate::stages::build("dust", &table).err().unwrap()
    );
    assert!(msg.contains("dust.radius"), "{msg}");
    let table: toml::Table = toml::from_str("sensitivty = 0.5").unwrap();
    let msg = format!(
        "{:#}",
        nitrate::stages::build("dust", &table).err().unwrap()
    );
    assert!(msg.contains("sensitivty"), "{msg}");
    let table: toml::Table = toml::from_str("[motion]\nblock = 64").unwrap();
    let msg = format!(
        "{:#}",
        nitrate::stages::build("dust", &table).err().unwrap()
    );
    assert!(msg.contains("dust.motion.block"), "{msg}");
    assert!(nitrate::stages::MASK_STAGES.contains(&"dust"));
}

#[test]
fn gpu_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut outliers = 0;
    let mut total = 0;
    let mut repaired = 0;
    for (vx, vy, seed) in [(0.0, 0.0, 5), (2.5, -1.25, 6)] {
        let (_, mut frames, _) = dirty_window(vx, vy, seed);
        frames[3] = with_fast_object(frames[3].clone(), 3);
        // Faint enough that the first frame's one-sided pass must check it in space.
        let faint = Spot {
            x: W as f32 * 0.75,
            y: H as f32 * 0.5,
            r: 2.0,
            level: frames[0].get(0, W * 3 / 4, H / 2) + 0.1,
        };
        paint(&mut frames[0], &[faint]);
        for (c, before, after) in [(2, 2, 2), (0, 0, 2), (4, 1, 0)] {
            let w = Window {
                before: (c - before..c).rev().map(|i| &frames[i]).collect(),
                center: &frames[c],
                after: (c + 1..=c + after).map(|i| &frames[i]).collect(),
            };
            let stage = Dust::new(DustParams::default()).unwrap();
            let want = stage.run_cpu(&w).unwrap();
            let logged = |stage: &Dust| stage.report().unwrap()["repaired"]["pixels"].as_u64();
            let cpu_pixels = logged(&stage).unwrap();
            let up: Vec<_> = frames.iter().map(|f| gpu.upload(f).unwrap()).collect();
            let gw = Window {
                before: (c - before..c).rev().map(|i| &up[i]).collect(),
                center: &up[c],
                after: (c + 1..=c + after).map(|i| &up[i]).collect(),
            };
            let got = gpu.download(&stage.run_gpu(&gpu, &gw).unwrap()).unwrap();
            // The GPU run logs the frame's repair again: the same pixels, but for near-ties.
            let gpu_pixels = logged(&stage).unwrap();
            repaired += cpu_pixels;
            assert!(
                gpu_pixels.abs_diff(cpu_pixels) <= 2 + cpu_pixels / 100,
                "repaired pixels: GPU {gpu_pixels}, CPU {cpu_pixels}"
            );
            let cmp = common::compare(
                &format!("dust pan ({vx}, {vy}) centre {c}"),
                &got,
                &want,
                1e-5,
            );
            eprintln!("{cmp}");
            assert!(cmp.max_diff <= stage.gpu_tolerance(), "{cmp}");
            outliers += cmp.over;
            total += got.data.len();
        }
    }
    assert!(
        repaired > 0,
        "nothing was repaired: the comparison shows nothing"
    );
    // Samples beyond rounding: only where a near-tie fell the other way.
    assert!(
        outliers * 1000 <= total,
        "{outliers} of {total} samples differ"
    );
}

#[test]
fn restore_cli_repairs_and_emits_masks() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output, masks) = (
        dir.path().join("in"),
        dir.path().join("out"),
        dir.path().join("masks"),
    );
    std::fs::create_dir(&input).unwrap();
    let (clean, frames, s) = dirty_window(0.0, 0.0, 8);
    for f in &frames {
        let path = input.join(format!("f_{:04}.png", f.meta.number.unwrap()));
        nitrate::io::write_frame(&path, f, nitrate::io::OutputFormat::Png { bits: 16 }).unwrap();
    }
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_nitrate"))
        .args(["restore", "--stages", "dust", "--backend", "cpu", "--quiet"])
        .arg(&input)
        .arg(&output)
        .arg("--emit-masks")
        .arg(&masks)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for n in 100..105 {
        assert!(masks.join(format!("dust/{n:06}.png")).is_file(), "mask {n}");
    }
    let out = nitrate::io::read_frame(&output.join("f_0102.png")).unwrap();
    // 16-bit PNG in and out: a code value of rounding either way.
    let mut worst = 0.0f32;
    for p in 0..3 {
        for y in 0..H {
            for x in 0..W {
                if near(&s, x, y, 0.0) {
                    worst = worst.max((out.get(p, x, y) - clean.get(p, x, y)).abs());
                }
            }
        }
    }
    assert!(
        worst < 0.02,
        "a spot sample is {worst} from the clean frame"
    );
}
