//! Winograd's F(2x2, 3x3) for int8 compute's 3x3 convolutions of stride 1 and padding 1: each 2x2 block of outputs
//! (a tile) comes from the 4x4 block of inputs around it in 16 multiplies per pair of channels instead of 36. The
//! convolution becomes 16 matrix products, one per position of a transformed tile, each `cout x cin` by
//! `cin x tiles`, on int8_matmul's kernel: 2.25x fewer multiply-adds than im2col's `cout x 9 cin` by
//! `9 cin x pixels`.
//!
//! The weights lose nothing: with G's halves doubled, `4 U = (2G) g (2G)^T` is an integer for integer g (at most
//! 9 x 128 in magnitude), so the model's int8 weights are transformed exactly and held as i16, as the kernel reads
//! its widened weights ([`tile_widened`]). The activations are transformed in f32 (`B^T d B`), then each column (one
//! position of one tile, over the input channels) is quantised on its own, to as many levels as the sum over `cin`
//! allows in i32 given the largest transformed weight. The sums, times both scales, are transformed back in f32
//! (`A^T M A`), and the bias added.

use tract_linalg::multithread::par_chunks_mut;
use tract_onnx::prelude::TractResult;
use tract_onnx::tract_core::internal::ensure;

use crate::int8_matmul::{
    MR, NR, activation_panel_bytes, activation_qmax_for, pairs, quantize_activation_panel_to, tile_widened,
};

/// Positions of a transformed tile (4 x 4).
const POSITIONS: usize = 16;

/// Bytes between the blocks of consecutive positions, past their values. Blocks of a multiple of 4 KB (as
/// `cin x NR` f32 and `pairs(cin) x MR x 2` i16 are for WRN-50-2's channel counts) would put the 16 streams a
/// transform writes into the same few sets of the L1 cache: natively, that made the transforms 2-4x slower.
const BLOCK_GAP: usize = 64;

/// Values of `T` from one position's block to the next: `len`, plus [`BLOCK_GAP`].
fn block_stride<T>(len: usize) -> usize {
    len + BLOCK_GAP / std::mem::size_of::<T>()
}

/// A 3x3 convolution's weights, transformed.
pub struct WinogradWeights {
    cout: usize,
    cin: usize,
    /// Per panel of MR output channels, per position, `pairs(cin) x MR x 2` of 4U ([`tile_widened`]'s weights), then a
    /// gap ([`block_stride`]).
    values: Vec<i16>,
    /// Per output channel, its int8 scale / 4 (U is 4U / 4).
    row_scales: Vec<f32>,
    /// The activations' largest level: `cin` products of a transformed weight and a level add up inside an i32.
    qmax: i32,
}

impl WinogradWeights {
    /// From the model's int8 weights, `cout x cin x 3 x 3` (OIHW), with one scale per output channel.
    pub fn new(q: &[i8], scales: &[f32], cout: usize, cin: usize) -> WinogradWeights {
        assert!(q.len() == cout * cin * 9 && scales.len() == cout, "cout x cin x 3 x 3 weights, a scale per cout");
        let stride = block_stride::<i16>(pairs(cin) * MR * 2);
        let panel_len = POSITIONS * stride;
        // Each panel is made in a scratch that stays in cache, then copied out: one pass over the values' fresh
        // memory (the first touch of each page is what costs, in wasm too), not a zero fill and then scattered writes.
        // transform_panel rewrites every value but the gaps (missing rows and channels as zeros), and the gaps stay
        // zero from the scratch's own.
        let mut values = Vec::with_capacity(cout.div_ceil(MR) * panel_len);
        let mut panel = vec![0i16; panel_len];
        let mut largest = 1;
        for rows in q.chunks(MR * cin * 9) {
            largest = largest.max(transform_panel(rows, cin, stride, &mut panel));
            values.extend_from_slice(&panel);
        }
        let qmax = activation_qmax_for(cin, largest as i64);
        let row_scales = scales.iter().map(|s| s / 4.0).collect();
        WinogradWeights { cout, cin, values, row_scales, qmax }
    }

    pub fn output_channels(&self) -> usize {
        self.cout
    }

    pub fn input_channels(&self) -> usize {
        self.cin
    }

    /// The convolution of `input` (`cin x h x w`) with padding 1, plus `bias` (one per output channel), into `out`
    /// (`cout x h x w`). On tract's executor's threads, by panels of tiles, then by panels of output channels: the
    /// same values on any number of threads.
    pub fn conv(&self, input: &[f32], (h, w): (usize, usize), bias: &[f32], out: &mut [f32]) -> TractResult<()> {
        let (cin, cout) = (self.cin, self.cout);
        ensure!(input.len() == cin * h * w && out.len() == cout * h * w, "{cin} x {h} x {w} in");
        ensure!(bias.len() == cout && cout % MR == 0, "a bias per output channel, panels of {MR}");
        let tiles = Tiles::new(h, w);
        let activations = self.transformed_activations(input, &tiles)?;
        let macs = cout * cin * POSITIONS * tiles.count;
        par_chunks_mut(out, MR * h * w, macs, |first_panel, out| {
            for (i, out) in out.chunks_exact_mut(MR * h * w).enumerate() {
                self.output_panel(first_panel + i, &activations, &tiles, bias, out);
            }
            Ok(())
        })
    }

    /// `B^T d B` of every tile and input channel, quantised: per panel of NR tiles, per position, one activation
    /// panel (its NR column scales, then `pairs(cin) x NR x 2` levels). u32s, so that the levels are aligned.
    fn transformed_activations(&self, input: &[f32], tiles: &Tiles) -> TractResult<Vec<u32>> {
        let cin = self.cin;
        let panel_bytes = activation_panel_bytes(cin);
        let mut levels = vec![0u32; tiles.count.div_ceil(NR) * POSITIONS * panel_bytes / 4];
        let plane = tiles.h * tiles.w;
        par_chunks_mut(as_bytes_mut(&mut levels), POSITIONS * panel_bytes, input.len() * 4, |first, bytes| {
            // Per position, cin x NR (K-major, as the quantiser reads a panel): one panel of tiles at a time, so that
            // it stays in cache until quantised. A last panel's missing tiles keep the previous panel's values: the
            // quantiser reads columns from `cols` on as padding, whatever they hold.
            let stride = block_stride::<f32>(cin * NR);
            let mut transformed = vec![0f32; POSITIONS * stride];
            for (i, out) in bytes.chunks_exact_mut(POSITIONS * panel_bytes).enumerate() {
                let first_tile = (first + i) * NR;
                let cols = (tiles.count - first_tile).min(NR);
                for c in 0..cin {
                    let x = &input[c * plane..][..plane];
                    for s in 0..cols {
                        let v = input_transform(&tiles.patch(x, first_tile + s));
                        for (position, v) in v.into_iter().enumerate() {
                            transformed[position * stride + c * NR + s] = v;
                        }
                    }
                }
                for (position, out) in out.chunks_exact_mut(panel_bytes).enumerate() {
                    let columns = &transformed[position * stride..][..cin * NR];
                    quantize_activation_panel_to(out, columns, cin, cols, self.qmax, None);
                }
            }
            Ok(())
        })?;
        Ok(levels)
    }

    /// Output channels `panel * MR..` (`out`: MR x h x w), panel of tiles by panel of tiles: the 16 products of that
    /// panel, times the column scales, then the output transform.
    fn output_panel(&self, panel: usize, activations: &[u32], tiles: &Tiles, bias: &[f32], out: &mut [f32]) {
        let k_pairs = pairs(self.cin);
        let weights_len = k_pairs * MR * 2;
        let stride = block_stride::<i16>(weights_len);
        let panel_len = activation_panel_bytes(self.cin) / 4;
        let weights = &self.values[panel * POSITIONS * stride..][..POSITIONS * stride];
        let channels = panel * MR..(panel + 1) * MR;
        let (scales, bias) = (&self.row_scales[channels.clone()], &bias[channels]);
        let mut sums = [[[0f32; NR]; MR]; POSITIONS];
        for p in 0..tiles.count.div_ceil(NR) {
            for (position, sums) in sums.iter_mut().enumerate() {
                let a = weights[position * stride..][..weights_len].as_ptr();
                let b = &activations[(p * POSITIONS + position) * panel_len..][..panel_len];
                let col_scales: [f32; NR] = std::array::from_fn(|s| f32::from_bits(u32::from_le(b[s])));
                // SAFETY: `a` holds k_pairs pairs of MR i16 and `b`, after its NR scales, k_pairs pairs of NR i16
                // (whole panels for cin).
                let tile = unsafe { tile_widened(a, b[NR..].as_ptr() as *const i16, k_pairs) };
                for (sums, row) in sums.iter_mut().zip(tile) {
                    for ((sum, v), scale) in sums.iter_mut().zip(row).zip(col_scales) {
                        *sum = v as f32 * scale;
                    }
                }
            }
            let cols = (tiles.count - p * NR).min(NR);
            output_transform(&sums, tiles, p * NR, cols, scales, bias, out);
        }
    }
}

/// Writes the transformed weights of one panel of output channels (`rows`: up to MR of `cin x 3 x 3`), pair of
/// input channels by pair, and returns the largest magnitude among them. Each pair is transformed on [`Lanes`] laid
/// out as the kernel's weights are (lane `r * 2 + c % 2`), so that each position's result is its block's values as
/// they are, and the arithmetic runs on SIMD vectors. A function of its own, called once per panel: in wasm, V8 then
/// recompiles it optimised after the first few calls, which it cannot do for a loop inside a function called once (a
/// load's).
#[inline(never)]
fn transform_panel(rows: &[i8], cin: usize, stride: usize, panel: &mut [i16]) -> i32 {
    let mut largest = Lanes::default();
    for pair in 0..pairs(cin) {
        let mut g = [Lanes::default(); 9];
        for (r, row) in rows.chunks_exact(cin * 9).enumerate() {
            for c in (2 * pair..cin).take(2) {
                for (tap, lanes) in g.iter_mut().enumerate() {
                    lanes.0[r * 2 + c % 2] = row[c * 9 + tap] as i16;
                }
            }
        }
        for (position, u) in transformed_weight(&g).into_iter().enumerate() {
            largest = largest.max_abs(u);
            panel[position * stride + pair * MR * 2..][..MR * 2].copy_from_slice(&u.0);
        }
    }
    largest.0.into_iter().max().unwrap_or(0) as i32
}

/// One value per row and input channel of a pair, in the kernel's order: lane `r * 2 + c % 2`. Transformed values
/// fit i16 (at most 9 x 128 in magnitude), and so do the transform's partial sums.
#[derive(Clone, Copy, Default)]
struct Lanes([i16; MR * 2]);

impl Lanes {
    fn zip(self, other: Lanes, f: impl Fn(i16, i16) -> i16) -> Lanes {
        Lanes(std::array::from_fn(|i| f(self.0[i], other.0[i])))
    }

    /// Lane by lane, the larger of `self` and `|u|`.
    fn max_abs(self, u: Lanes) -> Lanes {
        self.zip(u, |m, v| m.max(v.abs()))
    }
}

impl std::ops::Add for Lanes {
    type Output = Lanes;
    fn add(self, other: Lanes) -> Lanes {
        self.zip(other, |a, b| a + b)
    }
}

impl std::ops::Sub for Lanes {
    type Output = Lanes;
    fn sub(self, other: Lanes) -> Lanes {
        self.zip(other, |a, b| a - b)
    }
}

/// The 2x2 tiles covering an `h x w` image (the last row or column of tiles may stick out by one).
struct Tiles {
    h: usize,
    w: usize,
    across: usize,
    count: usize,
}

impl Tiles {
    fn new(h: usize, w: usize) -> Tiles {
        let across = w.div_ceil(2);
        Tiles { h, w, across, count: h.div_ceil(2) * across }
    }

    /// The 4x4 inputs of tile `t` in `plane` (`h x w`): rows 2y - 1 to 2y + 2, columns likewise, zeros outside.
    fn patch(&self, plane: &[f32], t: usize) -> [[f32; 4]; 4] {
        let (y, x) = (2 * (t / self.across), 2 * (t % self.across));
        if y >= 1 && x >= 1 && y + 3 <= self.h && x + 3 <= self.w {
            // Inside the image (most tiles): four rows of four.
            let at = (y - 1) * self.w + x - 1;
            return std::array::from_fn(|i| plane[at + i * self.w..][..4].try_into().unwrap());
        }
        std::array::from_fn(|i| {
            std::array::from_fn(|j| match ((y + i).checked_sub(1), (x + j).checked_sub(1)) {
                (Some(yy), Some(xx)) if yy < self.h && xx < self.w => plane[yy * self.w + xx],
                _ => 0.0,
            })
        })
    }
}

/// `4 U = (2G) g (2G)^T` for a 3x3 `g` (row-major), row-major: 2G's rows are (2, 0, 0), (1, 1, 1), (1, -1, 1),
/// (0, 0, 2). On numbers or on [`Lanes`] of them.
fn transformed_weight<T>(g: &[T; 9]) -> [T; POSITIONS]
where
    T: Copy + std::ops::Add<Output = T> + std::ops::Sub<Output = T>,
{
    let apply = |a: T, b: T, c: T| [a + a, a + b + c, a - b + c, c + c];
    // (2G) g: 4 rows of 3, column by column.
    let columns: [[T; 4]; 3] = std::array::from_fn(|j| apply(g[j], g[3 + j], g[6 + j]));
    std::array::from_fn(|p| {
        let i = p / 4;
        apply(columns[0][i], columns[1][i], columns[2][i])[p % 4]
    })
}

/// `B^T d B`, row-major: B^T's rows are (1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1).
fn input_transform(d: &[[f32; 4]; 4]) -> [f32; POSITIONS] {
    let apply = |v: [f32; 4]| [v[0] - v[2], v[1] + v[2], v[2] - v[1], v[1] - v[3]];
    let columns: [[f32; 4]; 4] = std::array::from_fn(|j| apply([d[0][j], d[1][j], d[2][j], d[3][j]]));
    let mut v = [0.0; POSITIONS];
    for i in 0..4 {
        let row = apply([columns[0][i], columns[1][i], columns[2][i], columns[3][i]]);
        v[i * 4..][..4].copy_from_slice(&row);
    }
    v
}

/// For each of MR output channels, `A^T m A` of tiles `first..first + cols` (A^T's rows are (1, 1, 1, 0),
/// (0, 1, -1, -1)), times the channel's scale, plus its bias, into `out` (`MR x h x w`).
fn output_transform(
    sums: &[[[f32; NR]; MR]; POSITIONS],
    tiles: &Tiles,
    first: usize,
    cols: usize,
    scales: &[f32],
    bias: &[f32],
    out: &mut [f32],
) {
    let (h, w) = (tiles.h, tiles.w);
    for r in 0..MR {
        let out = &mut out[r * h * w..][..h * w];
        for s in 0..cols {
            let at = |i: usize, j: usize| sums[i * 4 + j][r][s];
            // A^T m: 2 rows of 4.
            let rows: [[f32; 4]; 2] = [
                std::array::from_fn(|j| at(0, j) + at(1, j) + at(2, j)),
                std::array::from_fn(|j| at(1, j) - at(2, j) - at(3, j)),
            ];
            let t = first + s;
            let (y, x) = (2 * (t / tiles.across), 2 * (t % tiles.across));
            for (i, row) in rows.iter().enumerate() {
                let values = [row[0] + row[1] + row[2], row[1] - row[2] - row[3]];
                for (j, v) in values.into_iter().enumerate() {
                    if y + i < h && x + j < w {
                        out[(y + i) * w + x + j] = v * scales[r] + bias[r];
                    }
                }
            }
        }
    }
}

fn as_bytes_mut(values: &mut [u32]) -> &mut [u8] {
    // SAFETY: any byte of a u32 is a valid u8, and u8 needs no alignment.
    unsafe { std::slice::from_raw_parts_mut(values.as_mut_ptr() as *mut u8, values.len() * 4) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain convolution, in f64: the reference.
    fn direct(
        q: &[i8],
        scales: &[f32],
        bias: &[f32],
        input: &[f32],
        (cout, cin, h, w): (usize, usize, usize, usize),
    ) -> Vec<f64> {
        let mut out = vec![0f64; cout * h * w];
        for o in 0..cout {
            for y in 0..h {
                for x in 0..w {
                    let mut sum = bias[o] as f64;
                    for c in 0..cin {
                        for (i, j) in (0..3).flat_map(|i| (0..3).map(move |j| (i, j))) {
                            let (yy, xx) = ((y + i).wrapping_sub(1), (x + j).wrapping_sub(1));
                            if yy < h && xx < w {
                                let weight = q[(o * cin + c) * 9 + i * 3 + j] as f64 * scales[o] as f64;
                                sum += weight * input[(c * h + yy) * w + xx] as f64;
                            }
                        }
                    }
                    out[(o * h + y) * w + x] = sum;
                }
            }
        }
        out
    }

    /// Deterministic values spread over `[-1, 1)`: value `i` of a sequence numbered `seed`.
    fn spread(i: usize, seed: usize) -> f32 {
        ((i * 7919 + seed * 104_729) % 2000) as f32 / 1000.0 - 1.0
    }

    /// Deterministic int8 weights, all 256 values.
    fn int8(i: usize, seed: usize) -> i8 {
        ((i * 7919 + seed * 31) % 256) as u8 as i8
    }

    /// The exact transform of the weights: 4U against G g G^T in f64.
    #[test]
    fn weights_transform_exactly() {
        let g = [127, -128, 3, 0, 77, -1, -128, 127, 64];
        let gm = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];
        let u = transformed_weight(&g);
        for i in 0..4 {
            for j in 0..4 {
                let mut v = 0f64;
                for a in 0..3 {
                    for b in 0..3 {
                        v += gm[i][a] * g[a * 3 + b] as f64 * gm[j][b];
                    }
                }
                assert_eq!(u[i * 4 + j] as f64, 4.0 * v, "position {i}, {j}");
            }
        }
    }

    /// Each panel holds each weight's exact transform where the kernel reads it (lane `r * 2 + c % 2` of pair
    /// `c / 2`, position by position), zeros for the missing channel of an odd cin and for the missing rows of a
    /// last panel, and qmax follows the largest.
    #[test]
    fn panels_hold_each_weights_transform() {
        let (cout, cin) = (13, 5);
        let mut q: Vec<i8> = (0..cout * cin * 9).map(|i| int8(i, 3)).collect();
        q[9..18].fill(-128);
        let weights = WinogradWeights::new(&q, &vec![1.0; cout], cout, cin);
        let stride = block_stride::<i16>(pairs(cin) * MR * 2);
        let at = |o: usize, c: usize, position: usize| {
            weights.values[(o / MR) * POSITIONS * stride + position * stride + (c / 2) * MR * 2 + (o % MR) * 2 + c % 2]
        };
        let mut largest = 0;
        for o in 0..cout {
            for c in 0..cin {
                let g: [i32; 9] = std::array::from_fn(|i| q[(o * cin + c) * 9 + i] as i32);
                for (position, u) in transformed_weight(&g).into_iter().enumerate() {
                    assert_eq!(at(o, c, position) as i32, u, "output {o}, input {c}, position {position}");
                    largest = largest.max(u.abs());
                }
            }
            assert!((0..POSITIONS).all(|position| at(o, cin, position) == 0), "cin's padding");
        }
        for o in cout..cout.next_multiple_of(MR) {
            assert!((0..=cin).all(|c| (0..POSITIONS).all(|position| at(o, c, position) == 0)), "the last panel's rows");
        }
        assert_eq!(largest, 1152, "all -128: 9 x 128");
        assert_eq!(weights.qmax, activation_qmax_for(cin, largest as i64));
    }

    /// Against the plain convolution on odd sizes (a last row and column of tiles half outside), odd cin, negative
    /// inputs and extreme weights: within the activations' rounding (levels of about 1/qmax of each column's max).
    #[test]
    fn convolves_as_the_plain_convolution() {
        for (cout, cin, h, w) in [(16, 5, 6, 7), (8, 64, 9, 4), (8, 3, 1, 1)] {
            let mut q: Vec<i8> = (0..cout * cin * 9).map(|i| int8(i, cin)).collect();
            q[0] = -128;
            q[1] = 127;
            let scales: Vec<f32> = (0..cout).map(|o| 0.01 + o as f32 * 1e-3).collect();
            let bias: Vec<f32> = (0..cout).map(|o| spread(o, 1)).collect();
            let input: Vec<f32> = (0..cin * h * w).map(|i| spread(i, cin) * 3.0).collect();
            let weights = WinogradWeights::new(&q, &scales, cout, cin);
            let mut out = vec![f32::NAN; cout * h * w];
            weights.conv(&input, (h, w), &bias, &mut out).unwrap();
            let reference = direct(&q, &scales, &bias, &input, (cout, cin, h, w));
            let spread = reference.iter().fold(0f64, |m, v| m.max(v.abs()));
            let diff = out.iter().zip(&reference).fold(0f64, |m, (&a, &b)| m.max((a as f64 - b).abs()));
            assert!(diff <= 2e-4 * spread, "{cout}x{cin}x{h}x{w}: differs by {diff} of {spread}");
        }
    }

    /// On 2 threads (panels of tiles, then of output channels, split between them), the same values bit for bit.
    #[cfg(feature = "threads")]
    #[test]
    fn threads_give_the_same_values() {
        use tract_linalg::multithread::{Executor, multithread_tract_scope};
        // Large enough for tract to split the work (at least 32768 values).
        let (cout, cin, h, w) = (32, 64, 16, 16);
        let q: Vec<i8> = (0..cout * cin * 9).map(|i| int8(i, 2)).collect();
        let input: Vec<f32> = (0..cin * h * w).map(|i| spread(i, 3)).collect();
        let bias: Vec<f32> = (0..cout).map(|o| o as f32).collect();
        let weights = WinogradWeights::new(&q, &vec![0.01; cout], cout, cin);
        let conv = || {
            let mut out = vec![f32::NAN; cout * h * w];
            weights.conv(&input, (h, w), &bias, &mut out).unwrap();
            out
        };
        let one = conv();
        let two = multithread_tract_scope(Executor::multithread(2), conv);
        assert!(one.iter().zip(&two).all(|(a, b)| a.to_bits() == b.to_bits()), "2 threads differ from 1");
    }

    /// The levels fit: the largest transformed weight times qmax, summed over cin, stays inside an i32.
    #[test]
    fn sums_stay_inside_i32() {
        let cin = 1024;
        let q = vec![-128i8; 8 * cin * 9];
        let weights = WinogradWeights::new(&q, &[1.0; 8], 8, cin);
        assert!(9 * 128 * weights.qmax as i64 * cin as i64 <= i32::MAX as i64);
        assert!(weights.qmax >= 1800, "about 11 bits at cin = 1024: {}", weights.qmax);
    }
}
