//! glibc's malloc, set once to serve an inference's buffers from memory it keeps.
//!
//! An inference allocates and frees the same buffers each time: tract's tensors, the quantisers' panels, megabytes
//! each. glibc maps a request at or above its mmap threshold to fresh pages and unmaps them when freed; the
//! threshold starts at 128 KiB, and a free of a mapped block raises it to that block's size (up to 32 MiB). So the
//! largest size class an inference has freed so far is mapped afresh each time: natively, hundreds to thousands of
//! page faults an inference, more or fewer with the order of what else the heap holds (src/pad_once.rs, which
//! allocates one buffer fewer than tract's Pad, made it ~3,700 an inference and the inference ~8% slower). One
//! block of just under 32 MiB, mapped and freed at the first load, raises the threshold to its largest: every buffer
//! of an inference then comes from the heap, which keeps it (glibc trims the heap's free top only past twice the
//! threshold), as onnxruntime's arena keeps its own. Natively, four rounds alternating, medians of 21 inferences:
//! 52.8-54.6 ms before, 50.4-52.3 with this alone, 48.7-50.8 with pad_once too; the peak RSS 158 MB against 155.
//! Only where the target is glibc's (lib.rs); elsewhere (other allocators, wasm) the heap is left as it is.

use std::sync::Once;

/// glibc's largest dynamic mmap threshold on 64-bit targets (DEFAULT_MMAP_THRESHOLD_MAX).
const THRESHOLD_MAX: usize = 32 << 20;

/// Raises glibc's mmap threshold to its largest, once a process.
pub fn keep_buffers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Under the limit with glibc's header and page rounding, so that the free raises the threshold.
        let block: Vec<u8> = Vec::with_capacity(THRESHOLD_MAX - (64 << 10));
        // Not optimised away: the allocation and the free must reach malloc.
        drop(std::hint::black_box(block));
    });
}
