//! The error type of the training library.

use std::path::PathBuf;

/// Everything that can stop training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The encoder failed (loading, tokenizing, a forward pass).
    #[error(transparent)]
    Encoder(#[from] rlrag_encoder::EncoderError),
    /// An index or dataset operation failed.
    #[error(transparent)]
    Retriever(#[from] rlrag_retriever::RetrieverError),
    /// A setting is out of range.
    #[error("invalid setting `{name}`: {reason}")]
    Config {
        /// The setting.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The generator endpoint failed or answered something unusable (after retries).
    #[error("generator endpoint {url}: {reason}")]
    Endpoint {
        /// The URL called.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A compute device could not be had (not compiled in, or no adapter).
    #[error("device {device}: {reason}")]
    Device {
        /// The device asked for.
        device: String,
        /// Why it is unavailable.
        reason: String,
    },
}
