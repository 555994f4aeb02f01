//! glibc's malloc set up for training loops: freed memory is kept for the next step.
//!
//! By default glibc serves every block above 32 MiB (and, until its threshold adapts, above
//! 128 KiB) with a fresh `mmap` and returns it to the kernel on `free`. A training step
//! allocates the same large buffers again and again (NSF(5) on MNIST: a 40 MB weight gradient
//! per coupling layer and step), so every step page-faults them in and the kernel zeroes them:
//! 16 million page faults in two NSF epochs, a quarter of the CPU time. With blocks taken from
//! the heap and the heap's top kept, the same two epochs took 30 s and 34 s instead of 36 s
//! and 43 s (2.7 million faults). Blocks too large for a thread's arena heap (64 MiB) are still
//! mapped on their own. Set `GLIBC_TUNABLES` with any `glibc.malloc.` entry to keep glibc's own
//! settings instead.

/// Keeps freed memory in the process for reuse (see the module doc). Call it first thing in
/// `main`, before other threads exist.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn keep_freed_memory() {
    let tuned_by_user = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc."));
    if tuned_by_user {
        return;
    }
    #[allow(unsafe_code)]
    // SAFETY: `mallopt` only changes malloc's parameters and is called before any other thread
    // exists; a refused parameter leaves glibc's default in place, which is still correct.
    unsafe {
        // No block of its own mapping: every block comes from an arena's heap...
        libc::mallopt(libc::M_MMAP_MAX, 0);
        // ...and freed space at the heap's top goes back to the kernel only beyond 1 GiB.
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// Other platforms keep their allocator's defaults.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn keep_freed_memory() {}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    /// Bytes glibc holds in blocks of their own mapping.
    fn mapped_bytes() -> usize {
        #[allow(unsafe_code)]
        // SAFETY: `mallinfo2` only reads malloc's statistics.
        unsafe { libc::mallinfo2() }.hblkhd
    }

    /// A 40 MB block (an NSF coupling layer's weight gradient), above the 32 MiB that glibc
    /// always maps on its own by default, comes from a heap (tests run on threads: a thread's
    /// arena heap, which holds blocks up to 64 MiB).
    #[test]
    fn large_blocks_come_from_the_heap_once_tuned() {
        super::keep_freed_memory();
        let before = mapped_bytes();
        let block = vec![1u8; 40_000_000];
        let during = mapped_bytes();
        assert!(
            during < before + 40_000_000,
            "a 40 MB block was mapped on its own: {before} -> {during} bytes"
        );
        drop(block);
    }
}
