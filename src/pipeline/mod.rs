//! The streaming restoration run: ordered parallel decode (or one FFmpeg decoder for a video),
//! the stage chain on the CPU or the GPU, parallel encode with atomic writes (or one FFmpeg
//! encoder writing a temporary renamed on success).
//!
//! Memory is bounded whatever the reel length. Frames alive at once are at most
//! `lookahead` being decoded (2 per worker thread) + `Σ (2·radius + 1)` held by the stages'
//! windows + `2 · workers` queued for or being encoded. With the GPU backend the stage windows
//! live in device memory instead of host memory.

pub mod cancel;
pub mod chain;
pub mod ordered;
pub mod progress;
pub mod resume;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};

use crate::frame::{Frame, Transfer};
use crate::gpu::{AdapterChoice, GpuContext, GpuFrame};
use crate::io::video::{self, Colour, EncodeSpec, Ffmpeg, VideoCodec, VideoReader, VideoWriter};
use crate::io::{self, checksum, dpx, FrameInfo, Input, OutputFormat};
use crate::stages::{Stage, Window};
use chain::{Chain, Runner};
use progress::Progress;

/// What `--backend` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// A hardware GPU when there is one, otherwise the CPU.
    Auto,
    /// A GPU adapter of any kind (software ones such as llvmpipe included); fails if none.
    Gpu,
    /// The CPU reference implementation.
    Cpu,
}

/// Where the stages run.
#[derive(Clone)]
pub enum Backend {
    Cpu,
    Gpu(Arc<GpuContext>),
}

impl Backend {
    /// Open the backend `choice` asks for; the string is the one line that says which it is.
    pub fn open(choice: BackendChoice, adapter: Option<usize>) -> Result<(Backend, String)> {
        let gpu = |c| GpuContext::new(c).map(|g| Backend::Gpu(Arc::new(g)));
        match (choice, adapter) {
            (BackendChoice::Cpu, _) => Ok((Backend::Cpu, cpu_line())),
            (_, Some(i)) => {
                let b = gpu(AdapterChoice::Index(i))?;
                let line = b.describe();
                Ok((b, line))
            }
            (BackendChoice::Gpu, None) => {
                let b = gpu(AdapterChoice::Any).context("--backend gpu: no usable GPU adapter")?;
                let line = b.describe();
                Ok((b, line))
            }
            (BackendChoice::Auto, None) => match gpu(AdapterChoice::HardwareOnly) {
                Ok(b) => {
                    let line = b.describe();
                    Ok((b, line))
                }
                Err(e) => Ok((Backend::Cpu, format!("{} ({:#})", cpu_line(), e))),
            },
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Gpu(_) => "gpu",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Backend::Cpu => cpu_line(),
            Backend::Gpu(g) => format!("backend: {}", g.describe()),
        }
    }
}

fn cpu_line() -> String {
    format!("backend: CPU ({} threads)", rayon::current_num_threads())
}

/// Everything a restore run needs, resolved from the command line.
pub struct RestoreJob {
    pub input: Input,
    /// OUTPUT: a directory (frame files, or a video named after the input), or a video file
    /// path (`.mkv`, `.mov`, `.mp4`, ...).
    pub output: PathBuf,
    /// `--format`: an image format or a video codec; `None` for the input's own format and
    /// depth (FFV1 for a video input or a video file OUTPUT).
    pub format: Option<String>,
    /// `--frames A-B`: frame numbers to write (inclusive).
    pub frames: Option<(i64, i64)>,
    pub overwrite: bool,
    pub allow_gaps: bool,
    pub quiet: bool,
    /// Run each stage's CPU reference after its GPU run and fail beyond its tolerance.
    pub check_gpu: bool,
    pub stages: Vec<Box<dyn Stage>>,
    pub backend: Backend,
    /// Extra facts for the run's record (preset name and text, command line).
    pub record_extra: serde_json::Value,
    pub video: VideoOptions,
}

/// How video files are read and written.
#[derive(Clone, Debug, Default)]
pub struct VideoOptions {
    /// `--ffmpeg`: the ffmpeg program (default: `ffmpeg` on the PATH).
    pub ffmpeg: Option<PathBuf>,
    /// `--encoder-opts`: extra ffmpeg output options, after the codec's defaults.
    pub encoder_opts: Vec<String>,
}

/// What a finished run did.
#[derive(Debug, serde::Serialize)]
pub struct RunSummary {
    pub frames_written: usize,
    pub frames_read: usize,
    pub seconds: f64,
    pub output_format: String,
    pub record: PathBuf,
    /// Per-stage largest GPU/CPU difference, with `check_gpu` on a GPU backend.
    pub gpu_checks: Vec<GpuCheck>,
    /// The record as written (or, for a pass of `--resume`, as it would be).
    #[serde(skip)]
    pub record_json: serde_json::Value,
}

/// Plan: positions to read (with handles) and to write.
struct Plan {
    read: (usize, usize),
    write: (usize, usize),
}

fn plan(job: &RestoreJob, frames: Option<(i64, i64)>, numbers: &[i64]) -> Result<Plan> {
    let name = job.input.name();
    match &job.input {
        Input::Sequence(seq) => {
            let gaps = seq.gaps();
            if !gaps.is_empty() && !job.allow_gaps {
                let list: Vec<String> = gaps.iter().take(8).map(|g| g.to_string()).collect();
                bail!(
                    "{name}: frames missing from the sequence: {}{} (restore the missing scans, or pass --allow-gaps to treat the frames present as consecutive)",
                    list.join(", "),
                    if gaps.len() > 8 { ", ..." } else { "" }
                );
            }
        }
        Input::Video(v) => {
            if let Some(problem) = v.truncation() {
                bail!(problem);
            }
        }
    }
    if numbers.is_empty() {
        bail!("{name}: no frames");
    }
    let n = numbers.len();
    let write = match frames {
        None => (0, n - 1),
        Some((a, b)) => {
            if a > b {
                bail!("--frames {a}-{b}: the first frame is after the last");
            }
            let lo = numbers.partition_point(|&f| f < a);
            let hi = numbers.partition_point(|&f| f <= b);
            if lo >= hi {
                bail!(
                    "--frames {a}-{b}: no such frames in {name} (it holds {}-{})",
                    numbers[0],
                    numbers[n - 1]
                );
            }
            (lo, hi - 1)
        }
    };
    let handle = Chain::<Frame>::handle(&job.stages);
    let read = (
        write.0.saturating_sub(handle),
        (write.1 + handle).min(n - 1),
    );
    Ok(Plan { read, write })
}

/// The input as the run needs it: shape, depth, and words for the record.
struct Source {
    width: usize,
    height: usize,
    planes: usize,
    bits: u8,
    encoding: String,
    transfer: String,
    /// The first frame's header, for sequences.
    frame_info: Option<FrameInfo>,
}

/// Where restored frames go.
enum Target {
    Frames {
        dir: PathBuf,
        format: OutputFormat,
        targets: Vec<PathBuf>,
    },
    Video {
        spec: Box<EncodeSpec>,
        ff: Ffmpeg,
    },
}

impl Target {
    fn describe(&self) -> String {
        match self {
            Target::Frames { format, .. } => format.to_string(),
            Target::Video { spec, .. } => format!(
                "{} {} ({})",
                spec.codec.name(),
                spec.layout.name(),
                spec.path.display()
            ),
        }
    }
}

/// The name a video output or a sequence from a video takes after its input: a video's file
/// stem, or a sequence's name before its frame number (`scan_000001.dpx` gives `scan`).
fn input_stem(input: &Input) -> String {
    let stem = match input {
        Input::Video(v) => v.path.file_stem().map(|s| s.to_string_lossy().into_owned()),
        Input::Sequence(s) => s.frames.first().and_then(|f| {
            let stem = f.path.file_stem()?.to_string_lossy().into_owned();
            Some(
                stem.trim_end_matches(|c: char| c.is_ascii_digit() || "._- ".contains(c))
                    .to_string(),
            )
        }),
    };
    stem.filter(|s| !s.is_empty())
        .unwrap_or_else(|| "restored".into())
}

/// Decide what is written where: frame files in a directory, or one video. A video goes to
/// OUTPUT when that names a video file, else into the OUTPUT directory as
/// `<input name>[.A-B].<ext>`.
fn resolve_target(job: &RestoreJob, src: &Source, plan: &Plan, numbers: &[i64]) -> Result<Target> {
    let codec = job.format.as_deref().and_then(VideoCodec::parse);
    let to_file = video::is_video_path(&job.output) && !job.output.is_dir();
    let chunk = job
        .frames
        .map(|_| format!("{}-{}", numbers[plan.write.0], numbers[plan.write.1]));
    let is_video_input = matches!(job.input, Input::Video(_));
    if let (Some(name), None) = (&job.format, codec) {
        if to_file {
            bail!(
                "{}: --format {name} writes frame files into a directory, but OUTPUT names a video file; give a directory, or a video format ({})",
                job.output.display(),
                video::CODEC_NAMES.join(", ")
            );
        }
    }
    if codec.is_none() && !to_file && (job.format.is_some() || !is_video_input) {
        let format = match (&job.format, &src.frame_info) {
            (Some(name), _) => OutputFormat::parse(name, src.planes)?,
            (None, Some(info)) => OutputFormat::same_as(info),
            (None, None) => unreachable!("a video input without --format writes a video"),
        }
        .for_planes(src.planes);
        let targets = match &job.input {
            Input::Sequence(seq) => seq.frames[plan.write.0..=plan.write.1]
                .iter()
                .map(|f| output_path(&job.output, &f.path, format))
                .collect(),
            Input::Video(_) => {
                let stem = input_stem(&job.input);
                (plan.write.0..=plan.write.1)
                    .map(|i| {
                        job.output
                            .join(format!("{stem}_{:06}.{}", numbers[i], format.extension()))
                    })
                    .collect()
            }
        };
        return Ok(Target::Frames {
            dir: job.output.clone(),
            format,
            targets,
        });
    }
    let codec = codec.unwrap_or_else(|| {
        if to_file {
            VideoCodec::for_extension(&job.output)
        } else {
            VideoCodec::Ffv1
        }
    });
    let path = if to_file {
        match &chunk {
            // Chunks of one render keep apart: out.mkv becomes out.1001-1500.mkv.
            Some(range) => job.output.with_extension(format!(
                "{range}.{}",
                job.output.extension().unwrap_or_default().to_string_lossy()
            )),
            None => job.output.clone(),
        }
    } else {
        let range = chunk.map(|r| format!(".{r}")).unwrap_or_default();
        job.output.join(format!(
            "{}{range}.{}",
            input_stem(&job.input),
            codec.extension()
        ))
    };
    let ff = Ffmpeg::locate(job.video.ffmpeg.as_deref())?;
    // The encoder gets the chain's output size (`upscale` changes it).
    let (width, height) = crate::stages::output_size(&job.stages, src.width, src.height);
    let spec = match &job.input {
        Input::Video(v) => EncodeSpec {
            path,
            codec,
            layout: codec.layout(Some(v.layout), src.planes, src.bits),
            colour: v.colour,
            primaries: v.primaries.clone(),
            trc: v.trc.clone(),
            width,
            height,
            rate: v.rate.unwrap_or((24, 1)),
            sar: v.sar,
            timecode: v.timecode.map(|tc| {
                video::timecode_add(tc, plan.write.0 as u64, v.frame_rate().unwrap_or(24.0))
            }),
            // Audio of a whole run only: a chunk's audio could not be cut at its frames.
            audio_from: job.frames.is_none().then(|| (**v).clone()),
            extra: job.video.encoder_opts.clone(),
        },
        Input::Sequence(seq) => {
            let first = io::read_info(&seq.frames[plan.write.0].path)?;
            EncodeSpec {
                path,
                codec,
                layout: codec.layout(None, src.planes, src.bits),
                colour: Colour::BT709,
                primaries: None,
                trc: None,
                width,
                height,
                rate: video::rational_rate(first.meta.frame_rate.unwrap_or(24.0)),
                sar: None,
                timecode: first.meta.timecode,
                audio_from: None,
                extra: job.video.encoder_opts.clone(),
            }
        }
    };
    Ok(Target::Video {
        spec: Box::new(spec),
        ff,
    })
}

/// Video output checks, before anything is written: not the input, its directory creatable
/// and writable, no file of that name unless `--overwrite`. Returns the hidden temporary
/// FFmpeg writes to.
fn prepare_video_output(job: &RestoreJob, path: &Path) -> Result<PathBuf> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("{}: cannot create output directory", dir.display()))?;
    if let Input::Video(v) = &job.input {
        let same = match (v.path.canonicalize(), path.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if same {
            bail!(
                "{}: output is the input video; choose another name so the source stays untouched",
                path.display()
            );
        }
    }
    if path.is_dir() {
        bail!("{}: output video name is a directory", path.display());
    }
    if path.exists() && !job.overwrite {
        bail!(
            "{}: output video already exists; pass --overwrite to replace it",
            path.display()
        );
    }
    let tmp = io::temp_path(path);
    std::fs::write(&tmp, b"")
        .with_context(|| format!("{}: output directory is not writable", dir.display()))?;
    Ok(tmp)
}

/// Output directory checks, before anything is written: not the input, creatable, writable,
/// and not already holding frames this run would replace (unless `--overwrite`).
fn prepare_output(
    job: &RestoreJob,
    out: &Path,
    targets: &[PathBuf],
    overwrite: bool,
) -> Result<()> {
    if out.is_file() {
        bail!(
            "{}: output must be a directory, and this is a file",
            out.display()
        );
    }
    std::fs::create_dir_all(out)
        .with_context(|| format!("{}: cannot create output directory", out.display()))?;
    let out_canon = out
        .canonicalize()
        .with_context(|| format!("{}: cannot resolve", out.display()))?;
    // Every frame of a sequence shares its directory: the first one tells.
    let first = match &job.input {
        Input::Sequence(seq) => seq.frames.first(),
        Input::Video(_) => None,
    };
    if let Some(f) = first {
        let in_dir = match f.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if in_dir.canonicalize().ok().as_ref() == Some(&out_canon) {
            bail!(
                "{}: output directory is the input directory; choose another so the scans stay untouched",
                out.display()
            );
        }
    }
    let probe = out.join(".nitrate-write-test");
    std::fs::write(&probe, b"")
        .with_context(|| format!("{}: output directory is not writable", out.display()))?;
    let _ = std::fs::remove_file(&probe);
    // Temporaries of an earlier run of these frames that was killed outright; only this run's
    // own, as chunks of a render farm write other frames into the same directory at once.
    for t in targets {
        let _ = std::fs::remove_file(io::temp_path(t));
    }
    if !overwrite {
        let existing: Vec<&PathBuf> = targets.iter().filter(|p| p.exists()).collect();
        if let Some(first) = existing.first() {
            bail!(
                "{}: output directory already holds {} of the {} frames to write (first: {}); pass --overwrite to replace them",
                out.display(),
                existing.len(),
                targets.len(),
                first.file_name().unwrap_or_default().to_string_lossy()
            );
        }
    }
    Ok(())
}

/// The output path of an input frame: same stem, output format's extension.
pub fn output_path(out_dir: &Path, input: &Path, format: OutputFormat) -> PathBuf {
    let stem = input.file_stem().unwrap_or_default();
    out_dir.join(stem).with_extension(format.extension())
}

/// A restored frame on its way to a file.
enum Restored {
    Frame(Frame),
    /// 10-bit filled DPX words already packed on the GPU, with the frame's metadata.
    Dpx10Words {
        words: Vec<u32>,
        width: usize,
        height: usize,
        meta: crate::frame::FrameMeta,
    },
}

impl Restored {
    fn meta_mut(&mut self) -> &mut crate::frame::FrameMeta {
        match self {
            Restored::Frame(f) => &mut f.meta,
            Restored::Dpx10Words { meta, .. } => meta,
        }
    }

    fn encode(&self, format: OutputFormat) -> Result<Vec<u8>> {
        match (self, format) {
            (Restored::Frame(f), _) => io::encode_frame(f, format),
            (
                Restored::Dpx10Words {
                    words,
                    width,
                    height,
                    meta,
                },
                OutputFormat::Dpx(layout),
            ) => dpx::encode_filled10_words(meta, *width, *height, &layout, words),
            (Restored::Dpx10Words { .. }, other) => {
                bail!("packed DPX words cannot be written as {other}")
            }
        }
    }
}

/// A frame as read for the stage chain: decoded on the CPU, or the packed words of a 10-bit
/// DPX to be unpacked on the GPU (a third of the bytes to upload).
enum Decoded {
    Frame(Frame),
    Dpx10Words {
        words: Vec<u32>,
        header: dpx::DpxHeader,
        meta: crate::frame::FrameMeta,
    },
}

impl Decoded {
    fn read(path: &Path, packed: bool) -> Result<Decoded> {
        if !packed {
            return io::read_frame(path).map(Decoded::Frame);
        }
        let bytes =
            std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
        Ok(match dpx::filled10_words(&bytes, path)? {
            Some((header, meta, words)) => Decoded::Dpx10Words {
                words,
                header,
                meta,
            },
            None => Decoded::Frame(dpx::decode(&bytes, path)?),
        })
    }

    fn meta_mut(&mut self) -> &mut crate::frame::FrameMeta {
        match self {
            Decoded::Frame(f) => &mut f.meta,
            Decoded::Dpx10Words { meta, .. } => meta,
        }
    }

    fn shape(&self) -> (usize, usize, usize) {
        match self {
            Decoded::Frame(f) => (f.width, f.height, f.planes),
            Decoded::Dpx10Words { header, .. } => {
                (header.width, header.height, header.layout.planes)
            }
        }
    }
}

/// Encoders on their own threads: frames are sent in, written atomically, counted.
struct WriterPool {
    tx: Option<SyncSender<(PathBuf, Restored)>>,
    threads: Vec<JoinHandle<()>>,
    error: Arc<Mutex<Option<anyhow::Error>>>,
    checksums: Checksums,
}

/// SHA-256 of each file read or written, by file name, for the run's record.
type Checksums = Arc<Mutex<BTreeMap<String, String>>>;

fn note_checksum(checksums: &Checksums, path: &Path, sha256: String) {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    checksums
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name.into_owned(), sha256);
}

impl WriterPool {
    fn new(
        workers: usize,
        format: OutputFormat,
        progress: Arc<Progress>,
        journal: Option<Arc<resume::Journal>>,
    ) -> Self {
        let (tx, rx) = sync_channel::<(PathBuf, Restored)>(workers * 2);
        let rx = Arc::new(Mutex::new(rx));
        let error = Arc::new(Mutex::new(None));
        let checksums = Checksums::default();
        let threads = (0..workers)
            .map(|_| {
                let (rx, error, progress) = (rx.clone(), error.clone(), progress.clone());
                let checksums = checksums.clone();
                let journal = journal.clone();
                std::thread::spawn(move || loop {
                    let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok((path, restored)) = job else { break };
                    let written = restored
                        .encode(format)
                        .with_context(|| format!("{}: cannot encode", path.display()))
                        .and_then(|bytes| {
                            if let Some(j) = &journal {
                                j.intent(&path)?;
                            }
                            io::write_atomic(&path, &bytes)?;
                            let sum = checksum::sha256_hex(&bytes);
                            // After the rename: a line names only a whole file.
                            if let Some(j) = &journal {
                                j.note(&path, &sum)?;
                            }
                            note_checksum(&checksums, &path, sum);
                            Ok(())
                        });
                    match written {
                        Ok(()) => progress.frame_done(),
                        Err(e) => {
                            error
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get_or_insert(e);
                        }
                    }
                })
            })
            .collect();
        WriterPool {
            tx: Some(tx),
            threads,
            error,
            checksums,
        }
    }

    fn failed(&self) -> bool {
        self.error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    fn send(&self, path: PathBuf, frame: Restored) -> Result<()> {
        let tx = self.tx.as_ref().expect("pool open");
        tx.send((path, frame))
            .map_err(|_| anyhow!("frame writers stopped"))
    }

    /// Wait for every queued frame to be written; the first write error, if any.
    fn finish(mut self) -> Result<()> {
        drop(self.tx.take());
        for t in self.threads.drain(..) {
            t.join().map_err(|_| anyhow!("a frame writer panicked"))?;
        }
        match self.error.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The single encoder of a video output, on its own thread: frames arrive in order and are
/// piped to FFmpeg. Dropped or finished without commit, it leaves no file.
struct VideoSink {
    tx: Option<SyncSender<Restored>>,
    thread: Option<JoinHandle<Result<VideoWriter>>>,
    failed: Arc<AtomicBool>,
}

impl VideoSink {
    fn new(mut writer: VideoWriter, queue: usize, progress: Arc<Progress>) -> Self {
        let (tx, rx) = sync_channel::<Restored>(queue);
        let failed = Arc::new(AtomicBool::new(false));
        let flag = failed.clone();
        let thread = std::thread::spawn(move || {
            for restored in rx {
                let Restored::Frame(frame) = restored else {
                    flag.store(true, Ordering::SeqCst);
                    bail!("internal: packed DPX words sent to a video");
                };
                if let Err(e) = writer.write(&frame) {
                    flag.store(true, Ordering::SeqCst);
                    return Err(e);
                }
                progress.frame_done();
            }
            Ok(writer)
        });
        VideoSink {
            tx: Some(tx),
            thread: Some(thread),
            failed,
        }
    }

    /// Queue a frame; a stopped encoder is reported by [`VideoSink::finish`].
    fn send(&self, frame: Restored) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(frame);
        }
    }

    /// Wait for the frames queued; with `commit`, finish the file and rename it into place,
    /// otherwise stop FFmpeg and remove the temporary. The frames written.
    fn finish(mut self, commit: bool) -> Result<usize> {
        drop(self.tx.take());
        let writer = self
            .thread
            .take()
            .expect("joined once")
            .join()
            .map_err(|_| anyhow!("the video writer panicked"))??;
        let frames = writer.frames;
        if commit {
            writer.finish()?;
        }
        Ok(frames)
    }
}

impl Drop for VideoSink {
    /// Not finished (an early error): stop the encoder and remove its temporary before the
    /// run returns.
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Restored frames' destination: frame files by a pool of encoders, or one video.
enum Sink {
    Files(WriterPool, Vec<PathBuf>),
    Video(VideoSink),
}

impl Sink {
    fn failed(&self) -> bool {
        match self {
            Sink::Files(pool, _) => pool.failed(),
            Sink::Video(v) => v.failed.load(Ordering::SeqCst),
        }
    }

    /// The frame at write index `i` (0 = first frame written).
    fn send(&self, i: usize, frame: Restored) -> Result<()> {
        match self {
            Sink::Files(pool, targets) => pool.send(targets[i].clone(), frame),
            Sink::Video(v) => {
                v.send(frame);
                Ok(())
            }
        }
    }
}

/// Frames of a video from an FFmpeg child, decoded on a thread up to `lookahead` ahead. Dropping
/// it stops and reaps the child.
struct VideoFrames {
    rx: Option<Receiver<(usize, Result<Decoded>)>>,
    stopper: video::Stopper,
    thread: Option<JoinHandle<()>>,
}

impl VideoFrames {
    fn open(
        ff: &Ffmpeg,
        info: &video::VideoInfo,
        read: (usize, usize),
        lookahead: usize,
    ) -> Result<Self> {
        let whole = read.0 == 0 && read.1 + 1 == info.frames;
        let mut reader = VideoReader::open(ff, info, read.0, (!whole).then_some(read.1))?;
        let stopper = reader.stopper();
        let (tx, rx) = sync_channel(lookahead.max(1));
        let thread = std::thread::spawn(move || {
            let mut pos = read.0;
            loop {
                let item = match reader.next_frame() {
                    Ok(Some(frame)) => Ok(Decoded::Frame(frame)),
                    Ok(None) => break,
                    Err(e) => Err(e),
                };
                let stop = item.is_err();
                if tx.send((pos, item)).is_err() || stop {
                    break;
                }
                pos += 1;
            }
        });
        Ok(VideoFrames {
            rx: Some(rx),
            stopper,
            thread: Some(thread),
        })
    }
}

impl Iterator for VideoFrames {
    type Item = (usize, Result<Decoded>);
    fn next(&mut self) -> Option<Self::Item> {
        self.rx.as_ref()?.recv().ok()
    }
}

impl Drop for VideoFrames {
    fn drop(&mut self) {
        drop(self.rx.take());
        self.stopper.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct CpuRunner;

impl Runner<Frame> for CpuRunner {
    fn run(&mut self, stage: &dyn Stage, window: &Window<'_, Frame>) -> Result<Frame> {
        stage
            .run_cpu(window)
            .with_context(|| format!("stage '{}' (CPU)", stage.name()))
    }
    fn release(&mut self, _frame: Frame) {}
}

struct GpuRunner<'g> {
    gpu: &'g GpuContext,
    /// `--check-gpu`: the largest |GPU - CPU| seen per stage, when checking.
    check: Option<Vec<GpuCheck>>,
}

/// What `--check-gpu` found for one stage.
#[derive(Clone, Debug, serde::Serialize)]
pub struct GpuCheck {
    pub stage: String,
    pub max_abs_diff: f32,
    pub tolerance: f32,
    pub frames: usize,
}

impl GpuRunner<'_> {
    /// Run the CPU reference on the same window and compare; over tolerance is an error.
    fn check(
        &mut self,
        stage: &dyn Stage,
        window: &Window<'_, GpuFrame>,
        out: &GpuFrame,
    ) -> Result<()> {
        let Some(checks) = self.check.as_mut() else {
            return Ok(());
        };
        let down = |f: &GpuFrame| self.gpu.download(f);
        let before: Vec<Frame> = window
            .before
            .iter()
            .map(|f| down(f))
            .collect::<Result<_>>()?;
        let center = down(window.center)?;
        let after: Vec<Frame> = window
            .after
            .iter()
            .map(|f| down(f))
            .collect::<Result<_>>()?;
        let cpu = stage.run_cpu(&Window {
            before: before.iter().collect(),
            center: &center,
            after: after.iter().collect(),
        })?;
        let gpu = down(out)?;
        let diff = cpu
            .data
            .iter()
            .zip(&gpu.data)
            // Absolute up to 1, relative above, where an f32 ulp outgrows any absolute bound.
            .map(|(a, b)| {
                if a == b {
                    0.0
                } else {
                    (a - b).abs() / a.abs().max(1.0)
                }
            })
            .fold(
                0.0f32,
                |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) },
            );
        let entry = match checks.iter_mut().find(|c| c.stage == stage.name()) {
            Some(e) => e,
            None => {
                checks.push(GpuCheck {
                    stage: stage.name().to_string(),
                    max_abs_diff: 0.0,
                    tolerance: stage.gpu_tolerance(),
                    frames: 0,
                });
                checks.last_mut().expect("just pushed")
            }
        };
        entry.max_abs_diff = entry.max_abs_diff.max(diff);
        entry.frames += 1;
        if diff > entry.tolerance {
            bail!(
                "--check-gpu: stage '{}' GPU result differs from the CPU reference by {diff:e} (tolerance {:e})",
                stage.name(),
                entry.tolerance
            );
        }
        Ok(())
    }
}

impl Runner<GpuFrame> for GpuRunner<'_> {
    fn run(&mut self, stage: &dyn Stage, window: &Window<'_, GpuFrame>) -> Result<GpuFrame> {
        let out = stage
            .run_gpu(self.gpu, window)
            .with_context(|| format!("stage '{}' (GPU)", stage.name()))?;
        self.check(stage, window, &out)?;
        Ok(out)
    }
    fn release(&mut self, frame: GpuFrame) {
        self.gpu.recycle(frame);
    }
}

/// Run a restore job to the end (or to Ctrl-C).
pub fn restore(job: &RestoreJob) -> Result<RunSummary> {
    restore_pass(job, &Pass::whole(job))
}

/// One pass over a range of a job: the job's own range, or (`--resume`, [`resume`]) one of
/// the sub-ranges still missing from its output.
pub(crate) struct Pass {
    /// Frame numbers to write (inclusive); `None` for the whole input.
    pub frames: Option<(i64, i64)>,
    pub overwrite: bool,
    /// Write the record; otherwise it is only returned ([`RunSummary::record_json`]).
    pub write_record: bool,
}

impl Pass {
    fn whole(job: &RestoreJob) -> Self {
        Pass {
            frames: job.frames,
            overwrite: job.overwrite,
            write_record: true,
        }
    }
}

/// The output directory and the frame files (with their numbers) a run would write.
pub(crate) type FrameTargets = (PathBuf, Vec<(i64, PathBuf)>);

/// The frame files a frame-output run of `frames` would write; `None` when the output is a
/// video.
pub(crate) fn frame_targets(
    job: &RestoreJob,
    frames: Option<(i64, i64)>,
) -> Result<Option<FrameTargets>> {
    let numbers = job.input.numbers();
    let plan = plan(job, frames, &numbers)?;
    let src = source(job, &plan)?;
    Ok(match resolve_target(job, &src, &plan, &numbers)? {
        Target::Frames { dir, targets, .. } => Some((
            dir,
            (plan.write.0..=plan.write.1)
                .map(|p| numbers[p])
                .zip(targets)
                .collect(),
        )),
        Target::Video { .. } => None,
    })
}

fn source(job: &RestoreJob, plan: &Plan) -> Result<Source> {
    Ok(match &job.input {
        Input::Sequence(seq) => {
            let info = seq.check_headers(plan.read.0..=plan.read.1)?;
            Source {
                width: info.width,
                height: info.height,
                planes: info.planes,
                bits: info.meta.bit_depth,
                encoding: info.encoding(),
                transfer: info.meta.transfer.to_string(),
                frame_info: Some(info),
            }
        }
        Input::Video(v) => Source {
            width: v.width,
            height: v.height,
            planes: v.layout.planes(),
            bits: v.layout.bits,
            encoding: v.encoding(),
            transfer: Transfer::Video.to_string(),
            frame_info: None,
        },
    })
}

pub(crate) fn restore_pass(job: &RestoreJob, pass: &Pass) -> Result<RunSummary> {
    // Folders this pass creates for its output are removed again if it fails before writing
    // anything into them: a failed run leaves no trace.
    let missing: Vec<PathBuf> = job
        .output
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(Path::to_path_buf)
        .collect();
    let result = write_pass(job, pass);
    if result.is_err() {
        for dir in &missing {
            // Only an empty folder goes (deepest first); anything written stays.
            let _ = std::fs::remove_dir(dir);
        }
    }
    result
}

fn write_pass(job: &RestoreJob, pass: &Pass) -> Result<RunSummary> {
    let start = Instant::now();
    let numbers = job.input.numbers();
    let plan = plan(job, pass.frames, &numbers)?;
    let src = source(job, &plan)?;
    let target = resolve_target(job, &src, &plan, &numbers)?;
    let total = plan.write.1 - plan.write.0 + 1;
    let progress = Arc::new(Progress::new(total as u64, job.quiet));
    let workers = rayon::current_num_threads().max(1);
    let on_gpu = matches!(job.backend, Backend::Gpu(_));
    let mut packed_out = None;
    let (sink, video_temp) = match &target {
        Target::Frames {
            dir,
            format,
            targets,
        } => {
            prepare_output(job, dir, targets, pass.overwrite)?;
            // On the GPU, 10-bit filled DPX travels packed and is packed by a shader.
            if let OutputFormat::Dpx(l) = format {
                if on_gpu && l.bits == 10 && l.packing == dpx::Packing::FilledA {
                    packed_out = Some(*l);
                }
            }
            let journal = resume::Journal::open(dir, job.frames, &chain_sha256(job)?)?;
            let pool = WriterPool::new(workers, *format, progress.clone(), Some(journal));
            (Sink::Files(pool, targets.clone()), None)
        }
        Target::Video { spec, ff } => {
            let temp = prepare_video_output(job, &spec.path)?;
            cancel::register_temp(temp.clone());
            let writer = VideoWriter::create(ff, (**spec).clone(), temp.clone());
            let writer = match writer {
                Ok(w) => w,
                Err(e) => {
                    let _ = std::fs::remove_file(&temp);
                    cancel::unregister_temp(&temp);
                    return Err(e);
                }
            };
            (
                Sink::Video(VideoSink::new(writer, 2, progress.clone())),
                Some(temp),
            )
        }
    };

    let input_sums = Checksums::default();
    let decoded: Box<dyn Iterator<Item = (usize, Result<Decoded>)>> = match &job.input {
        Input::Sequence(seq) => {
            let paths: Vec<(usize, PathBuf)> = (plan.read.0..=plan.read.1)
                .map(|p| (p, seq.frames[p].path.clone()))
                .collect();
            // On the GPU, 10-bit filled DPX travels packed and is unpacked by a shader.
            let packed_in = on_gpu
                && src
                    .frame_info
                    .as_ref()
                    .and_then(|i| i.dpx_layout)
                    .is_some_and(|l| l.bits == 10 && l.packing == dpx::Packing::FilledA);
            let numbers = numbers.clone();
            let sums = input_sums.clone();
            Box::new(ordered::ordered_map(
                paths,
                workers * 2,
                move |(pos, path)| {
                    let decoded = Decoded::read(&path, packed_in).and_then(|mut d| {
                        d.meta_mut().number = Some(numbers[pos]);
                        // Read again from the page cache: the decoders take paths.
                        note_checksum(&sums, &path, checksum::sha256_file(&path)?);
                        Ok(d)
                    });
                    (pos, decoded)
                },
            ))
        }
        Input::Video(v) => {
            let ff = Ffmpeg::locate(job.video.ffmpeg.as_deref())?;
            Box::new(VideoFrames::open(&ff, v, plan.read, workers * 2)?)
        }
    };
    let shape = (src.width, src.height, src.planes);
    let mut frames_read = 0;
    let mut gpu_checks = Vec::new();
    let mut outputs = Vec::new();
    let mark = provenance(job);
    let deliver = |outputs: &mut Vec<(usize, Restored)>| -> Result<()> {
        for (q, mut frame) in outputs.drain(..) {
            if q >= plan.write.0 && q <= plan.write.1 {
                frame.meta_mut().provenance = Some(mark.clone());
                sink.send(q - plan.write.0, frame)?;
            }
        }
        Ok(())
    };
    let seq_len = numbers.len();

    let run = (|| -> Result<()> {
        match &job.backend {
            Backend::Cpu => {
                let mut chain = Chain::new(&job.stages, seq_len, plan.read.0, plan.read.1);
                let mut cpu_out = Vec::new();
                for (pos, decoded) in decoded {
                    if cancel::interrupted() || sink.failed() {
                        break;
                    }
                    let Decoded::Frame(frame) = checked(decoded, shape, &job.input, pos)? else {
                        bail!("internal: packed words reached the CPU backend");
                    };
                    frames_read += 1;
                    chain.push(pos, frame, &mut CpuRunner, &mut cpu_out)?;
                    outputs.extend(cpu_out.drain(..).map(|(q, f)| (q, Restored::Frame(f))));
                    deliver(&mut outputs)?;
                }
            }
            Backend::Gpu(gpu) => {
                let mut chain = Chain::new(&job.stages, seq_len, plan.read.0, plan.read.1);
                let mut gpu_out: Vec<(usize, GpuFrame)> = Vec::new();
                let mut runner = GpuRunner {
                    gpu,
                    check: job.check_gpu.then(Vec::new),
                };
                for (pos, decoded) in decoded {
                    if cancel::interrupted() || sink.failed() {
                        break;
                    }
                    let on_device = match checked(decoded, shape, &job.input, pos)? {
                        Decoded::Frame(frame) => gpu.upload(&frame)?,
                        Decoded::Dpx10Words {
                            words,
                            header,
                            meta,
                        } => gpu.upload_dpx10(
                            &words,
                            header.layout.big_endian,
                            header.width,
                            header.height,
                            header.layout.planes,
                            meta,
                        )?,
                    };
                    frames_read += 1;
                    let pushed = chain.push(pos, on_device, &mut runner, &mut gpu_out);
                    gpu_checks = runner.check.clone().unwrap_or_default();
                    pushed?;
                    for (q, f) in gpu_out.drain(..) {
                        if q < plan.write.0 || q > plan.write.1 {
                            gpu.recycle(f); // handle frames are context only
                            continue;
                        }
                        let host = match packed_out {
                            Some(l) => Restored::Dpx10Words {
                                words: gpu.download_dpx10(&f, l.big_endian)?,
                                width: f.width,
                                height: f.height,
                                meta: f.meta.clone(),
                            },
                            None => Restored::Frame(gpu.download(&f)?),
                        };
                        gpu.recycle(f);
                        outputs.push((q, host));
                    }
                    deliver(&mut outputs)?;
                }
            }
        }
        Ok(())
    })();
    let mut output_sums = Checksums::default();
    let frames_written = match sink {
        // Frames already handed to the writers are finished whatever happened above.
        Sink::Files(pool, targets) => {
            output_sums = pool.checksums.clone();
            let written = pool.finish();
            progress.finish();
            run?;
            written?;
            targets.iter().filter(|p| p.exists()).count()
        }
        // A video is whole or absent: committed only when every frame went in.
        Sink::Video(sink) => {
            let complete = run.is_ok() && !cancel::interrupted() && frames_read > 0;
            let written = sink.finish(complete);
            progress.finish();
            if let Some(temp) = &video_temp {
                let _ = std::fs::remove_file(temp);
                cancel::unregister_temp(temp);
            }
            run?;
            let written = written?;
            if !cancel::interrupted() && written != total {
                bail!(
                    "{}: {written} of {total} frames were encoded; no video written",
                    job.input.name()
                );
            }
            written
        }
    };
    if cancel::interrupted() {
        return Err(match target {
            Target::Frames { .. } => cancel::Interrupted::Frames,
            Target::Video { .. } => cancel::Interrupted::Nothing,
        }
        .into());
    }
    let seconds = start.elapsed().as_secs_f64();
    let sums = |c: Checksums| std::mem::take(&mut *c.lock().unwrap_or_else(|e| e.into_inner()));
    let facts = RunFacts {
        seconds,
        gpu_checks: &gpu_checks,
        input_sums: sums(input_sums),
        output_sums: sums(output_sums),
    };
    let (record, record_json) = write_record(job, pass, &plan, &numbers, &src, &target, &facts)?;
    Ok(RunSummary {
        frames_written,
        frames_read,
        seconds,
        output_format: target.describe(),
        record,
        gpu_checks,
        record_json,
    })
}

/// What the run learnt, for its record.
struct RunFacts<'a> {
    seconds: f64,
    gpu_checks: &'a [GpuCheck],
    /// SHA-256 by file name of the frames read and written.
    input_sums: BTreeMap<String, String>,
    output_sums: BTreeMap<String, String>,
}

/// The mark written into restored files' headers: tool, version, chain and preset.
fn provenance(job: &RestoreJob) -> String {
    let chain: Vec<&str> = job.stages.iter().map(|s| s.name()).collect();
    let preset = job.record_extra["preset"]
        .as_str()
        .map(|p| format!(" (preset {p})"))
        .unwrap_or_default();
    format!(
        "nitrate {}: {}{preset}",
        env!("CARGO_PKG_VERSION"),
        if chain.is_empty() {
            "no stages".to_string()
        } else {
            chain.join(", ")
        }
    )
}

/// `[{"name", "sha256"}]` for files, their checksums looked up by file name.
fn files_json<'p>(
    paths: impl Iterator<Item = &'p Path>,
    sums: &BTreeMap<String, String>,
) -> serde_json::Value {
    paths
        .map(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            serde_json::json!({ "name": name, "sha256": sums.get(name.as_ref()) })
        })
        .collect()
}

/// A decoded frame, checked against the input's shape (a header can lie).
fn checked(
    frame: Result<Decoded>,
    shape: (usize, usize, usize),
    input: &Input,
    pos: usize,
) -> Result<Decoded> {
    let frame = frame?;
    let got = frame.shape();
    if got != shape {
        bail!(
            "{}: mixed frame sizes: decoded {}x{} with {} planes but the sequence is {}x{} with {} planes",
            input.frame_label(pos),
            got.0,
            got.1,
            got.2,
            shape.0,
            shape.1,
            shape.2
        );
    }
    Ok(frame)
}

/// The run's record beside the output: `restoration.json`, or `restoration.A-B.json` for a
/// `--frames` chunk so chunks of one reel do not overwrite each other's; for a video output,
/// `<video name>.restoration.json` beside it.
fn write_record(
    job: &RestoreJob,
    pass: &Pass,
    plan: &Plan,
    numbers: &[i64],
    src: &Source,
    target: &Target,
    facts: &RunFacts,
) -> Result<(PathBuf, serde_json::Value)> {
    let (input_sums, output_sums) = (&facts.input_sums, &facts.output_sums);
    let stages: Vec<serde_json::Value> = job
        .stages
        .iter()
        .map(|s| {
            serde_json::json!({
                "stage": s.name(),
                "backend": job.backend.name(),
                "temporal_radius": s.temporal_radius(),
                "params": s.params_json(),
                "report": s.report(),
            })
        })
        .collect();
    let written = [numbers[plan.write.0], numbers[plan.write.1]];
    let mut input = serde_json::json!({
        "encoding": src.encoding,
        "size": [src.width, src.height],
        "planes": src.planes,
        "transfer": src.transfer,
        "frames_read": [numbers[plan.read.0], numbers[plan.read.1]],
    });
    match &job.input {
        Input::Sequence(seq) => {
            input["pattern"] = seq.pattern.clone().into();
            input["files"] = files_json(
                (plan.read.0..=plan.read.1).map(|p| seq.frames[p].path.as_path()),
                input_sums,
            );
        }
        Input::Video(v) => {
            input["video"] = v.path.display().to_string().into();
            input["sha256"] = checksum::sha256_file(&v.path)?.into();
            input["frame_rate"] = v.rate.map(|(n, d)| format!("{n}/{d}")).into();
            input["timecode"] = v.timecode.map(|t| t.to_string()).into();
            input["frames"] = v.frames.into();
            input["audio"] = v.audio.clone().into();
        }
    }
    let (output, path) = match target {
        Target::Frames {
            dir,
            format,
            targets,
        } => {
            let name = resume::record_name(pass.frames.map(|_| (written[0], written[1])));
            (
                serde_json::json!({
                    "directory": dir.display().to_string(),
                    "format": format.to_string(),
                    "frames": written,
                    "files": files_json(targets.iter().map(PathBuf::as_path), output_sums),
                }),
                dir.join(name),
            )
        }
        Target::Video { spec, .. } => {
            let (audio, dropped) = spec.audio_plan();
            (
                serde_json::json!({
                    "video": spec.path.display().to_string(),
                    "sha256": checksum::sha256_file(&spec.path)?,
                    "format": spec.codec.name(),
                    "pixel_format": spec.layout.name(),
                    "matrix": matches!(spec.layout.family, video::Family::Yuv { .. }).then_some(spec.colour.matrix),
                    "frame_rate": format!("{}/{}", spec.rate.0, spec.rate.1),
                    "timecode": spec.timecode.map(|t| t.to_string()),
                    "frames": written,
                    "audio_copied": audio,
                    "audio_not_copied": dropped,
                    "encoder_options": spec.codec.args().into_iter().map(String::from).chain(spec.extra.iter().cloned()).collect::<Vec<_>>(),
                }),
                spec.path.with_extension("restoration.json"),
            )
        }
    };
    let repairing = repairing_stages(job);
    let repairs_path = (!repairing.is_empty()).then(|| beside_record(&path, "repairs", "jsonl"));
    let report_path = beside_record(&path, "report", "html");
    let mut output = output;
    if let Some(p) = &repairs_path {
        output["repairs"] = p.display().to_string().into();
    }
    output["report"] = report_path.display().to_string().into();
    let record = serde_json::json!({
        "tool": "nitrate",
        "version": env!("CARGO_PKG_VERSION"),
        "mark": provenance(job),
        "chain_sha256": chain_sha256(job)?,
        "backend": job.backend.describe(),
        "input": input,
        "output": output,
        "stages": stages,
        "run": job.record_extra,
        "seconds": facts.seconds,
        "gpu_checks": facts.gpu_checks,
    });
    if pass.write_record {
        if let Some(p) = &repairs_path {
            write_repairs(p, &repairing)?;
        }
        let text = serde_json::to_string_pretty(&record)?;
        io::write_atomic(&report_path, crate::report::html(&record).as_bytes())?;
        io::write_atomic(&path, text.as_bytes())?;
        if let Target::Frames { dir, .. } = target {
            // The record now vouches for the frames.
            resume::Journal::remove(dir, job.frames);
        }
    }
    Ok((path, record))
}

/// A sidecar named like the record at `record`: `restoration.json` gives `KIND.EXT`,
/// `restoration.A-B.json` `KIND.A-B.EXT`, `NAME.restoration.json` `NAME.KIND.EXT`.
pub fn beside_record(record: &Path, kind: &str, ext: &str) -> PathBuf {
    let name = record
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".json").unwrap_or(&name);
    let named = match stem.rfind("restoration") {
        Some(i) => format!(
            "{}{kind}{}.{ext}",
            &stem[..i],
            &stem[i + "restoration".len()..]
        ),
        None => format!("{stem}.{kind}.{ext}"),
    };
    record.with_file_name(named)
}

/// The chain's stages that repair defects one by one (and log each repair).
pub(crate) fn repairing_stages(job: &RestoreJob) -> Vec<&dyn Stage> {
    job.stages
        .iter()
        .filter(|s| crate::stages::MASK_STAGES.contains(&s.name()))
        .map(|s| s.as_ref())
        .collect()
}

/// The repairs file: every repair of the run's repairing stages, one JSON object a line
/// ([`crate::stages::repairs::Repair`]), by frame, then in chain order, then by id.
pub(crate) fn write_repairs(path: &Path, stages: &[&dyn Stage]) -> Result<()> {
    let mut all: Vec<(i64, usize, crate::stages::repairs::Repair)> = Vec::new();
    for (k, s) in stages.iter().enumerate() {
        all.extend(s.repairs().into_iter().map(|r| (r.frame, k, r)));
    }
    // Ids count regions from 1 in raster order: sorted stably, they keep that order.
    all.sort_by_key(|(frame, k, _)| (*frame, *k));
    let mut text = String::new();
    for (_, _, r) in &all {
        text.push_str(&serde_json::to_string(r)?);
        text.push('\n');
    }
    io::write_atomic(path, text.as_bytes())
}

/// SHA-256 of the chain as resolved (names and every parameter), so runs and chunks with the
/// same settings can be matched whatever the preset file looked like.
pub fn chain_sha256(job: &RestoreJob) -> Result<String> {
    chain_sha256_of(&job.stages)
}

/// Parameters that name where sidecars go or come from, not how frames are restored: left
/// out of the chain's hash, so every chunk of a reel (each with its own track file) has one.
const SIDECAR_KEYS: &[&str] = &["track_out", "track_in", "emit_masks"];

pub fn chain_sha256_of(stages: &[Box<dyn Stage>]) -> Result<String> {
    let resolved: Vec<serde_json::Value> = stages
        .iter()
        .map(|s| {
            let mut params = s.params_json();
            if let Some(map) = params.as_object_mut() {
                map.retain(|k, _| !SIDECAR_KEYS.contains(&k.as_str()));
                // No veto is no parameter: chains from before vetoes existed keep their hash.
                if map
                    .get("veto")
                    .is_some_and(|v| v.as_array().is_some_and(Vec::is_empty))
                {
                    map.remove("veto");
                }
            }
            serde_json::json!({ "stage": s.name(), "params": params })
        })
        .collect();
    let resolved_text = serde_json::to_string(&resolved)?;
    Ok(checksum::sha256_hex(resolved_text.as_bytes()))
}
