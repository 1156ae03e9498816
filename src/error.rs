//! One error type for the whole core: every bad input ends here, never in a panic.

/// Everything that can go wrong between pixels and predictions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pixel buffer does not describe an image we can classify.
    #[error("invalid image: {0}")]
    InvalidImage(String),
    /// The model bytes could not be decoded, analysed or run.
    #[error("model error: {0}")]
    Model(String),
    /// The manifest is missing fields or does not fit the model.
    #[error("invalid manifest: {0}")]
    Manifest(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<tract_onnx::prelude::TractError> for Error {
    fn from(e: tract_onnx::prelude::TractError) -> Self {
        // {:#} keeps tract's whole context chain: "translating node x" -> "cause".
        Error::Model(format!("{e:#}"))
    }
}
