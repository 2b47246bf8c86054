//! DPX (SMPTE 268M-2003) reader and writer, by hand.
//!
//! One image element, luma (descriptor 6) or RGB (50), 8/10/12/16-bit integer samples, both
//! byte orders. Bit orders follow FFmpeg's `libavcodec/dpx.c`, the reader scanners are tested
//! against:
//! - 10-bit filled RGB: one pixel a word, R in bits 31..22, G 21..12, B 11..2 (method A) or
//!   29..20, 19..10, 9..0 (method B).
//! - 10-bit filled luma: three samples a word from the *bottom*: 11..2, 21..12, 31..22 (method A)
//!   or 9..0, 19..10, 29..20 (method B). FFmpeg and libdpx both read luma this way.
//! - Packed 10/12-bit (packing 0): one continuous stream per line, filling each 32-bit word from
//!   bit 0 upwards (FFmpeg's `read12in32`, libdpx's `UnPackPacked`).
//! - 12-bit filled: one sample per 16-bit word, `code << 4` (A) or `code` (B).
//! - Every line starts on a 32-bit boundary, plus the element's end-of-line padding.

use std::fmt::Display;
use std::path::Path;

use anyhow::{bail, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::frame::{max_code, Frame, FrameMeta, SampleKind, Timecode, Transfer};

/// Bytes of the file header plus the industry headers; the image data may start here.
pub const HEADER_LEN: usize = 2048;
/// The generic header (file, image, orientation), the part every DPX must have.
const GENERIC_LEN: usize = 1664;
const INDUSTRY_LEN: usize = 384;
/// The lowest image data offset accepted (the end of the file information header).
const MIN_DATA_OFFSET: u64 = 768;
const MAX_DIM: usize = 65536;
/// The spec caps user data at 1 MB.
const MAX_USER_DATA: usize = 1 << 20;
const UNDEF32: u32 = 0xFFFF_FFFF;
const UNDEF16: u16 = 0xFFFF;
const UNDEF8: u8 = 0xFF;

/// How samples are laid out in the image data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Packing {
    /// Packing 0: samples packed back to back into 32-bit words, no padding.
    Packed,
    /// Packing 1, "method A": each 32-bit word (10-bit) or 16-bit word (12-bit) filled with
    /// padding in the least significant bits. The common one.
    FilledA,
    /// Packing 2, "method B": padding in the most significant bits.
    FilledB,
}

impl Packing {
    /// The header's packing code.
    pub fn code(self) -> u16 {
        match self {
            Packing::Packed => 0,
            Packing::FilledA => 1,
            Packing::FilledB => 2,
        }
    }
}

/// Everything needed to write (or unpack) a DPX image element.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DpxLayout {
    pub bits: u8,
    pub packing: Packing,
    pub big_endian: bool,
    /// 1 (luma, descriptor 6) or 3 (RGB, descriptor 50).
    pub planes: usize,
}

impl DpxLayout {
    /// Why this layout cannot be written or read, if it cannot.
    fn check(&self) -> std::result::Result<(), String> {
        if self.planes != 1 && self.planes != 3 {
            return Err(format!(
                "DPX holds 1 (luma) or 3 (RGB) planes, not {}",
                self.planes
            ));
        }
        match (self.bits, self.packing) {
            (8 | 16, Packing::Packed | Packing::FilledA) | (10 | 12, _) => Ok(()),
            (8 | 16, Packing::FilledB) => Err(format!(
                "packing method B is not defined for {}-bit DPX",
                self.bits
            )),
            (b, _) => Err(format!("unsupported DPX bit depth {b} (8, 10, 12 or 16)")),
        }
    }

    /// Bytes holding one line's samples, padded to the next 32-bit word.
    pub fn line_bytes(&self, width: usize) -> u64 {
        let samples = width as u64 * self.planes as u64;
        match (self.bits, self.packing) {
            (10, Packing::FilledA | Packing::FilledB) => samples.div_ceil(3) * 4,
            (10 | 12, Packing::Packed) => (samples * self.bits as u64).div_ceil(32) * 4,
            (8, _) => samples.div_ceil(4) * 4,
            _ => (samples * 2).div_ceil(4) * 4,
        }
    }

    /// Bytes of one line without the 32-bit line alignment, for layouts where that differs and
    /// still makes sense: FFmpeg reads such files (its own old encoder wrote them).
    fn tight_line_bytes(&self, width: usize) -> Option<u64> {
        let samples = width as u64 * self.planes as u64;
        let tight = match (self.bits, self.packing) {
            (8, _) => samples,
            (12, Packing::FilledA | Packing::FilledB) | (16, _) => samples * 2,
            _ => return None,
        };
        (tight != self.line_bytes(width)).then_some(tight)
    }
}

/// An IEEE single as its raw bits, so undefined (all ones) and NaN survive a round trip exactly
/// (and JSON, which has no NaN).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DpxF32(pub u32);

impl DpxF32 {
    pub const UNDEFINED: DpxF32 = DpxF32(UNDEF32);

    pub fn new(v: f32) -> Self {
        DpxF32(v.to_bits())
    }

    /// The value, or `None` when undefined or NaN.
    pub fn get(self) -> Option<f32> {
        let v = f32::from_bits(self.0);
        (self.0 != UNDEF32 && !v.is_nan()).then_some(v)
    }
}

impl Default for DpxF32 {
    fn default() -> Self {
        DpxF32::UNDEFINED
    }
}

/// DPX header fields carried from an input DPX to the output DPX unchanged. Numbers are kept
/// raw (undefined = all ones); text fields are cut at their first NUL. `Default` is every field
/// undefined.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DpxCarry {
    // Source element layout, so an output can match its input (`layout_of`).
    pub bit_depth: u8,
    pub packing: Packing,
    pub big_endian: bool,
    /// Where the source's image data began; kept on output when there is room (0: none).
    pub data_offset: u32,

    // File information header.
    pub filename: String,
    /// "YYYY:MM:DD:hh:mm:ssLTZ".
    pub creation_time: String,
    pub creator: String,
    pub project: String,
    pub copyright: String,
    /// 0: same as the previous frame, 1: new.
    pub ditto_key: u32,
    /// User data block after the 2048-byte header (its 32-byte user ID included). Only filled
    /// when the bytes given to `read_header` reach it (not by `read_info`).
    pub user_data: Vec<u8>,

    // Image information header, element 0.
    pub orientation: u16,
    /// Raw transfer characteristic code; written back when it still matches `meta.transfer`.
    pub transfer: u8,
    pub colorimetric: u8,
    /// Reference codes, in `bit_depth` bits; rescaled when written at another depth.
    pub ref_low_data: u32,
    pub ref_low_quantity: DpxF32,
    pub ref_high_data: u32,
    pub ref_high_quantity: DpxF32,
    pub description: String,

    // Image source (orientation) header.
    pub x_offset: u32,
    pub y_offset: u32,
    pub x_center: DpxF32,
    pub y_center: DpxF32,
    pub x_original_size: u32,
    pub y_original_size: u32,
    pub source_filename: String,
    pub source_time: String,
    pub input_device: String,
    pub input_serial: String,
    /// Border validity: XL, XR, YT, YB.
    pub border: [u16; 4],
    /// Pixel aspect ratio, horizontal : vertical.
    pub pixel_aspect: [u32; 2],
    pub x_scanned_size: DpxF32,
    pub y_scanned_size: DpxF32,

    // Motion-picture film header. The first five make up `FrameMeta::edge_code`.
    pub film_mfg_id: String,
    pub film_type: String,
    pub perf_offset: String,
    pub prefix: String,
    pub count: String,
    pub format: String,
    pub frame_position: u32,
    pub sequence_length: u32,
    pub held_count: u32,
    /// Superseded on output by `FrameMeta::frame_rate` when that changed.
    pub film_frame_rate: DpxF32,
    pub shutter_angle: DpxF32,
    pub frame_id: String,
    pub slate_info: String,

    // Television header (the time code lives in `FrameMeta::timecode`).
    pub user_bits: u32,
    pub interlace: u8,
    pub field_number: u8,
    pub video_signal: u8,
    pub horizontal_sample_rate: DpxF32,
    pub vertical_sample_rate: DpxF32,
    /// Temporal sampling rate; superseded like `film_frame_rate`.
    pub tv_frame_rate: DpxF32,
    pub time_offset: DpxF32,
    pub gamma: DpxF32,
    pub black_level: DpxF32,
    pub black_gain: DpxF32,
    pub break_point: DpxF32,
    pub white_level: DpxF32,
    pub integration_time: DpxF32,
}

impl Default for DpxCarry {
    fn default() -> Self {
        let u = DpxF32::UNDEFINED;
        DpxCarry {
            bit_depth: 0,
            packing: Packing::FilledA,
            big_endian: true,
            data_offset: 0,
            filename: String::new(),
            creation_time: String::new(),
            creator: String::new(),
            project: String::new(),
            copyright: String::new(),
            ditto_key: 1,
            user_data: Vec::new(),
            orientation: 0,
            transfer: UNDEF8,
            colorimetric: UNDEF8,
            ref_low_data: UNDEF32,
            ref_low_quantity: u,
            ref_high_data: UNDEF32,
            ref_high_quantity: u,
            description: String::new(),
            x_offset: UNDEF32,
            y_offset: UNDEF32,
            x_center: u,
            y_center: u,
            x_original_size: UNDEF32,
            y_original_size: UNDEF32,
            source_filename: String::new(),
            source_time: String::new(),
            input_device: String::new(),
            input_serial: String::new(),
            border: [UNDEF16; 4],
            pixel_aspect: [UNDEF32; 2],
            x_scanned_size: u,
            y_scanned_size: u,
            film_mfg_id: String::new(),
            film_type: String::new(),
            perf_offset: String::new(),
            prefix: String::new(),
            count: String::new(),
            format: String::new(),
            frame_position: UNDEF32,
            sequence_length: UNDEF32,
            held_count: UNDEF32,
            film_frame_rate: u,
            shutter_angle: u,
            frame_id: String::new(),
            slate_info: String::new(),
            user_bits: UNDEF32,
            interlace: UNDEF8,
            field_number: UNDEF8,
            video_signal: UNDEF8,
            horizontal_sample_rate: u,
            vertical_sample_rate: u,
            tv_frame_rate: u,
            time_offset: u,
            gamma: u,
            black_level: u,
            black_gain: u,
            break_point: u,
            white_level: u,
            integration_time: u,
        }
    }
}

impl DpxCarry {
    /// The edge code these film-header fields spell, as `FrameMeta::edge_code` holds it: the five
    /// parts joined by single spaces (an empty part stays empty), `None` when all are empty.
    pub fn edge_code(&self) -> Option<String> {
        let parts = [
            &self.film_mfg_id,
            &self.film_type,
            &self.perf_offset,
            &self.prefix,
            &self.count,
        ];
        if parts.iter().all(|p| p.is_empty()) {
            return None;
        }
        Some(
            parts
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        )
    }

    /// The frame rate a reader takes from these fields: film header first, then television.
    pub fn frame_rate(&self) -> Option<f64> {
        valid_rate(self.film_frame_rate).or(valid_rate(self.tv_frame_rate))
    }
}

/// A parsed header with the image data's position.
#[derive(Clone, Debug)]
pub struct DpxHeader {
    pub width: usize,
    pub height: usize,
    pub layout: DpxLayout,
    pub data_offset: usize,
    /// Bytes from the start of one line to the start of the next.
    pub line_stride: usize,
    /// Bytes holding one line's samples (at most `line_stride`).
    pub line_bytes: usize,
    /// Bytes of image data from `data_offset`: `line_stride * (height - 1) + line_bytes`.
    pub image_bytes: usize,
    /// 10-bit luma lines run on mid-word without the line padding the spec asks for (Scanity,
    /// Lasergraphics and DIAMANT-Film files, which FFmpeg and RAWcooked also special-case).
    pub unpadded_lines: bool,
}

/// DPX transfer characteristic code to `Transfer`.
pub fn transfer_from_code(code: u8) -> Transfer {
    match code {
        0 | UNDEF8 => Transfer::Unspecified,
        1 => Transfer::PrintingDensity,
        2 => Transfer::Linear,
        3 => Transfer::Logarithmic,
        // Unspecified video, SMPTE 274M, Rec. 709, Rec. 601 (625/525), SMPTE 170M, Rec. 624 PAL.
        4..=10 => Transfer::Video,
        // Z (depth) linear/homogeneous and anything newer: kept as a code.
        c => Transfer::DpxCode(c),
    }
}

/// `Transfer` to the DPX code written for it (video: 4, unspecified video).
pub fn transfer_code(t: Transfer) -> u8 {
    match t {
        Transfer::Unspecified => 0,
        Transfer::PrintingDensity => 1,
        Transfer::Linear => 2,
        Transfer::Logarithmic => 3,
        Transfer::Video => 4,
        Transfer::DpxCode(c) => c,
    }
}

/// The layout to write a frame of `planes` planes in so it matches its source: the source DPX's
/// own layout when the frame carries one at its current bit depth, else big-endian with filled
/// method A (10/12-bit) at the nearest DPX depth.
pub fn layout_of(meta: &FrameMeta, planes: usize) -> DpxLayout {
    let bits = match (meta.sample, meta.bit_depth) {
        (SampleKind::Integer, b @ (8 | 10 | 12 | 16)) => b,
        (SampleKind::Integer, b) if b < 8 => 8,
        _ => 16,
    };
    if let Some(c) = meta.dpx.as_ref().filter(|c| c.bit_depth == bits) {
        let layout = DpxLayout {
            bits,
            packing: c.packing,
            big_endian: c.big_endian,
            planes,
        };
        if layout.check().is_ok() {
            return layout;
        }
    }
    DpxLayout {
        bits,
        packing: if bits == 10 || bits == 12 {
            Packing::FilledA
        } else {
            Packing::Packed
        },
        big_endian: true,
        planes,
    }
}

fn err(path: &Path, msg: impl Display) -> anyhow::Error {
    anyhow::anyhow!("{}: {msg}", path.display())
}

/// Reads header fields; fields past `limit` (where image data or the file begins) read as
/// undefined.
struct Fields<'a> {
    b: &'a [u8],
    be: bool,
    limit: usize,
}

impl Fields<'_> {
    fn get<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        if off + N > self.limit {
            return None;
        }
        self.b
            .get(off..off + N)
            .map(|s| s.try_into().expect("N bytes"))
    }
    fn u8(&self, off: usize) -> u8 {
        self.get::<1>(off).map_or(UNDEF8, |a| a[0])
    }
    fn u16(&self, off: usize) -> u16 {
        self.get(off).map_or(UNDEF16, |a| {
            if self.be {
                u16::from_be_bytes(a)
            } else {
                u16::from_le_bytes(a)
            }
        })
    }
    fn u32(&self, off: usize) -> u32 {
        self.get(off).map_or(UNDEF32, |a| {
            if self.be {
                u32::from_be_bytes(a)
            } else {
                u32::from_le_bytes(a)
            }
        })
    }
    fn f32(&self, off: usize) -> DpxF32 {
        DpxF32(self.u32(off))
    }
    /// Text up to the first NUL; empty when undefined (0xFF-filled). UTF-8 when valid, else
    /// Latin-1.
    fn text(&self, off: usize, len: usize) -> String {
        if off + len > self.limit || off + len > self.b.len() {
            return String::new();
        }
        let s = &self.b[off..off + len];
        if s[0] == 0xFF {
            return String::new();
        }
        let s = &s[..s.iter().position(|&c| c == 0).unwrap_or(len)];
        match std::str::from_utf8(s) {
            Ok(t) => t.to_owned(),
            Err(_) => s.iter().map(|&c| c as char).collect(),
        }
    }
}

fn valid_rate(f: DpxF32) -> Option<f64> {
    f.get().filter(|v| v.is_finite() && *v > 0.0).map(f64::from)
}

fn descriptor_name(d: u8) -> &'static str {
    match d {
        0 => "user-defined",
        1 => "red",
        2 => "green",
        3 => "blue",
        4 => "alpha",
        7 => "chrominance",
        8 => "depth",
        9 => "composite video",
        51 => "RGBA",
        52 => "ABGR",
        100 => "CbYCrY 4:2:2",
        101 => "CbYACrYA 4:2:2:4",
        102 => "CbYCr 4:4:4",
        103 => "CbYCrA 4:4:4:4",
        150..=156 => "user-defined multi-component",
        _ => "unknown",
    }
}

/// Parse and check a DPX header. `bytes` is at least the first 2048 bytes of the file (all of
/// it when shorter); `file_len` is the whole file's length, checked against the image size.
pub fn read_header(bytes: &[u8], file_len: u64, path: &Path) -> Result<(DpxHeader, FrameMeta)> {
    let e = |msg: String| err(path, msg);
    let magic = bytes
        .get(..4)
        .map(|m| u32::from_be_bytes(m.try_into().expect("4 bytes")));
    let be = match magic {
        Some(0x5344_5058) => true,  // "SDPX"
        Some(0x5850_4453) => false, // "XPDS"
        Some(m) => {
            return Err(e(format!(
                "not a DPX file: bad magic number 0x{m:08X} (expected \"SDPX\" or \"XPDS\")"
            )))
        }
        None => return Err(e(format!("not a DPX file: only {} bytes", bytes.len()))),
    };
    if bytes.len() < GENERIC_LEN {
        return Err(e(format!(
            "file too short for a DPX header: {} bytes, the generic header alone is {GENERIC_LEN}",
            bytes.len()
        )));
    }
    let all = Fields {
        b: bytes,
        be,
        limit: bytes.len(),
    };

    let elements = all.u16(770);
    if elements != 1 {
        return Err(e(if elements == 0 || elements > 8 {
            format!("invalid DPX header: {elements} image elements")
        } else {
            format!("unsupported DPX with {elements} image elements (only single-element files are read)")
        }));
    }
    let (width, height) = (all.u32(772) as usize, all.u32(776) as usize);
    if width == 0 || height == 0 {
        return Err(e(format!(
            "invalid DPX header: zero image size ({width}x{height})"
        )));
    }
    if width > MAX_DIM || height > MAX_DIM {
        return Err(e(format!(
            "invalid DPX header: image size {width}x{height} is out of range (at most {MAX_DIM})"
        )));
    }
    let sign = all.u32(780);
    if sign == 1 {
        return Err(e("unsupported DPX: signed image data".into()));
    }
    let descriptor = all.u8(800);
    let planes = match descriptor {
        6 => 1,
        50 => 3,
        d => {
            return Err(e(format!(
                "unsupported DPX descriptor {d} ({}); nitrate reads luma (6) and RGB (50)",
                descriptor_name(d)
            )))
        }
    };
    let bits = all.u8(803);
    match bits {
        8 | 10 | 12 | 16 => {}
        1 => return Err(e("unsupported DPX bit depth 1 (bitmap)".into())),
        32 | 64 => {
            return Err(e(format!(
                "unsupported DPX bit depth {bits} (floating point)"
            )))
        }
        b => return Err(e(format!("invalid DPX bit depth {b}"))),
    }
    let packing = match (bits, all.u16(804)) {
        (_, 0) => Packing::Packed,
        (_, 1) => Packing::FilledA,
        (10 | 12, 2) => Packing::FilledB,
        (b, p) => return Err(e(format!("invalid DPX packing {p} for {b}-bit samples"))),
    };
    let encoding = all.u16(806);
    if encoding != 0 && encoding != UNDEF16 {
        return Err(e(format!(
            "unsupported DPX: run-length encoded image data (encoding {encoding})"
        )));
    }
    let layout = DpxLayout {
        bits,
        packing,
        big_endian: be,
        planes,
    };

    let mut offset = all.u32(808);
    if offset == 0 || offset == UNDEF32 {
        offset = all.u32(4);
    }
    let offset = offset as u64;
    if offset < MIN_DATA_OFFSET {
        return Err(e(format!("invalid DPX header: image data offset {offset} lies inside the header (at least {MIN_DATA_OFFSET})")));
    }
    if offset >= file_len {
        return Err(e(format!(
            "image data offset {offset} is beyond the end of the file ({file_len} bytes)"
        )));
    }

    // Header fields stop where the image data starts.
    let f = Fields {
        b: bytes,
        be,
        limit: bytes.len().min(offset as usize),
    };
    let carry = read_carry(&f, layout, offset as u32);

    // Line layout: spec padding first, then FFmpeg's fallbacks for writers that skip it.
    let eol = match f.u32(812) {
        0 | UNDEF32 => 0,
        p => p as u64,
    };
    let avail = file_len - offset;
    let (w, h) = (width as u64, height as u64);
    let line = layout.line_bytes(width);
    let needed = (line + eol) * (h - 1) + line;
    let (stride, line, unpadded) = if needed <= avail {
        (line + eol, line, false)
    } else if let Some(tight) = layout
        .tight_line_bytes(width)
        .filter(|t| eol == 0 && t * h <= avail)
    {
        (tight, tight, false)
    } else if bits == 10
        && packing != Packing::Packed
        && planes == 1
        && eol == 0
        && (w * h).div_ceil(3) * 4 <= avail
        && skips_line_padding(&carry)
    {
        (0, 0, true)
    } else {
        return Err(e(format!(
            "truncated DPX: image data needs {needed} bytes from offset {offset} but the file has {file_len}"
        )));
    };
    let image_bytes = if unpadded {
        (w * h).div_ceil(3) * 4
    } else {
        stride * (h - 1) + line
    };

    let timecode = f.u32(1920);
    let meta = FrameMeta {
        bit_depth: bits,
        sample: SampleKind::Integer,
        transfer: transfer_from_code(carry.transfer),
        frame_rate: carry.frame_rate(),
        timecode: (timecode != Timecode::UNDEFINED).then_some(Timecode(timecode)),
        edge_code: carry.edge_code(),
        dpx: Some(carry),
        number: None,
        provenance: None,
        film_move: None,
    };
    let header = DpxHeader {
        width,
        height,
        layout,
        data_offset: offset as usize,
        line_stride: stride as usize,
        line_bytes: line as usize,
        image_bytes: image_bytes as usize,
        unpadded_lines: unpadded,
    };
    Ok((header, meta))
}

/// Writers known to run 10-bit luma lines on without padding (as FFmpeg and RAWcooked detect).
fn skips_line_padding(c: &DpxCarry) -> bool {
    c.creator.starts_with("Lasergraphics Inc.")
        || c.creator.starts_with("DIAMANT-Film")
        || c.input_device.starts_with("Scanity")
}

fn read_carry(f: &Fields, layout: DpxLayout, data_offset: u32) -> DpxCarry {
    let user_len = f.u32(32) as usize;
    let user_data = if user_len != 0 && user_len != UNDEF32 as usize && user_len <= MAX_USER_DATA {
        // Only when it lies wholly between the header and the image data.
        let end = HEADER_LEN + user_len;
        if end <= f.limit {
            f.b[HEADER_LEN..end].to_vec()
        } else {
            Vec::new()
        }
    } else {
        Vec::new()
    };
    DpxCarry {
        bit_depth: layout.bits,
        packing: layout.packing,
        big_endian: layout.big_endian,
        data_offset,
        filename: f.text(36, 100),
        creation_time: f.text(136, 24),
        creator: f.text(160, 100),
        project: f.text(260, 200),
        copyright: f.text(460, 200),
        ditto_key: f.u32(20),
        user_data,
        orientation: f.u16(768),
        transfer: f.u8(801),
        colorimetric: f.u8(802),
        ref_low_data: f.u32(784),
        ref_low_quantity: f.f32(788),
        ref_high_data: f.u32(792),
        ref_high_quantity: f.f32(796),
        description: f.text(820, 32),
        x_offset: f.u32(1408),
        y_offset: f.u32(1412),
        x_center: f.f32(1416),
        y_center: f.f32(1420),
        x_original_size: f.u32(1424),
        y_original_size: f.u32(1428),
        source_filename: f.text(1432, 100),
        source_time: f.text(1532, 24),
        input_device: f.text(1556, 32),
        input_serial: f.text(1588, 32),
        border: [f.u16(1620), f.u16(1622), f.u16(1624), f.u16(1626)],
        pixel_aspect: [f.u32(1628), f.u32(1632)],
        x_scanned_size: f.f32(1636),
        y_scanned_size: f.f32(1640),
        film_mfg_id: f.text(1664, 2),
        film_type: f.text(1666, 2),
        perf_offset: f.text(1668, 2),
        prefix: f.text(1670, 6),
        count: f.text(1676, 4),
        format: f.text(1680, 32),
        frame_position: f.u32(1712),
        sequence_length: f.u32(1716),
        held_count: f.u32(1720),
        film_frame_rate: f.f32(1724),
        shutter_angle: f.f32(1728),
        frame_id: f.text(1732, 32),
        slate_info: f.text(1764, 100),
        user_bits: f.u32(1924),
        interlace: f.u8(1928),
        field_number: f.u8(1929),
        video_signal: f.u8(1930),
        horizontal_sample_rate: f.f32(1932),
        vertical_sample_rate: f.f32(1936),
        tv_frame_rate: f.f32(1940),
        time_offset: f.f32(1944),
        gamma: f.f32(1948),
        black_level: f.f32(1952),
        black_gain: f.f32(1956),
        break_point: f.f32(1960),
        white_level: f.f32(1964),
        integration_time: f.f32(1968),
    }
}

/// Header and metadata of a DPX file, reading only its first 2048 bytes.
pub fn read_info(path: &Path) -> Result<(DpxHeader, FrameMeta)> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| err(path, format!("cannot open: {e}")))?;
    let len = file
        .metadata()
        .map_err(|e| err(path, format!("cannot read: {e}")))?
        .len();
    let mut head = Vec::with_capacity(HEADER_LEN);
    file.take(HEADER_LEN as u64)
        .read_to_end(&mut head)
        .map_err(|e| err(path, format!("cannot read: {e}")))?;
    read_header(&head, len, path)
}

/// Read and decode a DPX file.
pub fn read(path: &Path) -> Result<Frame> {
    let bytes = std::fs::read(path).map_err(|e| err(path, format!("cannot read: {e}")))?;
    decode(&bytes, path)
}

/// Decode a whole DPX file held in memory. `path` only names the file in errors.
pub fn decode(bytes: &[u8], path: &Path) -> Result<Frame> {
    let mut frame = Frame::new(0, 0, 1, FrameMeta::default());
    decode_into(bytes, path, &mut frame)?;
    Ok(frame)
}

/// `decode` into an existing frame, reusing its buffer when large enough: skips faulting in a
/// fresh buffer, which even with the huge-page hint costs about as much as the decode at 2K.
pub fn decode_into(bytes: &[u8], path: &Path, frame: &mut Frame) -> Result<()> {
    let (h, meta) = read_header(bytes, bytes.len() as u64, path)?;
    let n = h.width * h.height * h.layout.planes;
    frame.width = h.width;
    frame.height = h.height;
    frame.planes = h.layout.planes;
    frame.meta = meta;
    // Every sample is overwritten, so only a grown buffer needs new memory.
    if frame.data.capacity() < n {
        frame.data = alloc_samples(n);
    } else {
        frame.data.truncate(n);
        frame.data.resize(n, 0.0);
    }
    let img = &bytes[h.data_offset..h.data_offset + h.image_bytes];
    match h.layout.planes {
        1 => decode_planes::<1>(&h, img, &mut frame.data),
        _ => decode_planes::<3>(&h, img, &mut frame.data),
    }
    Ok(())
}

/// A zeroed sample buffer. Large frames get a transparent-huge-page hint first: a fresh 2K RGB
/// frame is 38 MB, and faulting it in 4 KB pages cost more than decoding it (8 ms vs 3 ms here).
pub fn alloc_samples(n: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; n];
    hugepage_hint(&mut v);
    v
}

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
fn hugepage_hint(v: &mut [f32]) {
    const MADV_HUGEPAGE: i32 = 14;
    const PAGE: usize = 4096;
    extern "C" {
        fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: i32) -> i32;
    }
    let bytes = std::mem::size_of_val(v);
    if bytes < 4 << 20 {
        return;
    }
    let start = (v.as_mut_ptr() as usize).next_multiple_of(PAGE);
    let end = (v.as_mut_ptr() as usize + bytes) / PAGE * PAGE;
    // SAFETY: the range lies inside memory this Vec owns; MADV_HUGEPAGE is only a hint and
    // never changes contents or validity. Failure (THP off) is harmless and ignored.
    unsafe {
        madvise(start as *mut std::ffi::c_void, end - start, MADV_HUGEPAGE);
    }
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
fn hugepage_hint(_: &mut [f32]) {}

/// Code to normalised value: `code as f32 / max` (IEEE division, so 10-bit values are exactly
/// `code / 1023`, as the GPU's table holds them). A division rather than a table so the row
/// loops vectorise.
#[inline(always)]
fn norm(c: u32, max: f32) -> f32 {
    c as f32 / max
}

/// `crate::frame::quantise` without its libm `roundf` call, so the pack loops vectorise: round
/// half away from zero via truncation, exact for every input (tests/dpx.rs compares the two).
#[inline(always)]
pub fn quantise_fast(v: f32, max: u32) -> u32 {
    let x = v * max as f32;
    let t = x as i32; // truncates; NaN -> 0; saturates
    let r = t.saturating_add((x - t as f32 >= 0.5) as i32);
    r.clamp(0, max as i32) as u32
}

/// Mutable row slices of a planar buffer, one `[plane rows; P]` per line, for parallel work.
fn rows_mut<const P: usize>(data: &mut [f32], width: usize) -> Vec<[&mut [f32]; P]> {
    let n = data.len() / P;
    let mut planes: Vec<_> = data
        .chunks_mut(n.max(1))
        .map(|p| p.chunks_mut(width))
        .collect();
    (0..n / width)
        .map(|_| std::array::from_fn(|p| planes[p].next().expect("a row per plane")))
        .collect()
}

fn rows_of<const P: usize>(data: &[f32], width: usize, height: usize, y: usize) -> [&[f32]; P] {
    let n = width * height;
    std::array::from_fn(|p| &data[p * n + y * width..p * n + (y + 1) * width])
}

fn decode_planes<const P: usize>(h: &DpxHeader, img: &[u8], data: &mut [f32]) {
    let max = max_code(h.layout.bits) as f32;
    let rows = rows_mut::<P>(data, h.width);
    if h.unpadded_lines {
        let shift = if h.layout.packing == Packing::FilledA {
            2
        } else {
            0
        };
        let be = h.layout.big_endian;
        rows.into_par_iter().enumerate().for_each(|(y, r)| {
            let start = y * h.width;
            for (x, o) in r[0].iter_mut().enumerate() {
                let s = start + x;
                let w = word_at(img, s / 3, be);
                *o = norm((w >> (shift + 10 * (s % 3) as u32)) & 0x3FF, max);
            }
        });
        return;
    }
    rows.into_par_iter().enumerate().for_each(|(y, mut r)| {
        let start = y * h.line_stride;
        decode_line(&h.layout, &img[start..start + h.line_bytes], &mut r, max);
    });
}

fn word_at(b: &[u8], i: usize, be: bool) -> u32 {
    let a: [u8; 4] = b[i * 4..i * 4 + 4].try_into().expect("4 bytes");
    if be {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

#[inline(always)]
fn be32(c: &[u8]) -> u32 {
    u32::from_be_bytes([c[0], c[1], c[2], c[3]])
}
#[inline(always)]
fn le32(c: &[u8]) -> u32 {
    u32::from_le_bytes([c[0], c[1], c[2], c[3]])
}
#[inline(always)]
fn be16(c: &[u8]) -> u32 {
    u16::from_be_bytes([c[0], c[1]]) as u32
}
#[inline(always)]
fn le16(c: &[u8]) -> u32 {
    u16::from_le_bytes([c[0], c[1]]) as u32
}

/// One line's codes, in file (pixel-interleaved) order, into the plane rows.
#[inline(always)]
fn scatter<I: Iterator<Item = u32>>(rows: &mut [&mut [f32]], mut codes: I, max: f32) {
    match rows {
        [y] => {
            for (o, c) in y.iter_mut().zip(codes) {
                *o = norm(c, max);
            }
        }
        [r, g, b] => {
            for ((r, g), b) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()) {
                *r = norm(codes.next().unwrap_or(0), max);
                *g = norm(codes.next().unwrap_or(0), max);
                *b = norm(codes.next().unwrap_or(0), max);
            }
        }
        _ => unreachable!("1 or 3 planes"),
    }
}

/// One line of byte-aligned samples, `N` bytes each, pixel-interleaved, into the plane rows.
#[inline(always)]
fn get_samples<const N: usize>(
    rows: &mut [&mut [f32]],
    src: &[u8],
    max: f32,
    f: impl Fn(&[u8]) -> u32,
) {
    match rows {
        [y] => y
            .iter_mut()
            .zip(src.chunks_exact(N))
            .for_each(|(o, c)| *o = norm(f(c), max)),
        [r, g, b] => {
            for (((r, g), b), c) in r
                .iter_mut()
                .zip(g.iter_mut())
                .zip(b.iter_mut())
                .zip(src.chunks_exact(3 * N))
            {
                *r = norm(f(&c[..N]), max);
                *g = norm(f(&c[N..2 * N]), max);
                *b = norm(f(&c[2 * N..]), max);
            }
        }
        _ => unreachable!("1 or 3 planes"),
    }
}

/// Codes of a packed (packing 0) line: a stream filling each 32-bit word from bit 0 up.
struct BitReader<I> {
    words: I,
    acc: u64,
    n: u32,
    bits: u32,
}

impl<I: Iterator<Item = u32>> Iterator for BitReader<I> {
    type Item = u32;
    #[inline(always)]
    fn next(&mut self) -> Option<u32> {
        if self.n < self.bits {
            self.acc |= (self.words.next().unwrap_or(0) as u64) << self.n;
            self.n += 32;
        }
        let v = (self.acc & ((1 << self.bits) - 1)) as u32;
        self.acc >>= self.bits;
        self.n -= self.bits;
        Some(v)
    }
}

fn bit_reader<I: Iterator<Item = u32>>(words: I, bits: u8) -> BitReader<I> {
    BitReader {
        words,
        acc: 0,
        n: 0,
        bits: bits as u32,
    }
}

/// The 10-bit filled unpacking loop shared by `decode` and `unpack_filled10` (the GPU twin's
/// reference). `words` are the line's words as numbers; `shift` 2 for method A, 0 for B.
#[inline(always)]
fn unpack10_line<I: Iterator<Item = u32>>(mut words: I, shift: u32, rows: &mut [&mut [f32]]) {
    let s = |w: u32, at: u32| norm((w >> (shift + at)) & 0x3FF, 1023.0);
    match rows {
        // Luma fills each word from the bottom (FFmpeg's read10in32_gray).
        [y] => {
            let mut chunks = y.chunks_exact_mut(3);
            for (c, w) in (&mut chunks).zip(&mut words) {
                c[0] = s(w, 0);
                c[1] = s(w, 10);
                c[2] = s(w, 20);
            }
            let rest = chunks.into_remainder();
            if !rest.is_empty() {
                let w = words.next().unwrap_or(0);
                for (i, o) in rest.iter_mut().enumerate() {
                    *o = s(w, 10 * i as u32);
                }
            }
        }
        // RGB: one pixel a word, R at the top.
        [r, g, b] => {
            for (((r, g), b), w) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()).zip(words) {
                *r = s(w, 20);
                *g = s(w, 10);
                *b = s(w, 0);
            }
        }
        _ => unreachable!("1 or 3 planes"),
    }
}

fn decode_line(l: &DpxLayout, src: &[u8], rows: &mut [&mut [f32]], max: f32) {
    let be = l.big_endian;
    match (l.bits, l.packing) {
        (8, _) => get_samples::<1>(rows, src, max, |c| c[0] as u32),
        (10 | 12, Packing::Packed) => {
            if be {
                scatter(rows, bit_reader(src.chunks_exact(4).map(be32), l.bits), max)
            } else {
                scatter(rows, bit_reader(src.chunks_exact(4).map(le32), l.bits), max)
            }
        }
        (10, p) => {
            let shift = if p == Packing::FilledA { 2 } else { 0 };
            if be {
                unpack10_line(src.chunks_exact(4).map(be32), shift, rows)
            } else {
                unpack10_line(src.chunks_exact(4).map(le32), shift, rows)
            }
        }
        (12, p) => {
            let shift = if p == Packing::FilledA { 4 } else { 0 };
            if be {
                get_samples::<2>(rows, src, max, |c| (be16(c) >> shift) & 0xFFF)
            } else {
                get_samples::<2>(rows, src, max, |c| (le16(c) >> shift) & 0xFFF)
            }
        }
        _ => {
            if be {
                get_samples::<2>(rows, src, max, be16)
            } else {
                get_samples::<2>(rows, src, max, le16)
            }
        }
    }
}

/// 32-bit words per line of 10-bit filled data: three samples a word, each line starting on a
/// new word.
pub fn words_per_line_filled10(width: usize, planes: usize) -> usize {
    (width * planes).div_ceil(3)
}

/// CPU twin of the GPU 10-bit unpacker: method A image data, read from the file as little-endian
/// `u32`s (`u32::from_le_bytes` of each 4 bytes; a big-endian file's words are byte-swapped
/// here), to a planar frame normalised by 1023 (`code as f32 / 1023.0` exactly).
/// RGB words hold R, G, B in bits 31..22, 21..12, 11..2; luma words hold three consecutive
/// samples in bits 11..2, 21..12, 31..22 (FFmpeg's order).
///
/// # Panics
/// When `words` is shorter than `words_per_line_filled10(width, planes) * height`, or `planes`
/// is not 1 or 3.
pub fn unpack_filled10(
    words: &[u32],
    big_endian: bool,
    width: usize,
    height: usize,
    planes: usize,
) -> Vec<f32> {
    assert!(
        planes == 1 || planes == 3,
        "unpack_filled10: 1 or 3 planes, not {planes}"
    );
    let wpl = words_per_line_filled10(width, planes);
    assert!(
        words.len() >= wpl * height,
        "unpack_filled10: {} words for {width}x{height}x{planes} (needs {})",
        words.len(),
        wpl * height
    );
    let mut out = alloc_samples(width * height * planes);
    if out.is_empty() {
        return out;
    }
    let line = |y: usize, rows: &mut [&mut [f32]]| {
        let ws = &words[y * wpl..(y + 1) * wpl];
        if big_endian {
            unpack10_line(ws.iter().map(|w| w.swap_bytes()), 2, rows)
        } else {
            unpack10_line(ws.iter().copied(), 2, rows)
        }
    };
    if planes == 1 {
        rows_mut::<1>(&mut out, width)
            .into_par_iter()
            .enumerate()
            .for_each(|(y, mut r)| line(y, &mut r));
    } else {
        rows_mut::<3>(&mut out, width)
            .into_par_iter()
            .enumerate()
            .for_each(|(y, mut r)| line(y, &mut r));
    }
    out
}

/// Where a line's packed words go: file bytes, or the GPU twin's words.
trait WordSink {
    fn put_all<I: Iterator<Item = u32>>(self, words: I);
}

/// File bytes in the file's byte order.
struct FileWords<'a> {
    out: &'a mut [u8],
    be: bool,
}

impl WordSink for FileWords<'_> {
    #[inline(always)]
    fn put_all<I: Iterator<Item = u32>>(self, words: I) {
        if self.be {
            self.out
                .chunks_exact_mut(4)
                .zip(words)
                .for_each(|(d, w)| d.copy_from_slice(&w.to_be_bytes()));
        } else {
            self.out
                .chunks_exact_mut(4)
                .zip(words)
                .for_each(|(d, w)| d.copy_from_slice(&w.to_le_bytes()));
        }
    }
}

/// Words that give the file's bytes when written as little-endian (`pack_filled10`).
struct LeWords<'a> {
    out: &'a mut [u32],
    be: bool,
}

impl WordSink for LeWords<'_> {
    #[inline(always)]
    fn put_all<I: Iterator<Item = u32>>(self, words: I) {
        if self.be {
            self.out
                .iter_mut()
                .zip(words)
                .for_each(|(d, w)| *d = w.swap_bytes());
        } else {
            self.out.iter_mut().zip(words).for_each(|(d, w)| *d = w);
        }
    }
}

/// The 10-bit filled packing loop shared by `encode` and `pack_filled10`: each word of the line,
/// as a number, into `sink`. Unused slots and padding bits are zero.
#[inline(always)]
fn pack10_line<S: WordSink>(rows: &[&[f32]], shift: u32, sink: S) {
    let q = |v: f32| quantise_fast(v, 1023);
    match rows {
        [y] => {
            // Whole words, then the line's last partial word (unused slots zero).
            let (body, tail) = y.split_at(y.len() / 3 * 3);
            let last = (!tail.is_empty()).then(|| {
                let slots = tail.iter().enumerate();
                slots.fold(0, |w, (i, &v)| w | (q(v) << (shift + 10 * i as u32)))
            });
            let words = body.chunks_exact(3);
            sink.put_all(
                words
                    .map(|c| {
                        (q(c[0]) << shift) | (q(c[1]) << (shift + 10)) | (q(c[2]) << (shift + 20))
                    })
                    .chain(last),
            )
        }
        [r, g, b] => sink.put_all(r.iter().zip(g.iter()).zip(b.iter()).map(|((&r, &g), &b)| {
            (q(r) << (shift + 20)) | (q(g) << (shift + 10)) | (q(b) << shift)
        })),
        _ => unreachable!("1 or 3 planes"),
    }
}

/// CPU twin of the GPU 10-bit packer, inverse of `unpack_filled10`: a planar normalised frame to
/// method A words, rounded to the nearest code and clamped (`crate::frame::quantise`), byte-swapped
/// for a big-endian file so they can be written out as little-endian bytes.
///
/// # Panics
/// When `frame_data` is shorter than `width * height * planes`, or `planes` is not 1 or 3.
pub fn pack_filled10(
    frame_data: &[f32],
    big_endian: bool,
    width: usize,
    height: usize,
    planes: usize,
) -> Vec<u32> {
    assert!(
        planes == 1 || planes == 3,
        "pack_filled10: 1 or 3 planes, not {planes}"
    );
    assert!(
        frame_data.len() >= width * height * planes,
        "pack_filled10: {} samples for {width}x{height}x{planes}",
        frame_data.len()
    );
    let wpl = words_per_line_filled10(width, planes);
    let mut out = vec![0u32; wpl * height];
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(wpl).enumerate().for_each(|(y, line)| {
        let sink = LeWords {
            out: line,
            be: big_endian,
        };
        if planes == 1 {
            pack10_line(&rows_of::<1>(frame_data, width, height, y), 2, sink)
        } else {
            pack10_line(&rows_of::<3>(frame_data, width, height, y), 2, sink)
        }
    });
    out
}

/// One line's codes in file (pixel-interleaved) order, for the bit-stream packer.
#[inline(always)]
fn gather(rows: &[&[f32]], max: u32, mut put: impl FnMut(u32)) {
    match rows {
        [y] => y.iter().for_each(|&v| put(quantise_fast(v, max))),
        [r, g, b] => {
            for ((&r, &g), &b) in r.iter().zip(g.iter()).zip(b.iter()) {
                put(quantise_fast(r, max));
                put(quantise_fast(g, max));
                put(quantise_fast(b, max));
            }
        }
        _ => unreachable!("1 or 3 planes"),
    }
}

/// One line of byte-aligned samples, `N` bytes each, pixel-interleaved.
#[inline(always)]
fn put_samples<const N: usize>(rows: &[&[f32]], out: &mut [u8], f: impl Fn(f32) -> [u8; N]) {
    match rows {
        [y] => out
            .chunks_exact_mut(N)
            .zip(y.iter())
            .for_each(|(d, &v)| d.copy_from_slice(&f(v))),
        [r, g, b] => {
            for (d, ((&r, &g), &b)) in out
                .chunks_exact_mut(3 * N)
                .zip(r.iter().zip(g.iter()).zip(b.iter()))
            {
                d[..N].copy_from_slice(&f(r));
                d[N..2 * N].copy_from_slice(&f(g));
                d[2 * N..].copy_from_slice(&f(b));
            }
        }
        _ => unreachable!("1 or 3 planes"),
    }
}

fn encode_line(l: &DpxLayout, rows: &[&[f32]], out: &mut [u8]) {
    let be = l.big_endian;
    let max = max_code(l.bits);
    let half = move |v: f32, shift: u32| {
        let c = (quantise_fast(v, max) << shift) as u16;
        if be {
            c.to_be_bytes()
        } else {
            c.to_le_bytes()
        }
    };
    match (l.bits, l.packing) {
        (8, _) => put_samples(rows, out, |v| [quantise_fast(v, 255) as u8]),
        (10 | 12, Packing::Packed) => {
            let mut dst = out.chunks_exact_mut(4);
            let mut put32 = |w: u32| {
                if let Some(d) = dst.next() {
                    d.copy_from_slice(&if be { w.to_be_bytes() } else { w.to_le_bytes() });
                }
            };
            let bits = l.bits as u32;
            let (mut acc, mut n) = (0u64, 0u32);
            gather(rows, max, |c| {
                acc |= (c as u64) << n;
                n += bits;
                if n >= 32 {
                    put32(acc as u32);
                    acc >>= 32;
                    n -= 32;
                }
            });
            if n > 0 {
                put32(acc as u32);
            }
        }
        (10, p) => pack10_line(
            rows,
            if p == Packing::FilledA { 2 } else { 0 },
            FileWords { out, be },
        ),
        (12, Packing::FilledA) => put_samples(rows, out, |v| half(v, 4)),
        _ => put_samples(rows, out, |v| half(v, 0)),
    }
}

/// Writes header fields in the file's byte order.
struct Put<'a> {
    b: &'a mut [u8],
    be: bool,
}

impl Put<'_> {
    fn u8(&mut self, off: usize, v: u8) {
        self.b[off] = v;
    }
    fn u16(&mut self, off: usize, v: u16) {
        self.b[off..off + 2].copy_from_slice(&if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        });
    }
    fn u32(&mut self, off: usize, v: u32) {
        self.b[off..off + 4].copy_from_slice(&if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        });
    }
    fn f32(&mut self, off: usize, v: DpxF32) {
        self.u32(off, v.0);
    }
    /// UTF-8, cut at a character boundary to fit, NUL-padded (a full field has no NUL).
    fn text(&mut self, off: usize, len: usize, s: &str) {
        let mut end = s.len().min(len);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let field = &mut self.b[off..off + len];
        field.fill(0);
        field[..end].copy_from_slice(&s.as_bytes()[..end]);
    }
}

/// Reference code from `from` bits to `to` bits, when both are known depths.
fn rescale_ref(code: u32, from: u8, to: u8) -> u32 {
    if code == UNDEF32 || from == to || !matches!(from, 8 | 10 | 12 | 16) || code > max_code(from) {
        return code;
    }
    let (fm, tm) = (max_code(from) as u64, max_code(to) as u64);
    ((code as u64 * tm + fm / 2) / fm) as u32
}

/// Film and TV frame-rate fields for `rate`: the carried raw values while the rate is unchanged,
/// else the new rate wherever the source had one (the film field when it had none).
fn rate_fields(rate: Option<f64>, carry: Option<&DpxCarry>) -> (DpxF32, DpxF32) {
    let rate = rate.filter(|r| r.is_finite() && *r > 0.0);
    let Some(c) = carry else {
        let v = rate.map_or(DpxF32::UNDEFINED, |r| DpxF32::new(r as f32));
        return (v, v);
    };
    let (film, tv) = (c.film_frame_rate, c.tv_frame_rate);
    if rate == c.frame_rate() {
        return (film, tv);
    }
    let v = rate.map_or(DpxF32::UNDEFINED, |r| DpxF32::new(r as f32));
    let pick = |old: DpxF32| if valid_rate(old).is_some() { v } else { old };
    let (film2, tv2) = (pick(film), pick(tv));
    if rate.is_some() && valid_rate(film2).is_none() && valid_rate(tv2).is_none() {
        (v, tv2)
    } else {
        (film2, tv2)
    }
}

/// The five film-header edge-code parts of `code`: split on single spaces, else on whitespace.
fn edge_parts(code: &str) -> Result<[String; 5]> {
    const WIDTH: [usize; 5] = [2, 2, 2, 6, 4];
    let mut parts: Vec<&str> = code.split(' ').collect();
    if parts.len() != 5 {
        parts = code.split_whitespace().collect();
    }
    if parts.len() != 5 {
        bail!(
            "edge code {code:?} does not have the five DPX film-header parts \
             (manufacturer, film type, perf offset, prefix, count)"
        );
    }
    for (p, w) in parts.iter().zip(WIDTH) {
        if p.len() > w {
            bail!("edge code {code:?}: part {p:?} is longer than its {w}-character DPX field");
        }
    }
    Ok(std::array::from_fn(|i| parts[i].to_owned()))
}

/// Encode a frame as a DPX file: a 2048-byte SMPTE 268M V2.0 header (plus any carried user
/// data), then the image data. Frame rate, time code and edge code come from `frame.meta`; the
/// other fields from `frame.meta.dpx` when present.
/// A whole DPX file's bytes with the header written and the image data zeroed, and the offset
/// of the image data.
fn encode_header(
    meta: &FrameMeta,
    w: usize,
    h: usize,
    planes: usize,
    layout: &DpxLayout,
) -> Result<(Vec<u8>, usize)> {
    layout.check().map_err(anyhow::Error::msg)?;
    if planes != layout.planes {
        bail!(
            "frame has {} planes but the DPX layout is for {}",
            planes,
            layout.planes
        );
    }
    if w == 0 || h == 0 || w > MAX_DIM || h > MAX_DIM {
        bail!("cannot write a {w}x{h} DPX (each side 1 to {MAX_DIM})");
    }
    let carry = meta.dpx.as_ref();
    let no_carry;
    let c = match carry {
        Some(c) => c,
        None => {
            no_carry = DpxCarry::default();
            &no_carry
        }
    };

    let user = if c.user_data.len() <= MAX_USER_DATA {
        &c.user_data[..]
    } else {
        &[][..]
    };
    let min_offset = (HEADER_LEN + user.len()).div_ceil(4) * 4;
    let offset = match c.data_offset as usize {
        o if o >= min_offset && o <= min_offset + (16 << 20) => o,
        _ => min_offset,
    };
    let line = layout.line_bytes(w) as usize;
    let total = offset + line * h;
    if total > u32::MAX as usize {
        bail!("a {w}x{h} DPX of {total} bytes is too large for the format's 32-bit sizes");
    }
    let mut out = vec![0u8; total];

    let head = &mut out[..offset];
    let mut p = Put {
        b: head,
        be: layout.big_endian,
    };
    // File information header.
    p.b[..4].copy_from_slice(if layout.big_endian { b"SDPX" } else { b"XPDS" });
    p.u32(4, offset as u32);
    p.text(8, 8, "V2.0");
    p.u32(16, total as u32);
    p.u32(20, c.ditto_key);
    p.u32(24, GENERIC_LEN as u32);
    p.u32(28, INDUSTRY_LEN as u32);
    p.u32(32, user.len() as u32);
    p.text(36, 100, &c.filename);
    p.text(136, 24, &c.creation_time);
    if let Some(mark) = &meta.provenance {
        p.text(160, 100, mark);
    } else if carry.is_some() {
        p.text(160, 100, &c.creator);
    } else {
        p.text(160, 100, concat!("nitrate ", env!("CARGO_PKG_VERSION")));
    }
    p.text(260, 200, &c.project);
    p.text(460, 200, &c.copyright);
    p.u32(660, UNDEF32); // not encrypted

    // Image information header, one element.
    p.u16(768, c.orientation);
    p.u16(770, 1);
    p.u32(772, w as u32);
    p.u32(776, h as u32);
    for e in 1..8 {
        p.b[780 + 72 * e..780 + 72 * (e + 1)].fill(0xFF); // unused elements: undefined
    }
    p.u32(780, 0); // unsigned
    p.u32(784, rescale_ref(c.ref_low_data, c.bit_depth, layout.bits));
    p.f32(788, c.ref_low_quantity);
    p.u32(792, rescale_ref(c.ref_high_data, c.bit_depth, layout.bits));
    p.f32(796, c.ref_high_quantity);
    p.u8(800, if layout.planes == 1 { 6 } else { 50 });
    let transfer = match carry {
        Some(c) if transfer_from_code(c.transfer) == meta.transfer => c.transfer,
        _ => transfer_code(meta.transfer),
    };
    p.u8(801, transfer);
    let colorimetric = match carry {
        Some(c) => c.colorimetric,
        None if transfer <= 10 => transfer,
        None => UNDEF8,
    };
    p.u8(802, colorimetric);
    p.u8(803, layout.bits);
    p.u16(804, layout.packing.code());
    p.u16(806, 0); // no run-length encoding
    p.u32(808, offset as u32);
    p.u32(812, 0);
    p.u32(816, 0);
    p.text(820, 32, &c.description);

    // Image source (orientation) header.
    p.u32(1408, c.x_offset);
    p.u32(1412, c.y_offset);
    p.f32(1416, c.x_center);
    p.f32(1420, c.y_center);
    p.u32(1424, c.x_original_size);
    p.u32(1428, c.y_original_size);
    p.text(1432, 100, &c.source_filename);
    p.text(1532, 24, &c.source_time);
    p.text(1556, 32, &c.input_device);
    p.text(1588, 32, &c.input_serial);
    for (i, &v) in c.border.iter().enumerate() {
        p.u16(1620 + 2 * i, v);
    }
    p.u32(1628, c.pixel_aspect[0]);
    p.u32(1632, c.pixel_aspect[1]);
    p.f32(1636, c.x_scanned_size);
    p.f32(1640, c.y_scanned_size);

    // Motion-picture film header.
    let edge: [String; 5] = match &meta.edge_code {
        None => Default::default(),
        Some(e) if carry.is_some() && c.edge_code().as_deref() == Some(e.as_str()) => [
            c.film_mfg_id.clone(),
            c.film_type.clone(),
            c.perf_offset.clone(),
            c.prefix.clone(),
            c.count.clone(),
        ],
        Some(e) => edge_parts(e)?,
    };
    for ((off, len), s) in [(1664, 2), (1666, 2), (1668, 2), (1670, 6), (1676, 4)]
        .into_iter()
        .zip(&edge)
    {
        p.text(off, len, s);
    }
    p.text(1680, 32, &c.format);
    p.u32(1712, c.frame_position);
    p.u32(1716, c.sequence_length);
    p.u32(1720, c.held_count);
    let (film_rate, tv_rate) = rate_fields(meta.frame_rate, carry);
    p.f32(1724, film_rate);
    p.f32(1728, c.shutter_angle);
    p.text(1732, 32, &c.frame_id);
    p.text(1764, 100, &c.slate_info);

    // Television header.
    p.u32(1920, meta.timecode.map_or(Timecode::UNDEFINED, |t| t.0));
    p.u32(1924, c.user_bits);
    p.u8(1928, c.interlace);
    p.u8(1929, c.field_number);
    p.u8(1930, c.video_signal);
    p.u8(1931, 0);
    p.f32(1932, c.horizontal_sample_rate);
    p.f32(1936, c.vertical_sample_rate);
    p.f32(1940, tv_rate);
    p.f32(1944, c.time_offset);
    p.f32(1948, c.gamma);
    p.f32(1952, c.black_level);
    p.f32(1956, c.black_gain);
    p.f32(1960, c.break_point);
    p.f32(1964, c.white_level);
    p.f32(1968, c.integration_time);

    p.b[HEADER_LEN..HEADER_LEN + user.len()].copy_from_slice(user);

    Ok((out, offset))
}

/// Encode a frame as a DPX file: a 2048-byte SMPTE 268M V2.0 header (plus any carried user
/// data), then the image data. Frame rate, time code and edge code come from `frame.meta`; the
/// other fields from `frame.meta.dpx` when present.
pub fn encode(frame: &Frame, layout: &DpxLayout) -> Result<Vec<u8>> {
    let (w, h) = (frame.width, frame.height);
    if frame.data.len() != w * h * frame.planes {
        bail!(
            "frame data holds {} samples, not {w}x{h}x{}",
            frame.data.len(),
            frame.planes
        );
    }
    let (mut out, offset) = encode_header(&frame.meta, w, h, frame.planes, layout)?;
    let line = layout.line_bytes(w) as usize;
    let img = &mut out[offset..];
    let data = &frame.data;
    img.par_chunks_mut(line).enumerate().for_each(|(y, dst)| {
        if layout.planes == 1 {
            encode_line(layout, &rows_of::<1>(data, w, h, y), dst)
        } else {
            encode_line(layout, &rows_of::<3>(data, w, h, y), dst)
        }
    });
    Ok(out)
}

/// Encode a 10-bit filled (method A) DPX whose image words were packed elsewhere (on the GPU,
/// by the twin of [`pack_filled10`]): the header from `meta`, then the words as file bytes.
pub fn encode_filled10_words(
    meta: &FrameMeta,
    w: usize,
    h: usize,
    layout: &DpxLayout,
    words: &[u32],
) -> Result<Vec<u8>> {
    if layout.bits != 10 || layout.packing != Packing::FilledA {
        bail!(
            "packed words are 10-bit filled (method A), not {}-bit {:?}",
            layout.bits,
            layout.packing
        );
    }
    let expect = words_per_line_filled10(w, layout.planes) * h;
    if words.len() != expect {
        bail!(
            "{} packed words for a {w}x{h} frame that needs {expect}",
            words.len()
        );
    }
    let (mut out, offset) = encode_header(meta, w, h, layout.planes, layout)?;
    out[offset..].copy_from_slice(bytemuck::cast_slice(words));
    Ok(out)
}

/// The image words of a 10-bit filled (method A) DPX as read from the file (little-endian
/// `u32`s; a big-endian file's words still need their byte swap), for unpacking on the GPU.
/// `None` when the file has another layout or padded lines, which take the CPU decoder.
pub fn filled10_words(
    bytes: &[u8],
    path: &Path,
) -> Result<Option<(DpxHeader, FrameMeta, Vec<u32>)>> {
    let (header, meta) = read_header(bytes, bytes.len() as u64, path)?;
    let l = header.layout;
    let line = words_per_line_filled10(header.width, l.planes) * 4;
    if l.bits != 10
        || l.packing != Packing::FilledA
        || header.line_stride != line
        || header.unpadded_lines
    {
        return Ok(None);
    }
    let data = &bytes[header.data_offset..header.data_offset + line * header.height];
    let words = data
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(Some((header, meta, words)))
}
