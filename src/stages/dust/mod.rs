//! `dust`: dust, dirt and blotch removal on motion-compensated neighbours.
//!
//! Dirt sits on one frame only; picture content is in its neighbours too. For each frame the
//! neighbours up to two frames away are compensated onto it ([`crate::motion`]), then:
//!
//! 1. **Detection** ([`cpu::detect`]): a pixel is a candidate where its luma lies outside the
//!    range of the compensated frames just before and after (a spike detector) by more than `t0 + noise_factor * local disagreement`
//!    of those two frames, so grain and unresolved motion raise the bar where they are, and
//!    outside the range of the frames two away by half their threshold (rank-order style
//!    confirmation over ±2), while the frames just before and after agree with each other
//!    (where they do not, the picture moved in a way compensation could not follow). Nor is
//!    it a candidate where those pairs disagree over the wider area around it by more than a
//!    sixth of its spike: the dirt does not touch them, so that is motion failure (a figure
//!    moving too fast for block motion), and a false repair there costs clean picture. With
//!    the frames two away, the same holds for each side's own pair (-1 against -2, +1 against
//!    +2): a figure the compensation loses on one side only. Where all four neighbours still
//!    follow each other at the pixel, a spike over the threshold is dirt there if it is a spike
//!    in space closed on all sides ([`cpu::spatial`], all eight directions): picture the
//!    compensation lost continues the picture beside it; a speck on a panel swinging past
//!    does not. A frame two away takes part (in
//!    the confirmation and in these checks) only where it matches the frame between it and the
//!    centre to within a quarter of the spike: one that compensation lost says nothing, and
//!    must not veto dirt the frames just before and after agree on. But where the frames two
//!    away (those present) show the centre's own picture, it is picture the frames just before
//!    and after lost (a thin line at another sub-pixel phase there, softened by their
//!    compensation): dirt sits on one frame and is in none of them.
//!    Where the frames just before and after disagree (an occlusion: one shows picture the
//!    other's hides), the centre shows one side's picture, and dirt shows neither
//!    ([`cpu::occluded_spike`]): it is a candidate there if it lies beyond all four
//!    neighbours, by the threshold of each side's own pair and by half that of the frames two
//!    away, while each side agrees with itself (its two frames within 0.15 of the spike, and
//!    no motion failure between them).
//!    Near the frame border (a twentieth of the larger side: 32 px at 640 wide) the threshold
//!    rises, to four times on the border, as picture entering or leaving view there is in no
//!    neighbour. A spike between the plain threshold and the raised one is still dirt where
//!    all four neighbours follow each other at the pixel and it is a spike in space closed on
//!    all sides ([`cpu::spatial`] with all eight directions leaving it inside the frame):
//!    picture entering view runs off the frame.
//!    `t0` follows `sensitivity`. The first and last frames of a sequence or shot have
//!    neighbours on one side only, where picture coming into view looks just like dirt: there
//!    the spike is taken against the two frames on that side at eight times the threshold;
//!    from 1.5 times it, only if it is a spike in space too ([`cpu::spatial`]): it stands out
//!    of the picture around it in the frame itself (the first pixel that has left the defect
//!    in each of eight directions) by 0.7 of its spike. Picture uncovered behind a moving
//!    figure continues the picture beside it; dirt does not.
//! 2. **Cleanup** ([`cpu::clean`]): a candidate survives if it is strong (twice the threshold)
//!    or has a candidate of the same polarity beside it.
//! 3. **Pathological motion** ([`cpu::decide`]): the same spike test on the frames either side
//!    (frame -1 against -2 and the centre, +1 against the centre and +2). If both show a spike
//!    of the same polarity within `pm_radius` pixels, the candidate is something that is in
//!    every frame but moves too fast to compensate (a thrown ball, sparks, rain): left alone.
//!    A spike of one pixel there (kept by cleanup for its strength alone) counts only for a
//!    candidate of one pixel: a spark moves as a spark, while a speck beside a grain peak, or
//!    beside dirt on the frame before that shows as one pixel after compensation, is dirt.
//! 4. **Re-match** ([`cpu::rematch`]): block motion loses thin or fast picture (the rim of a
//!    figure close to the camera, moving 25 px a frame) in all the neighbours alike, which then
//!    agree that the centre differs. So each pixel still taken for dirt is looked for in the
//!    uncompensated neighbours: its 5x5 patch, displaced by `-v` in the frame before and `v`
//!    in the frame after (at the ends of a sequence or shot: `v` and `2v` on the one side),
//!    `v` within a twentieth of the larger side in steps of two, against the neighbours' luma
//!    ranges over 3x3 (5x5 on a frame two away, which steps by four), so thin lines are not
//!    stepped over. Where the pixel matches within a
//!    quarter of its spike and the patch on average within a quarter too, it is picture: it
//!    drops to a weak candidate. Dirt is in no other frame and is not found. A patch with less
//!    structure than half the spike (the inside of a blotch) is not searched for: it would
//!    match any flat picture of its level. Dirt comes in pieces: where seven in ten pixels of
//!    an 8-connected piece of dirt were not found, the rest of it is dirt too
//!    ([`cpu::rematch_pieces`]; a hair crossing a bright rim is matched there by the rim).
//!    A thin line that moved by under a pixel (a cord swaying, a moulding in a slow pan) is
//!    fainter where it straddles two pixels of a neighbour, but carries the same light: where
//!    the sum of three samples across the pixel matches such a sum in both compensated
//!    neighbours within a pixel (or halfway), to half the spike, it is picture too
//!    ([`cpu::thin_line`]); dirt adds at least its spike to the sum.
//! 5. **Mask** ([`cpu::grow`], [`cpu::link`], [`cpu::alpha`]): weak candidates (a quarter of
//!    the threshold) within `dilate` pixels of dirt join it (the soft edges of specks; clean
//!    picture around them is not taken). Then, with neighbours on both sides, the mask grows
//!    by hysteresis (`link`): weak candidates over half the threshold and of the dirt's
//!    polarity, joined to it through such candidates, up to a fortieth of the larger side
//!    away, so a semi-transparent blotch or a hair is repaired whole and not in its strong
//!    parts. The frame's level against its neighbours (the median departure) is taken off
//!    first, as flicker makes every pixel a faint spike; what the re-match found in a
//!    neighbour is picture and is not passed. The mask is then feathered over `feather`
//!    pixels; plus an optional external mask sequence (`mask_in`: a scanner's infrared
//!    channel or a hand-painted mask; white = defect).
//! 6. **Repair** ([`cpu::repair`]): the per-plane median of the compensated neighbours,
//!    lifted to the centre's own level (the median, over the first pixels outside the mask in
//!    eight directions, of how far the centre lies above the neighbours' median there: a frame
//!    lighter or darker than its neighbours, from flicker or printing, would otherwise get a
//!    hole or a patch), blended toward an eight-direction spatial fill where the neighbours
//!    disagree with each other, then blended into the frame by the soft mask. Each sample
//!    moves no further than it, less that level, stands out of the neighbours' range plus half
//!    their spread, so dirt far outside is fully repaired while a false alarm changes little;
//!    of four neighbours the middle two give the range, so one showing something else at the
//!    spot (its own dirt, a line passing) does not hold the repair back.
//!    The fill is made of real neighbouring samples, so grain continues through the repair
//!    (the median of four softens it a little). The harm guard ([`super::pushed_beyond`])
//!    leaves a pixel as it was where the repair would push a plane beyond the range that the
//!    compensated neighbours and the fill's untouched pixels show there; such pixels are
//!    counted in the record (`guard_refused`). On the bikes clip the level took the false
//!    repairs' cost outside the masks down by a fifth (50.23 to 51.31 dB, dust and blotches,
//!    seed 1), most of it on a headlight flashing into view whose glow the level follows.
//!
//! Neighbours beyond a shot cut ([`cuts`], on the coarsest pyramid level) are not used, so
//! the last and first frames of a shot are treated like the ends of the sequence.
//!
//! Known limits: a defect on the same spot in consecutive frames is not one-frame dirt and is
//! kept; dust within `pm_radius` of a spike on both neighbouring frames is kept; a glint or
//! highlight that flashes on one frame only looks like bright dirt and is taken. The re-match
//! keeps dirt whose 5x5 patch happens to be found in both neighbours at opposite
//! displacements (a thin one-frame line over grainy picture next to similar lines), and what
//! moves faster than its reach, or leaves view between the frames, is still taken for dirt.
//! At the ends of a shot faint dirt is repaired only where it stands out in space, so faint
//! blotches over textured picture stay, and a light or highlight coming into view there (a
//! spike in space as well as in time) is taken for dirt when it is strong. Over an occlusion
//! only dirt stronger than about 1.25 times the occlusion's own contrast is found (the frames
//! two away must confirm it by half their threshold); a faint speck over a moving edge stays,
//! and picture lighter or darker than both sides of an occlusion (the lit rim of a figure
//! moving unevenly) is taken for dirt.
//! At the ends of a shot the motion check sees one side only, so dirt beside dirt of the same
//! polarity and of two pixels or more on the frame before (within `pm_radius`) is kept as if
//! it were moving picture.
//!
//! CPU reference: [`cpu`] (and [`crate::motion::cpu`]); shaders: `shaders/dust_*.wgsl` and
//! `shaders/motion_*.wgsl`; parity tolerance: [`GPU_TOLERANCE`], see there.

pub mod cpu;
pub mod gpu;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::repairs::{cpu_samples, Repair, RepairLog, Repaired, Revert, Veto};
use super::{check_shapes, Stage, Window};
use crate::frame::{Frame, FrameMeta};
use crate::gpu::{GpuContext, GpuFrame};
use crate::motion::{self, MotionParams};
use crate::stages::deflicker::cuts::{self, Thumbnail};

/// Largest difference allowed between the GPU and CPU outputs. Both make the same decisions on
/// the same arithmetic, so on lavapipe the outputs are bit-identical (the parity tests, and 9
/// frames at 2048x1556). A GPU that fuses a multiply and add or rounds a division differently
/// may tip a near-tie: a block takes another equally good vector, or a pixel within an ulp of
/// a threshold falls the other way and is repaired (or not), a difference up to the size of
/// the dirt. This bound lets such rare flips through `--check-gpu`; `tests/dust.rs` also
/// holds the share of samples that differ by more than 1e-5 to 0.1 %.
pub const GPU_TOLERANCE: f32 = 0.5;

/// Parameters of `dust`. Cost: motion estimation against up to four neighbours (a few hundred
/// operations per pixel), then a handful of per-pixel passes; `pm_radius` adds `4 * pm_radius`
/// reads per pixel, `spatial_reach` only matters inside the mask.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DustParams {
    /// How readily a spike is called dirt. Range 0..1, default 0.5; higher finds fainter dirt
    /// and semi-transparent blotches, and risks touching picture.
    pub sensitivity: f32,
    /// Frames each side used: 1 (spike test only: no ±2 confirmation, no motion check) or 2.
    /// Default 2.
    pub radius: usize,
    /// Weight of the local disagreement of the neighbours (grain, motion) in the threshold.
    /// Range 0..10, default 2.5.
    pub noise_factor: f32,
    /// Pixels around a spike on the neighbouring frames within which a candidate counts as
    /// moving picture and is kept. Range 0..64, default 16; 0 turns the check off. Larger
    /// keeps more of a figure moving fast close to the camera (bikes clip, dust and blotches,
    /// before the re-match: outside the defects 44.7 dB at 16, 46.6 at 24, 47.6 at 32) and
    /// loses dirt that has other dirt near it on both neighbouring frames (inside 23.0, 22.9,
    /// 22.5 dB).
    pub pm_radius: usize,
    /// Search the neighbours for the picture around each pixel taken for dirt, and keep it
    /// where it is found nearby ([`cpu::rematch`]): a thin edge or a figure the block motion
    /// lost. Default true; costs a search of a twentieth of the larger side per dirt pixel.
    pub rematch: bool,
    /// Pixels the mask may grow by into weak candidates, to cover soft edges of dirt.
    /// Range 0..8, default 3.
    pub dilate: usize,
    /// Pixels over which the repair fades out past the grown mask. Range 0..8, default 1.
    pub feather: usize,
    /// Grow the mask from dirt through fainter candidates joined to it ([`cpu::link`]), so
    /// semi-transparent blotches and thin hairs are repaired whole rather than in their
    /// strong parts. Default true; costs a pass over the frame and a step per pixel grown.
    pub link: bool,
    /// Furthest the spatial fill looks for untouched pixels. Range 4..256, default 48.
    pub spatial_reach: usize,
    /// External defect masks: a directory or pattern of images numbered like the frames
    /// (white or above half = defect), added to what is detected. Default none.
    pub mask_in: Option<PathBuf>,
    /// Write each frame's repair mask as `DIR/dust/NNNNNN.png` (set by `restore --emit-masks`).
    pub emit_masks: Option<PathBuf>,
    /// A cut lies between two frames when `1 - correlation` of their registered luma
    /// thumbnails exceeds this ([`cuts`]); frames beyond a cut are not used. Range 0.05..1
    /// (1: never), default 0.5.
    pub cut_threshold: f64,
    /// Motion estimation knobs, see [`MotionParams`].
    pub motion: MotionParams,
    /// Repairs to leave out (set by `restore --veto FILE`): ids `dust:FRAME:N` from the
    /// repairs file, or `dust:FRAME@X,Y,W,H` for every repair of a frame meeting a box. The
    /// rest of the output is bit-identical to the run without them. Default none.
    pub veto: Vec<String>,
}

impl Default for DustParams {
    fn default() -> Self {
        DustParams {
            sensitivity: 0.5,
            radius: 2,
            noise_factor: 2.5,
            pm_radius: 16,
            rematch: true,
            dilate: 3,
            feather: 1,
            spatial_reach: 48,
            mask_in: None,
            link: true,
            emit_masks: None,
            cut_threshold: 0.5,
            motion: MotionParams::default(),
            veto: Vec::new(),
        }
    }
}

impl DustParams {
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.sensitivity) {
            bail!(
                "dust.sensitivity = {} is out of range (valid: 0 to 1)",
                self.sensitivity
            );
        }
        if !(1..=2).contains(&self.radius) {
            bail!(
                "dust.radius = {} is out of range (valid: 1 or 2)",
                self.radius
            );
        }
        if !(0.0..=10.0).contains(&self.noise_factor) {
            bail!(
                "dust.noise_factor = {} is out of range (valid: 0 to 10)",
                self.noise_factor
            );
        }
        if self.pm_radius > 64 {
            bail!(
                "dust.pm_radius = {} is out of range (valid: 0 to 64)",
                self.pm_radius
            );
        }
        if self.dilate > 8 {
            bail!(
                "dust.dilate = {} is out of range (valid: 0 to 8)",
                self.dilate
            );
        }
        if self.feather > 8 {
            bail!(
                "dust.feather = {} is out of range (valid: 0 to 8)",
                self.feather
            );
        }
        if !(4..=256).contains(&self.spatial_reach) {
            bail!(
                "dust.spatial_reach = {} is out of range (valid: 4 to 256)",
                self.spatial_reach
            );
        }
        if !(0.05..=1.0).contains(&self.cut_threshold) {
            bail!(
                "dust.cut_threshold = {} is out of range (valid: 0.05 to 1)",
                self.cut_threshold
            );
        }
        self.motion.validate("dust.motion")
    }

    /// The base spike threshold in code values: 0.1 at sensitivity 0, 0.01 at 1.
    pub fn t0(&self) -> f32 {
        0.1 - 0.09 * self.sensitivity
    }
}

/// What the per-pixel passes need, derived from the parameters and the window.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub t0: f32,
    pub noise_factor: f32,
    pub pm_check: bool,
    pub pm_radius: usize,
    pub have_prev: bool,
    pub have_next: bool,
    pub dilate: usize,
    pub feather: usize,
    pub spatial_reach: usize,
    /// Luma spread of the neighbours above which the repair turns spatial.
    pub disagree: f32,
    /// Share of the neighbours' spread a repair may move a sample beyond its excess over
    /// their range ([`cpu::limit_change`]).
    pub margin: f32,
    /// Radius of the window over which the neighbours' disagreement tells motion failure.
    pub wide_radius: usize,
    /// A candidate must stand out by more than this many times that disagreement.
    pub wide_factor: f32,
    /// Threshold factor for detection from the frames on one side only.
    pub one_sided: f32,
    /// A frame two away counts for the confirmation and the motion-failure check only where it
    /// differs from the frame between it and the centre by less than this share of the spike.
    pub consistent: f32,
    /// Where the frames just before and after disagree (an occlusion), each side's two frames
    /// must agree to within this share of the spike ([`cpu::occluded_spike`]).
    pub occluded_consistent: f32,
    /// Threshold factor on the frame border ([`cpu::edge_factor`]), falling to 1 at `edge`
    /// pixels in (0: no border band).
    pub edge_k: f32,
    pub edge: usize,
    /// Threshold factor for detection from one side, below `one_sided`, at which a candidate
    /// is taken if it is a spike in space too ([`cpu::spatial`]).
    pub spatial_scale: f32,
    /// A pixel has left the defect where its spike is under this share of the candidate's.
    pub spatial_leave: f32,
    /// Share of the spike by which the candidate must stand out of its surroundings in space.
    pub spatial_share: f32,
    /// Most steps of the hysteresis growth ([`cpu::link`]); 0: none.
    pub link_reach: usize,
    /// Share of the threshold a weak candidate's spike must pass for [`cpu::link`].
    pub link: f32,
    /// Reach in pixels of the re-match search ([`cpu::rematch`]); 0: no re-match.
    pub rematch: usize,
    /// Share of the spike within which the pixel itself must match.
    pub rematch_center: f32,
    /// Share of the spike within which the 5x5 patch must match on average.
    pub rematch_patch: f32,
    /// Share of a piece of dirt the re-match must leave unfound for all of it to stay dirt
    /// ([`cpu::rematch_pieces`]).
    pub rematch_whole: f32,
    /// Least structure (luma range over the 5x5 patch) for a patch to be searched for, as a
    /// share of the spike.
    pub rematch_texture: f32,
}

/// Motion-failure veto and repair limit, chosen on `degrade --defects dust,blotches` of the
/// bikes clip: false repairs on a fast-moving figure (where compensation fails over whole
/// blocks) cost more outside the defects than the dirt lost there. Where all four
/// neighbours follow each other at the pixel, a spike over the threshold that is a spike in
/// space closed on all sides is still taken ([`cpu::spatial`]): bikes clip inside the masks
/// (outside unchanged within 0.01 dB), dust and blotches 24.19 to 24.20 dB (seed 1), 23.25 to
/// 23.53 (seed 2); dust alone 25.11 to 25.24 (seed 1), 26.21 to 27.28 (seed 2: a speck on a
/// white panel swinging past). Taken under the threshold too (in the border band), it also
/// took part of a cluster of lights at the bottom of sf_earthquake_and_fire 148 and 155,
/// leaving rings, so it stops at the threshold.
const WIDE_RADIUS: usize = 4;
const WIDE_FACTOR: f32 = 6.0;
const REPAIR_MARGIN: f32 = 0.5;
/// Only strong dirt is taken from the frames on one side: picture that moves in or out of
/// view, or that compensation misses, looks like dirt there (chosen on the same clip). With the
/// re-match still so: at 1, 2 and 8 inside the masks 25.2, 24.4 and 22.9 dB, outside 43.2,
/// 44.3 and 50.3 (the false repairs: picture uncovered behind a figure, hands and handlebars
/// moving unevenly at the cut and the clip's end).
const ONE_SIDED: f32 = 8.0;
/// From one side, a spike of 1.5 times the threshold is taken where it stands out of the
/// picture around it in the frame itself ([`cpu::spatial_spike`]) by 0.7 of its spike, the
/// surroundings read where their own spike falls under half the candidate's. Picture
/// uncovered behind a figure continues the picture beside it and is not taken. Bikes clip,
/// dust and blotches (chosen on seed 1): inside the masks 22.93 to 23.97 dB, outside 50.29 as
/// before; seed 2, not used for the choice: inside 20.33 to 23.09, outside 50.99 to 50.60.
/// Sharing 0.5 (rather than 0.7) or leaving at a quarter (rather than half) took lights and
/// highlights coming into view (outside 45 to 49 dB).
const SPATIAL_SCALE: f32 = 1.5;
const SPATIAL_LEAVE: f32 = 0.5;
const SPATIAL_SHARE: f32 = 0.7;
/// Frames two away that compensation lost vetoed strong dirt on a fast-moving figure (bikes:
/// inside the masks +0.9 dB); a quarter of the spike keeps them where they follow.
const CONSISTENT: f32 = 0.25;
/// Dirt over an occlusion (the frames just before and after show different picture) stands
/// out of all four neighbours; each side must agree with itself to within 0.15 of the spike.
/// Bikes clip, inside / outside the masks: dust and blotches 23.97 / 50.29 to 24.21 / 50.23
/// dB (seed 1), 23.09 / 50.60 to 23.50 / 50.54 (seed 2); dust alone 24.13 / 50.31 to 24.78 /
/// 50.25 (seed 1), 24.84 / 50.61 to 26.04 / 50.54 (seed 2). At a quarter, as `consistent`,
/// the same dirt was found and more picture taken (outside 0.04 to 0.06 dB lower).
const OCCLUDED_CONSISTENT: f32 = 0.15;
/// Picture entering at the frame border (a handlebar, a hand) made half the false repairs
/// left on the bikes clip; four times the threshold on the border, falling to 1 at 32 px in
/// (a twentieth of the 640 px width: motion, and so the band, scales with the picture),
/// removed most of them (outside the masks +1.2 dB with `consistent`). Below the band's
/// threshold, dirt closed on all sides with all four neighbours following is taken
/// ([`cpu::spatial_votes`]); bikes clip inside the masks (outside unchanged within 0.01 dB):
/// dust and blotches 24.08 to 24.19 dB (seed 1), 23.21 to 23.25 (seed 2); dust alone 24.80 to
/// 25.11 (seed 1), 26.05 to 26.21 (seed 2). With four directions, as from one side, a
/// light bar swinging in at a corner was taken (outside 0.3 dB lower).
const EDGE_K: f32 = 4.0;
const EDGE_SHARE: usize = 20;
/// The re-match ([`cpu::rematch`]) searches a twentieth of the larger side (32 px at 640
/// wide: the bikes clip's fast figures move up to about 25 px a frame). On the bikes clip
/// (dust and blotches) it took outside the masks from 44.7 to 50.3 dB with inside unchanged;
/// a pixel matching within half (rather than a quarter) of its spike, or patches without
/// structure searched too, lost dirt that happened to match picture (inside -0.5 to -1.7 dB).
const REMATCH_SHARE: usize = 20;
/// Seven in ten pixels of a piece of dirt left unfound keep all of it ([`cpu::rematch_pieces`]).
/// Bikes clip, inside the masks (outside unchanged within 0.01 dB): dust alone 26.42 to 26.67
/// dB (seed 1), a bright hair over a headlight's rim matched there by the rim's own shape.
/// A half scored about the same (26.69); seven in ten leaves the re-match the last word on
/// any piece of which it found a third or more.
const REMATCH_WHOLE: f32 = 0.7;
const REMATCH_CENTER: f32 = 0.25;
const REMATCH_PATCH: f32 = 0.25;
const REMATCH_TEXTURE: f32 = 0.5;
/// The hysteresis growth ([`cpu::link`]) reaches a fortieth of the larger side (16 px at 640
/// wide) through weak candidates over half the threshold. Chosen on two sets of real-shape
/// artefacts over the bikes clip with grain (hair, lint, dots, spots, sprinkles, seed 21;
/// dirt, smut, stain, short hairs, seed 22): inside the masks 22.19 to 25.88 dB and 23.45 to
/// 25.46, outside 36.46 to 36.42 and 36.47 to 36.42. A quarter of the threshold (as the disc
/// of `dilate`) found more (26.44, 25.68) but spread over the grain of real film.
const LINK_SHARE: usize = 40;
const LINK: f32 = 0.5;

impl Settings {
    pub fn new(p: &DustParams, nb: [bool; 4], width: usize, height: usize) -> Self {
        let t0 = p.t0();
        Settings {
            t0,
            noise_factor: p.noise_factor,
            pm_check: p.pm_radius > 0,
            pm_radius: p.pm_radius,
            have_prev: nb[0] && nb[2],
            have_next: nb[1] && nb[3],
            dilate: p.dilate,
            feather: p.feather,
            spatial_reach: p.spatial_reach,
            disagree: 3.0 * t0,
            wide_radius: WIDE_RADIUS,
            wide_factor: WIDE_FACTOR,
            margin: REPAIR_MARGIN,
            one_sided: ONE_SIDED,
            consistent: CONSISTENT,
            occluded_consistent: OCCLUDED_CONSISTENT,
            edge_k: EDGE_K,
            edge: width.max(height) / EDGE_SHARE,
            spatial_scale: SPATIAL_SCALE,
            spatial_leave: SPATIAL_LEAVE,
            spatial_share: SPATIAL_SHARE,

            rematch: if p.rematch {
                width.max(height) / REMATCH_SHARE
            } else {
                0
            },
            link_reach: if p.link {
                width.max(height) / LINK_SHARE
            } else {
                0
            },
            link: LINK,
            rematch_center: REMATCH_CENTER,
            rematch_patch: REMATCH_PATCH,
            rematch_texture: REMATCH_TEXTURE,
            rematch_whole: REMATCH_WHOLE,
        }
    }
}

pub struct Dust {
    pub params: DustParams,
    /// External masks by frame number, and the pattern they were found by (for messages).
    masks: Option<(HashMap<i64, PathBuf>, String)>,
    /// What was repaired in each frame, for the run's record and repairs file.
    repaired: RepairLog,
    /// The repairs to leave out.
    veto: Veto,
}

impl Dust {
    pub fn new(params: DustParams) -> Result<Self> {
        params.validate()?;
        let masks = match &params.mask_in {
            Some(path) => {
                let seq = crate::io::sequence::Sequence::discover(path)
                    .with_context(|| format!("dust.mask_in = {}", path.display()))?;
                let map = seq
                    .frames
                    .iter()
                    .map(|f| (f.number, f.path.clone()))
                    .collect();
                Some((map, seq.pattern.clone()))
            }
            None => None,
        };
        Ok(Dust {
            veto: Veto::of("dust", &params.veto)?,
            params,
            masks,
            repaired: Default::default(),
        })
    }

    pub fn from_table(table: &toml::Table) -> Result<Self> {
        let params: DustParams = table.clone().try_into().context(
            "invalid parameters for stage 'dust' (keys: sensitivity, radius, noise_factor, \
             pm_radius, rematch, dilate, feather, link, spatial_reach, mask_in, emit_masks, cut_threshold, motion, veto)",
        )?;
        Self::new(params)
    }

    /// The external mask for frame `number` as one plane of 0/1, or `None` without `mask_in`.
    pub fn external_mask(
        &self,
        number: Option<i64>,
        width: usize,
        height: usize,
    ) -> Result<Option<Vec<f32>>> {
        let Some((map, pattern)) = &self.masks else {
            return Ok(None);
        };
        let Some(number) = number else {
            bail!("dust.mask_in: the frame has no sequence number to find its mask by");
        };
        let Some(path) = map.get(&number) else {
            bail!("dust.mask_in: no mask for frame {number} in {pattern}");
        };
        let m = crate::io::read_frame(path).with_context(|| "dust.mask_in".to_string())?;
        if (m.width, m.height) != (width, height) {
            bail!(
                "dust.mask_in: {} is {}x{} but the frames are {width}x{height}",
                path.display(),
                m.width,
                m.height
            );
        }
        // The first plane: a grey mask, or the red of an RGB painting.
        Ok(Some(
            m.plane(0)
                .iter()
                .map(|&v| (v > 0.5) as u32 as f32)
                .collect(),
        ))
    }

    /// Log frame `meta`'s repairs (the soft mask `alpha`; `samples` gives the input and output
    /// at sample indices), write its mask when `emit_masks` is set, and return the samples to
    /// put back for the vetoed ones.
    fn settle(
        &self,
        meta: &FrameMeta,
        (w, h, planes): (usize, usize, usize),
        alpha: &[f32],
        s: &Settings,
        samples: impl FnOnce(&[u32]) -> Result<(Vec<f32>, Vec<f32>)>,
    ) -> Result<Revert> {
        // Any alpha above 0 is a repaired pixel: never rounded down to untouched.
        let mut bytes: Vec<u8> = alpha
            .iter()
            .map(|&a| match a {
                a if a > 0.0 => ((a.min(1.0) * 255.0).round() as u8).max(1),
                _ => 0,
            })
            .collect();
        let at = Repaired {
            stage: "dust",
            meta,
            width: w,
            height: h,
            planes,
        };
        let revert = self.repaired.settle(
            &at,
            &mut bytes,
            &self.veto,
            |_, change| change / s.t0,
            samples,
        )?;
        if let Some(dir) = &self.params.emit_masks {
            let Some(number) = meta.number else {
                bail!("dust.emit_masks: the frame has no sequence number to name its mask by");
            };
            super::write_mask(Path::new(dir), "dust", number, w, h, &bytes)?;
        }
        Ok(revert)
    }

    /// Which neighbour slots lie in the centre's shot: a slot two away only if the one between
    /// does too, judged by [`cuts`] on luma thumbnails (the coarsest pyramid levels).
    fn same_shot(&self, center: &Thumbnail, nb: [Option<Thumbnail>; 4]) -> [bool; 4] {
        let t = self.params.cut_threshold;
        let near = |a: &Thumbnail, b: &Option<Thumbnail>| {
            b.as_ref()
                .is_some_and(|b| !cuts::is_cut(&cuts::compare(a, b), t))
        };
        let p1 = near(center, &nb[0]);
        let n1 = near(center, &nb[1]);
        let p2 = p1 && nb[0].as_ref().is_some_and(|a| near(a, &nb[2]));
        let n2 = n1 && nb[1].as_ref().is_some_and(|a| near(a, &nb[3]));
        [p1, n1, p2, n2]
    }

    /// The window's neighbours in slot order `[p1, n1, p2, n2]`.
    fn slots<'a, T>(&self, window: &Window<'a, T>) -> [Option<&'a T>; 4] {
        let r = self.params.radius;
        let get = |v: &Vec<&'a T>, i: usize| if i < r { v.get(i).copied() } else { None };
        [
            get(&window.before, 0),
            get(&window.after, 0),
            get(&window.before, 1),
            get(&window.after, 1),
        ]
    }
}

impl Stage for Dust {
    fn name(&self) -> &'static str {
        "dust"
    }

    fn temporal_radius(&self) -> usize {
        self.params.radius
    }

    fn spatial_halo(&self) -> usize {
        // Motion reach, the motion check, the mask and the spatial fill, one after the other.
        let m = &self.params.motion;
        (m.search + 1) * (1 << (m.max_levels - 1))
            + 2 * m.block
            + self.params.pm_radius
            + self.params.dilate
            + self.params.feather
            + self.params.spatial_reach
    }

    fn gpu_tolerance(&self) -> f32 {
        GPU_TOLERANCE
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    /// Pixels (repair mask above 0) and regions repaired, pixels the harm guard refused and
    /// repairs vetoed, per frame.
    fn report(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "repaired": self.repaired.json(&self.veto) }))
    }

    fn repairs(&self) -> Vec<Repair> {
        self.repaired.repairs()
    }

    fn run_cpu(&self, window: &Window<'_, Frame>) -> Result<Frame> {
        let (frames, _) = window.in_order();
        check_shapes("dust", frames.iter().map(|f| (f.width, f.height, f.planes)))?;
        let c = window.center;
        let (w, h) = (c.width, c.height);
        let ext = self.external_mask(c.meta.number, w, h)?;
        let slots = self.slots(window);
        let mp = &self.params.motion;
        let cp = motion::cpu::Pyramid::of(c, mp);
        let pyramids: Vec<Option<motion::cpu::Pyramid>> = slots
            .iter()
            .map(|f| f.map(|f| motion::cpu::Pyramid::of(f, mp)))
            .collect();
        let thumb = |p: &motion::cpu::Pyramid| {
            let l = p.levels.last().expect("a level");
            Thumbnail::new(l.width, l.height, l.data.clone())
        };
        let keep = self.same_shot(
            &thumb(&cp),
            std::array::from_fn(|i| pyramids[i].as_ref().map(thumb)),
        );
        let warped: Vec<Option<Frame>> = (0..4)
            .map(|i| match (slots[i], &pyramids[i]) {
                (Some(f), Some(fp)) if keep[i] => {
                    let field = motion::cpu::estimate(&cp, fp, mp);
                    Some(motion::cpu::compensate(
                        f,
                        &field,
                        &cp.levels[0],
                        &fp.levels[0],
                    ))
                }
                _ => None,
            })
            .collect();
        let nb: [Option<&Frame>; 4] = std::array::from_fn(|i| warped[i].as_ref());
        let lumas: Vec<Option<motion::cpu::Plane>> =
            nb.iter().map(|f| f.map(motion::cpu::luma)).collect();
        let lm = cpu::Lumas {
            width: w,
            height: h,
            center: &cp.levels[0].data,
            nb: std::array::from_fn(|i| lumas[i].as_ref().map(|l| l.data.as_slice())),
        };
        let s = Settings::new(&self.params, nb.map(|f| f.is_some()), w, h);
        let bits = cpu::clean(&cpu::spatial(&cpu::detect(&lm, &s), &lm, &s), w, h);
        let hbits = cpu::spread_h(&bits, w, h, if s.pm_check { s.pm_radius } else { 0 });
        let flag = cpu::decide(&hbits, ext.as_deref(), &s, w, h);
        let raw: [Option<&[f32]>; 4] = std::array::from_fn(|i| {
            pyramids[i]
                .as_ref()
                .filter(|_| keep[i])
                .map(|p| p.levels[0].data.as_slice())
        });
        let flag = cpu::rematch(&flag, ext.as_deref(), &lm, &raw, &s);
        let grown = cpu::link(&flag, &cpu::grow(&flag, &s, w, h), &lm, &s);
        let alpha = cpu::alpha(&grown, &s, w, h);
        let (mut out, refused) = cpu::repair(c, &nb, &lm, &alpha, &s);
        let revert = self.settle(&c.meta, (w, h, c.planes), &alpha, &s, |idx| {
            Ok(cpu_samples(c, &out, idx))
        })?;
        revert.apply_cpu(&mut out);
        self.repaired.refused(c.meta.number, refused);
        Ok(out)
    }

    fn run_gpu(&self, gpu: &GpuContext, window: &Window<'_, GpuFrame>) -> Result<GpuFrame> {
        let (frames, _) = window.in_order();
        check_shapes("dust", frames.iter().map(|f| (f.width, f.height, f.planes)))?;
        let c = window.center;
        let ext = self.external_mask(c.meta.number, c.width, c.height)?;
        let slots = self.slots(window);
        let mp = &self.params.motion;
        let cp = motion::gpu::Pyramid::of(gpu, c, mp)?;
        let mut pyramids = Vec::with_capacity(4);
        for f in slots {
            pyramids.push(match f {
                Some(f) => Some(motion::gpu::Pyramid::of(gpu, f, mp)?),
                None => None,
            });
        }
        // The coarsest levels are small: the cut check runs on the CPU, on the same data.
        let thumb = |p: &motion::gpu::Pyramid| -> Result<Thumbnail> {
            let l = gpu.download(p.levels.last().expect("a level"))?;
            Ok(Thumbnail::new(l.width, l.height, l.data))
        };
        let mut thumbs: [Option<Thumbnail>; 4] = Default::default();
        for (t, p) in thumbs.iter_mut().zip(&pyramids) {
            if let Some(p) = p {
                *t = Some(thumb(p)?);
            }
        }
        let keep = self.same_shot(&thumb(&cp)?, thumbs);
        let mut kept: [Option<(&GpuFrame, motion::gpu::Pyramid)>; 4] = Default::default();
        for (i, p) in pyramids.into_iter().enumerate() {
            if let (Some(f), Some(p), true) = (slots[i], p, keep[i]) {
                kept[i] = Some((f, p));
            }
        }
        let s = Settings::new(
            &self.params,
            kept.each_ref().map(|k| k.is_some()),
            c.width,
            c.height,
        );
        let (out, alpha, refused) = gpu::run(gpu, c, &cp, kept, ext.as_deref(), mp, &s)?;
        // The mask comes back for the record of what was repaired (and for `emit_masks`), and
        // the repaired samples for their measures.
        let a = gpu.download(&alpha)?;
        let shape = (c.width, c.height, c.planes);
        let revert = self.settle(&c.meta, shape, &a.data, &s, |idx| {
            Ok((gpu.gather(c, idx)?, gpu.gather(&out, idx)?))
        })?;
        revert.apply_gpu(gpu, &out)?;
        self.repaired.refused(c.meta.number, refused);
        gpu.recycle(alpha);
        Ok(out)
    }
}
