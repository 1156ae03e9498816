//! wrn-wasm: an ImageNet-1k classifier (Wide-ResNet-50-2, weight-only int8) run by tract, for native code and
//! WebAssembly alike. This crate's core knows nothing of the browser:
//!
//! RGBA8 pixels -> [`preprocess`] (Pillow's resize, centre crop, mean/std) -> [`model`] (tract plan) ->
//! [`scores`] (softmax, top-k with [`labels`]).

mod classifier;
#[cfg(feature = "decode")]
pub mod decode;
#[cfg(feature = "manifest")]
mod embedded;
mod error;
mod fold_weights;
mod fuse_through_reshape;
mod heap;
mod im2col;
pub mod int8_amx;
#[cfg(target_arch = "x86_64")]
mod int8_amx_tile;
mod int8_compute;
pub mod int8_matmul;
mod int8_panels;
#[cfg(target_arch = "x86_64")]
pub mod int8_vnni;
pub mod labels;
pub mod manifest;
pub mod model;
mod model_bytes;
mod optimiser;
mod pad_once;
pub mod preprocess;
mod proto_split;
pub mod resample;
pub mod scores;
mod tile_walk;
mod typing;
#[cfg(target_arch = "wasm32")]
pub mod web;
mod winograd;
mod winograd_op;

pub use classifier::Classifier;
#[cfg(feature = "decode")]
pub use decode::{DecodedImage, decode_image};
pub use error::{Error, Result};
#[doc(hidden)]
pub use fuse_through_reshape::turn_off as fuse_bounds_off;
#[doc(hidden)]
pub use int8_compute::{quantize_convolution_patches, quantize_from_tract_panels};
pub use manifest::Manifest;
pub use model::{NodeTime, Profile, WeightMemory};
pub use preprocess::Rgba;
pub use scores::Prediction;
#[doc(hidden)]
pub use winograd_op::turn_off as winograd_off;

/// The manifest.json text compiled into this crate: the embedded model's, or (`manifest` feature alone) the one of the
/// model the crate was built with.
#[cfg(feature = "manifest")]
pub fn embedded_manifest() -> &'static str {
    embedded::MANIFEST
}

/// The model bytes compiled into this crate.
#[cfg(feature = "embed")]
pub fn embedded_model() -> &'static [u8] {
    embedded::MODEL
}
