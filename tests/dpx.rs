//! DPX reader/writer: bit-exact round trips for every layout, header carry, a hand-built file
//! pinning the bit order, the GPU-twin pack/unpack functions, and specific errors.

use std::path::Path;

use nitrate::frame::{max_code, quantise, Frame, FrameMeta, SampleKind, Timecode, Transfer};
use nitrate::io::dpx::{self, DpxCarry, DpxF32, DpxLayout, Packing};

/// xorshift64*: deterministic test data without a rand crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u32) -> u32 {
        (self.next() % n as u64) as u32
    }
}

const SIZES: [(usize, usize); 5] = [(37, 23), (38, 5), (36, 4), (1, 1), (7, 3)];

fn all_layouts() -> Vec<DpxLayout> {
    let mut v = Vec::new();
    for bits in [8u8, 10, 12, 16] {
        let packings: &[Packing] = match bits {
            10 | 12 => &[Packing::Packed, Packing::FilledA, Packing::FilledB],
            _ => &[Packing::Packed, Packing::FilledA],
        };
        for &packing in packings {
            for big_endian in [true, false] {
                for planes in [1, 3] {
                    v.push(DpxLayout {
                        bits,
                        packing,
                        big_endian,
                        planes,
                    });
                }
            }
        }
    }
    v
}

/// A frame of random codes (the extremes first), and the codes in planar order.
fn random_frame(w: usize, h: usize, planes: usize, bits: u8, seed: u64) -> (Frame, Vec<u32>) {
    let max = max_code(bits);
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let codes: Vec<u32> = (0..w * h * planes)
        .map(|i| match i {
            0 => 0,
            1 => max,
            _ => rng.below(max + 1),
        })
        .collect();
    let mut f = Frame::new(
        w,
        h,
        planes,
        FrameMeta {
            bit_depth: bits,
            ..FrameMeta::default()
        },
    );
    f.data = codes.iter().map(|&c| c as f32 / max as f32).collect();
    (f, codes)
}

/// Bytes per line from the spec, computed independently of the crate.
fn spec_line_bytes(l: &DpxLayout, w: usize) -> usize {
    let n = w * l.planes;
    let words = match (l.bits, l.packing) {
        (8, _) => n.div_ceil(4),
        (10, Packing::Packed) => (n * 10).div_ceil(32),
        (10, _) => n.div_ceil(3),
        (12, Packing::Packed) => (n * 12).div_ceil(32),
        _ => (n * 2).div_ceil(4),
    };
    words * 4
}

#[test]
fn every_layout_round_trips_bit_exact() {
    let path = Path::new("rt.dpx");
    let mut checked = 0;
    for (li, layout) in all_layouts().iter().enumerate() {
        for (si, &(w, h)) in SIZES.iter().enumerate() {
            let (frame, codes) =
                random_frame(w, h, layout.planes, layout.bits, (li * 31 + si) as u64 + 1);
            let bytes = dpx::encode(&frame, layout).unwrap();
            let what = format!("{layout:?} {w}x{h}");
            assert_eq!(
                bytes.len(),
                2048 + spec_line_bytes(layout, w) * h,
                "{what}: file size"
            );
            assert_eq!(
                &bytes[..4],
                if layout.big_endian { b"SDPX" } else { b"XPDS" },
                "{what}"
            );

            let back = dpx::decode(&bytes, path).unwrap();
            assert_eq!(
                (back.width, back.height, back.planes),
                (w, h, layout.planes),
                "{what}"
            );
            assert_eq!(back.meta.bit_depth, layout.bits, "{what}");
            assert_eq!(back.meta.sample, SampleKind::Integer);
            let max = max_code(layout.bits);
            for (i, (&v, &c)) in back.data.iter().zip(&codes).enumerate() {
                assert_eq!(quantise(v, max), c, "{what}: sample {i}");
                // Exactly the code over the maximum: code / 1023 for 10-bit.
                assert_eq!(
                    v.to_bits(),
                    (c as f32 / max as f32).to_bits(),
                    "{what}: sample {i}"
                );
            }

            let (header, _) = dpx::read_header(&bytes, bytes.len() as u64, path).unwrap();
            assert_eq!(header.layout, *layout, "{what}");
            assert_eq!(header.data_offset, 2048, "{what}");
            assert_eq!(
                dpx::layout_of(&back.meta, back.planes),
                *layout,
                "{what}: layout_of"
            );

            let again = dpx::encode(&back, layout).unwrap();
            assert!(
                again == bytes,
                "{what}: encode -> decode -> encode changed the bytes"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 40 * SIZES.len()); // 8+12+12+8 layouts
}

#[test]
fn encode_quantises_round_to_nearest_and_clamps() {
    let layout = DpxLayout {
        bits: 10,
        packing: Packing::FilledA,
        big_endian: true,
        planes: 1,
    };
    let mut f = Frame::new(6, 1, 1, FrameMeta::default());
    f.data = vec![-0.5, 2.0, f32::NAN, 100.4 / 1023.0, 100.6 / 1023.0, 1.0];
    let back = dpx::decode(&dpx::encode(&f, &layout).unwrap(), Path::new("q.dpx")).unwrap();
    let codes: Vec<u32> = back.data.iter().map(|&v| quantise(v, 1023)).collect();
    assert_eq!(codes, [0, 1023, 0, 100, 101, 1023]);
}

// ---- A hand-built file, from the spec, independent of the encoder ----

/// A minimal single-element DPX: file header, image header, element 0, data at 2048.
fn hand_built(
    big_endian: bool,
    w: u32,
    h: u32,
    descriptor: u8,
    bits: u8,
    packing: u16,
    data: &[u8],
) -> Vec<u8> {
    let mut b = vec![0u8; 2048];
    let put32 = |b: &mut Vec<u8>, off: usize, v: u32| {
        b[off..off + 4].copy_from_slice(&if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        })
    };
    let put16 = |b: &mut Vec<u8>, off: usize, v: u16| {
        b[off..off + 2].copy_from_slice(&if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        })
    };
    b[..4].copy_from_slice(if big_endian { b"SDPX" } else { b"XPDS" });
    put32(&mut b, 4, 2048); // image data offset
    b[8..12].copy_from_slice(b"V2.0");
    put32(&mut b, 16, 2048 + data.len() as u32);
    put16(&mut b, 770, 1); // one element
    put32(&mut b, 772, w);
    put32(&mut b, 776, h);
    b[800] = descriptor;
    b[801] = 1; // printing density
    b[803] = bits;
    put16(&mut b, 804, packing);
    put32(&mut b, 808, 2048);
    put32(&mut b, 1920, 0xFFFF_FFFF); // no time code
    b.extend_from_slice(data);
    b
}

fn words_bytes(words: &[u32], big_endian: bool) -> Vec<u8> {
    words
        .iter()
        .flat_map(|w| {
            if big_endian {
                w.to_be_bytes()
            } else {
                w.to_le_bytes()
            }
        })
        .collect()
}

fn codes_of(frame: &Frame, max: u32) -> Vec<u32> {
    frame
        .data
        .iter()
        .map(|&v| {
            let c = (v * max as f32).round() as u32;
            assert_eq!(v, c as f32 / max as f32, "not an exact code value");
            c
        })
        .collect()
}

#[test]
fn hand_built_10bit_method_a_rgb_pins_bit_order() {
    for be in [true, false] {
        // 2x2 RGB: one pixel a word, R in 31..22, G 21..12, B 11..2; padding bits set to 1 to
        // show they are ignored.
        let px = |r: u32, g: u32, b: u32| (r << 22) | (g << 12) | (b << 2) | 0b11;
        let words = [
            px(100, 200, 300),
            px(1023, 0, 512),
            px(1, 2, 3),
            px(4, 5, 6),
        ];
        let file = hand_built(be, 2, 2, 50, 10, 1, &words_bytes(&words, be));
        let f = dpx::decode(&file, Path::new("hand.dpx")).unwrap();
        assert_eq!((f.width, f.height, f.planes), (2, 2, 3));
        // Planar: R plane, G plane, B plane, each row-major.
        assert_eq!(
            codes_of(&f, 1023),
            [100, 1023, 1, 4, 200, 0, 2, 5, 300, 512, 3, 6],
            "be={be}"
        );
        assert_eq!(f.meta.transfer, Transfer::PrintingDensity);
        assert_eq!(f.get(0, 0, 0), 100.0 / 1023.0);
    }
}

#[test]
fn hand_built_10bit_method_a_luma_pins_bit_order() {
    for be in [true, false] {
        // 4x2 luma: two words a line (the line restarts on a word); samples fill each word
        // from the bottom, as FFmpeg's read10in32_gray reads them.
        let w3 = |a: u32, b: u32, c: u32| (a << 2) | (b << 12) | (c << 22);
        let words = [w3(1, 2, 3), w3(4, 0, 0), w3(5, 6, 7), w3(1023, 0, 0)];
        let file = hand_built(be, 4, 2, 6, 10, 1, &words_bytes(&words, be));
        let f = dpx::decode(&file, Path::new("hand.dpx")).unwrap();
        assert_eq!((f.width, f.height, f.planes), (4, 2, 1));
        assert_eq!(codes_of(&f, 1023), [1, 2, 3, 4, 5, 6, 7, 1023], "be={be}");
    }
}

#[test]
fn hand_built_10bit_method_b_and_packed() {
    for be in [true, false] {
        // Method B RGB: 29..20, 19..10, 9..0.
        let words = [(100 << 20) | (200 << 10) | 300];
        let f = dpx::decode(
            &hand_built(be, 1, 1, 50, 10, 2, &words_bytes(&words, be)),
            Path::new("b.dpx"),
        )
        .unwrap();
        assert_eq!(codes_of(&f, 1023), [100, 200, 300]);

        // Packed luma, 4 samples = 40 bits in two words, from bit 0 up.
        let s = [0x3FFu64, 0x001, 0x2AA, 0x155];
        let stream = s[0] | (s[1] << 10) | (s[2] << 20) | (s[3] << 30);
        let words = [stream as u32, (stream >> 32) as u32];
        let f = dpx::decode(
            &hand_built(be, 4, 1, 6, 10, 0, &words_bytes(&words, be)),
            Path::new("p.dpx"),
        )
        .unwrap();
        assert_eq!(codes_of(&f, 1023), [0x3FF, 0x001, 0x2AA, 0x155], "be={be}");
    }
}

#[test]
fn hand_built_12bit_layouts() {
    for be in [true, false] {
        // Packed RGB, 1x2: six 12-bit samples = 72 bits in three words, R first from bit 0
        // (FFmpeg's read12in32); each line restarts on a word.
        let line = |r: u128, g: u128, b: u128| -> [u32; 2] {
            let s = r | (g << 12) | (b << 24);
            [s as u32, (s >> 32) as u32]
        };
        let [a, b] = line(0xABC, 0x123, 0x456);
        let [c, d] = line(0xFFF, 0x000, 0x800);
        let f = dpx::decode(
            &hand_built(be, 1, 2, 50, 12, 0, &words_bytes(&[a, b, c, d], be)),
            Path::new("p12.dpx"),
        )
        .unwrap();
        assert_eq!(
            codes_of(&f, 4095),
            [0xABC, 0xFFF, 0x123, 0x000, 0x456, 0x800],
            "be={be}"
        );

        // Filled A: code << 4 in a 16-bit word; B: code in the low bits. 1x1 RGB + 2 bytes pad.
        let halves = |v: [u16; 4]| -> Vec<u8> {
            v.iter()
                .flat_map(|h| if be { h.to_be_bytes() } else { h.to_le_bytes() })
                .collect()
        };
        let fa = dpx::decode(
            &hand_built(be, 1, 1, 50, 12, 1, &halves([0xABC0, 0x1230, 0x4560, 0])),
            Path::new("a12.dpx"),
        )
        .unwrap();
        assert_eq!(codes_of(&fa, 4095), [0xABC, 0x123, 0x456]);
        let fb = dpx::decode(
            &hand_built(be, 1, 1, 50, 12, 2, &halves([0x0ABC, 0x0123, 0x0456, 0])),
            Path::new("b12.dpx"),
        )
        .unwrap();
        assert_eq!(codes_of(&fb, 4095), [0xABC, 0x123, 0x456]);
    }
}

#[test]
fn hand_built_8bit_lines_are_padded_to_words() {
    // 3x2 luma: 3 bytes a line plus one pad byte.
    let data = [10, 20, 30, 0xEE, 40, 50, 60, 0xEE];
    let f = dpx::decode(&hand_built(true, 3, 2, 6, 8, 0, &data), Path::new("8.dpx")).unwrap();
    assert_eq!(codes_of(&f, 255), [10, 20, 30, 40, 50, 60]);
}

#[test]
fn unaligned_lines_are_read_when_the_file_only_fits_them() {
    // 3x2 8-bit RGB written without line padding (9 bytes a line), as FFmpeg also accepts.
    let data: Vec<u8> = (1..=18).collect();
    let f = dpx::decode(
        &hand_built(false, 3, 2, 50, 8, 0, &data),
        Path::new("tight.dpx"),
    )
    .unwrap();
    assert_eq!(codes_of(&f, 255)[..6], [1, 4, 7, 10, 13, 16]); // R plane
}

#[test]
fn end_of_line_padding_is_followed() {
    for be in [true, false] {
        let px = |r: u32, g: u32, b: u32| (r << 22) | (g << 12) | (b << 2);
        // 1x2 RGB, one word a line then 8 bytes of end-of-line padding.
        let mut data = words_bytes(&[px(1, 2, 3)], be);
        data.extend_from_slice(&[0xAB; 8]);
        data.extend_from_slice(&words_bytes(&[px(4, 5, 6)], be));
        let mut file = hand_built(be, 1, 2, 50, 10, 1, &data);
        file[812..816].copy_from_slice(&if be {
            8u32.to_be_bytes()
        } else {
            8u32.to_le_bytes()
        });
        let f = dpx::decode(&file, Path::new("eol.dpx")).unwrap();
        assert_eq!(codes_of(&f, 1023), [1, 4, 2, 5, 3, 6]);
    }
}

#[test]
fn unpadded_10bit_luma_from_known_scanners() {
    // 4x2 luma whose second line starts mid-word: 8 samples in 3 words, as Lasergraphics
    // scanners write them.
    let w3 = |a: u32, b: u32, c: u32| (a << 2) | (b << 12) | (c << 22);
    let words = [w3(1, 2, 3), w3(4, 5, 6), w3(7, 8, 0)];
    let mut file = hand_built(true, 4, 2, 6, 10, 1, &words_bytes(&words, true));
    assert!(
        dpx::decode(&file, Path::new("x.dpx")).is_err(),
        "unknown writers must pad lines"
    );
    file[160..178].copy_from_slice(b"Lasergraphics Inc.");
    let f = dpx::decode(&file, Path::new("lg.dpx")).unwrap();
    assert_eq!(codes_of(&f, 1023), [1, 2, 3, 4, 5, 6, 7, 8]);
}

// ---- GPU twins ----

#[test]
fn pack_and_unpack_filled10_agree_with_the_codec() {
    for planes in [1, 3] {
        for be in [true, false] {
            for &(w, h) in &SIZES {
                let (frame, _) = random_frame(w, h, planes, 10, (w * 7 + h + planes) as u64);
                let layout = DpxLayout {
                    bits: 10,
                    packing: Packing::FilledA,
                    big_endian: be,
                    planes,
                };
                let bytes = dpx::encode(&frame, &layout).unwrap();
                let image = &bytes[2048..];
                let words: Vec<u32> = image
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
                    .collect();
                assert_eq!(words.len(), dpx::words_per_line_filled10(w, planes) * h);

                let unpacked = dpx::unpack_filled10(&words, be, w, h, planes);
                let decoded = dpx::decode(&bytes, Path::new("t.dpx")).unwrap();
                assert!(
                    unpacked == decoded.data,
                    "unpack_filled10 != decode ({w}x{h}x{planes}, be={be})"
                );
                assert!(unpacked == frame.data);

                let packed = dpx::pack_filled10(&frame.data, be, w, h, planes);
                let packed_bytes: Vec<u8> = packed.iter().flat_map(|w| w.to_le_bytes()).collect();
                assert!(
                    packed_bytes == image,
                    "pack_filled10 != encode ({w}x{h}x{planes}, be={be})"
                );
            }
        }
    }
    assert_eq!(dpx::words_per_line_filled10(37, 1), 13);
    assert_eq!(dpx::words_per_line_filled10(37, 3), 37);
}

// ---- Header fields ----

fn rich_meta() -> FrameMeta {
    let carry = DpxCarry {
        filename: "reel3_000012.dpx".into(),
        creation_time: "2024:05:06:07:08:09UTC".into(),
        creator: "ScanStation 6.1".into(),
        project: "Nitrate Archive / Reel 3".into(),
        copyright: "© 1931 Studio, restored 2024".into(),
        ditto_key: 0,
        orientation: 0,
        transfer: 1,
        colorimetric: 1,
        ref_low_data: 95,
        ref_low_quantity: DpxF32::new(0.0),
        ref_high_data: 685,
        ref_high_quantity: DpxF32::new(2.048),
        description: "IR cleaned".into(),
        x_offset: 12,
        y_offset: 34,
        x_center: DpxF32::new(1024.5),
        y_center: DpxF32(0x7FC0_0001), // a NaN payload must survive
        x_original_size: 4096,
        y_original_size: 3112,
        source_filename: "orig_000012.dpx".into(),
        source_time: "2023:01:02:03:04:05UTC".into(),
        input_device: "Scanity HDR".into(),
        input_serial: "SN-0042".into(),
        border: [1, 2, 3, 4],
        pixel_aspect: [1, 1],
        x_scanned_size: DpxF32::new(24.89),
        y_scanned_size: DpxF32::new(18.67),
        film_mfg_id: "KU".into(),
        film_type: "22".into(),
        perf_offset: "12".into(),
        prefix: "123456".into(),
        count: "1234".into(),
        format: "Academy".into(),
        frame_position: 12,
        sequence_length: 1440,
        held_count: 1,
        film_frame_rate: DpxF32::new(24.0),
        shutter_angle: DpxF32::new(172.8),
        frame_id: "R3F12".into(),
        slate_info: "Scene 4 take 2".into(),
        user_bits: 0x1234_5678,
        interlace: 0,
        field_number: 0xFF,
        video_signal: 0,
        horizontal_sample_rate: DpxF32::UNDEFINED,
        vertical_sample_rate: DpxF32::new(1.5),
        tv_frame_rate: DpxF32::UNDEFINED,
        time_offset: DpxF32::new(0.25),
        gamma: DpxF32::new(2.2),
        black_level: DpxF32::new(64.0),
        black_gain: DpxF32::new(1.0),
        break_point: DpxF32::new(0.5),
        white_level: DpxF32::new(940.0),
        integration_time: DpxF32::new(0.01),
        ..DpxCarry::default()
    };
    FrameMeta {
        bit_depth: 10,
        sample: SampleKind::Integer,
        transfer: Transfer::PrintingDensity,
        frame_rate: Some(24.0),
        timecode: Some(Timecode::from_hmsf(1, 2, 3, 4)),
        edge_code: carry.edge_code(),
        dpx: Some(carry),
        number: None,
        provenance: None,
        film_move: None,
    }
}

#[test]
fn header_fields_survive_a_round_trip() {
    let layout = DpxLayout {
        bits: 10,
        packing: Packing::FilledA,
        big_endian: true,
        planes: 3,
    };
    for big_endian in [true, false] {
        let layout = DpxLayout {
            big_endian,
            ..layout
        };
        let (mut frame, _) = random_frame(5, 3, 3, 10, 99);
        frame.meta = rich_meta();
        let bytes = dpx::encode(&frame, &layout).unwrap();
        let back = dpx::decode(&bytes, Path::new("meta.dpx")).unwrap();
        let m = &back.meta;
        assert_eq!(m.frame_rate, Some(24.0));
        assert_eq!(m.timecode, Some(Timecode::from_hmsf(1, 2, 3, 4)));
        assert_eq!(m.timecode.unwrap().to_string(), "01:02:03:04");
        assert_eq!(m.edge_code.as_deref(), Some("KU 22 12 123456 1234"));
        assert_eq!(m.transfer, Transfer::PrintingDensity);

        // The carry comes back whole, plus the source layout it now records.
        let mut expected = rich_meta().dpx.unwrap();
        expected.bit_depth = 10;
        expected.packing = Packing::FilledA;
        expected.big_endian = big_endian;
        expected.data_offset = 2048;
        assert_eq!(m.dpx.as_ref(), Some(&expected));
        let c = m.dpx.as_ref().unwrap();
        assert_eq!(c.creator, "ScanStation 6.1");
        assert_eq!(c.copyright, "© 1931 Studio, restored 2024");
        assert_eq!(c.y_center.0, 0x7FC0_0001);
        assert_eq!(c.y_center.get(), None);
        assert_eq!(c.shutter_angle.get(), Some(172.8));

        // Raw bytes at the spec's offsets.
        let be32 = |o: usize| {
            let a: [u8; 4] = bytes[o..o + 4].try_into().unwrap();
            if big_endian {
                u32::from_be_bytes(a)
            } else {
                u32::from_le_bytes(a)
            }
        };
        assert_eq!(&bytes[160..175], b"ScanStation 6.1");
        assert_eq!(
            &bytes[1664..1680],
            b"KU22121234561234",
            "edge code parts, no separators"
        );
        assert_eq!(f32::from_bits(be32(1724)), 24.0);
        assert_eq!(
            be32(1940),
            0xFFFF_FFFF,
            "an undefined TV frame rate stays undefined"
        );
        assert_eq!(be32(1920), 0x0102_0304);
        assert_eq!(be32(784), 95);
        assert_eq!(be32(792), 685);
        assert_eq!(
            (bytes[800], bytes[801], bytes[802], bytes[803]),
            (50, 1, 1, 10)
        );
        assert_eq!(be32(4), 2048);
        assert_eq!(be32(808), 2048);
        assert_eq!(be32(16) as usize, bytes.len());

        let again = dpx::encode(&back, &layout).unwrap();
        assert!(again == bytes, "header changed in a second round trip");

        // The carry also survives JSON, NaN payloads and undefined values included.
        let json = serde_json::to_string(c).unwrap();
        let c2: DpxCarry = serde_json::from_str(&json).unwrap();
        assert_eq!(&c2, c);
    }
}

#[test]
fn meta_wins_over_carry_for_rate_timecode_edge_code_and_transfer() {
    let layout = DpxLayout {
        bits: 10,
        packing: Packing::FilledA,
        big_endian: true,
        planes: 1,
    };
    let (mut frame, _) = random_frame(4, 2, 1, 10, 5);
    frame.meta = rich_meta();
    frame.meta.frame_rate = Some(25.0);
    frame.meta.timecode = None;
    frame.meta.edge_code = Some("EK 55 03 654321 0042".into());
    frame.meta.transfer = Transfer::Linear;
    let back = dpx::decode(&dpx::encode(&frame, &layout).unwrap(), Path::new("m.dpx")).unwrap();
    assert_eq!(back.meta.frame_rate, Some(25.0));
    assert_eq!(back.meta.timecode, None);
    assert_eq!(back.meta.edge_code.as_deref(), Some("EK 55 03 654321 0042"));
    assert_eq!(back.meta.transfer, Transfer::Linear);
    let c = back.meta.dpx.unwrap();
    assert_eq!((c.film_mfg_id.as_str(), c.count.as_str()), ("EK", "0042"));
    assert_eq!(c.transfer, 2);

    frame.meta.frame_rate = None;
    frame.meta.edge_code = None;
    let back = dpx::decode(&dpx::encode(&frame, &layout).unwrap(), Path::new("m.dpx")).unwrap();
    assert_eq!(back.meta.frame_rate, None);
    assert_eq!(back.meta.edge_code, None);

    frame.meta.edge_code = Some("not an edge code".into());
    let e = dpx::encode(&frame, &layout).unwrap_err().to_string();
    assert!(e.contains("edge code"), "{e}");
}

#[test]
fn frame_without_carry_gets_defaults() {
    let layout = DpxLayout {
        bits: 16,
        packing: Packing::Packed,
        big_endian: false,
        planes: 3,
    };
    let (mut frame, _) = random_frame(3, 2, 3, 16, 8);
    frame.meta.transfer = Transfer::Video;
    frame.meta.frame_rate = Some(23.976);
    let bytes = dpx::encode(&frame, &layout).unwrap();
    let creator = format!("nitrate {}", env!("CARGO_PKG_VERSION"));
    assert_eq!(&bytes[160..160 + creator.len()], creator.as_bytes());
    assert_eq!(bytes[160 + creator.len()], 0);
    assert_eq!(&bytes[8..12], b"V2.0");
    assert_eq!(bytes[801], 4, "video transfer code");
    assert_eq!(&bytes[1920..1924], &[0xFF; 4], "no time code");
    assert_eq!(&bytes[1928..1931], &[0xFF; 3], "undefined TV bytes");
    assert_eq!(&bytes[784..788], &[0xFF; 4], "undefined reference code");
    assert_eq!(u32::from_le_bytes(bytes[24..28].try_into().unwrap()), 1664);
    assert_eq!(u32::from_le_bytes(bytes[28..32].try_into().unwrap()), 384);
    assert_eq!(
        u32::from_le_bytes(bytes[812..816].try_into().unwrap()),
        0,
        "eol padding"
    );
    let back = dpx::decode(&bytes, Path::new("d.dpx")).unwrap();
    assert_eq!(back.meta.frame_rate, Some(23.976f32 as f64));
    assert_eq!(back.meta.transfer, Transfer::Video);
    assert_eq!(back.meta.timecode, None);
    assert_eq!(back.meta.edge_code, None);
    assert_eq!(back.meta.dpx.as_ref().unwrap().creator, creator);
}

#[test]
fn carried_offset_user_data_and_reference_rescale() {
    let (mut frame, codes) = random_frame(5, 4, 3, 10, 17);
    let mut user = b"MyScanner user data v1".to_vec();
    user.resize(32, 0);
    user.extend_from_slice(&[1, 2, 3, 4, 5]);
    frame.meta.dpx = Some(DpxCarry {
        data_offset: 8192,
        user_data: user.clone(),
        bit_depth: 10,
        ref_low_data: 95,
        ref_high_data: 685,
        ..DpxCarry::default()
    });
    let l10 = DpxLayout {
        bits: 10,
        packing: Packing::FilledA,
        big_endian: true,
        planes: 3,
    };
    let bytes = dpx::encode(&frame, &l10).unwrap();
    assert_eq!(
        u32::from_be_bytes(bytes[808..812].try_into().unwrap()),
        8192
    );
    assert_eq!(u32::from_be_bytes(bytes[32..36].try_into().unwrap()), 37);
    let back = dpx::decode(&bytes, Path::new("u.dpx")).unwrap();
    assert_eq!(codes_of(&back, 1023), codes);
    assert_eq!(back.meta.dpx.as_ref().unwrap().user_data, user);
    assert_eq!(dpx::encode(&back, &l10).unwrap(), bytes);

    // Written at 16 bits, the 10-bit reference codes scale with it.
    let l16 = DpxLayout {
        bits: 16,
        packing: Packing::Packed,
        ..l10
    };
    let b16 = dpx::encode(&back, &l16).unwrap();
    let c16 = dpx::decode(&b16, Path::new("u16.dpx"))
        .unwrap()
        .meta
        .dpx
        .unwrap();
    assert_eq!((c16.ref_low_data, c16.ref_high_data), (6086, 43882));
}

#[test]
fn layout_of_follows_the_source() {
    let mut meta = FrameMeta {
        bit_depth: 12,
        ..FrameMeta::default()
    };
    assert_eq!(
        dpx::layout_of(&meta, 1),
        DpxLayout {
            bits: 12,
            packing: Packing::FilledA,
            big_endian: true,
            planes: 1
        }
    );
    meta.dpx = Some(DpxCarry {
        bit_depth: 12,
        packing: Packing::Packed,
        big_endian: false,
        ..DpxCarry::default()
    });
    assert_eq!(
        dpx::layout_of(&meta, 3),
        DpxLayout {
            bits: 12,
            packing: Packing::Packed,
            big_endian: false,
            planes: 3
        }
    );
    meta.sample = SampleKind::Half;
    meta.bit_depth = 16;
    assert_eq!(dpx::layout_of(&meta, 3).bits, 16);
}

#[test]
fn read_info_and_read_match_decode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scan_000001.dpx");
    let (mut frame, _) = random_frame(37, 23, 3, 10, 3);
    frame.meta = rich_meta();
    let layout = DpxLayout {
        bits: 10,
        packing: Packing::FilledA,
        big_endian: true,
        planes: 3,
    };
    let bytes = dpx::encode(&frame, &layout).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let (h, meta) = dpx::read_info(&path).unwrap();
    assert_eq!((h.width, h.height, h.layout), (37, 23, layout));
    let full = dpx::read(&path).unwrap();
    assert_eq!(meta, full.meta);
    assert_eq!(full, dpx::decode(&bytes, &path).unwrap());

    let missing = dir.path().join("missing_000002.dpx");
    let e = dpx::read(&missing).unwrap_err().to_string();
    assert!(e.contains("missing_000002.dpx"), "{e}");
    let e = dpx::read_info(&missing).unwrap_err().to_string();
    assert!(e.contains("missing_000002.dpx"), "{e}");
}

#[test]
fn encode_rejects_bad_requests() {
    let (frame, _) = random_frame(4, 4, 3, 10, 1);
    let bad = |bits, packing, planes| {
        dpx::encode(
            &frame,
            &DpxLayout {
                bits,
                packing,
                big_endian: true,
                planes,
            },
        )
        .unwrap_err()
        .to_string()
    };
    assert!(bad(10, Packing::FilledA, 1).contains("planes"));
    assert!(bad(16, Packing::FilledB, 3).contains("method B"));
    assert!(bad(32, Packing::Packed, 3).contains("bit depth 32"));
}

// ---- Errors: the path and a specific phrase ----

const PATH: &str = "scan_000012.dpx";

fn valid_file(be: bool) -> Vec<u8> {
    let (frame, _) = random_frame(37, 23, 3, 10, 4);
    dpx::encode(
        &frame,
        &DpxLayout {
            bits: 10,
            packing: Packing::FilledA,
            big_endian: be,
            planes: 3,
        },
    )
    .unwrap()
}

fn set32(b: &mut [u8], off: usize, v: u32, be: bool) {
    b[off..off + 4].copy_from_slice(&if be { v.to_be_bytes() } else { v.to_le_bytes() });
}

fn decode_err(bytes: &[u8]) -> String {
    let e = dpx::decode(bytes, Path::new(PATH))
        .expect_err("must fail")
        .to_string();
    assert!(e.contains(PATH), "error does not name the file: {e}");
    // read_header alone agrees.
    assert!(dpx::read_header(bytes, bytes.len() as u64, Path::new(PATH)).is_err());
    e
}

fn expect(bytes: &[u8], phrase: &str) {
    let e = decode_err(bytes);
    assert!(e.contains(phrase), "expected {phrase:?} in: {e}");
}

#[test]
fn truncated_file_says_how_much_is_missing() {
    for be in [true, false] {
        let b = valid_file(be);
        let len = b.len();
        let e = decode_err(&b[..len - 1]);
        assert!(e.contains("truncated DPX"), "{e}");
        assert!(
            e.contains(&format!(
                "needs {} bytes from offset 2048 but the file has {}",
                37 * 23 * 4,
                len - 1
            )),
            "{e}"
        );
        expect(&b[..4096], "truncated DPX");
        expect(&b[..1000], "too short for a DPX header");
    }
}

#[test]
fn bad_headers_give_specific_errors() {
    for be in [true, false] {
        let good = valid_file(be);
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            b
        };
        expect(
            &with(&|b| b[..4].copy_from_slice(b"RIFF")),
            "bad magic number",
        );
        expect(&with(&|b| set32(b, 772, 0, be)), "zero image size");
        expect(&with(&|b| set32(b, 776, 0, be)), "zero image size");
        expect(&with(&|b| set32(b, 772, 60_000, be)), "truncated DPX");
        expect(&with(&|b| set32(b, 776, 23 * 1000, be)), "truncated DPX");
        expect(&with(&|b| set32(b, 772, 1 << 20, be)), "out of range");
        expect(
            &with(&|b| b[800] = 51),
            "unsupported DPX descriptor 51 (RGBA)",
        );
        expect(&with(&|b| b[800] = 100), "unsupported DPX descriptor 100");
        expect(
            &with(&|b| b[803] = 32),
            "unsupported DPX bit depth 32 (floating point)",
        );
        expect(&with(&|b| b[803] = 64), "unsupported DPX bit depth 64");
        expect(&with(&|b| b[803] = 1), "unsupported DPX bit depth 1");
        expect(&with(&|b| b[803] = 7), "invalid DPX bit depth 7");
        expect(
            &with(&|b| {
                b[803] = 16;
                b[if be { 805 } else { 804 }] = 2;
            }),
            "invalid DPX packing 2 for 16-bit",
        );
        expect(
            &with(&|b| b[if be { 807 } else { 806 }] = 1),
            "run-length encoded",
        );
        expect(
            &with(&|b| b[if be { 771 } else { 770 }] = 2),
            "2 image elements",
        );
        let len = good.len() as u32;
        expect(
            &with(&|b| {
                set32(b, 808, len + 100, be);
                set32(b, 4, len + 100, be);
            }),
            "is beyond the end of the file",
        );
        expect(&with(&|b| set32(b, 808, 100, be)), "lies inside the header");
        // The element's offset undefined: the file header's offset is used instead.
        let fallback = with(&|b| set32(b, 808, 0xFFFF_FFFF, be));
        assert!(dpx::decode(&fallback, Path::new(PATH)).is_ok());
    }
}

#[test]
fn errors_name_the_path_for_tiny_inputs() {
    expect(b"", "not a DPX file");
    expect(b"SDP", "not a DPX file");
    expect(&[0u8; 4096], "bad magic number");
}

#[test]
fn quantise_fast_equals_frame_quantise() {
    let mut rng = Rng(0xDEAD_BEEF);
    let specials = [
        f32::NAN,
        -f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.0,
        -0.0,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        1e-45,
        f32::MAX,
        f32::MIN,
        1e10,
        -1e10,
        0.5,
        1.0,
        1.0000001,
        0.99999994,
    ];
    for max in [255u32, 1023, 4095, 65535] {
        for &v in &specials {
            assert_eq!(
                dpx::quantise_fast(v, max),
                quantise(v, max),
                "v={v:e} max={max}"
            );
        }
        // Around every rounding boundary, a few ulps either side.
        for k in 0..=max + 1 {
            let v0 = (k as f32 + 0.5) / max as f32;
            for d in -3i32..=3 {
                let v = f32::from_bits((v0.to_bits() as i32 + d) as u32);
                assert_eq!(
                    dpx::quantise_fast(v, max),
                    quantise(v, max),
                    "v={v:e} max={max}"
                );
                assert_eq!(
                    dpx::quantise_fast(-v, max),
                    quantise(-v, max),
                    "v={:e} max={max}",
                    -v
                );
            }
        }
        for _ in 0..200_000 {
            let v = f32::from_bits(rng.next() as u32);
            assert_eq!(
                dpx::quantise_fast(v, max),
                quantise(v, max),
                "v={v:e} bits={:08x}",
                v.to_bits()
            );
            let v = (rng.below(1 << 24) as f32 / (1 << 23) as f32) - 0.5;
            assert_eq!(dpx::quantise_fast(v, max), quantise(v, max), "v={v:e}");
        }
    }
}
