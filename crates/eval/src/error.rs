//! The error type of the evaluation harness.

use std::path::PathBuf;

/// Everything that can stop an evaluation run. A variant with a `source`
/// leaves it out of its own message: reporters print the chain.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The encoder failed (loading, tokenizing, a forward pass).
    #[error(transparent)]
    Encoder(#[from] rlrag_encoder::EncoderError),
    /// An index or dataset operation failed.
    #[error(transparent)]
    Retriever(#[from] rlrag_retriever::RetrieverError),
    /// The router, a source or the generator client failed.
    #[error(transparent)]
    Router(#[from] rlrag_router::RouterError),
    /// The reward configuration is invalid.
    #[error(transparent)]
    Reward(#[from] rlrag_reward::RewardError),
    /// The generator failed.
    #[error(transparent)]
    Generator(#[from] rlrag_generator::GeneratorError),
    /// A dataset could not be loaded.
    #[error("cannot load dataset {}", data.display())]
    Dataset {
        /// The dataset path.
        data: PathBuf,
        /// Why.
        #[source]
        source: rlrag_retriever::RetrieverError,
    },
    /// A setting is out of range or settings contradict each other.
    #[error("{reason}")]
    Setting {
        /// The command-line spelling of the setting (`--k`, `--fold`).
        setting: &'static str,
        /// What is wrong, as a sentence for the user.
        reason: String,
    },
    /// A dataset split holds nothing to evaluate or train on.
    #[error("{data} has no labelled questions in split `{split}`")]
    NoQuestions {
        /// The dataset path.
        data: PathBuf,
        /// The split (with its fold).
        split: String,
    },
    /// A file could not be read or written.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// `read`, `write`, `create`, `rename`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file that is not what it should be (a router config, a report).
    #[error("{}: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A model directory could not be loaded.
    #[error("cannot load the model in {}", dir.display())]
    Model {
        /// The model directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: Box<EvalError>,
    },
    /// A compute device could not be had (not compiled in, or no adapter).
    #[error("device {device}: {reason}")]
    Device {
        /// The device asked for.
        device: String,
        /// Why it is unavailable.
        reason: String,
    },
    /// The corpus server could not start.
    #[error("corpus server: {reason}")]
    Server {
        /// Why.
        reason: String,
    },
    /// A benchmark could not run as asked.
    #[error("benchmark: {reason}")]
    Bench {
        /// Why.
        reason: String,
    },
    /// JSON could not be written.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// A refused setting.
pub(crate) fn setting(setting: &'static str, reason: impl Into<String>) -> EvalError {
    EvalError::Setting {
        setting,
        reason: reason.into(),
    }
}

/// An I/O error with its path.
pub(crate) fn io(
    action: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> EvalError {
    let path = path.to_path_buf();
    move |source| EvalError::Io {
        action,
        path,
        source,
    }
}
