//! The second stage: a cross-encoder re-scores the first stage's top
//! candidates for a query (each passage read together with the question),
//! and they are re-ordered by its logit. One implementation for the
//! engine (and so the browser package), the evaluation and training.

use std::sync::Arc;

use rlrag_encoder::{Calibration, Encoder, Head};

use crate::{Hit, RetrieverError};

/// A cross-encoder reranker.
#[derive(Clone, Debug)]
pub struct Reranker {
    encoder: Arc<Encoder>,
}

impl Reranker {
    /// A reranker over `encoder`, which must have a cross-encoder head.
    pub fn new(encoder: Arc<Encoder>) -> Result<Self, RetrieverError> {
        if !matches!(encoder.config().rlrag.head, Head::CrossEncoder { .. }) {
            return Err(RetrieverError::InvalidParameter {
                name: "reranker",
                reason: "the reranker's model is not a cross-encoder (its config.json needs \
                         the `cross_encoder` head: see `trainer train-reranker`)"
                    .into(),
            });
        }
        Ok(Self { encoder })
    }

    /// The cross-encoder.
    pub fn encoder(&self) -> &Arc<Encoder> {
        &self.encoder
    }

    /// The probability that a passage with this logit answers
    /// (the model's calibration, else the plain logistic).
    pub fn probability(&self, logit: f32) -> f32 {
        Calibration::probability(self.encoder.config().rlrag.calibration, logit)
    }

    /// `hits` with their first `m` re-scored by the cross-encoder (the
    /// score becomes its logit) and re-ordered, highest first (ties keep
    /// the first stage's order); the hits past `m` follow in their order.
    /// `text` gives a hit's passage (title and text); a hit without one is
    /// scored as an empty passage.
    pub async fn rerank(
        &self,
        query: &str,
        mut hits: Vec<Hit>,
        m: usize,
        text: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<Hit>, RetrieverError> {
        let m = m.min(hits.len());
        if m == 0 {
            return Ok(hits);
        }
        let texts: Vec<String> = hits[..m]
            .iter()
            .map(|h| text(&h.id).unwrap_or_default())
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let logits = self.encoder.score_pairs_async(query, &refs).await?;
        for (hit, logit) in hits.iter_mut().zip(logits) {
            hit.score = logit;
        }
        hits[..m].sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(hits)
    }
}
