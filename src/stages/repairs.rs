//! Every repair a defect stage makes, one by one, reviewable and reversible.
//!
//! Each 8-connected region of a frame's repair mask is one repair, with an id
//! `STAGE:FRAME:N` (N counts the frame's regions from 1 in the raster order of their first
//! pixel), its box, area, mean and largest change and how far it stood out of the stage's
//! detection threshold. The run writes them to its repairs file (JSON lines, beside the record)
//! and sums them per frame in the record. A veto (`restore --veto FILE`, or a stage's `veto`
//! parameter) names repairs to leave out: the stage repairs as it would and then puts its input
//! back over the vetoed regions, so every other sample of its output is bit-identical to the run
//! without the veto (a repair is decided and computed without regard to the vetoes).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::frame::{Frame, FrameMeta};
use crate::gpu::{GpuContext, GpuFrame};

/// One repaired region: a line of the repairs file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Repair {
    /// `STAGE:FRAME:N`.
    pub id: String,
    pub stage: String,
    pub frame: i64,
    /// x, y, width, height in the stage's frame (the output's, for every stage but upscale).
    pub bbox: [usize; 4],
    /// The box's centre in the scan as read: where the film was at that place before a stage
    /// moved the frame (`stabilise`), for a before/after view.
    pub source_at: [f64; 2],
    /// Pixels repaired.
    pub area: usize,
    /// Mean and largest change of a pixel (the largest over its planes), in code values.
    pub mean_change: f32,
    pub max_change: f32,
    /// The detector's confidence: how many times its detection threshold the defect stood
    /// out by (1 at the threshold; larger is surer).
    pub stand_out: f32,
    /// Left out by a veto: detected and computed, then the input put back.
    pub vetoed: bool,
}

/// A region of a repair mask: its pixel indices in raster order and its box (x, y, w, h).
pub struct Region {
    pub pixels: Vec<u32>,
    pub bbox: [usize; 4],
}

/// The 8-connected regions of `mask` (non-zero: repaired), in the raster order of their first
/// pixel (the order their ids count). Labelled by runs of repaired pixels, so a frame with few
/// repairs costs one pass over the mask.
pub fn regions(mask: &[u8], width: usize) -> Vec<Region> {
    // Runs (y, x0, x1) in raster order, and where each row's runs start.
    let mut runs: Vec<(usize, usize, usize)> = Vec::new();
    let mut row_start = Vec::new();
    for (y, row) in mask.chunks(width.max(1)).enumerate() {
        row_start.push(runs.len());
        let mut x = 0;
        while x < row.len() {
            if row[x] == 0 {
                x += 1;
                continue;
            }
            let x0 = x;
            while x < row.len() && row[x] != 0 {
                x += 1;
            }
            runs.push((y, x0, x - 1));
        }
    }
    row_start.push(runs.len());
    let mut parent: Vec<usize> = (0..runs.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for y in 1..row_start.len() - 1 {
        let (above, here) = (
            row_start[y - 1]..row_start[y],
            row_start[y]..row_start[y + 1],
        );
        let mut a = above.start;
        for b in here {
            let (_, bx0, bx1) = runs[b];
            // Runs above ending left of this one's reach cannot touch this or later runs.
            while a < above.end && runs[a].2 + 1 < bx0 {
                a += 1;
            }
            let mut k = a;
            while k < above.end && runs[k].1 <= bx1 + 1 {
                let (ra, rb) = (root(&mut parent, k), root(&mut parent, b));
                // The earlier run stays the root: a region's root is its first run.
                parent[ra.max(rb)] = ra.min(rb);
                k += 1;
            }
        }
    }
    let mut index_of_root = vec![usize::MAX; runs.len()];
    let mut out: Vec<Region> = Vec::new();
    for (i, &(y, x0, x1)) in runs.iter().enumerate() {
        let r = root(&mut parent, i);
        if index_of_root[r] == usize::MAX {
            index_of_root[r] = out.len();
            out.push(Region {
                pixels: Vec::new(),
                bbox: [usize::MAX, usize::MAX, 0, 0],
            });
        }
        let region = &mut out[index_of_root[r]];
        region
            .pixels
            .extend((x0..=x1).map(|x| (y * width + x) as u32));
        // Corners first; turned into width and height below.
        region.bbox[0] = region.bbox[0].min(x0);
        region.bbox[1] = region.bbox[1].min(y);
        region.bbox[2] = region.bbox[2].max(x1);
        region.bbox[3] = region.bbox[3].max(y);
    }
    for r in &mut out {
        r.bbox[2] = r.bbox[2] + 1 - r.bbox[0];
        r.bbox[3] = r.bbox[3] + 1 - r.bbox[1];
    }
    out
}

/// What one veto entry names.
#[derive(Clone, Debug, PartialEq)]
enum Target {
    /// The N of an id.
    Index(usize),
    /// Every region whose box meets this one (x, y, w, h).
    Box([i64; 4]),
}

/// One veto entry: `STAGE:FRAME:N` (one repair), or `STAGE:FRAME@X,Y,W,H` (every repair of
/// the frame whose box meets that box); STAGE `*` names every repairing stage.
#[derive(Debug)]
struct Entry {
    text: String,
    stage: Option<String>,
    frame: i64,
    target: Target,
    matched: AtomicBool,
}

impl Entry {
    fn parse(text: &str) -> Result<Entry> {
        let text = text.trim();
        let bad = || {
            anyhow::anyhow!(
                "'{text}' is not a repair id (STAGE:FRAME:N) or a frame and box \
                 (STAGE:FRAME@X,Y,W,H; STAGE * for every stage)"
            )
        };
        let (stage, rest) = text.split_once(':').ok_or_else(bad)?;
        let (frame, target) = if let Some((frame, b)) = rest.split_once('@') {
            let v: Vec<i64> = b
                .split(',')
                .map(|s| s.trim().parse::<i64>())
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| bad())?;
            if v.len() != 4 || v[2] < 1 || v[3] < 1 {
                return Err(bad());
            }
            (frame, Target::Box([v[0], v[1], v[2], v[3]]))
        } else {
            let (frame, n) = rest.split_once(':').ok_or_else(bad)?;
            let n: usize = n.trim().parse().map_err(|_| bad())?;
            if n == 0 {
                return Err(bad());
            }
            (frame, Target::Index(n))
        };
        let frame: i64 = frame.trim().parse().map_err(|_| bad())?;
        let stage = match stage.trim() {
            "*" => None,
            s => {
                let name =
                    super::canonical_name(s).map_err(|e| anyhow::anyhow!("'{text}': {e}"))?;
                if !super::MASK_STAGES.contains(&name) {
                    bail!(
                        "'{text}': {name} is not a repair stage ({})",
                        super::MASK_STAGES.join(", ")
                    );
                }
                Some(name)
            }
        };
        Ok(Entry {
            text: text.to_string(),
            stage: stage.map(String::from),
            frame,
            target,
            matched: AtomicBool::new(false),
        })
    }

    fn covers(&self, frame: i64, index: usize, bbox: &[usize; 4]) -> bool {
        if frame != self.frame {
            return false;
        }
        match self.target {
            Target::Index(n) => n == index,
            Target::Box([x, y, w, h]) => {
                let [bx, by, bw, bh] = bbox.map(|v| v as i64);
                x < bx + bw && bx < x + w && y < by + bh && by < y + h
            }
        }
    }
}

/// The repairs a stage is told to leave out (its `veto` parameter).
#[derive(Debug, Default)]
pub struct Veto(Vec<Entry>);

impl Veto {
    /// The entries of `stage`'s `veto` parameter; an entry naming another stage is an error.
    pub fn of(stage: &str, entries: &[String]) -> Result<Veto> {
        let mut out = Vec::new();
        for text in entries {
            let e = Entry::parse(text).with_context(|| format!("{stage}.veto"))?;
            if let Some(s) = &e.stage {
                if s != stage {
                    bail!("{stage}.veto: '{text}' names stage '{s}'");
                }
            }
            out.push(e);
        }
        Ok(Veto(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether region `index` (from 1) of frame `frame`, with box `bbox`, is vetoed.
    fn covers(&self, frame: i64, index: usize, bbox: &[usize; 4]) -> bool {
        let mut any = false;
        for e in &self.0 {
            if e.covers(frame, index, bbox) {
                e.matched.store(true, Ordering::Relaxed);
                any = true;
            }
        }
        any
    }

    /// Entries about one of `frames` that matched no repair there.
    fn unmatched(&self, frames: impl Fn(i64) -> bool) -> Vec<String> {
        self.0
            .iter()
            .filter(|e| frames(e.frame) && !e.matched.load(Ordering::Relaxed))
            .map(|e| e.text.clone())
            .collect()
    }
}

/// Read a veto file: one entry a line (`STAGE:FRAME:N`, `STAGE:FRAME@X,Y,W,H`, or a line of a
/// repairs file, whose `id` is taken); blank lines and `#` comments are skipped. Returns the
/// entries by stage (`*` for every stage). Errors name the file and the line.
pub fn read_veto_file(path: &Path) -> Result<BTreeMap<String, Vec<String>>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read the veto file", path.display()))?;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("{}, line {}", path.display(), i + 1);
        let entry = if line.starts_with('{') {
            let r: serde_json::Value = serde_json::from_str(line).with_context(at)?;
            match r.get("id").and_then(|v| v.as_str()) {
                Some(id) => id.to_string(),
                None => bail!("{}: a JSON line without an \"id\"", at()),
            }
        } else {
            line.to_string()
        };
        let e = Entry::parse(&entry).with_context(at)?;
        out.entry(e.stage.clone().unwrap_or_else(|| "*".into()))
            .or_default()
            .push(e.text);
    }
    Ok(out)
}

/// Samples to put back in a stage's output: the input's values at the vetoed regions.
#[derive(Default)]
pub struct Revert {
    indices: Vec<u32>,
    values: Vec<f32>,
}

impl Revert {
    pub fn apply_cpu(&self, frame: &mut Frame) {
        for (&i, &v) in self.indices.iter().zip(&self.values) {
            frame.data[i as usize] = v;
        }
    }

    pub fn apply_gpu(&self, gpu: &GpuContext, frame: &GpuFrame) -> Result<()> {
        gpu.scatter(frame, &self.indices, &self.values)
    }
}

/// One frame's repairs.
#[derive(Default)]
struct FrameLog {
    pixels: u64,
    regions: u64,
    refused: u64,
    repairs: Vec<Repair>,
}

/// The samples at `indices` of a stage's input and output frames on the CPU: the `samples`
/// argument of [`RepairLog::settle`] for a CPU run.
pub fn cpu_samples(before: &Frame, after: &Frame, indices: &[u32]) -> (Vec<f32>, Vec<f32>) {
    let at = |f: &Frame| indices.iter().map(|&i| f.data[i as usize]).collect();
    (at(before), at(after))
}

/// What a defect stage repaired, frame by frame, for the run's record and repairs file.
#[derive(Default)]
pub struct RepairLog(Mutex<BTreeMap<i64, FrameLog>>);

/// The frame a stage repaired, as [`RepairLog::settle`] needs it.
pub struct Repaired<'a> {
    pub stage: &'static str,
    pub meta: &'a FrameMeta,
    pub width: usize,
    pub height: usize,
    pub planes: usize,
}

impl RepairLog {
    fn with(&self, number: Option<i64>, f: impl FnOnce(&mut FrameLog)) {
        let Some(n) = number else { return };
        let mut log = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(log.entry(n).or_default());
    }

    /// Log frame `at`'s repairs, `mask` (non-zero: repaired) split into regions. `samples`
    /// gives the stage's input and output at a list of sample indices; `stand_out` the
    /// confidence of a region given its largest change. Vetoed regions are zeroed in `mask`
    /// and returned as the samples to put back.
    pub fn settle(
        &self,
        at: &Repaired,
        mask: &mut [u8],
        veto: &Veto,
        stand_out: impl Fn(&Region, f32) -> f32,
        samples: impl FnOnce(&[u32]) -> Result<(Vec<f32>, Vec<f32>)>,
    ) -> Result<Revert> {
        let (w, h) = (at.width, at.height);
        let found = regions(mask, w);
        let plane = (w * h) as u32;
        let indices: Vec<u32> = found
            .iter()
            .flat_map(|r| {
                r.pixels
                    .iter()
                    .flat_map(move |&p| (0..at.planes as u32).map(move |k| k * plane + p))
            })
            .collect();
        let (before, after) = if indices.is_empty() {
            Default::default()
        } else {
            samples(&indices)?
        };
        let number = at.meta.number;
        let back = at
            .meta
            .film_move
            .map(|m| crate::stages::stabilise::motion::Similarity::from_track(m).inverse());
        let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
        let mut revert = Revert::default();
        let mut repairs = Vec::with_capacity(found.len());
        let mut offset = 0;
        for (k, r) in found.iter().enumerate() {
            let n = r.pixels.len() * at.planes;
            let span = offset..offset + n;
            offset += n;
            let change: Vec<f32> = before[span.clone()]
                .chunks(at.planes)
                .zip(after[span.clone()].chunks(at.planes))
                .map(|(b, a)| {
                    b.iter()
                        .zip(a)
                        .map(|(b, a)| (a - b).abs())
                        .fold(0.0, f32::max)
                })
                .collect();
            let max_change = change.iter().copied().fold(0.0, f32::max);
            let mean_change = change.iter().sum::<f32>() / change.len().max(1) as f32;
            let [x, y, bw, bh] = r.bbox;
            let centre = [
                x as f64 + (bw as f64 - 1.0) / 2.0,
                y as f64 + (bh as f64 - 1.0) / 2.0,
            ];
            let source_at = match &back {
                Some(b) => {
                    let s = b.apply([centre[0] - cx, centre[1] - cy]);
                    [s[0] + cx, s[1] + cy]
                }
                None => centre,
            };
            let vetoed = number.is_some_and(|f| veto.covers(f, k + 1, &r.bbox));
            if vetoed {
                revert.indices.extend_from_slice(&indices[span.clone()]);
                revert.values.extend_from_slice(&before[span.clone()]);
                for &p in &r.pixels {
                    mask[p as usize] = 0;
                }
            }
            repairs.push(Repair {
                id: format!("{}:{}:{}", at.stage, number.unwrap_or(-1), k + 1),
                stage: at.stage.to_string(),
                frame: number.unwrap_or(-1),
                bbox: r.bbox,
                source_at,
                area: r.pixels.len(),
                mean_change,
                max_change,
                stand_out: stand_out(r, max_change),
                vetoed,
            });
        }
        let kept = repairs.iter().filter(|r| !r.vetoed);
        let (pixels, regions) = kept.fold((0u64, 0u64), |(p, n), r| (p + r.area as u64, n + 1));
        self.with(number, |log| {
            log.pixels = pixels;
            log.regions = regions;
            log.repairs = repairs;
        });
        Ok(revert)
    }

    /// Note the pixels of frame `number` whose repair the guard refused.
    pub fn refused(&self, number: Option<i64>, pixels: u64) {
        self.with(number, |log| log.refused = pixels);
    }

    /// Every repair, by frame and id.
    pub fn repairs(&self) -> Vec<Repair> {
        let log = self.0.lock().unwrap_or_else(|p| p.into_inner());
        log.values()
            .flat_map(|f| f.repairs.iter().cloned())
            .collect()
    }

    /// `{"frames": {"<number>": {"pixels", "regions", "guard_refused", "vetoed"}}, "pixels",
    /// "regions", "frames_touched", "guard_refused", "vetoed", "veto_unmatched"}`: pixels and
    /// regions repaired (vetoed ones left out), and the veto entries about frames of the run
    /// that matched no repair.
    pub fn json(&self, veto: &Veto) -> serde_json::Value {
        let log = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let vetoed = |f: &FrameLog| f.repairs.iter().filter(|r| r.vetoed).count() as u64;
        let frames: serde_json::Map<String, serde_json::Value> = log
            .iter()
            .map(|(n, f)| {
                (
                    n.to_string(),
                    serde_json::json!({
                        "pixels": f.pixels,
                        "regions": f.regions,
                        "guard_refused": f.refused,
                        "vetoed": vetoed(f),
                    }),
                )
            })
            .collect();
        serde_json::json!({
            "pixels": log.values().map(|f| f.pixels).sum::<u64>(),
            "regions": log.values().map(|f| f.regions).sum::<u64>(),
            "frames_touched": log.values().filter(|f| f.pixels > 0).count(),
            "guard_refused": log.values().map(|f| f.refused).sum::<u64>(),
            "vetoed": log.values().map(vetoed).sum::<u64>(),
            "veto_unmatched": veto.unmatched(|n| log.contains_key(&n)),
            "frames": frames,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_8_connected_and_counted_in_raster_order() {
        // 5x4: a diagonal pair (one region), a lone pixel, a 2-pixel bar.
        #[rustfmt::skip]
        let mask = [
            255, 0,   0, 0, 9,
            0,   255, 0, 0, 0,
            0,   0,   0, 0, 0,
            1,   1,   0, 0, 0,
        ];
        let r = regions(&mask, 5);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].bbox, [0, 0, 2, 2]);
        assert_eq!(r[1].bbox, [4, 0, 1, 1]);
        assert_eq!(r[2].bbox, [0, 3, 2, 1]);
        assert_eq!(r[2].pixels, vec![15, 16]);
    }

    #[test]
    fn regions_by_runs_match_the_pixel_labelling_on_random_masks() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for case in 0..200 {
            let (w, h) = (1 + case % 23, 1 + case % 17);
            let density = (case % 5) as u64 + 1;
            let mask: Vec<u8> = (0..w * h)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state % 10 < density) as u8 * 255
                })
                .collect();
            let inside: Vec<bool> = mask.iter().map(|&v| v != 0).collect();
            let (labels, count) = crate::metrics::label_regions(&inside, w);
            let got = regions(&mask, w);
            assert_eq!(got.len(), count as usize, "case {case}");
            for (k, r) in got.iter().enumerate() {
                let want: Vec<u32> = (0..w * h)
                    .filter(|&i| labels[i] == k as u32 + 1)
                    .map(|i| i as u32)
                    .collect();
                assert_eq!(r.pixels, want, "case {case}, region {k}");
            }
        }
    }

    #[test]
    fn settle_measures_vetoes_and_logs_each_region() {
        #[rustfmt::skip]
        let mut mask = [
            255, 0,   0, 0, 9,
            0,   255, 0, 0, 0,
            0,   0,   0, 0, 0,
            1,   1,   0, 0, 0,
        ];
        let before = Frame::new(5, 4, 2, FrameMeta::default());
        let mut after = before.clone();
        for (i, &m) in mask.iter().enumerate() {
            if m != 0 {
                after.data[i] = 0.1 * (i % 3) as f32;
                after.data[20 + i] = 0.05;
            }
        }
        let meta = FrameMeta {
            number: Some(7),
            ..Default::default()
        };
        let at = Repaired {
            stage: "dust",
            meta: &meta,
            width: 5,
            height: 4,
            planes: 2,
        };
        let veto = Veto::of("dust", &["dust:7:2".into(), "*:7@0,3,1,1".into()]).unwrap();
        let log = RepairLog::default();
        let revert = log
            .settle(
                &at,
                &mut mask,
                &veto,
                |_, m| m / 0.05,
                |idx| {
                    let get = |f: &Frame| idx.iter().map(|&i| f.data[i as usize]).collect();
                    Ok((get(&before), get(&after)))
                },
            )
            .unwrap();
        let rs = log.repairs();
        assert_eq!(
            rs.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["dust:7:1", "dust:7:2", "dust:7:3"]
        );
        assert_eq!(
            rs.iter().map(|r| r.vetoed).collect::<Vec<_>>(),
            [false, true, true]
        );
        // Region 1: pixels 0 (change 0.05 in plane 2) and 6 (0.0 and 0.05): max 0.05.
        assert!((rs[0].max_change - 0.05).abs() < 1e-6);
        assert!((rs[0].stand_out - 1.0).abs() < 1e-5);
        // Region 3: pixels 15 (0.0, 0.05) and 16 (0.1, 0.05): mean 0.075.
        assert!((rs[2].mean_change - 0.075).abs() < 1e-6);
        // The vetoed regions are out of the mask and come back as the input's samples.
        assert_eq!(mask.iter().filter(|&&v| v != 0).count(), 2);
        revert.apply_cpu(&mut after);
        for i in [4, 15, 16] {
            assert_eq!((after.data[i], after.data[20 + i]), (0.0, 0.0));
        }
        assert_eq!(after.data[20], 0.05);
        let j = log.json(&veto);
        assert_eq!(j["frames"]["7"]["pixels"], 2);
        assert_eq!(j["frames"]["7"]["regions"], 1);
        assert_eq!(j["vetoed"], 2);
        assert_eq!(j["veto_unmatched"], serde_json::json!([]));
    }

    #[test]
    fn veto_entries_parse_or_say_why_not() {
        assert!(Veto::of("dust", &["dust:12:3".into(), "*:12@1,2,3,4".into()]).is_ok());
        assert!(Veto::of("dust", &["dirt:12:3".into()]).is_ok(), "an alias");
        for bad in [
            "dust:12",
            "dust:x:1",
            "dust:12:0",
            "dust:12@1,2,3",
            "dust:12@1,2,0,4",
        ] {
            let e = Veto::of("dust", &[bad.into()]).unwrap_err();
            assert!(format!("{e:#}").contains(bad), "{e:#}");
        }
        let e = Veto::of("dust", &["scratch:1:1".into()]).unwrap_err();
        assert!(format!("{e:#}").contains("names stage 'scratch'"), "{e:#}");
    }

    #[test]
    fn a_veto_file_takes_ids_boxes_and_repairs_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("veto.txt");
        std::fs::write(
            &path,
            "# bad repairs on the door\ndust:134:3\n\n*:140@10,20,30,40\n\
             {\"id\":\"scratch:141:1\",\"stage\":\"scratch\"}\n",
        )
        .unwrap();
        let v = read_veto_file(&path).unwrap();
        assert_eq!(v["dust"], ["dust:134:3"]);
        assert_eq!(v["*"], ["*:140@10,20,30,40"]);
        assert_eq!(v["scratch"], ["scratch:141:1"]);
        std::fs::write(&path, "dust:134:3\ndust:oops\n").unwrap();
        let e = format!("{:#}", read_veto_file(&path).unwrap_err());
        assert!(
            e.contains("veto.txt, line 2") && e.contains("dust:oops"),
            "{e}"
        );
    }
}
