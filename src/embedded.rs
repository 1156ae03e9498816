//! The model and manifest compiled into the binary (the manifest alone with the `manifest` feature). build.rs finds
//! them (model/ or $WRN_MODEL_DIR) and fails the build with the command that makes them when they are missing.

#[cfg(feature = "embed")]
pub static MODEL: &[u8] = include_bytes!(env!("WRN_EMBEDDED_MODEL"));
pub static MANIFEST: &str = include_str!(env!("WRN_EMBEDDED_MANIFEST"));
