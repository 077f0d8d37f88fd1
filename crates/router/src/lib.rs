//! Routing for rlrag: which source answers a retrieval step (the local index,
//! the network, or none), and the trace of every decision.
//!
//! This crate holds the shared types today; the pipeline (background sensing,
//! concurrent sub-queries, memory-filter-confidence) and the learned policy
//! arrive with the router issue.
//!
//! ```
//! use rlrag_router::{Action, SourceKind};
//!
//! assert_eq!(Action::ALL.len(), 5);
//! assert_eq!(Action::Network.sources(), &[SourceKind::Network]);
//! assert!(Action::Answer.sources().is_empty());
//! ```

use rlrag_reward::cost::Cost;
use serde::{Deserialize, Serialize};

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
    /// What this hop spent.
    pub cost: Cost,
}

/// The record of one question: every decision, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// The decisions, hop by hop.
    pub decisions: Vec<Decision>,
}

impl Trace {
    /// Total spending over all hops.
    pub fn total_cost(&self) -> Cost {
        self.decisions.iter().fold(Cost::default(), |acc, d| Cost {
            local_calls: acc.local_calls + d.cost.local_calls,
            network_calls: acc.network_calls + d.cost.network_calls,
            rounds: acc.rounds + d.cost.rounds,
            latency_ms: acc.latency_ms + d.cost.latency_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_sums_costs_and_serialises() {
        let hop = |hop, action, network_calls| Decision {
            hop,
            action,
            probability: 0.5,
            features: vec![1.0],
            cost: Cost {
                local_calls: 1,
                network_calls,
                rounds: 1,
                latency_ms: 2.5,
            },
        };
        let trace = Trace {
            decisions: vec![hop(0, Action::Local, 0), hop(1, Action::Both, 1)],
        };
        let total = trace.total_cost();
        assert_eq!(
            (total.local_calls, total.network_calls, total.rounds),
            (2, 1, 2)
        );
        assert_eq!(total.latency_ms, 5.0);
        let json = serde_json::to_string(&trace).expect("serialises");
        assert!(json.contains("\"action\":\"both\""));
        let back: Trace = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, trace);
    }
}
