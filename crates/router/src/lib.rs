//! Routing for rlrag: the KunLunBaizeRAG and RAG-R1 mechanisms as one
//! retrieval pipeline. Per question, hop by hop: background sensing aligns the
//! question ([`queries::align`]); a policy ([`policy`]) picks `answer`,
//! `local`, `network`, `both` or `decompose`; up to three sub-queries per round
//! ([`queries::bridge_queries`]) go to the chosen [`source::Source`]s at once;
//! the query memory, the evidence filter and the calibrated confidence
//! ([`memory`]) suppress repeats, drop seen passages and stop early. Every
//! decision is traced ([`pipeline::Trace`]). The same code runs natively (an
//! HTTP network source, [`http`]) and in the browser (a JS callback source).
//!
//! ```
//! use rlrag_router::{Action, SourceKind};
//!
//! assert_eq!(Action::ALL.len(), 5);
//! assert_eq!(Action::Network.sources(), &[SourceKind::Network]);
//! assert!(Action::Answer.sources().is_empty());
//! ```

use serde::{Deserialize, Serialize};

pub mod error;
pub mod eval;
pub mod features;
#[cfg(not(target_arch = "wasm32"))]
pub mod http;
#[cfg(not(target_arch = "wasm32"))]
pub mod llm;
pub mod memory;
#[cfg(not(target_arch = "wasm32"))]
pub mod opensearch;
pub mod pipeline;
pub mod policy;
pub mod queries;
pub mod source;
mod trace;
pub mod writer;

pub use error::{Fault, RouterError};
#[cfg(not(target_arch = "wasm32"))]
pub use llm::{LlmClient, LlmConfig};
pub use pipeline::{Clock, Decider, Outcome, PipelineConfig, Router, Trace};
pub use policy::{FixedPolicy, LearnedDecider, LearnedPolicy, PolicyConfig, RouterConfig, Sensed};
pub use source::{Hit, LocalSource, Source};
pub use writer::QueryWriter;

/// Most sub-queries in one round (RAG-R1).
pub const MAX_SUB_QUERIES: usize = 3;

/// The wall clock natively.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Clone, Copy)]
pub struct SystemClock(std::time::Instant);

#[cfg(not(target_arch = "wasm32"))]
impl Default for SystemClock {
    fn default() -> Self {
        Self(std::time::Instant::now())
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Clock for SystemClock {
    fn now_ms(&self) -> f64 {
        self.0.elapsed().as_secs_f64() * 1000.0
    }
}

/// Where retrieved passages come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// The in-process index.
    Local,
    /// A remote search endpoint (or a JS callback in the browser).
    Network,
}

/// What the policy may do at each hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Stop retrieving and answer from the evidence gathered.
    Answer,
    /// Query the local index.
    Local,
    /// Query the network source.
    Network,
    /// Query both sources concurrently.
    Both,
    /// Split the question into up to three sub-queries.
    Decompose,
}

impl Action {
    /// Every action, in the order of the policy's output units.
    pub const ALL: [Action; 5] = [
        Action::Answer,
        Action::Local,
        Action::Network,
        Action::Both,
        Action::Decompose,
    ];

    /// Position in [`Action::ALL`] (the policy's output unit).
    pub fn index(self) -> usize {
        match self {
            Action::Answer => 0,
            Action::Local => 1,
            Action::Network => 2,
            Action::Both => 3,
            Action::Decompose => 4,
        }
    }

    /// The sources an action queries directly.
    pub fn sources(self) -> &'static [SourceKind] {
        match self {
            Action::Answer => &[],
            Action::Local | Action::Decompose => &[SourceKind::Local],
            Action::Network => &[SourceKind::Network],
            Action::Both => &[SourceKind::Local, SourceKind::Network],
        }
    }
}
