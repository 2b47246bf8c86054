//! Decode and encode throughput per format at 2048x1556 (full-aperture 2K), frames/s, with the
//! files in the page cache. When `ffmpeg` is on PATH, its decode of the same DPX files is timed
//! beside ours.
//!
//! `cargo bench --bench formats` (frames per format: NITRATE_BENCH_FRAMES, default 24).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use nitrate::io::dpx::{DpxLayout, Packing};
use nitrate::io::{self, OutputFormat};
use nitrate::synth::scene_frame;
use rayon::prelude::*;

const W: usize = 2048;
const H: usize = 1556;

fn dpx(bits: u8, packing: Packing) -> OutputFormat {
    OutputFormat::Dpx(DpxLayout {
        bits,
        packing,
        big_endian: true,
        planes: 3,
    })
}

fn main() {
    nitrate::memory::keep_freed_memory();
    let n: usize = std::env::var("NITRATE_BENCH_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut frame = scene_frame(W, H, 3, 0, 1);
    frame.meta.bit_depth = 10;
    println!(
        "nitrate format throughput, {W}x{H} RGB, {n} frames each, {} threads",
        rayon::current_num_threads()
    );
    println!(
        "{:<22} {:>12} {:>12} {:>10}",
        "format", "decode f/s", "encode f/s", "MB/frame"
    );
    let formats = [
        ("dpx10 (filled A)", dpx(10, Packing::FilledA), "dpx"),
        ("dpx10 (packed)", dpx(10, Packing::Packed), "dpx"),
        ("dpx12 (filled A)", dpx(12, Packing::FilledA), "dpx"),
        ("dpx16", dpx(16, Packing::Packed), "dpx"),
        ("tiff16", OutputFormat::Tiff { bits: 16 }, "tif"),
        ("png16", OutputFormat::Png { bits: 16 }, "png"),
        ("exr16 (zip)", OutputFormat::Exr { half: true }, "exr"),
        ("exr32 (zip)", OutputFormat::Exr { half: false }, "exr"),
    ];
    for (label, format, ext) in formats {
        let sub = dir.path().join(label.split(' ').next().unwrap_or(label));
        std::fs::create_dir_all(&sub).expect("dir");
        let paths: Vec<_> = (0..n).map(|i| sub.join(format!("{i:06}.{ext}"))).collect();
        // Encode: all frames in parallel, as the pipeline's writer pool does.
        let t = Instant::now();
        paths
            .par_iter()
            .for_each(|p| io::write_frame(p, &frame, format).expect("write"));
        let enc = n as f64 / t.elapsed().as_secs_f64();
        let size = std::fs::metadata(&paths[0]).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
        // Warm the page cache, then time decode.
        paths.iter().for_each(|p| drop(std::fs::read(p)));
        let t = Instant::now();
        paths
            .par_iter()
            .for_each(|p| drop(io::read_frame(p).expect("read")));
        let dec = n as f64 / t.elapsed().as_secs_f64();
        println!("{label:<22} {dec:>12.1} {enc:>12.1} {size:>10.2}");
        if label.starts_with("dpx10 (filled") {
            ffmpeg_decode(&sub, n);
        }
    }
}

/// Time `ffmpeg` decoding the same DPX files to nothing (its own frame count, same threads).
fn ffmpeg_decode(dir: &Path, n: usize) {
    let threads = rayon::current_num_threads().to_string();
    let pattern = dir.join("%06d.dpx");
    let t = Instant::now();
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-threads", &threads, "-i"])
        .arg(&pattern)
        .args(["-f", "null", "-"])
        .status();
    match status {
        Ok(s) if s.success() => println!(
            "{:<22} {:>12.1}   (same files; process start included)",
            "  ffmpeg dpx decode",
            n as f64 / t.elapsed().as_secs_f64()
        ),
        _ => println!("{:<22} {:>12}", "  ffmpeg dpx decode", "n/a (no ffmpeg)"),
    }
}
