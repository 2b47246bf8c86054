//! GPU kernels against their CPU twins. Every test skips without a GPU adapter unless
//! `NITRATE_REQUIRE_GPU=1` (CI sets it and runs on lavapipe).

mod common;

use common::{compare, gpu, random_frame, Rng};
use nitrate::frame::{Frame, FrameMeta};
use nitrate::gpu::{GpuContext, Kernel};
use nitrate::io::dpx::{pack_filled10, unpack_filled10, words_per_line_filled10};
use nitrate::stages::levels::{self, LevelsParams, PerChannel};

/// Odd sizes catch edge workgroups and DPX lines ending mid-word.
const SHAPES: &[(usize, usize, usize)] = &[
    (257, 131, 1),
    (257, 131, 3),
    (1, 1, 1),
    (1, 1, 3),
    (2, 3, 3),
    (33, 17, 1),
    (64, 16, 3),
];

fn levels_cases() -> Vec<LevelsParams> {
    let all = |b, w, g| LevelsParams {
        black: PerChannel::All(b),
        white: PerChannel::All(w),
        gamma: PerChannel::All(g),
    };
    vec![
        LevelsParams::default(),
        all(0.05, 0.9, 2.2),
        all(-0.2, 1.5, 0.45),
        all(0.1, 0.8, 1.0),
        // Extremes of the valid ranges: outputs reach 10^3, compared relative above 1.
        all(0.0, 1.0, 0.1),
        all(0.0, 1.0, 10.0),
        all(0.45, 0.451, 1.0),
        LevelsParams {
            black: PerChannel::Each([0.0, 0.02, 0.04]),
            white: PerChannel::Each([0.95, 1.0, 0.9]),
            gamma: PerChannel::Each([0.8, 1.0, 1.25]),
        },
    ]
}

#[test]
fn levels_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    for (case, params) in levels_cases().iter().enumerate() {
        params.validate().unwrap();
        for (i, &(w, h, planes)) in SHAPES.iter().enumerate() {
            let frame = random_frame(w, h, planes, 1000 + i as u64);
            let mut want = frame.clone();
            levels::cpu::apply(&mut want, params);

            let input = gpu.upload(&frame).unwrap();
            let output = levels::gpu::apply(&gpu, &input, params).unwrap();
            let got = gpu.download(&output).unwrap();
            let name = format!("levels case {case} {w}x{h}x{planes}");
            compare(&name, &got, &want, levels::GPU_TOLERANCE).assert_ok();
            // The input stays as it was.
            compare(
                &format!("{name} input"),
                &gpu.download(&input).unwrap(),
                &frame,
                0.0,
            )
            .assert_ok();
            gpu.recycle(input);
            gpu.recycle(output);
        }
    }
}

#[test]
fn upload_download_is_bit_exact() {
    let Some(gpu) = gpu() else { return };
    for (i, &(w, h, planes)) in SHAPES.iter().enumerate() {
        let mut frame = random_frame(w, h, planes, 2000 + i as u64);
        let specials = [
            f32::NAN,
            f32::INFINITY,
            -0.0,
            f32::MIN_POSITIVE / 4.0,
            f32::MAX,
            -1e30,
        ];
        for (v, s) in frame.data.iter_mut().zip(specials) {
            *v = s;
        }
        frame.meta.bit_depth = 10;
        let back = gpu.download(&gpu.upload(&frame).unwrap()).unwrap();
        let bits = |f: &Frame| f.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&frame), "{w}x{h}x{planes}");
        assert_eq!(back.meta, frame.meta);
    }
}

/// Random words with the padding bits set too: both sides must ignore them.
fn random_words(width: usize, height: usize, planes: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    (0..words_per_line_filled10(width, planes) * height)
        .map(|_| rng.next_u32())
        .collect()
}

#[test]
fn dpx10_unpack_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    for (i, &(w, h, planes)) in SHAPES.iter().enumerate() {
        for big_endian in [false, true] {
            let words = random_words(w, h, planes, 3000 + i as u64);
            let want = unpack_filled10(&words, big_endian, w, h, planes);
            let frame = gpu
                .upload_dpx10(&words, big_endian, w, h, planes, FrameMeta::default())
                .unwrap();
            let got = gpu.download(&frame).unwrap();
            let bits = |d: &[f32]| d.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&got.data),
                bits(&want),
                "{w}x{h}x{planes} big_endian={big_endian}"
            );
        }
    }
}

/// Values where rounding is easy to get wrong: exact codes, half-way points and their
/// neighbours, out of range, and non-finite.
fn tricky_values() -> Vec<f32> {
    let mut v = vec![
        f32::NAN,
        -f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        -0.0,
        0.0,
        -1e-30,
        1e-45,
        1.0,
        2.0,
        -3.0,
    ];
    for code in (0..=1023).step_by(7).chain([1022, 1023]) {
        for x in [code as f32 / 1023.0, (code as f32 + 0.5) / 1023.0] {
            v.extend((x.to_bits().saturating_sub(2)..=x.to_bits() + 2).map(f32::from_bits));
        }
    }
    v
}

#[test]
fn dpx10_pack_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let tricky = tricky_values();
    for (i, &(w, h, planes)) in SHAPES.iter().enumerate() {
        let mut frame = random_frame(w, h, planes, 4000 + i as u64);
        // Every other sample tricky, the rest random, so each value meets every word slot.
        for (v, t) in frame
            .data
            .iter_mut()
            .step_by(2)
            .zip(tricky.iter().cycle().skip(i * 5))
        {
            *v = *t;
        }
        for big_endian in [false, true] {
            let want = pack_filled10(&frame.data, big_endian, w, h, planes);
            let got = gpu
                .download_dpx10(&gpu.upload(&frame).unwrap(), big_endian)
                .unwrap();
            assert_eq!(got.len(), want.len());
            if let Some(k) = (0..got.len()).find(|&k| got[k] != want[k]) {
                panic!(
                    "{w}x{h}x{planes} big_endian={big_endian}: word {k} is {:#010x}, CPU {:#010x}",
                    got[k], want[k]
                );
            }
        }
    }
}

#[test]
fn dpx10_round_trip_on_gpu() {
    let Some(gpu) = gpu() else { return };
    for &(w, h, planes) in SHAPES {
        for big_endian in [false, true] {
            // Padding bits clear, as a writer leaves them.
            let clean = pack_filled10(
                &unpack_filled10(&random_words(w, h, planes, 5), false, w, h, planes),
                big_endian,
                w,
                h,
                planes,
            );
            let frame = gpu
                .upload_dpx10(&clean, big_endian, w, h, planes, FrameMeta::default())
                .unwrap();
            assert_eq!(
                gpu.download_dpx10(&frame, big_endian).unwrap(),
                clean,
                "{w}x{h}x{planes}"
            );
        }
    }
}

#[test]
fn every_shader_compiles() {
    let Some(gpu) = gpu() else { return };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        // shared/ holds include-only modules, compiled as part of the shaders that use them.
        if path.extension().is_some_and(|e| e == "wgsl") {
            let source = std::fs::read_to_string(&path).unwrap();
            let name = path.file_stem().unwrap().to_string_lossy();
            if let Err(e) = gpu.compile(&name, &source) {
                panic!("{}: {e:#}", path.display());
            }
            count += 1;
        }
    }
    assert!(
        count >= 3,
        "found only {count} shaders in {}",
        dir.display()
    );
}

#[test]
fn gpu_errors_are_errors_not_panics() {
    let Some(gpu) = gpu() else { return };
    let err = gpu.compile(
        "broken",
        "@compute @workgroup_size(1) fn main() { let x: u32 = 1.5; }",
    );
    assert!(err.is_err(), "invalid WGSL compiled");
    eprintln!("invalid WGSL reports: {:#}", err.unwrap_err());

    let err = gpu.compile("include", "// #include shared/missing.wgsl\n");
    assert!(format!("{:#}", err.unwrap_err()).contains("shared/missing.wgsl"));

    // A binding missing from a dispatch is a validation error, reported by run_kernel.
    let kernel = Kernel {
        name: "test_copy",
        source: "@group(0) @binding(0) var<storage, read> a: array<f32>;\n\
                 @group(0) @binding(1) var<storage, read_write> b: array<f32>;\n\
                 @compute @workgroup_size(1) fn main() { b[0] = a[0]; }",
    };
    let frame = gpu.upload(&random_frame(4, 4, 1, 1)).unwrap();
    let err = gpu.run_kernel(&kernel, &[&frame.buffer], &[], [1, 1, 1]);
    assert!(err.is_err(), "dispatch with a missing binding succeeded");
    eprintln!("missing binding reports: {:#}", err.unwrap_err());
    // The context still works afterwards.
    let out = gpu.new_frame_like(&frame);
    gpu.run_kernel(&kernel, &[&frame.buffer, &out.buffer], &[], [1, 1, 1])
        .unwrap();
    assert_eq!(
        gpu.download(&out).unwrap().data[0],
        gpu.download(&frame).unwrap().data[0]
    );
}

#[test]
fn oversized_frame_is_a_clear_error() {
    let Some(gpu) = gpu() else { return };
    let l = gpu.limits();
    let max = l.max_storage_buffer_binding_size.min(l.max_buffer_size);
    if max > 1 << 30 {
        eprintln!(
            "skipping: {} binds {} MiB, too much to fill in a test",
            gpu.describe(),
            max >> 20
        );
        return;
    }
    // A tenth over the limit, in the shape of a tall monochrome scan.
    let width = 8192;
    let frame = Frame::new(
        width,
        (max / (width as u64 * 4)) as usize * 11 / 10,
        1,
        FrameMeta::default(),
    );
    let err = gpu
        .upload(&frame)
        .expect_err("a frame over the binding limit uploaded");
    eprintln!("{err:#}");
    assert!(format!("{err:#}").contains("MiB"), "{err:#}");
}

#[test]
fn buffers_are_reused_across_frames() {
    let Some(gpu) = gpu() else { return };
    let params = levels_cases()[1].clone();
    let run = |seed| {
        let input = gpu.upload(&random_frame(64, 48, 3, seed)).unwrap();
        let output = levels::gpu::apply(&gpu, &input, &params).unwrap();
        let words = gpu.download_dpx10(&output, true).unwrap();
        gpu.recycle(input);
        gpu.recycle(output);
        words
    };
    run(1);
    let after_first = gpu.buffers_allocated();
    for seed in 2..6 {
        run(seed);
    }
    assert_eq!(
        gpu.buffers_allocated(),
        after_first,
        "steady-state frames allocated new buffers"
    );
}

#[test]
fn adapters_are_described() {
    let Some(gpu) = gpu() else { return };
    let line = gpu.describe();
    eprintln!("{line}");
    assert!(line.starts_with("GPU: ") && line.contains(&gpu.info.name));
    let adapters = nitrate::gpu::list_adapters().unwrap();
    assert!(!adapters.is_empty());
    for a in &adapters {
        eprintln!("{a}");
    }
    // Software adapters are never picked for `--backend auto`.
    if adapters.iter().all(|a| a.contains("[software")) {
        let err = GpuContext::new(nitrate::gpu::AdapterChoice::HardwareOnly)
            .err()
            .expect("HardwareOnly took a software adapter");
        assert!(
            format!("{err:#}").contains("no hardware GPU adapter"),
            "{err:#}"
        );
    }
    let first = GpuContext::new(nitrate::gpu::AdapterChoice::Index(0)).unwrap();
    assert_eq!(first.describe(), line, "Any and Index(0) differ");
    let err = GpuContext::new(nitrate::gpu::AdapterChoice::Index(adapters.len()))
        .err()
        .expect("out-of-range index");
    eprintln!("{err:#}");
}
