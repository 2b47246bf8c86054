//! `colour` (alias `color`): faded colour restoration. Per shot, each channel's black point,
//! white point and tone are measured and brought back to a common neutral scale; monochrome
//! gets its density and contrast back.
//!
//! # Model
//!
//! A print fades as its dyes lose density at different rates (cyan and yellow usually first,
//! so the picture turns red-magenta) and its base stains: each channel's density is scaled
//! and offset. `model = "dye"` (the default) undoes exactly that kind of change: an affine map
//! of each channel's density, i.e. `out = k * v^e` on linear or display-referred code values
//! (where density is `-log10 v` up to a factor) and `out = g * v + o` on log scans (whose code
//! values already are density). `model = "curves"` is the classic alternative: per channel a
//! black point, white point and gamma on the code values.
//!
//! # Algorithm (per output frame, over the window of `2 * window + 1` frames)
//!
//! 1. **Thumbnails**: every frame is reduced to block means, about
//!    [`analysis::THUMB_SIDE`] blocks along its longer side (a GPU reduction on the GPU
//!    backend, [`cpu::block_sums`] on the CPU; both add in the same order, so the thumbnails,
//!    and everything measured from them, are bit-identical). Block means are robust to grain,
//!    dust and specks.
//! 2. **Per frame** ([`analysis::measure`]): per channel, in the model's domain, the black and
//!    white ends are robust percentiles (`percentiles`, default 0.5 and 99.5). With each
//!    channel normalised by its ends, blocks whose channels nearly agree are likely grey (the
//!    least coloured quarter, and never a plain colour); binned along the grey scale, their
//!    per-channel medians give the **neutral axis**, and per channel a correction is fitted
//!    (affine in density for `dye`, a gamma for `curves`) that makes the greys grey, weighed
//!    against the two ends by `neutral`.
//! 3. **Per shot**: the measures of the window's frames in the centre's shot (a cut, found by
//!    the shared detector [`crate::stages::deflicker::cuts`], stops the walk outward) are
//!    averaged with tricube weights: the estimate is a whole-shot measure that follows slow
//!    changes and never mixes shots.
//! 4. **Targets**: every channel's black is brought to the deepest black among the channels
//!    (the dye that lost least) and, when that is lighter than `max_black`, down to it (lost
//!    density restored; for monochrome this is the contrast restoration); every white to
//!    the brightest white among the channels (the least stained base). How much density the
//!    whole print lost is not observable from the print alone, so `max_black` (off by
//!    default) is the restorer's prior for it. `black` and `white`
//!    override these with code values (one, or one per channel for a deliberate tint).
//! 5. **Apply** ([`cpu::curve`], `shaders/colour.wgsl`): one smooth curve per channel,
//!    blended towards the identity by `strength`.
//!
//! Frames whose channels are equal (greyscale films in RGB) get equal measures and equal
//! curves in every channel: neutral material stays exactly neutral; the stage invents no
//! colour. The output depends only on the frames of the window, so chunks restored separately
//! equal a whole run bit for bit on the CPU; the GPU measures the same thumbnails and differs
//! only by the rounding of the per-pixel curve ([`GPU_TOLERANCE`]).

pub mod analysis;
pub mod cpu;
pub mod gpu;

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use crate::stages::FrameKey;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{Stage, Window};
use crate::frame::{Frame, FrameMeta, Transfer};
use crate::gpu::{GpuContext, GpuFrame};
use analysis::{Domain, Estimate, FrameStats, Geometry};

/// Largest allowed difference between the GPU and CPU results: absolute for values up to 1,
/// relative above. Both backends measure bit-identical thumbnails and so get the same curves;
/// only the per-pixel `pow` differs (exp2/log2 based on the GPU, a few ulp). 2e-5 is a
/// seventh of a 16-bit code value.
pub const GPU_TOLERANCE: f32 = 2e-5;

/// How channels are corrected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    /// Affine in density per channel: how dyes fade (loss of density, base stain).
    Dye,
    /// Black point, white point and gamma on the code values per channel.
    Curves,
}

/// A target level: `"auto"`, one code value for all channels, or one per channel (R, G, B).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Target {
    Word(String),
    All(f64),
    Each([f64; 3]),
}

impl Target {
    /// The value for plane `c`, `None` for automatic.
    pub fn get(&self, c: usize) -> Option<f64> {
        match self {
            Target::Word(_) => None,
            Target::All(v) => Some(*v),
            Target::Each(a) => Some(a[c.min(2)]),
        }
    }

    fn check(&self, key: &str, range: std::ops::RangeInclusive<f64>) -> Result<()> {
        match self {
            Target::Word(w) if w == "auto" => Ok(()),
            Target::Word(w) => bail!(
                "colour.{key} = \"{w}\" is not understood (valid: \"auto\", a code value, \
                 or [r, g, b])"
            ),
            _ => {
                for c in 0..3 {
                    let v = self.get(c).expect("a value");
                    if !range.contains(&v) {
                        bail!(
                            "colour.{key} = {v} is out of range (valid: {} to {})",
                            range.start(),
                            range.end()
                        );
                    }
                }
                Ok(())
            }
        }
    }
}

/// Parameters of `colour`. Cost: the per-pixel part is one read, one `pow` and one write per
/// sample (like `levels`); the analysis reads each frame once more (block means; on the GPU
/// every frame of the window, each output frame) and is otherwise independent of frame size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ColourParams {
    /// `"dye"` (default): affine in density per channel, how prints fade. `"curves"`: black,
    /// white and gamma on the code values per channel.
    pub model: Model,
    /// Frames on each side whose measures are averaged with the restored one's (within its
    /// shot): the temporal radius. Range 1..=48, default 12. Memory: `2 * window + 1` frames.
    pub window: usize,
    /// How much of the correction to apply: 0 leaves frames as they are, 1 applies it fully.
    /// Range 0..=1, default 1.
    pub strength: f64,
    /// Target white: `"auto"` (the brightest white among the channels), a code value, or
    /// `[r, g, b]`. The white end (upper percentile) of every channel goes there.
    /// Range 0.05..=2, default `"auto"`.
    pub white: Target,
    /// Target black: `"auto"` (the deepest black among the channels, at most `max_black`), a
    /// code value, or `[r, g, b]`. Range 0..=0.9, default `"auto"`.
    pub black: Target,
    /// With `black = "auto"`, blacks lighter than this are taken as density lost by fading
    /// and brought down to it: the density and contrast restoration of a print that faded in
    /// all its layers alike (monochrome, or colour after balancing). How much density a print
    /// lost cannot be told from the print alone (a hazy shot has light blacks too), so this is
    /// the restorer's call, per preset: e.g. 0.08 for a faded monochrome print. Range 0..=1,
    /// default 1 (off: blacks go only as deep as the channel that kept most density).
    pub max_black: f64,
    /// Lower and upper percentiles (in percent) of each channel's block means taken as its
    /// black and white ends. Range 0..=20 and 80..=100, default `[0.5, 99.5]`.
    pub percentiles: [f64; 2],
    /// Weight of the neutral axis (likely-grey blocks) against the two ends when fitting each
    /// channel: 0 uses the ends alone. Range 0..=4, default 1. No effect on monochrome.
    pub neutral: f64,
    /// A cut lies between neighbours when `1 - correlation` of their luma thumbnails exceeds
    /// this (see [`crate::stages::deflicker::cuts`]). Range 0.05..=1 (1: never), default 0.5.
    pub cut_threshold: f64,
}

impl Default for ColourParams {
    fn default() -> Self {
        ColourParams {
            model: Model::Dye,
            window: 12,
            strength: 1.0,
            white: Target::Word("auto".into()),
            black: Target::Word("auto".into()),
            max_black: 1.0,
            percentiles: [0.5, 99.5],
            neutral: 1.0,
            cut_threshold: 0.5,
        }
    }
}

impl ColourParams {
    pub fn validate(&self) -> Result<()> {
        if !(1..=48).contains(&self.window) {
            bail!(
                "colour.window = {} is out of range (valid: 1 to 48 frames on each side)",
                self.window
            );
        }
        if !(0.0..=1.0).contains(&self.strength) {
            bail!(
                "colour.strength = {} is out of range (valid: 0 to 1)",
                self.strength
            );
        }
        self.white.check("white", 0.05..=2.0)?;
        self.black.check("black", 0.0..=0.9)?;
        for c in 0..3 {
            if let (Some(b), Some(w)) = (self.black.get(c), self.white.get(c)) {
                if w - b < 0.05 {
                    bail!("colour.white ({w}) must be above colour.black ({b}) by at least 0.05");
                }
            }
        }
        if !(0.0..=1.0).contains(&self.max_black) {
            bail!(
                "colour.max_black = {} is out of range (valid: 0 to 1)",
                self.max_black
            );
        }
        let [lo, hi] = self.percentiles;
        if !(0.0..=20.0).contains(&lo) || !(80.0..=100.0).contains(&hi) {
            bail!(
                "colour.percentiles = [{lo}, {hi}] is out of range (valid: the first 0 to 20, \
                 the second 80 to 100)"
            );
        }
        if !(0.0..=4.0).contains(&self.neutral) {
            bail!(
                "colour.neutral = {} is out of range (valid: 0 to 4)",
                self.neutral
            );
        }
        if !(0.05..=1.0).contains(&self.cut_threshold) {
            bail!(
                "colour.cut_threshold = {} is out of range (valid: 0.05 to 1)",
                self.cut_threshold
            );
        }
        Ok(())
    }

    /// The domain the curves work in for frames with this metadata.
    pub fn domain(&self, meta: &FrameMeta) -> Domain {
        match (self.model, meta.transfer) {
            (Model::Dye, Transfer::PrintingDensity | Transfer::Logarithmic) => Domain::Code,
            (Model::Dye, _) => Domain::Log,
            (Model::Curves, _) => Domain::Code,
        }
    }
}

/// One restored frame's entry in the run's record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Point {
    /// Position in output order among the points of its backend.
    pub index: usize,
    /// The frame's number in its sequence, where known.
    pub number: Option<i64>,
    /// `"cpu"` or `"gpu"`.
    pub backend: &'static str,
    /// Likely-grey blocks of the frame itself the neutral axis rested on.
    pub grey_blocks: usize,
    #[serde(flatten)]
    pub estimate: Estimate,
}

#[derive(Default)]
struct Cache {
    /// CPU frames measured, by identity.
    frames: HashMap<(FrameKey, Domain), Arc<FrameStats>>,
    /// Measures by thumbnail content (both backends) and domain.
    stats: HashMap<(u64, Domain), Arc<FrameStats>>,
    cuts: HashMap<(u64, u64), bool>,
    points: Vec<Point>,
}

pub struct Colour {
    pub params: ColourParams,
    cache: Mutex<Cache>,
    gpu_scratch: Mutex<Option<gpu::Scratch>>,
}

impl Colour {
    pub fn new(params: ColourParams) -> Result<Self> {
        params.validate()?;
        Ok(Colour {
            params,
            cache: Mutex::new(Cache::default()),
            gpu_scratch: Mutex::new(None),
        })
    }

    pub fn from_table(table: &toml::Table) -> Result<Self> {
        let params: ColourParams = table.clone().try_into().context(
            "invalid parameters for stage 'colour' (keys: model (\"dye\" or \"curves\"), \
             window, strength, white, black, max_black, percentiles, neutral, cut_threshold)",
        )?;
        Self::new(params)
    }

    /// The points so far of one backend (`"cpu"` or `"gpu"`), in output order.
    pub fn points_of(&self, backend: &str) -> Vec<Point> {
        self.lock()
            .points
            .iter()
            .filter(|p| p.backend == backend)
            .cloned()
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The measure of a frame from its block sums, cached by content.
    fn stats_from_sums(&self, geo: &Geometry, sums: &[f32], domain: Domain) -> Arc<FrameStats> {
        let means = geo.means(sums);
        let mut h = DefaultHasher::new();
        for v in &means {
            v.to_bits().hash(&mut h);
        }
        let key = (h.finish(), domain);
        if let Some(s) = self.lock().stats.get(&key) {
            return s.clone();
        }
        let s = Arc::new(analysis::measure(geo, &means, &self.params, domain));
        self.lock().stats.insert(key, s.clone());
        s
    }

    /// The measures of the window's CPU frames (temporal order), each frame reduced once.
    fn cpu_stats(&self, frames: &[&Frame], domain: Domain) -> Vec<Arc<FrameStats>> {
        let keys: Vec<FrameKey> = frames.iter().map(|f| FrameKey::of(f)).collect();
        let mut out = Vec::with_capacity(frames.len());
        for (f, k) in frames.iter().zip(&keys) {
            let have = self.lock().frames.get(&(*k, domain)).cloned();
            let s = match have {
                Some(s) => s,
                None => {
                    let geo = analysis::geometry(f.width, f.height, f.planes);
                    let s = self.stats_from_sums(&geo, &cpu::block_sums(f, &geo), domain);
                    self.lock().frames.insert((*k, domain), s.clone());
                    s
                }
            };
            out.push(s);
        }
        let mut cache = self.lock();
        cache.frames.retain(|k, _| keys.contains(&k.0));
        out
    }

    /// The estimate for the centre of `stats` (temporal order), recording its point.
    fn analyse(
        &self,
        stats: &[Arc<FrameStats>],
        center: usize,
        domain: Domain,
        number: Option<i64>,
        backend: &'static str,
    ) -> Estimate {
        let p = &self.params;
        let known = self.lock().cuts.clone();
        let mut used: HashMap<(u64, u64), bool> = HashMap::new();
        let span = analysis::shot_span(stats.len(), center, |i, j| {
            let key = (stats[i].hash, stats[j].hash);
            *used.entry(key).or_insert_with(|| {
                known
                    .get(&key)
                    .copied()
                    .unwrap_or_else(|| analysis::is_cut(&stats[i], &stats[j], p.cut_threshold))
            })
        });
        let refs: Vec<&FrameStats> = stats.iter().map(|s| s.as_ref()).collect();
        let estimate = analysis::estimate(&refs, center, span, p.window, p, domain);
        let mut cache = self.lock();
        cache.cuts = used;
        let hashes: Vec<u64> = stats.iter().map(|s| s.hash).collect();
        cache.stats.retain(|k, _| hashes.contains(&k.0));
        let index = cache.points.iter().filter(|q| q.backend == backend).count();
        cache.points.push(Point {
            index,
            number,
            backend,
            grey_blocks: stats[center].grey_blocks,
            estimate: estimate.clone(),
        });
        estimate
    }
}

impl Stage for Colour {
    fn name(&self) -> &'static str {
        "colour"
    }

    fn temporal_radius(&self) -> usize {
        self.params.window
    }

    /// The curves are per pixel, but measured on the whole (reduced) frame: tiles must share
    /// one analysis of the full frame to be exact.
    fn spatial_halo(&self) -> usize {
        0
    }

    fn gpu_tolerance(&self) -> f32 {
        GPU_TOLERANCE
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    /// Per restored frame: the smoothed measure, targets and curves (from the GPU's points
    /// where there are any, as with `--check-gpu`).
    fn report(&self) -> Option<serde_json::Value> {
        let gpu = self.points_of("gpu");
        let points = if gpu.is_empty() {
            self.points_of("cpu")
        } else {
            gpu
        };
        Some(serde_json::json!({ "points": points }))
    }

    /// The frame's colour measure, for the expert reading the analysis (restores still
    /// measure their windows: the measure is cheap and cached by content): per plane the
    /// black and white ends and the neutral-axis correction (`a`, `b`, `e`), `null` for a flat
    /// plane, and the grey blocks it was fitted on.
    fn measure(&self, _prev: Option<&Frame>, frame: &Frame) -> Result<Option<serde_json::Value>> {
        let domain = self.params.domain(&frame.meta);
        let geo = analysis::geometry(frame.width, frame.height, frame.planes);
        let s = self.stats_from_sums(&geo, &cpu::block_sums(frame, &geo), domain);
        self.lock().stats.clear();
        let planes: Vec<serde_json::Value> = s
            .planes
            .iter()
            .map(|p| match p {
                Some(p) => serde_json::json!({
                    "black": p.black, "white": p.white, "a": p.a, "b": p.b, "e": p.e,
                }),
                None => serde_json::Value::Null,
            })
            .collect();
        Ok(Some(serde_json::json!({
            "planes": planes,
            "grey_blocks": s.grey_blocks,
        })))
    }

    fn run_cpu(&self, window: &Window<'_, Frame>) -> Result<Frame> {
        let (frames, center) = window.in_order();
        super::check_shapes(
            "colour",
            frames.iter().map(|f| (f.width, f.height, f.planes)),
        )?;
        let domain = self.params.domain(&window.center.meta);
        let stats = self.cpu_stats(&frames, domain);
        let est = self.analyse(&stats, center, domain, window.center.meta.number, "cpu");
        let mut out = window.center.clone();
        cpu::apply(&mut out, &est.curves);
        Ok(out)
    }

    fn run_gpu(&self, gpu: &GpuContext, window: &Window<'_, GpuFrame>) -> Result<GpuFrame> {
        let (frames, center) = window.in_order();
        super::check_shapes(
            "colour",
            frames.iter().map(|f| (f.width, f.height, f.planes)),
        )?;
        let domain = self.params.domain(&window.center.meta);
        let sums = {
            let mut scratch = self.gpu_scratch.lock().unwrap_or_else(|p| p.into_inner());
            gpu::block_sums(gpu, &frames, &mut scratch)?
        };
        let c = window.center;
        let geo = analysis::geometry(c.width, c.height, c.planes);
        let stats: Vec<Arc<FrameStats>> = sums
            .iter()
            .map(|s| self.stats_from_sums(&geo, s, domain))
            .collect();
        let est = self.analyse(&stats, center, domain, c.meta.number, "gpu");
        gpu::apply(gpu, c, &est.curves)
    }
}
