//! Seeded procedural scenes: frames with gradients, edges, fine texture and motion, for tests,
//! benchmarks and `nitrate demo`, so nothing needs footage on disk.

use rayon::prelude::*;

use crate::frame::{Frame, FrameMeta};

/// A stateless hash of integers to `[0, 1)`, so every pixel of every frame is reproducible
/// from the seed alone, in any order, on any thread.
pub fn hash01(a: u64, b: u64, c: u64, seed: u64) -> f32 {
    let mut x = a.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ c.wrapping_mul(0x1656_67B1_9E37_79F9)
        ^ seed.wrapping_mul(0x27D4_EB2F_1656_67C5);
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    x = x.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    x ^= x >> 33;
    (x >> 40) as f32 / (1u64 << 24) as f32
}

/// Smooth value noise at cell size `cell` pixels.
fn value_noise(x: f32, y: f32, cell: f32, layer: u64, seed: u64) -> f32 {
    let (fx, fy) = (x / cell, y / cell);
    let (ix, iy) = (fx.floor(), fy.floor());
    let (tx, ty) = (fx - ix, fy - iy);
    let s = |v: f32| v * v * (3.0 - 2.0 * v);
    let (sx, sy) = (s(tx), s(ty));
    let h = |dx: f32, dy: f32| {
        hash01(
            (ix + dx) as i64 as u64,
            (iy + dy) as i64 as u64,
            layer,
            seed,
        )
    };
    let top = h(0.0, 0.0) * (1.0 - sx) + h(1.0, 0.0) * sx;
    let bottom = h(0.0, 1.0) * (1.0 - sx) + h(1.0, 1.0) * sx;
    top * (1.0 - sy) + bottom * sy
}

/// Frame `t` of a scene: sky gradient over textured ground, static blocks with hard edges, and a
/// disc crossing the frame. Values stay within 0.05..0.95 so fades and gains have headroom.
pub fn scene_frame(width: usize, height: usize, planes: usize, t: usize, seed: u64) -> Frame {
    let meta = FrameMeta {
        frame_rate: Some(24.0),
        ..FrameMeta::default()
    };
    let mut frame = Frame::new(width, height, planes, meta);
    let (w, h) = (width as f32, height as f32);
    let horizon = 0.55 * h;
    let disc = (
        (0.15 + 0.7 * ((t as f32 * 0.037) % 1.0)) * w,
        0.45 * h + 0.05 * h * (t as f32 * 0.3).sin(),
        0.09 * w.min(h),
    );
    let tint = [
        [1.0, 1.0, 1.0],
        [0.55, 0.7, 0.95],
        [0.75, 0.6, 0.45],
        [0.9, 0.35, 0.3],
    ];
    let n = width * height;
    let data = &mut frame.data;
    data.par_chunks_mut(width.max(1))
        .enumerate()
        .for_each(|(row, line)| {
            let plane = row / height.max(1);
            let y = (row % height.max(1)) as f32;
            for (xi, v) in line.iter_mut().enumerate() {
                let x = xi as f32;
                let (mut lum, mut kind) = if y < horizon {
                    (
                        0.75 - 0.35 * y / horizon + 0.05 * value_noise(x, y, 40.0, 1, seed),
                        1,
                    )
                } else {
                    let tex = value_noise(x, y, 6.0, 2, seed) * 0.6
                        + value_noise(x, y, 23.0, 3, seed) * 0.4;
                    (0.25 + 0.3 * tex, 2)
                };
                // Blocks: buildings with sharp vertical and horizontal edges.
                for b in 0..3u64 {
                    let bx = (0.1 + 0.3 * b as f32) * w;
                    let bw = (0.08 + 0.05 * hash01(b, 0, 7, seed)) * w;
                    let top = horizon - (0.12 + 0.2 * hash01(b, 1, 7, seed)) * h;
                    if x >= bx && x < bx + bw && y >= top && y < horizon + 0.05 * h {
                        let windows = ((x - bx) / 5.0).floor() as i32 % 2 == 0
                            && ((y - top) / 7.0).floor() as i32 % 3 == 0;
                        lum = if windows { 0.85 } else { 0.3 + 0.1 * b as f32 };
                        kind = 0;
                    }
                }
                let d = ((x - disc.0).powi(2) + (y - disc.1).powi(2)).sqrt();
                if d < disc.2 + 1.0 {
                    let edge = (disc.2 + 1.0 - d).clamp(0.0, 1.0); // anti-aliased rim
                    lum = lum * (1.0 - edge) + (0.7 - 0.3 * d / disc.2) * edge;
                    kind = 3;
                }
                let c = if planes == 1 { 1.0 } else { tint[kind][plane] };
                *v = (0.05 + 0.9 * (lum * c)).clamp(0.05, 0.95);
            }
        });
    debug_assert_eq!(frame.data.len(), n * planes);
    frame
}
