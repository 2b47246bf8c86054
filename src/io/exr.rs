//! OpenEXR read and write (half and float) through the `exr` crate.
//!
//! Channels `R`, `G`, `B` make a colour frame, `Y` (or a lone channel) a monochrome one. An alpha
//! channel is accepted only when fully opaque, since nitrate would otherwise drop information.

use std::io::Cursor;
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use exr::prelude::*;

use crate::frame::{Frame, FrameMeta, SampleKind, Timecode, Transfer};

/// Which channels of the file become planes, by name.
fn plane_channels(names: &[String]) -> Option<Vec<usize>> {
    let find = |n: &str| names.iter().position(|c| c == n);
    if let (Some(r), Some(g), Some(b)) = (find("R"), find("G"), find("B")) {
        return Some(vec![r, g, b]);
    }
    if let Some(y) = find("Y") {
        return Some(vec![y]);
    }
    let non_alpha: Vec<usize> = (0..names.len()).filter(|&i| names[i] != "A").collect();
    (non_alpha.len() == 1).then_some(non_alpha)
}

fn meta_from(attrs: &ImageAttributes, layer: &LayerAttributes, half: bool) -> FrameMeta {
    let frame_rate = layer
        .frames_per_second
        .filter(|r| r.1 != 0 && r.0 > 0)
        .map(|r| r.0 as f64 / r.1 as f64);
    FrameMeta {
        bit_depth: if half { 16 } else { 32 },
        sample: if half {
            SampleKind::Half
        } else {
            SampleKind::Float
        },
        transfer: Transfer::Linear,
        frame_rate,
        timecode: attrs
            .time_code
            .map(|t| Timecode::from_hmsf(t.hours, t.minutes, t.seconds, t.frame)),
        ..FrameMeta::default()
    }
}

/// Size, planes and metadata from the header alone.
pub fn read_info(path: &Path) -> Result<(usize, usize, usize, FrameMeta)> {
    let meta = MetaData::read_from_file(path, false)
        .map_err(|e| anyhow!("not a readable OpenEXR file: {e}"))?;
    let header = meta
        .headers
        .first()
        .ok_or_else(|| anyhow!("OpenEXR file has no layers"))?;
    let names: Vec<String> = header
        .channels
        .list
        .iter()
        .map(|c| c.name.to_string())
        .collect();
    let planes = plane_channels(&names)
        .ok_or_else(|| anyhow!("OpenEXR channels {names:?} are neither R,G,B nor Y"))?;
    let half = planes
        .iter()
        .all(|&i| header.channels.list[i].sample_type == SampleType::F16);
    let size = header.layer_size;
    Ok((
        size.0,
        size.1,
        planes.len(),
        meta_from(&header.shared_attributes, &header.own_attributes, half),
    ))
}

pub fn read(path: &Path) -> Result<Frame> {
    let image = ::exr::prelude::read()
        .no_deep_data()
        .largest_resolution_level()
        .all_channels()
        .first_valid_layer()
        .all_attributes()
        .from_file(path)
        .map_err(|e| anyhow!("cannot decode OpenEXR: {e}"))?;
    let layer = &image.layer_data;
    let (w, h) = (layer.size.0, layer.size.1);
    let list = &layer.channel_data.list;
    let names: Vec<String> = list.iter().map(|c| c.name.to_string()).collect();
    let planes = plane_channels(&names)
        .ok_or_else(|| anyhow!("OpenEXR channels {names:?} are neither R,G,B nor Y"))?;
    if let Some(a) = names.iter().position(|n| n == "A") {
        if !list[a].sample_data.values_as_f32().all(|v| v == 1.0) {
            bail!("OpenEXR alpha channel is not fully opaque; nitrate restores opaque film frames only");
        }
    }
    let half = planes
        .iter()
        .all(|&i| matches!(list[i].sample_data, FlatSamples::F16(_)));
    let mut frame = Frame::new(
        w,
        h,
        planes.len(),
        meta_from(&image.attributes, &layer.attributes, half),
    );
    for (p, &c) in planes.iter().enumerate() {
        for (dst, v) in frame
            .plane_mut(p)
            .iter_mut()
            .zip(list[c].sample_data.values_as_f32())
        {
            *dst = v;
        }
    }
    Ok(frame)
}

/// Encode as ZIP-compressed (lossless) scanline EXR, half or float.
pub fn encode(frame: &Frame, half: bool) -> Result<Vec<u8>> {
    let names: &[&str] = if frame.planes == 3 {
        &["R", "G", "B"]
    } else {
        &["Y"]
    };
    let channels: SmallVec<[AnyChannel<FlatSamples>; 4]> = names
        .iter()
        .enumerate()
        .map(|(p, name)| {
            let plane = frame.plane(p);
            let samples = if half {
                FlatSamples::F16(plane.iter().map(|&v| f16::from_f32(v)).collect())
            } else {
                FlatSamples::F32(plane.to_vec())
            };
            AnyChannel::new(*name, samples)
        })
        .collect();
    let mut attributes = LayerAttributes {
        software_name: Some(Text::from(concat!("nitrate ", env!("CARGO_PKG_VERSION")))),
        comments: frame.meta.provenance.as_deref().map(Text::from),
        ..LayerAttributes::default()
    };
    if let Some(fps) = frame.meta.frame_rate {
        attributes.frames_per_second = Some(rational(fps));
    }
    let layer = Layer::new(
        (frame.width, frame.height),
        attributes,
        Encoding::SMALL_LOSSLESS,
        AnyChannels::sort(channels),
    );
    let mut image = Image::from_layer(layer);
    if let Some(tc) = frame.meta.timecode {
        let b = tc.0.to_be_bytes();
        let d = |v: u8| (v >> 4) * 10 + (v & 0xF);
        image.attributes.time_code = Some(attribute::TimeCode {
            hours: d(b[0]),
            minutes: d(b[1]),
            seconds: d(b[2]),
            frame: d(b[3]),
            drop_frame: false,
            color_frame: false,
            field_phase: false,
            binary_group_flags: [false; 3],
            binary_groups: [0; 8],
        });
    }
    let mut buf = Vec::new();
    image
        .write()
        .to_buffered(Cursor::new(&mut buf))
        .map_err(|e| anyhow!("cannot encode OpenEXR: {e}"))?;
    Ok(buf)
}

/// Frame rate as a rational with a denominator that keeps 23.976 = 24000/1001 exact.
fn rational(fps: f64) -> (i32, u32) {
    for den in [1u32, 1001, 1000] {
        let num = fps * den as f64;
        if (num - num.round()).abs() < 1e-3 * den as f64 / 1000.0 {
            return (num.round() as i32, den);
        }
    }
    ((fps * 1000.0).round() as i32, 1000)
}
