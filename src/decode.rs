//! Image files -> RGBA8, as a browser shows them: EXIF orientation applied, grayscale and palette expanded to RGB.
//! The CLI's decoder (JPEG, PNG, WebP, GIF), and the npm package's where there is no browser to decode (Node: JPEG and
//! PNG, the `decode` feature alone).

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

use crate::error::{Error, Result};

/// The largest image decoded: 64 M pixels (a 67 MP photo), and at most [`MAX_DECODED_BYTES`] as the file stores it
/// (16-bit channels: half as many pixels). Decoded, turned by its EXIF orientation (a copy) and made RGBA8 (another),
/// it may take three times that at once, in wasm in a memory that never shrinks: larger images are better decoded and
/// scaled first.
pub const MAX_DECODED_PIXELS: u64 = 1 << 26;
pub const MAX_DECODED_BYTES: u64 = 4 * MAX_DECODED_PIXELS;

/// Decoded pixels, RGBA8, row by row.
#[derive(Debug)]
pub struct DecodedImage {
    pub rgba: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// Decodes an image file's bytes (the formats this build has; GIF: its first frame). Images larger than
/// [`MAX_DECODED_PIXELS`] or [`MAX_DECODED_BYTES`] are refused before their pixels are allocated (a small file can
/// claim a huge image).
pub fn decode_image(bytes: &[u8]) -> Result<DecodedImage> {
    let fail = |e: &dyn std::fmt::Display| Error::InvalidImage(format!("cannot decode: {e}"));
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| fail(&e))?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODED_BYTES); // a decoder's own buffers
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| fail(&e))?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > MAX_DECODED_PIXELS || decoder.total_bytes() > MAX_DECODED_BYTES {
        return Err(fail(&format!(
            "the image is {width}x{height} ({} bytes decoded): the limit is {MAX_DECODED_PIXELS} pixels and \
             {MAX_DECODED_BYTES} bytes",
            decoder.total_bytes()
        )));
    }
    let orientation = decoder.orientation().map_err(|e| fail(&e))?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| fail(&e))?;
    image.apply_orientation(orientation);
    let rgba = image.into_rgba8();
    let (width, height) = rgba.dimensions();
    Ok(DecodedImage { rgba: rgba.into_raw(), width, height })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        let pixels = (0..width * height * 3).map(|i| (i * 37 % 256) as u8).collect();
        let image = image::RgbImage::from_raw(width, height, pixels).unwrap();
        image.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
        bytes
    }

    #[test]
    fn an_rgb_png_becomes_opaque_rgba() {
        let d = decode_image(&png(3, 2)).unwrap();
        assert_eq!((d.width, d.height), (3, 2));
        let expected: Vec<u8> = (0..18u32)
            .map(|i| (i * 37 % 256) as u8)
            .collect::<Vec<_>>()
            .chunks(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect();
        assert_eq!(d.rgba, expected);
    }

    #[test]
    fn bad_bytes_are_invalid_images() {
        let mut truncated = png(40, 40);
        truncated.truncate(truncated.len() / 2);
        for (what, bytes) in [("text", b"hello".to_vec()), ("empty", vec![]), ("truncated", truncated)] {
            let err = decode_image(&bytes).expect_err(what);
            assert!(err.to_string().starts_with("invalid image: cannot decode: "), "{what}: {err}");
        }
    }

    #[test]
    fn a_file_claiming_a_huge_image_is_refused_before_its_pixels_are_allocated() {
        // A 1x1 GIF whose logical screen (the image's size) claims 60000 x 60000 pixels.
        let mut bytes = Vec::new();
        let pixel = image::RgbaImage::from_pixel(1, 1, image::Rgba([1, 2, 3, 255]));
        pixel.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Gif).unwrap();
        assert_eq!(decode_image(&bytes).unwrap().rgba, [1, 2, 3, 255]);
        bytes[6..10].copy_from_slice(&[0x60, 0xea, 0x60, 0xea]);
        let err = decode_image(&bytes).unwrap_err().to_string();
        assert!(err.contains(&format!("60000x60000 (")), "{err}");
        assert!(err.contains(&format!("the limit is {MAX_DECODED_PIXELS} pixels")), "{err}");
    }
}
