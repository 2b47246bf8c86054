//! `nitrate preview`: the sheet shows exactly what a whole run gives the chosen frames, reads
//! only them and their context, and shows where each stage changed the picture.

use std::path::Path;
use std::process::Command;

use nitrate::frame::Frame;
use nitrate::io::{self, OutputFormat};
use nitrate::synth::scene_frame;

const W: usize = 40;
const H: usize = 24;
const GAP: usize = 2;

fn nitrate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nitrate"))
        .args(args)
        .output()
        .unwrap()
}

fn sequence(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for t in 0..n {
        let mut f = scene_frame(W, H, 3, t, 3);
        // Flicker, so the deflicker stage has something to change.
        let gain = 1.0 + 0.08 * ((t * 7 % 5) as f32 - 2.0) / 2.0;
        f.data.iter_mut().for_each(|v| *v *= gain);
        io::write_frame(
            &dir.join(format!("f_{:04}.png", 101 + t)),
            &f,
            OutputFormat::Png { bits: 16 },
        )
        .unwrap();
    }
}

/// The sheet's panel at `row`, `col` as 0..1 values.
fn panel(sheet: &Frame, row: usize, col: usize) -> Frame {
    let mut p = Frame::new(W, H, 3, sheet.meta.clone());
    for c in 0..3 {
        for y in 0..H {
            for x in 0..W {
                p.set(
                    c,
                    x,
                    y,
                    sheet.get(c, col * (W + GAP) + x, row * (H + GAP) + y),
                );
            }
        }
    }
    p
}

fn max_diff(a: &Frame, b: &Frame) -> f32 {
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn sheet_shows_what_a_whole_run_gives_and_what_each_stage_changed() {
    let dir = tempfile::tempdir().unwrap();
    let (input, whole, sheet_path) = (
        dir.path().join("in"),
        dir.path().join("whole"),
        dir.path().join("sheet.png"),
    );
    sequence(&input, 30);
    let chain = [
        "--stages",
        "deflicker,levels",
        "--set",
        "deflicker.window=3",
        "--set",
        "levels.black=0.1",
        "--set",
        "levels.white=0.5",
        "--backend",
        "cpu",
    ];
    let mut args = vec![
        "restore",
        input.to_str().unwrap(),
        whole.to_str().unwrap(),
        "-q",
    ];
    args.extend(chain);
    let o = nitrate(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let mut args = vec![
        "preview",
        input.to_str().unwrap(),
        "--frames",
        "105,120",
        "--panel-width",
        "40",
        "-o",
        sheet_path.to_str().unwrap(),
    ];
    args.extend(chain);
    let o = nitrate(&args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    // Frames 105 and 120 with the chain's context of 3 on each side, nothing else.
    assert!(err.contains("14 frames read"), "{err}");
    assert!(
        err.contains("before | after | split | deflicker changed | levels changed"),
        "{err}"
    );

    let sheet = io::read_frame(&sheet_path).unwrap();
    assert_eq!(
        (sheet.width, sheet.height),
        (5 * (W + GAP) - GAP, 2 * (H + GAP) - GAP)
    );
    for (row, number) in [(0, 105), (1, 120)] {
        let name = format!("f_{number:04}.png");
        let before = io::read_frame(&input.join(&name)).unwrap();
        let restored = io::read_frame(&whole.join(&name)).unwrap();
        let clamp = |f: &Frame| {
            let mut f = f.clone();
            f.data.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
            f
        };
        // 8-bit sheet: within half a code value plus rounding.
        let tol = 0.6 / 255.0;
        let d = max_diff(&panel(&sheet, row, 0), &clamp(&before));
        assert!(d <= tol, "frame {number} 'before' differs by {d}");
        let d = max_diff(&panel(&sheet, row, 1), &clamp(&restored));
        assert!(
            d <= tol,
            "frame {number} 'after' differs from a whole run by {d}"
        );
        // Split: left half before, right half after.
        let split = panel(&sheet, row, 2);
        assert!((split.get(0, 3, 10) - clamp(&before).get(0, 3, 10)).abs() <= tol);
        assert!((split.get(0, W - 3, 10) - clamp(&restored).get(0, W - 3, 10)).abs() <= tol);
        // Levels changed every pixel a lot: its overlay is coloured (red well above blue)
        // nearly everywhere.
        let levels = panel(&sheet, row, 4);
        let coloured = (0..H * W)
            .filter(|&i| levels.data[i] - levels.data[2 * H * W + i] > 0.3)
            .count();
        assert!(
            coloured > H * W * 9 / 10,
            "levels overlay coloured at {coloured} px"
        );
    }

    // The GPU backend draws the same sheet (CI runs this on lavapipe).
    if std::env::var("NITRATE_REQUIRE_GPU").as_deref() == Ok("1") {
        let gpu_sheet = dir.path().join("gpu.png");
        let mut args = vec![
            "preview",
            input.to_str().unwrap(),
            "--frames",
            "105,120",
            "--panel-width",
            "40",
            "-o",
            gpu_sheet.to_str().unwrap(),
        ];
        args.extend(&chain[..chain.len() - 2]);
        args.extend(["--backend", "gpu"]);
        let o = nitrate(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let d = max_diff(&io::read_frame(&gpu_sheet).unwrap(), &sheet);
        assert!(d <= 1.0 / 255.0 + 1e-6, "GPU sheet differs by {d}");
    }
}

#[test]
fn an_unchanging_stage_shows_grey_and_bad_frames_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    sequence(&input, 6);
    let sheet_path = dir.path().join("sheet.png");
    let o = nitrate(&[
        "preview",
        input.to_str().unwrap(),
        "--frames",
        "103",
        "--stages",
        "levels",
        "--panel-width",
        "40",
        "--backend",
        "cpu",
        "-o",
        sheet_path.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sheet = io::read_frame(&sheet_path).unwrap();
    let overlay = panel(&sheet, 0, 3);
    let (r, b) = (&overlay.data[..H * W], &overlay.data[2 * H * W..]);
    let most = r
        .iter()
        .zip(b)
        .map(|(r, b)| (r - b).abs())
        .fold(0.0, f32::max);
    assert!(
        most <= 1.0 / 255.0,
        "identity levels shows a change of {most}"
    );

    let o = nitrate(&[
        "preview",
        input.to_str().unwrap(),
        "--frames",
        "103,999",
        "--stages",
        "levels",
        "-o",
        dir.path().join("other.png").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("has no frame 999") && err.contains("frames 101-106"),
        "{err}"
    );
    assert!(!dir.path().join("other.png").exists());
}

#[test]
fn a_video_previews_like_the_sequence_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (input, video) = (dir.path().join("in"), dir.path().join("in.mkv"));
    sequence(&input, 24);
    // FFV1 holds the 16-bit frames exactly (tests/video.rs), so both sheets must agree.
    let o = nitrate(&[
        "restore",
        input.to_str().unwrap(),
        video.to_str().unwrap(),
        "--stages",
        "none",
        "-q",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let preview = |from: &Path, frames: &str, out: &str| {
        let sheet = dir.path().join(out);
        let o = nitrate(&[
            "preview",
            from.to_str().unwrap(),
            "--frames",
            frames,
            "--stages",
            "deflicker",
            "--set",
            "deflicker.window=3",
            "--panel-width",
            "40",
            "--backend",
            "cpu",
            "-o",
            sheet.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{err}");
        (io::read_frame(&sheet).unwrap(), err)
    };
    let (from_seq, _) = preview(&input, "105,120", "seq.png");
    // A video's frames count from 0: sequence frame 105 is video frame 4.
    let (from_video, err) = preview(&video, "4,19", "video.png");
    assert!(err.contains("14 frames read"), "{err}");
    let d = max_diff(&from_seq, &from_video);
    assert!(
        d == 0.0,
        "video sheet differs from the sequence sheet by {d}"
    );

    let o = nitrate(&[
        "preview",
        video.to_str().unwrap(),
        "--frames",
        "24",
        "--stages",
        "levels",
        "-o",
        dir.path().join("none.png").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("in.mkv") && err.contains("has no frame 24") && err.contains("frames 0-23"),
        "{err}"
    );
}
