//! `stabilise` (alias `stabilize`): remove gate weave, splice jumps and jitter while keeping the
//! camera's intentional pans, tilts and zooms.
//!
//! # Algorithm (per output frame, over the window of `2 * window + 1` frames)
//!
//! 1. **Analysis** ([`motion::Analysis`]): each frame is reduced to luma at the analysis
//!    resolution (a power-of-two box average to at most 1024 px across) and a smoothed pyramid
//!    is built, with the frame's content hash and cut thumbnail: `cpu::reduce` and
//!    `Analysis::new` on the CPU, `gpu::analysis` (`shaders/stabilise_{luma,pyramid}.wgsl`) on
//!    the GPU, where the pyramid stays on the device and only the row hashes, the thumbnail and
//!    the coarsest level come back. Frames are analysed once and cached by identity (data
//!    pointer or GPU buffer, and a fingerprint of 512 samples gathered on the device).
//! 2. **Pairs** ([`motion::estimate_with`]): the motion between each pair of neighbours — a
//!    similarity (translation, rotation, scale) and a luma gain and lift — by phase correlation
//!    and robust (Tukey) Gauss–Newton on the pyramid, so moving subjects, dust, grain and
//!    flicker do not pull it. The per-sample work of every Gauss–Newton pass (residuals, their
//!    median, the weighted normal equations) is done by the backend ([`motion::CpuMeasure`],
//!    [`gpu::GpuMeasure`]: shaders, 32 numbers back per pass); the phase correlation on the
//!    coarsest level (at most 256 px across), the candidates and the 6x6 solves are shared host
//!    code. A cut (the shared detector of `deflicker::cuts`) or a failed registration breaks
//!    the path. Pairs are cached per backend by the content hashes of their frames, or read
//!    from a motion track (`track_in`); the hashes are equal on both backends, so a track
//!    serves either.
//! 3. **Path** ([`path`]): the poses of the centre's shot are chained from the pairs, smoothed by
//!    a robust local polynomial over time (Gaussian weights of `window / 2` frames, or of
//!    [`SHORT_SIGMA`] frames where that long fit strays more than `follow` px from the short
//!    one: a camera move it would bend), and the centre is moved by the smoothed pose (times
//!    `strength`, limited to `max_shift`).
//! 4. **Warp** (`cpu::warp`, `shaders/stabilise_warp.wgsl`): one Lanczos-3 resampling of every
//!    plane in `f32`. Where the moved picture leaves the frame, `fill` decides: the nearest
//!    frames of the shot moved to the same place and matched in exposure (`neighbours`), the
//!    picture mirrored (`mirror`), black, or a border of `max_shift` px cropped away (`crop`,
//!    no scaling).
//!
//! Everything a frame's output depends on lies in its window, and each pair's motion only on
//! its two frames, and no sum depends on thread scheduling (CPU: rows added in order; GPU: a
//! fixed tree per row, rows added in order, integer atomics only for the median's
//! histograms), so chunked runs equal whole runs on either backend. The backends' motions
//! agree within [`GPU_MOTION_TOLERANCE`] and their frames within [`GPU_TOLERANCE`].
//!
//! # Motion track
//!
//! Each restored frame adds a [`track::Record`] (raw and smoothed path, the pair motion, the
//! correction) to [`Stabilise::track`]; with `track_out` the records are also written as JSON
//! lines as frames are restored, and `track_in` reads such a file back so a re-run with other
//! smoothing skips the estimation.

pub mod cpu;
pub mod gpu;
pub mod motion;
pub mod path;
pub mod track;

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{FrameKey, Stage, Window};
use crate::frame::Frame;
use crate::gpu::{GpuContext, GpuFrame};
use cpu::SourceMap;
use motion::{Analysis, PairMotion, Similarity};
use path::{Plan, Smoothing};

/// Largest allowed difference between the GPU and CPU results (absolute up to 1, relative
/// above). Each backend estimates the motion itself, the two within [`GPU_MOTION_TOLERANCE`]
/// (seen: under 6e-6 px, which moves a sample by less than 6e-6 of the picture's largest
/// step); the warp differs by the GPU's `sin`/`cos` (the CPU interpolates a table of the same
/// closed form) and fused multiply-adds in the weights and positions: a few ulp of each weight
/// times sample values of about 1. 1e-4 is under a tenth of a 10-bit code value, with room for
/// hardware `sin` approximations. Seen on lavapipe: 3e-7 to 6e-6 (`tests/stabilise.rs`,
/// `restore --check-gpu`).
pub const GPU_TOLERANCE: f32 = 1e-4;

/// Largest allowed distance, px anywhere in the frame, between the GPU's and the CPU's motion
/// estimates (pair motions, and the raw and smoothed paths chained from them). Both run one
/// algorithm (`motion::estimate_with`) on the same data; the GPU's passes compute positions,
/// Catmull–Rom weights and the normal-equation sums in `f32` (sums in a fixed tree), the CPU's
/// in `f64`, and the pyramid's blur rounds differently. Seen on lavapipe: at most 5.6e-6 px
/// (`tests/stabilise.rs`); 1e-3 px leaves room for other hardware's rounding and is still a
/// hundredth of the 0.1 px the estimator is held to.
pub const GPU_MOTION_TOLERANCE: f64 = 1e-3;

/// Standard deviation (frames) of the short smoothing the path follows where the long one
/// would bend a camera move (see `follow`).
pub const SHORT_SIGMA: f64 = 3.0;

/// What fills the picture where the stabilised frame has moved away from the edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fill {
    /// The nearest frames of the shot (up to two on each side), moved to the same place and
    /// matched in exposure; mirrored picture where none covers.
    Neighbours,
    /// The picture mirrored at the edge.
    Mirror,
    /// A border of `max_shift` px (rounded up) cut away on every side; no scaling. The output
    /// is smaller than the input.
    Crop,
    /// Black (code value 0).
    Black,
}

impl Fill {
    /// Code of the fill in `shaders/stabilise_warp.wgsl`.
    pub fn code(&self) -> u32 {
        match self {
            Fill::Neighbours => 0,
            Fill::Mirror => 1,
            Fill::Crop => 2,
            Fill::Black => 3,
        }
    }
}

/// Parameters of `stabilise`. Cost: the warp is 36 multiply-adds per sample (Lanczos-3) plus
/// the weights per pixel; the analysis reduces each new frame once and registers one new pair
/// per frame on at most 1024 px across (on the device with the GPU backend).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StabiliseParams {
    /// Frames on each side of the restored one that its path is smoothed over (the temporal
    /// radius, the look-ahead); the Gaussian weights have a standard deviation of half of it.
    /// Longer removes slower weave and follows the camera less closely. Range 1..=60,
    /// default 15. Memory: `2 * window + 1` frames are held.
    pub window: usize,
    /// How much of the correction to apply: 0 leaves frames where they are, 1 moves them onto
    /// the smoothed path. Range 0..=1, default 1.
    pub strength: f64,
    /// Degree of the local polynomial the path is smoothed with: 1 keeps steady pans, tilts and
    /// zooms exactly; 2 also keeps accelerating ones (and removes less slow weave).
    /// Range 1..=2, default 2.
    pub degree: usize,
    /// How far (px at 480 lines, scaled with taller frames) the smoothing over the whole window
    /// may stray from a short one (3 frames) before the short one takes over (fully at twice
    /// this): camera moves the long window would bend are kept, weave is still removed by the
    /// long one where the camera is steady. Larger smooths more and follows the camera less;
    /// 0 always follows the short one. Range 0..=100, default 0.3.
    pub follow: f64,
    /// What fills the border the move uncovers: `neighbours` (default), `mirror`, `crop`,
    /// `black`. See [`Fill`].
    pub fill: Fill,
    /// Region `[x, y, width, height]` (pixels) whose picture anchors the motion, e.g. the
    /// perforations or the frame line when the scan shows them; default: the whole frame.
    pub roi: Option<[usize; 4]>,
    /// Largest move of any pixel, px; larger corrections are scaled down to it (and `crop`
    /// cuts this much from every side). Range 0.5..=512, default 32.
    pub max_shift: f64,
    /// Estimate and correct rotation. Default true.
    pub rotation: bool,
    /// Estimate and correct scale (breathing, zoom jitter); zooms are kept by the smoothing.
    /// Default true.
    pub scale: bool,
    /// A cut lies between neighbours when `1 - correlation` of their registered luma
    /// thumbnails exceeds this (the shared detector of `deflicker::cuts`); the path restarts
    /// there. Lower finds more cuts. Range 0.05..=1 (1: never), default 0.5.
    pub cut_threshold: f64,
    /// Write the motion track (JSON lines, see [`track`]) to this file as frames are restored.
    pub track_out: Option<PathBuf>,
    /// Read pair motions from this track instead of estimating them.
    pub track_in: Option<PathBuf>,
}

impl Default for StabiliseParams {
    fn default() -> Self {
        StabiliseParams {
            window: 15,
            strength: 1.0,
            degree: 2,
            follow: 0.3,
            fill: Fill::Neighbours,
            roi: None,
            max_shift: 32.0,
            rotation: true,
            scale: true,
            cut_threshold: 0.5,
            track_out: None,
            track_in: None,
        }
    }
}

impl StabiliseParams {
    pub fn validate(&self) -> Result<()> {
        if !(1..=60).contains(&self.window) {
            bail!(
                "stabilise.window = {} is out of range (valid: 1 to 60 frames on each side)",
                self.window
            );
        }
        if !(0.0..=1.0).contains(&self.strength) {
            bail!(
                "stabilise.strength = {} is out of range (valid: 0 to 1)",
                self.strength
            );
        }
        if !(1..=2).contains(&self.degree) {
            bail!(
                "stabilise.degree = {} is out of range (valid: 1 or 2)",
                self.degree
            );
        }
        if !(0.0..=100.0).contains(&self.follow) {
            bail!(
                "stabilise.follow = {} is out of range (valid: 0 to 100 px)",
                self.follow
            );
        }
        if !(0.5..=512.0).contains(&self.max_shift) {
            bail!(
                "stabilise.max_shift = {} is out of range (valid: 0.5 to 512 px)",
                self.max_shift
            );
        }
        if !(0.05..=1.0).contains(&self.cut_threshold) {
            bail!(
                "stabilise.cut_threshold = {} is out of range (valid: 0.05 to 1)",
                self.cut_threshold
            );
        }
        if let Some([_, _, w, h]) = self.roi {
            if w < 16 || h < 16 {
                bail!("stabilise.roi is {w}x{h} px; it must be at least 16x16");
            }
        }
        if self.track_in.is_some() && self.track_in == self.track_out {
            bail!("stabilise.track_in and track_out name the same file");
        }
        Ok(())
    }

    /// Border cut away by `crop`.
    pub fn crop_margin(&self) -> usize {
        self.max_shift.ceil() as usize
    }
}

#[derive(Default)]
struct State {
    /// Analyses by frame, with the call that last used them: the last two calls' are kept
    /// (with `--check-gpu` the two backends take turns, each with its own keys).
    frames: HashMap<FrameKey, (Arc<Analysis>, u64)>,
    calls: u64,
    /// Pair motions by the content hashes of their frames, per backend (`[cpu, gpu]`), so that
    /// with `--check-gpu` each backend's estimates are checked, not shared.
    pairs: [HashMap<(u64, u64), PairMotion>; 2],
    /// Per backend (`[cpu, gpu]`): the records and the last frame's key and raw path pose.
    /// With `--check-gpu` both backends restore every frame; each keeps its own track.
    tracks: [BackendTrack; 2],
    /// The backend whose records go to `track_out`: the first to restore a frame.
    primary: Option<usize>,
    /// Pairs estimated, and taken from `track_in`, over the run.
    estimated: usize,
    from_track: usize,
    /// Frame size of the last window, for the report.
    size: (usize, usize),
    writer: Option<track::Writer>,
}

#[derive(Default)]
struct BackendTrack {
    records: Vec<track::Record>,
    last: Option<(u64, Similarity)>,
}

const CPU: usize = 0;
const GPU: usize = 1;

pub struct Stabilise {
    pub params: StabiliseParams,
    /// Pairs read from `track_in`.
    given: HashMap<(u64, u64), PairMotion>,
    /// `nitrate analyse`: the analysis of the frame measured last, the next one's `prev`.
    measured_last: Mutex<Option<Arc<Analysis>>>,
    state: Mutex<State>,
    gpu_scratch: Mutex<Option<gpu::Scratch>>,
    pass_buffers: Mutex<Option<gpu::PassBuffers>>,
}

impl Stabilise {
    pub fn new(params: StabiliseParams) -> Result<Self> {
        params.validate()?;
        let given = match &params.track_in {
            Some(p) => track::read(p)?,
            None => HashMap::new(),
        };
        Ok(Stabilise {
            params,
            given,
            measured_last: Mutex::new(None),
            state: Mutex::new(State::default()),
            gpu_scratch: Mutex::new(None),
            pass_buffers: Mutex::new(None),
        })
    }

    pub fn from_table(table: &toml::Table) -> Result<Self> {
        let params: StabiliseParams = table.clone().try_into().context(
            "invalid parameters for stage 'stabilise' (keys: window, strength, degree, follow, \
             fill, roi, max_shift, rotation, scale, cut_threshold, track_out, track_in)",
        )?;
        Self::new(params)
    }

    /// The motion track so far: one record per restored frame, in output order (of the
    /// backend that restored first; with `--check-gpu`, the GPU's).
    pub fn track(&self) -> Vec<track::Record> {
        let st = self.lock();
        st.primary
            .map(|b| st.tracks[b].records.clone())
            .unwrap_or_default()
    }

    /// The track as JSON for the run's record.
    pub fn track_json(&self) -> serde_json::Value {
        serde_json::to_value(self.track()).unwrap_or_default()
    }

    /// Pairs read from `track_in`.
    pub fn track_pairs(&self) -> usize {
        self.given.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn config(&self) -> motion::Config {
        motion::Config {
            rotation: self.params.rotation,
            scale: self.params.scale,
            roi: self.params.roi,
            cut_threshold: self.params.cut_threshold,
        }
    }

    /// Analyses for the window's frames from the cache or `make`, and the cache trimmed to
    /// this window.
    fn analyses(
        &self,
        keys: &[FrameKey],
        mut make: impl FnMut(usize) -> Result<Analysis>,
    ) -> Result<Vec<Arc<Analysis>>> {
        let mut have: Vec<Option<Arc<Analysis>>> = {
            let st = self.lock();
            keys.iter()
                .map(|k| st.frames.get(k).map(|e| e.0.clone()))
                .collect()
        };
        for (i, slot) in have.iter_mut().enumerate() {
            if slot.is_none() {
                *slot = Some(Arc::new(make(i)?));
            }
        }
        let out: Vec<Arc<Analysis>> = have.into_iter().map(|a| a.expect("filled")).collect();
        let mut st = self.lock();
        st.calls += 1;
        let now = st.calls;
        st.frames.retain(|_, e| e.1 + 1 >= now);
        for (k, a) in keys.iter().zip(&out) {
            st.frames.insert(*k, (a.clone(), now));
        }
        Ok(out)
    }

    /// Pair motions of the window (temporal order), the plan for its centre, and the track
    /// record.
    fn analyse(
        &self,
        frames: &[Arc<Analysis>],
        center: usize,
        backend: usize,
        mut estimate: impl FnMut(&Analysis, &Analysis, &motion::Config) -> Result<PairMotion>,
    ) -> Result<Plan> {
        let first = &frames[center];
        if let Some([x, y, w, h]) = self.params.roi {
            if x + w > first.width || y + h > first.height {
                bail!(
                    "stabilise.roi [{x}, {y}, {w}, {h}] lies outside the {}x{} frame",
                    first.width,
                    first.height
                );
            }
        }
        if self.params.fill == Fill::Crop
            && 2 * self.params.crop_margin() >= first.width.min(first.height)
        {
            bail!(
                "stabilise: fill = \"crop\" with max_shift = {} leaves nothing of a {}x{} frame",
                self.params.max_shift,
                first.width,
                first.height
            );
        }
        let cfg = self.config();
        let keys: Vec<(u64, u64)> = frames.windows(2).map(|w| (w[0].hash, w[1].hash)).collect();
        let (cached, from_track): (Vec<Option<PairMotion>>, usize) = {
            let st = self.lock();
            let pairs = &st.pairs[backend];
            let from_track = keys
                .iter()
                .filter(|k| !pairs.contains_key(k) && self.given.contains_key(k))
                .count();
            let cached = keys
                .iter()
                .map(|k| self.given.get(k).or_else(|| pairs.get(k)).copied())
                .collect();
            (cached, from_track)
        };
        let estimated = cached.iter().filter(|c| c.is_none()).count();
        let pairs: Vec<PairMotion> = cached
            .into_iter()
            .enumerate()
            .map(|(i, c)| match c {
                Some(p) => Ok(p),
                None => estimate(&frames[i], &frames[i + 1], &cfg),
            })
            .collect::<Result<_>>()?;
        let (w, h) = (first.width, first.height);
        let smoothing = Smoothing {
            sigma: self.params.window as f64 / 2.0,
            short_sigma: SHORT_SIGMA,
            follow: self.params.follow * (h as f64 / 480.0).max(1.0),
            degree: self.params.degree,
            radius: (w as f64).hypot(h as f64) / 2.0,
        };
        let plan = path::plan(
            &pairs,
            center,
            &smoothing,
            self.params.strength,
            self.params.max_shift,
            w,
            h,
        );

        let mut st = self.lock();
        st.estimated += estimated;
        st.from_track += from_track;
        st.size = (w, h);
        let live: HashSet<(u64, u64)> = keys.iter().copied().collect();
        st.pairs[backend].retain(|k, _| live.contains(k));
        for (k, p) in keys.iter().zip(&pairs) {
            st.pairs[backend].insert(*k, *p);
        }
        // The track.
        {
            let primary = *st.primary.get_or_insert(backend);
            let last = st.tracks[backend].last;
            let pair = (center > 0).then(|| (frames[center - 1].hash, pairs[center - 1]));
            let raw = match (last, pair) {
                (Some((lk, lp)), Some((pk, p))) if lk == pk => match p.motion {
                    Some(m) => lp.then(&m),
                    None => Similarity::IDENTITY,
                },
                _ => Similarity::IDENTITY,
            };
            let rec = track::Record {
                frame: st.tracks[backend].records.len(),
                key: track::key_text(first.hash),
                prev_key: pair.map(|(k, _)| track::key_text(k)),
                motion: pair.and_then(|(_, p)| p.motion.map(|m| m.to_track())),
                gain: pair.map_or(1.0, |(_, p)| p.gain),
                lift: pair.map_or(0.0, |(_, p)| p.lift),
                brk: pair.and_then(|(_, p)| p.brk),
                raw: raw.to_track(),
                smoothed: raw.then(&plan.correction).to_track(),
                correction: plan.correction.to_track(),
                used_before: plan.used_before,
                used_after: plan.used_after,
            };
            if let (Some(path), true) = (&self.params.track_out, backend == primary) {
                if st.writer.is_none() {
                    st.writer = Some(track::Writer::create(path)?);
                }
                st.writer.as_mut().expect("just made").write(&rec)?;
            }
            let t = &mut st.tracks[backend];
            t.records.push(rec);
            t.last = Some((first.hash, raw));
        }
        Ok(plan)
    }

    fn cpu_analysis(f: &Frame) -> Analysis {
        let factor = motion::analysis_factor(f.width, f.height);
        Analysis::new(f.width, f.height, factor, f.planes, &cpu::reduce(f, factor))
    }

    fn sources(plan: &Plan) -> Vec<(usize, SourceMap)> {
        plan.sources
            .iter()
            .take(gpu::MAX_SOURCES)
            .map(|s| (s.frame, SourceMap::of(s)))
            .collect()
    }
}

fn place_of(value: &impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

impl Stage for Stabilise {
    fn name(&self) -> &'static str {
        "stabilise"
    }

    fn temporal_radius(&self) -> usize {
        self.params.window
    }

    /// The motion from the frame before (the CPU estimate a restore would make), keyed by the
    /// two frames' content hashes as in the motion track:
    /// `{"key", "prev_key", "pair": {"motion": {dx, dy, rot (radians), scale}, "gain", "lift",
    /// "brk"}}`; the first frame has only its `key`.
    fn measure(&self, prev: Option<&Frame>, frame: &Frame) -> Result<Option<serde_json::Value>> {
        if let Some([x, y, w, h]) = self.params.roi {
            if x + w > frame.width || y + h > frame.height {
                bail!(
                    "stabilise.roi [{x}, {y}, {w}, {h}] lies outside the {}x{} frame",
                    frame.width,
                    frame.height
                );
            }
        }
        let mut last = self.measured_last.lock().unwrap_or_else(|p| p.into_inner());
        let a = match (prev, last.take()) {
            (None, _) => None,
            (Some(_), Some(a)) => Some(a),
            (Some(p), None) => Some(Arc::new(Self::cpu_analysis(p))),
        };
        let b = Arc::new(Self::cpu_analysis(frame));
        let mut m = serde_json::json!({ "key": track::key_text(b.hash) });
        if let Some(a) = a {
            let pair = motion::estimate(&a, &b, &self.config());
            m["prev_key"] = track::key_text(a.hash).into();
            m["pair"] = serde_json::to_value(pair)?;
        }
        *last = Some(b);
        Ok(Some(m))
    }

    /// Pairs of the analysis serve as if read from a motion track (`track_in` wins where both
    /// name a pair).
    fn use_measures(&mut self, measures: &[serde_json::Value]) -> Result<()> {
        let key = |v: &serde_json::Value| v.as_str().and_then(|s| u64::from_str_radix(s, 16).ok());
        for (i, m) in measures.iter().enumerate() {
            let (Some(k), Some(pk), Some(pair)) =
                (key(&m["key"]), key(&m["prev_key"]), m.get("pair"))
            else {
                continue;
            };
            let pair: PairMotion = serde_json::from_value(pair.clone())
                .with_context(|| format!("stabilise: analysis measure {i} is not a pair motion"))?;
            self.given.entry((pk, k)).or_insert(pair);
        }
        Ok(())
    }

    /// The warp reads up to `max_shift` px plus the Lanczos reach away, but the motion is
    /// measured on the whole frame: tiles must share one analysis to be exact.
    fn spatial_halo(&self) -> usize {
        self.params.crop_margin() + 3
    }

    fn gpu_tolerance(&self) -> f32 {
        GPU_TOLERANCE
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    /// A summary of the motion track (the track itself goes to `track_out`): frames, cuts and
    /// lost registrations, pairs estimated and read from `track_in`, and the corrections' size
    /// (largest and RMS displacement of a frame corner, px).
    fn report(&self) -> Option<serde_json::Value> {
        let track = self.track();
        let (estimated, from_track, (w, h)) = {
            let st = self.lock();
            (st.estimated, st.from_track, st.size)
        };
        let moved: Vec<f64> = track
            .iter()
            .map(|r| Similarity::from_track(r.correction).max_displacement(w, h))
            .collect();
        let rms = (moved.iter().map(|m| m * m).sum::<f64>() / moved.len().max(1) as f64).sqrt();
        Some(serde_json::json!({
            "frames": track.len(),
            "cuts": track.iter().filter(|r| r.brk == Some(motion::Break::Cut)).count(),
            "lost": track.iter().filter(|r| r.brk == Some(motion::Break::Lost)).count(),
            "pairs_estimated": estimated,
            "pairs_from_track": from_track,
            "max_correction_px": moved.iter().copied().fold(0.0, f64::max),
            "rms_correction_px": rms,
            "track": self.params.track_out,
            // The camera path as measured and as kept, frame by frame ([dx, dy, rot, scale]),
            // for the run's report.
            "path": {
                "raw": track.iter().map(|r| r.raw).collect::<Vec<_>>(),
                "smoothed": track.iter().map(|r| r.smoothed).collect::<Vec<_>>(),
            },
        }))
    }

    fn run_cpu(&self, window: &Window<'_, Frame>) -> Result<Frame> {
        let (frames, center) = window.in_order();
        super::check_shapes(
            "stabilise",
            frames.iter().map(|f| (f.width, f.height, f.planes)),
        )?;
        let keys: Vec<FrameKey> = frames
            .iter()
            .map(|f| {
                FrameKey::new(
                    place_of(&(f.data.as_ptr() as usize)),
                    (f.width, f.height, f.planes),
                    &super::fingerprint(f),
                )
            })
            .collect();
        let analyses = self.analyses(&keys, |i| Ok(Self::cpu_analysis(frames[i])))?;
        let plan = self.analyse(&analyses, center, CPU, |a, b, cfg| {
            Ok(motion::estimate(a, b, cfg))
        })?;
        let mut out = cpu::warp(
            &frames,
            &Self::sources(&plan),
            self.params.fill,
            self.params.crop_margin(),
        );
        out.meta.film_move = film_move(&frames[center].meta, &plan.correction);
        Ok(out)
    }

    fn run_gpu(&self, gpu: &GpuContext, window: &Window<'_, GpuFrame>) -> Result<GpuFrame> {
        let (frames, center) = window.in_order();
        super::check_shapes(
            "stabilise",
            frames.iter().map(|f| (f.width, f.height, f.planes)),
        )?;
        let prints = {
            let mut scratch = self.gpu_scratch.lock().unwrap_or_else(|p| p.into_inner());
            gpu::fingerprints(gpu, &frames, &mut scratch)?
        };
        let keys: Vec<FrameKey> = frames
            .iter()
            .zip(&prints)
            .map(|(f, p)| FrameKey::new(place_of(&f.buffer), (f.width, f.height, f.planes), p))
            .collect();
        let analyses = self.analyses(&keys, |i| gpu::analysis(gpu, frames[i]))?;
        let plan = {
            let mut slot = self.pass_buffers.lock().unwrap_or_else(|p| p.into_inner());
            let bufs = gpu::PassBuffers::for_device(gpu, &mut slot)?;
            self.analyse(&analyses, center, GPU, |a, b, cfg| {
                motion::estimate_with(a, b, cfg, &mut gpu::GpuMeasure::new(gpu, a, b, bufs))
            })?
        };
        let mut out = gpu::warp(
            gpu,
            &frames,
            &Self::sources(&plan),
            self.params.fill,
            self.params.crop_margin(),
        )?;
        out.meta.film_move = film_move(&frames[center].meta, &plan.correction);
        Ok(out)
    }
}

/// How the film strip was moved in the output: the input's move, then the correction.
fn film_move(meta: &crate::frame::FrameMeta, correction: &Similarity) -> Option<[f64; 4]> {
    let before = meta
        .film_move
        .map_or(Similarity::IDENTITY, Similarity::from_track);
    Some(before.then(correction).to_track())
}
