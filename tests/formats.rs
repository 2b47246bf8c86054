//! Every format round-trips within its precision, and carries the metadata it has room for.

use nitrate::frame::{max_code, Frame, SampleKind, Timecode};
use nitrate::io::{self, FileFormat, OutputFormat};
use nitrate::synth::{hash01, scene_frame};

fn random_frame(w: usize, h: usize, planes: usize, seed: u64) -> Frame {
    let mut f = scene_frame(w, h, planes, 3, seed);
    // Full-range random values exercise every code, not just the scene's range.
    for (i, v) in f.data.iter_mut().enumerate() {
        *v = hash01(i as u64, 0, 0, seed);
    }
    f
}

fn roundtrip(frame: &Frame, format: OutputFormat, name: &str) -> Frame {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    io::write_frame(&path, frame, format).unwrap();
    let info = io::read_info(&path).unwrap();
    assert_eq!(
        (info.width, info.height, info.planes),
        (frame.width, frame.height, frame.planes),
        "{name}"
    );
    io::read_frame(&path).unwrap()
}

/// Integer formats: the decoded codes equal the quantised input codes exactly.
fn assert_codes_exact(a: &Frame, b: &Frame, bits: u8) {
    let max = max_code(bits);
    for (i, (x, y)) in a.data.iter().zip(&b.data).enumerate() {
        let (cx, cy) = (
            nitrate::frame::quantise(*x, max),
            nitrate::frame::quantise(*y, max),
        );
        assert_eq!(cx, cy, "sample {i}: {x} vs {y} at {bits} bits");
        assert_eq!(
            *y,
            cy as f32 / max as f32,
            "decoded value is not a clean code at sample {i}"
        );
    }
}

#[test]
fn png_and_tiff_round_trip_codes_exactly() {
    for planes in [1, 3] {
        let frame = random_frame(37, 23, planes, 7 + planes as u64);
        for bits in [8u8, 16] {
            for (format, ext) in [
                (OutputFormat::Png { bits }, "png"),
                (OutputFormat::Tiff { bits }, "tif"),
            ] {
                let back = roundtrip(&frame, format, &format!("f.{ext}"));
                assert_eq!(back.meta.bit_depth, bits);
                assert_eq!(back.meta.sample, SampleKind::Integer);
                assert_codes_exact(&frame, &back, bits);
            }
        }
    }
}

#[test]
fn exr_half_and_float_round_trip_within_precision() {
    for planes in [1, 3] {
        let mut frame = random_frame(41, 19, planes, 11);
        frame.data[0] = -0.25; // scene-linear values below 0 and above 1 survive
        frame.data[1] = 7.5;
        frame.meta.timecode = Some(Timecode::from_hmsf(10, 59, 58, 23));
        frame.meta.frame_rate = Some(24000.0 / 1001.0);
        let float = roundtrip(&frame, OutputFormat::Exr { half: false }, "f.exr");
        assert_eq!(float.data, frame.data, "float EXR must be exact");
        assert_eq!(float.meta.sample, SampleKind::Float);
        assert_eq!(float.meta.timecode, frame.meta.timecode);
        assert!((float.meta.frame_rate.unwrap() - 23.976).abs() < 1e-3);
        let half = roundtrip(&frame, OutputFormat::Exr { half: true }, "h.exr");
        assert_eq!(half.meta.sample, SampleKind::Half);
        for (x, y) in frame.data.iter().zip(&half.data) {
            // Half floats keep 11 significant bits: relative error at most 2^-11.
            assert!((x - y).abs() <= x.abs() * 4.9e-4 + 1e-7, "{x} vs {y}");
        }
    }
}

#[test]
fn jpeg_is_read_within_its_lossy_precision() {
    let frame = scene_frame(64, 48, 3, 0, 5);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("still.jpg");
    let bytes: Vec<u8> = (0..64 * 48)
        .flat_map(|i| (0..3).map(move |p| (p, i)))
        .map(|(p, i)| (frame.data[p * 64 * 48 + i] * 255.0).round() as u8)
        .collect();
    image::save_buffer(&path, &bytes, 64, 48, image::ExtendedColorType::Rgb8).unwrap();
    let info = io::read_info(&path).unwrap();
    assert_eq!(info.format, FileFormat::Jpeg);
    let back = io::read_frame(&path).unwrap();
    let psnr = nitrate::metrics::psnr(&frame, &back);
    assert!(psnr > 30.0, "JPEG read PSNR {psnr}");
    // JPEG is read only; output defaults to 8-bit PNG, same depth and lossless.
    assert_eq!(OutputFormat::same_as(&info), OutputFormat::Png { bits: 8 });
}

#[test]
fn opaque_alpha_is_dropped_and_transparent_alpha_refused() {
    let dir = tempfile::tempdir().unwrap();
    let opaque = dir.path().join("opaque.png");
    let rgba: Vec<u8> = (0..16 * 8)
        .flat_map(|i| [i as u8, 2 * i as u8, 3, 255])
        .collect();
    image::save_buffer(&opaque, &rgba, 16, 8, image::ExtendedColorType::Rgba8).unwrap();
    let frame = io::read_frame(&opaque).unwrap();
    assert_eq!(frame.planes, 3);
    assert_eq!(frame.get(1, 5, 0), 10.0 / 255.0);
    let holey = dir.path().join("holey.png");
    let mut rgba = rgba;
    rgba[7] = 0;
    image::save_buffer(&holey, &rgba, 16, 8, image::ExtendedColorType::Rgba8).unwrap();
    let err = format!("{:#}", io::read_frame(&holey).unwrap_err());
    assert!(err.contains("holey.png") && err.contains("alpha"), "{err}");
}

#[test]
fn unreadable_files_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["junk.png", "junk.tif", "junk.exr", "junk.jpg"] {
        let path = dir.path().join(name);
        std::fs::write(&path, b"definitely not an image").unwrap();
        let err = format!("{:#}", io::read_info(&path).unwrap_err());
        assert!(err.contains(name), "{name}: {err}");
        let err = format!("{:#}", io::read_frame(&path).unwrap_err());
        assert!(err.contains(name), "{name}: {err}");
    }
    let err = format!(
        "{:#}",
        io::read_info(&dir.path().join("notes.txt")).unwrap_err()
    );
    assert!(err.contains("unsupported file type"), "{err}");
}

#[test]
fn atomic_write_leaves_no_temporary_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("missing-subdir").join("f.png");
    assert!(io::write_atomic(&target, b"x").is_err());
    let ok = dir.path().join("f.bin");
    io::write_atomic(&ok, b"abc").unwrap();
    assert_eq!(std::fs::read(&ok).unwrap(), b"abc");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "only the finished file remains: {names:?}");
}

#[test]
fn restored_frames_are_marked_in_their_headers() {
    let dir = tempfile::tempdir().unwrap();
    let mut frame = random_frame(9, 5, 3, 11);
    let mark = "nitrate 0.1.0: stabilise, deflicker, levels (preset default)";
    frame.meta.provenance = Some(mark.to_string());

    // PNG: tEXt Software and Comment, and the pixels are unchanged by the text.
    for bits in [8, 16] {
        let path = dir.path().join(format!("m{bits}.png"));
        io::write_frame(&path, &frame, OutputFormat::Png { bits }).unwrap();
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let reader = decoder.read_info().unwrap();
        let texts: Vec<(String, String)> = reader
            .info()
            .uncompressed_latin1_text
            .iter()
            .map(|t| (t.keyword.clone(), t.text.clone()))
            .collect();
        assert!(
            texts.contains(&("Comment".into(), mark.into())),
            "{texts:?}"
        );
        assert!(texts
            .iter()
            .any(|(k, v)| k == "Software" && v.starts_with("nitrate ")));
        assert_codes_exact(&frame, &io::read_frame(&path).unwrap(), bits);
    }

    // EXR: software and comments attributes.
    let path = dir.path().join("m.exr");
    io::write_frame(&path, &frame, OutputFormat::Exr { half: true }).unwrap();
    let meta = exr::meta::MetaData::read_from_file(&path, false).unwrap();
    let layer = &meta.headers[0].own_attributes;
    assert_eq!(
        layer.comments.as_ref().map(|t| t.to_string()),
        Some(mark.to_string())
    );
    assert!(layer
        .software_name
        .as_ref()
        .unwrap()
        .to_string()
        .starts_with("nitrate "));

    // DPX: the creator field (bytes 160..260), even when the source carried another creator.
    let path = dir.path().join("m.dpx");
    io::write_frame(&path, &frame, OutputFormat::parse("dpx10", 3).unwrap()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let creator = String::from_utf8_lossy(&bytes[160..260]);
    assert_eq!(creator.trim_end_matches('\0'), mark);
    let reread = io::read_frame(&path).unwrap();
    assert_eq!(reread.meta.dpx.unwrap().creator, mark);
}
