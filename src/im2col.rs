//! Where each value of a matmul's f32 activations lies in the tensor they come from, and panels of them gathered.
//!
//! tract's lazy im2col addresses a convolution's patches as value (k, n) at element `k_offsets[k] + n_offsets[n]` of
//! its (padded) input: k runs over the channels and the kernel's taps, n over the output pixels. A plain matrix of a
//! tensor (what tract's packer reads for a 1x1 convolution) is the same with `k * k_stride` and `n * n_stride`.
//! int8_compute quantises its activations from panels gathered here, straight from the tensor, instead of from the
//! f32 panels tract's im2col or packer would first write out.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::format_err;
use tract_onnx::tract_core::ops::cnn::{PaddingSpec, PoolSpec};

/// The offsets of a K x N matrix of values inside a tensor, in elements.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Im2col {
    k_offsets: Vec<usize>,
    n_offsets: Vec<usize>,
    /// One past the last element read: the tensor must hold at least this many.
    extent: usize,
    /// A convolution's patches: row k is channel k / taps.len() at its tap k % taps.len().
    patches: Option<Patches>,
}

/// How a convolution's K splits: `channels` channels `c_stride` elements apart, each read at the kernel's `taps`.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Patches {
    channels: usize,
    c_stride: usize,
    taps: Vec<usize>,
}

impl Im2col {
    pub fn new(k_offsets: Vec<usize>, n_offsets: Vec<usize>) -> Im2col {
        let last = |offsets: &[usize]| offsets.iter().copied().max();
        let extent = match (last(&k_offsets), last(&n_offsets)) {
            (Some(k), Some(n)) => k + n + 1,
            _ => 0,
        };
        Im2col { k_offsets, n_offsets, extent, patches: None }
    }

    /// A `k` x `n` matrix, its rows `k_stride` and its columns `n_stride` elements apart.
    pub fn matrix(k: usize, k_stride: usize, n: usize, n_stride: usize) -> Im2col {
        Im2col::new((0..k).map(|i| i * k_stride).collect(), (0..n).map(|j| j * n_stride).collect())
    }

    /// The patches of a convolution with `pool_spec`'s kernel, strides and dilations over `input_shape` (already
    /// padded, as tract pads before its lazy im2col), `channels` input channels, as tract's lazy im2col reads them:
    /// k is channel-major, then the kernel's taps in row-major order; n the output pixels in row-major order.
    pub fn conv(pool_spec: &PoolSpec, input_shape: &[usize], channels: usize) -> TractResult<Im2col> {
        let valid = PoolSpec { padding: PaddingSpec::Valid, ..pool_spec.clone() };
        let dims: TVec<TDim> = input_shape.iter().map(|&d| d.to_dim()).collect();
        let geometry = valid.compute_geo(&dims)?.to_concrete(input_shape)?.into_owned();
        let c_stride = *geometry.input_shape.c_stride();
        let unsigned = |offsets: Vec<isize>| -> TractResult<Vec<usize>> {
            offsets
                .into_iter()
                .map(|o| usize::try_from(o).map_err(|_| format_err!("a patch before its tensor")))
                .collect()
        };
        let taps = unsigned(geometry.patch.standard_layout_data_field.clone())?;
        let k_offsets = (0..channels).flat_map(|c| taps.iter().map(move |t| c * c_stride + t)).collect();
        let patches = Some(Patches { channels, c_stride, taps });
        Ok(Im2col { patches, ..Im2col::new(k_offsets, unsigned(geometry.patch.centers_offsets())?) })
    }

    /// The same values where they lie in the tensor (of `input_shape`, contiguous) that a tensor of `shape` takes
    /// every `stride`-th element of along `axis`, from `modulo` (tract's Downsample). A matrix's only: None for a
    /// convolution's patches.
    pub fn subsampled(
        &self,
        shape: &[usize],
        input_shape: &[usize],
        (axis, stride, modulo): (usize, usize, usize),
    ) -> Option<Im2col> {
        if self.patches.is_some() || shape.len() != input_shape.len() {
            return None;
        }
        let strides =
            |shape: &[usize]| -> Vec<usize> { (0..shape.len()).map(|a| shape[a + 1..].iter().product()).collect() };
        let (out, input) = (strides(shape), strides(input_shape));
        // An offset's coordinate on axis a (the offsets lie in the tensor).
        let coordinate = |offset: usize, a: usize| offset / out[a] % shape[a];
        let largest = |offsets: &[usize], a: usize| offsets.iter().map(|&o| coordinate(o, a)).max().unwrap_or(0);
        // k's and n's coordinates must add without a carry from one axis into the next, or the offsets that add in
        // this tensor would not in the other.
        if (0..shape.len()).any(|a| largest(&self.k_offsets, a) + largest(&self.n_offsets, a) >= shape[a]) {
            return None;
        }
        // An offset's coordinates, each axis's moved to the input's: subsampling is affine on each axis, so the
        // offsets of k and of n (on other axes) map apart and still add; `modulo` is counted once, with k's.
        let map = |offset: usize, from: usize| -> usize {
            let moved =
                |a: usize| if a == axis { coordinate(offset, a) * stride + from } else { coordinate(offset, a) };
            (0..shape.len()).map(|a| moved(a) * input[a]).sum()
        };
        let k_offsets = self.k_offsets.iter().map(|&o| map(o, modulo)).collect();
        Some(Im2col::new(k_offsets, self.n_offsets.iter().map(|&o| map(o, 0)).collect()))
    }

    pub fn k(&self) -> usize {
        self.k_offsets.len()
    }

    pub fn n(&self) -> usize {
        self.n_offsets.len()
    }

    /// Where value (k, n) lies.
    pub fn offset(&self, k: usize, n: usize) -> usize {
        self.k_offsets[k] + self.n_offsets[n]
    }

    /// How many elements the tensor must hold.
    pub fn extent(&self) -> usize {
        self.extent
    }

    /// Where each row k starts, to which a column's offset adds.
    pub fn k_offsets(&self) -> &[usize] {
        &self.k_offsets
    }

    /// The largest |x| of each column of `values`' matrix (NaN skipped, as the quantisers skip it), for a convolution
    /// of more than one tap; None for anything else. A column's values are its taps' pixels in every channel, so its
    /// largest is the largest, over its taps, of each pixel's largest over the channels, found once for all the
    /// columns: each value is read once, instead of once for each of its columns (9 times for a 3x3 convolution of
    /// stride 1). The same maxima exactly: a max is one of its values, whatever the order.
    pub fn column_max_abs(&self, values: &[f32]) -> Option<Vec<f32>> {
        let patches = self.patches.as_ref().filter(|p| p.taps.len() > 1 && p.channels > 0)?;
        // Every pixel a column reads, from where a channel starts.
        let pixels = self.n_offsets.iter().max()? + patches.taps.iter().max()? + 1;
        assert!(values.len() >= self.extent, "a tensor this matrix fits");
        let mut pixel_max = vec![0f32; pixels];
        for c in 0..patches.channels {
            // Within the extent: the last channel's start plus the last pixel read.
            let channel = &values[c * patches.c_stride..][..pixels];
            pixel_max.iter_mut().zip(channel).for_each(|(m, x)| *m = m.max(x.abs()));
        }
        // A kernel's row of taps reads adjacent pixels: the largest over each run of that many pixels, once, leaves a
        // lookup a row of taps (7 instead of 49 for the 7x7 stem).
        let (starts, width) = tap_rows(&patches.taps);
        let mut row_max = pixel_max.clone();
        for d in 1..width {
            row_max.iter_mut().zip(&pixel_max[d..]).for_each(|(m, &x)| *m = m.max(x));
        }
        let column_max = |n: usize| starts.iter().fold(0f32, |m, &s| m.max(row_max[n + s]));
        Some(self.n_offsets.iter().map(|&n| column_max(n)).collect())
    }

    /// Columns `first..` (at most W) as runs of evenly spaced elements: row k of a run starts at element
    /// `k_offsets[k] + from`.
    pub fn panel_runs<const W: usize>(&self, first: usize) -> TVec<Run> {
        runs(&self.n_offsets[first.min(self.n())..][..W.min(self.n().saturating_sub(first))])
    }

    /// Columns `first..` (at most W) into `out`, K x W, K-major; columns past the matrix's last are zeros. Returns
    /// how many columns there are. Columns whose values lie evenly spaced in the tensor (a row of output pixels, or a
    /// matrix's row) are read as runs.
    pub fn panel<const W: usize>(&self, values: &[f32], first: usize, out: &mut [f32]) -> usize {
        assert!(values.len() >= self.extent && out.len() >= self.k() * W, "a tensor this matrix fits, K x W out");
        let runs = self.panel_runs::<W>(first);
        let columns = runs.iter().map(|r| r.len).sum();
        let rows = out.chunks_exact_mut(W).zip(&self.k_offsets);
        match runs[..] {
            // The common case: the panel's values side by side in each row, copied as one array.
            [Run { from, len, step: 1, .. }] if len == W => {
                for (row, &k_offset) in rows {
                    // As arrays of W, not slices: a copy of known size is a few vector moves, not a call to memcpy.
                    let row: &mut [f32; W] = row.try_into().expect("W values");
                    *row = values[k_offset + from..][..W].try_into().expect("W values");
                }
            }
            _ => {
                for (row, &k_offset) in rows {
                    row.fill(0.0);
                    for run in &runs {
                        for (i, to) in row[run.to..][..run.len].iter_mut().enumerate() {
                            // SAFETY: k_offset + each column's offset is below the extent, which `values` holds
                            // (asserted above).
                            *to = unsafe { *values.get_unchecked(k_offset + run.from + i * run.step) };
                        }
                    }
                }
            }
        }
        columns
    }
}

/// Columns `to..to + len` of a panel, at elements `from`, `from + step`, ... past where each row starts in the tensor.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    pub to: usize,
    pub from: usize,
    pub len: usize,
    pub step: usize,
}

/// A kernel's taps (offsets) as rows of adjacent pixels, all as wide: where each row starts, and its width. Taps that
/// are not so (a dilated kernel) are rows of one.
fn tap_rows(taps: &[usize]) -> (Vec<usize>, usize) {
    let mut rows: Vec<(usize, usize)> = vec![];
    for &t in taps {
        match rows.last_mut() {
            Some((start, width)) if *start + *width == t => *width += 1,
            _ => rows.push((t, 1)),
        }
    }
    match rows.first() {
        Some(&(_, width)) if rows.iter().all(|r| r.1 == width) => (rows.iter().map(|r| r.0).collect(), width),
        _ => (taps.to_vec(), 1),
    }
}

/// The columns at `offsets` as runs of evenly spaced elements.
fn runs(offsets: &[usize]) -> TVec<Run> {
    let mut runs: TVec<Run> = tvec![];
    for (c, &offset) in offsets.iter().enumerate() {
        match runs.last_mut() {
            Some(run) if run.len == 1 && offset > run.from => {
                (run.step, run.len) = (offset - run.from, 2);
            }
            Some(run) if run.from + run.len * run.step == offset => run.len += 1,
            _ => runs.push(Run { to: c, from: offset, len: 1, step: 1 }),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::nn::DataFormat;

    /// Each gathered value against the matrix's definition, for panels whole, split over rows of pixels, strided
    /// and past the last column.
    fn check_panels<const W: usize>(im2col: &Im2col, values: &[f32]) {
        let mut out = vec![f32::NAN; im2col.k() * W];
        for first in (0..im2col.n()).step_by(W) {
            let cols = im2col.panel::<W>(values, first, &mut out);
            assert_eq!(cols, W.min(im2col.n() - first));
            for k in 0..im2col.k() {
                for c in 0..W {
                    let want = if c < cols { values[im2col.k_offsets[k] + im2col.n_offsets[first + c]] } else { 0.0 };
                    assert_eq!(out[k * W + c], want, "k {k}, column {}", first + c);
                }
            }
        }
    }

    #[test]
    fn panels_hold_the_matrix_values() {
        let values: Vec<f32> = (0..5000).map(|i| i as f32).collect();
        // A 3x3 convolution, stride 1, over 2 channels of a padded 7x9 image (n = 5 x 7, rows of 7 pixels).
        let pool = |stride: usize| PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: tvec![3, 3],
            padding: PaddingSpec::Valid,
            dilations: None,
            strides: Some(tvec![stride, stride]),
            input_channels: 2,
            output_channels: 4,
        };
        let conv = Im2col::conv(&pool(1), &[1, 2, 7, 9], 2).unwrap();
        assert_eq!((conv.k(), conv.n()), (18, 35));
        assert_eq!(&conv.k_offsets[..4], &[0, 1, 2, 9], "taps of the first channel, row-major");
        assert_eq!(conv.k_offsets[9], 63, "the second channel");
        assert_eq!(&conv.n_offsets[5..9], &[5, 6, 9, 10], "output pixels, row after row");
        assert_eq!(conv.extent(), 63 + 2 * 9 + 2 + 4 * 9 + 6 + 1);
        check_panels::<8>(&conv, &values);
        check_panels::<16>(&conv, &values);
        let strided = Im2col::conv(&pool(2), &[1, 2, 7, 9], 2).unwrap();
        assert_eq!(&strided.n_offsets[..5], &[0, 2, 4, 6, 18]);
        check_panels::<8>(&strided, &values);
        // A 1x1 convolution's matrix: rows of 40 pixels, and its transpose.
        check_panels::<8>(&Im2col::matrix(6, 40, 40, 1), &values);
        check_panels::<16>(&Im2col::matrix(40, 1, 6, 40), &values);
    }

    /// A 1x1 convolution of stride 2's matrix, read through tract's two Downsamples: each value where the
    /// subsampled tensor took it from.
    #[test]
    fn subsampled_matrices_read_the_subsampled_values() {
        // A tensor (1, C, H, W) whose values are their own offsets, subsampled as tract does for a 1x1 convolution
        // of stride 2 (every other row, then every other column; odd sizes, and from 1 as well as 0), then read as
        // a C x (H' W') matrix.
        for (c, h, w, modulo) in [(3usize, 6usize, 8usize, 0usize), (2, 7, 5, 0), (2, 7, 9, 1)] {
            let (h2, w2) = ((h - modulo).div_ceil(2), (w - modulo).div_ceil(2));
            let (full, rows, both) = ([1, c, h, w], [1, c, h2, w], [1, c, h2, w2]);
            let matrix = Im2col::matrix(c, h2 * w2, h2 * w2, 1);
            let in_rows = matrix.subsampled(&both, &rows, (3, 2, modulo)).unwrap();
            let in_full = in_rows.subsampled(&rows, &full, (2, 2, modulo)).unwrap();
            for (k, y, x) in (0..c).flat_map(|k| (0..h2).flat_map(move |y| (0..w2).map(move |x| (k, y, x)))) {
                let expected = (k * h + 2 * y + modulo) * w + 2 * x + modulo;
                assert_eq!(in_full.offset(k, y * w2 + x), expected, "{c}x{h}x{w} from {modulo}: ({k}, {y}, {x})");
            }
            assert_eq!(in_full.extent(), in_full.offset(c - 1, h2 * w2 - 1) + 1);
        }
        // Offsets whose coordinates carry into the next axis when added (6 + 3 columns of 7) map apart wrongly:
        // not subsampled.
        let carrying = Im2col::new(vec![0, 6], vec![0, 3]);
        assert!(carrying.subsampled(&[1, 1, 2, 7], &[1, 1, 2, 14], (3, 2, 0)).is_none());
        // A convolution's patches read its padded input: not subsampled here.
        let pool = PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: tvec![3, 3],
            padding: PaddingSpec::Valid,
            dilations: None,
            strides: None,
            input_channels: 2,
            output_channels: 4,
        };
        let conv = Im2col::conv(&pool, &[1, 2, 6, 6], 2).unwrap();
        assert!(conv.subsampled(&[1, 2, 6, 6], &[1, 2, 12, 6], (2, 2, 0)).is_none());
    }

    /// A convolution's column maxima found once (per pixel, then per row of taps) are each column's largest |x| over
    /// its K values, exactly, with NaN skipped: for kernels 3x3 and 7x7, strides 1 and 2, a dilated kernel, and
    /// channels more or fewer than the taps. A 1x1 convolution or a matrix has none (nothing to share).
    #[test]
    fn column_maxima_are_each_columns_largest_magnitude() {
        let pool = |kernel: usize, stride: usize, dilation: usize, channels: usize| PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: tvec![kernel, kernel],
            padding: PaddingSpec::Valid,
            dilations: Some(tvec![dilation, dilation]),
            strides: Some(tvec![stride, stride]),
            input_channels: channels,
            output_channels: 4,
        };
        // Magnitudes from 0 to ~1e3 of both signs, with NaN and an infinity.
        let mut seed = 7u32;
        let mut values: Vec<f32> = (0..5 * 23 * 21)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((seed >> 8) as f32 / (1 << 24) as f32 - 0.5) * 2e3
            })
            .collect();
        values[100] = f32::NAN;
        values[23 * 21 + 40] = f32::NEG_INFINITY;
        for (kernel, stride, dilation, channels) in
            [(3, 1, 1, 5), (3, 2, 1, 4), (7, 2, 1, 3), (3, 1, 2, 2), (2, 1, 1, 5)]
        {
            let conv =
                Im2col::conv(&pool(kernel, stride, dilation, channels), &[1, channels, 23, 21], channels).unwrap();
            let maxima = conv.column_max_abs(&values).expect("a convolution of more than one tap");
            assert_eq!(maxima.len(), conv.n());
            for (n, &found) in maxima.iter().enumerate() {
                let want = (0..conv.k()).fold(0f32, |m, k| m.max(values[conv.offset(k, n)].abs()));
                assert_eq!(found.to_bits(), want.to_bits(), "{kernel}x{kernel} /{stride} d{dilation}: column {n}");
            }
        }
        assert!(Im2col::conv(&pool(1, 1, 1, 5), &[1, 5, 23, 21], 5).unwrap().column_max_abs(&values).is_none());
        assert!(Im2col::matrix(6, 40, 40, 1).column_max_abs(&values).is_none());
    }
}
