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
    /// The router or the generator client failed.
    #[error(transparent)]
    Router(#[from] rlrag_router::RouterError),
    /// An evaluation, a dataset, a model directory or a device failed.
    #[error(transparent)]
    Eval(#[from] rlrag_eval::EvalError),
    /// The generator failed (a forward pass, its model directory).
    #[error(transparent)]
    Generator(#[from] rlrag_generator::GeneratorError),
    /// JSON could not be written.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}
