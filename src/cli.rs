//! Command-line definitions (clap) and their resolution into typed jobs.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use crate::pipeline::BackendChoice;

#[derive(Parser, Debug)]
#[command(name = "nitrate", version, about = "Film-heritage restoration engine: dust, scratches, weave, flicker, grain, fading, upscaling", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Restore a frame sequence or a video into an output directory or video file.
    Restore(RestoreArgs),
    /// Describe a frame sequence or video: format, size, depth, transfer, frame range and gaps.
    Probe {
        /// A directory of frames, a pattern (scan_%06d.dpx, scan.####.dpx), one file, or a
        /// video file (.mkv, .mov, .mp4, .mxf, ...).
        input: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// The ffmpeg program for video files (ffprobe is looked for beside it).
        #[arg(long, value_name = "PATH")]
        ffmpeg: Option<PathBuf>,
    },
    /// List the GPU adapters wgpu can see.
    Devices,
    /// A first run that needs no files: damages a procedural scene like a worn print, restores
    /// it, and reports the measures before and after.
    Demo(DemoArgs),
    /// Before/after of chosen frames as one PNG sheet, reading only those frames and the
    /// context the chain needs: before | after | split | what each stage changed.
    Preview(PreviewArgs),
    /// Contact sheets of a run's repairs, largest change first: the scan before and the output
    /// after, around each repair, with its id (for `restore --veto`).
    Review(ReviewArgs),
    /// Presets: list the built-in ones, show one fully resolved, check a preset file.
    Presets {
        #[command(subcommand)]
        action: PresetsAction,
    },
    /// Score a restored sequence against a reference: PSNR, SSIM, PSNR inside and outside
    /// defect masks, residual shake and flicker, per frame and overall.
    Compare {
        /// The reference (clean) sequence.
        reference: PathBuf,
        /// The sequence to score; frames are matched to the reference by name.
        restored: PathBuf,
        /// Defect masks (nonzero = damaged), matched by name, e.g. `degrade`'s OUT/mask.
        #[arg(long)]
        mask: Option<PathBuf>,
        /// Repair masks to score against --mask (detection recall and precision, pixels and
        /// regions), matched by name, e.g. `restore --emit-masks DIR`'s DIR/dust.
        #[arg(long, requires = "mask")]
        detected: Option<PathBuf>,
        /// Border in pixels left out of every measure.
        #[arg(long, default_value_t = 0)]
        margin: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Apply seeded, documented film damage to a clean sequence and write the ground truth:
    /// OUT/degraded, OUT/clean (the reference), OUT/mask and OUT/truth.json.
    Degrade(DegradeArgs),
    /// Measure a whole reel once (cuts, motion track, flicker curve, colour) into a readable
    /// JSON file, so that `restore --analysis` chunks take the measures from it.
    #[command(alias = "analyze")]
    Analyse(AnalyseArgs),
    /// Render-farm runs: write (and submit) a Slurm plan, merge and verify chunk records.
    Farm {
        #[command(subcommand)]
        action: FarmAction,
    },
}

#[derive(clap::Args, Debug)]
pub struct AnalyseArgs {
    /// A directory of frames, a pattern (scan_%06d.dpx, scan.####.dpx) or one file.
    pub input: PathBuf,
    /// The analysis file to write (JSON).
    #[arg(long, short)]
    pub out: PathBuf,
    /// Built-in preset name or preset file (.toml): the same as the restores will use.
    #[arg(long, default_value = "default")]
    pub preset: String,
    /// Stages, as for `restore`.
    #[arg(long, value_delimiter = ',')]
    pub stages: Option<Vec<String>>,
    /// Override one parameter, as for `restore`; repeatable.
    #[arg(long = "set", value_name = "STAGE.KEY=VALUE")]
    pub set: Vec<String>,
    /// `--threads` sizes the worker pool; the measures are always the CPU reference's, and
    /// `--backend` is accepted so a plan can pass the restores' options unchanged.
    #[command(flatten)]
    pub backend: BackendArgs,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Subcommand, Debug)]
pub enum FarmAction {
    /// Write a Slurm batch plan for one reel: an analysis job, an array job of chunks that
    /// depends on it, and a merge job that verifies every frame; plain scripts to read and
    /// edit, submitted with `PLAN/submit.sh` (or `--submit`).
    Slurm(FarmSlurmArgs),
    /// Merge the chunk records in OUTPUT (restoration.A-B.json) into restoration.json after
    /// checking that the chunks cover the reel and every frame matches its SHA-256.
    Merge {
        output: PathBuf,
        /// The plan folder: its chunks.txt says which chunks must be there, and its logs are
        /// named in the report of a chunk that did not finish.
        #[arg(long, value_name = "DIR")]
        plan: Option<PathBuf>,
    },
}

#[derive(clap::Args, Debug)]
pub struct FarmSlurmArgs {
    /// The reel: a directory of frames or a pattern, on storage every node sees.
    pub input: PathBuf,
    /// Output directory, on storage every node sees.
    pub output: PathBuf,
    /// Frames per chunk (one array task each).
    #[arg(long)]
    pub chunk: usize,
    /// Built-in preset name or preset file (.toml).
    #[arg(long, default_value = "default")]
    pub preset: String,
    /// Stages, as for `restore`.
    #[arg(long, value_delimiter = ',')]
    pub stages: Option<Vec<String>>,
    /// Override one parameter, as for `restore`; repeatable.
    #[arg(long = "set", value_name = "STAGE.KEY=VALUE")]
    pub set: Vec<String>,
    /// Where the plan goes (scripts, chunk list, analysis, logs); default OUTPUT/farm.
    #[arg(long, value_name = "DIR")]
    pub plan: Option<PathBuf>,
    /// Slurm partition for every job.
    #[arg(long)]
    pub partition: Option<String>,
    /// CPUs per job (`--cpus-per-task`).
    #[arg(long)]
    pub cpus_per_task: Option<usize>,
    /// `--backend` of the jobs.
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: BackendChoice,
    /// The nitrate program the jobs run (default: this one).
    #[arg(long, value_name = "PATH")]
    pub nitrate: Option<PathBuf>,
    /// Submit the plan with sbatch once written.
    #[arg(long)]
    pub submit: bool,
    /// With --submit: finish a plan whose run stopped (chunks run with --resume).
    #[arg(long)]
    pub resume: bool,
}

#[derive(clap::Args, Debug)]
pub struct PreviewArgs {
    /// A directory of frames, a pattern (scan_%06d.dpx, scan.####.dpx), one file, or a video.
    pub input: PathBuf,
    /// Frame numbers to show, comma-separated (as numbered in the file names; a video's frames
    /// count from 0): 12,240,1030.
    #[arg(long, value_delimiter = ',', required = true)]
    pub frames: Vec<i64>,
    /// Built-in preset name or preset file (.toml).
    #[arg(long, default_value = "default")]
    pub preset: String,
    /// Stages to run, in order (comma-separated), as for `restore`.
    #[arg(long, value_delimiter = ',')]
    pub stages: Option<Vec<String>>,
    /// Override one stage parameter, as for `restore`; repeatable.
    #[arg(long, value_name = "STAGE.KEY=VALUE")]
    pub set: Vec<String>,
    /// The sheet to write (PNG).
    #[arg(long, short, default_value = "preview.png")]
    pub out: PathBuf,
    /// The ffmpeg program for video input (default: ffmpeg on the PATH; ffprobe beside it).
    #[arg(long, value_name = "PATH")]
    pub ffmpeg: Option<PathBuf>,
    /// Width of each panel in pixels (frames are shrunk to it, never enlarged).
    #[arg(long, default_value_t = 480, value_parser = clap::value_parser!(u32).range(32..=8192))]
    pub panel_width: u32,
    #[command(flatten)]
    pub backend: BackendArgs,
}

#[derive(clap::Args, Debug)]
pub struct ReviewArgs {
    /// A restore's output: its directory (every chunk's repairs in it), its video file, or a
    /// repairs file (`repairs.jsonl`).
    pub output: PathBuf,
    /// Only this stage's repairs (dust, scratch).
    #[arg(long)]
    pub stage: Option<String>,
    /// Show vetoed repairs too, marked in red.
    #[arg(long)]
    pub vetoed: bool,
    /// Folder for the sheets (default: `review/` in the output directory).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// The run's input (frames before), where the path in its record no longer leads.
    #[arg(long)]
    pub input: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum PresetsAction {
    /// The built-in presets and what material each suits.
    List,
    /// A preset (built-in name or .toml file) resolved: every stage parameter with its value,
    /// default and meaning, as a preset file that can be saved and edited.
    Show {
        preset: String,
        /// Overrides to apply first, as for `restore`.
        #[arg(long, value_name = "STAGE.KEY=VALUE")]
        set: Vec<String>,
    },
    /// Check a preset file: syntax, stage names, parameter names and ranges. Exit 1 if invalid.
    Check { file: PathBuf },
}

#[derive(clap::Args, Debug)]
pub struct DegradeArgs {
    /// The clean sequence: a directory of frames, a pattern or one file.
    pub clean: PathBuf,
    /// Output directory.
    pub out: PathBuf,
    /// Defects to apply, comma-separated: dust, blotches, scratches, grain, flicker, weave,
    /// fading, blur; `default` (a worn print: the first six), `all`, or `none` (with
    /// `--artifacts`, the artefacts alone).
    #[arg(long, default_value = "default")]
    pub defects: String,
    /// Seed: the same seed gives the same damage, bit for bit.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Multiplier of defect counts and amplitudes, 0 to 3; 1 is a worn print.
    #[arg(long, default_value_t = 1.0)]
    pub strength: f32,
    /// Output format (default: 16-bit in the input's family).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(crate::io::FORMAT_NAMES))]
    pub format: Option<String>,
    /// Replace the output of an earlier run.
    #[arg(long)]
    pub overwrite: bool,
    /// Also composite artefacts of real shapes: alpha mattes in DIR/KIND/*.png (dirt, hair,
    /// lint, ...), one frame each, rotated, scaled, dark or bright, masked in the truth.
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
    /// Only these kinds of artefact (comma-separated folder names), e.g. hair,lint.
    #[arg(long, value_delimiter = ',', requires = "artifacts")]
    pub artifact_kinds: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// A directory of frames, a pattern (scan_%06d.dpx, scan.####.dpx), one file, or a video
    /// file (.mkv, .mov, .mp4, .mxf, ...) read through ffmpeg.
    pub input: PathBuf,
    /// Output directory (frames keep their input names; a video is named after the input), or
    /// a video file path such as out.mkv.
    pub output: PathBuf,
    /// Built-in preset name or preset file (.toml).
    #[arg(long, default_value = "default")]
    pub preset: String,
    /// Stages to run, in order (comma-separated); parameters come from the preset when it has
    /// the stage, defaults otherwise. `none` runs no stage (a format conversion).
    #[arg(long, value_delimiter = ',')]
    pub stages: Option<Vec<String>>,
    /// Override one parameter: stage.key=value (repeatable).
    #[arg(long = "set", value_name = "STAGE.KEY=VALUE")]
    pub set: Vec<String>,
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Restore only frames A-B (frame numbers, inclusive); neighbouring frames are read as
    /// context so chunks put together equal one whole run.
    #[arg(long, value_name = "A-B", value_parser = parse_range)]
    pub frames: Option<(i64, i64)>,
    /// Output format: image frames, or a video codec (default: the input's format and bit
    /// depth; FFV1 in Matroska for a video input or a .mkv OUTPUT).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(
        crate::io::FORMAT_NAMES.iter().chain(crate::io::video::CODEC_NAMES)))]
    pub format: Option<String>,
    /// The ffmpeg program for video input and output (default: ffmpeg on the PATH; ffprobe
    /// is looked for beside it).
    #[arg(long, value_name = "PATH")]
    pub ffmpeg: Option<PathBuf>,
    /// Extra ffmpeg encoder options for a video output, after the codec's defaults, e.g.
    /// "-crf 16" or "-slices 24".
    #[arg(long, value_name = "OPTS", allow_hyphen_values = true)]
    pub encoder_opts: Option<String>,
    /// Replace frames or the video already in the output.
    #[arg(long)]
    pub overwrite: bool,
    /// Restore a sequence with missing frame numbers, treating the frames present as consecutive.
    #[arg(long)]
    pub allow_gaps: bool,
    /// Do not flush each frame to the disk before it is renamed into place (a scratch disk,
    /// or a file system that is made durable otherwise). By default a frame under its final
    /// name survives a power cut.
    #[arg(long)]
    pub no_fsync: bool,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
    /// Motion track to read instead of measuring motion (a `stabilise.track*.jsonl` of an
    /// earlier run), so stabilising can be re-tuned without re-analysing.
    #[arg(long, value_name = "FILE")]
    pub track: Option<PathBuf>,
    /// Write a mask of what each defect stage (dust, scratch) repaired, as 8-bit PNGs in
    /// `DIR/<stage>/<frame number>.png`.
    #[arg(long, value_name = "DIR")]
    pub emit_masks: Option<PathBuf>,
    /// Leave out these repairs: a file of repair ids (`dust:1042:3`, from a run's repairs
    /// file, whose lines may be pasted whole) or frames and boxes (`dust:1042@X,Y,W,H`, `*` for
    /// every defect stage), one a line. Every other pixel comes out as without the veto.
    #[arg(long, value_name = "FILE")]
    pub veto: Option<PathBuf>,
    /// Take the whole-reel measures from this analysis (`nitrate analyse`) instead of
    /// measuring them; refused if it was made for other input or settings.
    #[arg(long, value_name = "FILE")]
    pub analysis: Option<PathBuf>,
    /// Skip frames already in OUTPUT whose SHA-256 matches the record or journal of an earlier
    /// run with the same settings; restore only the rest (each missing stretch with its
    /// context frames).
    #[arg(long, conflicts_with = "overwrite")]
    pub resume: bool,
    /// After each GPU stage, run its CPU reference on the same frames and fail if they differ
    /// by more than the stage's tolerance; the largest differences go in the record. Slow.
    #[arg(long)]
    pub check_gpu: bool,
}

#[derive(clap::Args, Debug)]
pub struct BackendArgs {
    /// Where stages run: auto takes a hardware GPU when there is one, else the CPU.
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: BackendChoice,
    /// GPU adapter index from `nitrate devices` (implies a GPU backend).
    #[arg(long)]
    pub adapter: Option<usize>,
    /// Worker threads for decoding, encoding and CPU stages (default: all cores; 1 to 1024).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
}

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Where to write the demo's frames and sheet.
    #[arg(default_value = "nitrate-demo")]
    pub output: PathBuf,
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Number of frames to generate.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub length: u32,
    /// Frame size, WIDTHxHEIGHT.
    #[arg(long, default_value = "480x270", value_parser = parse_size)]
    pub size: (usize, usize),
    /// Preset to restore with: a built-in name or a .toml file.
    #[arg(long, default_value = "default")]
    pub preset: String,
}

/// `A-B` (or a single frame `A`) into an inclusive range.
pub fn parse_range(text: &str) -> Result<(i64, i64)> {
    let parse = |s: &str| {
        s.trim()
            .parse::<i64>()
            .with_context(|| format!("'{s}' is not a frame number"))
    };
    let (a, b) = match text.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let a = parse(text)?;
            (a, a)
        }
    };
    if a > b {
        bail!("first frame {a} is after last frame {b}");
    }
    Ok((a, b))
}

/// `WIDTHxHEIGHT` into a size.
pub fn parse_size(text: &str) -> Result<(usize, usize)> {
    let (w, h) = text
        .split_once('x')
        .context("expected WIDTHxHEIGHT, e.g. 480x270")?;
    let (w, h): (usize, usize) = (w.parse()?, h.parse()?);
    if !(16..=8192).contains(&w) || !(16..=8192).contains(&h) {
        bail!("size {w}x{h} is out of range (16 to 8192 each way)");
    }
    Ok((w, h))
}
