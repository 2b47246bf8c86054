//! Motion estimation and compensation (`nitrate::motion`): known shifts are found and undone,
//! identical frames give zero motion, and the GPU agrees with the CPU reference.

mod common;

use common::gpu;
use nitrate::frame::{Frame, FrameMeta};
use nitrate::motion::{self, cpu, Field, MotionParams};
use nitrate::synth::hash01;

/// Smooth two-octave value noise, continuous in `x` and `y` so fractional shifts are exact
/// resamplings of the same picture.
fn texture(x: f32, y: f32, seed: u64) -> f32 {
    let octave = |cell: f32, layer: u64| {
        let (fx, fy) = (x / cell, y / cell);
        let (ix, iy) = (fx.floor(), fy.floor());
        let (tx, ty) = (fx - ix, fy - iy);
        let h = |dx: f32, dy: f32| {
            hash01(
                (ix + dx + 1000.0) as u64,
                (iy + dy + 1000.0) as u64,
                layer,
                seed,
            )
        };
        let top = h(0.0, 0.0) * (1.0 - tx) + h(1.0, 0.0) * tx;
        let bot = h(0.0, 1.0) * (1.0 - tx) + h(1.0, 1.0) * tx;
        top * (1.0 - ty) + bot * ty
    };
    0.15 + 0.5 * octave(5.0, 1) + 0.3 * octave(17.0, 2)
}

/// A frame of the texture seen from `(ox, oy)`: content at `(x, y)` is `texture(x + ox, y + oy)`.
fn view(w: usize, h: usize, planes: usize, ox: f32, oy: f32) -> Frame {
    let mut f = Frame::new(w, h, planes, FrameMeta::default());
    for p in 0..planes {
        for y in 0..h {
            for x in 0..w {
                let v = texture(x as f32 + ox, y as f32 + oy, 5) * (1.0 - 0.1 * p as f32);
                f.set(p, x, y, v);
            }
        }
    }
    f
}

/// Vectors of the blocks whose matching window stays clear of the frame's edge by `margin`.
fn interior(field: &Field, margin: usize) -> Vec<(f32, f32)> {
    let mut out = Vec::new();
    for by in 0..field.rows {
        for bx in 0..field.cols {
            let (x0, y0) = (bx * field.block, by * field.block);
            if x0 >= margin
                && y0 >= margin
                && x0 + field.block + margin <= field.width
                && y0 + field.block + margin <= field.height
            {
                out.push(field.at(bx, by));
            }
        }
    }
    out
}

#[test]
fn known_shifts_are_found() {
    let params = MotionParams::default();
    let a = view(128, 96, 3, 0.0, 0.0);
    let pa = cpu::Pyramid::of(&a, &params);
    for (sx, sy) in [
        (3.0, -2.0),
        (-7.0, 5.0),
        (1.5, 0.5),
        (-0.25, 2.75),
        (0.0, 0.0),
    ] {
        // B shows A's content moved by (-sx, -sy): A at (x, y) is found in B at (x + sx, y + sy).
        let b = view(128, 96, 3, -sx, -sy);
        let field = cpu::estimate(&pa, &cpu::Pyramid::of(&b, &params), &params);
        let inner = interior(&field, 16);
        assert!(inner.len() >= 20, "{} interior blocks", inner.len());
        for (vx, vy) in inner {
            assert!(
                (vx - sx).abs() <= 0.25 && (vy - sy).abs() <= 0.25,
                "shift ({sx}, {sy}): block vector ({vx}, {vy})"
            );
        }
        // Compensating B undoes the shift away from the edges: exactly for whole pixels, to
        // the error of bilinear resampling for fractions; per-pixel choice of vector too.
        let pb = cpu::Pyramid::of(&b, &params);
        let chosen = cpu::compensate(&b, &field, &pa.levels[0], &pb.levels[0]);
        let back = cpu::warp(&b, &field);
        for p in 0..3 {
            for y in 16..80 {
                for x in 16..112 {
                    let d = (chosen.get(p, x, y) - back.get(p, x, y)).abs();
                    assert!(
                        d <= 0.1,
                        "shift ({sx}, {sy}): compensate and warp differ by {d}"
                    );
                }
            }
        }
        let (mut worst, mut sum, mut n) = (0.0f32, 0.0f32, 0);
        for p in 0..3 {
            for y in 16..80 {
                for x in 16..112 {
                    let d = (back.get(p, x, y) - a.get(p, x, y)).abs();
                    worst = worst.max(d);
                    sum += d;
                    n += 1;
                }
            }
        }
        let whole = sx.fract() == 0.0 && sy.fract() == 0.0;
        let (max_ok, mean_ok) = if whole { (1e-6, 1e-7) } else { (0.1, 0.01) };
        let mean = sum / n as f32;
        assert!(
            worst <= max_ok && mean <= mean_ok,
            "shift ({sx}, {sy}): warped B differs from A by {worst} at most, {mean} on average"
        );
    }
}

#[test]
fn compensation_follows_each_side_of_a_moving_edge() {
    // Left half still, right half moved by 6 pixels: per-pixel choice keeps the still side
    // exact right up to the edge, where the interpolated field smears.
    let params = MotionParams::default();
    let (w, h) = (128, 96);
    let a = view(w, h, 1, 0.0, 0.0);
    let mut b = a.clone();
    let moved = view(w, h, 1, -6.0, 0.0);
    for y in 0..h {
        for x in 64..w {
            b.set(0, x, y, moved.get(0, x, y));
        }
    }
    let (pa, pb) = (cpu::Pyramid::of(&a, &params), cpu::Pyramid::of(&b, &params));
    let field = cpu::estimate(&pa, &pb, &params);
    let chosen = cpu::compensate(&b, &field, &pa.levels[0], &pb.levels[0]);
    let smeared = cpu::warp(&b, &field);
    let err = |f: &Frame| {
        let mut s = 0.0;
        for y in 16..80 {
            for x in 48..64 {
                s += (f.get(0, x, y) - a.get(0, x, y)).abs();
            }
        }
        s
    };
    assert!(
        err(&chosen) < 0.5 * err(&smeared),
        "{} vs {}",
        err(&chosen),
        err(&smeared)
    );
}

/// The row-by-row warp is, sample for sample, `sample` at the pixel moved by `field_at`: the
/// definition the shaders follow.
#[test]
fn the_warp_is_the_sampled_field_bit_for_bit() {
    let mp = MotionParams::default();
    let (a, b) = (view(96, 64, 3, 0.0, 0.0), view(96, 64, 3, 2.6, -1.3));
    let field = cpu::estimate(&cpu::Pyramid::of(&a, &mp), &cpu::Pyramid::of(&b, &mp), &mp);
    assert!(field.vx.iter().any(|&v| v != 0.0), "a field with motion");
    let got = cpu::warp(&b, &field);
    let (w, h) = (b.width, b.height);
    for p in 0..b.planes {
        for y in 0..h {
            for x in 0..w {
                let (vx, vy) = cpu::field_at(&field, x as f32, y as f32);
                let want = cpu::sample(b.plane(p), w, h, x as f32 + vx, y as f32 + vy);
                assert_eq!(
                    got.get(p, x, y).to_bits(),
                    want.to_bits(),
                    "plane {p} at ({x}, {y})"
                );
            }
        }
    }
}

#[test]
fn identical_frames_give_zero_motion() {
    let params = MotionParams::default();
    let a = view(100, 70, 1, 3.0, 4.0);
    let pa = cpu::Pyramid::of(&a, &params);
    let field = cpu::estimate(&pa, &pa, &params);
    assert!(field.vx.iter().chain(&field.vy).all(|&v| v == 0.0));
    assert_eq!(cpu::warp(&a, &field), a);
}

#[test]
fn params_are_validated_with_the_key_named() {
    let bad = MotionParams {
        block: 2,
        ..MotionParams::default()
    };
    let msg = format!("{:#}", bad.validate("dust.motion").unwrap_err());
    assert!(
        msg.contains("dust.motion.block = 2") && msg.contains("4 to 32"),
        "{msg}"
    );
    let bad = MotionParams {
        search: 40,
        ..MotionParams::default()
    };
    let msg = format!("{:#}", bad.validate("dust.motion").unwrap_err());
    assert!(msg.contains("dust.motion.search"), "{msg}");
}

#[test]
fn levels_follow_the_frame_size() {
    let p = MotionParams::default();
    assert_eq!(p.levels(2048, 1556), 4);
    assert_eq!(p.levels(96, 64), 2);
    assert_eq!(p.levels(20, 20), 1);
    assert_eq!(
        motion::level_sizes(97, 65, 3),
        vec![(97, 65), (48, 32), (24, 16)]
    );
}

#[test]
fn gpu_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let params = MotionParams::default();
    // Odd sizes: partial blocks and partial workgroups.
    for (w, h, planes, sx, sy) in [(131, 77, 3, 2.5, -1.25), (97, 65, 1, -6.0, 3.0)] {
        let a = view(w, h, planes, 0.0, 0.0);
        let b = view(w, h, planes, -sx, -sy);
        let want_field = cpu::estimate(
            &cpu::Pyramid::of(&a, &params),
            &cpu::Pyramid::of(&b, &params),
            &params,
        );
        let want = cpu::warp(&b, &want_field);

        let (ga, gb) = (gpu.upload(&a).unwrap(), gpu.upload(&b).unwrap());
        let pa = motion::gpu::Pyramid::of(&gpu, &ga, &params).unwrap();
        let pb = motion::gpu::Pyramid::of(&gpu, &gb, &params).unwrap();
        for (l, level) in pa.levels.iter().enumerate() {
            let got = gpu.download(level).unwrap();
            let cpu_level = &cpu::Pyramid::of(&a, &params).levels[l];
            assert_eq!(got.data, cpu_level.data, "{w}x{h} pyramid level {l}");
        }
        let field = motion::gpu::estimate(&gpu, &pa, &pb, &params).unwrap();
        let got_field = motion::gpu::download_field(&gpu, &field, w, h, params.block).unwrap();
        assert_eq!(
            (got_field.cols, got_field.rows),
            (want_field.cols, want_field.rows)
        );
        for i in 0..want_field.vx.len() {
            let d = (got_field.vx[i] - want_field.vx[i])
                .abs()
                .max((got_field.vy[i] - want_field.vy[i]).abs());
            assert!(
                d <= motion::FIELD_TOLERANCE,
                "{w}x{h} block {i}: GPU ({}, {}) CPU ({}, {})",
                got_field.vx[i],
                got_field.vy[i],
                want_field.vx[i],
                want_field.vy[i]
            );
        }
        let got = gpu
            .download(&motion::gpu::warp(&gpu, &gb, &field, &params).unwrap())
            .unwrap();
        common::compare(&format!("motion warp {w}x{h}"), &got, &want, 1e-5).assert_ok();
        let (la, lb) = (&pa.levels[0], &pb.levels[0]);
        let got = gpu
            .download(&motion::gpu::compensate(&gpu, &gb, &field, la, lb, &params).unwrap())
            .unwrap();
        let want = cpu::compensate(
            &b,
            &want_field,
            &cpu::Pyramid::of(&a, &params).levels[0],
            &cpu::Pyramid::of(&b, &params).levels[0],
        );
        common::compare(&format!("motion compensate {w}x{h}"), &got, &want, 1e-5).assert_ok();
    }
}
