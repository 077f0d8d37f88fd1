//! The second stage: a cross-encoder re-scores the first stage's top
//! candidates for a query (each passage read together with the question),
//! and they are re-ordered by its logit. One implementation for the
//! engine (and so the browser package), the evaluation and training.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rlrag_encoder::{Calibration, Encoder, Head};

use crate::hash::fingerprint;
use crate::{Hit, RetrieverError};

/// Most (query, passage) logits a reranker remembers; past it the memory
/// starts over.
const CACHE_PAIRS: usize = 1 << 18;

/// A cross-encoder reranker. Logits are remembered per (query, passage)
/// text, so that a question read again (the router's rollouts, repeated
/// searches) costs no model run; copies share the memory.
#[derive(Clone, Debug)]
pub struct Reranker {
    encoder: Arc<Encoder>,
    cache: Arc<Mutex<HashMap<u64, f32>>>,
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
        Ok(Self {
            encoder,
            cache: Arc::default(),
        })
    }

    /// The cross-encoder's logit of each passage for `query`, in order:
    /// remembered ones from memory, the others in one batch.
    pub async fn logits(&self, query: &str, passages: &[&str]) -> Result<Vec<f32>, RetrieverError> {
        let keys: Vec<u64> = passages
            .iter()
            .map(|p| fingerprint(&[query.as_bytes(), p.as_bytes()]))
            .collect();
        let mut out: Vec<Option<f32>> = {
            // A poisoned memory (a panic elsewhere mid-insert) is only a cache.
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            keys.iter().map(|k| cache.get(k).copied()).collect()
        };
        let missing: Vec<usize> = (0..passages.len()).filter(|&i| out[i].is_none()).collect();
        if !missing.is_empty() {
            let texts: Vec<&str> = missing.iter().map(|&i| passages[i]).collect();
            let fresh = self.encoder.score_pairs_async(query, &texts).await?;
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() + fresh.len() > CACHE_PAIRS {
                cache.clear();
            }
            for (&i, logit) in missing.iter().zip(fresh) {
                cache.insert(keys[i], logit);
                out[i] = Some(logit);
            }
        }
        Ok(out.into_iter().map(|l| l.unwrap_or(f32::NAN)).collect())
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
        let logits = self.logits(query, &refs).await?;
        for (hit, logit) in hits.iter_mut().zip(logits) {
            hit.score = logit;
        }
        hits[..m].sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(hits)
    }
}
