//! Artefacts of real shapes: alpha mattes cut from real film scans (dirt, dots, hair, lint,
//! smut, spots, sprinkles, stains...), composited one frame each, so dust repair can be judged on
//! damage that no procedural model drew.
//!
//! A library is a folder of PNG mattes with alpha (`DIR/KIND/NAME.png`, or PNGs directly in
//! `DIR`, whose kind is then the folder's name); the artefact is where alpha is. Each frame draws
//! `per_frame` artefacts (Poisson, times the strength): a matte chosen uniformly among the
//! chosen kinds, placed anywhere, rotated by any angle, scaled so that the matte's side becomes
//! `scale` of the frame height (log-uniform; a 400-px matte on a 480-line frame covers 48 to 192
//! px), dark or bright (`bright_fraction` = 0.3), at the matte's own opacity times `opacity`
//! (0.8..1), pulled toward the level of dust (`v' = v + alpha * (level - v)`). The matte is
//! area-averaged to its size on the frame before it is rotated (bilinear), so a hair thinner
//! than a pixel stays a faint continuous line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::rng::Rng;
use super::spots::Polarity;
use super::Local;

/// Knobs of `artifacts` at strength 1.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ArtifactParams {
    /// Mean number of artefacts per frame (Poisson; times the strength). Default 3.
    pub per_frame: f32,
    /// Side of the matte on the frame, as a share of the frame height (log-uniform). Default
    /// (0.1, 0.4).
    pub scale: (f32, f32),
    /// Share that is bright rather than dark. Default 0.3.
    pub bright_fraction: f32,
    /// Multiplier of the matte's own alpha. Default (0.8, 1.0).
    pub opacity: (f32, f32),
    /// Level a dark artefact pulls toward. Default (0.02, 0.12).
    pub dark_level: (f32, f32),
    /// Level a bright artefact pulls toward. Default (0.85, 1.0).
    pub bright_level: (f32, f32),
}

impl Default for ArtifactParams {
    fn default() -> Self {
        ArtifactParams {
            per_frame: 3.0,
            scale: (0.1, 0.4),
            bright_fraction: 0.3,
            opacity: (0.8, 1.0),
            dark_level: (0.02, 0.12),
            bright_level: (0.85, 1.0),
        }
    }
}

/// The mattes of a library, by kind and name (sorted, so a seed draws the same ones anywhere).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Library {
    pub dir: PathBuf,
    pub kinds: Vec<String>,
    #[serde(skip)]
    files: Vec<(String, PathBuf)>,
}

impl Library {
    /// The PNG mattes under `dir` (one level of kind folders, or PNGs in `dir`), only those of
    /// `kinds` when given (each must exist).
    pub fn open(dir: &Path, kinds: &[String]) -> Result<Library> {
        let listing = |d: &Path| -> Result<Vec<PathBuf>> {
            let mut v: Vec<PathBuf> = std::fs::read_dir(d)
                .with_context(|| format!("{}: cannot list the artefact mattes", d.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            v.sort();
            Ok(v)
        };
        let is_png =
            |p: &Path| p.is_file() && p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"));
        let mut by_kind: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
        let own_kind = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for entry in listing(dir)? {
            if entry.is_dir() {
                let kind = entry
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                let pngs: Vec<PathBuf> =
                    listing(&entry)?.into_iter().filter(|p| is_png(p)).collect();
                if !pngs.is_empty() {
                    by_kind.entry(kind).or_default().extend(pngs);
                }
            } else if is_png(&entry) {
                by_kind.entry(own_kind.clone()).or_default().push(entry);
            }
        }
        if by_kind.is_empty() {
            bail!("{}: no PNG mattes (DIR/KIND/NAME.png)", dir.display());
        }
        for k in kinds {
            if !by_kind.contains_key(k) {
                bail!(
                    "{}: no mattes of kind '{k}' (kinds there: {})",
                    dir.display(),
                    by_kind.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            }
        }
        let files: Vec<(String, PathBuf)> = by_kind
            .into_iter()
            .filter(|(k, _)| kinds.is_empty() || kinds.contains(k))
            .flat_map(|(k, v)| v.into_iter().map(move |p| (k.clone(), p)))
            .collect();
        let mut chosen: Vec<String> = files.iter().map(|(k, _)| k.clone()).collect();
        chosen.dedup();
        Ok(Library {
            dir: dir.to_path_buf(),
            kinds: chosen,
            files,
        })
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// A matte's alpha, 0..1, row-major.
#[derive(Debug)]
pub(crate) struct Matte {
    width: usize,
    height: usize,
    alpha: Vec<f32>,
}

fn load(path: &Path) -> Result<Matte> {
    let img =
        image::open(path).with_context(|| format!("{}: cannot read the matte", path.display()))?;
    if !img.color().has_alpha() {
        bail!("{}: the matte has no alpha channel", path.display());
    }
    let la = img.to_luma_alpha16();
    Ok(Matte {
        width: la.width() as usize,
        height: la.height() as usize,
        alpha: la.pixels().map(|p| p.0[1] as f32 / 65535.0).collect(),
    })
}

/// One artefact, as recorded in the truth file.
#[derive(Clone, Debug, Serialize)]
pub struct Artifact {
    pub kind: String,
    /// The matte's file name.
    pub matte: String,
    /// Centre in pixels, film/reference coordinates.
    pub x: f32,
    pub y: f32,
    /// Side of the matte on the frame, in pixels.
    pub size: f32,
    pub angle_deg: f32,
    pub polarity: Polarity,
    pub opacity: f32,
    pub level: f32,
    /// Pixels it may touch: `[x0, y0, x1, y1)`.
    pub bbox: [usize; 4],
    /// The matte area-averaged to `n` x `n` pixels.
    #[serde(skip)]
    scaled: Arc<(usize, Vec<f32>)>,
}

/// The matte area-averaged to `n` x `n` (each output pixel the mean of the matte's area under
/// it, fractional coverage included).
fn shrink(m: &Matte, n: usize) -> Vec<f32> {
    let (sx, sy) = (m.width as f32 / n as f32, m.height as f32 / n as f32);
    let axis = |len: usize, s: f32| -> Vec<Vec<(usize, f32)>> {
        (0..n)
            .map(|o| {
                let (a, b) = (o as f32 * s, (o + 1) as f32 * s);
                (a.floor() as usize..(b.ceil() as usize).min(len))
                    .map(|i| (i, ((i + 1) as f32).min(b) - (i as f32).max(a)))
                    .filter(|(_, w)| *w > 0.0)
                    .collect()
            })
            .collect()
    };
    let (ax, ay) = (axis(m.width, sx), axis(m.height, sy));
    let mut out = vec![0.0f32; n * n];
    for (oy, ys) in ay.iter().enumerate() {
        for (ox, xs) in ax.iter().enumerate() {
            let (mut s, mut wsum) = (0.0, 0.0);
            for &(y, wy) in ys {
                for &(x, wx) in xs {
                    s += m.alpha[y * m.width + x] * wx * wy;
                    wsum += wx * wy;
                }
            }
            out[oy * n + ox] = if wsum > 0.0 { s / wsum } else { 0.0 };
        }
    }
    out
}

/// The artefacts of one frame; mattes are read once per run (`cache`, by file index).
pub(crate) fn draw(
    rng: &mut Rng,
    p: &ArtifactParams,
    library: &Library,
    strength: f32,
    cache: &mut BTreeMap<usize, Arc<Matte>>,
    (w, h): (usize, usize),
) -> Result<Vec<Artifact>> {
    let count = if library.is_empty() {
        0
    } else {
        rng.poisson(p.per_frame * strength)
    };
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let k = ((rng.unit() * library.len() as f32) as usize).min(library.len() - 1);
        let (kind, path) = &library.files[k];
        let matte = match cache.get(&k) {
            Some(m) => m.clone(),
            None => {
                let m = Arc::new(load(path)?);
                cache.insert(k, m.clone());
                m
            }
        };
        let at = (
            rng.range(-0.5, w as f32 - 0.5),
            rng.range(-0.5, h as f32 - 0.5),
        );
        let (lo, hi) = (p.scale.0.max(1e-3).ln(), p.scale.1.max(1e-3).ln());
        let size = (rng.range(lo, hi).exp() * h as f32).max(2.0);
        let n = size.round().max(2.0) as usize;
        let angle = rng.range(0.0, 360.0);
        let bright = rng.chance(p.bright_fraction);
        let (polarity, level) = if bright {
            (Polarity::Bright, rng.within(p.bright_level))
        } else {
            (Polarity::Dark, rng.within(p.dark_level))
        };
        let opacity = rng.within(p.opacity);
        let reach = n as f32 * std::f32::consts::FRAC_1_SQRT_2 + 1.0;
        let clip = |v: f32, len: usize| (v.max(0.0) as usize).min(len);
        out.push(Artifact {
            kind: kind.clone(),
            matte: path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            x: at.0,
            y: at.1,
            size: n as f32,
            angle_deg: angle,
            polarity,
            opacity,
            level,
            bbox: [
                clip((at.0 - reach).floor(), w),
                clip((at.1 - reach).floor(), h),
                clip((at.0 + reach).ceil() + 1.0, w),
                clip((at.1 + reach).ceil() + 1.0, h),
            ],
            scaled: Arc::new((n, shrink(&matte, n))),
        });
    }
    Ok(out)
}

impl Local for Artifact {
    fn bbox(&self) -> [usize; 4] {
        self.bbox
    }

    fn level(&self) -> f32 {
        self.level
    }

    fn alpha(&self, x: f32, y: f32) -> f32 {
        let (n, m) = (&self.scaled.0, &self.scaled.1);
        let (s, c) = self.angle_deg.to_radians().sin_cos();
        let (dx, dy) = (x - self.x, y - self.y);
        // Into the matte's frame: rotate back, centre at (n - 1) / 2.
        let half = (*n as f32 - 1.0) / 2.0;
        let u = c * dx + s * dy + half;
        let v = -s * dx + c * dy + half;
        if u < -1.0 || v < -1.0 || u > *n as f32 || v > *n as f32 {
            return 0.0;
        }
        let at = |i: i64, j: i64| -> f32 {
            if i < 0 || j < 0 || i >= *n as i64 || j >= *n as i64 {
                0.0
            } else {
                m[j as usize * n + i as usize]
            }
        };
        let (i, j) = (u.floor(), v.floor());
        let (fx, fy) = (u - i, v - j);
        let (i, j) = (i as i64, j as i64);
        let a = at(i, j) * (1.0 - fx) * (1.0 - fy)
            + at(i + 1, j) * fx * (1.0 - fy)
            + at(i, j + 1) * (1.0 - fx) * fy
            + at(i + 1, j + 1) * fx * fy;
        self.opacity * a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinking_keeps_the_mean_and_a_thin_line_continuous() {
        // A 1-px vertical line in a 40x40 matte, shrunk to 10x10: a column of 0.25.
        let mut alpha = vec![0.0; 1600];
        for y in 0..40 {
            alpha[y * 40 + 21] = 1.0;
        }
        let m = Matte {
            width: 40,
            height: 40,
            alpha,
        };
        let s = shrink(&m, 10);
        for y in 0..10 {
            assert!(
                (s[y * 10 + 5] - 0.25).abs() < 1e-6,
                "{:?}",
                &s[y * 10..y * 10 + 10]
            );
        }
        let total: f32 = s.iter().sum();
        assert!((total - 40.0 / 16.0).abs() < 1e-4);
        // To a size that does not divide: the mean is kept.
        let s = shrink(&m, 7);
        let mean = s.iter().sum::<f32>() / 49.0;
        assert!((mean - 1.0 / 40.0).abs() < 1e-4, "{mean}");
    }
}
