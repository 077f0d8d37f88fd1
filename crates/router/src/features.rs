//! The state the policy sees at each hop, as a fixed-length vector.

use serde::{Deserialize, Serialize};

use crate::memory::CONFIDENCE_FEATURES;

/// Length of the state vector.
pub const FEATURES: usize = 23;

/// Reader entries of the state ([`State::reader`]).
pub const READER_FEATURES: usize = 4;

/// The state of a question between hops (the pipeline fills it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The coming hop, from 0.
    pub hop: u32,
    /// The hop limit.
    pub max_hops: u32,
    /// Words in the question.
    pub question_words: usize,
    /// Background sensing ran.
    pub sensed: bool,
    /// Best coverage of the question by one background passage.
    pub sensing_coverage: f32,
    /// The calibrated confidence in the evidence so far (before the first
    /// hop: in the background passages, when sensing ran).
    pub confidence: f32,
    /// [`crate::memory::evidence_features`] of the evidence so far (before
    /// the first hop: of the background passages).
    pub evidence: [f32; CONFIDENCE_FEATURES],
    /// New passages the last round added.
    pub new_passages: usize,
    /// Hits per query.
    pub k: usize,
    /// Calls so far.
    pub local_calls: u32,
    /// Calls so far.
    pub network_calls: u32,
    /// Queries the memory suppressed so far.
    pub suppressed: u32,
    /// Bridge queries are available from the gathered passages.
    pub bridges_available: bool,
    /// The network failed in the last round.
    pub network_fault: bool,
    /// The question splits at a conjunction.
    pub compound: bool,
    /// The question asks for yes or no ([`crate::queries::is_polar`]).
    pub polar: bool,
    /// The reader's view of the evidence so far (the local engine's
    /// cross-encoder, when it has one): whether it read, the best
    /// passage's calibrated probability of answering, its margin over the
    /// second, and the share of the passages read that pass 0.5 (all 0
    /// without a reader).
    pub reader: [f32; READER_FEATURES],
}

fn flag(b: bool) -> f32 {
    f32::from(u8::from(b))
}

impl State {
    /// The policy's input, every entry in about `[0, 1]`.
    pub fn features(&self) -> [f32; FEATURES] {
        let per3 = |n: u32| (n as f32 / 3.0).min(1.0);
        [
            1.0,
            self.hop as f32 / self.max_hops.max(1) as f32,
            (self.question_words as f32 / 30.0).min(1.0),
            flag(self.sensed),
            self.sensing_coverage,
            self.confidence,
            self.evidence[0],
            self.evidence[1],
            self.evidence[2],
            self.evidence[5],
            self.evidence[6],
            (self.new_passages as f32 / self.k.max(1) as f32).min(1.0),
            per3(self.local_calls),
            per3(self.network_calls),
            per3(self.suppressed),
            flag(self.bridges_available),
            flag(self.network_fault),
            flag(self.compound),
            flag(self.polar),
            self.reader[0],
            self.reader[1],
            self.reader[2],
            self.reader[3],
        ]
    }
}
