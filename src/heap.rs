//! The allocator, set up by each load for what the load and the inferences after it allocate.

/// Grows wasm's memory in one step by about what a load will hold: the weights (with int8 weights, about the size of
/// the file; f32 weights hold four times as much, and grow the memory further as they go) and the graph around them
/// (a quarter more covers WRN-50-2's). The allocator grows the memory as it runs out, often by one
/// 64 KB page, and V8 answers grown memory with full garbage collections of the JS heap: ~14 in a load of the
/// embedded model in Node. One block allocated and freed at once grows the memory once, and the allocator serves the
/// load from it (freed memory is reused; wasm's memory never shrinks). Measured in Node: 3 collections, ~10% off the
/// load, and no more memory once the first inference has run (165 MB against 167). Elsewhere, nothing.
pub fn reserve_memory(model_bytes: usize) {
    if cfg!(target_arch = "wasm32") {
        // black_box: an allocation nothing reads may be optimised away.
        drop(std::hint::black_box(Vec::<u8>::with_capacity(model_bytes + model_bytes / 4)));
    }
}

/// Largest mmap threshold glibc's malloc takes on 64-bit targets (its DEFAULT_MMAP_THRESHOLD_MAX).
#[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
const MMAP_THRESHOLD: i32 = 32 << 20;

/// With glibc's malloc, keeps the memory an inference frees for the next, as onnxruntime's arena keeps its own; the
/// process then holds up to 64 MiB more freed memory (glibc's settings are the process's). Returns whether glibc took
/// the settings; elsewhere (wasm, whose memory never shrinks; other C libraries) it does nothing and returns false.
///
/// An inference frees and allocates the same buffers each time, megabytes each: tract's tensors, the quantisers'
/// panels. By default glibc gives freed memory back to the system: it maps each block at or above its mmap threshold
/// (128 KiB at first, then the largest such block freed) apart and unmaps it when freed, and trims the heap's free
/// top past twice that threshold. The memory comes back as fresh pages, each a page fault on its first write:
/// natively, hundreds to thousands an inference, more or fewer with the order of what else the heap holds. Fixed
/// thresholds of 32 MiB (the largest glibc would reach by itself) and 64 MiB (twice that, as it would set with it)
/// keep every buffer under 32 MiB in the heap. Buffers beyond that (larger inputs than WRN-50-2's at 224 x 224) are
/// still mapped and unmapped.
pub fn keep_buffers() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
    {
        unsafe extern "C" {
            /// glibc's `int mallopt(int param, int value)`: 1 on success.
            fn mallopt(param: i32, value: i32) -> i32;
        }
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_THRESHOLD: i32 = -3;
        // SAFETY: glibc's documented settings, which take effect for the allocations that follow.
        unsafe { mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 && mallopt(M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64")))]
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn glibc_keeps_freed_buffers() {
        let expected = cfg!(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"));
        assert_eq!(super::keep_buffers(), expected);
    }
}
