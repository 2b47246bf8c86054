//! Process-wide memory settings, made once at start (by `nitrate` and the benches).

/// Stages allocate and free frame-sized buffers for every frame. By default glibc returns
/// blocks above its mmap threshold and the top of each heap to the kernel on free, so every
/// frame faults its memory back in page by page (with TLB shootdowns across the worker
/// threads): about a fifth of a CPU `denoise` run's time. Keep freed memory for reuse instead:
/// the process holds on to its peak footprint, which it needs again at the next frame.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn keep_freed_memory() {
    // 32 MiB is the largest mmap threshold glibc accepts (64-bit); larger blocks (a 2K RGB
    // frame) are still mapped, and cost little beside their processing.
    const MMAP_THRESHOLD: i32 = 32 << 20;
    // Trim a heap only when 2 GiB lie free at its top (the largest value mallopt takes).
    const TRIM_THRESHOLD: i32 = i32::MAX;
    // SAFETY: mallopt only changes allocator tuning; callers make it the first thing a
    // process does, before other threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_freed_memory() {}
