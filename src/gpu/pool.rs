//! Free buffers kept for reuse. Every frame of a reel has the same size, so after the first few
//! frames uploads, stage outputs and read-backs all come from here instead of the allocator.

use std::collections::HashMap;

/// Free buffers kept per (size, usage); more than this are dropped, freeing device memory.
const MAX_FREE_PER_KIND: usize = 8;

#[derive(Default)]
pub(super) struct BufferPool {
    free: HashMap<(u64, u32), Vec<wgpu::Buffer>>,
    /// Buffers created since the context opened, for tests and statistics.
    pub allocated: usize,
}

impl BufferPool {
    /// A buffer of exactly `size` bytes (at least 4, rounded up to 4) and `usage`, reused if one
    /// is free. Its contents are whatever the last user left.
    pub fn take(
        &mut self,
        device: &wgpu::Device,
        size: u64,
        usage: wgpu::BufferUsages,
        label: &str,
    ) -> wgpu::Buffer {
        let size = padded(size);
        if let Some(b) = self.free.get_mut(&(size, usage.bits())).and_then(Vec::pop) {
            return b;
        }
        self.allocated += 1;
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage,
            mapped_at_creation: false,
        })
    }

    /// Return a buffer. Safe while GPU work that uses it is still queued: later writes and
    /// dispatches are ordered after it on the queue.
    pub fn give(&mut self, buffer: wgpu::Buffer) {
        let list = self
            .free
            .entry((buffer.size(), buffer.usage().bits()))
            .or_default();
        if list.len() < MAX_FREE_PER_KIND {
            list.push(buffer);
        }
    }

    /// Drop every free buffer.
    pub fn clear(&mut self) {
        self.free.clear();
    }
}

/// Buffer sizes: copies need multiples of 4 bytes and bindings cannot be empty.
pub(super) fn padded(size: u64) -> u64 {
    size.max(4).next_multiple_of(4)
}
