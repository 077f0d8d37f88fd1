//! rlrag: reinforcement-learned retrieval that trains natively and runs in the
//! browser. This crate gathers the workspace's libraries under one name and
//! holds the workspace-wide integration tests and benchmarks.
//!
//! - [`reward`]: answer and retrieval metrics, composite rewards.
//! - [`retriever`]: documents, dataset loaders, indexes.
//! - [`encoder`]: the burn BERT encoders (dense and learned-sparse heads).
//! - [`router`]: routing types and traces.
//! - [`generator`]: the answering model's files (GGUF).
//!
//! An end-to-end run on a tiny corpus: index, search, score the ranking.
//!
//! ```
//! use rlrag::retriever::{Bm25Index, Document};
//! use rlrag::reward::retrieval::{ndcg_at_k, Qrels};
//! use rlrag::reward::answer::contains_answer;
//!
//! let docs = [
//!     Document::new("eiffel", "Eiffel Tower", "Completed in 1889 for the World's Fair in Paris."),
//!     Document::new("ben", "Big Ben", "The Great Bell of the clock at Westminster, London."),
//!     Document::new("liberty", "Statue of Liberty", "A gift from France, dedicated in 1886."),
//! ];
//! let mut index = Bm25Index::default();
//! index.add_documents(&docs)?;
//!
//! let hits = index.search("When was the tower in Paris completed?", 10)?;
//! let ranked: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
//! assert_eq!(ranked[0], "eiffel");
//!
//! let qrels: Qrels = [("eiffel".to_string(), 1)].into_iter().collect();
//! assert_eq!(ndcg_at_k(&ranked, &qrels, 10), 1.0);
//! assert!(contains_answer(&docs[0].text, "1889"));
//! # Ok::<(), rlrag::retriever::RetrieverError>(())
//! ```

pub use rlrag_encoder as encoder;
pub use rlrag_generator as generator;
pub use rlrag_retriever as retriever;
pub use rlrag_reward as reward;
pub use rlrag_router as router;
