//! `nitrate review OUTPUT`: contact sheets of a run's repairs, for an expert to go through a
//! reel's repairs in minutes and veto the wrong ones.
//!
//! Each repair of the run's repairs file(s) (`repairs.jsonl`, one per chunk) becomes a tile:
//! the scan as read around it (before) beside the restored output (after), the repaired box
//! outlined, with its id and largest change written over. Tiles go largest change first,
//! [`PER_SHEET`] to a PNG sheet. The before crop is taken where the film was in the scan
//! (`source_at`: a stabilised frame was moved), so both sides show the same picture.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::frame::Frame;
use crate::io::sequence::Sequence;
use crate::stages::repairs::Repair;

/// Tiles per sheet: 4 across, 10 down.
pub const PER_SHEET: usize = 40;
const ACROSS: usize = 4;
/// Side of each crop on the sheet, in pixels.
const SIDE: usize = 160;
/// Height of the label strip above a tile.
const LABEL: usize = 12;
const GAP: usize = 6;

/// What to review and where the sheets go.
pub struct ReviewJob {
    /// A restore's output directory, its output video, or a repairs file.
    pub output: PathBuf,
    /// Only this stage's repairs.
    pub stage: Option<String>,
    /// Show vetoed repairs too (they are marked).
    pub vetoed: bool,
    /// Folder for the sheets (default: `review/` in the output directory).
    pub out: Option<PathBuf>,
    /// The run's input, where the record's path to it no longer leads.
    pub input: Option<PathBuf>,
}

pub struct ReviewSummary {
    pub repairs: usize,
    pub sheets: Vec<PathBuf>,
}

/// The repairs files of `output`, each with the record beside it.
fn repairs_files(output: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    let files: Vec<PathBuf> = if output.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(output)
            .with_context(|| format!("{}: cannot list", output.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let n = p.file_name().unwrap_or_default().to_string_lossy();
                n.starts_with("repairs") && n.ends_with(".jsonl")
            })
            .collect();
        v.sort();
        v
    } else if output.extension().is_some_and(|e| e == "jsonl") {
        vec![output.to_path_buf()]
    } else {
        vec![crate::pipeline::beside_record(
            &output.with_extension("restoration.json"),
            "repairs",
            "jsonl",
        )]
    };
    if files.is_empty() || !files[0].is_file() {
        bail!(
            "{}: no repairs file (repairs.jsonl) found: was it restored with dust or scratch?",
            output.display()
        );
    }
    Ok(files
        .into_iter()
        .map(|f| {
            let name = f.file_name().unwrap_or_default().to_string_lossy();
            let record = name
                .strip_suffix(".jsonl")
                .map(|s| s.replacen("repairs", "restoration", 1) + ".json")
                .unwrap_or_default();
            let record = f.with_file_name(record);
            (f, record)
        })
        .collect())
}

/// The frames of a run's input and output sequences, by number: the output is the folder of
/// the record at `record_path`; the input is `input`, or as the record names it (a relative
/// path there is relative to where the run was started).
fn frames_of(
    record_path: &Path,
    input: Option<&Path>,
) -> Result<(BTreeMap<i64, PathBuf>, BTreeMap<i64, PathBuf>)> {
    let text = std::fs::read_to_string(record_path)
        .with_context(|| format!("{}: cannot read the run's record", record_path.display()))?;
    let record: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a run record", record_path.display()))?;
    let (Some(pattern), Some(_)) = (
        record["input"]["pattern"].as_str(),
        record["output"]["directory"].as_str(),
    ) else {
        bail!(
            "{}: review needs a frame sequence in and out (this run read or wrote a video)",
            record_path.display()
        );
    };
    let by_number = |p: &Path| -> Result<BTreeMap<i64, PathBuf>> {
        Ok(Sequence::discover(p)?
            .frames
            .into_iter()
            .map(|f| (f.number, f.path))
            .collect())
    };
    let input = input.unwrap_or(Path::new(pattern));
    let inputs = by_number(input).with_context(|| {
        format!(
            "the input of {} (give it with --input)",
            record_path.display()
        )
    })?;
    let dir = match record_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok((inputs, by_number(dir)?))
}

/// Write the sheets.
pub fn run(job: &ReviewJob) -> Result<ReviewSummary> {
    let mut repairs: Vec<(Repair, PathBuf, PathBuf)> = Vec::new();
    for (file, record) in repairs_files(&job.output)? {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("{}: cannot read", file.display()))?;
        let (inputs, outputs) = frames_of(&record, job.input.as_deref())?;
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let r: Repair = serde_json::from_str(line)
                .with_context(|| format!("{}, line {}", file.display(), i + 1))?;
            if job.stage.as_deref().is_some_and(|s| s != r.stage) || (r.vetoed && !job.vetoed) {
                continue;
            }
            let find = |m: &BTreeMap<i64, PathBuf>, what: &str| {
                m.get(&r.frame).cloned().with_context(|| {
                    format!(
                        "{}: frame {} of {} is not there",
                        record.display(),
                        r.frame,
                        what
                    )
                })
            };
            let (a, b) = (find(&inputs, "the input")?, find(&outputs, "the output")?);
            repairs.push((r, a, b));
        }
    }
    // Largest change first; ties in id order.
    repairs.sort_by(|a, b| {
        b.0.max_change
            .total_cmp(&a.0.max_change)
            .then_with(|| a.0.id.cmp(&b.0.id))
    });
    let out_dir = job
        .out
        .clone()
        .unwrap_or_else(|| match job.output.is_dir() {
            true => job.output.join("review"),
            false => job.output.with_extension("review"),
        });
    // Each frame is read once: tiles are cut frame by frame, then laid out in order.
    let mut order: Vec<usize> = (0..repairs.len()).collect();
    order.sort_by_key(|&i| repairs[i].0.frame);
    let mut tiles: Vec<Option<Frame>> = vec![None; repairs.len()];
    let mut held: Option<(i64, Frame, Frame)> = None;
    for i in order {
        let (r, input, output) = &repairs[i];
        if held.as_ref().is_none_or(|h| h.0 != r.frame) {
            let before = crate::io::read_frame(input)?;
            let after = crate::io::read_frame(output)?;
            held = Some((r.frame, before, after));
        }
        let (_, before, after) = held.as_ref().expect("read");
        tiles[i] = Some(tile(r, before, after));
    }
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("{}: cannot create the review folder", out_dir.display()))?;
    let mut sheets = Vec::new();
    let tiles: Vec<Frame> = tiles.into_iter().map(|t| t.expect("cut")).collect();
    for (k, page) in tiles.chunks(PER_SHEET).enumerate() {
        let path = out_dir.join(format!("sheet_{:03}.png", k + 1));
        let sheet = lay_out(page);
        let mut bytes = Vec::new();
        image::ImageEncoder::write_image(
            image::codecs::png::PngEncoder::new(std::io::Cursor::new(&mut bytes)),
            &rgb8(&sheet),
            sheet.width as u32,
            sheet.height as u32,
            image::ExtendedColorType::Rgb8,
        )
        .with_context(|| format!("{}: cannot encode", path.display()))?;
        crate::io::write_atomic(&path, &bytes)?;
        sheets.push(path);
    }
    Ok(ReviewSummary {
        repairs: repairs.len(),
        sheets,
    })
}

/// Sample `(x, y)` of plane `p` (grey frames repeat their one plane), black outside.
fn at(f: &Frame, p: usize, x: i64, y: i64) -> f32 {
    if x < 0 || y < 0 || x >= f.width as i64 || y >= f.height as i64 {
        return 0.0;
    }
    f.data[(p.min(f.planes - 1) * f.height + y as usize) * f.width + x as usize]
}

/// One tile: label strip, then before | after crops of `SIDE` square around the repair.
fn tile(r: &Repair, before: &Frame, after: &Frame) -> Frame {
    let [bx, by, bw, bh] = r.bbox;
    // The crop: the box with as much around it again (at least 24 px), square.
    let span = (bw.max(bh) * 2).max(bw.max(bh) + 48) as f64;
    let centre = [bx as f64 + bw as f64 / 2.0, by as f64 + bh as f64 / 2.0];
    let source = [r.source_at[0] + 0.5, r.source_at[1] + 0.5];
    let scale = span / SIDE as f64;
    let w = 2 * SIDE + GAP;
    let mut t = Frame::new(w, LABEL + SIDE, 3, Default::default());
    for (k, (f, c)) in [(before, source), (after, centre)].into_iter().enumerate() {
        let x0 = k * (SIDE + GAP);
        for y in 0..SIDE {
            for x in 0..SIDE {
                // Nearest sample: specks stay sharp when enlarged.
                let sx = (c[0] + (x as f64 + 0.5 - SIDE as f64 / 2.0) * scale).floor() as i64;
                let sy = (c[1] + (y as f64 + 0.5 - SIDE as f64 / 2.0) * scale).floor() as i64;
                for p in 0..3 {
                    t.data[(p * t.height + LABEL + y) * w + x0 + x] = at(f, p, sx, sy);
                }
            }
        }
        // The box, one pixel outside it, in yellow (red when vetoed).
        let to = |v: f64, c: f64| ((v - c) / scale + SIDE as f64 / 2.0).round() as i64;
        let (l, top) = (to(bx as f64, centre[0]) - 1, to(by as f64, centre[1]) - 1);
        let (rt, bot) = (
            to((bx + bw) as f64, centre[0]),
            to((by + bh) as f64, centre[1]),
        );
        let colour = if r.vetoed {
            [1.0, 0.1, 0.1]
        } else {
            [1.0, 0.9, 0.0]
        };
        let mut dot = |x: i64, y: i64| {
            if (0..SIDE as i64).contains(&x) && (0..SIDE as i64).contains(&y) {
                for (p, v) in colour.iter().enumerate() {
                    t.data[(p * t.height + LABEL + y as usize) * w + x0 + x as usize] = *v;
                }
            }
        };
        for x in l..=rt {
            dot(x, top);
            dot(x, bot);
        }
        for y in top..=bot {
            dot(l, y);
            dot(rt, y);
        }
    }
    let label = format!(
        "{}  max {:.3}{}",
        r.id,
        r.max_change,
        if r.vetoed { " VETOED" } else { "" }
    );
    text(&mut t, 2, 2, &label);
    t
}

/// Write `s` in the 8x8 font, white, at `(x, y)`.
fn text(f: &mut Frame, x: usize, y: usize, s: &str) {
    use font8x8::UnicodeFonts;
    for (i, ch) in s.chars().enumerate() {
        let Some(glyph) = font8x8::BASIC_FONTS.get(ch) else {
            continue;
        };
        for (gy, row) in glyph.iter().enumerate() {
            for gx in 0..8 {
                let (px, py) = (x + i * 8 + gx, y + gy);
                if row >> gx & 1 == 1 && px < f.width && py < f.height {
                    for p in 0..f.planes {
                        f.data[(p * f.height + py) * f.width + px] = 1.0;
                    }
                }
            }
        }
    }
}

/// Tiles in rows of [`ACROSS`] on a dark ground.
fn lay_out(tiles: &[Frame]) -> Frame {
    let (tw, th) = (tiles[0].width, tiles[0].height);
    let rows = tiles.len().div_ceil(ACROSS);
    let cols = tiles.len().min(ACROSS);
    let (w, h) = (cols * (tw + GAP) + GAP, rows * (th + GAP) + GAP);
    let mut sheet = Frame::new(w, h, 3, Default::default());
    sheet.data.iter_mut().for_each(|v| *v = 0.12);
    for (i, t) in tiles.iter().enumerate() {
        let (ox, oy) = (
            GAP + (i % ACROSS) * (tw + GAP),
            GAP + (i / ACROSS) * (th + GAP),
        );
        for p in 0..3 {
            for y in 0..th {
                let src = &t.data[(p * th + y) * tw..][..tw];
                sheet.data[(p * h + oy + y) * w + ox..][..tw].copy_from_slice(src);
            }
        }
    }
    sheet
}

/// Interleaved 8-bit RGB of a 3-plane frame.
fn rgb8(f: &Frame) -> Vec<u8> {
    let n = f.width * f.height;
    (0..n * 3)
        .map(|i| (f.data[(i % 3) * n + i / 3].clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect()
}
