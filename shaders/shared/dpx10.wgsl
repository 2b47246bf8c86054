// 10-bit filled (method A) DPX layout, shared by dpx10_unpack.wgsl and dpx10_pack.wgsl.
// CPU twins: `crate::io::dpx::{unpack_filled10, pack_filled10}`.
//
// A line holds the samples pixel by pixel, three per 32-bit word, bits 1..0 unused, each line
// starting on a new word. RGB: one pixel a word, R in bits 31..22, G 21..12, B 11..2. Luma fills
// each word from the bottom: bits 11..2, 21..12, 31..22 (as FFmpeg reads it). Needs common.wgsl.

// Keep in sync with `Dpx10Params` in src/gpu/dpx10.rs.
struct Params {
    dims: Dims,
    words_per_line: u32,
    big_endian: u32, // 1: words hold a big-endian file's bytes, read as little-endian
    _pad0: u32,
    _pad1: u32,
}

fn byte_swap(w: u32) -> u32 {
    return (w << 24u) | ((w & 0xff00u) << 8u) | ((w >> 8u) & 0xff00u) | (w >> 24u);
}

// Bit position of slot 0, 1 or 2 of a word.
fn slot_shift(planes: u32, slot: u32) -> u32 {
    return select(22u - 10u * slot, 2u + 10u * slot, planes == 1u);
}
