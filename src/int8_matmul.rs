//! Integer matrix products for int8 compute: C = W X with W int8 (one scale per row, as the model stores its
//! weights) and X f32 activations quantised per column.
//!
//! wasm's SIMD has no int8 dot product, but `i32x4.dot_i16x8_s` does 8 multiply-adds in one instruction (f32 needs a
//! mul and an add for 4): operands are widened to i16 and taken in pairs along K. Since the activations are i16
//! anyway, each column gets as many bits as the sum over K allows in i32 (`activation_qmax`): 15 bits for short K,
//! 11 at WRN-50-2's longest (K = 9216), far finer than the 8 bits of int8 activations. The weights lose nothing:
//! they are the model's own int8 values.
//!
//! Layouts (padding is zero, so it adds nothing to a sum):
//! - weights: panels of [`MR`] rows; per pair of K, the panel holds `[MR][2]` i8, row by row;
//! - activations: panels of [`NR`] columns; per pair of K, `[NR][2]` i16, column by column.

/// Rows of a weight panel, and of the tile one kernel call computes.
pub const MR: usize = 8;
/// Columns of an activation panel, and of the tile.
pub const NR: usize = 4;

/// The largest weight magnitude (int8 symmetric quantisation; ONNX's -128 is handled, see `activation_qmax`).
const WEIGHT_MAX: i64 = 128;

/// The largest activation magnitude for a sum over `k` products: `WEIGHT_MAX * qmax * k` must fit in an i32 (the
/// accumulators), and qmax in an i16.
pub fn activation_qmax(k: usize) -> i32 {
    let k_padded = k.div_ceil(2) * 2;
    let fits = i32::MAX as i64 / (WEIGHT_MAX * k_padded.max(1) as i64);
    fits.min(i16::MAX as i64) as i32
}

/// int8 weights packed in pairs along K, panel by panel, with their row scales.
pub struct PackedWeights {
    q: Vec<i8>,
    scales: Vec<f32>,
    m: usize,
    k_pairs: usize,
}

impl PackedWeights {
    /// `q` is m x k, row-major; `scales` holds one value per row.
    pub fn pack(q: &[i8], scales: &[f32], m: usize, k: usize) -> PackedWeights {
        assert_eq!(q.len(), m * k, "weights are m x k");
        assert_eq!(scales.len(), m, "one scale per row");
        let k_pairs = k.div_ceil(2);
        let panels = m.div_ceil(MR);
        let mut packed = vec![0i8; panels * k_pairs * MR * 2];
        for row in 0..m {
            let panel = &mut packed[(row / MR) * k_pairs * MR * 2..][..k_pairs * MR * 2];
            for (kk, &v) in q[row * k..][..k].iter().enumerate() {
                panel[(kk / 2) * MR * 2 + (row % MR) * 2 + kk % 2] = v;
            }
        }
        PackedWeights { q: packed, scales: scales.to_vec(), m, k_pairs }
    }

    fn panel(&self, i: usize) -> &[i8] {
        &self.q[i * self.k_pairs * MR * 2..][..self.k_pairs * MR * 2]
    }
}

/// f32 activations quantised column by column (symmetric, round half to even), packed in pairs along K.
pub struct QuantizedActivations {
    q: Vec<i16>,
    scales: Vec<f32>,
    n: usize,
    k_pairs: usize,
}

impl QuantizedActivations {
    /// `x` is k x n, row-major.
    pub fn quantize(x: &[f32], k: usize, n: usize) -> QuantizedActivations {
        assert_eq!(x.len(), k * n, "activations are k x n");
        let qmax = activation_qmax(k) as f32;
        let k_pairs = k.div_ceil(2);
        let mut max_abs = vec![0f32; n];
        for row in x.chunks_exact(n) {
            for (m, v) in max_abs.iter_mut().zip(row) {
                *m = m.max(v.abs());
            }
        }
        // A column of zeros gets scale 0 (and stays zero) rather than a division by zero.
        let inverse: Vec<f32> = max_abs.iter().map(|&m| if m > 0.0 { qmax / m } else { 0.0 }).collect();
        let scales = max_abs.iter().map(|&m| m / qmax).collect();
        let mut q = vec![0i16; n.div_ceil(NR) * k_pairs * NR * 2];
        for (kk, row) in x.chunks_exact(n).enumerate() {
            for (col, (&v, &inv)) in row.iter().zip(&inverse).enumerate() {
                let level = (v * inv).round_ties_even().clamp(-qmax, qmax) as i16;
                q[(col / NR) * k_pairs * NR * 2 + (kk / 2) * NR * 2 + (col % NR) * 2 + kk % 2] = level;
            }
        }
        QuantizedActivations { q, scales, n, k_pairs }
    }

    fn panel(&self, j: usize) -> &[i16] {
        &self.q[j * self.k_pairs * NR * 2..][..self.k_pairs * NR * 2]
    }
}

/// One tile's sums over K: `acc[row][col]`.
pub type Tile = [[i32; NR]; MR];

/// C = W X, m x n row-major, on this build's fastest kernel.
pub fn matmul(w: &PackedWeights, x: &QuantizedActivations) -> Vec<f32> {
    matmul_with(w, x, tile)
}

/// C = W X on the portable kernel: the reference the SIMD kernel must equal bit for bit.
pub fn matmul_portable(w: &PackedWeights, x: &QuantizedActivations) -> Vec<f32> {
    matmul_with(w, x, tile_portable)
}

fn matmul_with(w: &PackedWeights, x: &QuantizedActivations, kernel: fn(&[i8], &[i16], usize) -> Tile) -> Vec<f32> {
    assert_eq!(w.k_pairs, x.k_pairs, "W and X share K");
    let (m, n) = (w.m, x.n);
    let mut c = vec![0f32; m * n];
    for j in 0..n.div_ceil(NR) {
        for i in 0..m.div_ceil(MR) {
            let acc = kernel(w.panel(i), x.panel(j), w.k_pairs);
            for (r, sums) in acc.iter().enumerate().take(m - i * MR) {
                let row = i * MR + r;
                for (s, &sum) in sums.iter().enumerate().take(n - j * NR) {
                    let col = j * NR + s;
                    c[row * n + col] = sum as f32 * (w.scales[row] * x.scales[col]);
                }
            }
        }
    }
    c
}

/// The tile kernel in plain Rust.
pub fn tile_portable(a: &[i8], b: &[i16], k_pairs: usize) -> Tile {
    let mut acc = [[0i32; NR]; MR];
    for (a, b) in a.chunks_exact(MR * 2).zip(b.chunks_exact(NR * 2)).take(k_pairs) {
        for (r, acc_row) in acc.iter_mut().enumerate() {
            for (s, sum) in acc_row.iter_mut().enumerate() {
                *sum += a[2 * r] as i32 * b[2 * s] as i32 + a[2 * r + 1] as i32 * b[2 * s + 1] as i32;
            }
        }
    }
    acc
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
use tile_portable as tile;

/// The tile kernel on wasm SIMD: per pair of K, one load and two widenings give the 8 rows' pairs as two i16x8;
/// each column's pair is splat across a vector, and `i32x4.dot_i16x8_s` adds the pair's two products for 4 rows.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub fn tile(a: &[i8], b: &[i16], k_pairs: usize) -> Tile {
    use core::arch::wasm32::*;
    assert!(a.len() >= k_pairs * MR * 2 && b.len() >= k_pairs * NR * 2, "panels hold k_pairs pairs");
    let zero = i32x4_splat(0);
    let (mut lo, mut hi) = ([zero; NR], [zero; NR]);
    for p in 0..k_pairs {
        // SAFETY: both reads are inside the panels (asserted above); v128 loads need no alignment.
        let (rows, b) = unsafe { (v128_load(a.as_ptr().add(p * MR * 2) as *const v128), b.as_ptr().add(p * NR * 2)) };
        let (rows_lo, rows_hi) = (i16x8_extend_low_i8x16(rows), i16x8_extend_high_i8x16(rows));
        for s in 0..NR {
            // SAFETY: as above; one column's pair is 4 bytes.
            let pair = unsafe { v128_load32_splat(b.add(2 * s) as *const u32) };
            lo[s] = i32x4_add(lo[s], i32x4_dot_i16x8(rows_lo, pair));
            hi[s] = i32x4_add(hi[s], i32x4_dot_i16x8(rows_hi, pair));
        }
    }
    let mut acc = [[0i32; NR]; MR];
    for s in 0..NR {
        for r in 0..4 {
            acc[r][s] = lane(lo[s], r);
            acc[r + 4][s] = lane(hi[s], r);
        }
    }
    acc
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn lane(v: core::arch::wasm32::v128, r: usize) -> i32 {
    use core::arch::wasm32::i32x4_extract_lane;
    match r {
        0 => i32x4_extract_lane::<0>(v),
        1 => i32x4_extract_lane::<1>(v),
        2 => i32x4_extract_lane::<2>(v),
        _ => i32x4_extract_lane::<3>(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for v in matmul_portable(&w, &x) {
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
