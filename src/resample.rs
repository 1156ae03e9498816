//! Pillow's resampling (libImaging/Resample.c), reproduced to the bit for RGB(A) 8-bit images.
//!
//! Every published accuracy of the weights was measured on images resized by Pillow, so the preprocessing matches it
//! exactly rather than approximately: same filter windows (rounded, clamped to the image), same coefficient
//! normalisation, same 22-bit fixed-point arithmetic, horizontal pass first with its result rounded and clipped to
//! 8 bits, then the vertical pass. A general-purpose resizer (fast_image_resize was tried) differs by up to 2 levels
//! on bicubic, because it runs the passes in the other order with other fixed-point precision.
//!
//! Only a window of the resized image is computed: Pillow's coefficients for output pixel i depend on i and the
//! full sizes alone, so computing outputs [a, b) equals resizing everything and cropping.

use std::ops::Range;

/// 32 bits minus 8 for the pixel, minus 2 for the sign and the overshoot of filters with negative lobes.
const PRECISION_BITS: u32 = 32 - 8 - 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Bilinear,
    Bicubic,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Filter::Bilinear => {
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Filter::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// Fixed-point filter taps for a range of output pixels along one axis.
struct Taps {
    /// First input index of each output pixel's window.
    start: Vec<usize>,
    /// Coefficients, `ksize` per output pixel (zero-padded past the window).
    coeffs: Vec<i32>,
    ksize: usize,
    lens: Vec<usize>,
}

impl Taps {
    /// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for resizing `in_size` to `out_size`, outputs `range`.
    fn new(in_size: usize, out_size: usize, range: Range<usize>, filter: Filter) -> Taps {
        let scale = in_size as f64 / out_size as f64;
        let filter_scale = scale.max(1.0);
        let support = filter.support() * filter_scale;
        let ksize = support.ceil() as usize * 2 + 1;
        let n = range.len();
        let (mut start, mut lens, mut coeffs) = (Vec::with_capacity(n), Vec::with_capacity(n), vec![0i32; n * ksize]);
        let mut k = vec![0f64; ksize];
        for (o, out) in range.enumerate() {
            let center = (out as f64 + 0.5) * scale;
            // Pillow rounds the window bounds with (int)(v + 0.5): truncation, as C casts do.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let len = xmax.saturating_sub(xmin).min(ksize);
            let mut total = 0.0;
            for (x, w) in k.iter_mut().enumerate().take(len) {
                *w = filter.weight((x as f64 + xmin as f64 - center + 0.5) / filter_scale);
                total += *w;
            }
            for (x, w) in k.iter().enumerate().take(len) {
                let w = if total != 0.0 { w / total } else { *w };
                let fixed = w * (1u32 << PRECISION_BITS) as f64;
                coeffs[o * ksize + x] = if w < 0.0 { (fixed - 0.5) as i32 } else { (fixed + 0.5) as i32 };
            }
            start.push(xmin);
            lens.push(len);
        }
        Taps { start, coeffs, ksize, lens }
    }

    fn of(&self, o: usize) -> (usize, &[i32]) {
        (self.start[o], &self.coeffs[o * self.ksize..o * self.ksize + self.lens[o]])
    }

    /// Input indices any of these outputs reads.
    fn span(&self) -> Range<usize> {
        let first = self.start.iter().copied().min().unwrap_or(0);
        let end = self.start.iter().zip(&self.lens).map(|(s, l)| s + l).max().unwrap_or(first);
        first..end
    }
}

fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Resizes RGBA8 `src` (width x height) to `out_w` x `out_h` as Pillow does on the RGB image, and returns only the
/// window `cols` x `rows` of the result, as RGBA8 with opaque alpha.
pub fn resize_window(
    src: &[u8],
    width: usize,
    height: usize,
    (out_w, out_h): (usize, usize),
    cols: Range<usize>,
    rows: Range<usize>,
    filter: Filter,
) -> Vec<u8> {
    let horizontal = Taps::new(width, out_w, cols.clone(), filter);
    let vertical = Taps::new(height, out_h, rows.clone(), filter);
    let src_rows = vertical.span();
    let w = cols.len();

    // Horizontal pass over the source rows the vertical pass will read, only for the window's columns.
    let mut temp = vec![0u8; src_rows.len() * w * 4];
    for (t, y) in src_rows.clone().enumerate() {
        let line = &src[y * width * 4..(y + 1) * width * 4];
        let out = &mut temp[t * w * 4..(t + 1) * w * 4];
        for (o, px) in out.chunks_exact_mut(4).enumerate() {
            let (x0, k) = horizontal.of(o);
            let mut acc = [HALF; 3];
            for (i, &c) in k.iter().enumerate() {
                let p = &line[(x0 + i) * 4..(x0 + i) * 4 + 3];
                acc[0] += p[0] as i32 * c;
                acc[1] += p[1] as i32 * c;
                acc[2] += p[2] as i32 * c;
            }
            px.copy_from_slice(&[clip8(acc[0]), clip8(acc[1]), clip8(acc[2]), 255]);
        }
    }

    // Vertical pass on the 8-bit intermediate, as Pillow does.
    let mut out = vec![0u8; rows.len() * w * 4];
    let mut acc = vec![HALF; w * 3];
    for (r, line) in out.chunks_exact_mut(w * 4).enumerate() {
        let (y0, k) = vertical.of(r);
        acc.fill(HALF);
        for (i, &c) in k.iter().enumerate() {
            let t = y0 + i - src_rows.start;
            let trow = &temp[t * w * 4..(t + 1) * w * 4];
            for (a, p) in acc.chunks_exact_mut(3).zip(trow.chunks_exact(4)) {
                a[0] += p[0] as i32 * c;
                a[1] += p[1] as i32 * c;
                a[2] += p[2] as i32 * c;
            }
        }
        for (px, a) in line.chunks_exact_mut(4).zip(acc.chunks_exact(3)) {
            px.copy_from_slice(&[clip8(a[0]), clip8(a[1]), clip8(a[2]), 255]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_the_identity() {
        let src: Vec<u8> = (0..5 * 3 * 4).map(|i| (i * 37 % 256) as u8).collect();
        for filter in [Filter::Bilinear, Filter::Bicubic] {
            let out = resize_window(&src, 5, 3, (5, 3), 0..5, 0..3, filter);
            for (a, b) in out.chunks_exact(4).zip(src.chunks_exact(4)) {
                assert_eq!(a[..3], b[..3]);
            }
        }
    }

    #[test]
    fn window_equals_the_crop_of_the_whole() {
        let src: Vec<u8> = (0..40 * 30 * 4).map(|i| (i * 7919 % 251) as u8).collect();
        let whole = resize_window(&src, 40, 30, (17, 13), 0..17, 0..13, Filter::Bicubic);
        let part = resize_window(&src, 40, 30, (17, 13), 3..11, 5..9, Filter::Bicubic);
        for (r, row) in part.chunks_exact(8 * 4).enumerate() {
            let start = ((5 + r) * 17 + 3) * 4;
            assert_eq!(row, &whole[start..start + 8 * 4]);
        }
    }
}
