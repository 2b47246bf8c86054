//! Reading and writing frames: format detection, per-format codecs, atomic writes, sequences.

pub mod checksum;
pub mod dpx;
pub mod exr;
pub mod raster;
pub mod sequence;
pub mod video;

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::frame::{Frame, FrameMeta, SampleKind};
use dpx::{DpxLayout, Packing};
use raster::RasterKind;

/// The image file formats nitrate reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum FileFormat {
    Dpx,
    Tiff,
    Png,
    Exr,
    Jpeg,
}

impl FileFormat {
    /// The format of a path, by its extension (case-insensitive).
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "dpx" => FileFormat::Dpx,
            "tif" | "tiff" => FileFormat::Tiff,
            "png" => FileFormat::Png,
            "exr" => FileFormat::Exr,
            "jpg" | "jpeg" => FileFormat::Jpeg,
            _ => return None,
        })
    }
}

impl fmt::Display for FileFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileFormat::Dpx => "DPX",
            FileFormat::Tiff => "TIFF",
            FileFormat::Png => "PNG",
            FileFormat::Exr => "OpenEXR",
            FileFormat::Jpeg => "JPEG",
        })
    }
}

/// What a file's header says, read without decoding the pixels.
#[derive(Clone, Debug)]
pub struct FrameInfo {
    pub format: FileFormat,
    pub width: usize,
    pub height: usize,
    pub planes: usize,
    pub meta: FrameMeta,
    /// The element layout, for DPX files.
    pub dpx_layout: Option<DpxLayout>,
}

impl FrameInfo {
    /// "DPX 10-bit (filled A, big-endian)" and the like.
    pub fn encoding(&self) -> String {
        match (self.format, self.dpx_layout) {
            (FileFormat::Dpx, Some(l)) => format!(
                "DPX {}-bit ({}, {}-endian)",
                l.bits,
                match l.packing {
                    Packing::Packed => "packed",
                    Packing::FilledA => "filled A",
                    Packing::FilledB => "filled B",
                },
                if l.big_endian { "big" } else { "little" }
            ),
            (format, _) => match self.meta.sample {
                SampleKind::Integer => format!("{format} {}-bit", self.meta.bit_depth),
                SampleKind::Half => format!("{format} half float"),
                SampleKind::Float => format!("{format} float"),
            },
        }
    }
}

fn unsupported(path: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{}: unsupported file type (nitrate reads .dpx, .tif/.tiff, .png, .exr, .jpg/.jpeg)",
        path.display()
    )
}

/// Header of one frame file. Errors name the file.
pub fn read_info(path: &Path) -> Result<FrameInfo> {
    let format = FileFormat::from_path(path).ok_or_else(|| unsupported(path))?;
    let with_path = || format!("{}", path.display());
    let (width, height, planes, meta, dpx_layout) = match format {
        FileFormat::Dpx => {
            let (header, meta) = read_dpx_info(path)?;
            (
                header.width,
                header.height,
                header.layout.planes,
                meta,
                Some(header.layout),
            )
        }
        FileFormat::Exr => {
            let (w, h, p, m) = exr::read_info(path).with_context(with_path)?;
            (w, h, p, m, None)
        }
        _ => {
            let (w, h, p, m) = raster::read_info(path).with_context(with_path)?;
            (w, h, p, m, None)
        }
    };
    if width == 0 || height == 0 {
        bail!("{}: image has zero size ({width}x{height})", path.display());
    }
    Ok(FrameInfo {
        format,
        width,
        height,
        planes,
        meta,
        dpx_layout,
    })
}

/// A DPX header from the file's first 2048 bytes and its length.
fn read_dpx_info(path: &Path) -> Result<(dpx::DpxHeader, FrameMeta)> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let len = file
        .metadata()
        .with_context(|| format!("{}: cannot read", path.display()))?
        .len();
    let mut head = Vec::with_capacity(2048);
    file.take(2048)
        .read_to_end(&mut head)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    dpx::read_header(&head, len, path)
}

/// Decode one frame file. Errors name the file.
pub fn read_frame(path: &Path) -> Result<Frame> {
    let format = FileFormat::from_path(path).ok_or_else(|| unsupported(path))?;
    match format {
        FileFormat::Dpx => {
            let bytes =
                std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
            dpx::decode(&bytes, path)
        }
        FileFormat::Exr => exr::read(path).with_context(|| format!("{}", path.display())),
        _ => raster::read(path).with_context(|| format!("{}", path.display())),
    }
}

/// The formats nitrate writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum OutputFormat {
    Dpx(DpxLayout),
    Tiff { bits: u8 },
    Png { bits: u8 },
    Exr { half: bool },
}

/// Names accepted by `--format`.
pub const FORMAT_NAMES: &[&str] = &[
    "dpx8", "dpx10", "dpx12", "dpx16", "tiff8", "tiff16", "png8", "png16", "exr16", "exr32",
];

impl OutputFormat {
    /// Parse a `--format` name; DPX is written big-endian, 10/12-bit filled (method A).
    pub fn parse(name: &str, planes: usize) -> Result<Self> {
        let dpx = |bits| {
            OutputFormat::Dpx(DpxLayout {
                bits,
                packing: if bits == 10 || bits == 12 {
                    Packing::FilledA
                } else {
                    Packing::Packed
                },
                big_endian: true,
                planes,
            })
        };
        Ok(match name.to_ascii_lowercase().as_str() {
            "dpx8" => dpx(8),
            "dpx10" => dpx(10),
            "dpx12" => dpx(12),
            "dpx16" => dpx(16),
            "tiff8" => OutputFormat::Tiff { bits: 8 },
            "tiff16" => OutputFormat::Tiff { bits: 16 },
            "png8" => OutputFormat::Png { bits: 8 },
            "png16" => OutputFormat::Png { bits: 16 },
            "exr16" => OutputFormat::Exr { half: true },
            "exr32" => OutputFormat::Exr { half: false },
            other => bail!(
                "unknown output format '{other}' (valid: {})",
                FORMAT_NAMES.join(", ")
            ),
        })
    }

    /// The input's own format and depth: what is written when `--format` is not given.
    /// JPEG is read only, so it becomes 8-bit PNG (lossless, same depth).
    pub fn same_as(info: &FrameInfo) -> Self {
        let bits = if info.meta.bit_depth <= 8 { 8 } else { 16 };
        match info.format {
            FileFormat::Dpx => {
                OutputFormat::Dpx(info.dpx_layout.expect("DPX info carries its layout"))
            }
            FileFormat::Tiff if info.meta.sample == SampleKind::Float => {
                OutputFormat::Exr { half: false }
            }
            FileFormat::Tiff => OutputFormat::Tiff { bits },
            FileFormat::Png | FileFormat::Jpeg => OutputFormat::Png { bits },
            FileFormat::Exr => OutputFormat::Exr {
                half: info.meta.sample == SampleKind::Half,
            },
        }
    }

    pub fn extension(&self) -> &'static str {
        match self {
            OutputFormat::Dpx(_) => "dpx",
            OutputFormat::Tiff { .. } => "tif",
            OutputFormat::Png { .. } => "png",
            OutputFormat::Exr { .. } => "exr",
        }
    }

    /// The same format for a frame of `planes` planes (DPX layouts carry their plane count).
    pub fn for_planes(self, planes: usize) -> Self {
        match self {
            OutputFormat::Dpx(l) => OutputFormat::Dpx(DpxLayout { planes, ..l }),
            other => other,
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputFormat::Dpx(l) => write!(f, "DPX {}-bit", l.bits),
            OutputFormat::Tiff { bits } => write!(f, "TIFF {bits}-bit"),
            OutputFormat::Png { bits } => write!(f, "PNG {bits}-bit"),
            OutputFormat::Exr { half: true } => write!(f, "OpenEXR half"),
            OutputFormat::Exr { half: false } => write!(f, "OpenEXR float"),
        }
    }
}

/// Encode a frame into the bytes of a file.
pub fn encode_frame(frame: &Frame, format: OutputFormat) -> Result<Vec<u8>> {
    match format.for_planes(frame.planes) {
        OutputFormat::Dpx(layout) => dpx::encode(frame, &layout),
        OutputFormat::Tiff { bits } => raster::encode(frame, RasterKind::Tiff, bits),
        OutputFormat::Png { bits } => raster::encode(frame, RasterKind::Png, bits),
        OutputFormat::Exr { half } => exr::encode(frame, half),
    }
}

/// Suffix of the temporary files that atomic writes rename into place.
pub const TEMP_SUFFIX: &str = ".nitrate-partial";

/// The hidden temporary name beside `path` that an atomic write goes through.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}{TEMP_SUFFIX}"))
}

static DURABLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Whether written files are flushed to the disk before they are renamed into place, and
/// their directory after (`restore --no-fsync` turns it off for scratch disks). On by default:
/// without it a power cut can leave a file under its final name that holds nothing.
pub fn set_durable(on: bool) {
    DURABLE.store(on, std::sync::atomic::Ordering::Relaxed);
}

fn durable() -> bool {
    DURABLE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Flush a written file's data to the disk (when [`set_durable`] is on).
pub fn sync_file(path: &Path) -> std::io::Result<()> {
    if durable() {
        std::fs::File::open(path)?.sync_all()?;
    }
    Ok(())
}

/// Flush the directory holding `path`, so a rename into it survives a power cut (when
/// [`set_durable`] is on). File systems that cannot flush a directory are taken at their word.
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    if !durable() {
        return Ok(());
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Ok(()),
        other => other,
    }
}

/// Write `bytes` to `path` so that the file either appears whole or not at all: write a hidden
/// temporary beside it, flush it, then rename over and flush the directory. A failure removes
/// the temporary.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, bytes)?;
        if durable() {
            f.sync_all()?;
        }
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("{}: cannot write", path.display()));
    }
    sync_parent(path).with_context(|| {
        format!(
            "{}: written, but its folder cannot be flushed to disk",
            path.display()
        )
    })
}

/// Encode and write a frame atomically.
pub fn write_frame(path: &Path, frame: &Frame, format: OutputFormat) -> Result<()> {
    let bytes = encode_frame(frame, format)
        .with_context(|| format!("{}: cannot encode", path.display()))?;
    write_atomic(path, &bytes)
}

/// What `restore` and `probe` read: numbered frame files, or one video file through FFmpeg.
#[derive(Clone, Debug)]
pub enum Input {
    Sequence(sequence::Sequence),
    Video(Box<video::VideoInfo>),
}

impl From<sequence::Sequence> for Input {
    fn from(seq: sequence::Sequence) -> Input {
        Input::Sequence(seq)
    }
}

impl Input {
    /// A video file (by extension, or any other file that is not a frame format and that
    /// ffprobe reads), else a sequence as [`sequence::Sequence::discover`] finds it.
    /// `ffmpeg` is `--ffmpeg`, when given.
    pub fn discover(path: &Path, ffmpeg: Option<&Path>) -> Result<Input> {
        let unknown_file = path.is_file() && FileFormat::from_path(path).is_none();
        if video::is_video_path(path) && !path.is_dir() || unknown_file {
            let ff = video::Ffmpeg::locate(ffmpeg);
            if unknown_file && !video::is_video_path(path) {
                // Not an extension we know: a video only if FFmpeg reads one in it.
                return match ff.and_then(|ff| video::probe(&ff, path)) {
                    Ok(info) => Ok(Input::Video(Box::new(info))),
                    Err(e) => Err(anyhow::anyhow!(
                        "{}, and not a video FFmpeg reads ({e:#})",
                        unsupported(path)
                    )),
                };
            }
            return Ok(Input::Video(Box::new(video::probe(&ff?, path)?)));
        }
        Ok(Input::Sequence(sequence::Sequence::discover(path)?))
    }

    /// The sequence's pattern or the video's path, for messages.
    pub fn name(&self) -> String {
        match self {
            Input::Sequence(s) => s.pattern.clone(),
            Input::Video(v) => v.path.display().to_string(),
        }
    }

    /// Frame numbers in order: from the file names, or a video's frame indices from 0.
    pub fn numbers(&self) -> Vec<i64> {
        match self {
            Input::Sequence(s) => s.frames.iter().map(|f| f.number).collect(),
            Input::Video(v) => (0..v.frames as i64).collect(),
        }
    }

    /// The frame at position `pos`, for messages.
    pub fn frame_label(&self, pos: usize) -> String {
        match self {
            Input::Sequence(s) => s.frames[pos].path.display().to_string(),
            Input::Video(v) => format!("{} (frame {pos})", v.path.display()),
        }
    }
}
