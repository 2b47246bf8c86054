//! Frame sequences: a directory of numbered frames, a printf pattern (`scan_%06d.dpx`), a hash
//! pattern (`scan.####.dpx`) or a single file. Frames are ordered by number; gaps and duplicate
//! numbers are found here, mixed sizes by [`Sequence::check_headers`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rayon::prelude::*;

use super::{read_info, FileFormat, FrameInfo};

/// One frame of a sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeqFrame {
    pub number: i64,
    pub path: PathBuf,
}

/// An ordered run of frame files sharing one naming pattern.
#[derive(Clone, Debug)]
pub struct Sequence {
    /// The files' pattern for messages, e.g. `/scans/reel1/scan_%06d.dpx`.
    pub pattern: String,
    pub frames: Vec<SeqFrame>,
}

/// A run of missing frame numbers, inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Gap {
    pub first: i64,
    pub last: i64,
}

impl fmt::Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// A file name split around its frame number: `scan_` `000123` `.dpx`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct NameKey {
    prefix: String,
    suffix: String,
}

/// Split a file name at its last run of digits (before the extension).
fn split_number(name: &str) -> Option<(NameKey, i64, usize)> {
    let (stem, ext) = match name.rfind('.') {
        Some(i) => (&name[..i], &name[i..]),
        None => (name, ""),
    };
    let end = stem.rfind(|c: char| c.is_ascii_digit())? + 1;
    let start = stem[..end]
        .rfind(|c: char| !c.is_ascii_digit())
        .map_or(0, |i| i + 1);
    let digits = &stem[start..end];
    let number: i64 = digits.parse().ok()?;
    Some((
        NameKey {
            prefix: stem[..start].to_string(),
            suffix: format!("{}{}", &stem[end..], ext),
        },
        number,
        digits.len(),
    ))
}

/// A printf (`%06d`, `%d`) or hash (`####`) pattern split into prefix, digit count, suffix.
fn parse_pattern(name: &str) -> Option<(String, Option<usize>, String)> {
    if let Some(i) = name.find('%') {
        let rest = &name[i + 1..];
        let d = rest.find('d')?;
        let spec = &rest[..d];
        if !spec.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let width = if spec.is_empty() {
            None
        } else {
            Some(spec.trim_start_matches('0').parse().unwrap_or(0))
        };
        return Some((name[..i].to_string(), width, rest[d + 1..].to_string()));
    }
    let start = name.find('#')?;
    let len = name[start..].chars().take_while(|&c| c == '#').count();
    Some((
        name[..start].to_string(),
        Some(len),
        name[start + len..].to_string(),
    ))
}

fn is_frame_file(path: &Path) -> bool {
    FileFormat::from_path(path).is_some()
        && !path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'))
}

/// Why `path`, named like a frame, cannot be read as one, if it cannot: a broken symbolic
/// link, a link loop, a directory, a FIFO, socket or device.
fn not_a_frame_file(path: &Path) -> Option<String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => None,
        Ok(m) if m.is_dir() => Some("a directory".into()),
        Ok(_) => Some("not a regular file (a FIFO, socket or device)".into()),
        Err(e) => {
            let link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            Some(match (link, e.kind()) {
                (true, std::io::ErrorKind::NotFound) => {
                    "a symbolic link to nothing (broken)".into()
                }
                // ELOOP
                (true, _) if e.raw_os_error() == Some(40) => "a symbolic link loop".into(),
                _ => format!("cannot be read ({e})"),
            })
        }
    }
}

/// Refuse a frame-named entry that is no regular file, naming it and why: it would otherwise
/// count as a missing frame with no word of the cause (or be skipped with `--allow-gaps`).
fn check_frame_file(path: &Path) -> Result<()> {
    match not_a_frame_file(path) {
        Some(why) => bail!("{}: {why}, where a frame file is expected", path.display()),
        None => Ok(()),
    }
}

impl Sequence {
    /// Find the sequence an input names: a directory, a pattern or one file.
    pub fn discover(input: &Path) -> Result<Sequence> {
        if input.is_dir() {
            return Self::from_dir(input);
        }
        let name = input.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some((prefix, width, suffix)) = parse_pattern(name) {
            return Self::from_pattern(input, &prefix, width, &suffix);
        }
        if input.is_file() {
            if FileFormat::from_path(input).is_none() {
                return Err(super::unsupported(input));
            }
            let number = split_number(name).map_or(0, |(_, n, _)| n);
            return Ok(Sequence {
                pattern: input.display().to_string(),
                frames: vec![SeqFrame {
                    number,
                    path: input.to_path_buf(),
                }],
            });
        }
        bail!(
            "{}: no such file, directory or frame pattern",
            input.display()
        )
    }

    fn from_dir(dir: &Path) -> Result<Sequence> {
        let mut groups: BTreeMap<NameKey, Vec<(i64, usize, PathBuf)>> = BTreeMap::new();
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("{}: cannot list directory", dir.display()))?;
        for entry in entries {
            let path = entry
                .with_context(|| format!("{}: cannot list directory", dir.display()))?
                .path();
            if !is_frame_file(&path) {
                continue;
            }
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            let Some((key, number, digits)) = split_number(&name) else {
                continue;
            };
            check_frame_file(&path)?;
            groups.entry(key).or_default().push((number, digits, path));
        }
        match groups.len() {
            0 => bail!(
                "{}: no numbered frame files (.dpx, .tif, .png, .exr, .jpg) in this directory",
                dir.display()
            ),
            1 => {
                let (key, files) = groups.into_iter().next().expect("one group");
                Self::from_files(dir, &key, files)
            }
            _ => {
                let list: Vec<String> = groups
                    .iter()
                    .map(|(k, v)| format!("{}#{} ({} files)", k.prefix, k.suffix, v.len()))
                    .collect();
                bail!(
                    "{}: directory holds {} frame sequences: {}; name one with a pattern such as {}",
                    dir.display(),
                    list.len(),
                    list.join(", "),
                    dir.join(format!("{}%06d{}", groups.keys().next().map_or("", |k| &k.prefix), groups.keys().next().map_or("", |k| &k.suffix))).display()
                )
            }
        }
    }

    fn from_pattern(
        input: &Path,
        prefix: &str,
        width: Option<usize>,
        suffix: &str,
    ) -> Result<Sequence> {
        let dir = match input.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let entries = std::fs::read_dir(&dir)
            .with_context(|| format!("{}: cannot list directory", dir.display()))?;
        let mut files = Vec::new();
        for entry in entries {
            let path = entry
                .with_context(|| format!("{}: cannot list directory", dir.display()))?
                .path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(middle) = name
                .strip_prefix(prefix)
                .and_then(|r| r.strip_suffix(suffix))
            else {
                continue;
            };
            if middle.is_empty() || !middle.chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            if width.is_some_and(|w| middle.len() < w) {
                continue;
            }
            let number: i64 = middle
                .parse()
                .with_context(|| format!("{}: frame number out of range", path.display()))?;
            check_frame_file(&path)?;
            files.push((number, middle.len(), path));
        }
        if files.is_empty() {
            bail!("{}: no files match this pattern", input.display());
        }
        let key = NameKey {
            prefix: prefix.to_string(),
            suffix: suffix.to_string(),
        };
        Self::from_files(&dir, &key, files)
    }

    fn from_files(
        dir: &Path,
        key: &NameKey,
        mut files: Vec<(i64, usize, PathBuf)>,
    ) -> Result<Sequence> {
        files.sort();
        for pair in files.windows(2) {
            if pair[0].0 == pair[1].0 {
                bail!(
                    "frame {} appears twice: {} and {}",
                    pair[0].0,
                    pair[0].2.display(),
                    pair[1].2.display()
                );
            }
        }
        let digits = files.iter().map(|f| f.1).min().unwrap_or(1);
        Ok(Sequence {
            pattern: dir
                .join(format!("{}%0{digits}d{}", key.prefix, key.suffix))
                .display()
                .to_string(),
            frames: files
                .into_iter()
                .map(|(number, _, path)| SeqFrame { number, path })
                .collect(),
        })
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub fn first_number(&self) -> i64 {
        self.frames.first().map_or(0, |f| f.number)
    }

    pub fn last_number(&self) -> i64 {
        self.frames.last().map_or(0, |f| f.number)
    }

    /// Runs of missing numbers between the first and last frame.
    pub fn gaps(&self) -> Vec<Gap> {
        self.frames
            .windows(2)
            .filter(|w| w[1].number > w[0].number + 1)
            .map(|w| Gap {
                first: w[0].number + 1,
                last: w[1].number - 1,
            })
            .collect()
    }

    /// Read the header of every frame in `range` (positions) in parallel and check they agree in
    /// size and planes; returns the first frame's info. Truncated or unreadable files fail here,
    /// before anything is written.
    pub fn check_headers(&self, range: std::ops::RangeInclusive<usize>) -> Result<FrameInfo> {
        let frames = &self.frames[range];
        let infos: Vec<FrameInfo> = frames
            .par_iter()
            .map(|f| read_info(&f.path))
            .collect::<Result<_>>()?;
        let first = infos.first().context("no frames to read")?.clone();
        for (f, info) in frames.iter().zip(&infos) {
            if (info.width, info.height, info.planes) != (first.width, first.height, first.planes) {
                bail!(
                    "{}: mixed frame sizes: this frame is {}x{} with {} planes but {} is {}x{} with {} planes",
                    f.path.display(),
                    info.width,
                    info.height,
                    info.planes,
                    frames[0].path.display(),
                    first.width,
                    first.height,
                    first.planes
                );
            }
            // Output keeps the input's depth: a deeper frame among shallower ones would lose
            // bits without a word.
            let depth = |i: &FrameInfo| (i.meta.bit_depth, i.meta.sample);
            if depth(info) != depth(&first) {
                bail!(
                    "{}: mixed bit depths: this frame is {} but {} is {}; convert the odd frames \
                     first so nothing is lost",
                    f.path.display(),
                    info.encoding(),
                    frames[0].path.display(),
                    first.encoding()
                );
            }
        }
        Ok(first)
    }
}
