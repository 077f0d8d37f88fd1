//! Retrieval for rlrag: documents and queries, dataset loaders for the BEIR,
//! HotpotQA and QA formats, the indexes (Okapi BM25, learned-sparse and
//! bag-of-tokens inverted indexes, flat and HNSW dense indexes), and the
//! [`Engine`]: one corpus with every index over it and the models that
//! search it. The engine is the one way to search a corpus: the browser
//! package, the command line's evaluation and the router's local source all
//! call [`Engine::search`].
//!
//! Every index returns scored [`Hit`]s, saves to a versioned, checksummed
//! file ([`persist`]) and accepts document additions and removals without a
//! rebuild.
//!
//! ```
//! use rlrag_retriever::{Bm25Index, Document, SavedIndex};
//!
//! let mut index = Bm25Index::default();
//! index.add_documents(&[
//!     Document::new("d1", "Eiffel Tower", "A wrought-iron tower in Paris, completed in 1889."),
//!     Document::new("d2", "Big Ben", "The clock tower at the Palace of Westminster in London."),
//! ])?;
//! let hits = index.search("towers of Paris", 10)?;
//! assert_eq!(hits[0].id, "d1");
//!
//! // Save, load, and get the same ranking back.
//! let restored = Bm25Index::from_bytes(&index.to_bytes()?)?;
//! assert_eq!(restored.search("towers of Paris", 10)?, hits);
//! # Ok::<(), rlrag_retriever::RetrieverError>(())
//! ```

pub mod analyzer;
pub mod block_max;
pub mod bm25;
pub mod data;
pub mod dense_index;
pub mod engine;
mod error;
mod failpoint;
pub mod fusion;
pub mod hash;
mod inverted;
pub mod neural;
pub mod persist;
pub mod rerank;
/// The project's one seeded random stream (it lives in `rlrag-reward`, the
/// crate every other one builds on).
pub use rlrag_reward::rng;
pub mod sparse_index;
mod types;

pub use analyzer::{Analyzer, AnalyzerConfig};
pub use block_max::BlockMaxIndex;
pub use bm25::{Bm25Index, Bm25Params};
pub use data::{Dataset, DatasetFormat, LoadReport, Split};
pub use dense_index::{DenseSearch, FlatIndex, HnswIndex, HnswParams, LiveHnsw};
pub use engine::{Augmentation, Engine, EngineModels, EngineOptions, SearchMode};
pub use error::{IndexFileError, RetrieverError};
pub use fusion::Fusion;
pub use neural::BotRetriever;
pub use persist::SavedIndex;
pub use rerank::Reranker;
pub use sparse_index::{SparseIndex, Weighting};
pub use types::{Document, Hit, Query, TermWeight};
