//! Integer matrix products for int8 compute: C = W X with W int8 (one scale per row, as the model stores its
//! weights) and X f32 activations quantised per column.
//!
//! wasm's SIMD has no int8 dot product, but `i32x4.dot_i16x8_s` does 8 multiply-adds in one instruction (f32 needs a
//! mul and an add for 4): operands are widened to i16 and taken in pairs along K. Since the activations are i16
//! anyway, each column gets as many bits as the sum over K allows in i32 (`activation_qmax`): 15 bits for short K,
//! 11 at WRN-50-2's longest (K = 9216), far finer than the 8 bits of int8 activations. The weights lose nothing:
//! they are the model's own int8 values.
//!
//! Layouts, panel by panel (padding is zero, so it adds nothing to a sum). Each panel starts with its scales, so
//! that a kernel handed two panel addresses (as tract's matmul does) has all it needs:
//! - weights: [`MR`] rows: `[MR] f32` row scales, then per pair of K `[MR][2] i8`, row by row;
//! - activations: [`NR`] columns: `[NR] f32` column scales, then per pair of K `[NR][2] i16`, column by column.

use std::sync::atomic::{AtomicBool, Ordering};

/// Rows of a weight panel, and of the tile one kernel call computes.
pub const MR: usize = 8;
/// Columns of an activation panel, and of the tile (tract's f32 tile in wasm is 8 x 8 too).
pub const NR: usize = 8;

/// The largest weight magnitude (int8, -128 included).
const WEIGHT_MAX: i64 = 128;

/// The largest activation magnitude for a sum over `k` products: `WEIGHT_MAX * qmax * k` must fit in an i32 (the
/// accumulators), and qmax in an i16.
pub fn activation_qmax(k: usize) -> i32 {
    activation_qmax_for(k, WEIGHT_MAX)
}

/// As [`activation_qmax`], for weights of magnitude up to `weight_max` (wider than int8: src/winograd.rs).
pub fn activation_qmax_for(k: usize, weight_max: i64) -> i32 {
    let fits = i32::MAX as i64 / (weight_max.max(1) * pairs(k).max(1) as i64 * 2);
    fits.min(i16::MAX as i64) as i32
}

/// K is taken in pairs, the last one padded with a zero.
pub fn pairs(k: usize) -> usize {
    k.div_ceil(2)
}

/// Bytes of one weight panel for a sum over `k`.
pub fn weight_panel_bytes(k: usize) -> usize {
    MR * 4 + pairs(k) * MR * 2
}

/// Bytes of one activation panel for a sum over `k`.
pub fn activation_panel_bytes(k: usize) -> usize {
    NR * 4 + pairs(k) * NR * 2 * 2
}

/// Writes one weight panel: row r (of `scales.len()` <= MR rows) has scale `scales[r]` and values `value(r, kk)`.
pub fn pack_weight_panel(out: &mut [u8], k: usize, scales: &[f32], value: impl Fn(usize, usize) -> i8) {
    let rows = scales.len();
    assert!(rows <= MR && out.len() == weight_panel_bytes(k), "one panel of MR rows");
    out.fill(0);
    let (scale_bytes, q) = out.split_at_mut(MR * 4);
    write_scales(scale_bytes, scales);
    // K outer: the panel is written in order.
    for kk in 0..k {
        for r in 0..rows {
            q[(kk / 2) * MR * 2 + r * 2 + kk % 2] = value(r, kk) as u8;
        }
    }
}

/// As [`pack_weight_panel`] with `value(r, kk) = rows[r][kk]`: from the rows of a row-major weight, as the model
/// stores it. Each pair of K is a 16-bit value of a row, so a panel is an MR x pairs(k) transposition of them,
/// 8 x 8 at a time on wasm SIMD or SSE2.
pub fn pack_weight_panel_rows(out: &mut [u8], k: usize, scales: &[f32], rows: &[&[i8]]) {
    assert!(rows.len() == scales.len() && rows.len() <= MR, "at most MR rows, one scale each");
    assert!(rows.iter().all(|r| r.len() >= k), "rows of k values");
    if rows.len() < MR {
        // The last panel: its padding rows are zeros.
        return pack_weight_panel(out, k, scales, |r, kk| rows[r][kk]);
    }
    assert!(out.len() == weight_panel_bytes(k), "one panel of MR rows");
    let (scale_bytes, q) = out.split_at_mut(MR * 4);
    write_scales(scale_bytes, scales);
    // SAFETY: i8 and u8 have the same size and alignment.
    let rows: [&[u8]; MR] = std::array::from_fn(|r| unsafe { std::slice::from_raw_parts(rows[r].as_ptr() as _, k) });
    let blocks = k / (2 * PAIRS_PER_BLOCK);
    for block in 0..blocks {
        transpose_pairs(&rows, block * PAIRS_PER_BLOCK, &mut q[block * PAIRS_PER_BLOCK * 2 * MR..]);
    }
    for kk in blocks * 2 * PAIRS_PER_BLOCK..k {
        for (r, row) in rows.iter().enumerate() {
            q[(kk / 2) * MR * 2 + r * 2 + kk % 2] = row[kk];
        }
    }
    if k % 2 == 1 {
        for r in 0..MR {
            q[(k / 2) * MR * 2 + r * 2 + 1] = 0;
        }
    }
}

/// Pairs of K that [`transpose_pairs`] moves at once.
const PAIRS_PER_BLOCK: usize = 8;

/// Pairs `first..first + 8` of MR rows into `q`, pair by pair: `q[p][r][2] = rows[r][2 (first + p)..][..2]`.
#[cfg(not(any(all(target_arch = "wasm32", target_feature = "simd128"), target_arch = "x86_64")))]
fn transpose_pairs(rows: &[&[u8]; MR], first: usize, q: &mut [u8]) {
    for p in 0..PAIRS_PER_BLOCK {
        for (r, row) in rows.iter().enumerate() {
            q[(p * MR + r) * 2..][..2].copy_from_slice(&row[2 * (first + p)..][..2]);
        }
    }
}

/// As the portable version: an 8 x 8 transposition of 16-bit lanes in three rounds of interleaving (16, 32 and 64
/// bits), row r's 8 pairs in, pair p's 8 rows out.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn transpose_pairs(rows: &[&[u8]; MR], first: usize, q: &mut [u8]) {
    use core::arch::wasm32::*;
    assert!(rows.iter().all(|r| r.len() >= 2 * (first + 8)) && q.len() >= 8 * MR * 2, "8 pairs of MR = 8 rows");
    // SAFETY: in bounds (asserted); v128 accesses need no alignment.
    let a: [v128; 8] = std::array::from_fn(|r| unsafe { v128_load(rows[r].as_ptr().add(2 * first) as *const v128) });
    let lo16 = |x, y| i16x8_shuffle::<0, 8, 1, 9, 2, 10, 3, 11>(x, y);
    let hi16 = |x, y| i16x8_shuffle::<4, 12, 5, 13, 6, 14, 7, 15>(x, y);
    let t = [lo16(a[0], a[1]), hi16(a[0], a[1]), lo16(a[2], a[3]), hi16(a[2], a[3])];
    let t2 = [lo16(a[4], a[5]), hi16(a[4], a[5]), lo16(a[6], a[7]), hi16(a[6], a[7])];
    let lo32 = |x, y| i32x4_shuffle::<0, 4, 1, 5>(x, y);
    let hi32 = |x, y| i32x4_shuffle::<2, 6, 3, 7>(x, y);
    // Rows 0-3, then rows 4-7, of pairs 0-1, 2-3, 4-5 and 6-7.
    let u = [lo32(t[0], t[2]), hi32(t[0], t[2]), lo32(t[1], t[3]), hi32(t[1], t[3])];
    let v = [lo32(t2[0], t2[2]), hi32(t2[0], t2[2]), lo32(t2[1], t2[3]), hi32(t2[1], t2[3])];
    for (i, (u, v)) in u.into_iter().zip(v).enumerate() {
        // SAFETY: pairs 2i and 2i + 1, within q (asserted).
        unsafe {
            let dst = q.as_mut_ptr().add(2 * i * MR * 2) as *mut v128;
            v128_store(dst, i64x2_shuffle::<0, 2>(u, v));
            v128_store(dst.add(1), i64x2_shuffle::<1, 3>(u, v));
        }
    }
}

/// As the wasm version, on SSE2's interleavings (the same three rounds).
#[cfg(target_arch = "x86_64")]
fn transpose_pairs(rows: &[&[u8]; MR], first: usize, q: &mut [u8]) {
    use core::arch::x86_64::*;
    assert!(rows.iter().all(|r| r.len() >= 2 * (first + 8)) && q.len() >= 8 * MR * 2, "8 pairs of MR = 8 rows");
    // SAFETY: SSE2 is part of x86-64; in bounds (asserted); unaligned loads and stores.
    unsafe {
        let a: [__m128i; 8] = std::array::from_fn(|r| _mm_loadu_si128(rows[r].as_ptr().add(2 * first) as *const _));
        let (lo16, hi16) = (|x, y| _mm_unpacklo_epi16(x, y), |x, y| _mm_unpackhi_epi16(x, y));
        let t = [lo16(a[0], a[1]), hi16(a[0], a[1]), lo16(a[2], a[3]), hi16(a[2], a[3])];
        let t2 = [lo16(a[4], a[5]), hi16(a[4], a[5]), lo16(a[6], a[7]), hi16(a[6], a[7])];
        let (lo32, hi32) = (|x, y| _mm_unpacklo_epi32(x, y), |x, y| _mm_unpackhi_epi32(x, y));
        let u = [lo32(t[0], t[2]), hi32(t[0], t[2]), lo32(t[1], t[3]), hi32(t[1], t[3])];
        let v = [lo32(t2[0], t2[2]), hi32(t2[0], t2[2]), lo32(t2[1], t2[3]), hi32(t2[1], t2[3])];
        for (i, (u, v)) in u.into_iter().zip(v).enumerate() {
            let dst = q.as_mut_ptr().add(2 * i * MR * 2) as *mut __m128i;
            _mm_storeu_si128(dst, _mm_unpacklo_epi64(u, v));
            _mm_storeu_si128(dst.add(1), _mm_unpackhi_epi64(u, v));
        }
    }
}

/// A panel's header: its scales, as little-endian f32.
pub(crate) fn write_scales(header: &mut [u8], scales: &[f32]) {
    for (bytes, scale) in header.chunks_exact_mut(4).zip(scales) {
        bytes.copy_from_slice(&scale.to_le_bytes());
    }
}

/// Columns `to..to + len` of a panel of activations, from columns `from..` of a panel of tract's: K rows of `r`
/// values at `values`.
#[derive(Clone, Copy, Debug)]
pub struct ColumnRun {
    pub values: *const f32,
    pub r: usize,
    pub from: usize,
    pub to: usize,
    pub len: usize,
}

/// Copies `runs` into `columns`, K x `width`, K-major (columns no run covers are left as they are).
///
/// # Safety
/// Each run's panel holds k rows of its r values, and its columns fit in `width`.
pub unsafe fn gather_runs(runs: &[ColumnRun], k: usize, width: usize, columns: &mut [f32]) {
    for run in runs {
        assert!(run.to + run.len <= width && run.from + run.len <= run.r, "a run inside both panels");
        // SAFETY: the caller's.
        let theirs = unsafe { std::slice::from_raw_parts(run.values, k * run.r) };
        for (ours, theirs) in columns.chunks_exact_mut(width).zip(theirs.chunks_exact(run.r)).take(k) {
            ours[run.to..][..run.len].copy_from_slice(&theirs[run.from..][..run.len]);
        }
    }
}

/// The scales (max|x| / qmax) and multipliers (qmax / max|x|) of columns with maxima `max_abs`, for a sum over `k`.
pub fn column_scales<const N: usize>(max_abs: [f32; N], k: usize) -> ([f32; N], [f32; N]) {
    column_scales_to(max_abs, activation_qmax(k))
}

/// As [`column_scales`], to levels up to `qmax`.
pub fn column_scales_to<const N: usize>(max_abs: [f32; N], qmax: i32) -> ([f32; N], [f32; N]) {
    let qmax = qmax as f32;
    // A column of zeros (or of padding) gets multiplier 0 (its levels stay zero), not a division by 0; so does one
    // whose maximum is so small (subnormal) that qmax / max overflows, which would push levels past qmax.
    let multiplier = max_abs.map(|m| if m > 0.0 && (qmax / m).is_finite() { qmax / m } else { 0.0 });
    (max_abs.map(|m| m / qmax), multiplier)
}

/// The largest |x| of each of the first `cols` columns of `columns` (K x N, K-major), 0 for the others. NaN is
/// skipped, as `f32::max` does.
pub fn column_max_abs_portable<const N: usize>(columns: &[f32], k: usize, cols: usize) -> [f32; N] {
    let mut max_abs = [0f32; N];
    for row in columns.chunks_exact(N).take(k) {
        for (m, v) in max_abs.iter_mut().zip(row).take(cols) {
            *m = m.max(v.abs());
        }
    }
    max_abs
}

#[cfg(not(any(all(target_arch = "wasm32", target_feature = "simd128"), target_arch = "x86_64")))]
fn column_max_abs(columns: &[f32], k: usize, cols: usize) -> [f32; NR] {
    column_max_abs_portable(columns, k, cols)
}

/// As the portable version, on wasm SIMD: `pmax(m, |x|)` is `m < |x| ? |x| : m`, which keeps m when x is NaN.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn column_max_abs(columns: &[f32], k: usize, cols: usize) -> [f32; NR] {
    use core::arch::wasm32::*;
    assert!(columns.len() >= k * NR, "k rows of NR");
    let (mut lo, mut hi) = (f32x4_splat(0.0), f32x4_splat(0.0));
    for row in columns.chunks_exact(NR).take(k) {
        // SAFETY: a row is NR = 8 f32; v128 loads need no alignment.
        let x = row.as_ptr() as *const v128;
        unsafe {
            lo = f32x4_pmax(lo, f32x4_abs(v128_load(x)));
            hi = f32x4_pmax(hi, f32x4_abs(v128_load(x.add(1))));
        }
    }
    let mut max_abs = [0f32; NR];
    // SAFETY: two v128 stores fill the NR = 8 f32.
    unsafe {
        v128_store(max_abs.as_mut_ptr() as *mut v128, lo);
        v128_store(max_abs.as_mut_ptr().add(4) as *mut v128, hi);
    }
    // Padding columns may hold anything (a lazily made panel's scratch): they count as zeros.
    max_abs[cols..].fill(0.0);
    max_abs
}

/// As the portable version, on SSE2: `maxps(|x|, m)` is `|x| > m ? |x| : m`, which keeps m when x is NaN.
#[cfg(target_arch = "x86_64")]
fn column_max_abs(columns: &[f32], k: usize, cols: usize) -> [f32; NR] {
    use core::arch::x86_64::*;
    assert!(columns.len() >= k * NR, "k rows of NR");
    let mut max_abs = [0f32; NR];
    // SAFETY: SSE2 is part of x86-64; a row is NR = 8 f32 (asserted), and two stores fill max_abs; unaligned.
    unsafe {
        let sign = _mm_set1_ps(-0.0);
        let (mut lo, mut hi) = (_mm_setzero_ps(), _mm_setzero_ps());
        for row in columns.chunks_exact(NR).take(k) {
            lo = _mm_max_ps(_mm_andnot_ps(sign, _mm_loadu_ps(row.as_ptr())), lo);
            hi = _mm_max_ps(_mm_andnot_ps(sign, _mm_loadu_ps(row.as_ptr().add(4))), hi);
        }
        _mm_storeu_ps(max_abs.as_mut_ptr(), lo);
        _mm_storeu_ps(max_abs.as_mut_ptr().add(4), hi);
    }
    // Padding columns may hold anything (a lazily made panel's scratch): they count as zeros.
    max_abs[cols..].fill(0.0);
    max_abs
}

/// Writes one activation panel from `columns` (K x NR, K-major; `cols` columns exist), each column quantised on its
/// own: symmetric, scale max|x| / qmax, rounded half to even. The portable version: the reference for the SIMD one.
pub fn quantize_activation_panel_portable(out: &mut [u8], columns: &[f32], k: usize, cols: usize) {
    quantize_activation_panel_to_portable(out, columns, k, cols, activation_qmax(k), None)
}

/// As [`quantize_activation_panel_portable`], to levels up to `qmax` (for a kernel whose weights are wider than int8,
/// src/winograd.rs), with the columns' maxima if the caller knows them (as [`quantize_activation_panel_with_max`]).
pub fn quantize_activation_panel_to_portable(
    out: &mut [u8],
    columns: &[f32],
    k: usize,
    cols: usize,
    qmax: i32,
    max_abs: Option<[f32; NR]>,
) {
    out.fill(0);
    quantize_panel(out, columns, k, cols, qmax, max_abs, write_levels_portable)
}

/// One activation panel from `columns` (K x NR, K-major, as tract packs activations; columns from `cols` on are
/// padding, whatever they hold): the column scales, from the columns' maxima (`max_abs`, zeros for padding, when the
/// caller knows them; else found here), then the levels, by `write_levels(levels, columns, k, multipliers, qmax)`.
fn quantize_panel(
    out: &mut [u8],
    columns: &[f32],
    k: usize,
    cols: usize,
    qmax: i32,
    max_abs: Option<[f32; NR]>,
    write_levels: fn(&mut [u8], &[f32], usize, &[f32; NR], i32),
) {
    assert!(cols <= NR && out.len() == activation_panel_bytes(k) && columns.len() >= k * NR, "one panel");
    assert!((1..=i16::MAX as i32).contains(&qmax), "levels fit an i16");
    let max_abs = max_abs.unwrap_or_else(|| column_max_abs(columns, k, cols));
    let (scales, multipliers) = column_scales_to(max_abs, qmax);
    let (scale_bytes, levels) = out.split_at_mut(NR * 4);
    write_scales(scale_bytes, &scales);
    write_levels(levels, columns, k, &multipliers, qmax)
}

/// The levels of a panel (after its scales) in plain Rust: the reference for the SIMD versions. (`levels` is zeroed:
/// an odd K's last pair keeps its zero.)
fn write_levels_portable(levels: &mut [u8], columns: &[f32], k: usize, multipliers: &[f32; NR], qmax: i32) {
    let qmax = qmax as f32;
    for (kk, row) in columns.chunks_exact(NR).take(k).enumerate() {
        for (c, (&v, &m)) in row.iter().zip(multipliers).enumerate() {
            let level = (v * m).round_ties_even().clamp(-qmax, qmax) as i16;
            levels[((kk / 2) * NR * 2 + c * 2 + kk % 2) * 2..][..2].copy_from_slice(&level.to_le_bytes());
        }
    }
}

#[cfg(not(any(all(target_arch = "wasm32", target_feature = "simd128"), target_arch = "x86_64")))]
pub use quantize_activation_panel_portable as quantize_activation_panel;
#[cfg(not(any(all(target_arch = "wasm32", target_feature = "simd128"), target_arch = "x86_64")))]
pub use quantize_activation_panel_to_portable as quantize_activation_panel_to;

/// Writes one activation panel as [`quantize_activation_panel_portable`] does, on SIMD (wasm's or x86-64's SSE2).
#[cfg(any(all(target_arch = "wasm32", target_feature = "simd128"), target_arch = "x86_64"))]
pub fn quantize_activation_panel(out: &mut [u8], columns: &[f32], k: usize, cols: usize) {
    quantize_activation_panel_to(out, columns, k, cols, activation_qmax(k), None)
}

/// As [`quantize_activation_panel`], from the columns' largest |x| (`max_abs`, zeros for padding columns), which the
/// caller knows (a convolution's, src/im2col.rs), instead of a pass over the panel to find them.
pub fn quantize_activation_panel_with_max(out: &mut [u8], columns: &[f32], k: usize, max_abs: [f32; NR]) {
    quantize_activation_panel_to(out, columns, k, NR, activation_qmax(k), Some(max_abs))
}

/// As [`quantize_activation_panel_to_portable`], on SIMD (wasm's or x86-64's SSE2).
#[cfg(any(all(target_arch = "wasm32", target_feature = "simd128"), target_arch = "x86_64"))]
pub fn quantize_activation_panel_to(
    out: &mut [u8],
    columns: &[f32],
    k: usize,
    cols: usize,
    qmax: i32,
    max_abs: Option<[f32; NR]>,
) {
    quantize_panel(out, columns, k, cols, qmax, max_abs, write_levels_simd)
}

/// As [`write_levels_portable`], on wasm SIMD: per pair of K, two rows of 8 columns are scaled, rounded, narrowed to
/// i16 and interleaved into column pairs. (|x * multiplier| never exceeds qmax by more than rounding, so the
/// saturating narrowing clamps as the portable version does.)
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn write_levels_simd(q: &mut [u8], columns: &[f32], k: usize, inverse: &[f32; NR], _qmax: i32) {
    use core::arch::wasm32::*;
    assert!(columns.len() >= k * NR && q.len() >= pairs(k) * NR * 2 * 2, "k rows of NR, pairs(k) pairs out");
    // SAFETY (all loads and stores below): `columns` holds k rows of NR f32 and `q` pairs(k) pairs of NR i16
    // (asserted above); v128 accesses need no alignment.
    let levels = |row: usize| unsafe {
        let x = columns.as_ptr().add(row * NR) as *const v128;
        let inv = inverse.as_ptr() as *const v128;
        let lo = i32x4_trunc_sat_f32x4(f32x4_nearest(f32x4_mul(v128_load(x), v128_load(inv))));
        let hi = i32x4_trunc_sat_f32x4(f32x4_nearest(f32x4_mul(v128_load(x.add(1)), v128_load(inv.add(1)))));
        i16x8_narrow_i32x4(lo, hi)
    };
    for p in 0..pairs(k) {
        let first = levels(2 * p);
        let second = if 2 * p + 1 < k { levels(2 * p + 1) } else { i16x8_splat(0) };
        unsafe {
            let dst = q.as_mut_ptr().add(p * NR * 2 * 2) as *mut v128;
            v128_store(dst, i16x8_shuffle::<0, 8, 1, 9, 2, 10, 3, 11>(first, second));
            v128_store(dst.add(1), i16x8_shuffle::<4, 12, 5, 13, 6, 14, 7, 15>(first, second));
        }
    }
}

/// As [`write_levels_portable`], on SSE2: as the wasm version, with `cvtps2dq` rounding half to even (the default
/// rounding mode), NaN masked to 0 as the portable version's cast makes it, and `packssdw` narrowing.
#[cfg(target_arch = "x86_64")]
fn write_levels_simd(q: &mut [u8], columns: &[f32], k: usize, inverse: &[f32; NR], _qmax: i32) {
    use core::arch::x86_64::*;
    assert!(columns.len() >= k * NR && q.len() >= pairs(k) * NR * 2 * 2, "k rows of NR, pairs(k) pairs out");
    // SAFETY (all loads and stores below): SSE2 is part of x86-64; `columns` holds k rows of NR f32 and `q`
    // pairs(k) pairs of NR i16 (asserted above); unaligned.
    let levels = |row: usize| unsafe {
        let x = columns.as_ptr().add(row * NR);
        let level = |i: usize| {
            let v = _mm_mul_ps(_mm_loadu_ps(x.add(i)), _mm_loadu_ps(inverse.as_ptr().add(i)));
            _mm_and_si128(_mm_cvtps_epi32(v), _mm_castps_si128(_mm_cmpord_ps(v, v)))
        };
        _mm_packs_epi32(level(0), level(4))
    };
    for p in 0..pairs(k) {
        let first = levels(2 * p);
        let second = if 2 * p + 1 < k { levels(2 * p + 1) } else { unsafe { _mm_setzero_si128() } };
        unsafe {
            let dst = q.as_mut_ptr().add(p * NR * 2 * 2) as *mut __m128i;
            _mm_storeu_si128(dst, _mm_unpacklo_epi16(first, second));
            _mm_storeu_si128(dst.add(1), _mm_unpackhi_epi16(first, second));
        }
    }
}

/// int8 weights packed panel by panel, with their row scales.
pub struct PackedWeights {
    bytes: Vec<u8>,
    m: usize,
    k: usize,
}

impl PackedWeights {
    /// `q` is m x k, row-major; `scales` holds one value per row.
    pub fn pack(q: &[i8], scales: &[f32], m: usize, k: usize) -> PackedWeights {
        assert_eq!(q.len(), m * k, "weights are m x k");
        assert_eq!(scales.len(), m, "one scale per row");
        let mut bytes = vec![0u8; m.div_ceil(MR) * weight_panel_bytes(k)];
        for (i, panel) in bytes.chunks_exact_mut(weight_panel_bytes(k)).enumerate() {
            let rows = (m - i * MR).min(MR);
            pack_weight_panel(panel, k, &scales[i * MR..][..rows], |r, kk| q[(i * MR + r) * k + kk]);
        }
        PackedWeights { bytes, m, k }
    }
}

/// f32 activations quantised column by column, packed panel by panel.
pub struct QuantizedActivations {
    bytes: Vec<u8>,
    n: usize,
    k: usize,
}

impl QuantizedActivations {
    /// `x` is k x n, row-major.
    pub fn quantize(x: &[f32], k: usize, n: usize) -> QuantizedActivations {
        assert_eq!(x.len(), k * n, "activations are k x n");
        let mut bytes = vec![0u8; n.div_ceil(NR) * activation_panel_bytes(k)];
        for (j, panel) in bytes.chunks_exact_mut(activation_panel_bytes(k)).enumerate() {
            let cols = (n - j * NR).min(NR);
            let mut columns = vec![0f32; k * NR];
            for (kk, row) in columns.chunks_exact_mut(NR).enumerate() {
                row[..cols].copy_from_slice(&x[kk * n + j * NR..][..cols]);
            }
            quantize_activation_panel(panel, &columns, k, cols);
        }
        QuantizedActivations { bytes, n, k }
    }
}

/// One tile of integer sums over K: `acc[row][col]`.
pub type Tile = [[i32; NR]; MR];

/// The integer kernels' signature: [`tile`] (this build's) and [`tile_portable`].
pub type TileKernel = unsafe fn(*const i8, *const i16, usize) -> Tile;

/// The integer kernels on weights widened to i16 beforehand ([`widen_weight_panel`]): [`tile_widened`] (this
/// build's) and [`tile_widened_portable`].
pub type WidenedTileKernel = unsafe fn(*const i16, *const i16, usize) -> Tile;

/// One tile of C: the integer sums times the row and column scales.
///
/// # Safety
/// `a` and `b` point at a whole weight panel and a whole activation panel for the same `k`.
pub unsafe fn product_tile(a: *const u8, b: *const u8, k: usize, kernel: TileKernel) -> [[f32; NR]; MR] {
    // SAFETY: the caller's panels hold their scales first and `pairs(k)` pairs after them.
    let acc = unsafe { kernel(a.add(MR * 4) as *const i8, b.add(NR * 4) as *const i16, pairs(k)) };
    // SAFETY: the caller's.
    unsafe { scaled(acc, a, b) }
}

/// As [`product_tile`], the weights' pairs read from `widened`, weight panel `a` widened by [`widen_weight_panel`].
///
/// # Safety
/// As [`product_tile`], and `widened` holds `a`'s values.
pub unsafe fn product_tile_widened(
    a: *const u8,
    widened: *const i16,
    b: *const u8,
    k: usize,
    kernel: WidenedTileKernel,
) -> [[f32; NR]; MR] {
    // SAFETY: `widened` holds `pairs(k)` pairs of MR i16 (the caller's), and the activation panel's pairs follow its
    // scales.
    let acc = unsafe { kernel(widened, b.add(NR * 4) as *const i16, pairs(k)) };
    // SAFETY: the caller's.
    unsafe { scaled(acc, a, b) }
}

/// The integer sums times the row scales of weight panel `a` and the column scales of activation panel `b` (each
/// panel starts with its scales: this kernel's and int8_amx's).
///
/// # Safety
/// `a` and `b` point at a weight panel and an activation panel.
#[inline]
pub(crate) unsafe fn scaled<const R: usize, const C: usize>(
    acc: [[i32; C]; R],
    a: *const u8,
    b: *const u8,
) -> [[f32; C]; R] {
    let scale = |p: *const u8, i: usize| unsafe { (p as *const f32).add(i).read_unaligned() };
    let mut c = [[0f32; C]; R];
    for (r, row) in c.iter_mut().enumerate() {
        for (s, v) in row.iter_mut().enumerate() {
            *v = acc[r][s] as f32 * (scale(a, r) * scale(b, s));
        }
    }
    c
}

/// C = W X, m x n row-major, on this build's kernel.
pub fn matmul(w: &PackedWeights, x: &QuantizedActivations) -> Vec<f32> {
    matmul_with(w, x, tile)
}

/// C = W X on the given integer kernel.
pub fn matmul_with(w: &PackedWeights, x: &QuantizedActivations, kernel: TileKernel) -> Vec<f32> {
    assert_eq!(w.k, x.k, "W and X share K");
    let (m, n, k) = (w.m, x.n, w.k);
    let mut c = vec![0f32; m * n];
    for (j, b) in x.bytes.chunks_exact(activation_panel_bytes(k)).enumerate() {
        for (i, a) in w.bytes.chunks_exact(weight_panel_bytes(k)).enumerate() {
            // SAFETY: whole panels of the same K.
            let tile = unsafe { product_tile(a.as_ptr(), b.as_ptr(), k, kernel) };
            for (r, values) in tile.iter().enumerate().take(m - i * MR) {
                let start = (i * MR + r) * n + j * NR;
                let cols = (n - j * NR).min(NR);
                c[start..start + cols].copy_from_slice(&values[..cols]);
            }
        }
    }
    c
}

/// Weight panel `panel`'s values (after its scales) widened to i16 into `out`, in the same order, as
/// [`tile_widened`] reads them: that kernel then spends no instructions on widening, which the wasm kernel's loop
/// is bound by.
pub fn widen_weight_panel(panel: &[u8], k: usize, out: &mut [i16]) {
    assert!(panel.len() == weight_panel_bytes(k) && out.len() == widened_weight_panel_len(k), "one weight panel");
    for (out, &v) in out.iter_mut().zip(&panel[MR * 4..]) {
        *out = v as i8 as i16;
    }
}

/// Values of a weight panel widened by [`widen_weight_panel`].
pub fn widened_weight_panel_len(k: usize) -> usize {
    pairs(k) * MR * 2
}

/// The integer sums in plain Rust: the reference the SIMD kernel must equal.
///
/// # Safety
/// `a` holds `k_pairs * MR * 2` values and `b` holds `k_pairs * NR * 2`.
pub unsafe fn tile_portable(a: *const i8, b: *const i16, k_pairs: usize) -> Tile {
    // SAFETY: the caller's.
    unsafe { sums(a, b, k_pairs) }
}

/// As [`tile_portable`], on widened weights.
///
/// # Safety
/// As [`tile_portable`].
pub unsafe fn tile_widened_portable(a: *const i16, b: *const i16, k_pairs: usize) -> Tile {
    // SAFETY: the caller's.
    unsafe { sums(a, b, k_pairs) }
}

/// The portable kernels' sums, on weights of type `W`.
///
/// # Safety
/// As [`tile_portable`].
unsafe fn sums<W: Copy + Into<i32>>(a: *const W, b: *const i16, k_pairs: usize) -> Tile {
    // SAFETY: the sizes the caller guarantees.
    let (a, b) =
        unsafe { (std::slice::from_raw_parts(a, k_pairs * MR * 2), std::slice::from_raw_parts(b, k_pairs * NR * 2)) };
    let mut acc = [[0i32; NR]; MR];
    for (a, b) in a.chunks_exact(MR * 2).zip(b.chunks_exact(NR * 2)) {
        for (r, acc_row) in acc.iter_mut().enumerate() {
            for (s, sum) in acc_row.iter_mut().enumerate() {
                *sum += a[2 * r].into() * b[2 * s] as i32 + a[2 * r + 1].into() * b[2 * s + 1] as i32;
            }
        }
    }
    acc
}

#[cfg(not(any(all(target_arch = "wasm32", target_feature = "simd128"), target_arch = "x86_64")))]
pub use tile_portable as tile;
#[cfg(not(any(all(target_arch = "wasm32", target_feature = "simd128"), target_arch = "x86_64")))]
pub use tile_widened_portable as tile_widened;

/// The integer sums natively on x86-64: on AVX-512 VNNI where the CPU has it (src/int8_vnni.rs), else on SSE2. The
/// same integer sums either way.
///
/// # Safety
/// As [`tile_portable`].
#[cfg(target_arch = "x86_64")]
pub unsafe fn tile(a: *const i8, b: *const i16, k_pairs: usize) -> Tile {
    // SAFETY: the caller's; the VNNI kernel only where the CPU has it.
    unsafe {
        match crate::int8_vnni::available() {
            true => crate::int8_vnni::tile(a, b, k_pairs),
            false => tile_sse2(a, b, k_pairs),
        }
    }
}

/// As [`tile`], on widened weights.
///
/// # Safety
/// As [`tile_widened_portable`].
#[cfg(target_arch = "x86_64")]
pub unsafe fn tile_widened(a: *const i16, b: *const i16, k_pairs: usize) -> Tile {
    // SAFETY: the caller's; the VNNI kernel only where the CPU has it.
    unsafe {
        match crate::int8_vnni::available() {
            true => crate::int8_vnni::tile_widened(a, b, k_pairs),
            false => tile_widened_sse2(a, b, k_pairs),
        }
    }
}

/// Whether the kernel reads int8 weight panels as they are ([`tile`]) rather than widened in memory first
/// ([`tile_widened`], on a copy made for a row of tiles): natively on AVX-512 VNNI, where widening in registers is one
/// instruction for 8 `vpdpwssd`. A widened copy pays only where tract keeps a panel for a row of tiles, and for
/// WRN-50-2's long sums (K of 2304 to 9216, 1 MB and more of activations) its cache blocking walks the tiles column
/// by column instead, so that a panel was widened for each tile: natively the matmuls took 119 ms an inference
/// then, 94 ms reading the panels as they are. Elsewhere (wasm, SSE2) widening in registers costs more.
pub fn reads_weights_unwidened() -> bool {
    #[cfg(target_arch = "x86_64")]
    return crate::int8_vnni::available() && !ALWAYS_WIDEN.load(Ordering::Relaxed);
    #[cfg(not(target_arch = "x86_64"))]
    false
}

static ALWAYS_WIDEN: AtomicBool = AtomicBool::new(false);

/// Makes the kernel widen weight panels in memory even where it reads them as they are (or back), for models
/// loaded from now on and for the inferences that follow: for tests and benchmarks, since both read the same values
/// (the same logits bit for bit).
#[doc(hidden)]
pub fn always_widen(on: bool) {
    ALWAYS_WIDEN.store(on, Ordering::Relaxed);
}

/// The integer sums on x86-64's SSE2 (always there): `pmaddwd` is wasm's `i32x4.dot_i16x8_s`, so the scheme is the
/// wasm kernel's, bit for bit.
///
/// # Safety
/// As [`tile_portable`].
#[cfg(target_arch = "x86_64")]
pub unsafe fn tile_sse2(a: *const i8, b: *const i16, k_pairs: usize) -> Tile {
    use core::arch::x86_64::*;
    // SAFETY: SSE2 is part of x86-64; pair p is inside the panel (the caller's sizes); unaligned.
    let rows = |p: usize| unsafe {
        let pair = _mm_loadu_si128(a.add(p * MR * 2) as *const __m128i);
        // Sign-extends i8 to i16: each byte into the high half of a lane, then an arithmetic shift.
        (_mm_srai_epi16(_mm_unpacklo_epi8(pair, pair), 8), _mm_srai_epi16(_mm_unpackhi_epi8(pair, pair), 8))
    };
    // SAFETY: the caller's.
    unsafe { sse2_sums(rows, b, k_pairs) }
}

/// As [`tile_sse2`], on widened weights.
///
/// # Safety
/// As [`tile_widened_portable`].
#[cfg(target_arch = "x86_64")]
pub unsafe fn tile_widened_sse2(a: *const i16, b: *const i16, k_pairs: usize) -> Tile {
    use core::arch::x86_64::*;
    // SAFETY: SSE2 is part of x86-64; pair p is inside the panel (the caller's sizes); unaligned.
    let rows = |p: usize| unsafe {
        let pair = a.add(p * MR * 2) as *const __m128i;
        (_mm_loadu_si128(pair), _mm_loadu_si128(pair.add(1)))
    };
    // SAFETY: the caller's.
    unsafe { sse2_sums(rows, b, k_pairs) }
}

/// The SSE2 kernels' loop: `rows(p)` gives pair p's rows 0-3 and 4-7 as i16 pairs.
///
/// # Safety
/// `b` holds `k_pairs * NR * 2` values.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn sse2_sums(
    rows: impl Fn(usize) -> (core::arch::x86_64::__m128i, core::arch::x86_64::__m128i),
    b: *const i16,
    k_pairs: usize,
) -> Tile {
    use core::arch::x86_64::*;
    let mut acc = [[0i32; NR]; MR];
    // SAFETY: SSE2 is part of x86-64; every load is inside the panels (the caller's sizes) and unaligned.
    unsafe {
        for half in 0..NR / 4 {
            let zero = _mm_setzero_si128();
            let (mut lo, mut hi) = ([zero; 4], [zero; 4]);
            for p in 0..k_pairs {
                let (rows_lo, rows_hi) = rows(p);
                let b = b.add(p * NR * 2 + half * 8);
                for s in 0..4 {
                    let pair = _mm_set1_epi32((b.add(2 * s) as *const i32).read_unaligned());
                    lo[s] = _mm_add_epi32(lo[s], _mm_madd_epi16(rows_lo, pair));
                    hi[s] = _mm_add_epi32(hi[s], _mm_madd_epi16(rows_hi, pair));
                }
            }
            for s in 0..4 {
                let (l, h): ([i32; 4], [i32; 4]) = (std::mem::transmute(lo[s]), std::mem::transmute(hi[s]));
                for r in 0..4 {
                    acc[r][half * 4 + s] = l[r];
                    acc[r + 4][half * 4 + s] = h[r];
                }
            }
        }
    }
    acc
}

/// The integer sums on wasm SIMD. Per pair of K, one load and two widenings give the 8 rows' pairs as two i16x8;
/// each column's pair is splat across a vector, and `i32x4.dot_i16x8_s` adds the pair's two products for 4 rows.
/// The 8 columns go in two passes of 4, so that the 8 accumulators stay in registers.
///
/// Never inlined: a build in which LLVM inlined it into [`product_tile`] ran the K loop 3% slower in V8.
///
/// # Safety
/// As [`tile_portable`].
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(never)]
pub unsafe fn tile(a: *const i8, b: *const i16, k_pairs: usize) -> Tile {
    use core::arch::wasm32::*;
    // SAFETY: pair p is inside the panel (the caller's sizes); v128 loads need no alignment.
    let rows = |p: usize| {
        let pair = unsafe { v128_load(a.add(p * MR * 2) as *const v128) };
        (i16x8_extend_low_i8x16(pair), i16x8_extend_high_i8x16(pair))
    };
    // SAFETY: the caller's.
    unsafe { tile_simd128(rows, b, k_pairs) }
}

/// As [`tile`], on widened weights: two loads a pair, no widening. V8's code for this loop is bound by its
/// arithmetic instructions (two `pmaddwd` a cycle on the machine measured), and the widening was 3 of its 19 for 64
/// multiply-adds. With every weight widened in memory, inference ran 7-8% faster in Node and Chromium alike; with
/// the weights widened panel by panel as int8_compute does (only where tract keeps a panel for a row of tiles),
/// about 4%.
///
/// # Safety
/// As [`tile_widened_portable`].
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(never)]
pub unsafe fn tile_widened(a: *const i16, b: *const i16, k_pairs: usize) -> Tile {
    use core::arch::wasm32::*;
    // SAFETY: pair p is inside the panel (the caller's sizes); v128 loads need no alignment.
    let rows = |p: usize| unsafe {
        let pair = a.add(p * MR * 2) as *const v128;
        (v128_load(pair), v128_load(pair.add(1)))
    };
    // SAFETY: the caller's.
    unsafe { tile_simd128(rows, b, k_pairs) }
}

/// The wasm kernels' loop: `rows(p)` gives pair p's rows 0-3 and 4-7 as i16 pairs.
///
/// # Safety
/// `b` holds `k_pairs * NR * 2` values.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
unsafe fn tile_simd128(
    rows: impl Fn(usize) -> (core::arch::wasm32::v128, core::arch::wasm32::v128),
    b: *const i16,
    k_pairs: usize,
) -> Tile {
    use core::arch::wasm32::*;
    let mut acc = [[0i32; NR]; MR];
    for half in 0..NR / 4 {
        let zero = i32x4_splat(0);
        let (mut lo, mut hi) = ([zero; 4], [zero; 4]);
        for p in 0..k_pairs {
            let (rows_lo, rows_hi) = rows(p);
            // SAFETY (these two): pair p of the activation panel is inside it (the caller's sizes); one column's pair
            // is 4 bytes; v128 loads need no alignment.
            let b = unsafe { b.add(p * NR * 2 + half * 8) };
            for s in 0..4 {
                let pair = unsafe { v128_load32_splat(b.add(2 * s) as *const u32) };
                lo[s] = i32x4_add(lo[s], i32x4_dot_i16x8(rows_lo, pair));
                hi[s] = i32x4_add(hi[s], i32x4_dot_i16x8(rows_hi, pair));
            }
        }
        for s in 0..4 {
            let (l, h): ([i32; 4], [i32; 4]) = unsafe { (std::mem::transmute(lo[s]), std::mem::transmute(hi[s])) };
            for r in 0..4 {
                acc[r][half * 4 + s] = l[r];
                acc[r + 4][half * 4 + s] = h[r];
            }
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The build's column maxima (SIMD on wasm and x86-64) are the portable ones: NaN skipped (in the first row
    /// too), -0.0 as 0, infinities kept, padding columns zero whatever they hold.
    #[test]
    fn column_maxima_are_the_portable_ones() {
        let (k, cols) = (5, 6);
        let mut columns: Vec<f32> = (0..k * NR).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        columns[0] = f32::NAN;
        columns[NR + 1] = f32::NEG_INFINITY;
        columns[2] = -0.0;
        columns[2 * NR + 2] = -0.0;
        columns[3 * NR + 3] = f32::NAN;
        columns[6] = f32::INFINITY; // a padding column
        columns[7] = f32::NAN;
        let simd = column_max_abs(&columns, k, cols);
        let portable: [f32; NR] = column_max_abs_portable(&columns, k, cols);
        assert_eq!(simd.map(f32::to_bits), portable.map(f32::to_bits), "{simd:?} vs {portable:?}");
        assert_eq!(simd[1], f32::INFINITY);
        assert_eq!(simd[6..], [0.0, 0.0]);
    }

    #[test]
    fn qmax_keeps_the_longest_sum_inside_i32() {
        for k in [1, 2, 3, 64, 576, 2048, 4608, 9216, 100_000] {
            let q = activation_qmax(k) as i64;
            assert!(q >= 1 && q <= i16::MAX as i64);
            assert!(WEIGHT_MAX * q * (k.div_ceil(2) * 2) as i64 <= i32::MAX as i64, "k = {k}");
        }
        assert_eq!(activation_qmax(64), i16::MAX as i32);
        assert!(activation_qmax(576) > 16384, "layer1's 3x3 (K = 576) keeps 15 bits");
        assert!(activation_qmax(9216) >= 1023, "WRN-50-2's longest K keeps 11 bits");
    }

    /// The worst case of every sum (all weights -128, all activations at their column's maximum) does not overflow.
    #[test]
    fn extreme_values_sum_exactly() {
        let (m, k, n) = (3, 9216, 2);
        let w = PackedWeights::pack(&vec![-128; m * k], &vec![1.0; m], m, k);
        let x = QuantizedActivations::quantize(&vec![-1.0; k * n], k, n);
        let qmax = activation_qmax(k) as f32;
        for v in matmul_with(&w, &x, tile_portable) {
            assert_eq!(v, (128.0 * qmax * k as f32) * (1.0 / qmax), "exact integer sum, then the scales");
        }
    }

    #[test]
    fn zero_columns_stay_zero() {
        let w = PackedWeights::pack(&[1, 2, 3, 4], &[1.0, 1.0], 2, 2);
        let x = QuantizedActivations::quantize(&[0.0, 1.0, 0.0, -1.0], 2, 2);
        let c = matmul(&w, &x);
        assert_eq!([c[0], c[2]], [0.0, 0.0], "exact zeros, not NaN");
        for (got, want) in [(c[1], 1.0 - 2.0), (c[3], 3.0 - 4.0)] {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }
}
