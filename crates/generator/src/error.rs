//! The generator's errors.

/// Why a model file could not be read or used.
#[derive(Debug, thiserror::Error)]
pub enum GeneratorError {
    /// The bytes are not a well-formed GGUF file (or not one this reader
    /// accepts); nothing is half-read.
    #[error("GGUF: {reason} (at byte {offset})")]
    Gguf {
        /// Where in the file the problem was found.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A tensor is stored in a block format this reader does not decode.
    #[error("GGUF tensor `{tensor}`: unsupported type {type_id} ({name})")]
    UnsupportedType {
        /// The tensor.
        tensor: String,
        /// ggml's type id.
        type_id: u32,
        /// ggml's name for it, where known.
        name: &'static str,
    },
    /// The file's model is not one this crate runs, or is inconsistent.
    #[error("model: {reason}")]
    Model {
        /// What is wrong.
        reason: String,
    },
    /// A request to the model is malformed or out of range (the
    /// OpenAI-compatible API: a field's type or value).
    #[error("request: {reason}")]
    Request {
        /// What is wrong.
        reason: String,
    },
    /// A tensor the caller asked for is not in the file.
    #[error("GGUF: no tensor `{name}`")]
    MissingTensor {
        /// Its name.
        name: String,
    },
}
