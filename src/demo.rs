//! `nitrate demo`: the first run of a newcomer, with no files of their own. It renders a short
//! procedural scene, damages it like a worn print with `degrade`'s default defects, writes the
//! damaged frames as 10-bit DPX, restores them through the normal pipeline with a preset
//! (`default` unless told), scores both against the clean frames with `compare`, and writes a
//! degraded | restored | clean sheet.

use anyhow::{Context, Result};

use crate::cli::DemoArgs;
use crate::compare::{self, CompareOptions, Summary};
use crate::degrade::{self, DegradeOptions};
use crate::frame::{Frame, Timecode};
use crate::io::sequence::Sequence;
use crate::io::{self, OutputFormat};
use crate::pipeline::{self, Backend, RestoreJob};
use crate::preset::Preset;
use crate::synth::scene_frame;

/// The demo's damage seed; any seed gives the same kind of damage.
const SEED: u64 = 1906;

pub fn run(args: &DemoArgs, backend: Backend) -> Result<()> {
    let out = &args.output;
    let (w, h) = args.size;
    let n = args.length as usize;
    let scene_dir = out.join("scene");
    std::fs::create_dir_all(&scene_dir)
        .with_context(|| format!("{}: cannot create", scene_dir.display()))?;
    eprintln!(
        "demo: rendering {n} frames of {w}x{h} into {}",
        out.display()
    );
    for t in 0..n {
        let mut frame = scene_frame(w, h, 3, t, SEED);
        frame.meta.timecode = Some(Timecode::from_hmsf(1, 0, (t / 24) as u8, (t % 24) as u8));
        let name = format!("demo_{:06}.png", 1001 + t);
        io::write_frame(
            &scene_dir.join(name),
            &frame,
            OutputFormat::Png { bits: 16 },
        )?;
    }
    let damage = degrade::run(&DegradeOptions {
        defects: degrade::DEFAULT_DEFECTS.to_vec(),
        seed: SEED,
        format: Some("dpx10".into()),
        overwrite: true,
        ..DegradeOptions::new(&scene_dir, out)
    })?;
    std::fs::remove_dir_all(&scene_dir).ok(); // `clean/` holds the same frames now
    eprintln!(
        "demo: damaged like a worn print: {} spots, {} scratch tracks, grain, flicker, weave",
        damage.spots, damage.scratch_tracks
    );

    let preset = Preset::load(&args.preset)?;
    let restored_dir = out.join("restored");
    let job = RestoreJob {
        input: Sequence::discover(&damage.degraded_dir)?.into(),
        output: restored_dir.clone(),
        format: None,
        frames: None,
        overwrite: true,
        allow_gaps: false,
        quiet: true,
        check_gpu: false,
        stages: preset.build()?,
        backend,
        record_extra: serde_json::json!({ "command": "demo", "preset": preset.source }),
        video: Default::default(),
    };
    let summary = pipeline::restore(&job)?;

    let score = |dir: &std::path::Path| {
        compare::run(&CompareOptions {
            reference: damage.clean_dir.clone(),
            restored: dir.to_path_buf(),
            mask: Some(damage.mask_dir.clone()),
            detected: None,
            margin: 8,
        })
    };
    let before = score(&damage.degraded_dir)?.summary;
    let after = score(&restored_dir)?.summary;

    let mid = Sequence::discover(&restored_dir)?.frames[n / 2]
        .path
        .clone();
    let name = mid.file_name().unwrap_or_default().to_owned();
    let sheet = out.join("before_after.png");
    let panels = [
        io::read_frame(&damage.degraded_dir.join(&name))?,
        io::read_frame(&mid)?,
        io::read_frame(&damage.clean_dir.join(&name))?,
    ];
    let sheet_frame = side_by_side(&[&panels[0], &panels[1], &panels[2]]);
    io::write_frame(&sheet, &sheet_frame, OutputFormat::Png { bits: 16 })?;

    println!(
        "restored {} frames with preset '{}' in {:.2}s ({})",
        summary.frames_written,
        args.preset,
        summary.seconds,
        job.backend.describe()
    );
    println!("against the clean frames (8 px border excluded):");
    println!("{}", table(&[("degraded", &before), ("restored", &after)]));
    println!("degraded | restored | clean: {}", sheet.display());
    println!("record: {}", summary.record.display());
    Ok(())
}

/// The headline measures, one row per sequence.
fn table(rows: &[(&str, &Summary)]) -> String {
    let db = |v: Option<f64>| v.map_or("-".to_string(), format_db);
    let mut s = format!(
        "{:<10} {:>9} {:>7} {:>15} {:>15} {:>10} {:>9}",
        "", "PSNR dB", "SSIM", "in masks dB", "outside dB", "shake px", "flicker"
    );
    for (name, m) in rows {
        s.push_str(&format!(
            "\n{:<10} {:>9} {:>7.4} {:>15} {:>15} {:>10.3} {:>9.5}",
            name,
            format_db(m.mean_psnr),
            m.mean_ssim,
            db(m.psnr_in_mask),
            db(m.psnr_out_mask),
            m.shake_px,
            m.flicker_rms
        ));
    }
    s
}

fn format_db(v: f64) -> String {
    if v.is_infinite() {
        "inf".to_string()
    } else {
        format!("{v:.2}")
    }
}

/// Frames of equal size placed left to right with a 4-pixel black gutter.
pub fn side_by_side(frames: &[&Frame]) -> Frame {
    let (w, h, planes) = (frames[0].width, frames[0].height, frames[0].planes);
    let gutter = 4;
    let total_w = frames.len() * w + (frames.len() - 1) * gutter;
    let mut sheet = Frame::new(total_w, h, planes, frames[0].meta.clone());
    for (i, f) in frames.iter().enumerate() {
        let x0 = i * (w + gutter);
        for p in 0..planes {
            for y in 0..h {
                for x in 0..w {
                    sheet.set(p, x0 + x, y, f.get(p, x, y));
                }
            }
        }
    }
    sheet
}
