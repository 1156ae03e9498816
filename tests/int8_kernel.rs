//! The int8 matrix product (src/int8_matmul.rs) against an exact f64 product, natively (on SSE2, and on AVX-512
//! VNNI where the CPU has it) and in wasm (tools/test runs this file under wasm-bindgen-test in Node and Chromium
//! too), and each SIMD version of its parts against the portable one.

use wrn_wasm::int8_matmul::{
    MR, NR, PackedWeights, QuantizedActivations, TileKernel, WidenedTileKernel, activation_panel_bytes,
    activation_qmax, matmul, matmul_with, pack_weight_panel, pack_weight_panel_rows, product_tile,
    product_tile_widened, quantize_activation_panel, quantize_activation_panel_portable,
    quantize_activation_panel_with_max, tile, tile_portable, tile_widened, tile_widened_portable, weight_panel_bytes,
    widen_weight_panel, widened_weight_panel_len,
};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// Deterministic pseudo-random numbers (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn int8(&mut self) -> i8 {
        (self.next() % 256) as u8 as i8
    }
    fn unit(&mut self) -> f32 {
        (self.next() % 1_000_000) as f32 / 1_000_000.0
    }
}

/// Each activation is rounded by at most half its column's step (max|x_j| / qmax), so
/// |C - C_exact| <= scale_i * sum_k |q_ik| * step_j / 2, plus f32 rounding.
#[test]
fn matches_the_exact_product_within_the_quantisation_bound() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // Shapes with every kind of edge: m, n not multiples of the tile, odd K, WRN-50-2's longest K, the fc's shape.
    for (m, k, n) in [(1, 1, 1), (8, 2, 4), (13, 27, 7), (64, 576, 56), (9, 9216, 5), (1000, 2048, 1)] {
        let q: Vec<i8> = (0..m * k).map(|_| rng.int8()).collect();
        let scales: Vec<f32> = (0..m).map(|_| 0.001 + 0.01 * rng.unit()).collect();
        // Activations as after a ReLU (many exact zeros) and signed ones (the first layer's input).
        let x: Vec<f32> =
            (0..k * n).map(|i| if i % 3 == 0 { (rng.unit() - 0.5) * 4.0 } else { rng.unit().max(0.3) - 0.3 }).collect();
        let w = PackedWeights::pack(&q, &scales, m, k);
        let xq = QuantizedActivations::quantize(&x, k, n);
        let c = matmul(&w, &xq);
        assert!(c == matmul_with(&w, &xq, tile_portable), "({m},{k},{n}): the build's kernel equals the portable one");
        let (mut simd, mut portable) = (vec![0u8; activation_panel_bytes(k)], vec![0u8; activation_panel_bytes(k)]);
        let columns: Vec<f32> = (0..k * NR).map(|i| x[(i / NR) * n + (i % NR).min(n - 1)]).collect();
        quantize_activation_panel(&mut simd, &columns, k, n.min(NR));
        quantize_activation_panel_portable(&mut portable, &columns, k, n.min(NR));
        assert!(simd == portable, "({m},{k},{n}): the build's quantisation equals the portable one");
        let qmax = activation_qmax(k) as f64;
        for col in 0..n {
            let max_abs = (0..k).map(|kk| x[kk * n + col].abs() as f64).fold(0.0, f64::max);
            for row in 0..m {
                let weights = &q[row * k..][..k];
                let exact: f64 =
                    weights.iter().enumerate().map(|(kk, &w)| w as f64 * x[kk * n + col] as f64).sum::<f64>()
                        * scales[row] as f64;
                let abs_w: f64 = weights.iter().map(|&w| (w as f64).abs()).sum();
                let bound = scales[row] as f64 * abs_w * (max_abs / qmax) / 2.0 + exact.abs() * 1e-6 + 1e-12;
                let got = c[row * n + col] as f64;
                assert!((got - exact).abs() <= bound, "({m},{k},{n}) [{row},{col}]: {got} vs {exact}, bound {bound}");
            }
        }
    }
}

/// A column whose maximum is subnormal (qmax / max overflows f32) or zero: the build's quantisation still equals the
/// portable one, and no level exceeds qmax (which the i32 sums rely on).
#[test]
fn tiny_and_zero_columns_quantise_within_qmax() {
    let k = 9216;
    let columns: Vec<f32> = (0..k * NR).map(|i| [1e-40, 0.0, -1e-45, 1.0][i % NR % 4]).collect();
    let (mut simd, mut portable) = (vec![0u8; activation_panel_bytes(k)], vec![0u8; activation_panel_bytes(k)]);
    quantize_activation_panel(&mut simd, &columns, k, NR);
    quantize_activation_panel_portable(&mut portable, &columns, k, NR);
    assert!(simd == portable, "the build's quantisation equals the portable one");
    let qmax = activation_qmax(k);
    for pair in simd[NR * 4..].chunks_exact(2) {
        assert!((i16::from_le_bytes([pair[0], pair[1]]) as i32).abs() <= qmax);
    }
}

/// A partial panel whose padding columns hold stale values far larger than the real ones (as a lazily made panel's
/// reused scratch does), and real columns with NaN and -0: the build's quantisation equals the portable one.
#[test]
fn padding_columns_and_nan_quantise_as_the_portable_version() {
    let (k, cols) = (37, 5);
    let columns: Vec<f32> = (0..k * NR)
        .map(|i| match (i / NR, i % NR) {
            (_, c) if c >= cols => 1e30,
            (row, 1) if row % 5 == 0 => f32::NAN,
            (_, 2) => -0.0,
            (row, c) => (row as f32 - 18.0) * (c as f32 + 1.0) / 7.0,
        })
        .collect();
    let (mut simd, mut portable) = (vec![0u8; activation_panel_bytes(k)], vec![0u8; activation_panel_bytes(k)]);
    quantize_activation_panel(&mut simd, &columns, k, cols);
    quantize_activation_panel_portable(&mut portable, &columns, k, cols);
    assert!(simd == portable, "the build's quantisation equals the portable one");
    let scale = |c: usize| f32::from_le_bytes(portable[c * 4..][..4].try_into().unwrap());
    assert!(scale(0) > 0.0 && scale(1) > 0.0, "NaN is skipped, not propagated into the scale");
    assert_eq!((scale(2), scale(cols)), (0.0, 0.0), "zero and padding columns have no scale");
}

/// With the columns' maxima handed in (a convolution's, found once for all its panels), a panel is the one whose
/// maxima are found from its columns: padding columns with zero maxima, whatever they hold.
#[test]
fn panels_with_their_maxima_handed_in_are_the_same() {
    let (k, cols) = (45, 6);
    let mut rng = Rng(11);
    let columns: Vec<f32> =
        (0..k * NR).map(|i| if i % NR >= cols { 1e30 } else { (rng.unit() - 0.5) * 50.0 }).collect();
    let mut max_abs = [0f32; NR];
    for row in columns.chunks_exact(NR) {
        (0..cols).for_each(|c| max_abs[c] = max_abs[c].max(row[c].abs()));
    }
    let (mut found, mut handed) = (vec![0u8; activation_panel_bytes(k)], vec![0u8; activation_panel_bytes(k)]);
    quantize_activation_panel(&mut found, &columns, k, cols);
    quantize_activation_panel_with_max(&mut handed, &columns, k, max_abs);
    assert!(found == handed, "the same panel");
}

/// The weight panels made from the model's rows (the load's path for int8 compute, an 8 x 8 transposition of 16-bit
/// pairs in wasm and on SSE2) are those made value by value: K below, at and past whole blocks of 16, odd and even;
/// a last panel of fewer rows; rows read at a stride, as from a larger matrix.
#[test]
fn weight_panels_from_rows_are_the_value_by_value_ones() {
    let mut rng = Rng(11);
    for (k, rows) in [(1, MR), (15, MR), (16, MR), (33, MR), (48, MR), (37, 3), (64, 5)] {
        let stride = k + 3;
        let matrix: Vec<i8> = (0..MR * stride).map(|_| rng.int8()).collect();
        let row_slices: Vec<&[i8]> = (0..rows).map(|r| &matrix[r * stride..][..k]).collect();
        let scales: Vec<f32> = (0..rows).map(|r| 0.5 + r as f32).collect();
        let (mut fast, mut reference) = (vec![0xAAu8; weight_panel_bytes(k)], vec![0u8; weight_panel_bytes(k)]);
        pack_weight_panel_rows(&mut fast, k, &scales, &row_slices);
        pack_weight_panel(&mut reference, k, &scales, |r, kk| matrix[r * stride + kk]);
        assert!(fast == reference, "k = {k}, {rows} rows");
    }
}

/// The kernel on weights widened beforehand (the build's and the portable one) gives the tiles of the kernel that
/// widens as it reads: odd and even K, short and WRN-50-2's longest, a full panel and a last one of fewer rows.
#[test]
fn widened_weights_give_the_same_tiles() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for (k, rows) in [(1, MR), (2, 3), (27, MR), (576, MR), (1153, 5), (9216, MR)] {
        let q: Vec<i8> = (0..rows * k).map(|_| rng.int8()).collect();
        let scales: Vec<f32> = (0..rows).map(|_| 0.001 + rng.unit()).collect();
        let mut weights = vec![0u8; weight_panel_bytes(k)];
        pack_weight_panel(&mut weights, k, &scales, |r, kk| q[r * k + kk]);
        let columns: Vec<f32> = (0..k * NR).map(|_| rng.unit() - 0.25).collect();
        let mut activations = vec![0u8; activation_panel_bytes(k)];
        quantize_activation_panel(&mut activations, &columns, k, NR);
        let mut widened = vec![0i16; widened_weight_panel_len(k)];
        widen_weight_panel(&weights, k, &mut widened);
        let (a, b, w) = (weights.as_ptr(), activations.as_ptr(), widened.as_ptr());
        // SAFETY: whole panels of the same K, and `widened` holds `weights`' values.
        let reference = unsafe { product_tile(a, b, k, tile_portable) };
        assert!(reference == unsafe { product_tile(a, b, k, tile) }, "k = {k}: the build's kernel");
        assert!(reference == unsafe { product_tile_widened(a, w, b, k, tile_widened_portable) }, "k = {k}: portable");
        assert!(reference == unsafe { product_tile_widened(a, w, b, k, tile_widened) }, "k = {k}: the build's");
        // Natively, each x86-64 kernel this CPU runs, whichever the build's dispatch picks.
        #[cfg(target_arch = "x86_64")]
        for (name, kernel, widened_kernel) in x86_kernels() {
            assert!(reference == unsafe { product_tile(a, b, k, kernel) }, "k = {k}: {name}");
            assert!(reference == unsafe { product_tile_widened(a, w, b, k, widened_kernel) }, "k = {k}: {name}");
        }
    }
}

/// SSE2's kernels, and AVX-512 VNNI's where the CPU has them (the CLI's int8 compute there).
#[cfg(target_arch = "x86_64")]
fn x86_kernels() -> Vec<(&'static str, TileKernel, WidenedTileKernel)> {
    use wrn_wasm::int8_matmul::{tile_sse2, tile_widened_sse2};
    let mut kernels: Vec<(&str, TileKernel, WidenedTileKernel)> = vec![("SSE2", tile_sse2, tile_widened_sse2)];
    if wrn_wasm::int8_vnni::available() {
        kernels.push(("AVX-512 VNNI", wrn_wasm::int8_vnni::tile, wrn_wasm::int8_vnni::tile_widened));
    } else {
        eprintln!("this CPU has no AVX-512 VNNI: its kernel is not checked here");
    }
    kernels
}
