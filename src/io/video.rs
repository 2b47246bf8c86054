//! Video files in and out through an `ffmpeg` child process.
//!
//! Frames cross the pipe as raw planar samples at the source's own bit depth, in the pixel
//! format the stream already has whenever it is planar gray, GBR or YUV (8, 10, 12, 16-bit):
//! FFmpeg then converts nothing, so no scaler rounds, clips or resamples the samples. nitrate
//! does the YUV <-> RGB conversion itself in `f32`, with an exact inverse: a 10-bit (or 16-bit)
//! YUV frame carried through RGB and back gives the same code values. Subsampled chroma is
//! interpolated between co-sited samples and taken back from the co-sited positions, which is
//! exact too. Other pixel formats (packed RGB, NV12, alpha) are converted by FFmpeg to the
//! nearest planar one.
//!
//! On output nitrate hands the encoder exactly the pixel format it encodes, so FFmpeg only
//! encodes and muxes. Audio streams of a video input are copied unchanged.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{anyhow, bail, Context, Result};
use rayon::prelude::*;

use crate::frame::{max_code, Frame, FrameMeta, SampleKind, Timecode, Transfer};

/// File extensions read and written as video containers.
pub const VIDEO_EXTENSIONS: &[&str] = &[
    "mkv", "mov", "mp4", "m4v", "mxf", "avi", "nut", "webm", "ts", "mts", "m2ts", "mpg", "mpeg",
    "y4m",
];

/// Whether a path names a video container, by its extension (case-insensitive).
pub fn is_video_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The `ffmpeg` and `ffprobe` programs to run.
#[derive(Clone, Debug)]
pub struct Ffmpeg {
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
}

impl Ffmpeg {
    /// `ffmpeg` from `--ffmpeg PATH` or the PATH; `ffprobe` beside it. Fails with the path tried
    /// and how to install FFmpeg when it cannot be run.
    pub fn locate(explicit: Option<&Path>) -> Result<Ffmpeg> {
        let ffmpeg = explicit.map_or_else(|| PathBuf::from("ffmpeg"), Path::to_path_buf);
        let ffprobe = match ffmpeg.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join("ffprobe"),
            _ => PathBuf::from("ffprobe"),
        };
        for program in [&ffmpeg, &ffprobe] {
            let ran = Command::new(program)
                .arg("-version")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            match ran {
                Ok(s) if s.success() => {}
                Ok(s) => bail!("{}: '-version' failed ({s})", program.display()),
                Err(e) => bail!(
                    "cannot run {} ({e}): video files need FFmpeg; install it (Debian/Ubuntu: apt-get install ffmpeg; macOS: brew install ffmpeg) or pass --ffmpeg /path/to/ffmpeg (ffprobe is looked for beside it)",
                    if explicit.is_some() || program == &ffprobe {
                        program.display().to_string()
                    } else {
                        format!("'{}' (looked for on PATH)", program.display())
                    }
                ),
            }
        }
        Ok(Ffmpeg { ffmpeg, ffprobe })
    }

    /// A command for one of the two programs, in its own process group so a Ctrl-C at the
    /// terminal reaches nitrate alone; nitrate then stops the child itself.
    fn command(program: &Path) -> Command {
        let mut cmd = Command::new(program);
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        cmd
    }
}

/// How a planar pixel format arranges its samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Gray,
    /// Planar RGB, stored by FFmpeg in the order G, B, R.
    Gbr,
    /// Y, Cb, Cr with chroma subsampled by `2^sx` across and `2^sy` down.
    Yuv {
        sx: u8,
        sy: u8,
    },
}

/// A planar pixel format nitrate exchanges with FFmpeg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixLayout {
    pub family: Family,
    pub bits: u8,
}

impl PixLayout {
    /// FFmpeg's name, e.g. `yuv422p10le`, `gbrp16le`, `gray`.
    pub fn name(&self) -> String {
        let depth = match self.bits {
            8 => String::new(),
            b => format!("{b}le"),
        };
        match self.family {
            Family::Gray => format!("gray{depth}"),
            Family::Gbr => format!("gbrp{depth}"),
            Family::Yuv { sx, sy } => {
                let sub = match (sx, sy) {
                    (0, 0) => "444",
                    (1, 0) => "422",
                    _ => "420",
                };
                format!("yuv{sub}p{depth}")
            }
        }
    }

    /// An exact planar format name, with whether it is full-range (`yuvj*`).
    pub fn parse(name: &str) -> Option<(PixLayout, bool)> {
        let (name, full) = match name.strip_prefix("yuvj") {
            Some(rest) => (format!("yuv{rest}"), true),
            None => (name.to_string(), false),
        };
        let (base, bits) = match name.strip_suffix("le") {
            Some(b) => {
                let digits = b.len() - b.chars().rev().take_while(|c| c.is_ascii_digit()).count();
                let bits: u8 = b[digits..].parse().ok()?;
                (b[..digits].to_string(), bits)
            }
            None => (name.clone(), 8),
        };
        if ![8, 10, 12, 16].contains(&bits) {
            return None;
        }
        let family = match base.as_str() {
            "gray" => Family::Gray,
            "gbrp" => Family::Gbr,
            "yuv444p" => Family::Yuv { sx: 0, sy: 0 },
            "yuv422p" => Family::Yuv { sx: 1, sy: 0 },
            "yuv420p" => Family::Yuv { sx: 1, sy: 1 },
            _ => return None,
        };
        Some((PixLayout { family, bits }, full))
    }

    /// The planar format to ask FFmpeg for, given the stream's own: itself when planar, else
    /// the nearest planar one (FFmpeg converts); `bits_hint` is the stream's raw sample depth.
    pub fn for_source(pix_fmt: &str, bits_hint: Option<u8>) -> (PixLayout, bool) {
        if let Some(found) = PixLayout::parse(pix_fmt) {
            return found;
        }
        let digits: String = pix_fmt.chars().filter(|c| c.is_ascii_digit()).collect();
        let named = [16u8, 12, 10]
            .into_iter()
            .find(|b| pix_fmt.contains(&format!("p{b}")) || pix_fmt.contains(&format!("{b}le")));
        let wide = matches!(pix_fmt, "rgb48le" | "rgb48be" | "bgr48le" | "bgr48be")
            || pix_fmt.contains("64")
            || pix_fmt.starts_with("p01")
            || pix_fmt.starts_with("p21")
            || pix_fmt.starts_with("p41");
        let raw = bits_hint.or(named).unwrap_or(if wide { 16 } else { 8 });
        let bits = match raw {
            0..=8 => 8,
            9..=10 => 10,
            11..=12 => 12,
            _ => 16,
        };
        let family = if pix_fmt.starts_with("gray") || pix_fmt.starts_with("ya") {
            Family::Gray
        } else if pix_fmt.contains("rgb")
            || pix_fmt.contains("bgr")
            || pix_fmt.contains("gbr")
            || pix_fmt == "pal8"
        {
            Family::Gbr
        } else if pix_fmt.starts_with("nv12")
            || pix_fmt.starts_with("nv21")
            || pix_fmt.starts_with("p01")
            || digits.contains("420")
        {
            Family::Yuv { sx: 1, sy: 1 }
        } else if digits.contains("422")
            || pix_fmt.starts_with("p21")
            || pix_fmt.contains("yuyv")
            || pix_fmt.contains("uyvy")
            || pix_fmt.starts_with("nv16")
        {
            Family::Yuv { sx: 1, sy: 0 }
        } else {
            Family::Yuv { sx: 0, sy: 0 }
        };
        (PixLayout { family, bits }, pix_fmt.starts_with("yuvj"))
    }

    pub fn planes(&self) -> usize {
        if self.family == Family::Gray {
            1
        } else {
            3
        }
    }

    fn bytes_per_sample(&self) -> usize {
        if self.bits > 8 {
            2
        } else {
            1
        }
    }

    /// Sizes of the planes as FFmpeg packs them, `(width, height)` each.
    fn plane_sizes(&self, w: usize, h: usize) -> Vec<(usize, usize)> {
        match self.family {
            Family::Gray => vec![(w, h)],
            Family::Gbr => vec![(w, h); 3],
            Family::Yuv { sx, sy } => {
                let c = (w.div_ceil(1 << sx), h.div_ceil(1 << sy));
                vec![(w, h), c, c]
            }
        }
    }

    /// Bytes of one raw frame.
    pub fn frame_bytes(&self, w: usize, h: usize) -> usize {
        self.plane_sizes(w, h)
            .iter()
            .map(|(a, b)| a * b)
            .sum::<usize>()
            * self.bytes_per_sample()
    }

    pub fn describe(&self) -> String {
        match self.family {
            Family::Gray => format!("{}-bit gray", self.bits),
            Family::Gbr => format!("{}-bit RGB", self.bits),
            Family::Yuv { sx, sy } => format!(
                "{}-bit YUV {}",
                self.bits,
                match (sx, sy) {
                    (0, 0) => "4:4:4",
                    (1, 0) => "4:2:2",
                    _ => "4:2:0",
                }
            ),
        }
    }
}

/// The YUV matrix and range a stream uses (ignored for gray and RGB).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Colour {
    /// Luma weights of red and blue.
    pub kr: f32,
    pub kb: f32,
    pub full_range: bool,
    /// FFmpeg's name of the matrix, for tagging the output.
    pub matrix: &'static str,
}

impl Colour {
    pub const BT709: Colour = Colour {
        kr: 0.2126,
        kb: 0.0722,
        full_range: false,
        matrix: "bt709",
    };

    /// From ffprobe's `color_space` and `color_range`; untagged streams are taken as BT.709
    /// above 720 lines and BT.601 below, as players do.
    pub fn from_tags(space: Option<&str>, range: Option<&str>, height: usize) -> Colour {
        let (kr, kb, matrix) = match space.unwrap_or("") {
            "bt709" => (0.2126, 0.0722, "bt709"),
            "bt470bg" | "smpte170m" => (0.299, 0.114, "smpte170m"),
            "bt2020nc" | "bt2020c" => (0.2627, 0.0593, "bt2020nc"),
            "smpte240m" => (0.212, 0.087, "smpte240m"),
            _ if height >= 720 => (0.2126, 0.0722, "bt709"),
            _ => (0.299, 0.114, "smpte170m"),
        };
        Colour {
            kr,
            kb,
            full_range: matches!(range, Some("pc") | Some("jpeg")),
            matrix,
        }
    }

    /// `(offset, scale)` of luma and `(centre, scale)` of chroma codes at `bits`.
    fn code_scales(&self, bits: u8) -> ([f32; 2], [f32; 2]) {
        if self.full_range {
            let max = max_code(bits) as f32;
            ([0.0, max], [(1u32 << (bits - 1)) as f32, max])
        } else {
            let s = (1u32 << (bits - 8)) as f32;
            ([16.0 * s, 219.0 * s], [128.0 * s, 224.0 * s])
        }
    }
}

/// What ffprobe says about a video file.
#[derive(Clone, Debug)]
pub struct VideoInfo {
    pub path: PathBuf,
    /// Container (FFmpeg's demuxer names), codec and pixel format of the video stream.
    pub container: String,
    pub codec: String,
    pub pix_fmt: String,
    pub width: usize,
    pub height: usize,
    /// The planar format frames are piped in.
    pub layout: PixLayout,
    pub colour: Colour,
    /// Colour tags passed through to a video output: primaries, transfer.
    pub primaries: Option<String>,
    pub trc: Option<String>,
    /// Frame rate as FFmpeg's rational, e.g. `24000/1001`.
    pub rate: Option<(u32, u32)>,
    /// Sample (pixel) aspect ratio, when not square: anamorphic scans and upscales.
    pub sar: Option<(u32, u32)>,
    /// Frames in the file: the container's count, else its packets counted.
    pub frames: usize,
    /// Frames the container announces (its count, or its duration times the rate); more than
    /// `frames` when the file is truncated.
    pub announced: Option<usize>,
    pub timecode: Option<Timecode>,
    /// Audio streams: codec names.
    pub audio: Vec<String>,
}

impl VideoInfo {
    pub fn frame_rate(&self) -> Option<f64> {
        self.rate.map(|(n, d)| n as f64 / d as f64)
    }

    /// "FFV1 yuv422p10le (10-bit YUV 4:2:2, bt709 limited) in matroska".
    pub fn encoding(&self) -> String {
        let colour = match self.layout.family {
            Family::Yuv { .. } => format!(
                ", {} {}",
                self.colour.matrix,
                if self.colour.full_range {
                    "full"
                } else {
                    "limited"
                }
            ),
            _ => String::new(),
        };
        format!(
            "{} {} ({}{colour}) in {}",
            self.codec.to_ascii_uppercase(),
            self.pix_fmt,
            self.layout.describe(),
            self.container
        )
    }

    /// The metadata every frame of this video carries; the pipeline sets number and timecode.
    pub fn meta(&self) -> FrameMeta {
        FrameMeta {
            bit_depth: self.layout.bits,
            sample: SampleKind::Integer,
            transfer: Transfer::Video,
            frame_rate: self.frame_rate(),
            timecode: self.timecode,
            ..FrameMeta::default()
        }
    }
}

fn json_str<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(|x| x.as_str())
        .filter(|s| !s.is_empty())
}

/// A tag by name, case-insensitive (Matroska writes `TIMECODE`, QuickTime `timecode`).
fn tag<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    v.get("tags")?
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .and_then(|(_, v)| v.as_str())
}

fn parse_rate(text: &str) -> Option<(u32, u32)> {
    let (n, d) = text.split_once('/')?;
    let (n, d): (u32, u32) = (n.parse().ok()?, d.parse().ok()?);
    (n > 0 && d > 0).then_some((n, d))
}

/// `HH:MM:SS:FF` (or `;` before the frames for drop-frame) into a timecode.
pub fn parse_timecode(text: &str) -> Option<Timecode> {
    let parts: Vec<u8> = text
        .split([':', ';', '.'])
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    match parts[..] {
        [h, m, s, f] if h < 24 && m < 60 && s < 60 && f < 100 => {
            Some(Timecode::from_hmsf(h, m, s, f))
        }
        _ => None,
    }
}

/// `timecode` advanced by `n` frames at `fps` frames per second (non-drop-frame counting).
pub fn timecode_add(tc: Timecode, n: u64, fps: f64) -> Timecode {
    let b = tc.0.to_be_bytes();
    let d = |v: u8| ((v >> 4) * 10 + (v & 0xF)) as u64;
    let fps = (fps.round() as u64).max(1);
    let total = ((d(b[0]) * 60 + d(b[1])) * 60 + d(b[2])) * fps + d(b[3]) + n;
    let f = total % fps;
    let s = total / fps;
    Timecode::from_hmsf(
        ((s / 3600) % 24) as u8,
        ((s / 60) % 60) as u8,
        (s % 60) as u8,
        f as u8,
    )
}

/// `HH:MM:SS.fraction` (Matroska's DURATION tag) or plain seconds into seconds.
fn parse_duration(text: &str) -> Option<f64> {
    let mut secs = 0.0;
    for part in text.split(':') {
        secs = secs * 60.0 + part.trim().parse::<f64>().ok()?;
    }
    (secs > 0.0).then_some(secs)
}

/// Read a video file's first video stream with ffprobe. Errors name the file.
pub fn probe(ff: &Ffmpeg, path: &Path) -> Result<VideoInfo> {
    if !path.is_file() {
        bail!("{}: no such file", path.display());
    }
    let out = Ffmpeg::command(&ff.ffprobe)
        .args([
            "-v",
            "error",
            // Packets are counted in the same pass (Matroska has no frame count): demuxing only.
            "-count_packets",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", ff.ffprobe.display()))?;
    if !out.status.success() {
        bail!(
            "{}: not a video file FFmpeg can read: {}",
            path.display(),
            summarise(&String::from_utf8_lossy(&out.stderr))
        );
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{}: unreadable ffprobe output", path.display()))?;
    let streams = json["streams"].as_array().cloned().unwrap_or_default();
    let format = &json["format"];
    let video = streams
        .iter()
        .find(|s| {
            json_str(s, "codec_type") == Some("video")
                // Cover art and thumbnails are attached pictures, not the programme.
                && s["disposition"]["attached_pic"].as_i64() != Some(1)
        })
        .ok_or_else(|| {
            let kinds: Vec<&str> = streams
                .iter()
                .filter_map(|s| json_str(s, "codec_type"))
                .collect();
            anyhow!(
                "{}: no video stream in this file (streams: {})",
                path.display(),
                if kinds.is_empty() {
                    "none".to_string()
                } else {
                    kinds.join(", ")
                }
            )
        })?;
    let width = video["width"].as_u64().unwrap_or(0) as usize;
    let height = video["height"].as_u64().unwrap_or(0) as usize;
    if width == 0 || height == 0 {
        bail!("{}: video stream has no frame size", path.display());
    }
    let pix_fmt = json_str(video, "pix_fmt")
        .ok_or_else(|| {
            anyhow!(
                "{}: video stream has no pixel format (FFmpeg cannot decode its codec?)",
                path.display()
            )
        })?
        .to_string();
    let bits_hint = json_str(video, "bits_per_raw_sample").and_then(|b| b.parse().ok());
    let (layout, full) = PixLayout::for_source(&pix_fmt, bits_hint);
    let mut colour = Colour::from_tags(
        json_str(video, "color_space"),
        json_str(video, "color_range"),
        height,
    );
    colour.full_range |= full;
    let rate = json_str(video, "avg_frame_rate")
        .and_then(parse_rate)
        .or_else(|| json_str(video, "r_frame_rate").and_then(parse_rate));
    // The video stream's own duration only: the container's may be the audio's, longer.
    let duration = json_str(video, "duration")
        .and_then(parse_duration)
        .or_else(|| tag(video, "DURATION").and_then(parse_duration));
    let nb_frames = json_str(video, "nb_frames")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n > 0);
    let by_duration = rate.and_then(|(n, d)| {
        Some((duration? * n as f64 / d as f64).round() as usize).filter(|&n| n > 0)
    });
    let tagged = tag(video, "NUMBER_OF_FRAMES").and_then(|n| n.trim().parse().ok());
    let announced = nb_frames.or(tagged).or(by_duration);
    let packets = json_str(video, "nb_read_packets").and_then(|n| n.parse::<usize>().ok());
    let frames = nb_frames
        .or(packets)
        .ok_or_else(|| anyhow!("{}: ffprobe cannot count the video frames", path.display()))?;
    let timecode = tag(video, "timecode")
        .or_else(|| tag(format, "timecode"))
        .or_else(|| {
            streams
                .iter()
                .find(|s| json_str(s, "codec_tag_string") == Some("tmcd"))
                .and_then(|s| tag(s, "timecode"))
        })
        .and_then(parse_timecode);
    let audio = streams
        .iter()
        .filter(|s| json_str(s, "codec_type") == Some("audio"))
        .map(|s| json_str(s, "codec_name").unwrap_or("unknown").to_string())
        .collect();
    Ok(VideoInfo {
        path: path.to_path_buf(),
        container: json_str(format, "format_name").unwrap_or("?").to_string(),
        codec: json_str(video, "codec_name").unwrap_or("?").to_string(),
        pix_fmt,
        width,
        height,
        layout,
        colour,
        sar: json_str(video, "sample_aspect_ratio")
            .and_then(|r| parse_rate(&r.replace(':', "/")))
            .filter(|(n, d)| n != d),
        primaries: json_str(video, "color_primaries").map(str::to_string),
        trc: json_str(video, "color_transfer").map(str::to_string),
        rate,
        frames,
        announced,
        timecode,
        audio,
    })
}

impl VideoInfo {
    /// A file holding fewer frames than it announces is truncated: the message says so.
    pub fn truncation(&self) -> Option<String> {
        let announced = self.announced?;
        // Durations round; a frame either way is not damage.
        (self.frames + 1 < announced).then(|| {
            format!(
                "{}: the file announces {announced} frames but holds {}: it is truncated or damaged",
                self.path.display(),
                self.frames
            )
        })
    }
}

/// The last lines of FFmpeg's error output, joined, for messages.
fn summarise(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return "no message from FFmpeg".to_string();
    }
    lines[lines.len().saturating_sub(4)..].join(" / ")
}

/// Collects a child's stderr on a thread (so the child never blocks on a full pipe), keeping
/// the last lines.
struct StderrTail {
    lines: Arc<Mutex<VecDeque<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl StderrTail {
    fn new(child: &mut Child) -> StderrTail {
        let lines = Arc::new(Mutex::new(VecDeque::new()));
        let thread = child.stderr.take().map(|err| {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(|l| l.ok()) {
                    let mut l = lines.lock().unwrap_or_else(|e| e.into_inner());
                    if l.len() == 20 {
                        l.pop_front();
                    }
                    l.push_back(line);
                }
            })
        });
        StderrTail { lines, thread }
    }

    /// Did the child, once it has exited, print a line that reports an error? FFmpeg runs at
    /// `-loglevel error`, but some of what it says there is not fatal; these words are.
    fn reported_error(&mut self) -> bool {
        self.said_lines().iter().any(|line| {
            let line = line.to_ascii_lowercase();
            [
                "error",
                "no space left",
                "i/o",
                "failed",
                "ended prematurely",
            ]
            .iter()
            .any(|w| line.contains(w))
        })
    }

    /// Everything the child said, once it has exited.
    fn text(&mut self) -> String {
        summarise(&self.said_lines().join("\n"))
    }

    /// The last lines the child said, once it has exited (waits for the reader to finish).
    fn said_lines(&mut self) -> Vec<String> {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let l = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        l.iter().cloned().collect()
    }
}

/// Kill and reap a child (idempotent: an exited child is only reaped).
fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Frames of a video, decoded by an `ffmpeg` child and read from its stdout in order.
pub struct VideoReader {
    child: Arc<Mutex<Child>>,
    stdout: ChildStdout,
    stderr: StderrTail,
    info: VideoInfo,
    /// Index of the next frame in the file, and the last one wanted.
    next: usize,
    last: Option<usize>,
    buf: Vec<u8>,
    done: bool,
}

impl VideoReader {
    /// Start decoding frames `first..=last` (file order, from 0; `last` None: to the end).
    /// Frames before `first` are decoded and skipped by FFmpeg, so the index is exact.
    pub fn open(ff: &Ffmpeg, info: &VideoInfo, first: usize, last: Option<usize>) -> Result<Self> {
        let mut cmd = Ffmpeg::command(&ff.ffmpeg);
        cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-i"])
            .arg(&info.path)
            .args(["-map", "0:v:0", "-fps_mode", "passthrough"]);
        if first > 0 || last.is_some() {
            let mut trim = format!("trim=start_frame={first}");
            if let Some(l) = last {
                trim.push_str(&format!(":end_frame={}", l + 1));
            }
            cmd.args(["-vf", &trim]);
        }
        cmd.args(["-f", "rawvideo", "-pix_fmt", &info.layout.name(), "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot run {}", ff.ffmpeg.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = StderrTail::new(&mut child);
        Ok(VideoReader {
            child: Arc::new(Mutex::new(child)),
            stdout,
            stderr,
            buf: vec![0; info.layout.frame_bytes(info.width, info.height)],
            info: info.clone(),
            next: first,
            last,
            done: false,
        })
    }

    /// The index after the last frame this reader should deliver.
    fn expected_end(&self) -> usize {
        self.last
            .map_or(self.info.frames, |l| (l + 1).min(self.info.frames))
    }

    /// The next frame, `None` at the end. A stream that ends early (fewer frames than the file
    /// announces, a frame cut short) or an FFmpeg failure is an error naming the file.
    pub fn next_frame(&mut self) -> Result<Option<Frame>> {
        if self.done {
            return Ok(None);
        }
        let got = read_full(&mut self.stdout, &mut self.buf).with_context(|| {
            format!(
                "{}: cannot read frames from ffmpeg",
                self.info.path.display()
            )
        })?;
        let path = self.info.path.display().to_string();
        if got == self.buf.len() {
            if self.next >= self.expected_end() {
                bail!(
                    "{path}: ffmpeg delivers more frames than the {} counted",
                    self.info.frames
                );
            }
            let mut meta = self.info.meta();
            meta.number = Some(self.next as i64);
            if let (Some(tc), Some(fps)) = (meta.timecode, meta.frame_rate) {
                meta.timecode = Some(timecode_add(tc, self.next as u64, fps));
            }
            let frame = unpack(&self.buf, &self.info, meta);
            self.next += 1;
            return Ok(Some(frame));
        }
        self.done = true;
        let status = self.child.lock().unwrap_or_else(|e| e.into_inner()).wait();
        let said = self.stderr.text();
        let failed = !status.as_ref().is_ok_and(|s| s.success());
        if got > 0 {
            bail!("{path}: frame {} is cut short ({got} of {} bytes): the file is truncated or damaged (ffmpeg: {said})", self.next, self.buf.len());
        }
        if failed {
            bail!(
                "{path}: ffmpeg failed while decoding frame {}: {said}",
                self.next
            );
        }
        let end = self.expected_end();
        if self.next < end {
            bail!(
                "{path}: decoding stopped after {} of the {} frames: the file is truncated or damaged{}",
                self.next,
                self.info.frames,
                if said.starts_with("no message") {
                    String::new()
                } else {
                    format!(" (ffmpeg: {said})")
                }
            );
        }
        Ok(None)
    }
}

impl VideoReader {
    /// A handle that stops the FFmpeg child from another thread (which ends a blocked read).
    pub fn stopper(&self) -> Stopper {
        Stopper(self.child.clone())
    }
}

/// Stops a reader's FFmpeg child; see [`VideoReader::stopper`].
#[derive(Clone)]
pub struct Stopper(Arc<Mutex<Child>>);

impl Stopper {
    pub fn stop(&self) {
        stop(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

impl Drop for VideoReader {
    fn drop(&mut self) {
        self.stopper().stop();
    }
}

/// Read until `buf` is full or the stream ends; the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Little-endian samples of one plane as code values.
fn sample(bytes: &[u8], i: usize, wide: bool) -> u16 {
    if wide {
        u16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]])
    } else {
        bytes[i] as u16
    }
}

/// Split raw frame bytes into planes.
fn split_planes<'a>(bytes: &'a [u8], layout: &PixLayout, w: usize, h: usize) -> Vec<&'a [u8]> {
    let bps = layout.bytes_per_sample();
    let mut rest = bytes;
    layout
        .plane_sizes(w, h)
        .into_iter()
        .map(|(a, b)| {
            let (p, r) = rest.split_at(a * b * bps);
            rest = r;
            p
        })
        .collect()
}

/// Lookup tables from code to normalised value: luma (or any full-scale plane) and chroma.
fn tables(layout: &PixLayout, colour: &Colour) -> (Vec<f32>, Vec<f32>) {
    let n = 1usize << layout.bits;
    match layout.family {
        Family::Yuv { .. } => {
            let ([yo, ys], [co, cs]) = colour.code_scales(layout.bits);
            (
                (0..n).map(|c| (c as f32 - yo) / ys).collect(),
                (0..n).map(|c| (c as f32 - co) / cs).collect(),
            )
        }
        _ => {
            let max = max_code(layout.bits) as f32;
            ((0..n).map(|c| c as f32 / max).collect(), Vec::new())
        }
    }
}

/// Raw FFmpeg frame bytes into a frame of normalised RGB (or gray) code values.
pub fn unpack(bytes: &[u8], info: &VideoInfo, meta: FrameMeta) -> Frame {
    let (w, h, layout) = (info.width, info.height, info.layout);
    let wide = layout.bits > 8;
    let planes = split_planes(bytes, &layout, w, h);
    let (lut, clut) = tables(&layout, &info.colour);
    let mut frame = Frame::new(w, h, layout.planes(), meta);
    let n = w * h;
    match layout.family {
        Family::Gray | Family::Gbr => {
            // FFmpeg's planar RGB is G, B, R.
            let order: &[usize] = if layout.family == Family::Gray {
                &[0]
            } else {
                &[2, 0, 1]
            };
            for (p, dst) in frame.data.chunks_mut(n).enumerate() {
                let src = planes[order[p]];
                let bps = layout.bytes_per_sample();
                dst.par_chunks_mut(w)
                    .zip(src.par_chunks(w * bps))
                    .for_each_init(Vec::new, |codes, (row, bytes)| {
                        row_codes(bytes, wide, codes);
                        for (v, &c) in row.iter_mut().zip(codes.iter()) {
                            *v = lut[c as usize];
                        }
                    });
            }
        }
        Family::Yuv { sx, sy } => {
            let Colour { kr, kb, .. } = info.colour;
            let kg = 1.0 - kr - kb;
            let cw = w.div_ceil(1 << sx);
            let ch = h.div_ceil(1 << sy);
            let (yp, up, vp) = (planes[0], planes[1], planes[2]);
            let (r, rest) = frame.data.split_at_mut(n);
            let (g, b) = rest.split_at_mut(n);
            // One row of chroma at full width: co-sited samples as they are, the samples
            // between them interpolated (first down, then across), so co-sited values stay exact.
            let upsample =
                |plane: &[u8], c0: usize, c1: usize, col: &mut Vec<f32>, out: &mut [f32]| {
                    col.clear();
                    col.extend((0..cw).map(|cx| {
                        let a = clut[sample(plane, c0 * cw + cx, wide) as usize];
                        if c1 == c0 {
                            a
                        } else {
                            (a + clut[sample(plane, c1 * cw + cx, wide) as usize]) * 0.5
                        }
                    }));
                    if sx == 0 {
                        out.copy_from_slice(col);
                        return;
                    }
                    for (x, o) in out.iter_mut().enumerate() {
                        let i = x >> 1;
                        *o = if x & 1 == 0 {
                            col[i]
                        } else {
                            (col[i] + col[(i + 1).min(cw - 1)]) * 0.5
                        };
                    }
                };
            r.par_chunks_mut(w)
                .zip(g.par_chunks_mut(w))
                .zip(b.par_chunks_mut(w))
                .enumerate()
                .for_each_init(
                    || (Vec::new(), vec![0f32; w], vec![0f32; w], Vec::new()),
                    |(col, cbs, crs, codes), (y, ((rr, gr), br))| {
                        // Chroma rows: the co-sited one, and its neighbour below for odd rows.
                        let c0 = y >> sy;
                        let c1 = if sy == 1 && y & 1 == 1 {
                            (c0 + 1).min(ch - 1)
                        } else {
                            c0
                        };
                        upsample(up, c0, c1, col, cbs);
                        upsample(vp, c0, c1, col, crs);
                        let bps = 1 + wide as usize;
                        row_codes(&yp[y * w * bps..(y + 1) * w * bps], wide, codes);
                        let (kcr, kcb) = (2.0 * (1.0 - kr), 2.0 * (1.0 - kb));
                        let out = rr.iter_mut().zip(gr.iter_mut()).zip(br.iter_mut());
                        let inp = codes.iter().zip(cbs.iter()).zip(crs.iter());
                        for (((r, g), b), ((&c, &cb), &cr)) in out.zip(inp) {
                            let yv = lut[c as usize];
                            let rv = yv + kcr * cr;
                            let bv = yv + kcb * cb;
                            *r = rv;
                            *b = bv;
                            *g = (yv - kr * rv - kb * bv) / kg;
                        }
                    },
                );
        }
    }
    frame
}

/// Write one code value little-endian.
fn put(dst: &mut [u8], i: usize, v: u32, wide: bool) {
    if wide {
        dst[2 * i..2 * i + 2].copy_from_slice(&(v as u16).to_le_bytes());
    } else {
        dst[i] = v as u8;
    }
}

/// A code value, rounded and clamped to `0..=max`.
fn to_code(x: f32, max: u32) -> u32 {
    // Rounds half up, as `round` does for the non-negative values kept; NaN gives 0.
    if x > 0.0 {
        ((x + 0.5) as u32).min(max)
    } else {
        0
    }
}

/// Code values into one row of little-endian samples.
fn put_row(row: &mut [u8], wide: bool, codes: impl Iterator<Item = u32>) {
    if wide {
        for (o, c) in row.chunks_exact_mut(2).zip(codes) {
            o.copy_from_slice(&(c as u16).to_le_bytes());
        }
    } else {
        for (o, c) in row.iter_mut().zip(codes) {
            *o = c as u8;
        }
    }
}

/// One row of little-endian samples into code values.
fn row_codes(row: &[u8], wide: bool, out: &mut Vec<u16>) {
    out.clear();
    if wide {
        out.extend(
            row.chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]])),
        );
    } else {
        out.extend(row.iter().map(|&b| b as u16));
    }
}

/// A frame into raw FFmpeg frame bytes of `layout` (a gray frame becomes R = G = B).
pub fn pack(frame: &Frame, layout: &PixLayout, colour: &Colour, out: &mut Vec<u8>) {
    let (w, h) = (frame.width, frame.height);
    let wide = layout.bits > 8;
    let bps = layout.bytes_per_sample();
    out.clear();
    out.resize(layout.frame_bytes(w, h), 0);
    let plane = |p: usize| frame.plane(p.min(frame.planes - 1));
    let max = max_code(layout.bits);
    let sizes = layout.plane_sizes(w, h);
    let mut dsts: Vec<&mut [u8]> = Vec::new();
    let mut rest = out.as_mut_slice();
    for (a, b) in &sizes {
        let (p, r) = rest.split_at_mut(a * b * bps);
        dsts.push(p);
        rest = r;
    }
    match layout.family {
        Family::Gray | Family::Gbr => {
            let gray = layout.family == Family::Gray;
            for (i, dst) in dsts.into_iter().enumerate() {
                // G, B, R from R, G, B; gray from a colour frame takes the mean of the three.
                let src: Vec<&[f32]> = if gray && frame.planes == 3 {
                    vec![plane(0), plane(1), plane(2)]
                } else {
                    vec![plane(if gray { 0 } else { [1, 2, 0][i] })]
                };
                let scale = max as f32 / src.len() as f32;
                dst.par_chunks_mut(w * bps)
                    .enumerate()
                    .for_each(|(y, row)| {
                        let k = y * w;
                        let codes = (k..k + w)
                            .map(|k| to_code(src.iter().map(|s| s[k]).sum::<f32>() * scale, max));
                        put_row(row, wide, codes);
                    });
            }
        }
        Family::Yuv { sx, sy } => {
            let Colour { kr, kb, .. } = *colour;
            let kg = 1.0 - kr - kb;
            let ([yo, ys], [co, cs]) = colour.code_scales(layout.bits);
            let code = |v: f32, o: f32, s: f32| to_code(o + s * v, max);
            let (r, g, b) = (plane(0), plane(1), plane(2));
            let mut it = dsts.into_iter();
            let (yd, ud, vd) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
            yd.par_chunks_mut(w * bps).enumerate().for_each(|(y, row)| {
                let rows = y * w..(y + 1) * w;
                let (r, g, b) = (&r[rows.clone()], &g[rows.clone()], &b[rows]);
                let codes = r
                    .iter()
                    .zip(g)
                    .zip(b)
                    .map(|((r, g), b)| code(kr * r + kg * g + kb * b, yo, ys));
                put_row(row, wide, codes);
            });
            // Chroma from the co-sited pixel: the inverse of the interpolation on input.
            let cw = w.div_ceil(1 << sx);
            ud.par_chunks_mut(cw * bps)
                .zip(vd.par_chunks_mut(cw * bps))
                .enumerate()
                .for_each(|(cy, (urow, vrow))| {
                    let y = cy << sy;
                    for cx in 0..cw {
                        let k = y * w + (cx << sx);
                        let yv = kr * r[k] + kg * g[k] + kb * b[k];
                        let cb = (b[k] - yv) / (2.0 * (1.0 - kb));
                        let cr = (r[k] - yv) / (2.0 * (1.0 - kr));
                        put(urow, cx, code(cb, co, cs), wide);
                        put(vrow, cx, code(cr, co, cs), wide);
                    }
                });
        }
    }
}

/// Output codecs by `--format` name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoCodec {
    Ffv1,
    Prores4444,
    Prores422Hq,
    Dnxhr,
    H264,
    H265,
}

/// `--format` names of the video codecs.
pub const CODEC_NAMES: &[&str] = &[
    "ffv1",
    "prores",
    "prores4444",
    "prores422hq",
    "dnxhr",
    "h264",
    "h265",
];

impl VideoCodec {
    pub fn parse(name: &str) -> Option<VideoCodec> {
        Some(match name.to_ascii_lowercase().as_str() {
            "ffv1" => VideoCodec::Ffv1,
            "prores" | "prores422hq" => VideoCodec::Prores422Hq,
            "prores4444" => VideoCodec::Prores4444,
            "dnxhr" => VideoCodec::Dnxhr,
            "h264" => VideoCodec::H264,
            "h265" | "hevc" => VideoCodec::H265,
            _ => return None,
        })
    }

    /// The codec a video file name implies when `--format` is not given.
    pub fn for_extension(path: &Path) -> VideoCodec {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref()
        {
            Some("mov") => VideoCodec::Prores422Hq,
            Some("mxf") => VideoCodec::Dnxhr,
            Some("mp4" | "m4v") => VideoCodec::H264,
            _ => VideoCodec::Ffv1,
        }
    }

    /// The container a directory output gets.
    pub fn extension(&self) -> &'static str {
        match self {
            VideoCodec::Ffv1 => "mkv",
            VideoCodec::Prores4444 | VideoCodec::Prores422Hq | VideoCodec::Dnxhr => "mov",
            VideoCodec::H264 | VideoCodec::H265 => "mp4",
        }
    }

    /// The pixel format to encode: FFV1 keeps the source's planar format (a video's own, or
    /// gray/RGB at the frames' depth rounded up to 8, 10, 12 or 16 bits); the others take what
    /// their profile defines.
    pub fn layout(&self, source: Option<PixLayout>, planes: usize, bits: u8) -> PixLayout {
        let yuv = |sx, sy, bits| PixLayout {
            family: Family::Yuv { sx, sy },
            bits,
        };
        match self {
            VideoCodec::Ffv1 => source.unwrap_or(PixLayout {
                family: if planes == 1 {
                    Family::Gray
                } else {
                    Family::Gbr
                },
                bits: match bits {
                    0..=8 => 8,
                    9..=10 => 10,
                    11..=12 => 12,
                    _ => 16,
                },
            }),
            VideoCodec::Prores4444 => yuv(0, 0, 10),
            VideoCodec::Prores422Hq | VideoCodec::Dnxhr => yuv(1, 0, 10),
            VideoCodec::H264 => yuv(1, 1, 8),
            VideoCodec::H265 => yuv(1, 1, 10),
        }
    }

    /// Encoder and its default options.
    pub fn args(&self) -> Vec<&'static str> {
        match self {
            // Level 3 with slices: multithreaded, with per-slice CRCs that make damage findable.
            VideoCodec::Ffv1 => vec![
                "-c:v",
                "ffv1",
                "-level",
                "3",
                "-g",
                "1",
                "-slices",
                "16",
                "-slicecrc",
                "1",
            ],
            VideoCodec::Prores4444 => {
                vec!["-c:v", "prores_ks", "-profile:v", "4444", "-vendor", "apl0"]
            }
            VideoCodec::Prores422Hq => {
                vec!["-c:v", "prores_ks", "-profile:v", "hq", "-vendor", "apl0"]
            }
            VideoCodec::Dnxhr => vec!["-c:v", "dnxhd", "-profile:v", "dnxhr_hqx"],
            VideoCodec::H264 => vec!["-c:v", "libx264", "-crf", "18", "-preset", "medium"],
            VideoCodec::H265 => vec![
                "-c:v", "libx265", "-crf", "20", "-preset", "medium", "-tag:v", "hvc1",
            ],
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            VideoCodec::Ffv1 => "FFV1",
            VideoCodec::Prores4444 => "ProRes 4444",
            VideoCodec::Prores422Hq => "ProRes 422 HQ",
            VideoCodec::Dnxhr => "DNxHR HQX",
            VideoCodec::H264 => "H.264",
            VideoCodec::H265 => "H.265",
        }
    }
}

/// FFmpeg's muxer for a container extension.
fn muxer(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .as_deref()
    {
        Some("mov") => "mov",
        Some("mp4" | "m4v") => "mp4",
        Some("mxf") => "mxf",
        Some("avi") => "avi",
        Some("nut") => "nut",
        Some("webm") => "webm",
        Some("ts" | "mts" | "m2ts") => "mpegts",
        Some("mpg" | "mpeg") => "mpeg",
        Some("y4m") => "yuv4mpegpipe",
        _ => "matroska",
    }
}

/// Audio codecs MP4 can hold; Matroska and QuickTime hold any FFmpeg copies.
fn container_takes_audio(muxer: &str, codec: &str) -> bool {
    match muxer {
        "matroska" | "mov" | "nut" => true,
        "mp4" => matches!(
            codec,
            "aac" | "mp3" | "ac3" | "eac3" | "alac" | "flac" | "opus"
        ),
        _ => false,
    }
}

/// What a video output needs besides frames.
#[derive(Clone, Debug)]
pub struct EncodeSpec {
    pub path: PathBuf,
    pub codec: VideoCodec,
    pub layout: PixLayout,
    pub colour: Colour,
    pub primaries: Option<String>,
    pub trc: Option<String>,
    pub width: usize,
    pub height: usize,
    pub rate: (u32, u32),
    pub sar: Option<(u32, u32)>,
    pub timecode: Option<Timecode>,
    /// Video whose audio streams are copied (a whole-file run of a video input).
    pub audio_from: Option<VideoInfo>,
    /// Extra encoder options (`--encoder-opts`), appended after the defaults so they win.
    pub extra: Vec<String>,
}

impl EncodeSpec {
    /// The audio codecs that will be copied, and those the container cannot hold.
    pub fn audio_plan(&self) -> (Vec<String>, Vec<String>) {
        let mux = muxer(&self.path);
        self.audio_from
            .as_ref()
            .map(|v| {
                v.audio
                    .iter()
                    .cloned()
                    .partition(|c| container_takes_audio(mux, c))
            })
            .unwrap_or_default()
    }
}

/// A frame rate as a rational: NTSC rates as n·1000/1001, others to a thousandth.
pub fn rational_rate(fps: f64) -> (u32, u32) {
    for base in [24u32, 30, 48, 60, 120] {
        if (fps - base as f64 * 1000.0 / 1001.0).abs() < 1e-3 {
            return (base * 1000, 1001);
        }
    }
    if (fps - fps.round()).abs() < 1e-6 {
        return (fps.round() as u32, 1);
    }
    ((fps * 1000.0).round() as u32, 1000)
}

/// A video being written by an `ffmpeg` child from frames piped to its stdin, into a hidden
/// temporary that [`VideoWriter::finish`] renames into place. Dropped unfinished (failure,
/// Ctrl-C), it kills the child and removes the temporary: no partial file is left.
pub struct VideoWriter {
    ff: Ffmpeg,
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: StderrTail,
    spec: EncodeSpec,
    temp: PathBuf,
    buf: Vec<u8>,
    pub frames: usize,
    finished: bool,
}

impl VideoWriter {
    pub fn create(ff: &Ffmpeg, spec: EncodeSpec, temp: PathBuf) -> Result<VideoWriter> {
        let mux = muxer(&spec.path);
        let mut cmd = Ffmpeg::command(&ff.ffmpeg);
        cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"]);
        cmd.args(["-f", "rawvideo", "-pix_fmt", &spec.layout.name()])
            .args(["-s", &format!("{}x{}", spec.width, spec.height)])
            .args(["-framerate", &format!("{}/{}", spec.rate.0, spec.rate.1)]);
        // Colour tags on the raw input travel with the frames to every encoder and muxer
        // (as output options some encoders, ProRes among them, drop them).
        if let Family::Yuv { .. } = spec.layout.family {
            cmd.args(["-colorspace", spec.colour.matrix]).args([
                "-color_range",
                if spec.colour.full_range { "pc" } else { "tv" },
            ]);
            if let Some(p) = &spec.primaries {
                cmd.args(["-color_primaries", p]);
            }
            if let Some(t) = &spec.trc {
                cmd.args(["-color_trc", t]);
            }
        }
        cmd.args(["-i", "-"]);
        let (copied, _) = spec.audio_plan();
        if let (Some(src), false) = (&spec.audio_from, copied.is_empty()) {
            cmd.arg("-i").arg(&src.path);
        }
        cmd.args(["-map", "0:v"]);
        if !copied.is_empty() {
            cmd.args(["-map", "1:a", "-c:a", "copy"]);
        }
        cmd.args(spec.codec.args());
        if let Some((n, d)) = spec.sar {
            // Metadata only: the pixels are not resampled. `max` keeps the exact ratio (the
            // filter would otherwise approximate it within 100/100).
            cmd.args(["-vf", &format!("setsar=sar={n}/{d}:max={}", n.max(d))]);
        }
        if let Some(tc) = spec.timecode {
            cmd.args(["-timecode", &tc.to_string()]);
        }
        cmd.args(&spec.extra);
        cmd.args(["-f", mux])
            .arg(&temp)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot run {}", ff.ffmpeg.display()))?;
        let stdin = child.stdin.take();
        let stderr = StderrTail::new(&mut child);
        Ok(VideoWriter {
            ff: ff.clone(),
            child,
            stdin,
            stderr,
            spec,
            temp,
            buf: Vec::new(),
            frames: 0,
            finished: false,
        })
    }

    /// The error when FFmpeg stopped taking frames: its own words.
    fn encoder_failed(&mut self) -> anyhow::Error {
        self.stdin.take();
        let _ = self.child.wait();
        anyhow!(
            "{}: ffmpeg cannot encode {} ({}): {}",
            self.spec.path.display(),
            self.spec.codec.name(),
            self.spec.layout.name(),
            self.stderr.text()
        )
    }

    pub fn write(&mut self, frame: &Frame) -> Result<()> {
        if (frame.width, frame.height) != (self.spec.width, self.spec.height) {
            bail!(
                "{}: frame {}x{} does not match the video's {}x{}",
                self.spec.path.display(),
                frame.width,
                frame.height,
                self.spec.width,
                self.spec.height
            );
        }
        let mut buf = std::mem::take(&mut self.buf);
        pack(frame, &self.spec.layout, &self.spec.colour, &mut buf);
        let written = self.stdin.as_mut().map_or(Ok(()), |s| s.write_all(&buf));
        self.buf = buf;
        if written.is_err() {
            return Err(self.encoder_failed());
        }
        self.frames += 1;
        Ok(())
    }

    /// Close the pipe, wait for FFmpeg to finish the file, check it and rename it into place.
    /// FFmpeg may exit 0 though it could not write the file's end (a full disk while writing
    /// the trailer): what it said is checked for errors, and the file is read back, which must
    /// hold every frame written.
    pub fn finish(mut self) -> Result<PathBuf> {
        self.stdin.take();
        let status = self.child.wait().context("cannot wait for ffmpeg")?;
        let said = self.stderr.text();
        let path = self.spec.path.display();
        if !status.success() {
            bail!(
                "{path}: ffmpeg cannot encode {} ({}, {status}): {said}",
                self.spec.codec.name(),
                self.spec.layout.name()
            );
        }
        if self.stderr.reported_error() {
            bail!("{path}: ffmpeg reported an error while writing the file, which is not kept: {said}");
        }
        let back = probe(&self.ff, &self.temp).with_context(|| {
            format!("{path}: the file ffmpeg wrote cannot be read back, and is not kept")
        })?;
        if back.frames != self.frames || back.truncation().is_some() {
            bail!(
                "{path}: ffmpeg was given {} frames but the file holds {}: it is incomplete \
                 (a full disk?), and is not kept",
                self.frames,
                back.frames
            );
        }
        super::sync_file(&self.temp)
            .and_then(|_| std::fs::rename(&self.temp, &self.spec.path))
            .with_context(|| format!("{}: cannot write", self.spec.path.display()))?;
        self.finished = true;
        super::sync_parent(&self.spec.path).with_context(|| {
            format!(
                "{}: written, but its folder cannot be flushed to disk",
                self.spec.path.display()
            )
        })?;
        Ok(self.spec.path.clone())
    }
}

impl Drop for VideoWriter {
    fn drop(&mut self) {
        if !self.finished {
            self.stdin.take();
            stop(&mut self.child);
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::quantise;

    fn info(layout: PixLayout, colour: Colour, w: usize, h: usize) -> VideoInfo {
        VideoInfo {
            path: PathBuf::from("t.mkv"),
            container: "matroska".into(),
            codec: "ffv1".into(),
            pix_fmt: layout.name(),
            width: w,
            height: h,
            layout,
            colour,
            primaries: None,
            trc: None,
            rate: Some((24, 1)),
            sar: None,
            frames: 1,
            announced: None,
            timecode: None,
            audio: vec![],
        }
    }

    /// Raw bytes of `layout` filled with a pseudo-random walk through every code value.
    fn raw(layout: PixLayout, w: usize, h: usize, seed: u64) -> Vec<u8> {
        let mut s = seed | 1;
        let samples = layout.frame_bytes(w, h) / layout.bytes_per_sample();
        let max = max_code(layout.bits) as u64;
        let mut out = vec![0u8; layout.frame_bytes(w, h)];
        for i in 0..samples {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            put(&mut out, i, (s % (max + 1)) as u32, layout.bits > 8);
        }
        out
    }

    /// YUV (any subsampling, both ranges, every matrix) through RGB f32 and back gives the
    /// same code values, at 8, 10, 12 and 16 bits.
    #[test]
    fn yuv_through_rgb_f32_is_exact() {
        for bits in [8u8, 10, 12, 16] {
            for (sx, sy) in [(0u8, 0u8), (1, 0), (1, 1)] {
                for space in ["bt709", "smpte170m", "bt2020nc"] {
                    for range in ["tv", "pc"] {
                        let layout = PixLayout {
                            family: Family::Yuv { sx, sy },
                            bits,
                        };
                        let colour = Colour::from_tags(Some(space), Some(range), 1080);
                        let (w, h) = (67, 33); // odd sizes: edge chroma samples
                        let bytes = raw(layout, w, h, bits as u64 * 31 + sx as u64);
                        let vi = info(layout, colour, w, h);
                        let frame = unpack(&bytes, &vi, FrameMeta::default());
                        let mut back = Vec::new();
                        pack(&frame, &layout, &colour, &mut back);
                        assert!(
                            back == bytes,
                            "{} {space} {range}: round trip changed code values",
                            layout.name()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn gray_and_rgb_round_trip_exactly() {
        for bits in [8u8, 10, 12, 16] {
            for family in [Family::Gray, Family::Gbr] {
                let layout = PixLayout { family, bits };
                let bytes = raw(layout, 20, 9, bits as u64);
                let vi = info(layout, Colour::BT709, 20, 9);
                let frame = unpack(&bytes, &vi, FrameMeta::default());
                let mut back = Vec::new();
                pack(&frame, &layout, &Colour::BT709, &mut back);
                assert!(
                    back == bytes,
                    "{}: round trip changed code values",
                    layout.name()
                );
            }
        }
    }

    #[test]
    fn planar_rgb_is_reordered_from_gbr() {
        let layout = PixLayout {
            family: Family::Gbr,
            bits: 8,
        };
        let vi = info(layout, Colour::BT709, 1, 1);
        let f = unpack(&[10, 20, 30], &vi, FrameMeta::default()); // G, B, R
        let codes: Vec<u32> = f.data.iter().map(|v| quantise(*v, 255)).collect();
        assert_eq!(codes, vec![30, 10, 20]);
    }

    #[test]
    fn pixel_format_names() {
        for name in [
            "gray",
            "gray10le",
            "gbrp12le",
            "gbrp16le",
            "yuv420p",
            "yuv422p10le",
            "yuv444p16le",
        ] {
            let (l, full) = PixLayout::parse(name).unwrap();
            assert_eq!(l.name(), name);
            assert!(!full);
        }
        assert_eq!(
            PixLayout::parse("yuvj420p").unwrap(),
            (
                PixLayout {
                    family: Family::Yuv { sx: 1, sy: 1 },
                    bits: 8
                },
                true
            )
        );
        assert_eq!(PixLayout::for_source("rgb48le", None).0.name(), "gbrp16le");
        assert_eq!(PixLayout::for_source("rgb24", None).0.name(), "gbrp");
        assert_eq!(
            PixLayout::for_source("p010le", None).0.name(),
            "yuv420p10le"
        );
        assert_eq!(PixLayout::for_source("nv12", None).0.name(), "yuv420p");
        assert_eq!(
            PixLayout::for_source("yuva444p10le", None).0.name(),
            "yuv444p10le"
        );
        assert_eq!(
            PixLayout::for_source("gray12be", Some(12)).0.name(),
            "gray12le"
        );
    }

    #[test]
    fn timecodes_parse_and_advance() {
        let tc = parse_timecode("01:00:59:23").unwrap();
        assert_eq!(tc.to_string(), "01:00:59:23");
        assert_eq!(timecode_add(tc, 1, 24.0).to_string(), "01:01:00:00");
        assert_eq!(timecode_add(tc, 25, 24.0).to_string(), "01:01:01:00");
        assert!(parse_timecode("bogus").is_none());
        assert_eq!(rational_rate(24000.0 / 1001.0), (24000, 1001));
        assert_eq!(rational_rate(25.0), (25, 1));
    }
}
