//! Reward environments: how good each retrieved passage is for a question.
//! Every judgement goes through the reward crate (one implementation shared
//! by training, evaluation and the browser).

use rlrag_retriever::{Document, Query};
use rlrag_reward::answer::{NormalizedText, exact_match_any};
use serde::Serialize;

use crate::TrainError;
use rlrag_router::llm::LlmClient;

/// Counters of an environment's work, for the training log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EnvStats {
    /// Passages judged.
    pub judged: u64,
    /// Judgements that failed (endpoint errors after retries) and scored 0.
    pub failures: u64,
}

/// Judges retrieved passages: 1 when the passage serves the question, else 0.
pub trait RewardEnv {
    /// Short name for logs and manifests (`qrels`, `containment`, `llm`).
    fn name(&self) -> &str;

    /// One reward per passage, in order.
    fn rewards(&mut self, query: &Query, passages: &[&Document]) -> Result<Vec<f32>, TrainError>;

    /// Counters so far.
    fn stats(&self) -> EnvStats;
}

/// A binary reward.
fn reward(hit: bool) -> f32 {
    f32::from(u8::from(hit))
}

/// The error for a question without the labels an environment judges by.
fn unlabeled(query: &Query, missing: &str, hint: &str) -> TrainError {
    TrainError::Config {
        name: "env",
        reason: format!("question `{}` has no {missing} ({hint})", query.id),
    }
}

/// Relevance judgements: reward 1 for a passage graded above 0.
#[derive(Debug, Default)]
pub struct QrelsEnv {
    stats: EnvStats,
}

impl RewardEnv for QrelsEnv {
    fn name(&self) -> &str {
        "qrels"
    }

    fn rewards(&mut self, query: &Query, passages: &[&Document]) -> Result<Vec<f32>, TrainError> {
        if query.qrels.is_empty() {
            return Err(unlabeled(
                query,
                "relevance judgements",
                "use --env containment or llm",
            ));
        }
        self.stats.judged += passages.len() as u64;
        Ok(passages
            .iter()
            .map(|d| reward(query.qrels.get(&d.id).is_some_and(|&g| g > 0)))
            .collect())
    }

    fn stats(&self) -> EnvStats {
        self.stats
    }
}

/// R3's binary system reward without a generator: 1 when a gold answer
/// occurs (whole words, SQuAD-normalised) in the passage.
#[derive(Debug, Default)]
pub struct ContainmentEnv {
    stats: EnvStats,
}

impl RewardEnv for ContainmentEnv {
    fn name(&self) -> &str {
        "containment"
    }

    fn rewards(&mut self, query: &Query, passages: &[&Document]) -> Result<Vec<f32>, TrainError> {
        if query.answers.is_empty() {
            return Err(unlabeled(query, "answers", "use --env qrels"));
        }
        self.stats.judged += passages.len() as u64;
        Ok(passages
            .iter()
            .map(|d| reward(NormalizedText::new(&d.full_text()).contains_any(&query.answers)))
            .collect())
    }

    fn stats(&self) -> EnvStats {
        self.stats
    }
}

/// How the generator's output becomes a reward.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum LlmScoring {
    /// Generate an answer; 1 when it matches a gold answer exactly (SQuAD
    /// normalisation) or contains one.
    Answer,
    /// One forward pass: 1 when the probability of the gold answer after the
    /// prompt reaches the threshold (R3 uses 0.65). Servers without
    /// log-probabilities fall back to `Answer` for that call.
    GoldProbability {
        /// The probability threshold.
        threshold: f32,
    },
}

/// A generator answers the question from each passage alone.
#[derive(Debug)]
pub struct LlmEnv {
    client: LlmClient,
    scoring: LlmScoring,
    stats: EnvStats,
}

impl LlmEnv {
    /// An environment calling `client`.
    pub fn new(client: LlmClient, scoring: LlmScoring) -> Self {
        Self {
            client,
            scoring,
            stats: EnvStats::default(),
        }
    }

    fn judge(&self, query: &Query, passage: &str) -> Result<f32, TrainError> {
        let answer_reward = || -> Result<f32, TrainError> {
            let answer = self.client.answer(&query.text, passage)?;
            let hit = exact_match_any(&answer, &query.answers)
                || NormalizedText::new(&answer).contains_any(&query.answers);
            Ok(reward(hit))
        };
        match self.scoring {
            LlmScoring::Answer => answer_reward(),
            LlmScoring::GoldProbability { threshold } => {
                let mut best: Option<f32> = None;
                for gold in &query.answers {
                    match self.client.gold_probability(&query.text, passage, gold)? {
                        Some(p) => best = Some(best.map_or(p, |b| b.max(p))),
                        None => return answer_reward(),
                    }
                }
                Ok(reward(best.is_some_and(|p| p >= threshold)))
            }
        }
    }
}

impl RewardEnv for LlmEnv {
    fn name(&self) -> &str {
        "llm"
    }

    fn rewards(&mut self, query: &Query, passages: &[&Document]) -> Result<Vec<f32>, TrainError> {
        if query.answers.is_empty() {
            return Err(unlabeled(
                query,
                "answers",
                "the generator's replies are checked against them",
            ));
        }
        let mut out = Vec::with_capacity(passages.len());
        for d in passages {
            self.stats.judged += 1;
            // A timeout or a bad reply scores 0 and is counted; training goes on.
            let r = self.judge(query, &d.full_text()).unwrap_or_else(|_| {
                self.stats.failures += 1;
                0.0
            });
            out.push(r);
        }
        Ok(out)
    }

    fn stats(&self) -> EnvStats {
        self.stats
    }
}
