//! The streaming pipeline: temporal windows cut only at the sequence ends, chunks restored
//! separately equal one whole run, outputs keep names.

use std::path::Path;

use anyhow::{bail, Result};
use nitrate::frame::Frame;
use nitrate::gpu::{GpuContext, GpuFrame};
use nitrate::io::sequence::Sequence;
use nitrate::io::{self, OutputFormat};
use nitrate::pipeline::{restore, Backend, RestoreJob};
use nitrate::stages::{Stage, Window};
use nitrate::synth::scene_frame;

/// A temporal test stage: the mean of its window, plus a fingerprint of which neighbours it saw
/// written into pixel (0, 0) so tests can check the windows themselves.
struct TemporalMean {
    radius: usize,
}

impl Stage for TemporalMean {
    fn name(&self) -> &'static str {
        "temporal-mean"
    }
    fn temporal_radius(&self) -> usize {
        self.radius
    }
    fn gpu_tolerance(&self) -> f32 {
        0.0
    }
    fn params_json(&self) -> serde_json::Value {
        serde_json::json!({ "radius": self.radius })
    }
    fn run_cpu(&self, w: &Window<'_, Frame>) -> Result<Frame> {
        let all: Vec<&Frame> = w
            .before
            .iter()
            .chain(std::iter::once(&w.center))
            .chain(&w.after)
            .copied()
            .collect();
        let mut out = w.center.clone();
        for (i, v) in out.data.iter_mut().enumerate() {
            *v = all.iter().map(|f| f.data[i]).sum::<f32>() / all.len() as f32;
        }
        // Fingerprint: window length on each side, in 1/64 steps.
        out.data[0] = (w.before.len() * 8 + w.after.len()) as f32 / 64.0;
        Ok(out)
    }
    fn run_gpu(&self, _: &GpuContext, _: &Window<'_, GpuFrame>) -> Result<GpuFrame> {
        bail!("test stage has no GPU path")
    }
}

fn make_sequence(dir: &Path, n: usize) {
    for t in 0..n {
        let f = scene_frame(24, 16, 3, t, 42);
        io::write_frame(
            &dir.join(format!("r_{:04}.png", t + 1)),
            &f,
            OutputFormat::Png { bits: 16 },
        )
        .unwrap();
    }
}

fn job(input: &Path, output: &Path, frames: Option<(i64, i64)>, radii: &[usize]) -> RestoreJob {
    RestoreJob {
        input: Sequence::discover(input).unwrap().into(),
        output: output.to_path_buf(),
        format: None,
        frames,
        overwrite: false,
        allow_gaps: false,
        check_gpu: false,
        quiet: true,
        stages: radii
            .iter()
            .map(|&radius| Box::new(TemporalMean { radius }) as Box<dyn Stage>)
            .collect(),
        backend: Backend::Cpu,
        record_extra: serde_json::Value::Null,
        video: Default::default(),
    }
}

#[test]
fn windows_are_cut_only_at_sequence_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("in"), dir.path().join("out"));
    std::fs::create_dir_all(&input).unwrap();
    make_sequence(&input, 9);
    restore(&job(&input, &out, None, &[2])).unwrap();
    for t in 0..9usize {
        let f = io::read_frame(&out.join(format!("r_{:04}.png", t + 1))).unwrap();
        let expect = (t.min(2) * 8 + (8 - t).min(2)) as f32 / 64.0;
        assert!(
            (f.data[0] - expect).abs() < 1e-4,
            "frame {t}: window fingerprint {} != {expect}",
            f.data[0]
        );
    }
}

#[test]
fn chunks_put_together_equal_one_whole_run() {
    let dir = tempfile::tempdir().unwrap();
    let (input, whole, chunked) = (
        dir.path().join("in"),
        dir.path().join("whole"),
        dir.path().join("chunks"),
    );
    std::fs::create_dir_all(&input).unwrap();
    make_sequence(&input, 20);
    let radii = [2, 1, 3];
    restore(&job(&input, &whole, None, &radii)).unwrap();
    for (a, b) in [(1, 6), (7, 7), (8, 15), (16, 20)] {
        let summary = restore(&job(&input, &chunked, Some((a, b)), &radii)).unwrap();
        assert_eq!(summary.frames_written as i64, b - a + 1);
        assert!(summary
            .record
            .ends_with(format!("restoration.{a}-{b}.json")));
    }
    for t in 1..=20 {
        let name = format!("r_{t:04}.png");
        let (x, y) = (
            std::fs::read(whole.join(&name)).unwrap(),
            std::fs::read(chunked.join(&name)).unwrap(),
        );
        assert!(
            x == y,
            "{name} differs between the whole run and the chunked run"
        );
    }
    // And the temporal stages really changed the frames (the test is not vacuous).
    let src = io::read_frame(&input.join("r_0010.png")).unwrap();
    let out = io::read_frame(&whole.join("r_0010.png")).unwrap();
    assert!(nitrate::metrics::psnr(&src, &out) < 60.0);
}

#[test]
fn frames_outside_the_sequence_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("in"), dir.path().join("out"));
    std::fs::create_dir_all(&input).unwrap();
    make_sequence(&input, 3);
    let err = format!(
        "{:#}",
        restore(&job(&input, &out, Some((50, 60)), &[])).unwrap_err()
    );
    assert!(
        err.contains("no such frames") && err.contains("1-3"),
        "{err}"
    );
}
