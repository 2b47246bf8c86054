//! The commands, run from parsed arguments. `main` stays thin; tests call these directly too.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use crate::cli::{
    AnalyseArgs, BackendArgs, Cli, Command, FarmAction, PresetsAction, PreviewArgs, RestoreArgs,
};
use crate::io::Input;
use crate::pipeline::{self, Backend, RestoreJob, VideoOptions};
use crate::preset::Preset;

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Restore(args) => {
            let backend = open_backend(&args.backend)?;
            pipeline::cancel::install_handler();
            let job = restore_job(&args, backend)?;
            let summary = if args.resume {
                pipeline::resume::restore(&job)?
            } else {
                pipeline::restore(&job)?
            };
            if !args.quiet {
                eprintln!(
                    "restored {} frames in {:.1}s ({:.1} frames/s) as {}; record: {}",
                    summary.frames_written,
                    summary.seconds,
                    summary.frames_written as f64 / summary.seconds.max(1e-9),
                    summary.output_format,
                    summary.record.display()
                );
                for c in &summary.gpu_checks {
                    eprintln!(
                        "check-gpu: {} max |GPU - CPU| = {:e} over {} frames (tolerance {:e})",
                        c.stage, c.max_abs_diff, c.frames, c.tolerance
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Probe {
            input,
            json,
            ffmpeg,
        } => {
            let report = crate::probe::probe(&input, ffmpeg.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{report}");
            }
            Ok(if report.problems() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Devices => {
            let adapters = crate::gpu::list_adapters()?;
            if adapters.is_empty() {
                println!("no GPU adapters found; nitrate will run on the CPU");
            }
            for line in adapters {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Compare {
            reference,
            restored,
            mask,
            detected,
            margin,
            json,
        } => {
            let report = crate::compare::run(&crate::compare::CompareOptions {
                reference,
                restored,
                mask,
                detected,
                margin,
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report.to_json())?);
            } else {
                print!("{report}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Degrade(args) => {
            let opts = crate::degrade::DegradeOptions {
                clean: args.clean,
                out: args.out,
                defects: crate::degrade::Defect::parse_list(&args.defects).context("--defects")?,
                seed: args.seed,
                strength: args.strength,
                format: args.format,
                overwrite: args.overwrite,
                artifacts: args.artifacts,
                artifact_kinds: args.artifact_kinds,
            };
            let s = crate::degrade::run(&opts)?;
            eprintln!(
                "degraded {} frames ({}x{}, {} planes) as {} in {:.1}s: {} spots, {} artefacts, {} scratch tracks, {:.2}% of pixels masked",
                s.frames, s.width, s.height, s.planes, s.format, s.seconds, s.spots, s.artifacts, s.scratch_tracks, 100.0 * s.masked_fraction
            );
            eprintln!("truth: {}", s.truth.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Preview(args) => {
            let backend = open_backend(&args.backend)?;
            let s = crate::preview::run(&preview_job(&args, backend)?)?;
            eprintln!(
                "preview: {} frames read; rows: frames {}; columns: {}",
                s.frames_read,
                s.rows
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                s.columns.join(" | ")
            );
            println!("{}", s.sheet.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Review(args) => {
            let stage = match &args.stage {
                Some(s) => Some(crate::stages::canonical_name(s)?.to_string()),
                None => None,
            };
            let s = crate::review::run(&crate::review::ReviewJob {
                output: args.output.clone(),
                stage,
                vetoed: args.vetoed,
                out: args.out.clone(),
                input: args.input.clone(),
            })?;
            eprintln!(
                "review: {} repairs, largest change first, {} to a sheet",
                s.repairs,
                crate::review::PER_SHEET
            );
            for sheet in &s.sheets {
                println!("{}", sheet.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Presets { action } => {
            match action {
                PresetsAction::List => {
                    for (name, suits) in crate::preset::list() {
                        println!("{name:<20} {suits}");
                    }
                }
                PresetsAction::Show { preset, set } => {
                    let mut preset = Preset::load(&preset)?;
                    for assignment in &set {
                        preset.set(assignment)?;
                    }
                    print!("{}", preset.show()?);
                }
                PresetsAction::Check { file } => {
                    let text = std::fs::read_to_string(&file)
                        .with_context(|| format!("{}: cannot read preset", file.display()))?;
                    let preset = Preset::parse(&text, &file.display().to_string())?;
                    preset.build()?;
                    println!(
                        "{}: valid, {} stages ({})",
                        file.display(),
                        preset.chain.len(),
                        preset.stage_list()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Analyse(args) => {
            // Measures are taken on the CPU: they are the CPU reference's, whatever the
            // restores' backend (GPU restores agree with them within the stages' tolerances).
            set_threads(&args.backend)?;
            pipeline::cancel::install_handler();
            let s = crate::analysis::analyse(&analyse_job(&args)?)?;
            if !args.quiet {
                eprintln!(
                    "analysed {} frames in {:.1}s: measures of {}; {} shots; written to {}",
                    s.frames,
                    s.seconds,
                    if s.stages.is_empty() {
                        "no stage".to_string()
                    } else {
                        s.stages.join(", ")
                    },
                    s.cuts.len(),
                    args.out.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Farm { action } => match action {
            FarmAction::Slurm(args) => {
                let nitrate = match args.nitrate {
                    Some(p) => p,
                    None => std::env::current_exe().context("cannot locate this program")?,
                };
                let plan = crate::farm::SlurmPlan {
                    plan: args.plan.unwrap_or_else(|| args.output.join("farm")),
                    input: args.input,
                    output: args.output,
                    chunk: args.chunk,
                    preset: args.preset,
                    stages: args.stages,
                    set: args.set,
                    backend: format!("{:?}", args.backend).to_ascii_lowercase(),
                    partition: args.partition,
                    cpus_per_task: args.cpus_per_task,
                    nitrate,
                };
                let written = crate::farm::write_slurm_plan(&plan)?;
                eprintln!(
                    "plan: {} chunks of up to {} frames in {}; submit with {}",
                    written.chunks.len(),
                    plan.chunk,
                    written.dir.display(),
                    written.submit.display()
                );
                if args.submit {
                    print!("{}", crate::farm::submit(&written, args.resume)?);
                }
                Ok(ExitCode::SUCCESS)
            }
            FarmAction::Merge { output, plan } => {
                let m = crate::farm::merge(&output, plan.as_deref())?;
                eprintln!(
                    "merged {} chunks: frames {}-{}, {} frames verified; record {}",
                    m.chunks,
                    m.range.0,
                    m.range.1,
                    m.frames,
                    m.record.display()
                );
                Ok(ExitCode::SUCCESS)
            }
        },
        Command::Demo(args) => {
            let backend = open_backend(&args.backend)?;
            pipeline::cancel::install_handler();
            crate::demo::run(&args, backend)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Size the worker pool as `--threads` asks.
fn set_threads(args: &BackendArgs) -> Result<()> {
    if let Some(n) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n as usize)
            .build_global()
            .context("--threads: cannot size the worker pool")?;
    }
    Ok(())
}

/// Set the thread count, open the backend and say which in one line.
pub fn open_backend(args: &BackendArgs) -> Result<Backend> {
    set_threads(args)?;
    let (backend, line) = Backend::open(args.backend, args.adapter)?;
    eprintln!("{line}");
    Ok(backend)
}

/// The preset `name`, cut to the `stages` named (`none`: no stage, a format conversion) and
/// with the `set` overrides applied: one rule for restore, preview and analyse, so that a
/// farm's analysis and its restores build the same chain.
fn chain_preset(name: &str, stages: Option<&[String]>, set: &[String]) -> Result<Preset> {
    let mut preset = Preset::load(name)?;
    match stages {
        Some([only]) if only == "none" => preset.select(&[])?,
        Some(names) => preset.select(names)?,
        None => {}
    }
    for assignment in set {
        preset.set(assignment)?;
    }
    Ok(preset)
}

/// Resolve `preview` arguments into a job: the same preset, stage and override rules as
/// `restore`.
pub fn preview_job(args: &PreviewArgs, backend: Backend) -> Result<crate::preview::PreviewJob> {
    let preset = chain_preset(&args.preset, args.stages.as_deref(), &args.set)?;
    Ok(crate::preview::PreviewJob {
        input: Input::discover(&args.input, args.ffmpeg.as_deref())?,
        ffmpeg: args.ffmpeg.clone(),
        frames: args.frames.clone(),
        stages: preset.build()?,
        backend,
        panel_width: args.panel_width as usize,
        output: args.out.clone(),
    })
}

/// Resolve `analyse` arguments into a job: the same preset, stage and override rules as
/// `restore`, so the chain's hash matches the restores'.
pub fn analyse_job(args: &AnalyseArgs) -> Result<crate::analysis::AnalyseJob> {
    let input = Input::discover(&args.input, None)?;
    let preset = chain_preset(&args.preset, args.stages.as_deref(), &args.set)?;
    Ok(crate::analysis::AnalyseJob {
        input,
        stages: preset.build()?,
        out: args.out.clone(),
        preset: preset.source.clone(),
        quiet: args.quiet,
    })
}

/// Resolve `restore` arguments into a job: sequence, preset chain, overrides, stages.
pub fn restore_job(args: &RestoreArgs, backend: Backend) -> Result<RestoreJob> {
    let input = Input::discover(&args.input, args.ffmpeg.as_deref())?;
    let mut preset = chain_preset(&args.preset, args.stages.as_deref(), &args.set)?;
    // Stabilise's motion track goes beside the output (one per chunk), and `--track` reads one.
    let out_dir = if crate::io::video::is_video_path(&args.output) && !args.output.is_dir() {
        match args.output.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        }
    } else {
        args.output.clone()
    };
    let path_value = |p: &std::path::Path| toml::Value::String(p.display().to_string());
    let track_name = match args.frames {
        Some((a, b)) => format!("stabilise.track.{a}-{b}.jsonl"),
        None => "stabilise.track.jsonl".to_string(),
    };
    let stabilising = preset.set_value(
        "stabilise",
        "track_out",
        path_value(&out_dir.join(track_name)),
        false,
    );
    if let Some(track) = &args.track {
        if !stabilising {
            anyhow::bail!(
                "--track {}: the chain has no stabilise stage",
                track.display()
            );
        }
        preset.set_value("stabilise", "track_in", path_value(track), true);
    }
    if let Some(dir) = &args.emit_masks {
        refuse_scan_folder(&input, dir)?;
        let mut emitting = Vec::new();
        for name in crate::stages::MASK_STAGES {
            if preset.set_value(name, "emit_masks", path_value(dir), true) {
                emitting.push(*name);
            }
        }
        if emitting.is_empty() {
            anyhow::bail!(
                "--emit-masks {}: the chain has no stage that repairs defects ({})",
                dir.display(),
                crate::stages::MASK_STAGES.join(", ")
            );
        }
    }
    if let Some(file) = &args.veto {
        apply_veto(&mut preset, file)?;
    }
    let mut stages = preset.build()?;
    if let Some(path) = &args.analysis {
        crate::analysis::apply(path, &input, &mut stages)?;
    }
    let record_extra = serde_json::json!({
        "command_line": std::env::args().collect::<Vec<_>>(),
        "preset": preset.source,
        "preset_text": preset.text,
        "preset_sha256": crate::io::checksum::sha256_hex(preset.text.as_bytes()),
        "overrides": args.set,
        "analysis": args.analysis.as_ref().map(|p| p.display().to_string()),
    });
    crate::io::set_durable(!args.no_fsync);
    let encoder_opts = match &args.encoder_opts {
        Some(text) => split_options(text)?,
        None => Vec::new(),
    };
    Ok(RestoreJob {
        input,
        output: args.output.clone(),
        format: args.format.clone(),
        frames: args.frames,
        overwrite: args.overwrite,
        allow_gaps: args.allow_gaps,
        quiet: args.quiet,
        check_gpu: args.check_gpu,
        stages,
        backend,
        record_extra,
        video: VideoOptions {
            ffmpeg: args.ffmpeg.clone(),
            encoder_opts,
        },
    })
}

/// `--encoder-opts` text into arguments: split at whitespace, with single or double quotes
/// keeping a value with spaces together.
fn split_options(text: &str) -> Result<Vec<String>> {
    let mut args = Vec::new();
    let mut cur: Option<String> = None;
    let mut quote = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.get_or_insert_with(String::new).push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.get_or_insert_with(String::new);
            }
            (None, c) if c.is_whitespace() => args.extend(cur.take()),
            (None, c) => cur.get_or_insert_with(String::new).push(c),
        }
    }
    if quote.is_some() {
        anyhow::bail!("--encoder-opts {text}: unclosed quote");
    }
    args.extend(cur);
    Ok(args)
}

/// `restore --veto FILE`: each defect stage's `veto` parameter gets the file's entries for it
/// and those for every stage (`*`). An entry for a stage the chain lacks is an error.
fn apply_veto(preset: &mut Preset, file: &std::path::Path) -> Result<()> {
    let by_stage = crate::stages::repairs::read_veto_file(file)?;
    let every = by_stage.get("*").cloned().unwrap_or_default();
    for stage in by_stage.keys().filter(|s| *s != "*") {
        if !preset.chain.iter().any(|e| &e.name == stage) {
            bail!(
                "--veto {}: it names repairs of stage '{stage}', which is not in the chain",
                file.display()
            );
        }
    }
    let mut any = false;
    for name in crate::stages::MASK_STAGES {
        let mut entries = by_stage.get(*name).cloned().unwrap_or_default();
        entries.extend(every.iter().cloned());
        let value = toml::Value::Array(entries.into_iter().map(toml::Value::String).collect());
        any |= preset.set_value(name, "veto", value, true);
    }
    if !any {
        bail!(
            "--veto {}: the chain has no stage that repairs defects ({})",
            file.display(),
            crate::stages::MASK_STAGES.join(", ")
        );
    }
    Ok(())
}

/// `--emit-masks DIR`: the masks go to `DIR/<stage>/`; neither DIR nor those folders may be
/// the input sequence's folder, so nothing is ever written among the scans.
fn refuse_scan_folder(input: &Input, dir: &std::path::Path) -> Result<()> {
    let Input::Sequence(seq) = input else {
        return Ok(());
    };
    let Some(first) = seq.frames.first() else {
        return Ok(());
    };
    let scans = match first.path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let Ok(scans) = scans.canonicalize() else {
        return Ok(());
    };
    let places = std::iter::once(dir.to_path_buf())
        .chain(crate::stages::MASK_STAGES.iter().map(|s| dir.join(s)));
    for place in places {
        if place.canonicalize().ok().as_ref() == Some(&scans) {
            bail!(
                "--emit-masks {}: that is the input's folder ({}); choose another so the scans stay untouched",
                dir.display(),
                scans.display()
            );
        }
    }
    Ok(())
}
