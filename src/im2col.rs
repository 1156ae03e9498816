//! Where each value of a matmul's f32 activations lies in the tensor they come from, and panels of them gathered.
//!
//! tract's lazy im2col addresses a convolution's patches as value (k, n) at element `k_offsets[k] + n_offsets[n]` of
//! its (padded) input: k runs over the channels and the kernel's taps, n over the output pixels. A plain matrix of a
//! tensor (what tract's packer reads for a 1x1 convolution) is the same with `k * k_stride` and `n * n_stride`.
//! int8_compute quantises its activations from panels gathered here, straight from the tensor, instead of from the
//! f32 panels tract's im2col or packer would first write out. tract pads a convolution's input into a copy before its
//! im2col reads it; an [`Im2col`] can read through that padding instead, from the image as it is.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::{TractErrorContext, ensure, format_err};
use tract_onnx::tract_core::ops::cnn::{PaddingSpec, PoolSpec};

/// The offsets of a K x N matrix of values inside a tensor, in elements.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Im2col {
    k_offsets: Vec<usize>,
    n_offsets: Vec<usize>,
    /// One past the last element read: the tensor must hold at least this many.
    extent: usize,
    /// If set, the offsets are those of a padded image, and the tensor read is the image without its padding.
    padding: Option<Box<Padding>>,
}

/// How the offsets of a padded image (C x Hp x Wp) map to the image without its padding (C x H x W).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Padding {
    /// Each k's channel's first element in the image, and its tap's row and column in the padded image.
    k_taps: Vec<(usize, usize, usize)>,
    /// Each n's row and column in the padded image (its patch's first tap).
    n_pixels: Vec<(usize, usize)>,
    /// Rows and columns of padding before the image.
    top: usize,
    left: usize,
    height: usize,
    width: usize,
}

impl Im2col {
    pub fn new(k_offsets: Vec<usize>, n_offsets: Vec<usize>) -> Im2col {
        let last = |offsets: &[usize]| offsets.iter().copied().max();
        let extent = match (last(&k_offsets), last(&n_offsets)) {
            (Some(k), Some(n)) => k + n + 1,
            _ => 0,
        };
        Im2col { k_offsets, n_offsets, extent, padding: None }
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

    /// This matrix of a padded image, read from the image without its padding (zeros where the padding would be):
    /// `pads` (before, after) for each axis of `image_shape`, the image's shape; only its last two axes (rows and
    /// columns) may be padded, and every axis before them but one has a single entry (channels: NCHW or CHW).
    pub fn through_padding(mut self, pads: &[(usize, usize)], image_shape: &[usize]) -> TractResult<Im2col> {
        let rank = image_shape.len();
        let spatial = rank.checked_sub(2).filter(|_| pads.len() == rank).context("pads for each axis of an image")?;
        ensure!(pads[..spatial].iter().all(|&p| p == (0, 0)), "padding on the rows and columns only");
        ensure!(image_shape[..spatial].iter().filter(|&&d| d != 1).count() <= 1, "one image");
        let ((top, bottom), (left, right)) = (pads[spatial], pads[spatial + 1]);
        let (height, width) = (image_shape[spatial], image_shape[spatial + 1]);
        let (padded_height, padded_width) = (top + height + bottom, left + width + right);
        let padded_plane = padded_height * padded_width;
        let channels = image_shape[..spatial].iter().product::<usize>();
        let k_taps: Vec<_> = (self.k_offsets.iter())
            .map(|&o| (o / padded_plane * height * width, o % padded_plane / padded_width, o % padded_width))
            .collect();
        let n_pixels: Vec<_> = self.n_offsets.iter().map(|&o| (o / padded_width, o % padded_width)).collect();
        let inside =
            |&(c, y, x): &(usize, usize, usize)| c < channels * height * width && y < padded_height && x < padded_width;
        ensure!(k_taps.iter().all(inside) && self.extent <= channels * padded_plane, "a matrix of the padded image");
        ensure!(n_pixels.iter().all(|&(y, x)| y < padded_height && x < padded_width), "pixels of the padded image");
        self.extent = channels * height * width;
        self.padding = Some(Box::new(Padding { k_taps, n_pixels, top, left, height, width }));
        Ok(self)
    }

    pub fn k(&self) -> usize {
        self.k_offsets.len()
    }

    pub fn n(&self) -> usize {
        self.n_offsets.len()
    }

    /// Where value (k, n) lies (in the padded image, if read through its padding).
    pub fn offset(&self, k: usize, n: usize) -> usize {
        self.k_offsets[k] + self.n_offsets[n]
    }

    /// How many elements the tensor must hold.
    pub fn extent(&self) -> usize {
        self.extent
    }

    /// Columns `first..` (at most W) into `out`, K x W, K-major; columns past the matrix's last are zeros. Returns
    /// how many columns there are. Columns whose values lie evenly spaced in the tensor (a row of output pixels, or a
    /// matrix's row) are read as runs.
    pub fn panel<const W: usize>(&self, values: &[f32], first: usize, out: &mut [f32]) -> usize {
        assert!(values.len() >= self.extent && out.len() >= self.k() * W, "a tensor this matrix fits, K x W out");
        let columns = &self.n_offsets[first.min(self.n())..][..W.min(self.n().saturating_sub(first))];
        if let Some(padding) = &self.padding {
            padding.panel::<W>(values, first, columns.len(), out);
            return columns.len();
        }
        let runs = runs(columns.iter().map(|&offset| (0, offset)));
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
        columns.len()
    }
}

impl Padding {
    /// As [`Im2col::panel`], `cols` columns from `first`, each value from the image or a zero of the padding.
    fn panel<const W: usize>(&self, values: &[f32], first: usize, cols: usize, out: &mut [f32]) {
        let pixels = &self.n_pixels[first..][..cols];
        // Runs of columns along one row of the padded image, evenly spaced (`from` is the first's column there).
        let runs = runs(pixels.iter().copied());
        let rows = (self.top..self.top + self.height, self.left..self.left + self.width);
        // Where the panel is one run of adjacent pixels: its first one's column.
        let whole = match runs[..] {
            [Run { from, len, step: 1, .. }] if len == W => Some(from),
            _ => None,
        };
        for (row, &(channel, tap_y, tap_x)) in out.chunks_exact_mut(W).zip(&self.k_taps) {
            // Such a run, inside the image for this tap: copied as one array (most of them).
            if let Some(from) = whole {
                let (y, x) = (pixels[0].0 + tap_y, from + tap_x);
                if rows.0.contains(&y) && x >= self.left && x + W <= rows.1.end {
                    let start = channel + (y - self.top) * self.width + x - self.left;
                    let row: &mut [f32; W] = row.try_into().expect("W values");
                    *row = values[start..][..W].try_into().expect("W values");
                    continue;
                }
            }
            row.fill(0.0);
            for run in &runs {
                let y = pixels[run.to].0 + tap_y;
                if !rows.0.contains(&y) {
                    continue;
                }
                let image_row = &values[channel + (y - self.top) * self.width..][..self.width];
                for (i, to) in row[run.to..][..run.len].iter_mut().enumerate() {
                    let x = run.from + tap_x + i * run.step;
                    if rows.1.contains(&x) {
                        *to = image_row[x - self.left];
                    }
                }
            }
        }
    }
}

/// Columns `to..to + len` of a panel, at positions `from`, `from + step`, ... (elements of the tensor, or columns of
/// the padded image along one of its rows).
#[derive(Clone, Copy, Debug)]
struct Run {
    to: usize,
    from: usize,
    len: usize,
    step: usize,
}

/// Columns as runs of evenly spaced positions along a row, from each column's (row, position).
fn runs(columns: impl Iterator<Item = (usize, usize)>) -> TVec<Run> {
    let mut runs: TVec<Run> = tvec![];
    let mut last_row = None;
    for (c, (row, at)) in columns.enumerate() {
        match runs.last_mut() {
            Some(run) if last_row == Some(row) && run.len == 1 && at > run.from => {
                (run.step, run.len) = (at - run.from, 2);
            }
            Some(run) if last_row == Some(row) && run.from + run.len * run.step == at => run.len += 1,
            _ => runs.push(Run { to: c, from: at, len: 1, step: 1 }),
        }
        last_row = Some(row);
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

    /// A 3x3 convolution of 2 channels, NCHW.
    fn pool(stride: usize) -> PoolSpec {
        PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: tvec![3, 3],
            padding: PaddingSpec::Valid,
            dilations: None,
            strides: Some(tvec![stride, stride]),
            input_channels: 2,
            output_channels: 4,
        }
    }

    #[test]
    fn panels_hold_the_matrix_values() {
        let values: Vec<f32> = (0..5000).map(|i| i as f32).collect();
        // Stride 1 over a padded 7x9 image (n = 5 x 7, rows of 7 pixels).
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

    /// Read through the padding from the image as it is, a convolution's panels are those of the padded image: with
    /// even and uneven padding, strides 1 and 2, panels across rows of pixels and along the padding.
    #[test]
    fn panels_through_the_padding_are_the_padded_images() {
        let (c, h, w) = (2, 5, 7);
        let image: Vec<f32> = (0..c * h * w).map(|i| i as f32 + 1.0).collect();
        for (stride, (top, bottom, left, right)) in
            [(1, (1, 1, 1, 1)), (2, (1, 1, 1, 1)), (1, (0, 2, 3, 0)), (2, (2, 0, 0, 1))]
        {
            let (hp, wp) = (top + h + bottom, left + w + right);
            let mut padded = vec![0.0; c * hp * wp];
            for (i, &v) in image.iter().enumerate() {
                let (ch, y, x) = (i / (h * w), i / w % h, i % w);
                padded[ch * hp * wp + (y + top) * wp + x + left] = v;
            }
            let on_padded = Im2col::conv(&pool(stride), &[1, c, hp, wp], c).unwrap();
            let pads = [(0, 0), (0, 0), (top, bottom), (left, right)];
            let through = on_padded.clone().through_padding(&pads, &[1, c, h, w]).unwrap();
            assert_eq!(through.extent(), c * h * w, "the image, not the padded one");
            for_each_panel::<8>(&on_padded, &through, &padded, &image);
            for_each_panel::<16>(&on_padded, &through, &padded, &image);
        }
        let through = |pads: &[(usize, usize)]| {
            Im2col::conv(&pool(1), &[1, 2, 7, 9], 2).unwrap().through_padding(pads, &[1, 2, 5, 7])
        };
        assert!(through(&[(0, 0), (1, 1), (1, 1), (1, 1)]).is_err(), "padded channels");
        assert!(through(&[(1, 1), (1, 1)]).is_err(), "pads for two axes of four");
    }

    fn for_each_panel<const W: usize>(on_padded: &Im2col, through: &Im2col, padded: &[f32], image: &[f32]) {
        let (mut want, mut got) = (vec![f32::NAN; on_padded.k() * W], vec![f32::NAN; on_padded.k() * W]);
        for first in (0..on_padded.n()).step_by(W) {
            assert_eq!(on_padded.panel::<W>(padded, first, &mut want), through.panel::<W>(image, first, &mut got));
            assert_eq!(want, got, "panel from column {first}");
        }
    }
}
