use std::path::PathBuf;

use thiserror::Error;

/// Why an index file was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum IndexFileError {
    /// The file does not start with the rlrag index magic bytes.
    #[error("not an rlrag index file (bad magic bytes)")]
    BadMagic,
    /// The file ends before its declared length.
    #[error("truncated index file: need {needed} bytes, have {have}")]
    Truncated {
        /// Bytes the header promises.
        needed: u64,
        /// Bytes present.
        have: u64,
    },
    /// Bytes after the end of the declared payload and checksum.
    #[error("index file has {extra} unexpected trailing bytes")]
    TrailingBytes {
        /// How many bytes follow the checksum.
        extra: u64,
    },
    /// The stored checksum does not match the content.
    #[error(
        "index file checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the file is corrupt"
    )]
    Checksum {
        /// Checksum in the file.
        stored: u32,
        /// Checksum of the bytes read.
        computed: u32,
    },
    /// The container or payload version is not one this build reads.
    #[error("unsupported {what} version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// Container or payload.
        what: &'static str,
        /// Version in the file.
        found: u16,
        /// Version this build reads.
        supported: u16,
    },
    /// The file holds another kind of index.
    #[error("index file holds a `{found}` index, expected `{expected}`")]
    WrongKind {
        /// Kind the caller asked for.
        expected: String,
        /// Kind in the file.
        found: String,
    },
    /// The payload passed the checksum but does not decode or is inconsistent.
    #[error("index payload is invalid: {0}")]
    InvalidPayload(String),
}

/// Errors of the retriever crate.
#[derive(Debug, Error)]
pub enum RetrieverError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A required file of a dataset is missing.
    #[error("{}: missing {what}", path.display())]
    MissingFile {
        /// The path looked for.
        path: PathBuf,
        /// What the file should hold.
        what: &'static str,
    },
    /// A line (or, for whole-file JSON, a position) of a data file is malformed.
    #[error("{}:{line}: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The same id appears twice where ids must be unique.
    #[error("{}{}: duplicate id `{id}`", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    DuplicateId {
        /// The file.
        path: PathBuf,
        /// 1-based line number of the second occurrence, where the format has lines.
        line: Option<usize>,
        /// The repeated id.
        id: String,
    },
    /// A dataset has no documents.
    #[error("{}: the corpus is empty", path.display())]
    EmptyCorpus {
        /// The dataset path.
        path: PathBuf,
    },
    /// A dataset split has no usable queries.
    #[error("{}: no queries in split `{split}`", path.display())]
    EmptyQueries {
        /// The dataset path.
        path: PathBuf,
        /// The split asked for.
        split: String,
    },
    /// The format of a dataset path could not be recognised.
    #[error("{}: cannot tell the dataset format ({reason}); pass --format beir|hotpotqa|qa", path.display())]
    UnknownFormat {
        /// The dataset path.
        path: PathBuf,
        /// What was looked for.
        reason: String,
    },
    /// A split that the dataset does not have.
    #[error("{}: no split `{split}` (available: {})", path.display(), available.join(", "))]
    UnknownSplit {
        /// The dataset path.
        path: PathBuf,
        /// The split asked for.
        split: String,
        /// The splits that exist.
        available: Vec<String>,
    },
    /// A parameter is out of range.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A document id is already in the index.
    #[error("document `{id}` is already in the index")]
    DuplicateDocument {
        /// The id.
        id: String,
    },
    /// A search mode the engine has no index for.
    #[error("search mode `{mode}` is not available: {reason}")]
    ModeUnavailable {
        /// The mode asked for.
        mode: &'static str,
        /// Why it is missing.
        reason: String,
    },
    /// A saved index was built with other model files than the ones loaded.
    #[error(
        "the saved index was built with another {model} model (fingerprint {saved:#018x}, loaded {loaded:#018x}): load that model or index the documents again"
    )]
    ModelMismatch {
        /// `sparse` or `dense`.
        model: &'static str,
        /// Fingerprint stored with the index.
        saved: u64,
        /// Fingerprint of the loaded model files.
        loaded: u64,
    },
    /// The encoder failed.
    #[error(transparent)]
    Encoder(#[from] rlrag_encoder::EncoderError),
    /// A saved index was refused.
    #[error(transparent)]
    IndexFile(#[from] IndexFileError),
}
