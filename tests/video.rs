//! Video files in and out through FFmpeg (which CI installs): lossless FFV1 round trips at 10
//! and 16 bits, frame rate, timecode and audio carried, chunks, and bad input refused with no
//! output left behind. Test videos are made here with ffmpeg's own generators.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::Rng;
use nitrate::frame::{Frame, FrameMeta, Timecode};
use nitrate::io::{self, OutputFormat};

fn nitrate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nitrate"))
        .args(args)
        .output()
        .expect("run nitrate")
}

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg must be installed for the video tests (apt-get install ffmpeg)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "nitrate failed: {}", text(&o));
    o
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A noisy test pattern in `pix_fmt` (noise so every code value bit matters), `n` frames.
fn make_video(path: &Path, pix_fmt: &str, n: usize, rate: &str, extra: &[&str]) {
    let src = format!("testsrc2=size=64x48:rate={rate},noise=alls=40:allf=t,format={pix_fmt}");
    let frames = n.to_string();
    let mut args = vec!["-f", "lavfi", "-i", &src];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-frames:v", &frames, "-c:v", "ffv1", s(path)]);
    ffmpeg(&args);
}

/// ffprobe's value of one entry, e.g. `stream=r_frame_rate` of the first video stream.
fn probe(path: &Path, entry: &str, stream: &str) -> String {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            stream,
            "-show_entries",
            entry,
        ])
        .args(["-of", "default=nw=1:nk=1", s(path)])
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The whole framemd5 header and hashes (stream parameters such as the aspect ratio included),
/// timestamps left out.
fn md5_full(path: &Path) -> Vec<String> {
    let out = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            s(path),
            "-map",
            "0:v",
        ])
        .args(["-f", "framemd5", "-"])
        .output()
        .expect("ffmpeg");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("#software"))
        .map(|l| match l.starts_with('#') {
            true => l.to_string(),
            false => l.rsplit(',').next().unwrap_or("").trim().to_string(),
        })
        .collect()
}

/// Per-frame MD5 of the decoded samples of stream `map`, in the stream's own pixel format
/// (audio: of the packets copied), with the timestamps left out.
fn md5s(path: &Path, map: &str) -> Vec<String> {
    let copy: &[&str] = if map.contains(":a") {
        &["-c", "copy"]
    } else {
        &[]
    };
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-i", s(path), "-map", map])
        .args(copy)
        .args(["-f", "framemd5", "-"])
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            format!("{} {}", f[4], f[5])
        })
        .collect()
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A video through nitrate with levels at its neutral defaults decodes to the same samples,
/// in every planar family: 10-bit YUV 4:2:2 and 4:2:0 through RGB f32 and back, 16-bit YUV
/// 4:4:4, 10-bit RGB, 16-bit gray. Rate, timecode and frame count are kept.
#[test]
fn ffv1_video_round_trip_is_bit_exact_at_10_and_16_bits() {
    let dir = tempfile::tempdir().unwrap();
    for pix_fmt in [
        "yuv422p10le",
        "yuv420p10le",
        "yuv444p16le",
        "gbrp10le",
        "gray16le",
    ] {
        let input = dir.path().join(format!("{pix_fmt}.mkv"));
        make_video(
            &input,
            pix_fmt,
            7,
            "24000/1001",
            // An anamorphic sample aspect ratio (750:481), to be carried exactly.
            &["-timecode", "01:02:03:04", "-aspect", "1000:481"],
        );
        let output = dir.path().join(format!("out-{pix_fmt}.mkv"));
        ok(nitrate(&[
            "restore",
            s(&input),
            s(&output),
            "--stages",
            "levels",
            "--backend",
            "cpu",
            "-q",
        ]));
        assert_eq!(
            probe(&output, "stream=pix_fmt", "v:0"),
            pix_fmt,
            "FFV1 keeps the source's pixel format"
        );
        let (a, b) = (md5s(&input, "0:v"), md5s(&output, "0:v"));
        assert_eq!(a.len(), 7);
        assert_eq!(
            a, b,
            "{pix_fmt}: decoded samples differ after a neutral run"
        );
        // Stream parameters too: size, pixel format, sample aspect ratio.
        assert_eq!(md5_full(&input), md5_full(&output), "{pix_fmt}");
        assert_eq!(probe(&output, "stream=r_frame_rate", "v:0"), "24000/1001");
        assert_eq!(probe(&output, "format_tags=timecode", "v:0"), "01:02:03:04");
    }
}

/// Audio streams are copied unchanged: the same packets, byte for byte.
#[test]
fn audio_is_copied_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("talkie.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=24,format=yuv422p10le",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000:duration=1",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=1000:sample_rate=44100:duration=1",
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-map",
        "2:a",
        "-frames:v",
        "24",
        "-c:v",
        "ffv1",
        "-c:a:0",
        "pcm_s24le",
        "-c:a:1",
        "flac",
        s(&input),
    ]);
    let out_dir = dir.path().join("out");
    ok(nitrate(&[
        "restore",
        s(&input),
        s(&out_dir),
        "--stages",
        "none",
        "--backend",
        "cpu",
        "-q",
    ]));
    // A directory OUTPUT gets the video named after the input, FFV1 by default.
    let output = out_dir.join("talkie.mkv");
    assert_eq!(probe(&output, "stream=codec_name", "v:0"), "ffv1");
    for stream in ["0:a:0", "0:a:1"] {
        let (a, b) = (md5s(&input, stream), md5s(&output, stream));
        assert!(!a.is_empty());
        assert_eq!(a, b, "audio stream {stream} changed");
    }
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("talkie.restoration.json")).unwrap())
            .unwrap();
    assert_eq!(record["input"]["video"], s(&input));
    assert_eq!(record["output"]["video"], s(&output));
    assert_eq!(
        record["output"]["audio_copied"],
        serde_json::json!(["pcm_s24le", "flac"])
    );
}

/// Random frames at the full code range of 10-bit DPX and 16-bit PNG, into FFV1 and back out
/// as frames: every code value survives; DPX frame rate and timecode go in and come back.
#[test]
fn sequence_to_ffv1_and_back_is_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    for (format, bits, ext) in [("dpx10", 10u8, "dpx"), ("png16", 16, "png")] {
        let seq = dir.path().join(format!("seq-{format}"));
        std::fs::create_dir_all(&seq).unwrap();
        let max = ((1u32 << bits) - 1) as f32;
        let mut rng = Rng::new(bits as u64);
        let mut originals = Vec::new();
        for i in 0..5 {
            let meta = FrameMeta {
                bit_depth: bits,
                frame_rate: Some(25.0),
                timecode: Some(Timecode::from_hmsf(2, 0, 0, i)),
                ..FrameMeta::default()
            };
            let mut f = Frame::new(33, 17, 3, meta);
            for v in &mut f.data {
                *v = (rng.next_u32() % (max as u32 + 1)) as f32 / max;
            }
            let path = seq.join(format!("reel_{:04}.{ext}", 1001 + i as usize));
            io::write_frame(&path, &f, OutputFormat::parse(format, 3).unwrap()).unwrap();
            originals.push(io::read_frame(&path).unwrap());
        }
        let video = dir.path().join(format!("{format}.mkv"));
        ok(nitrate(&[
            "restore",
            s(&seq),
            s(&video),
            "--stages",
            "none",
            "-q",
        ]));
        assert_eq!(
            probe(&video, "stream=pix_fmt", "v:0"),
            if bits == 10 { "gbrp10le" } else { "gbrp16le" }
        );
        if format == "dpx10" {
            // DPX carries rate and timecode; PNG has no room for them (24 fps is assumed).
            assert_eq!(probe(&video, "stream=r_frame_rate", "v:0"), "25/1");
            assert_eq!(probe(&video, "format_tags=timecode", "v:0"), "02:00:00:00");
        }
        let back = dir.path().join(format!("back-{format}"));
        ok(nitrate(&[
            "restore",
            s(&video),
            s(&back),
            "--format",
            format,
            "--stages",
            "none",
            "-q",
        ]));
        let names: Vec<String> = files(&back)
            .into_iter()
            .filter(|n| n.ends_with(ext))
            .collect();
        assert_eq!(names.len(), 5, "{names:?}");
        for (i, (name, want)) in names.iter().zip(&originals).enumerate() {
            let got = io::read_frame(&back.join(name)).unwrap();
            assert!(
                got.data == want.data,
                "{format} frame {i}: samples changed through FFV1"
            );
            assert_eq!(got.meta.timecode, want.meta.timecode, "{name}");
        }
    }
}

/// `--frames A-B` on a video restores exactly those frames; the timecode starts at A's.
#[test]
fn chunk_of_a_video_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("reel.mkv");
    make_video(
        &input,
        "yuv422p10le",
        10,
        "24",
        &["-timecode", "00:59:59:20"],
    );
    let out = dir.path().join("out");
    ok(nitrate(&[
        "restore",
        s(&input),
        s(&out),
        "--frames",
        "3-6",
        "--stages",
        "none",
        "-q",
    ]));
    assert_eq!(
        files(&out),
        vec![
            "reel.3-6.mkv",
            "reel.3-6.report.html",
            "reel.3-6.restoration.json"
        ]
    );
    let chunk = out.join("reel.3-6.mkv");
    assert_eq!(md5s(&chunk, "0:v"), md5s(&input, "0:v")[3..=6].to_vec());
    assert_eq!(probe(&chunk, "format_tags=timecode", "v:0"), "00:59:59:23");
}

/// The codecs of the trade encode, each in the pixel format of its profile.
#[test]
fn prores_dnxhr_h264_h265_encode() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=256x144:rate=25,format=yuv422p10le",
        "-frames:v",
        "3",
        "-c:v",
        "ffv1",
        s(&input),
    ]);
    for (format, file, codec, profile_pix) in [
        ("prores4444", "a.mov", "prores", "yuv444p12le"),
        ("prores422hq", "b.mov", "prores", "yuv422p10le"),
        ("dnxhr", "c.mov", "dnxhd", "yuv422p10le"),
        ("h264", "d.mp4", "h264", "yuv420p"),
        ("h265", "e.mp4", "hevc", "yuv420p10le"),
    ] {
        let out = dir.path().join(file);
        ok(nitrate(&[
            "restore",
            s(&input),
            s(&out),
            "--format",
            format,
            "--stages",
            "none",
            "-q",
        ]));
        assert_eq!(probe(&out, "stream=codec_name", "v:0"), codec, "{format}");
        assert_eq!(
            probe(&out, "stream=pix_fmt", "v:0"),
            profile_pix,
            "{format}"
        );
        assert_eq!(md5s(&out, "0:v").len(), 3, "{format}");
    }
    // Extra encoder options reach the encoder.
    let out = dir.path().join("crf.mp4");
    ok(nitrate(&[
        "restore",
        s(&input),
        s(&out),
        "--format",
        "h264",
        "--encoder-opts",
        "-crf 40 -g 1",
        "--stages",
        "none",
        "-q",
    ]));
    let record = std::fs::read_to_string(dir.path().join("crf.restoration.json")).unwrap();
    assert!(record.contains("\"40\""), "{record}");
}

/// A truncated file is refused before anything is written, naming the file and the damage.
#[test]
fn truncated_video_gives_a_clear_error_and_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.mkv");
    make_video(&whole, "yuv422p10le", 12, "24", &[]);
    let bytes = std::fs::read(&whole).unwrap();
    let cut = dir.path().join("cut.mkv");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    for out in [dir.path().join("out"), dir.path().join("out2/cut.mkv")] {
        let o = nitrate(&["restore", s(&cut), s(&out), "--stages", "none", "-q"]);
        assert!(!o.status.success());
        let err = text(&o);
        assert!(
            err.contains("cut.mkv") && err.contains("truncated"),
            "{err}"
        );
        assert!(
            !out.exists() || files(&out).is_empty(),
            "output left: {:?}",
            files(&out)
        );
        assert!(files(out.parent().unwrap())
            .iter()
            .all(|f| !f.contains("partial")));
    }
    assert_eq!(std::fs::read(&cut).unwrap(), &bytes[..bytes.len() / 2]);
    // probe reports it as a problem (exit 1).
    let o = nitrate(&["probe", s(&cut)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("truncated"));
}

/// A video that breaks off inside a frame's data (announced frames all present as packets,
/// the last one cut) fails while decoding: error, and no video written.
#[test]
fn video_cut_inside_a_frame_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.nut");
    // NUT stores packets back to back and announces no count: the damage shows only when
    // decoding reaches it.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=24,noise=alls=40:allf=t,format=yuv422p10le",
        "-frames:v",
        "12",
        "-c:v",
        "rawvideo",
        s(&whole),
    ]);
    let bytes = std::fs::read(&whole).unwrap();
    let cut = dir.path().join("cut.nut");
    std::fs::write(&cut, &bytes[..bytes.len() - 3000]).unwrap();
    let out = dir.path().join("out.mkv");
    let o = nitrate(&["restore", s(&cut), s(&out), "--stages", "none", "-q"]);
    assert!(!o.status.success(), "a cut file restored: {}", text(&o));
    assert!(text(&o).contains("cut.nut"), "{}", text(&o));
    assert_eq!(files(dir.path()), vec!["cut.nut", "whole.nut"]);
}

#[test]
fn missing_ffmpeg_no_video_stream_and_unencodable_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mkv");
    make_video(&input, "yuv420p", 3, "24", &[]);

    let o = nitrate(&[
        "restore",
        s(&input),
        s(&dir.path().join("o1")),
        "--ffmpeg",
        "/nonexistent/bin/ffmpeg",
    ]);
    assert!(!o.status.success());
    let err = text(&o);
    assert!(
        err.contains("/nonexistent/bin/ffmpeg") && err.contains("apt-get install ffmpeg"),
        "{err}"
    );

    let audio_only = dir.path().join("tone.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=duration=0.2",
        "-c:a",
        "flac",
        s(&audio_only),
    ]);
    let o = nitrate(&["restore", s(&audio_only), s(&dir.path().join("o2"))]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("tone.mkv: no video stream"),
        "{}",
        text(&o)
    );

    // H.264 4:2:0 needs an even frame size; 33x17 frames cannot be encoded.
    let seq = dir.path().join("odd");
    std::fs::create_dir_all(&seq).unwrap();
    for i in 0..2 {
        let f = Frame::new(33, 17, 3, FrameMeta::default());
        io::write_frame(
            &seq.join(format!("f_{i:03}.png")),
            &f,
            OutputFormat::Png { bits: 16 },
        )
        .unwrap();
    }
    let out = dir.path().join("o3/odd.mp4");
    let o = nitrate(&[
        "restore",
        s(&seq),
        s(&out),
        "--format",
        "h264",
        "--stages",
        "none",
        "-q",
    ]);
    assert!(!o.status.success());
    let err = text(&o);
    assert!(
        err.contains("odd.mp4") && err.contains("cannot encode H.264") && err.contains("divisible"),
        "{err}"
    );
    assert!(
        files(&dir.path().join("o3")).is_empty(),
        "{:?}",
        files(&dir.path().join("o3"))
    );

    // An image format cannot go into a video file name.
    let o = nitrate(&[
        "restore",
        s(&input),
        s(&dir.path().join("x.mkv")),
        "--format",
        "dpx10",
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("writes frame files into a directory"),
        "{}",
        text(&o)
    );
}

/// `probe` reports a video's rate, timecode, frame count and audio.
#[test]
fn probe_reports_video() {
    let dir = tempfile::tempdir().unwrap();
    let input: PathBuf = dir.path().join("p.mov");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=25,format=yuv422p10le",
        "-f",
        "lavfi",
        "-i",
        "sine=duration=0.2",
        "-frames:v",
        "5",
        "-c:v",
        "prores_ks",
        "-c:a",
        "pcm_s16le",
        "-timecode",
        "10:00:00:00",
        s(&input),
    ]);
    let o = ok(nitrate(&["probe", s(&input), "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["count"], 5);
    assert_eq!(v["frame_rate"], 25.0);
    assert_eq!(v["first_timecode"], "10:00:00:00");
    assert_eq!(v["audio"], serde_json::json!(["pcm_s16le"]));
    assert!(
        v["encoding"].as_str().unwrap().contains("10-bit YUV 4:2:2"),
        "{v}"
    );
}

/// Ctrl-C during a video output stops both FFmpeg children and leaves no file: neither the
/// video nor its temporary.
#[test]
fn ctrl_c_leaves_no_video_behind() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("long.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=24,format=yuv422p10le",
        "-frames:v",
        "1500",
        "-c:v",
        "ffv1",
        s(&input),
    ]);
    let out_dir = dir.path().join("out");
    let output = out_dir.join("long.mkv");
    let child = Command::new(env!("CARGO_BIN_EXE_nitrate"))
        .args(["restore", s(&input), s(&output), "--stages", "levels"])
        .args(["--backend", "cpu", "--threads", "1"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once FFmpeg is writing the temporary.
    let temp = out_dir.join(".long.mkv.nitrate-partial");
    let start = std::time::Instant::now();
    while std::fs::metadata(&temp).map_or(0, |m| m.len()) < 100_000 {
        assert!(start.elapsed().as_secs() < 120, "restore never started");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    // A video keeps nothing, and says so.
    assert!(text(&o).contains("nothing was written"), "{}", text(&o));
    assert!(files(&out_dir).is_empty(), "left: {:?}", files(&out_dir));
}

/// An `ffmpeg` in `dir` that runs the real one, then cuts its output file in half and, where
/// `says` is given, prints it as FFmpeg 5.1 does when the disk fills while it writes the
/// trailer, and exits 0 all the same. `ffprobe` beside it is the real one.
fn ffmpeg_that_loses_the_end(dir: &Path, says: Option<&str>) -> PathBuf {
    let find = |name: &str| {
        let out = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let (real, probe) = (find("ffmpeg"), find("ffprobe"));
    let fake = dir.join("ffmpeg");
    let say = says.map_or(String::new(), |m| format!("echo \"{m}\" >&2\n"));
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\n\"{real}\" \"$@\" || exit $?\nfor a in \"$@\"; do out=\"$a\"; done\n\
             case \"$out\" in *partial*) truncate -s $(( $(stat -c %s \"$out\") / 2 )) \"$out\";; esac\n\
             {say}exit 0\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(probe, dir.join("ffprobe")).unwrap();
    fake
}

/// FFmpeg 5.1 exits 0 when the disk fills while it writes the trailer. The video is checked
/// before it is put in place: an error in what FFmpeg said, or fewer frames read back than
/// were written, and the run fails, naming the file, with nothing left behind.
#[test]
fn a_video_ffmpeg_could_not_finish_is_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mkv");
    make_video(&input, "yuv422p10le", 24, "24", &[]);
    let says = "[matroska @ 0x5581] Error writing trailer of out.mkv: No space left on device";
    for (name, said) in [("loud", Some(says)), ("silent", None)] {
        let bin = dir.path().join(format!("bin-{name}"));
        std::fs::create_dir(&bin).unwrap();
        let fake = ffmpeg_that_loses_the_end(&bin, said);
        let out_dir = dir.path().join(format!("out-{name}"));
        let output = out_dir.join("out.mkv");
        let o = nitrate(&[
            "restore",
            s(&input),
            s(&output),
            "--stages",
            "none",
            "--ffmpeg",
            s(&fake),
            "-q",
        ]);
        let err = text(&o);
        assert!(!o.status.success(), "{name}: {err}");
        assert!(
            err.contains("out.mkv") && err.contains("not kept"),
            "{name}: {err}"
        );
        if said.is_some() {
            assert!(err.contains("No space left"), "{err}");
        }
        assert!(!output.exists(), "{name}: the cut video was put in place");
        assert!(
            files(&out_dir).iter().all(|f| !f.contains("partial")),
            "{name}: left {:?}",
            files(&out_dir)
        );
    }
    // The real FFmpeg, through the same path, passes the check.
    let output = dir.path().join("ok/out.mkv");
    ok(nitrate(&[
        "restore",
        s(&input),
        s(&output),
        "--stages",
        "none",
        "-q",
    ]));
    assert_eq!(md5s(&output, "0:v").len(), 24);
}
