use thiserror::Error;

/// Errors of the encoder crate.
#[derive(Debug, Error)]
pub enum EncoderError {
    /// A model file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `config.json` is not a usable BERT configuration.
    #[error("config.json: {0}")]
    Config(String),
    /// `tokenizer.json` could not be loaded or used.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The weights do not fit the configured architecture.
    #[error("model.safetensors: {0}")]
    Weights(String),
    /// An input the encoder cannot take.
    #[error("invalid input: {0}")]
    Input(String),
    /// The tensor backend failed.
    #[error("backend: {0}")]
    Backend(String),
}
