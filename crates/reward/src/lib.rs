//! Metrics and rewards for rlrag: one implementation shared by the trainer, the
//! evaluation command and the browser.
//!
//! Everything here is pure and deterministic: no I/O, no clocks, no OS
//! entropy (the one random stream, [`rng`], is seeded).
//!
//! - [`answer`]: SQuAD answer normalisation, exact match, token F1 and answer
//!   containment (R3's binary passage reward, Search-R1's retrieval check).
//! - [`retrieval`]: nDCG@k, recall@k, precision@k, MRR@k and all-gold@k with the
//!   BEIR / `pytrec_eval` definitions over graded relevance judgements.
//! - [`format`]: the format-reward hook (a trait) and a tag-structure checker.
//! - [`cost`]: the cost of a retrieval episode (calls, rounds, latency).
//! - [`composite`]: `correctness + format − λ·cost`, configured by a serde struct.
//! - [`rng`]: the project's one seeded random stream (SplitMix64).
//! - [`ranking`]: ROC AUC of scores against binary labels (teachers, gates).
//!
//! ```
//! use rlrag_reward::answer::{exact_match, token_f1, contains_answer};
//! use rlrag_reward::retrieval::{ndcg_at_k, Qrels};
//!
//! assert!(exact_match("The Eiffel Tower!", "eiffel tower"));
//! assert!((token_f1("Paris France", "Paris") - 2.0 / 3.0).abs() < 1e-12);
//! assert!(contains_answer("It was built in 1889 in Paris.", "paris"));
//!
//! let qrels: Qrels = [("d1".to_string(), 2), ("d2".to_string(), 1)].into_iter().collect();
//! let perfect = ndcg_at_k(&["d1", "d2", "d3"], &qrels, 10);
//! assert!((perfect - 1.0).abs() < 1e-12);
//! ```

pub mod answer;
pub mod composite;
pub mod cost;
mod error;
pub mod format;
pub mod latency;
pub mod ranking;
pub mod retrieval;
pub mod rng;

pub use error::RewardError;
