//! `nitrate probe`: what a sequence or video is, read from headers only (ffprobe for a video),
//! and what is wrong with it.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use rayon::prelude::*;
use serde::Serialize;

use crate::frame::Transfer;
use crate::io::sequence::Gap;
use crate::io::video::VideoInfo;
use crate::io::{read_info, FrameInfo, Input};

#[derive(Serialize)]
pub struct ProbeReport {
    pub pattern: String,
    pub encoding: String,
    pub width: usize,
    pub height: usize,
    pub planes: usize,
    pub transfer: String,
    pub frame_rate: Option<f64>,
    pub first_timecode: Option<String>,
    pub edge_code: Option<String>,
    pub first_frame: i64,
    pub last_frame: i64,
    pub count: usize,
    pub gaps: Vec<Gap>,
    /// Frames whose size or planes differ from the first: `WxH/planes` -> count and first file.
    pub mixed_sizes: Vec<(String, usize, String)>,
    /// Files whose headers could not be read, with the reason (for a video: truncation).
    pub unreadable: Vec<String>,
    /// A video's audio streams (codec names), copied to a video output.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub audio: Vec<String>,
}

impl ProbeReport {
    /// Whether the sequence can be restored as it is (gaps need --allow-gaps).
    pub fn problems(&self) -> usize {
        self.gaps.len() + self.mixed_sizes.len() + self.unreadable.len()
    }
}

pub fn probe(input: &Path, ffmpeg: Option<&Path>) -> Result<ProbeReport> {
    let seq = match Input::discover(input, ffmpeg)? {
        Input::Sequence(seq) => seq,
        Input::Video(v) => return Ok(probe_video(&v)),
    };
    let infos: Vec<Result<FrameInfo>> = seq.frames.par_iter().map(|f| read_info(&f.path)).collect();
    let mut unreadable = Vec::new();
    let mut first: Option<&FrameInfo> = None;
    let mut shapes: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for (f, info) in seq.frames.iter().zip(&infos) {
        match info {
            Ok(i) => {
                let first = *first.get_or_insert(i);
                if (i.width, i.height, i.planes) != (first.width, first.height, first.planes) {
                    let key = format!("{}x{}/{}", i.width, i.height, i.planes);
                    let e = shapes
                        .entry(key)
                        .or_insert((0, f.path.display().to_string()));
                    e.0 += 1;
                }
            }
            Err(e) => unreadable.push(format!("{e:#}")),
        }
    }
    let Some(first) = first else {
        anyhow::bail!(
            "{}: no readable frame: {}",
            seq.pattern,
            unreadable.first().cloned().unwrap_or_default()
        );
    };
    Ok(ProbeReport {
        pattern: seq.pattern.clone(),
        encoding: first.encoding(),
        width: first.width,
        height: first.height,
        planes: first.planes,
        transfer: first.meta.transfer.to_string(),
        frame_rate: first.meta.frame_rate,
        first_timecode: first.meta.timecode.map(|t| t.to_string()),
        edge_code: first.meta.edge_code.clone(),
        first_frame: seq.first_number(),
        last_frame: seq.last_number(),
        count: seq.len(),
        gaps: seq.gaps(),
        mixed_sizes: shapes.into_iter().map(|(k, (n, f))| (k, n, f)).collect(),
        unreadable,
        audio: Vec::new(),
    })
}

fn probe_video(v: &VideoInfo) -> ProbeReport {
    ProbeReport {
        pattern: v.path.display().to_string(),
        encoding: v.encoding(),
        width: v.width,
        height: v.height,
        planes: v.layout.planes(),
        transfer: Transfer::Video.to_string(),
        frame_rate: v.frame_rate(),
        first_timecode: v.timecode.map(|t| t.to_string()),
        edge_code: None,
        first_frame: 0,
        last_frame: v.frames as i64 - 1,
        count: v.frames,
        gaps: Vec::new(),
        mixed_sizes: Vec::new(),
        unreadable: v.truncation().into_iter().collect(),
        audio: v.audio.clone(),
    }
}

impl std::fmt::Display for ProbeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let what = if self.audio.is_empty()
            && !crate::io::video::is_video_path(Path::new(&self.pattern))
        {
            "sequence:  "
        } else {
            "video:     "
        };
        writeln!(f, "{what} {}", self.pattern)?;
        writeln!(f, "format:     {}", self.encoding)?;
        writeln!(f, "size:       {}x{}", self.width, self.height)?;
        writeln!(
            f,
            "planes:     {} ({})",
            self.planes,
            if self.planes == 1 {
                "monochrome"
            } else {
                "RGB"
            }
        )?;
        writeln!(f, "transfer:   {}", self.transfer)?;
        writeln!(
            f,
            "frame rate: {}",
            self.frame_rate.map_or("-".into(), |r| format!("{r:.3}"))
        )?;
        writeln!(f, "timecode:   {} (first frame)", opt(&self.first_timecode))?;
        writeln!(f, "edge code:  {}", opt(&self.edge_code))?;
        writeln!(
            f,
            "frames:     {}-{} ({} frames)",
            self.first_frame, self.last_frame, self.count
        )?;
        if self.gaps.is_empty() {
            writeln!(f, "gaps:       none")?;
        } else {
            let missing: i64 = self.gaps.iter().map(|g| g.last - g.first + 1).sum();
            let list: Vec<String> = self.gaps.iter().map(|g| g.to_string()).collect();
            writeln!(f, "gaps:       {} missing: {}", missing, list.join(", "))?;
        }
        for (shape, n, file) in &self.mixed_sizes {
            writeln!(f, "mixed size: {n} frames are {shape} (first: {file})")?;
        }
        for e in &self.unreadable {
            writeln!(f, "unreadable: {e}")?;
        }
        if !self.audio.is_empty() {
            writeln!(f, "audio:      {}", self.audio.join(", "))?;
        }
        Ok(())
    }
}
