//! Pipeline overhead at 2048x1556: the whole restore run with an empty chain and with `levels`
//! on the CPU backend (decode + chain + encode, DPX 10-bit in and out), each stage alone on the
//! CPU with frames in memory (`scratch` on frames with two scratches; `upscale` 2x, so 2K to
//! 4K), and on the GPU when an
//! adapter exists: upload + download, upload + levels + download, packed DPX 10-bit
//! upload/unpack + pack/download, `scratch` with the window resident, and upload + stabilise,
//! denoise or upscale + download (the stages estimating their motion on the device). `denoise`
//! runs on frames with added grain (on clean frames it finds no noise and has nothing to do).
//!
//! `cargo bench --bench pipeline` (frames: NITRATE_BENCH_FRAMES, default 24;
//! NITRATE_BENCH_STAGE=name measures only that stage alone, on the CPU and on the GPU;
//! NITRATE_BENCH_STAGE=restore only the whole runs, with and without flushing each frame to
//! the disk).

use std::time::Instant;

use nitrate::frame::Frame;
use nitrate::gpu::{AdapterChoice, GpuContext, GpuFrame};
use nitrate::io::dpx::{self, DpxLayout, Packing};
use nitrate::io::sequence::Sequence;
use nitrate::io::{self, OutputFormat};
use nitrate::pipeline::chain::{Chain, Runner};
use nitrate::pipeline::{restore, Backend, RestoreJob};
use nitrate::stages::levels::{Levels, LevelsParams, PerChannel};
use nitrate::stages::{Stage, Window};
use nitrate::synth::{hash01, scene_frame};
use rayon::prelude::*;

const W: usize = 2048;
const H: usize = 1556;

fn levels() -> LevelsParams {
    LevelsParams {
        black: PerChannel::Each([0.05, 0.04, 0.06]),
        white: PerChannel::All(0.95),
        gamma: PerChannel::All(1.1),
    }
}

struct Cpu;

impl Runner<Frame> for Cpu {
    fn run(&mut self, stage: &dyn Stage, window: &Window<'_, Frame>) -> anyhow::Result<Frame> {
        stage.run_cpu(window)
    }
    fn release(&mut self, _frame: Frame) {}
}

struct Gpu<'g>(&'g GpuContext);

impl Runner<GpuFrame> for Gpu<'_> {
    fn run(
        &mut self,
        stage: &dyn Stage,
        window: &Window<'_, GpuFrame>,
    ) -> anyhow::Result<GpuFrame> {
        stage.run_gpu(self.0, window)
    }
    fn release(&mut self, frame: GpuFrame) {
        self.0.recycle(frame);
    }
}

/// `f` with a static bright scratch (3 px) and a dark one (2 px) wandering with the frame
/// number, both on a film strip that `stabilise` moved by up to 1.5 px (recorded in the
/// frame's `film_move`), for the `scratch` stage to find and repair.
fn with_scratches(f: &Frame, t: usize) -> Frame {
    let mut f = f.clone();
    let film = 3.0 * (hash01(t as u64, 0, 0, 29) - 0.5);
    f.meta.film_move = Some([film as f64, 0.0, 0.0, 1.0]);
    let t = t as f32;
    for (cx, width, level) in [
        (0.3 * W as f32 + film, 3.0f32, 0.95f32),
        (0.7 * W as f32 + 3.0 * (0.2 * t).sin() + film, 2.0, 0.08),
    ] {
        for y in 0..H {
            for x in (cx - width) as usize..=(cx + width) as usize {
                let d = (x as f32 - cx).abs();
                if d >= width {
                    continue;
                }
                let c = (std::f32::consts::FRAC_PI_2 * d / width).cos();
                let a = 0.6 * c * c;
                for p in 0..3 {
                    let v = &mut f.data[(p * H + y) * W + x];
                    *v += a * (level - *v);
                }
            }
        }
    }
    f
}

/// `f` with grain of about 0.02 * sqrt(level), a new field every frame, for `denoise`.
fn with_grain(f: &Frame, t: usize) -> Frame {
    let mut f = f.clone();
    f.data.par_iter_mut().enumerate().for_each(|(i, v)| {
        // Sum of four uniforms, centred and scaled to unit variance: near enough gaussian.
        let u: f32 = (0..4).map(|k| hash01(i as u64, t as u64, k, 5)).sum();
        *v += 0.02 * v.clamp(0.0, 1.0).sqrt() * (u - 2.0) * 3f32.sqrt();
    });
    f
}

fn rate(n: usize, t: Instant) -> f64 {
    n as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    nitrate::memory::keep_freed_memory();
    let n: usize = std::env::var("NITRATE_BENCH_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let only = std::env::var("NITRATE_BENCH_STAGE").ok();
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).expect("dir");
    let mut frame = scene_frame(W, H, 3, 0, 1);
    frame.meta.bit_depth = 10;
    let layout = DpxLayout {
        bits: 10,
        packing: Packing::FilledA,
        big_endian: true,
        planes: 3,
    };
    (0..n).into_par_iter().for_each(|i| {
        io::write_frame(
            &input.join(format!("f_{i:06}.dpx")),
            &frame,
            OutputFormat::Dpx(layout),
        )
        .expect("write")
    });
    println!(
        "nitrate pipeline overhead, {W}x{H} RGB DPX 10-bit, {n} frames, {} threads",
        rayon::current_num_threads()
    );

    let restores = if only.as_deref().is_some_and(|o| o != "restore") {
        vec![]
    } else {
        vec![
            ("restore, empty chain (CPU)", vec![], true),
            ("restore, empty chain, --no-fsync (CPU)", vec![], false),
            (
                "restore, levels (CPU)",
                vec![Box::new(Levels::new(levels()).expect("params")) as Box<dyn Stage>],
                true,
            ),
        ]
    };
    for (label, stages, durable) in restores {
        io::set_durable(durable);
        let out = dir.path().join(label.replace([' ', ',', '(', ')'], "_"));
        let job = RestoreJob {
            input: Sequence::discover(&input).expect("sequence").into(),
            output: out,
            format: None,
            frames: None,
            overwrite: true,
            allow_gaps: false,
            check_gpu: false,
            quiet: true,
            stages,
            backend: Backend::Cpu,
            record_extra: serde_json::Value::Null,
            video: Default::default(),
        };
        let t = Instant::now();
        restore(&job).expect("restore");
        println!("{label:<42} {:>8.1} frames/s", rate(n, t));
    }
    io::set_durable(true);
    if only.as_deref() == Some("restore") {
        return;
    }

    // Each stage alone on the CPU, frames in memory, streamed through the chain with its window.
    let frames: Vec<Frame> = (0..n)
        .map(|t| {
            let mut f = scene_frame(W, H, 3, t, 1);
            let gain = 1.0 + 0.05 * ((t * 7 % 5) as f32 - 2.0) / 2.0; // some flicker to remove
            f.data.iter_mut().for_each(|v| *v *= gain);
            f
        })
        .collect();
    let names: Vec<&str> = match &only {
        Some(n) => vec![n.as_str()],
        None => vec![
            "levels",
            "deflicker",
            "stabilise",
            "dust",
            "colour",
            "upscale",
            "denoise",
        ],
    };
    let grainy: Vec<Frame> = if names.contains(&"denoise") {
        frames
            .iter()
            .enumerate()
            .map(|(t, f)| with_grain(f, t))
            .collect()
    } else {
        Vec::new()
    };
    let input_for = |name: &str| if name == "denoise" { &grainy } else { &frames };
    // upscale (2x: 2K to 4K) once per method, the default `multi` last.
    let variants: Vec<(String, &str, &str)> = names
        .iter()
        .flat_map(|&name| match name {
            "upscale" => ["lanczos", "edge", "multi"]
                .iter()
                .map(|m| (format!("upscale {m} 2x"), name, *m))
                .collect::<Vec<_>>(),
            _ => vec![(name.to_string(), name, "")],
        })
        .collect();
    for (label, name, method) in &variants {
        let mut table = toml::Table::new();
        if !method.is_empty() {
            table.insert("method".into(), toml::Value::String(method.to_string()));
        }
        let stages = vec![nitrate::stages::build(name, &table).expect("stage")];
        let mut chain = Chain::new(&stages, n, 0, n - 1);
        let mut out = Vec::new();
        let t = Instant::now();
        for (i, f) in input_for(name).iter().enumerate() {
            chain
                .push(i, f.clone(), &mut Cpu, &mut out)
                .expect("stage runs");
            out.clear();
        }
        println!(
            "{:<42} {:>8.2} frames/s (input clone included)",
            format!("{label} alone (CPU)"),
            rate(n, t)
        );
    }

    // scratch alone on the CPU, on frames with two scratches to find and repair.
    let scratched: Vec<Frame> = frames
        .iter()
        .enumerate()
        .map(|(t, f)| with_scratches(f, t))
        .collect();
    let scratch = vec![nitrate::stages::build("scratch", &toml::Table::new()).expect("stage")];
    let mut chain = Chain::new(&scratch, n, 0, n - 1);
    let mut out = Vec::new();
    let t = Instant::now();
    for (i, f) in scratched.iter().enumerate() {
        chain
            .push(i, f.clone(), &mut Cpu, &mut out)
            .expect("stage runs");
        out.clear();
    }
    println!(
        "{:<42} {:>8.1} frames/s (input clone included)",
        "scratch alone, 2 scratches (CPU)",
        rate(n, t)
    );

    let gpu = match GpuContext::new(AdapterChoice::Any) {
        Ok(g) => g,
        Err(e) => {
            println!("GPU: none ({e:#})");
            return;
        }
    };
    println!("{}", gpu.describe());
    // Stages alone on the device: each frame uploaded, the chain run, the output downloaded.
    'stages: for &name in names
        .iter()
        .filter(|&&n| n == "stabilise" || n == "upscale" || n == "denoise")
    {
        let stages = vec![nitrate::stages::build(name, &toml::Table::new()).expect("stage")];
        let mut chain = Chain::new(&stages, n, 0, n - 1);
        let mut out = Vec::new();
        let t = Instant::now();
        for (i, f) in input_for(name).iter().enumerate() {
            let g = gpu.upload(f).expect("upload");
            // A 4K output frame exceeds the storage binding of some adapters (lavapipe).
            if let Err(e) = chain.push(i, g, &mut Gpu(&gpu), &mut out) {
                println!("{name} alone (GPU): {e:#}");
                continue 'stages;
            }
            for (_, g) in out.drain(..) {
                let back = gpu.download(&g).expect("download");
                gpu.recycle(g);
                drop(back);
            }
        }
        println!(
            "{:<42} {:>8.1} frames/s",
            format!("upload + {name} alone + download (GPU)"),
            rate(n, t)
        );
    }
    if only.is_some() {
        return;
    }
    let params = levels();
    let warm = gpu.upload(&frame).expect("upload");
    gpu.recycle(warm);
    let t = Instant::now();
    for _ in 0..n {
        let g = gpu.upload(&frame).expect("upload");
        let back = gpu.download(&g).expect("download");
        gpu.recycle(g);
        drop(back);
    }
    println!(
        "{:<42} {:>8.1} frames/s",
        "GPU upload + download (f32)",
        rate(n, t)
    );
    let t = Instant::now();
    for _ in 0..n {
        let g = gpu.upload(&frame).expect("upload");
        let out = nitrate::stages::levels::gpu::apply(&gpu, &g, &params).expect("levels");
        let back = gpu.download(&out).expect("download");
        gpu.recycle(g);
        gpu.recycle(out);
        drop(back);
    }
    println!(
        "{:<42} {:>8.1} frames/s",
        "GPU upload + levels + download (f32)",
        rate(n, t)
    );
    // scratch on the device: the window's frames resident, one output frame per step.
    let resident: Vec<_> = scratched
        .iter()
        .map(|f| gpu.upload(f).expect("upload"))
        .collect();
    let r = scratch[0].temporal_radius();
    let t = Instant::now();
    for i in 0..n {
        let window = Window {
            before: (1..=r)
                .filter(|d| i >= *d)
                .map(|d| &resident[i - d])
                .collect(),
            center: &resident[i],
            after: (1..=r)
                .filter(|d| i + d < n)
                .map(|d| &resident[i + d])
                .collect(),
        };
        let out = scratch[0].run_gpu(&gpu, &window).expect("scratch");
        gpu.download(&out).expect("download");
        gpu.recycle(out);
    }
    println!(
        "{:<42} {:>8.1} frames/s (frames resident, output downloaded)",
        "GPU scratch, 2 scratches",
        rate(n, t)
    );
    for f in resident {
        gpu.recycle(f);
    }
    let words = dpx::pack_filled10(&frame.data, true, W, H, 3);
    let t = Instant::now();
    for _ in 0..n {
        let g = gpu
            .upload_dpx10(&words, true, W, H, 3, frame.meta.clone())
            .expect("upload");
        let back = gpu.download_dpx10(&g, true).expect("download");
        gpu.recycle(g);
        drop(back);
    }
    println!(
        "{:<42} {:>8.1} frames/s",
        "GPU packed DPX10 upload + download",
        rate(n, t)
    );
}
