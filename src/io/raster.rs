//! PNG, TIFF and JPEG through the `image` crate: 8 and 16-bit integer samples (TIFF also
//! 32-bit float), grey or RGB. Alpha is accepted only when fully opaque.

use std::io::{BufReader, Cursor};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use image::{DynamicImage, ExtendedColorType, ImageDecoder, ImageEncoder, ImageReader};

use crate::frame::{max_code, Frame, FrameMeta, SampleKind, Transfer};
use crate::io::dpx::quantise_fast;

fn reader(path: &Path) -> Result<ImageReader<BufReader<std::fs::File>>> {
    let file = std::fs::File::open(path).context("cannot open")?;
    ImageReader::new(BufReader::new(file))
        .with_guessed_format()
        .context("cannot read")
}

fn planes_and_depth(color: ExtendedColorType) -> Result<(usize, u8, SampleKind)> {
    use ExtendedColorType as C;
    Ok(match color {
        C::L8 | C::La8 => (1, 8, SampleKind::Integer),
        C::Rgb8 | C::Rgba8 => (3, 8, SampleKind::Integer),
        C::L16 | C::La16 => (1, 16, SampleKind::Integer),
        C::Rgb16 | C::Rgba16 => (3, 16, SampleKind::Integer),
        C::Rgb32F | C::Rgba32F => (3, 32, SampleKind::Float),
        other => bail!(
            "unsupported pixel layout {other:?} (nitrate reads grey or RGB, 8/16-bit or float)"
        ),
    })
}

fn meta(bits: u8, sample: SampleKind) -> FrameMeta {
    FrameMeta {
        bit_depth: bits,
        sample,
        transfer: if sample == SampleKind::Float {
            Transfer::Linear
        } else {
            Transfer::Video
        },
        ..FrameMeta::default()
    }
}

/// Size, planes and metadata without decoding the pixels.
pub fn read_info(path: &Path) -> Result<(usize, usize, usize, FrameMeta)> {
    let decoder = reader(path)?
        .into_decoder()
        .map_err(|e| anyhow!("not a readable image: {e}"))?;
    let (w, h) = decoder.dimensions();
    let (planes, bits, sample) = planes_and_depth(decoder.original_color_type())?;
    Ok((w as usize, h as usize, planes, meta(bits, sample)))
}

pub fn read(path: &Path) -> Result<Frame> {
    let image = reader(path)?
        .decode()
        .map_err(|e| anyhow!("cannot decode: {e}"))?;
    from_dynamic(image)
}

/// Planar normalised frame from a decoded image; alpha must be opaque and is dropped.
pub fn from_dynamic(image: DynamicImage) -> Result<Frame> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let (planes, bits, sample) = planes_and_depth(image.color().into())?;
    let channels = image.color().channel_count() as usize;
    let has_alpha = image.color().has_alpha();
    let mut frame = Frame::new(w, h, planes, meta(bits, sample));
    let n = w * h;
    // Code -> value tables: exact `code / max` like every integer decoder here, and fast.
    let lut8: Vec<f32> = (0..=255u32).map(|c| c as f32 / 255.0).collect();
    let lut16: Vec<f32> = if bits == 16 {
        (0..=65535u32).map(|c| c as f32 / 65535.0).collect()
    } else {
        Vec::new()
    };
    macro_rules! fill {
        ($buf:expr, $conv:expr, $opaque:expr) => {{
            let buf = $buf;
            if has_alpha && !buf.chunks_exact(channels).all(|px| px[channels - 1] == $opaque) {
                bail!("image has an alpha channel that is not fully opaque; nitrate restores opaque film frames only");
            }
            for (i, px) in buf.chunks_exact(channels).enumerate().take(n) {
                for p in 0..planes {
                    frame.data[p * n + i] = $conv(px[p]);
                }
            }
        }};
    }
    match &image {
        DynamicImage::ImageLuma8(b) => fill!(b.as_raw(), |c: u8| lut8[c as usize], u8::MAX),
        DynamicImage::ImageLumaA8(b) => fill!(b.as_raw(), |c: u8| lut8[c as usize], u8::MAX),
        DynamicImage::ImageRgb8(b) => fill!(b.as_raw(), |c: u8| lut8[c as usize], u8::MAX),
        DynamicImage::ImageRgba8(b) => fill!(b.as_raw(), |c: u8| lut8[c as usize], u8::MAX),
        DynamicImage::ImageLuma16(b) => fill!(b.as_raw(), |c: u16| lut16[c as usize], u16::MAX),
        DynamicImage::ImageLumaA16(b) => fill!(b.as_raw(), |c: u16| lut16[c as usize], u16::MAX),
        DynamicImage::ImageRgb16(b) => fill!(b.as_raw(), |c: u16| lut16[c as usize], u16::MAX),
        DynamicImage::ImageRgba16(b) => fill!(b.as_raw(), |c: u16| lut16[c as usize], u16::MAX),
        DynamicImage::ImageRgb32F(b) => fill!(b.as_raw(), |v: f32| v, 1.0),
        DynamicImage::ImageRgba32F(b) => fill!(b.as_raw(), |v: f32| v, 1.0),
        other => bail!("unsupported pixel layout {:?}", other.color()),
    }
    Ok(frame)
}

/// Interleaved integer samples of `bits` (8 or 16), native-endian bytes as `image` expects.
fn interleave(frame: &Frame, bits: u8) -> Vec<u8> {
    let (n, planes) = (frame.plane_len(), frame.planes);
    let max = max_code(bits);
    let bytes = bits as usize / 8;
    let mut out = vec![0u8; n * planes * bytes];
    // Plane by plane into every `planes`-th sample: loops that vectorise.
    for p in 0..planes {
        let src = &frame.data[p * n..(p + 1) * n];
        if bytes == 1 {
            for (o, &v) in out[p..].iter_mut().step_by(planes).zip(src) {
                *o = quantise_fast(v, max) as u8;
            }
        } else {
            for (o, &v) in out.chunks_exact_mut(2 * planes).zip(src) {
                o[2 * p..2 * p + 2].copy_from_slice(&(quantise_fast(v, max) as u16).to_ne_bytes());
            }
        }
    }
    out
}

fn color_type(planes: usize, bits: u8) -> ExtendedColorType {
    match (planes, bits) {
        (1, 8) => ExtendedColorType::L8,
        (1, _) => ExtendedColorType::L16,
        (_, 8) => ExtendedColorType::Rgb8,
        _ => ExtendedColorType::Rgb16,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RasterKind {
    Png,
    Tiff,
}

/// Encode as PNG or uncompressed TIFF with `bits` (8 or 16) per sample. PNG carries text
/// chunks: `Software` (nitrate and its version) and, for a restored frame, `Comment` with its
/// provenance.
pub fn encode(frame: &Frame, kind: RasterKind, bits: u8) -> Result<Vec<u8>> {
    let bytes = interleave(frame, bits);
    let (w, h) = (frame.width as u32, frame.height as u32);
    let mut buf = Vec::new();
    match kind {
        RasterKind::Png => encode_png(&mut buf, frame, &bytes, bits)
            .map_err(|e| anyhow!("cannot encode PNG: {e}"))?,
        RasterKind::Tiff => image::codecs::tiff::TiffEncoder::new(Cursor::new(&mut buf))
            .write_image(&bytes, w, h, color_type(frame.planes, bits))
            .map_err(|e| anyhow!("cannot encode TIFF: {e}"))?,
    }
    Ok(buf)
}

/// `samples` as [`interleave`] gives them (16-bit in native order; PNG wants big endian).
fn encode_png(
    buf: &mut Vec<u8>,
    frame: &Frame,
    samples: &[u8],
    bits: u8,
) -> Result<(), png::EncodingError> {
    let mut encoder = png::Encoder::new(&mut *buf, frame.width as u32, frame.height as u32);
    encoder.set_color(if frame.planes == 1 {
        png::ColorType::Grayscale
    } else {
        png::ColorType::Rgb
    });
    encoder.set_depth(if bits == 8 {
        png::BitDepth::Eight
    } else {
        png::BitDepth::Sixteen
    });
    encoder.set_compression(png::Compression::Fast);
    encoder.set_filter(png::Filter::Adaptive);
    let software = concat!("nitrate ", env!("CARGO_PKG_VERSION"));
    encoder.add_text_chunk("Software".into(), software.into())?;
    if let Some(mark) = &frame.meta.provenance {
        encoder.add_text_chunk("Comment".into(), mark.clone())?;
    }
    let mut writer = encoder.write_header()?;
    if bits == 8 {
        writer.write_image_data(samples)?;
    } else {
        let be: Vec<u8> = samples
            .chunks_exact(2)
            .flat_map(|c| u16::from_ne_bytes([c[0], c[1]]).to_be_bytes())
            .collect();
        writer.write_image_data(&be)?;
    }
    writer.finish()
}
