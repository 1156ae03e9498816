//! Image files -> RGBA8, as a browser shows them (the library's decoder), errors naming the file.

use std::path::Path;

use wrn_wasm::{DecodedImage, decode_image};

pub fn decode(path: &Path) -> Result<DecodedImage, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    decode_image(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}
