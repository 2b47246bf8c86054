//! The `nitrate` command end to end on generated sequences, and every bad input the rules of
//! the house name: a clear message naming the file, a non-zero exit, nothing partial written,
//! the input untouched.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nitrate::frame::{Frame, Timecode};
use nitrate::io::dpx::{DpxLayout, Packing};
use nitrate::io::{self, OutputFormat};
use nitrate::synth::scene_frame;

fn nitrate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nitrate"))
        .args(args)
        .output()
        .expect("run nitrate")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const DPX10: OutputFormat = OutputFormat::Dpx(DpxLayout {
    bits: 10,
    packing: Packing::FilledA,
    big_endian: true,
    planes: 3,
});

/// A 10-bit DPX sequence numbered from 1001 with frame rate and running timecode.
fn dpx_sequence(dir: &Path, n: usize, w: usize, h: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for t in 0..n {
        let mut f = scene_frame(w, h, 3, t, 9);
        f.meta.bit_depth = 10;
        f.meta.frame_rate = Some(24.0);
        f.meta.timecode = Some(Timecode::from_hmsf(1, 0, 0, t as u8));
        io::write_frame(&dir.join(format!("scan_{:06}.dpx", 1001 + t)), &f, DPX10).unwrap();
    }
}

/// Every file under a directory with its bytes, to prove the input was not touched.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect()
}

fn files_in(dir: &Path) -> Vec<String> {
    if !dir.is_dir() {
        return Vec::new();
    }
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Run a restore expected to fail; check message, exit code, no output frames, input intact.
fn assert_refused(input: &Path, output: &Path, extra: &[&str], expect: &[&str]) {
    let before = snapshot(if input.is_dir() {
        input
    } else {
        input.parent().unwrap()
    });
    let mut args = vec![
        "restore",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "--backend",
        "cpu",
    ];
    args.extend_from_slice(extra);
    let o = nitrate(&args);
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected failure, got {:?}: {err}",
        o.status
    );
    for e in expect {
        assert!(err.contains(e), "message lacks '{e}': {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    let frames: Vec<String> = files_in(output)
        .into_iter()
        .filter(|f| f.ends_with(".dpx") || f.contains("partial"))
        .collect();
    assert!(
        frames.is_empty(),
        "output holds {frames:?} after a refused run"
    );
    assert_eq!(
        before,
        snapshot(if input.is_dir() {
            input
        } else {
            input.parent().unwrap()
        }),
        "input changed"
    );
}

#[test]
fn dpx10_restore_keeps_depth_size_names_rate_and_timecode() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("scans"), dir.path().join("restored"));
    dpx_sequence(&input, 5, 64, 40);
    let o = nitrate(&[
        "restore",
        "--stages",
        "levels",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "--backend",
        "cpu",
        "--format",
        "dpx10",
        "--set",
        "levels.black=0.05",
        "--set",
        "levels.gamma=[1.0, 1.1, 1.2]",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("backend: CPU"),
        "one line says which backend: {}",
        stderr(&o)
    );
    let names: Vec<String> = files_in(&output)
        .into_iter()
        .filter(|f| f.ends_with(".dpx"))
        .collect();
    assert_eq!(
        names,
        (1001..1006)
            .map(|n| format!("scan_{n:06}.dpx"))
            .collect::<Vec<_>>()
    );
    for (t, name) in names.iter().enumerate() {
        let info = io::read_info(&output.join(name)).unwrap();
        assert_eq!((info.width, info.height, info.planes), (64, 40, 3));
        assert_eq!(info.meta.bit_depth, 10);
        assert_eq!(info.dpx_layout.unwrap().packing, Packing::FilledA);
        assert_eq!(info.meta.frame_rate, Some(24.0));
        assert_eq!(
            info.meta.timecode,
            Some(Timecode::from_hmsf(1, 0, 0, t as u8))
        );
        // The pixels are the CPU reference applied to the input, quantised to 10 bits.
        let src = io::read_frame(&input.join(name)).unwrap();
        let mut expect: Frame = src.clone();
        let params = nitrate::stages::levels::LevelsParams {
            black: nitrate::stages::levels::PerChannel::All(0.05),
            gamma: nitrate::stages::levels::PerChannel::Each([1.0, 1.1, 1.2]),
            ..Default::default()
        };
        nitrate::stages::levels::cpu::apply(&mut expect, &params);
        let got = io::read_frame(&output.join(name)).unwrap();
        for (e, g) in expect.data.iter().zip(&got.data) {
            let e = nitrate::frame::quantise(*e, 1023) as f32 / 1023.0;
            assert_eq!(e, *g);
        }
    }
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(output.join("restoration.json")).unwrap()).unwrap();
    assert_eq!(record["stages"][0]["stage"], "levels");
    assert_eq!(record["stages"][0]["params"]["black"], 0.05);
    // Fixity: every file read and written is listed with its SHA-256, which matches the file.
    for (side, dir) in [("input", &input), ("output", &output)] {
        let files = record[side]["files"].as_array().unwrap();
        assert_eq!(files.len(), 5, "{side}");
        for f in files {
            let path = dir.join(f["name"].as_str().unwrap());
            assert_eq!(
                f["sha256"].as_str().unwrap(),
                nitrate::io::checksum::sha256_file(&path).unwrap(),
                "{}",
                path.display()
            );
        }
    }
    assert_eq!(record["chain_sha256"].as_str().unwrap().len(), 64);
    // The overrides are recorded as given, beside the preset they changed.
    assert_eq!(
        record["run"]["overrides"],
        serde_json::json!(["levels.black=0.05", "levels.gamma=[1.0, 1.1, 1.2]"])
    );
    assert_eq!(
        record["stages"][0]["params"]["gamma"],
        serde_json::json!([1.0, 1.1, 1.2])
    );
    assert_eq!(
        record["run"]["preset_sha256"].as_str().unwrap(),
        nitrate::io::checksum::sha256_hex(
            record["run"]["preset_text"].as_str().unwrap().as_bytes()
        )
    );
    // The restored files are marked in their headers (DPX creator field).
    let mark = record["mark"].as_str().unwrap();
    assert!(
        mark.starts_with("nitrate ") && mark.contains("levels"),
        "{mark}"
    );
    let dpx = io::read_frame(&output.join(&names[0])).unwrap();
    assert_eq!(dpx.meta.dpx.unwrap().creator, mark);
}

#[test]
fn probe_reports_format_range_and_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("scans");
    dpx_sequence(&input, 6, 32, 20);
    std::fs::remove_file(input.join("scan_001003.dpx")).unwrap();
    let o = nitrate(&["probe", input.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "gaps make probe exit 1: {out}");
    for want in [
        "DPX 10-bit (filled A, big-endian)",
        "32x20",
        "3 (RGB)",
        "1001-1006 (5 frames)",
        "1 missing: 1003",
        "01:00:00:00",
        "24.000",
    ] {
        assert!(out.contains(want), "probe lacks '{want}':\n{out}");
    }
    let o = nitrate(&["probe", "--json", input.to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["count"], 5);
    assert_eq!(json["gaps"][0]["first"], 1003);
}

#[test]
fn missing_frame_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("scans"), dir.path().join("out"));
    dpx_sequence(&input, 5, 16, 12);
    std::fs::remove_file(input.join("scan_001003.dpx")).unwrap();
    assert_refused(
        &input,
        &output,
        &[],
        &["frames missing", "1003", "--allow-gaps"],
    );
    let o = nitrate(&[
        "restore",
        "--stages",
        "levels",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "--backend",
        "cpu",
        "--allow-gaps",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        files_in(&output)
            .iter()
            .filter(|f| f.ends_with(".dpx"))
            .count(),
        4
    );
}

#[test]
fn truncated_corrupt_and_lying_dpx_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("scans"), dir.path().join("out"));
    dpx_sequence(&input, 4, 24, 16);
    let victim = input.join("scan_001003.dpx");
    let good = std::fs::read(&victim).unwrap();

    std::fs::write(&victim, &good[..good.len() - 100]).unwrap();
    assert_refused(&input, &output, &[], &["scan_001003.dpx", "truncated"]);

    let mut bad_magic = good.clone();
    bad_magic[..4].copy_from_slice(b"JUNK");
    std::fs::write(&victim, &bad_magic).unwrap();
    assert_refused(&input, &output, &[], &["scan_001003.dpx"]);

    // A header claiming a bigger image than the file holds (big-endian width at offset 772).
    let mut lying = good.clone();
    lying[772..776].copy_from_slice(&4096u32.to_be_bytes());
    std::fs::write(&victim, &lying).unwrap();
    assert_refused(&input, &output, &[], &["scan_001003.dpx"]);

    std::fs::write(&victim, b"").unwrap();
    assert_refused(&input, &output, &[], &["scan_001003.dpx"]);
}

#[test]
fn mixed_sizes_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("scans"), dir.path().join("out"));
    dpx_sequence(&input, 3, 24, 16);
    let mut odd = scene_frame(25, 16, 3, 0, 1);
    odd.meta.bit_depth = 10;
    io::write_frame(&input.join("scan_001004.dpx"), &odd, DPX10).unwrap();
    assert_refused(
        &input,
        &output,
        &[],
        &["scan_001004.dpx", "mixed frame sizes"],
    );
    // A 16-bit frame in a 10-bit reel would be written at 10 bits: refused by name too.
    std::fs::remove_file(input.join("scan_001004.dpx")).unwrap();
    let mut deep = scene_frame(24, 16, 3, 0, 1);
    deep.meta.bit_depth = 16;
    let dpx16 = OutputFormat::parse("dpx16", 3).unwrap();
    io::write_frame(&input.join("scan_001004.dpx"), &deep, dpx16).unwrap();
    assert_refused(
        &input,
        &output,
        &[],
        &["scan_001004.dpx", "mixed bit depths", "16-bit", "10-bit"],
    );
}

#[test]
fn bad_outputs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("scans");
    dpx_sequence(&input, 3, 16, 12);
    // Output is the input directory.
    let before = snapshot(&input);
    let o = nitrate(&[
        "restore",
        "--stages",
        "levels",
        input.to_str().unwrap(),
        input.to_str().unwrap(),
        "--backend",
        "cpu",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("output directory is the input directory"),
        "{}",
        stderr(&o)
    );
    assert_eq!(before, snapshot(&input), "input changed");
    // Output under a file: cannot be created.
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    assert_refused(
        &input,
        &file.join("sub"),
        &[],
        &["cannot create output directory"],
    );
    assert_refused(&input, &file, &[], &["must be a directory"]);
    // Output that already holds frames: refused without --overwrite, replaced with it.
    let out = dir.path().join("out");
    let o = nitrate(&[
        "restore",
        "--stages",
        "levels",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        "--backend",
        "cpu",
        "-q",
    ]);
    assert!(o.status.success());
    let o = nitrate(&[
        "restore",
        "--stages",
        "levels",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        "--backend",
        "cpu",
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("already holds 3 of the 3 frames")
            && stderr(&o).contains("--overwrite"),
        "{}",
        stderr(&o)
    );
    let o = nitrate(&[
        "restore",
        "--stages",
        "levels",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        "--backend",
        "cpu",
        "-q",
        "--overwrite",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn unknown_stage_parameter_and_format_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("scans"), dir.path().join("out"));
    dpx_sequence(&input, 2, 16, 12);
    assert_refused(
        &input,
        &output,
        &["--stages", "levels,sharpen"],
        &["unknown stage 'sharpen'"],
    );
    assert_refused(
        &input,
        &output,
        &["--stages", "levels", "--set", "levels.blak=0.1"],
        &["has no parameter 'blak'", "did you mean 'black'?"],
    );
    assert_refused(
        &input,
        &output,
        &["--stages", "levels", "--set", "levels.gamma=50"],
        &["gamma = 50", "0.1 to 10"],
    );
    let masks = dir.path().join("masks");
    assert_refused(
        &input,
        &output,
        &[
            "--stages",
            "levels",
            "--emit-masks",
            masks.to_str().unwrap(),
        ],
        &["--emit-masks", "no stage that repairs defects"],
    );
    // Masks never go among the scans: not into their folder, nor with it as DIR/dust.
    assert_refused(
        &input,
        &output,
        &["--stages", "dust", "--emit-masks", input.to_str().unwrap()],
        &["--emit-masks", "the input's folder"],
    );
    assert!(
        !input.join("dust").exists(),
        "a mask folder was made among the scans"
    );
    let holder = dir.path().join("reel");
    let named_dust = holder.join("dust");
    dpx_sequence(&named_dust, 2, 16, 12);
    assert_refused(
        &named_dust,
        &output,
        &["--stages", "dust", "--emit-masks", holder.to_str().unwrap()],
        &["--emit-masks", "the input's folder"],
    );
    let o = nitrate(&[
        "restore",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "--stages",
        "levels",
        "--threads",
        "100000",
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "--threads 100000 is a usage error"
    );
    assert!(
        stderr(&o).contains("1..=1024") || stderr(&o).contains("1024"),
        "{}",
        stderr(&o)
    );
    let o = nitrate(&[
        "restore",
        "--stages",
        "levels",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "--format",
        "gif",
    ]);
    assert_eq!(o.status.code(), Some(2), "usage errors exit 2");
}

#[test]
fn stage_aliases_and_format_conversion() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("scans"), dir.path().join("out"));
    dpx_sequence(&input, 2, 16, 12);
    for format in ["dpx16", "tiff16", "png16", "exr16", "exr32"] {
        let out = output.join(format);
        let o = nitrate(&[
            "restore",
            "--stages",
            "levels",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
            "--backend",
            "cpu",
            "-q",
            "--format",
            format,
        ]);
        assert!(o.status.success(), "{format}: {}", stderr(&o));
        let files: Vec<String> = files_in(&out)
            .into_iter()
            .filter(|f| f.starts_with("scan_"))
            .collect();
        assert_eq!(files.len(), 2, "{format}: {files:?}");
        // 10-bit codes survive any 16-bit or float container exactly (to half precision for exr16).
        let back = io::read_frame(&out.join(&files[0])).unwrap();
        let src = io::read_frame(&input.join("scan_001001.dpx")).unwrap();
        let tol = if format == "exr16" {
            5e-4
        } else {
            1.0 / 65535.0 / 2.0 + 1e-7
        };
        let worst = src
            .data
            .iter()
            .zip(&back.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst <= tol, "{format}: worst difference {worst}");
    }
}

#[test]
fn ctrl_c_finishes_frames_in_hand_and_leaves_nothing_partial() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("scans"), dir.path().join("out"));
    let n = 400;
    std::fs::create_dir_all(&input).unwrap();
    for t in 0..n {
        let f = scene_frame(192, 128, 3, t, 3);
        io::write_frame(
            &input.join(format!("f_{t:05}.png")),
            &f,
            OutputFormat::Png { bits: 16 },
        )
        .unwrap();
    }
    let child = Command::new(env!("CARGO_BIN_EXE_nitrate"))
        .args([
            "restore",
            "--stages",
            "levels",
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            "--backend",
            "cpu",
            "--threads",
            "1",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the run is under way.
    let start = std::time::Instant::now();
    while files_in(&output)
        .iter()
        .filter(|f| f.ends_with(".png"))
        .count()
        < 3
    {
        assert!(start.elapsed().as_secs() < 120, "restore never started");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(stderr(&o).contains("whole and kept"), "{}", stderr(&o));
    let written: Vec<String> = files_in(&output);
    assert!(
        written.iter().all(|f| !f.contains("partial")),
        "partial files left: {written:?}"
    );
    let frames: Vec<&String> = written.iter().filter(|f| f.ends_with(".png")).collect();
    assert!(frames.len() < n, "the run stopped early");
    for f in frames {
        io::read_frame(&output.join(f))
            .unwrap_or_else(|e| panic!("{f} is not a whole frame: {e:#}"));
    }
}

#[test]
fn gpu_backend_matches_cpu_and_checks_itself() {
    if common::gpu().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("scans");
    dpx_sequence(&input, 3, 96, 54);
    let run = |backend: &str, out: &Path, extra: &[&str]| {
        let mut args = vec![
            "restore",
            "--stages",
            "levels",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
            "--backend",
            backend,
            "-q",
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[
            "--set",
            "levels.black=[0.02,0.03,0.04]",
            "--set",
            "levels.gamma=1.3",
        ]);
        let o = nitrate(&args);
        assert!(o.status.success(), "{backend}: {}", stderr(&o));
        o
    };
    let (cpu_out, gpu_out) = (dir.path().join("cpu"), dir.path().join("gpu"));
    run("cpu", &cpu_out, &[]);
    let o = run("gpu", &gpu_out, &["--check-gpu"]);
    assert!(stderr(&o).contains("backend: GPU"), "{}", stderr(&o));
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(gpu_out.join("restoration.json")).unwrap()).unwrap();
    let check = &record["gpu_checks"][0];
    assert_eq!(check["stage"], "levels");
    assert_eq!(check["frames"], 3);
    assert!(check["max_abs_diff"].as_f64().unwrap() <= check["tolerance"].as_f64().unwrap());
    // Written 10-bit codes agree; a GPU result within tolerance may round to the next code
    // only where the exact value sits on a rounding boundary.
    let (mut flips, mut total) = (0, 0);
    for name in files_in(&cpu_out)
        .into_iter()
        .filter(|f| f.ends_with(".dpx"))
    {
        let (a, b) = (
            io::read_frame(&cpu_out.join(&name)).unwrap(),
            io::read_frame(&gpu_out.join(&name)).unwrap(),
        );
        for (x, y) in a.data.iter().zip(&b.data) {
            let d = ((x - y) * 1023.0).round().abs();
            assert!(d <= 1.0, "{name}: codes differ by {d}");
            flips += d as usize;
            total += 1;
        }
    }
    assert!(flips * 1000 <= total, "{flips} of {total} codes differ");

    // Packed 10-bit in, 16-bit out (unpacked on the GPU, downloaded as f32): same as the CPU.
    let (cpu16, gpu16) = (dir.path().join("cpu16"), dir.path().join("gpu16"));
    run("cpu", &cpu16, &["--format", "dpx16"]);
    run("gpu", &gpu16, &["--format", "dpx16"]);
    for name in files_in(&cpu16).into_iter().filter(|f| f.ends_with(".dpx")) {
        let (a, b) = (
            io::read_frame(&cpu16.join(&name)).unwrap(),
            io::read_frame(&gpu16.join(&name)).unwrap(),
        );
        let worst = a
            .data
            .iter()
            .zip(&b.data)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(
            worst <= 1.0 / 65535.0 + 1e-7,
            "{name}: 16-bit outputs differ by {worst}"
        );
    }
}

#[test]
fn demo_runs_on_cpu_and_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let mut backends = vec!["cpu"];
    if common::gpu().is_some() {
        backends.push("gpu");
    }
    for backend in backends {
        let out = dir.path().join(backend);
        let o = nitrate(&[
            "demo",
            out.to_str().unwrap(),
            "--length",
            "5",
            "--size",
            "96x64",
            "--backend",
            backend,
        ]);
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{backend}: {}", stderr(&o));
        for want in ["PSNR dB", "degraded", "restored", "before_after.png"] {
            assert!(
                text.contains(want),
                "{backend}: demo output lacks '{want}':\n{text}"
            );
        }
        for sub in ["clean", "degraded", "mask", "restored"] {
            assert_eq!(
                files_in(&out.join(sub))
                    .iter()
                    .filter(|f| f.starts_with("demo_"))
                    .count(),
                5,
                "{backend}: {sub}"
            );
        }
        let sheet = io::read_frame(&out.join("before_after.png")).unwrap();
        assert_eq!((sheet.width, sheet.height), (3 * 96 + 2 * 4, 64));
        assert!(
            out.join("truth.json").is_file() && out.join("restored/restoration.json").is_file()
        );
    }
}

/// `--no-fsync` writes the same frames, only without flushing each to the disk before it is
/// renamed into place (which a test cannot observe short of a power cut).
#[test]
fn no_fsync_writes_the_same_frames() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    dpx_sequence(&input, 3, 32, 16);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for (out, extra) in [(&a, None), (&b, Some("--no-fsync"))] {
        let mut args = vec![
            "restore",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
            "-q",
        ];
        args.extend(extra);
        let o = nitrate(&args);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let frames = |d: &Path| -> BTreeMap<PathBuf, Vec<u8>> {
        snapshot(d)
            .into_iter()
            .filter(|(p, _)| p.extension().is_some_and(|e| e == "dpx"))
            .map(|(p, v)| (p.file_name().unwrap().into(), v))
            .collect()
    };
    assert_eq!(frames(&a).len(), 3);
    assert_eq!(frames(&a), frames(&b));
}

/// A broken link, a link loop, a FIFO or a directory in a frame's place is refused by name
/// and reason, with `--allow-gaps` too (it used to count as a missing frame, or be skipped).
#[test]
fn what_stands_in_a_frames_place_is_named() {
    let dir = tempfile::tempdir().unwrap();
    type Make = fn(&Path);
    let cases: [(&str, &str, Make); 4] = [
        ("broken", "broken", |p| {
            std::os::unix::fs::symlink("nowhere.dpx", p).unwrap()
        }),
        ("loop", "link loop", |p| {
            std::os::unix::fs::symlink(p.file_name().unwrap(), p).unwrap()
        }),
        ("fifo", "FIFO", |p| {
            let made = std::process::Command::new("mkfifo")
                .arg(p)
                .status()
                .unwrap();
            assert!(made.success());
        }),
        ("dir", "a directory", |p| std::fs::create_dir(p).unwrap()),
    ];
    for (name, reason, make) in cases {
        let input = dir.path().join(name);
        dpx_sequence(&input, 4, 16, 8);
        let frame = input.join("scan_001002.dpx");
        std::fs::remove_file(&frame).unwrap();
        make(&frame);
        for extra in [None, Some("--allow-gaps")] {
            let out = dir.path().join(format!("out-{name}"));
            let mut args = vec!["restore", input.to_str().unwrap(), out.to_str().unwrap()];
            args.extend(["--stages", "none", "-q"]);
            args.extend(extra);
            let o = nitrate(&args);
            let err = stderr(&o);
            assert!(!o.status.success(), "{name} {extra:?}: {err}");
            assert!(
                err.contains("scan_001002.dpx") && err.contains(reason),
                "{name} {extra:?}: {err}"
            );
            assert!(
                !out.exists() || files_in(&out).is_empty(),
                "{name}: output left"
            );
        }
    }
}

/// A frame that fails to decode mid-run (its header reads, its data is cut) fails the run
/// naming the file, and the output folder the run made is gone again, not left empty.
#[test]
fn a_decode_failure_leaves_no_output_folder() {
    let dir = tempfile::tempdir().unwrap();
    for (ext, format) in [
        ("png", OutputFormat::Png { bits: 16 }),
        ("tif", OutputFormat::Tiff { bits: 16 }),
        ("exr", OutputFormat::Exr { half: true }),
    ] {
        let input = dir.path().join(format!("in-{ext}"));
        std::fs::create_dir_all(&input).unwrap();
        for t in 0..4 {
            let mut f = scene_frame(64, 48, 3, t, 9);
            f.meta.bit_depth = 16;
            let path = input.join(format!("f_{:04}.{ext}", t + 1));
            io::write_frame(&path, &f, format).unwrap();
        }
        let cut = input.join(format!("f_0003.{ext}"));
        let bytes = std::fs::read(&cut).unwrap();
        std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
        let out = dir.path().join(format!("new-{ext}/out"));
        let o = nitrate(&[
            "restore",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
            "-q",
        ]);
        let err = stderr(&o);
        assert!(!o.status.success(), "{ext}: {err}");
        assert!(err.contains(&format!("f_0003.{ext}")), "{ext}: {err}");
        assert!(
            !dir.path().join(format!("new-{ext}")).exists(),
            "{ext}: folder left"
        );
    }
}
