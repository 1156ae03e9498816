//! int8_matmul's integer sums on AVX-512 VNNI (natively, x86-64 CPUs without AMX that have it).
//!
//! `vpdpwssd` multiplies pairs of i16 and adds both products into an i32 lane, in place: `pmaddwd` and `paddd` in
//! one instruction. On 256-bit vectors (AVX-512 VL), one lane a row: each pair of K is the panel's 8 rows' pairs in
//! one load, and each column's pair is broadcast from memory inside the instruction. So a pair of K is 8 of them for
//! 8 x 8 x 2 multiply-adds, where the SSE2 kernel needs 16 multiplies and 16 adds; the sums are the same integers,
//! so the tiles are the same bit for bit.

use std::arch::x86_64::*;
use std::sync::LazyLock;

use crate::int8_matmul::{MR, NR, Tile};

/// Whether this CPU (and OS) runs AVX-512 VNNI on 256-bit vectors (asked once).
pub fn available() -> bool {
    static AVAILABLE: LazyLock<bool> = LazyLock::new(|| {
        // Every feature the kernels are compiled with (avx512vl implies avx512f there; asked here on its own).
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512vnni")
            && is_x86_feature_detected!("avx2")
    });
    *AVAILABLE
}

/// As int8_matmul's `tile_portable`, on int8 weights (widened in registers).
///
/// # Safety
/// As int8_matmul's `tile_portable`, and [`available`].
#[target_feature(enable = "avx512vnni,avx512vl,avx2")]
pub unsafe fn tile(a: *const i8, b: *const i16, k_pairs: usize) -> Tile {
    // SAFETY: pair p's 8 rows are 16 bytes inside the panel (the caller's sizes); unaligned.
    let rows = |p: usize| unsafe { _mm256_cvtepi8_epi16(_mm_loadu_si128(a.add(p * MR * 2) as *const __m128i)) };
    // SAFETY: the caller's.
    unsafe { sums(rows, b, k_pairs) }
}

/// As int8_matmul's `tile_widened_portable`.
///
/// # Safety
/// As int8_matmul's `tile_widened_portable`, and [`available`].
#[target_feature(enable = "avx512vnni,avx512vl,avx2")]
pub unsafe fn tile_widened(a: *const i16, b: *const i16, k_pairs: usize) -> Tile {
    // SAFETY: pair p's 8 rows are 32 bytes inside the panel (the caller's sizes); unaligned.
    let rows = |p: usize| unsafe { _mm256_loadu_si256(a.add(p * MR * 2) as *const __m256i) };
    // SAFETY: the caller's.
    unsafe { sums(rows, b, k_pairs) }
}

/// The kernels' loop: `rows(p)` gives pair p's 8 rows as i16 pairs. Two pairs a step, into two sets of 8
/// accumulators: `vpdpwssd` takes a few cycles to give its sum, and 16 independent chains keep both of its ports
/// busy where 8 would not.
///
/// # Safety
/// `b` holds `k_pairs * NR * 2` values; [`available`].
#[inline(always)]
unsafe fn sums(rows: impl Fn(usize) -> __m256i, b: *const i16, k_pairs: usize) -> Tile {
    // SAFETY: AVX-512 VNNI and VL are there (the caller's); every load is inside the panels (the caller's sizes).
    unsafe {
        // Column s's pair of pair p, broadcast to the 8 lanes.
        let column = |p: usize, s: usize| _mm256_set1_epi32((b.add(p * NR * 2 + 2 * s) as *const i32).read_unaligned());
        let zero = _mm256_setzero_si256();
        let (mut even, mut odd) = ([zero; NR], [zero; NR]);
        for step in 0..k_pairs / 2 {
            let (p, q) = (2 * step, 2 * step + 1);
            let (rows_p, rows_q) = (rows(p), rows(q));
            for s in 0..NR {
                even[s] = _mm256_dpwssd_epi32(even[s], rows_p, column(p, s));
                odd[s] = _mm256_dpwssd_epi32(odd[s], rows_q, column(q, s));
            }
        }
        if k_pairs % 2 == 1 {
            let p = k_pairs - 1;
            let rows_p = rows(p);
            for s in 0..NR {
                even[s] = _mm256_dpwssd_epi32(even[s], rows_p, column(p, s));
            }
        }
        let mut acc = [[0i32; NR]; MR];
        for s in 0..NR {
            let lanes: [i32; MR] = std::mem::transmute(_mm256_add_epi32(even[s], odd[s]));
            for (r, &v) in lanes.iter().enumerate() {
                acc[r][s] = v;
            }
        }
        acc
    }
}
