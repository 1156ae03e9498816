//! Image files -> RGBA8, as a browser shows them: EXIF orientation applied, grayscale and palette expanded to RGB.

use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader};

pub struct Decoded {
    pub rgba: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

pub fn decode(path: &Path) -> Result<Decoded, String> {
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let reader = ImageReader::open(path).map_err(|e| fail(&e))?.with_guessed_format().map_err(|e| fail(&e))?;
    let mut decoder = reader.into_decoder().map_err(|e| fail(&e))?;
    let orientation = decoder.orientation().map_err(|e| fail(&e))?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| fail(&e))?;
    image.apply_orientation(orientation);
    let rgba = image.into_rgba8();
    let (width, height) = rgba.dimensions();
    Ok(Decoded { rgba: rgba.into_raw(), width, height })
}
