//! The in-memory frame: planes of normalised `f32` code values plus the metadata that travels
//! from input file to output file.

use std::fmt;

/// How the source stored its samples; decides how values are normalised and what "same bit
/// depth" means on output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SampleKind {
    /// Unsigned integer code values of `bit_depth` bits, normalised by `2^bits - 1`.
    Integer,
    /// IEEE half floats, stored as is.
    Half,
    /// IEEE single floats, stored as is.
    Float,
}

/// The transfer characteristic of the code values. Values are never converted: a log scan stays
/// log; this only records what the numbers mean so it can be written back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Transfer {
    Unspecified,
    /// Linear light (EXR, linear DPX).
    Linear,
    /// Printing density (Cineon-style log), the usual film scan.
    PrintingDensity,
    /// Logarithmic, other than printing density.
    Logarithmic,
    /// Display-referred video or sRGB-like code values (PNG, TIFF, JPEG, Rec.709 DPX).
    Video,
    /// A DPX transfer code with no closer match, kept so it is written back unchanged.
    DpxCode(u8),
}

impl fmt::Display for Transfer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transfer::Unspecified => write!(f, "unspecified"),
            Transfer::Linear => write!(f, "linear"),
            Transfer::PrintingDensity => write!(f, "log (printing density)"),
            Transfer::Logarithmic => write!(f, "logarithmic"),
            Transfer::Video => write!(f, "video/display"),
            Transfer::DpxCode(c) => write!(f, "DPX transfer code {c}"),
        }
    }
}

/// SMPTE timecode as stored in DPX: BCD `HHMMSSFF` in one 32-bit word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Timecode(pub u32);

impl Timecode {
    /// The undefined value DPX uses for "no timecode".
    pub const UNDEFINED: u32 = 0xFFFF_FFFF;

    pub fn from_hmsf(h: u8, m: u8, s: u8, f: u8) -> Self {
        let bcd = |v: u8| (((v / 10) << 4) | (v % 10)) as u32;
        Timecode((bcd(h) << 24) | (bcd(m) << 16) | (bcd(s) << 8) | bcd(f))
    }
}

impl fmt::Display for Timecode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0.to_be_bytes();
        let d = |v: u8| (v >> 4) * 10 + (v & 0xF);
        write!(
            f,
            "{:02}:{:02}:{:02}:{:02}",
            d(b[0]),
            d(b[1]),
            d(b[2]),
            d(b[3])
        )
    }
}

/// What a frame carries besides its pixels. Everything here is written back to output formats
/// that have room for it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FrameMeta {
    /// Bits per sample in the source (8, 10, 12, 16 for integers; 16 or 32 for floats).
    pub bit_depth: u8,
    pub sample: SampleKind,
    pub transfer: Transfer,
    pub frame_rate: Option<f64>,
    pub timecode: Option<Timecode>,
    /// Film edge (key) code as read from the DPX film header, e.g. "KU 22 12 123456 1234".
    pub edge_code: Option<String>,
    /// DPX header fields with no home elsewhere, carried so a DPX written from a DPX keeps them.
    pub dpx: Option<crate::io::dpx::DpxCarry>,
    /// The frame's number in its sequence (from the file name), set by the pipeline so stages
    /// can name what they write per frame (masks, track entries). Not stored in files.
    #[serde(default)]
    pub number: Option<i64>,
    /// What restored the frame (tool, version, chain), marked in the file where the format has
    /// room: DPX creator, EXR software and comments, PNG tEXt. Set by the pipeline; not read.
    #[serde(default)]
    pub provenance: Option<String>,
    /// How `stabilise` moved this frame's picture, as in its motion track: `[dx, dy` px,
    /// `rotation` degrees, `scale]` about the frame's centre. A mark on the film strip itself
    /// (a scratch) moved with it, the steadied scene did not; `scratch` tells the two apart by
    /// it. None where no stage moved the frame.
    #[serde(default)]
    pub film_move: Option<[f64; 4]>,
}

impl Default for FrameMeta {
    fn default() -> Self {
        FrameMeta {
            bit_depth: 16,
            sample: SampleKind::Integer,
            transfer: Transfer::Unspecified,
            frame_rate: None,
            timecode: None,
            edge_code: None,
            dpx: None,
            number: None,
            provenance: None,
            film_move: None,
        }
    }
}

/// A frame of `planes` planes (1: monochrome film, 3: colour R, G, B), each `width * height`
/// normalised samples, stored planar and row-major in one buffer so planes upload as one block.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    pub width: usize,
    pub height: usize,
    pub planes: usize,
    pub data: Vec<f32>,
    pub meta: FrameMeta,
}

impl Frame {
    pub fn new(width: usize, height: usize, planes: usize, meta: FrameMeta) -> Self {
        Frame {
            width,
            height,
            planes,
            data: vec![0.0; width * height * planes],
            meta,
        }
    }

    pub fn plane_len(&self) -> usize {
        self.width * self.height
    }

    pub fn plane(&self, p: usize) -> &[f32] {
        let n = self.plane_len();
        &self.data[p * n..(p + 1) * n]
    }

    pub fn plane_mut(&mut self, p: usize) -> &mut [f32] {
        let n = self.plane_len();
        &mut self.data[p * n..(p + 1) * n]
    }

    /// Mutable views of every plane at once, for per-plane parallel work.
    pub fn planes_mut(&mut self) -> Vec<&mut [f32]> {
        let n = self.plane_len();
        self.data.chunks_mut(n.max(1)).collect()
    }

    pub fn get(&self, p: usize, x: usize, y: usize) -> f32 {
        self.data[p * self.plane_len() + y * self.width + x]
    }

    pub fn set(&mut self, p: usize, x: usize, y: usize, v: f32) {
        let n = self.plane_len();
        self.data[p * n + y * self.width + x] = v;
    }

    /// Shape as text for messages: "2048x1556, 3 planes".
    pub fn shape(&self) -> String {
        format!(
            "{}x{}, {} plane{}",
            self.width,
            self.height,
            self.planes,
            if self.planes == 1 { "" } else { "s" }
        )
    }
}

/// Largest code value of an unsigned integer sample of `bits` bits.
pub fn max_code(bits: u8) -> u32 {
    ((1u64 << bits) - 1) as u32
}

/// Normalised value to the nearest integer code, clamped to the code range.
pub fn quantise(v: f32, max: u32) -> u32 {
    let x = (v * max as f32).round();
    if x.is_nan() || x <= 0.0 {
        0
    } else if x >= max as f32 {
        max
    } else {
        x as u32
    }
}
