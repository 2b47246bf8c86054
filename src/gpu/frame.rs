//! Frames on the device, and moving them there and back.

use std::sync::mpsc;

use anyhow::{anyhow, bail, Result};

use super::pool::padded;
use super::GpuContext;
use crate::frame::{Frame, FrameMeta};

/// A frame resident on the device, laid out like [`Frame::data`]: planar, row-major `f32`.
/// Hand it back with [`GpuContext::recycle`] when done so the next frame reuses its buffer.
#[derive(Debug)]
pub struct GpuFrame {
    /// `STORAGE | COPY_SRC | COPY_DST`; may be a little longer than the samples (never shorter).
    pub buffer: wgpu::Buffer,
    pub width: usize,
    pub height: usize,
    pub planes: usize,
    pub meta: FrameMeta,
}

impl GpuFrame {
    pub fn len(&self) -> usize {
        self.width * self.height * self.planes
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of samples (the buffer may be padded beyond this).
    pub fn byte_len(&self) -> u64 {
        self.len() as u64 * 4
    }
}

pub(super) const FRAME_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl GpuContext {
    /// Copy a frame to the device.
    pub fn upload(&self, frame: &Frame) -> Result<GpuFrame> {
        if frame.data.len() != frame.width * frame.height * frame.planes {
            bail!("frame {} holds {} samples", frame.shape(), frame.data.len());
        }
        let out = self.alloc_frame(frame.width, frame.height, frame.planes, frame.meta.clone())?;
        self.scoped("uploading a frame", || {
            self.queue
                .write_buffer(&out.buffer, 0, bytemuck::cast_slice(&frame.data))
        })?;
        Ok(out)
    }

    /// Copy a frame back from the device; waits for the work queued before it.
    pub fn download(&self, frame: &GpuFrame) -> Result<Frame> {
        let data: Vec<f32> = self.read_buffer(&frame.buffer, frame.byte_len())?;
        Ok(Frame {
            width: frame.width,
            height: frame.height,
            planes: frame.planes,
            data,
            meta: frame.meta.clone(),
        })
    }

    /// A one-word counter on the device, zero, for a shader's `atomic<u32>`.
    pub fn counter(&self) -> Result<GpuFrame> {
        self.upload(&Frame::new(1, 1, 1, Default::default()))
    }

    /// The value of a [`counter`](Self::counter); waits for the work queued before it.
    pub fn read_counter(&self, counter: &GpuFrame) -> Result<u64> {
        Ok(self.download(counter)?.data[0].to_bits() as u64)
    }

    /// A frame of the same shape and metadata, contents undefined, from the pool. Allocation
    /// failures surface from the next checked call (dispatch, download).
    pub fn new_frame_like(&self, frame: &GpuFrame) -> GpuFrame {
        GpuFrame {
            buffer: self.take_buffer(frame.byte_len(), FRAME_USAGE, "frame"),
            width: frame.width,
            height: frame.height,
            planes: frame.planes,
            meta: frame.meta.clone(),
        }
    }

    /// Give a frame's buffer back to the pool. Fine to call with work on it still queued.
    pub fn recycle(&self, frame: GpuFrame) {
        self.give_buffer(frame.buffer);
    }

    /// Drop every pooled buffer (e.g. between reels of different sizes).
    pub fn trim_pool(&self) {
        self.pool.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Buffers created since the context opened; flat across frames when the pool works.
    pub fn buffers_allocated(&self) -> usize {
        self.pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .allocated
    }

    /// A frame buffer after checking the frame fits the device's limits.
    pub fn alloc_frame(
        &self,
        width: usize,
        height: usize,
        planes: usize,
        meta: FrameMeta,
    ) -> Result<GpuFrame> {
        let bytes = (width * height * planes) as u64 * 4;
        let plural = if planes == 1 { "" } else { "s" };
        self.check_fits(
            bytes,
            &format!("a {width}x{height} frame of {planes} plane{plural}"),
        )?;
        Ok(GpuFrame {
            buffer: self.take_buffer(bytes, FRAME_USAGE, "frame"),
            width,
            height,
            planes,
            meta,
        })
    }

    /// Fail clearly when a buffer of `bytes` cannot be bound as one storage buffer.
    pub(super) fn check_fits(&self, bytes: u64, what: &str) -> Result<()> {
        let l = self.device.limits();
        let max = l.max_storage_buffer_binding_size.min(l.max_buffer_size);
        if padded(bytes) > max {
            bail!(
                "{what} needs {:.1} MiB on the GPU but {} binds at most {:.1} MiB per buffer; \
                 use the CPU backend for frames this large",
                mib(bytes),
                self.info.name,
                mib(max)
            );
        }
        Ok(())
    }

    pub(super) fn take_buffer(
        &self,
        size: u64,
        usage: wgpu::BufferUsages,
        label: &str,
    ) -> wgpu::Buffer {
        self.pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(&self.device, size, usage, label)
    }

    pub(super) fn give_buffer(&self, buffer: wgpu::Buffer) {
        self.pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .give(buffer);
    }

    /// The first `bytes` of `buffer` as `T`s, through a pooled staging buffer.
    pub(super) fn read_buffer<T: bytemuck::Pod>(
        &self,
        buffer: &wgpu::Buffer,
        bytes: u64,
    ) -> Result<Vec<T>> {
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let staging = self.take_buffer(
            bytes,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            "read-back",
        );
        let (tx, rx) = mpsc::channel();
        self.scoped("reading a buffer back", || {
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("read-back"),
                });
            encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, padded(bytes));
            self.queue.submit([encoder.finish()]);
            staging.map_async(wgpu::MapMode::Read, .., move |r| {
                let _ = tx.send(r);
            });
        })?;
        self.wait()?;
        rx.try_recv()
            .map_err(|_| anyhow!("GPU read-back did not complete"))?
            .map_err(|e| anyhow!("GPU read-back failed: {e}"))?;
        let data = {
            let view = staging
                .get_mapped_range(..bytes)
                .map_err(|e| anyhow!("GPU read-back failed: {e}"))?;
            bytemuck::pod_collect_to_vec(&view)
        };
        staging.unmap();
        self.give_buffer(staging);
        Ok(data)
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}
