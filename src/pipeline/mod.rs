//! The streaming restoration run: ordered parallel decode, the stage chain on the CPU or the GPU,
//! parallel encode with atomic writes.
//!
//! Memory is bounded whatever the reel length. Frames alive at once are at most
//! `lookahead` being decoded (2 per worker thread) + `Σ (2·radius + 1)` held by the stages'
//! windows + `2 · workers` queued for or being encoded. With the GPU backend the stage windows
//! live in device memory instead of host memory.

pub mod cancel;
pub mod chain;
pub mod ordered;
pub mod progress;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};

use crate::frame::Frame;
use crate::gpu::{AdapterChoice, GpuContext, GpuFrame};
use crate::io::sequence::Sequence;
use crate::io::{self, dpx, FrameInfo, OutputFormat};
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
    pub sequence: Sequence,
    pub output_dir: PathBuf,
    /// `--format`, or `None` for the input's own format and depth.
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
}

/// Plan: positions to read (with handles) and to write.
struct Plan {
    read: (usize, usize),
    write: (usize, usize),
}

fn plan(job: &RestoreJob) -> Result<Plan> {
    let seq = &job.sequence;
    if seq.is_empty() {
        bail!("{}: no frames", seq.pattern);
    }
    let gaps = seq.gaps();
    if !gaps.is_empty() && !job.allow_gaps {
        let list: Vec<String> = gaps.iter().take(8).map(|g| g.to_string()).collect();
        bail!(
            "{}: frames missing from the sequence: {}{} (restore the missing scans, or pass --allow-gaps to treat the frames present as consecutive)",
            seq.pattern,
            list.join(", "),
            if gaps.len() > 8 { ", ..." } else { "" }
        );
    }
    let n = seq.len();
    let write = match job.frames {
        None => (0, n - 1),
        Some((a, b)) => {
            if a > b {
                bail!("--frames {a}-{b}: the first frame is after the last");
            }
            let lo = seq.frames.partition_point(|f| f.number < a);
            let hi = seq.frames.partition_point(|f| f.number <= b);
            if lo >= hi {
                bail!(
                    "--frames {a}-{b}: no such frames in {} (it holds {}-{})",
                    seq.pattern,
                    seq.first_number(),
                    seq.last_number()
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

/// Output directory checks, before anything is written: not the input, creatable, writable,
/// and not already holding frames this run would replace (unless `--overwrite`).
fn prepare_output(job: &RestoreJob, targets: &[PathBuf]) -> Result<()> {
    let out = &job.output_dir;
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
    if let Some(f) = job.sequence.frames.first() {
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
    // Temporaries of an earlier run that was killed outright.
    if let Ok(entries) = std::fs::read_dir(out) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().ends_with(io::TEMP_SUFFIX) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    if !job.overwrite {
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
}

impl WriterPool {
    fn new(workers: usize, format: OutputFormat, progress: Arc<Progress>) -> Self {
        let (tx, rx) = sync_channel::<(PathBuf, Restored)>(workers * 2);
        let rx = Arc::new(Mutex::new(rx));
        let error = Arc::new(Mutex::new(None));
        let threads = (0..workers)
            .map(|_| {
                let (rx, error, progress) = (rx.clone(), error.clone(), progress.clone());
                std::thread::spawn(move || loop {
                    let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok((path, restored)) = job else { break };
                    let written = restored
                        .encode(format)
                        .with_context(|| format!("{}: cannot encode", path.display()))
                        .and_then(|bytes| io::write_atomic(&path, &bytes));
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
    let start = Instant::now();
    let plan = plan(job)?;
    let seq = &job.sequence;
    let info: FrameInfo = seq.check_headers(plan.read.0..=plan.read.1)?;
    let format = match &job.format {
        Some(name) => OutputFormat::parse(name, info.planes)?,
        None => OutputFormat::same_as(&info),
    }
    .for_planes(info.planes);
    let writes = &seq.frames[plan.write.0..=plan.write.1];
    let targets: Vec<PathBuf> = writes
        .iter()
        .map(|f| output_path(&job.output_dir, &f.path, format))
        .collect();
    prepare_output(job, &targets)?;

    let total = targets.len();
    let progress = Arc::new(Progress::new(total as u64, job.quiet));
    let workers = rayon::current_num_threads().max(1);
    let writer = WriterPool::new(workers, format, progress.clone());

    let paths: Vec<(usize, PathBuf)> = (plan.read.0..=plan.read.1)
        .map(|p| (p, seq.frames[p].path.clone()))
        .collect();
    // On the GPU, 10-bit filled DPX travels packed both ways and is (un)packed by shaders.
    let on_gpu = matches!(job.backend, Backend::Gpu(_));
    let packed_in = on_gpu
        && info
            .dpx_layout
            .is_some_and(|l| l.bits == 10 && l.packing == dpx::Packing::FilledA);
    let packed_out = match format {
        OutputFormat::Dpx(l) if on_gpu && l.bits == 10 && l.packing == dpx::Packing::FilledA => {
            Some(l)
        }
        _ => None,
    };
    let numbers: Vec<i64> = seq.frames.iter().map(|f| f.number).collect();
    let decoded = ordered::ordered_map(paths, workers * 2, move |(pos, path)| {
        let decoded = Decoded::read(&path, packed_in).map(|mut d| {
            d.meta_mut().number = Some(numbers[pos]);
            d
        });
        (pos, decoded)
    });
    let shape = (info.width, info.height, info.planes);
    let mut frames_read = 0;
    let mut gpu_checks = Vec::new();
    let mut outputs = Vec::new();
    let deliver = |outputs: &mut Vec<(usize, Restored)>| -> Result<()> {
        for (q, frame) in outputs.drain(..) {
            if q >= plan.write.0 && q <= plan.write.1 {
                writer.send(targets[q - plan.write.0].clone(), frame)?;
            }
        }
        Ok(())
    };

    let run = (|| -> Result<()> {
        match &job.backend {
            Backend::Cpu => {
                let mut chain = Chain::new(&job.stages, seq.len(), plan.read.0, plan.read.1);
                let mut cpu_out = Vec::new();
                for (pos, decoded) in decoded {
                    if cancel::interrupted() || writer.failed() {
                        break;
                    }
                    let Decoded::Frame(frame) = checked(decoded, shape, &seq.frames[pos].path)?
                    else {
                        bail!("internal: packed words reached the CPU backend");
                    };
                    frames_read += 1;
                    chain.push(pos, frame, &mut CpuRunner, &mut cpu_out)?;
                    outputs.extend(cpu_out.drain(..).map(|(q, f)| (q, Restored::Frame(f))));
                    deliver(&mut outputs)?;
                }
            }
            Backend::Gpu(gpu) => {
                let mut chain = Chain::new(&job.stages, seq.len(), plan.read.0, plan.read.1);
                let mut gpu_out: Vec<(usize, GpuFrame)> = Vec::new();
                let mut runner = GpuRunner {
                    gpu,
                    check: job.check_gpu.then(Vec::new),
                };
                for (pos, decoded) in decoded {
                    if cancel::interrupted() || writer.failed() {
                        break;
                    }
                    let on_device = match checked(decoded, shape, &seq.frames[pos].path)? {
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
    // Frames already handed to the writers are finished whatever happened above.
    let written = writer.finish();
    progress.finish();
    run?;
    written?;
    if cancel::interrupted() {
        return Err(cancel::Interrupted.into());
    }
    let frames_written = targets.iter().filter(|p| p.exists()).count();
    let seconds = start.elapsed().as_secs_f64();
    let record = write_record(job, &plan, &info, format, &targets, seconds, &gpu_checks)?;
    Ok(RunSummary {
        frames_written,
        frames_read,
        seconds,
        output_format: format.to_string(),
        record,
        gpu_checks,
    })
}

/// A decoded frame, checked against the sequence's shape (a header can lie).
fn checked(frame: Result<Decoded>, shape: (usize, usize, usize), path: &Path) -> Result<Decoded> {
    let frame = frame?;
    let got = frame.shape();
    if got != shape {
        bail!(
            "{}: mixed frame sizes: decoded {}x{} with {} planes but the sequence is {}x{} with {} planes",
            path.display(),
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
/// `--frames` chunk so chunks of one reel do not overwrite each other's.
fn write_record(
    job: &RestoreJob,
    plan: &Plan,
    info: &FrameInfo,
    format: OutputFormat,
    targets: &[PathBuf],
    seconds: f64,
    gpu_checks: &[GpuCheck],
) -> Result<PathBuf> {
    let seq = &job.sequence;
    let name = match job.frames {
        None => "restoration.json".to_string(),
        Some(_) => format!(
            "restoration.{}-{}.json",
            seq.frames[plan.write.0].number, seq.frames[plan.write.1].number
        ),
    };
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
    let record = serde_json::json!({
        "tool": "nitrate",
        "version": env!("CARGO_PKG_VERSION"),
        "backend": job.backend.describe(),
        "input": {
            "pattern": seq.pattern,
            "encoding": info.encoding(),
            "size": [info.width, info.height],
            "planes": info.planes,
            "transfer": info.meta.transfer.to_string(),
            "frames_read": [seq.frames[plan.read.0].number, seq.frames[plan.read.1].number],
        },
        "output": {
            "directory": job.output_dir.display().to_string(),
            "format": format.to_string(),
            "frames": [seq.frames[plan.write.0].number, seq.frames[plan.write.1].number],
            "files": targets.iter().map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect::<Vec<_>>(),
        },
        "stages": stages,
        "run": job.record_extra,
        "seconds": seconds,
        "gpu_checks": gpu_checks,
    });
    let path = job.output_dir.join(name);
    let text = serde_json::to_string_pretty(&record)?;
    io::write_atomic(&path, text.as_bytes())?;
    Ok(path)
}
