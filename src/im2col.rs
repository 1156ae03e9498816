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
}

impl Im2col {
    pub fn new(k_offsets: Vec<usize>, n_offsets: Vec<usize>) -> Im2col {
        let last = |offsets: &[usize]| offsets.iter().copied().max();
        let extent = match (last(&k_offsets), last(&n_offsets)) {
            (Some(k), Some(n)) => k + n + 1,
            _ => 0,
        };
        Im2col { k_offsets, n_offsets, extent }
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
        Ok(Im2col::new(k_offsets, unsigned(geometry.patch.centers_offsets())?))
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
}
