//! Pixels -> the network's input, exactly as the weights were evaluated: Pillow's resize of the short side with the
//! recipe's filter, a centre crop (torchvision's `Resize` + `CenterCrop` on a PIL image), then mean/std normalisation
//! into an NCHW f32 tensor.
//!
//! Only the crop window of the resized image is ever computed (see [`crate::resample`]): the same pixels as resizing
//! everything and cropping afterwards, at a fraction of the cost for large or long thin images.

use crate::error::{Error, Result};
use crate::manifest::{Interpolation, Manifest};
use crate::resample::{self, Filter};

/// Largest side accepted (the largest PNG/JPEG side most decoders handle).
pub const MAX_SIDE: u32 = 65_535;
/// Largest image accepted, in pixels: 2^28, Chromium's largest canvas (1 GiB of RGBA).
pub const MAX_PIXELS: u64 = 1 << 28;

/// A borrowed RGBA8 image, rows top to bottom, 4 bytes a pixel. Alpha is ignored, as Pillow's `convert("RGB")` does.
#[derive(Debug, Clone, Copy)]
pub struct Rgba<'a> {
    data: &'a [u8],
    width: u32,
    height: u32,
}

impl<'a> Rgba<'a> {
    pub fn new(data: &'a [u8], width: u32, height: u32) -> Result<Self> {
        let bad = |msg: String| Err(Error::InvalidImage(msg));
        if width == 0 || height == 0 {
            return bad(format!("image is {width}x{height}: both sides must be at least 1 pixel"));
        }
        let pixels = width as u64 * height as u64;
        if width > MAX_SIDE || height > MAX_SIDE || pixels > MAX_PIXELS {
            return bad(format!(
                "image is {width}x{height}: the limit is {MAX_SIDE} px a side and {MAX_PIXELS} pixels"
            ));
        }
        if data.len() as u64 != pixels * 4 {
            return bad(format!(
                "buffer holds {} bytes, but {width}x{height} RGBA needs {} (4 bytes a pixel)",
                data.len(),
                pixels * 4
            ));
        }
        Ok(Rgba { data, width, height })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn data(&self) -> &'a [u8] {
        self.data
    }
}

/// The preprocessing part of a manifest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recipe {
    pub resize: u32,
    pub crop: u32,
    pub interpolation: Interpolation,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl From<&Manifest> for Recipe {
    fn from(m: &Manifest) -> Self {
        Recipe { resize: m.resize, crop: m.crop, interpolation: m.interpolation, mean: m.mean, std: m.std }
    }
}

/// Size after resizing the short side to `short`, as torchvision computes it: the long side is truncated.
pub fn resized_size(width: u32, height: u32, short: u32) -> (u32, u32) {
    let long_of = |long: u32, short_side: u32| (short as f64 * long as f64 / short_side as f64) as u32;
    if width <= height { (short, long_of(height, width)) } else { (long_of(width, height), short) }
}

/// Top-left corner of the centre crop, rounded as Python's `round` does (half to even), like torchvision.
fn crop_origin(resized: u32, crop: u32) -> u32 {
    ((resized as f64 - crop as f64) / 2.0).round_ties_even().max(0.0) as u32
}

/// Resize + centre crop: returns crop x crop RGBA8 pixels, bit for bit what Pillow gives (alpha set opaque).
pub fn resize_crop(image: Rgba, recipe: &Recipe) -> Result<Vec<u8>> {
    let (rw, rh) = resized_size(image.width, image.height, recipe.resize);
    let crop = recipe.crop;
    let (left, top) = (crop_origin(rw, crop) as usize, crop_origin(rh, crop) as usize);
    let filter = match recipe.interpolation {
        Interpolation::Bilinear => Filter::Bilinear,
        Interpolation::Bicubic => Filter::Bicubic,
    };
    let c = crop as usize;
    Ok(resample::resize_window(
        image.data,
        image.width as usize,
        image.height as usize,
        (rw as usize, rh as usize),
        left..left + c,
        top..top + c,
        filter,
    ))
}

/// RGBA8 crop -> NCHW f32 [1, 3, crop, crop]: (v / 255 - mean) / std, in torchvision's order of operations.
pub fn normalize(rgba: &[u8], recipe: &Recipe) -> Vec<f32> {
    let plane = (recipe.crop * recipe.crop) as usize;
    debug_assert_eq!(rgba.len(), plane * 4);
    let mut out = vec![0f32; plane * 3];
    for (c, channel) in out.chunks_exact_mut(plane).enumerate() {
        let (mean, std) = (recipe.mean[c], recipe.std[c]);
        for (v, px) in channel.iter_mut().zip(rgba.chunks_exact(4)) {
            *v = (px[c] as f32 / 255.0 - mean) / std;
        }
    }
    out
}

/// The whole preprocessing: pixels -> normalised NCHW f32 input.
pub fn preprocess(image: Rgba, recipe: &Recipe) -> Result<Vec<f32>> {
    Ok(normalize(&resize_crop(image, recipe)?, recipe))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECIPE: Recipe = Recipe {
        resize: 256,
        crop: 224,
        interpolation: Interpolation::Bilinear,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };

    #[test]
    fn resized_size_truncates_the_long_side_like_torchvision() {
        assert_eq!(resized_size(640, 480, 256), (341, 256)); // 341.33
        assert_eq!(resized_size(480, 640, 256), (256, 341));
        assert_eq!(resized_size(7000, 10, 256), (179_200, 256));
        assert_eq!(resized_size(1, 1, 256), (256, 256));
        assert_eq!(resized_size(3, 2, 256), (384, 256));
    }

    #[test]
    fn crop_origin_rounds_half_to_even() {
        assert_eq!(crop_origin(225, 224), 0); // 0.5 -> 0
        assert_eq!(crop_origin(227, 224), 2); // 1.5 -> 2
        assert_eq!(crop_origin(341, 224), 58); // 58.5 -> 58
        assert_eq!(crop_origin(224, 224), 0);
    }

    #[test]
    fn rejects_bad_buffers_with_clear_errors() {
        let msg = |r: Result<Rgba>| r.unwrap_err().to_string();
        assert!(msg(Rgba::new(&[0; 12], 2, 2)).contains("needs 16"));
        assert!(msg(Rgba::new(&[], 0, 5)).contains("at least 1 pixel"));
        assert!(msg(Rgba::new(&[], 100_000, 100_000)).contains("limit"));
    }

    #[test]
    fn uniform_image_stays_uniform_and_normalises_per_channel() {
        let px = [200u8, 100, 50, 7];
        let data: Vec<u8> = px.iter().copied().cycle().take(300 * 200 * 4).collect();
        let t = preprocess(Rgba::new(&data, 300, 200).unwrap(), &RECIPE).unwrap();
        let plane = 224 * 224;
        assert_eq!(t.len(), 3 * plane);
        for c in 0..3 {
            let want = (px[c] as f32 / 255.0 - RECIPE.mean[c]) / RECIPE.std[c];
            assert!(t[c * plane..(c + 1) * plane].iter().all(|v| (v - want).abs() < 1e-6), "channel {c}");
        }
    }

    #[test]
    fn alpha_does_not_change_colours() {
        let opaque: Vec<u8> = (0..64 * 48).flat_map(|i| [(i % 251) as u8, (i % 13) as u8 * 9, 77, 255]).collect();
        let mut clear = opaque.clone();
        clear.iter_mut().skip(3).step_by(4).enumerate().for_each(|(i, a)| *a = (i % 256) as u8);
        let a = preprocess(Rgba::new(&opaque, 64, 48).unwrap(), &RECIPE).unwrap();
        let b = preprocess(Rgba::new(&clear, 64, 48).unwrap(), &RECIPE).unwrap();
        assert_eq!(a, b);
    }
}
