//! Scoring router outcomes with the reward crate's metrics (the same code in
//! training, evaluation and the browser) and summarising a policy.

use rlrag_retriever::Query;
use rlrag_reward::answer::{NormalizedText, exact_match_any, token_f1_max};
use rlrag_reward::composite::{Episode, RewardConfig};
use rlrag_reward::latency::Latency;
use rlrag_reward::retrieval::{all_gold_at_k, relevant_count};
use serde::{Deserialize, Serialize};

use crate::error::RouterError;
use crate::pipeline::Outcome;

/// Evidence depth of the reported metrics.
pub const DEPTH: usize = 10;

/// One question's scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuestionScore {
    /// An answer occurs in the top-10 evidence (`None`: no answers).
    pub containment: Option<bool>,
    /// Every gold passage is in the top-10 evidence (`None`: no labels).
    pub all_gold: Option<bool>,
    /// Exact match of the generator's answer (`None`: no generator or no answers).
    pub exact_match: Option<f64>,
    /// Token F1 of the generator's answer (`None` as for `exact_match`).
    pub f1: Option<f64>,
    /// The LLM judge's verdict on the answer (`None`: not judged).
    pub judge: Option<bool>,
    /// Network calls.
    pub network_calls: u32,
    /// Retrieval rounds.
    pub rounds: u32,
    /// Wall time in milliseconds.
    pub latency_ms: f64,
    /// Queries the memory suppressed.
    pub suppressed: u32,
    /// The reward of the episode.
    pub reward: f64,
}

/// Score an outcome against the question's labels; `reward` gives the
/// episode's reward (correctness from containment by default, or EM/F1 of
/// `prediction`, the generator's answer from the evidence, minus λ·cost).
pub fn score(
    outcome: &Outcome,
    query: &Query,
    reward: &RewardConfig,
    prediction: Option<&str>,
) -> Result<QuestionScore, RouterError> {
    let top: Vec<_> = outcome.evidence.iter().take(DEPTH).collect();
    let texts: Vec<String> = top
        .iter()
        .map(|h| format!("{} {}", h.title, h.text))
        .collect();
    let containment = (!query.answers.is_empty()).then(|| {
        texts
            .iter()
            .any(|t| NormalizedText::new(t).contains_any(&query.answers))
    });
    let ids: Vec<&str> = top.iter().map(|h| h.id.as_str()).collect();
    let all_gold =
        (relevant_count(&query.qrels) > 0).then(|| all_gold_at_k(&ids, &query.qrels, DEPTH) >= 1.0);
    let text_refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let answers: Vec<&str> = query.answers.iter().map(String::as_str).collect();
    let labelled = prediction.filter(|_| !query.answers.is_empty());
    let exact_match = labelled.map(|p| f64::from(u8::from(exact_match_any(p, &query.answers))));
    let f1 = labelled.map(|p| token_f1_max(p, &query.answers));
    let episode = Episode {
        prediction,
        evidence: &text_refs,
        answers: &answers,
        cost: outcome.cost,
        format_score: None,
    };
    let r = reward.reward(&episode)?;
    Ok(QuestionScore {
        containment,
        all_gold,
        exact_match,
        f1,
        judge: None,
        network_calls: outcome.cost.network_calls,
        rounds: outcome.cost.rounds,
        latency_ms: outcome.cost.latency_ms,
        suppressed: outcome.trace.suppressed_queries,
        reward: r.total,
    })
}

/// A policy over a question set (the `eval-router` JSON per policy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyReport {
    /// Share of questions whose top-10 evidence holds an answer.
    #[serde(rename = "containment@10", skip_serializing_if = "Option::is_none")]
    pub containment: Option<f64>,
    /// Share of questions with every gold passage in the top 10.
    #[serde(rename = "all_gold@10", skip_serializing_if = "Option::is_none")]
    pub all_gold: Option<f64>,
    /// Mean exact match of the generator's answers (with a generator).
    #[serde(rename = "em", skip_serializing_if = "Option::is_none")]
    pub exact_match: Option<f64>,
    /// Mean token F1 of the generator's answers (with a generator).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub f1: Option<f64>,
    /// Share of answers the LLM judge accepted (with `--judge`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judge: Option<f64>,
    /// Network calls per question (always-network makes exactly one).
    pub network_share: f64,
    /// Retrieval rounds per question.
    pub rounds: f64,
    /// Per-question wall time.
    pub latency_ms: Latency,
    /// Queries the memory suppressed per question.
    pub suppressed_per_question: f64,
    /// Mean reward.
    pub reward: f64,
    /// Questions scored.
    pub questions: usize,
}

/// Summarise per-question scores.
pub fn summarize(scores: &[QuestionScore]) -> PolicyReport {
    let n = scores.len().max(1) as f64;
    let share = |f: &dyn Fn(&QuestionScore) -> Option<bool>| {
        let labelled: Vec<bool> = scores.iter().filter_map(f).collect();
        (!labelled.is_empty())
            .then(|| labelled.iter().filter(|&&b| b).count() as f64 / labelled.len() as f64)
    };
    let mean = |f: &dyn Fn(&QuestionScore) -> Option<f64>| {
        let v: Vec<f64> = scores.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let lat: Vec<f64> = scores.iter().map(|s| s.latency_ms).collect();
    PolicyReport {
        containment: share(&|s| s.containment),
        all_gold: share(&|s| s.all_gold),
        exact_match: mean(&|s| s.exact_match),
        f1: mean(&|s| s.f1),
        judge: share(&|s| s.judge),
        network_share: scores
            .iter()
            .map(|s| f64::from(s.network_calls))
            .sum::<f64>()
            / n,
        rounds: scores.iter().map(|s| f64::from(s.rounds)).sum::<f64>() / n,
        latency_ms: Latency::of(lat),
        suppressed_per_question: scores.iter().map(|s| f64::from(s.suppressed)).sum::<f64>() / n,
        reward: scores.iter().map(|s| s.reward).sum::<f64>() / n,
        questions: scores.len(),
    }
}
