//! 10-bit DPX (packing method A) unpacked and packed on the device, so only the packed words
//! (a third of the `f32` bytes) cross the bus. CPU twins: `crate::io::dpx::unpack_filled10` and
//! `pack_filled10`; the two must agree exactly (tests/gpu_parity.rs).

use anyhow::{bail, Result};

use super::frame::FRAME_USAGE;
use super::{Dims, GpuContext, GpuFrame, Kernel};
use crate::frame::FrameMeta;
use crate::io::dpx::words_per_line_filled10 as words_per_line;

const UNPACK: Kernel = Kernel {
    name: "dpx10_unpack",
    source: include_str!("../../shaders/dpx10_unpack.wgsl"),
};
const PACK: Kernel = Kernel {
    name: "dpx10_pack",
    source: include_str!("../../shaders/dpx10_pack.wgsl"),
};

/// Keep in sync with `struct Params` in `shaders/shared/dpx10.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Dpx10Params {
    dims: Dims,
    words_per_line: u32,
    /// 1: the words are byte-swapped (big-endian file read as little-endian words).
    big_endian: u32,
    _pad: [u32; 2],
}

impl Dpx10Params {
    fn new(frame: &GpuFrame, wpl: usize, big_endian: bool) -> Self {
        Dpx10Params {
            dims: Dims::of(frame),
            words_per_line: wpl as u32,
            big_endian: big_endian as u32,
            _pad: [0; 2],
        }
    }
}

impl GpuContext {
    /// Upload the image words of a 10-bit filled (method A) DPX, as read from the file into
    /// little-endian `u32`s, and unpack them on the device into a normalised frame.
    pub fn upload_dpx10(
        &self,
        words: &[u32],
        big_endian: bool,
        width: usize,
        height: usize,
        planes: usize,
        meta: FrameMeta,
    ) -> Result<GpuFrame> {
        if planes != 1 && planes != 3 {
            bail!("10-bit DPX has 1 or 3 planes, not {planes}");
        }
        let wpl = words_per_line(width, planes);
        if words.len() < wpl * height {
            bail!(
                "10-bit DPX image data is short: {} words for {width}x{height}x{planes} \
                 (needs {})",
                words.len(),
                wpl * height
            );
        }
        let words = &words[..wpl * height];
        let out = self.alloc_frame(width, height, planes, meta)?;
        let packed = self.take_buffer(
            words.len() as u64 * 4,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            "dpx10 words",
        );
        self.queue
            .write_buffer(&packed, 0, bytemuck::cast_slice(words));
        let params = Dpx10Params::new(&out, wpl, big_endian);
        let lut = self.dpx10_lut();
        let result = self.run_kernel(
            &UNPACK,
            &[&packed, lut, &out.buffer],
            bytemuck::bytes_of(&params),
            Self::frame_workgroups(&out),
        );
        self.give_buffer(packed);
        result.map(|()| out)
    }

    /// Pack a frame on the device into 10-bit filled (method A) DPX words and read back only
    /// those, byte-swapped for a big-endian file. Values are rounded to the nearest code and
    /// clamped to 0..=1023 exactly as `crate::frame::quantise` does (NaN gives 0).
    pub fn download_dpx10(&self, frame: &GpuFrame, big_endian: bool) -> Result<Vec<u32>> {
        if frame.planes != 1 && frame.planes != 3 {
            bail!("10-bit DPX has 1 or 3 planes, not {}", frame.planes);
        }
        let wpl = words_per_line(frame.width, frame.planes);
        let bytes = (wpl * frame.height) as u64 * 4;
        let packed = self.take_buffer(bytes, FRAME_USAGE, "dpx10 words");
        let params = Dpx10Params::new(frame, wpl, big_endian);
        let result = self
            .run_kernel(
                &PACK,
                &[&frame.buffer, &packed],
                bytemuck::bytes_of(&params),
                Self::workgroups(wpl, frame.height, 1),
            )
            .and_then(|()| self.read_buffer(&packed, bytes));
        self.give_buffer(packed);
        result
    }

    /// Code value -> `f32` table. A table rather than a division in the shader, because GPU
    /// division is allowed 2.5 ulp of error and the result must equal the CPU's bit for bit.
    fn dpx10_lut(&self) -> &wgpu::Buffer {
        self.dpx10_lut.get_or_init(|| {
            // Same expression as the CPU unpacker; the parity test holds them together.
            let lut: Vec<f32> = (0..1024u32).map(|c| c as f32 / 1023.0).collect();
            let b = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("dpx10 lut"),
                size: 4096,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            self.queue.write_buffer(&b, 0, bytemuck::cast_slice(&lut));
            b
        })
    }
}
