//! What a question leaves behind: each hop's decision with its features,
//! probability, sub-queries, faults, confidence and cost, the background
//! sensing, why it stopped, and the evidence gathered.

use rlrag_reward::cost::Cost;
use serde::{Deserialize, Serialize};

use crate::Action;
use crate::SourceKind;
use crate::error::Fault;
use crate::memory::{Admission, CONFIDENCE_FEATURES};
use crate::queries::Alignment;
use crate::source::Hit;

/// One sub-query of a hop and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryRecord {
    /// The query text.
    pub text: String,
    /// Admitted or suppressed by the memory.
    pub admission: Admission,
}

/// A source that failed during a hop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// Which source.
    pub source: SourceKind,
    /// How.
    pub fault: Fault,
    /// The hop's queries then went to the local index instead.
    pub fell_back_to_local: bool,
}

/// One decision in a question's trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Hop number, from 0.
    pub hop: u32,
    /// The action taken.
    pub action: Action,
    /// The policy's probability of that action.
    pub probability: f32,
    /// The state features the policy saw.
    pub features: Vec<f32>,
    /// Which actions were allowed (order of [`Action::ALL`]).
    pub allowed: [bool; 5],
    /// The hop's sub-queries.
    pub queries: Vec<QueryRecord>,
    /// Passages the hop added (after the filter).
    pub new_passages: usize,
    /// Sources that failed.
    pub faults: Vec<FaultRecord>,
    /// The sub-query writer failed on this `decompose` hop (its heuristic
    /// queries were used alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer_fault: Option<Fault>,
    /// Confidence after the hop.
    pub confidence: f32,
    /// The evidence features after the hop (what the confidence read).
    pub evidence_features: [f32; CONFIDENCE_FEATURES],
    /// The reader's features after the hop ([`crate::features::State::reader`];
    /// all 0 without a reader, and in traces from before the reader).
    #[serde(default)]
    pub reader: [f32; crate::features::READER_FEATURES],
    /// What this hop spent (latency: this hop's wall time).
    pub cost: Cost,
}

/// The background-sensing step of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensingRecord {
    /// Whether it ran.
    pub ran: bool,
    /// The probability of that choice.
    pub probability: f32,
    /// The features the choice saw.
    pub features: Vec<f32>,
    /// What it added, when it ran.
    pub alignment: Option<Alignment>,
}

/// Why the question stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The policy chose to answer.
    Answer,
    /// The confidence passed the threshold.
    Confident,
    /// The hop limit.
    MaxHops,
}

/// The record of one question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// The question.
    pub question: String,
    /// Background sensing.
    pub sensing: SensingRecord,
    /// The hops, in order.
    pub decisions: Vec<Decision>,
    /// Why it stopped.
    pub stop: StopReason,
    /// Queries the memory suppressed.
    pub suppressed_queries: u32,
    /// Passages dropped as already seen.
    pub dropped_seen: u32,
    /// Passages collapsed as near-duplicates.
    pub collapsed: u32,
}

impl Trace {
    /// Total spending over all hops (and sensing).
    pub fn total_cost(&self) -> Cost {
        let mut c = Cost::default();
        for d in &self.decisions {
            c.local_calls += d.cost.local_calls;
            c.network_calls += d.cost.network_calls;
            c.rounds += d.cost.rounds;
            c.latency_ms += d.cost.latency_ms;
        }
        if self.sensing.ran {
            c.local_calls += 1;
        }
        c
    }
}

/// What a question produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The gathered passages, best first (reciprocal-rank fusion over every
    /// list of every hop), at most `k`; each `score` is the fused one (the
    /// sum of w/(60 + rank) over the lists that returned it, w being 1 for a
    /// network list, `local_weight` for a local one and `sensing_weight` for
    /// the background-sensing one), not its source's,
    /// which different sources do not share a scale for.
    pub evidence: Vec<Hit>,
    /// Every decision.
    pub trace: Trace,
    /// What it spent; latency is the question's wall time.
    pub cost: Cost,
}
