//! DPX reader robustness: arbitrary and mutated input never panics, and a header that
//! `read_header` accepts always decodes.

use std::path::Path;

use nitrate::frame::{Frame, FrameMeta};
use nitrate::io::dpx::{self, DpxLayout, Packing};
use proptest::prelude::*;

const PATH: &str = "fuzz_000001.dpx";

fn layout_strategy() -> impl Strategy<Value = DpxLayout> {
    (
        0usize..10,
        any::<bool>(),
        prop_oneof![Just(1usize), Just(3usize)],
    )
        .prop_map(|(i, big_endian, planes)| {
            let (bits, packing) = [
                (8, Packing::Packed),
                (8, Packing::FilledA),
                (10, Packing::Packed),
                (10, Packing::FilledA),
                (10, Packing::FilledB),
                (12, Packing::Packed),
                (12, Packing::FilledA),
                (12, Packing::FilledB),
                (16, Packing::Packed),
                (16, Packing::FilledA),
            ][i];
            DpxLayout {
                bits,
                packing,
                big_endian,
                planes,
            }
        })
}

fn encoded(layout: &DpxLayout, w: usize, h: usize, seed: u32) -> Vec<u8> {
    let mut f = Frame::new(w, h, layout.planes, FrameMeta::default());
    let mut s = seed | 1;
    for v in f.data.iter_mut() {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        *v = (s % 1000) as f32 / 999.0;
    }
    dpx::encode(&f, layout).unwrap()
}

/// Decoding must return, and what it returns must be consistent with the header.
fn check(bytes: &[u8]) {
    let path = Path::new(PATH);
    let header = dpx::read_header(bytes, bytes.len() as u64, path);
    let frame = dpx::decode(bytes, path);
    match (&header, &frame) {
        (Ok((h, _)), Ok(f)) => {
            assert_eq!(
                (f.width, f.height, f.planes),
                (h.width, h.height, h.layout.planes)
            );
            assert_eq!(f.data.len(), h.width * h.height * h.layout.planes);
            assert!(f.data.iter().all(|v| (0.0..=1.0).contains(v)));
        }
        (Err(a), Err(b)) => {
            assert_eq!(a.to_string(), b.to_string());
            assert!(a.to_string().contains(PATH), "{a}");
        }
        _ => panic!(
            "read_header and decode disagree: {:?} / {:?}",
            header.is_ok(),
            frame.is_ok()
        ),
    }
}

fn set32(b: &mut [u8], off: usize, v: u32, be: bool) {
    b[off..off + 4].copy_from_slice(&if be { v.to_be_bytes() } else { v.to_le_bytes() });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
        check(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_a_magic_never_panic(
        be in any::<bool>(),
        mut bytes in proptest::collection::vec(any::<u8>(), 1664..4000),
    ) {
        bytes[..4].copy_from_slice(if be { b"SDPX" } else { b"XPDS" });
        check(&bytes);
    }

    #[test]
    fn mutated_valid_files_never_panic(
        layout in layout_strategy(),
        w in 1usize..40,
        h in 1usize..12,
        seed in any::<u32>(),
        // Mostly in the header, where the damage matters.
        edits in proptest::collection::vec((0usize..2100, any::<u8>()), 1..12),
        cut in proptest::option::of(0usize..6000),
    ) {
        let mut bytes = encoded(&layout, w, h, seed);
        for (at, v) in edits {
            let at = at % bytes.len();
            bytes[at] = v;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.min(bytes.len()));
        }
        check(&bytes);
    }

    #[test]
    fn random_header_fields_with_a_consistent_file(
        layout in layout_strategy(),
        w in 1usize..50,
        h in 1usize..20,
        descriptor in prop_oneof![Just(6u8), Just(50), Just(51), Just(100), any::<u8>()],
        bits in prop_oneof![Just(8u8), Just(10), Just(12), Just(16), Just(1), Just(32), any::<u8>()],
        packing in 0u16..4,
        eol in prop_oneof![Just(0u32), Just(0xFFFF_FFFF), 0u32..64, any::<u32>()],
        offset in prop_oneof![Just(2048u32), Just(1664), Just(768), 0u32..9000, any::<u32>()],
        width in prop_oneof![Just(None), Just(Some(0u32)), any::<u32>().prop_map(Some)],
        extra in 0usize..5000,
    ) {
        // Start from a valid file, then set fields as a writer might, keeping the file long
        // enough for what it claims most of the time.
        let be = layout.big_endian;
        let mut bytes = encoded(&layout, w, h, 7);
        bytes[800] = descriptor;
        bytes[803] = bits;
        bytes[804..806].copy_from_slice(&if be { packing.to_be_bytes() } else { packing.to_le_bytes() });
        set32(&mut bytes, 812, eol, be);
        set32(&mut bytes, 808, offset, be);
        if let Some(wd) = width {
            set32(&mut bytes, 772, wd, be);
        }
        bytes.resize(bytes.len() + extra, 0x5A);
        check(&bytes);
        // read_header given only the first 2048 bytes and the true length agrees with the whole.
        let full = dpx::read_header(&bytes, bytes.len() as u64, Path::new(PATH)).map(|(h, m)| (h.width, h.height, h.layout, h.image_bytes, m));
        let head = dpx::read_header(&bytes[..2048], bytes.len() as u64, Path::new(PATH)).map(|(h, m)| (h.width, h.height, h.layout, h.image_bytes, m));
        match (full, head) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
            (a, b) => prop_assert!(false, "whole file {:?} vs first 2048 bytes {:?}", a.is_ok(), b.is_ok()),
        }
    }
}
