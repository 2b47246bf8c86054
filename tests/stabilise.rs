//! `stabilise`: known answers on synthetic weave (sub-pixel shifts, rotation and scale, with a
//! moving subject, dust and flicker), steady pans kept, cuts not leaked across, chunked runs
//! equal whole runs, the motion track round trip, the border fills, parameters, and GPU/CPU
//! parity (skipped without a GPU unless `NITRATE_REQUIRE_GPU=1`).

mod common;

use std::sync::Arc;

use common::{compare, gpu, CpuRunner, Rng};
use nitrate::frame::Frame;
use nitrate::gpu::{GpuContext, GpuFrame};
use nitrate::pipeline::chain::{Chain, Runner};
use nitrate::stages::stabilise::cpu::{self, SourceMap};
use nitrate::stages::stabilise::motion::{self, Analysis, Break, Config, Similarity};
use nitrate::stages::stabilise::path::Source;
use nitrate::stages::stabilise::{
    Fill, Stabilise, StabiliseParams, GPU_MOTION_TOLERANCE, GPU_TOLERANCE,
};
use nitrate::stages::{self, Stage, Window};
use nitrate::synth::scene_frame;

const W: usize = 192;
const H: usize = 144;

/// `frame` moved by `m`: a point `p` of it lands at `m(p)` (Lanczos-3, mirrored edges).
fn moved(frame: &Frame, m: &Similarity) -> Frame {
    let source = Source {
        frame: 0,
        map: m.inverse(),
        inv_gain: 1.0,
        lift: 0.0,
    };
    cpu::warp(&[frame], &[(0, SourceMap::of(&source))], Fill::Mirror, 0)
}

fn analysis(f: &Frame) -> Analysis {
    let factor = motion::analysis_factor(f.width, f.height);
    Analysis::new(f.width, f.height, factor, f.planes, &cpu::reduce(f, factor))
}

fn config() -> Config {
    Config {
        rotation: true,
        scale: true,
        roi: None,
        cut_threshold: 0.5,
    }
}

/// Largest distance between where `a` and `b` put the corners of a `W` x `H` frame.
fn corner_error(a: &Similarity, b: &Similarity) -> f64 {
    a.then(&b.inverse()).max_displacement(W, H)
}

/// Known weave: translation within ±`amp` px, rotation within ±0.15°, scale within ±0.2 %.
fn weave(n: usize, amp: f32, seed: u64) -> Vec<Similarity> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| Similarity {
            dx: rng.range(-amp, amp) as f64,
            dy: rng.range(-amp, amp) as f64,
            rot: (rng.range(-0.15, 0.15) as f64).to_radians(),
            scale: 1.0 + rng.range(-0.002, 0.002) as f64,
        })
        .collect()
}

/// Dust: `count` opaque specks of 1..4 px radius, dark or bright, on one frame.
fn dust(frame: &mut Frame, count: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    for _ in 0..count {
        let (cx, cy) = (rng.range(0.0, W as f32), rng.range(0.0, H as f32));
        let r = rng.range(1.0, 4.0);
        let level = if rng.range(0.0, 1.0) < 0.5 {
            0.02
        } else {
            0.98
        };
        for y in 0..H {
            for x in 0..W {
                if (x as f32 - cx).hypot(y as f32 - cy) <= r {
                    for p in 0..frame.planes {
                        frame.set(p, x, y, level);
                    }
                }
            }
        }
    }
}

/// The stage behind an `Arc`, so a test can read its track after a chain has run it.
struct Shared(Arc<Stabilise>);

impl Stage for Shared {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn temporal_radius(&self) -> usize {
        self.0.temporal_radius()
    }
    fn gpu_tolerance(&self) -> f32 {
        self.0.gpu_tolerance()
    }
    fn params_json(&self) -> serde_json::Value {
        self.0.params_json()
    }
    fn run_cpu(&self, window: &Window<'_, Frame>) -> anyhow::Result<Frame> {
        self.0.run_cpu(window)
    }
    fn run_gpu(
        &self,
        gpu: &nitrate::gpu::GpuContext,
        window: &Window<'_, nitrate::gpu::GpuFrame>,
    ) -> anyhow::Result<nitrate::gpu::GpuFrame> {
        self.0.run_gpu(gpu, window)
    }
}

struct GpuRunner<'g>(&'g GpuContext);

impl Runner<GpuFrame> for GpuRunner<'_> {
    fn run(
        &mut self,
        stage: &dyn Stage,
        window: &Window<'_, GpuFrame>,
    ) -> anyhow::Result<GpuFrame> {
        stage.run_gpu(self.0, window)
    }
    fn release(&mut self, frame: GpuFrame) {
        self.0.recycle(frame);
    }
}

/// The backend a property test runs on: the CPU (`None`) or a GPU.
type Backend<'g> = Option<&'g GpuContext>;

/// Restore `frames[lo..=hi]` the way the pipeline does: a chain over the range plus handles,
/// on `backend`.
fn restore_range_on(
    backend: Backend,
    stage: &Arc<Stabilise>,
    frames: &[Frame],
    lo: usize,
    hi: usize,
) -> Vec<Frame> {
    let stages: Vec<Box<dyn Stage>> = vec![Box::new(Shared(stage.clone()))];
    let handle = Chain::<Frame>::handle(&stages);
    let (in_lo, in_hi) = (
        lo.saturating_sub(handle),
        (hi + handle).min(frames.len() - 1),
    );
    let range = frames.iter().enumerate().take(in_hi + 1).skip(in_lo);
    let mut out: Vec<(usize, Frame)> = match backend {
        None => {
            let mut chain = Chain::new(&stages, frames.len(), in_lo, in_hi);
            let mut out = Vec::new();
            for (pos, f) in range {
                chain
                    .push(pos, f.clone(), &mut CpuRunner, &mut out)
                    .unwrap();
            }
            out
        }
        Some(gpu) => {
            let mut chain = Chain::new(&stages, frames.len(), in_lo, in_hi);
            let mut out = Vec::new();
            for (pos, f) in range {
                let up = gpu.upload(f).unwrap();
                chain.push(pos, up, &mut GpuRunner(gpu), &mut out).unwrap();
            }
            out.into_iter()
                .map(|(q, g)| {
                    let f = gpu.download(&g).unwrap();
                    gpu.recycle(g);
                    (q, f)
                })
                .collect()
        }
    };
    out.retain(|(q, _)| *q >= lo && *q <= hi);
    assert_eq!(out.len(), hi + 1 - lo);
    out.into_iter().map(|(_, f)| f).collect()
}

fn new_stage(params: StabiliseParams) -> Arc<Stabilise> {
    Arc::new(Stabilise::new(params).unwrap())
}

fn restore_on(
    backend: Backend,
    params: StabiliseParams,
    frames: &[Frame],
) -> (Vec<Frame>, Arc<Stabilise>) {
    let stage = new_stage(params);
    let out = restore_range_on(backend, &stage, frames, 0, frames.len() - 1);
    (out, stage)
}

fn restore(params: StabiliseParams, frames: &[Frame]) -> (Vec<Frame>, Arc<Stabilise>) {
    restore_on(None, params, frames)
}

fn params(window: usize) -> StabiliseParams {
    StabiliseParams {
        window,
        ..StabiliseParams::default()
    }
}

/// A weaved sequence of the synthetic scene (a disc crossing it: a moving subject), with dust
/// and flicker on every frame: `(clean, weaved, weave)`.
fn weaved_sequence(
    n: usize,
    planes: usize,
    seed: u64,
) -> (Vec<Frame>, Vec<Frame>, Vec<Similarity>) {
    let truth = weave(n, 1.5, seed);
    let clean: Vec<Frame> = (0..n).map(|t| scene_frame(W, H, planes, t, 7)).collect();
    let mut rng = Rng::new(seed ^ 0xF11C);
    let degraded = clean
        .iter()
        .zip(&truth)
        .enumerate()
        .map(|(t, (c, w))| {
            let mut f = moved(c, w);
            let gain = rng.range(0.9, 1.1);
            f.data.iter_mut().for_each(|v| *v *= gain);
            dust(&mut f, 6, seed + t as u64);
            f
        })
        .collect();
    (clean, degraded, truth)
}

/// The estimator recovers known sub-pixel shifts, rotations and scales between neighbours to
/// within 0.1 px anywhere in the frame, despite the moving disc, dust and flicker.
#[test]
fn pair_motion_is_recovered() {
    let (_, degraded, truth) = weaved_sequence(8, 3, 11);
    let an: Vec<Analysis> = degraded.iter().map(analysis).collect();
    for t in 1..an.len() {
        let got = motion::estimate(&an[t - 1], &an[t], &config());
        let m = got.motion.expect("no cut, no loss");
        let want = truth[t - 1].inverse().then(&truth[t]);
        let err = corner_error(&m, &want);
        assert!(
            err < 0.1,
            "pair {t}: got {m:?}, want {want:?}: {err:.3} px at a corner"
        );
    }
}

/// A sequence shifted by known sub-pixel offsets, rotations and scales is steadied: every
/// restored frame sits where the smoothed path puts it (within 0.1 px anywhere in the frame),
/// and the restored sequence moves far less than the weaved one.
#[test]
fn known_weave_is_steadied_within_a_tenth_of_a_pixel() {
    check_known_weave(None);
}

fn check_known_weave(backend: Backend) {
    let n = 20;
    let (clean, degraded, truth) = weaved_sequence(n, 1, 5);
    let (out, stage) = restore_on(backend, params(6), &degraded);
    let track = stage.track();
    assert_eq!(track.len(), n);
    let mut placed = Vec::new();
    for t in 0..n {
        // Where the output shows the clean frame: the weave, then the correction applied.
        let correction = Similarity::from_track(track[t].correction);
        let want = truth[t].then(&correction);
        let got = motion::estimate(&analysis(&clean[t]), &analysis(&out[t]), &config())
            .motion
            .expect("registers");
        let err = corner_error(&got, &want);
        assert!(
            err < 0.1,
            "frame {t}: restored at {got:?}, expected {want:?}: {err:.3} px"
        );
        placed.push(want);
    }
    // Steadiness: the spread of where frames sit, before and after.
    let spread = |m: &[Similarity]| {
        let (mx, my) = (
            m.iter().map(|s| s.dx).sum::<f64>() / m.len() as f64,
            m.iter().map(|s| s.dy).sum::<f64>() / m.len() as f64,
        );
        (m.iter()
            .map(|s| (s.dx - mx).powi(2) + (s.dy - my).powi(2))
            .sum::<f64>()
            / m.len() as f64)
            .sqrt()
    };
    let (before, after) = (spread(&truth), spread(&placed));
    eprintln!("spread of frame positions: {before:.3} px weaved, {after:.3} px restored");
    // Local quadratic smoothing over 6 frames either side (one-sided near the ends) leaves
    // about half of white jitter; slow weave it removes almost entirely.
    assert!(
        after < 0.6 * before,
        "spread {before:.3} px before, {after:.3} px after"
    );
}

/// A jump (a splice, a torn perforation) in a still shot is put back: the jumped frames are
/// restored to within 0.1 px of the clean picture and the others are left within 0.05 px.
#[test]
fn a_jump_is_put_back() {
    check_jump(None);
}

fn check_jump(backend: Backend) {
    let n = 15;
    let still = scene_frame(W, H, 1, 0, 17);
    let jump = Similarity {
        dx: 1.3,
        dy: -0.7,
        rot: 0.1f64.to_radians(),
        scale: 1.0,
    };
    // Frames 7 and 8 jump; the film settles back at 9.
    let weave: Vec<Similarity> = (0..n)
        .map(|t| {
            if t == 7 || t == 8 {
                jump
            } else {
                Similarity::IDENTITY
            }
        })
        .collect();
    let frames: Vec<Frame> = weave.iter().map(|w| moved(&still, w)).collect();
    let (_, stage) = restore_on(backend, params(6), &frames);
    for (t, r) in stage.track().iter().enumerate() {
        let placed = weave[t].then(&Similarity::from_track(r.correction));
        let err = placed.max_displacement(W, H);
        let limit = if t == 7 || t == 8 { 0.1 } else { 0.05 };
        assert!(err < limit, "frame {t}: {err:.3} px from the clean picture");
    }
}

/// A steady pan (no weave) is kept: no frame is moved by more than a twentieth of a pixel, and
/// with weave on top the restored frames follow the pan within 0.1 px.
#[test]
fn steady_pan_is_preserved() {
    check_pan(None);
}

fn check_pan(backend: Backend) {
    let n = 16;
    let (vx, vy) = (1.7, -0.6);
    let big = scene_frame(W, H, 1, 0, 3);
    let pan: Vec<Similarity> = (0..n)
        .map(|t| Similarity::translation(vx * t as f64, vy * t as f64))
        .collect();
    let frames: Vec<Frame> = pan.iter().map(|m| moved(&big, m)).collect();
    let (_, stage) = restore_on(backend, params(6), &frames);
    for r in stage.track() {
        let c = Similarity::from_track(r.correction);
        let moved_px = c.max_displacement(W, H);
        assert!(moved_px < 0.05, "frame {}: moved {moved_px:.3} px", r.frame);
    }
    // The same pan with weave: the output frames sit on the pan.
    let jitter = weave(n, 0.8, 9);
    let weaved: Vec<Frame> = pan
        .iter()
        .zip(&jitter)
        .map(|(p, j)| moved(&big, &p.then(j)))
        .collect();
    let (out, stage) = restore_on(backend, params(6), &weaved);
    let track = stage.track();
    let placed: Vec<Similarity> = (0..n)
        .map(|t| {
            pan[t]
                .then(&jitter[t])
                .then(&Similarity::from_track(track[t].correction))
        })
        .collect();
    // The restored frames move with the pan (a line fitted through where they sit has the
    // pan's slope within 0.05 px per frame) and shake far less about it than the weave did.
    let line = |v: &[f64]| {
        let n = v.len() as f64;
        let mt = (n - 1.0) / 2.0;
        let mv = v.iter().sum::<f64>() / n;
        let stt: f64 = (0..v.len()).map(|t| (t as f64 - mt).powi(2)).sum();
        let slope = (0..v.len())
            .map(|t| (t as f64 - mt) * (v[t] - mv))
            .sum::<f64>()
            / stt;
        let rms = ((0..v.len())
            .map(|t| (v[t] - mv - slope * (t as f64 - mt)).powi(2))
            .sum::<f64>()
            / n)
            .sqrt();
        (slope, rms)
    };
    let (sx, rx) = line(&placed.iter().map(|m| m.dx).collect::<Vec<_>>());
    let (sy, ry) = line(&placed.iter().map(|m| m.dy).collect::<Vec<_>>());
    assert!(
        (sx - vx).abs() < 0.05 && (sy - vy).abs() < 0.05,
        "pan ({vx}, {vy}) became ({sx:.3}, {sy:.3})"
    );
    let (_, jx) = line(&jitter.iter().map(|m| m.dx).collect::<Vec<_>>());
    let (_, jy) = line(&jitter.iter().map(|m| m.dy).collect::<Vec<_>>());
    assert!(
        rx.hypot(ry) < 0.6 * jx.hypot(jy),
        "shake about the pan {:.3} px, weave {:.3} px",
        rx.hypot(ry),
        jx.hypot(jy)
    );
    let _ = out;
}

/// A different shot: another seed, turned upside down.
fn other_scene(t: usize) -> Frame {
    let f = scene_frame(W, H, 1, t, 99);
    let mut out = f.clone();
    for y in 0..H {
        for x in 0..W {
            out.set(0, x, y, f.get(0, W - 1 - x, H - 1 - y));
        }
    }
    out
}

/// A cut does not leak motion across it: each shot restores exactly as it does alone, and the
/// track marks the cut.
#[test]
fn cut_does_not_leak_motion() {
    check_cut(None);
}

fn check_cut(backend: Backend) {
    let jitter_a = weave(10, 1.2, 21);
    let shot_a: Vec<Frame> = (0..10)
        .map(|t| moved(&scene_frame(W, H, 1, t, 7), &jitter_a[t]))
        .collect();
    // Shot B pans fast.
    let shot_b: Vec<Frame> = (0..10)
        .map(|t| {
            moved(
                &other_scene(t),
                &Similarity::translation(2.5 * t as f64, 1.0 * t as f64),
            )
        })
        .collect();
    let all: Vec<Frame> = shot_a.iter().chain(&shot_b).cloned().collect();
    let (out, stage) = restore_on(backend, params(6), &all);
    let (alone_a, _) = restore_on(backend, params(6), &shot_a);
    let (alone_b, _) = restore_on(backend, params(6), &shot_b);
    for (t, (got, want)) in out.iter().zip(alone_a.iter().chain(&alone_b)).enumerate() {
        compare(&format!("stabilise cut frame {t}"), got, want, 0.0).assert_ok();
    }
    let track = stage.track();
    assert_eq!(track[10].brk, Some(Break::Cut));
    assert!(track
        .iter()
        .enumerate()
        .all(|(i, r)| i == 10 || r.brk.is_none()));
    assert_eq!((track[9].used_after, track[10].used_before), (0, 0));
}

/// Chunks restored separately (with their handles) equal the whole run, bit for bit.
#[test]
fn chunks_equal_whole_run() {
    check_chunks(None);
}

fn check_chunks(backend: Backend) {
    let (_, degraded, _) = weaved_sequence(14, 1, 31);
    let (whole, _) = restore_on(backend, params(4), &degraded);
    for (lo, hi) in [(0, 4), (5, 9), (10, 13)] {
        let stage = new_stage(params(4));
        let part = restore_range_on(backend, &stage, &degraded, lo, hi);
        for (i, f) in part.iter().enumerate() {
            compare(
                &format!("stabilise chunk frame {}", lo + i),
                f,
                &whole[lo + i],
                0.0,
            )
            .assert_ok();
        }
    }
}

/// The track written with `track_out` and read back with `track_in` replaces the estimation:
/// the same frames come out, with other smoothing too.
#[test]
fn track_round_trip() {
    let (_, degraded, _) = weaved_sequence(10, 1, 41);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("track.jsonl");
    let (first, stage) = restore(
        StabiliseParams {
            track_out: Some(path.clone()),
            ..params(4)
        },
        &degraded,
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 10);
    assert_eq!(stage.track().len(), 10);
    // Same smoothing from the track: the same frames.
    let (again, reader) = restore(
        StabiliseParams {
            track_in: Some(path.clone()),
            ..params(4)
        },
        &degraded,
    );
    assert_eq!(reader.track_pairs(), 9);
    let report = reader.report().unwrap();
    assert_eq!(
        (
            report["pairs_estimated"].as_u64(),
            report["pairs_from_track"].as_u64()
        ),
        (Some(0), Some(9))
    );
    for (t, (a, b)) in first.iter().zip(&again).enumerate() {
        compare(&format!("stabilise track frame {t}"), b, a, 0.0).assert_ok();
    }
    // Other smoothing from the track equals other smoothing estimated afresh.
    let other = |track_in| StabiliseParams {
        window: 3,
        strength: 0.7,
        track_in,
        ..StabiliseParams::default()
    };
    let (from_track, _) = restore(other(Some(path.clone())), &degraded);
    let (fresh, _) = restore(other(None), &degraded);
    for (t, (a, b)) in from_track.iter().zip(&fresh).enumerate() {
        compare(&format!("stabilise retrack frame {t}"), a, b, 0.0).assert_ok();
    }
}

/// The default fill leaves no black border; `black` does; `crop` cuts `max_shift` px and does
/// not scale.
#[test]
fn border_fills() {
    // Weave large enough to uncover a border of a pixel or two.
    let jitter: Vec<Similarity> = (0..9)
        .map(|t| {
            Similarity::translation(
                if t % 2 == 0 { 2.0 } else { -2.0 },
                if t % 3 == 0 { 1.5 } else { -1.0 },
            )
        })
        .collect();
    let frames: Vec<Frame> = (0..9)
        .map(|t| moved(&scene_frame(W, H, 3, 0, 7), &jitter[t]))
        .collect();
    // The scene lies within 0.05..0.95: anything darker is a fill.
    let darkest = |f: &Frame| f.data.iter().fold(f32::INFINITY, |m, &v| m.min(v));
    let (out, _) = restore(params(4), &frames);
    for (t, f) in out.iter().enumerate() {
        assert!(
            darkest(f) > 0.03,
            "frame {t}: black border with the default fill"
        );
    }
    let (black, _) = restore(
        StabiliseParams {
            fill: Fill::Black,
            ..params(4)
        },
        &frames,
    );
    assert!(
        black.iter().any(|f| darkest(f) == 0.0),
        "fill = black left no black"
    );
    let (mirror, _) = restore(
        StabiliseParams {
            fill: Fill::Mirror,
            ..params(4)
        },
        &frames,
    );
    assert!(mirror.iter().all(|f| darkest(f) > 0.03));
    let (crop, _) = restore(
        StabiliseParams {
            fill: Fill::Crop,
            max_shift: 4.0,
            ..params(4)
        },
        &frames,
    );
    for (f, m) in crop.iter().zip(&mirror) {
        assert_eq!((f.width, f.height), (W - 8, H - 8));
        // Not scaled: the crop is the inside of the mirrored result.
        let inner = nitrate::metrics::crop(m, 4);
        compare("stabilise crop", f, &inner, 0.0).assert_ok();
    }
}

/// The stage with strength 0 leaves frames where they are (up to resampling at a zero shift,
/// which is exact).
#[test]
fn strength_zero_is_identity() {
    let (_, degraded, _) = weaved_sequence(6, 3, 51);
    let (out, _) = restore(
        StabiliseParams {
            strength: 0.0,
            ..params(3)
        },
        &degraded,
    );
    for (t, (a, b)) in out.iter().zip(&degraded).enumerate() {
        compare(&format!("stabilise strength 0 frame {t}"), a, b, 0.0).assert_ok();
    }
}

#[test]
fn parameters_are_checked() {
    let table = |s: &str| -> toml::Table { toml::from_str(s).unwrap() };
    assert!(stages::build("stabilize", &table("")).is_ok());
    assert_eq!(stages::canonical_name("Stabilize").unwrap(), "stabilise");
    let err = |s: &str| format!("{:#}", stages::build("stabilise", &table(s)).err().unwrap());
    assert!(err("windw = 3").contains("unknown field"));
    assert!(err("window = 0").contains("window"));
    assert!(err("strength = 1.5").contains("strength"));
    assert!(err("fill = \"smear\"").contains("unknown variant"));
    assert!(err("max_shift = 0").contains("max_shift"));
    assert!(err("roi = [0, 0, 8, 8]").contains("roi"));
    assert!(err("degree = 3").contains("degree"));
    assert!(err("track_in = \"/nonexistent/track.jsonl\"").contains("cannot open"));
    let ok = stages::build(
        "stabilise",
        &table("window = 8\nstrength = 0.5\nfill = \"crop\"\nroi = [0, 0, 64, 32]\nmax_shift = 12\nrotation = false\nscale = false"),
    )
    .unwrap();
    assert_eq!(ok.temporal_radius(), 8);
    assert_eq!(ok.params_json()["fill"], "crop");
}

/// Motion is anchored on the region of interest when one is given: a frame whose left half
/// holds still "perforations" while the picture on the right jumps is steadied on the left.
#[test]
fn region_of_interest_anchors_the_motion() {
    let base = scene_frame(W, H, 1, 0, 13);
    let a = base.clone();
    let shifted = moved(&base, &Similarity::translation(3.0, 2.0));
    // Right half of b moves by (3, 2); the left 64 columns stay.
    let mut b = base.clone();
    for y in 0..H {
        for x in 64..W {
            b.set(0, x, y, shifted.get(0, x, y));
        }
    }
    let roi = Config {
        roi: Some([0, 0, 64, H]),
        rotation: false,
        scale: false,
        ..config()
    };
    let m = motion::estimate(&analysis(&a), &analysis(&b), &roi)
        .motion
        .unwrap();
    assert!(m.dx.hypot(m.dy) < 0.05, "anchored on the left: {m:?}");
}

/// GPU and CPU agree within the stated tolerance, with every fill, on colour and mono.
#[test]
fn gpu_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let cases = [
        (3, Fill::Neighbours),
        (3, Fill::Mirror),
        (3, Fill::Black),
        (3, Fill::Crop),
        (1, Fill::Neighbours),
    ];
    for (planes, fills) in [(3, &cases[..4]), (1, &cases[4..])] {
        let (_, degraded, _) = weaved_sequence(6, planes, 61);
        for &(_, fill) in fills {
            let p = StabiliseParams {
                fill,
                max_shift: 6.0,
                ..params(2)
            };
            let (cpu_stage, gpu_stage) = (
                Stabilise::new(p.clone()).unwrap(),
                Stabilise::new(p).unwrap(),
            );
            let on_gpu: Vec<_> = degraded.iter().map(|f| gpu.upload(f).unwrap()).collect();
            let r = 2;
            let mut worst = 0.0f32;
            for c in 0..degraded.len() {
                let lo = c.saturating_sub(r);
                let hi = (c + r).min(degraded.len() - 1);
                let cw = Window {
                    before: (lo..c).rev().map(|i| &degraded[i]).collect(),
                    center: &degraded[c],
                    after: (c + 1..=hi).map(|i| &degraded[i]).collect(),
                };
                let gw = Window {
                    before: (lo..c).rev().map(|i| &on_gpu[i]).collect(),
                    center: &on_gpu[c],
                    after: (c + 1..=hi).map(|i| &on_gpu[i]).collect(),
                };
                let want = cpu_stage.run_cpu(&cw).unwrap();
                let out = gpu_stage.run_gpu(&gpu, &gw).unwrap();
                let got = gpu.download(&out).unwrap();
                let cmp = compare(
                    &format!("stabilise gpu {fill:?} {planes} planes frame {c}"),
                    &got,
                    &want,
                    GPU_TOLERANCE,
                );
                worst = worst.max(cmp.max_diff);
                cmp.assert_ok();
                gpu.recycle(out);
            }
            // The same frames, breaks and sources on both backends; the motions (estimated on
            // each backend) within the stated tolerance.
            let (ct, gt) = (cpu_stage.track(), gpu_stage.track());
            assert_eq!(ct.len(), gt.len());
            for (c, g) in ct.iter().zip(&gt) {
                let same = |r: &stages::stabilise::track::Record| {
                    (
                        r.frame,
                        r.key.clone(),
                        r.prev_key.clone(),
                        r.brk,
                        r.used_before,
                        r.used_after,
                    )
                };
                assert_eq!(same(c), same(g));
                let apart = |a: [f64; 4], b: [f64; 4]| {
                    let (a, b) = (Similarity::from_track(a), Similarity::from_track(b));
                    a.then(&b.inverse()).max_displacement(W, H)
                };
                assert_eq!(c.motion.is_some(), g.motion.is_some());
                if let (Some(cm), Some(gm)) = (c.motion, g.motion) {
                    assert!(apart(cm, gm) <= GPU_MOTION_TOLERANCE, "{c:?} vs {g:?}");
                }
                for (a, b) in [
                    (c.raw, g.raw),
                    (c.smoothed, g.smoothed),
                    (c.correction, g.correction),
                ] {
                    assert!(apart(a, b) <= GPU_MOTION_TOLERANCE, "{c:?} vs {g:?}");
                }
                assert!((c.gain - g.gain).abs() <= 1e-3 && (c.lift - g.lift).abs() <= 1e-3);
            }
            assert_eq!(gpu_stage.track().len(), degraded.len());
            eprintln!("stabilise {fill:?}, {planes} planes: largest GPU/CPU difference {worst:e}");
        }
    }
}

/// A frame of `w` x `h` moved by `m`, with a gain and dust.
fn weaved_frame(w: usize, h: usize, planes: usize, t: usize, m: &Similarity, gain: f32) -> Frame {
    let mut f = moved(&scene_frame(w, h, planes, t, 7), m);
    f.data.iter_mut().for_each(|v| *v *= gain);
    let mut rng = Rng::new(t as u64 + 5);
    for _ in 0..8 {
        let (cx, cy) = (rng.range(0.0, w as f32), rng.range(0.0, h as f32));
        for y in (cy as usize).saturating_sub(3)..(cy as usize + 3).min(h) {
            for x in (cx as usize).saturating_sub(3)..(cx as usize + 3).min(w) {
                for p in 0..planes {
                    f.set(p, x, y, 0.97);
                }
            }
        }
    }
    f
}

/// The motion estimates themselves agree between the backends: on a pyramid of three levels
/// (640x360, also with a region of interest) and on a frame reduced by 2 for analysis
/// (1040x208), colour and mono, with rotation, scale, a moving subject, dust and flicker, and
/// across a cut. The analysis luma is
/// bit-identical (equal content hashes, so tracks serve either backend), the coarsest level
/// equal to 1e-5, and every pair's motion within `GPU_MOTION_TOLERANCE` px at the corners, its
/// gain and lift within 1e-3.
#[test]
fn gpu_motion_estimates_match_cpu() {
    let Some(gpu) = gpu() else { return };
    let cfg = config();
    let mut worst = 0.0f64;
    for (w, h, planes) in [(640, 360, 3), (1040, 208, 1)] {
        let truth = [
            Similarity::IDENTITY,
            Similarity {
                dx: 1.37,
                dy: -0.62,
                rot: 0.12f64.to_radians(),
                scale: 1.0015,
            },
            Similarity {
                dx: -0.81,
                dy: 0.44,
                rot: -0.07f64.to_radians(),
                scale: 0.999,
            },
        ];
        let mut frames: Vec<Frame> = truth
            .iter()
            .enumerate()
            .map(|(t, m)| weaved_frame(w, h, planes, t, m, [1.0, 0.93, 1.06][t]))
            .collect();
        // A different shot: the pair into it is a cut on both backends.
        let mut other = scene_frame(w, h, planes, 0, 99);
        other.data.iter_mut().for_each(|v| *v = 1.0 - *v);
        frames.push(other);
        let cpu_an: Vec<Analysis> = frames.iter().map(analysis).collect();
        let gpu_an: Vec<Analysis> = frames
            .iter()
            .map(|f| {
                let up = gpu.upload(f).unwrap();
                let a = stages::stabilise::gpu::analysis(&gpu, &up).unwrap();
                gpu.recycle(up);
                a
            })
            .collect();
        for (c, g) in cpu_an.iter().zip(&gpu_an) {
            assert_eq!(c.hash, g.hash, "{w}x{h}: the content hashes differ");
            assert_eq!(c.thumb.data.len(), g.thumb.data.len());
            let td = c
                .thumb
                .data
                .iter()
                .zip(&g.thumb.data)
                .map(|(a, b)| (a - b).abs());
            assert!(
                td.fold(0.0f32, f32::max) <= 1e-5,
                "{w}x{h}: thumbnails differ"
            );
            assert_eq!(c.levels.len(), g.levels.len());
            assert!(c.levels.len() >= 3, "{w}x{h}: {} levels", c.levels.len());
            let (ct, gt) = (c.levels.last().unwrap(), g.levels.last().unwrap());
            assert_eq!((ct.w, ct.h, ct.k), (gt.w, gt.h, gt.k));
            let d = ct
                .img
                .iter()
                .zip(&gt.img)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(d <= 1e-5, "{w}x{h}: coarsest levels differ by {d}");
        }
        let mut bufs = None;
        // The whole frame, and (on the first size) a region of interest: the left half.
        let roi = Config {
            roi: Some([8, 8, w / 2, h - 16]),
            ..cfg.clone()
        };
        let configs = if w == 640 {
            vec![&cfg, &roi]
        } else {
            vec![&cfg]
        };
        for (c, cfg) in configs.into_iter().enumerate() {
            for t in 1..frames.len() {
                let want = motion::estimate(&cpu_an[t - 1], &cpu_an[t], cfg);
                let b = stages::stabilise::gpu::PassBuffers::for_device(&gpu, &mut bufs).unwrap();
                let (ga, gb) = (&gpu_an[t - 1], &gpu_an[t]);
                let mut m = stages::stabilise::gpu::GpuMeasure::new(&gpu, ga, gb, b);
                let got = motion::estimate_with(ga, gb, cfg, &mut m).unwrap();
                assert_eq!(got.brk, want.brk, "{w}x{h} pair {t}");
                if t == frames.len() - 1 {
                    assert_eq!(want.brk, Some(Break::Cut));
                    continue;
                }
                let (gm, cm) = (got.motion.unwrap(), want.motion.unwrap());
                let err = gm.then(&cm.inverse()).max_displacement(w, h);
                let truth_err = cm.then(&truth[t - 1].inverse().then(&truth[t]).inverse());
                eprintln!(
                    "{w}x{h} config {c} pair {t}: GPU/CPU {err:.2e} px, gain {:.1e}, lift \
                     {:.1e}; CPU vs truth {:.3} px",
                    (got.gain - want.gain).abs(),
                    (got.lift - want.lift).abs(),
                    truth_err.max_displacement(w, h)
                );
                assert!(
                    err <= GPU_MOTION_TOLERANCE,
                    "{w}x{h} pair {t}: GPU {gm:?}, CPU {cm:?}: {err:.4} px apart"
                );
                assert!(
                    (got.gain - want.gain).abs() <= 1e-3 && (got.lift - want.lift).abs() <= 1e-3
                );
                worst = worst.max(err);
            }
        }
    }
    eprintln!("largest GPU/CPU motion difference: {worst:.2e} px");
}

/// The property tests above on the GPU backend (motion estimated by the GPU's passes): known
/// weave steadied within 0.1 px, a jump put back, a steady pan kept, a cut not leaked across,
/// chunks equal to the whole run bit for bit.
#[test]
fn gpu_backend_passes_the_property_tests() {
    let Some(gpu) = gpu() else { return };
    check_known_weave(Some(&gpu));
    check_jump(Some(&gpu));
    check_pan(Some(&gpu));
    check_cut(Some(&gpu));
    check_chunks(Some(&gpu));
}
