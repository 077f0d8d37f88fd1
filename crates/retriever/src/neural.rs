//! What the encoders add to retrieval: the bag-of-tokens retriever that
//! R3 trains against (its bags never change with the model, so a training
//! step only swaps the encoder), the late-parametric re-rank it shares with
//! the [`crate::Engine`], and the matched terms that explain a hit.

use std::collections::HashMap;
use std::sync::Arc;

use rlrag_encoder::{Encoder, SparseVector};

use crate::sparse_index::{SparseIndex, Weighting};
use crate::{Document, Hit, RetrieverError};

/// Documents per encoder call while indexing (also the progress granularity).
pub const ENCODE_CHUNK: usize = 32;

pub(crate) fn vocab_size(encoder: &Encoder) -> u32 {
    encoder.config().bert.vocab_size as u32
}

/// Refuse a saved sparse index built for another weighting or vocabulary.
fn check_sparse_index(
    encoder: &Encoder,
    index: &SparseIndex,
    weighting: Weighting,
) -> Result<(), RetrieverError> {
    if index.weighting() != weighting || index.vocab_size() != vocab_size(encoder) {
        return Err(RetrieverError::InvalidParameter {
            name: "index",
            reason: format!(
                "the index holds {:?} vectors over {} terms; this retriever needs {weighting:?} over {}",
                index.weighting(),
                index.vocab_size(),
                vocab_size(encoder)
            ),
        });
    }
    Ok(())
}

/// Terms present in both vectors with their product, heaviest first.
pub(crate) fn matched_terms(
    encoder: &Encoder,
    q: &SparseVector,
    d: &SparseVector,
) -> Vec<(String, f32)> {
    let dw: HashMap<u32, f32> = d.terms.iter().copied().collect();
    let mut out: Vec<(String, f32)> = q
        .terms
        .iter()
        .filter_map(|&(t, w)| {
            dw.get(&t)
                .map(|&x| (encoder.token(t).unwrap_or_else(|| format!("#{t}")), w * x))
        })
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

/// SiDR's bag-of-tokens retrieval: a document is its set of tokenizer ids (no
/// encoder run at indexing, so the index never needs rebuilding when the model
/// changes); the query is encoded by the sparse head and scored against the
/// bag. Optionally the top `rerank_m` candidates are encoded with the current
/// model and re-scored by the learned-sparse dot product (late-parametric).
#[derive(Debug)]
pub struct BotRetriever {
    encoder: Arc<Encoder>,
    index: SparseIndex,
    texts: HashMap<String, String>,
    rerank_m: usize,
}

impl BotRetriever {
    /// An empty retriever; `rerank_m = 0` disables re-ranking.
    pub fn new(encoder: Arc<Encoder>, rerank_m: usize) -> Result<Self, RetrieverError> {
        if encoder.sparse_settings().is_none() {
            return Err(RetrieverError::InvalidParameter {
                name: "encoder",
                reason: "the bag-of-tokens retriever needs a model with a sparse head".into(),
            });
        }
        let index = SparseIndex::new(Weighting::Binary, vocab_size(&encoder))?;
        Ok(Self {
            encoder,
            index,
            texts: HashMap::new(),
            rerank_m,
        })
    }

    /// Index documents by their token bags (tokenizer only).
    pub fn add_documents(&mut self, docs: &[Document]) -> Result<(), RetrieverError> {
        let mut batch = Vec::with_capacity(docs.len());
        for d in docs {
            let text = d.full_text();
            let bag = self.encoder.bag_of_tokens(&text)?;
            batch.push((
                d.id.clone(),
                SparseVector {
                    terms: bag.into_iter().map(|t| (t, 1.0)).collect(),
                },
            ));
        }
        self.index.add(&batch)?;
        for d in docs {
            self.texts.insert(d.id.clone(), d.full_text());
        }
        Ok(())
    }

    /// Remove documents by id; returns how many went.
    pub fn remove_documents<S: AsRef<str>>(&mut self, ids: &[S]) -> usize {
        for id in ids {
            self.texts.remove(id.as_ref());
        }
        self.index.remove(ids)
    }

    /// Search with other weights of the same tokenizer and vocabulary (a
    /// training step's result): the bags stay valid, nothing is re-indexed.
    pub fn set_encoder(&mut self, encoder: Arc<Encoder>) -> Result<(), RetrieverError> {
        if encoder.sparse_settings().is_none() {
            return Err(RetrieverError::InvalidParameter {
                name: "encoder",
                reason: "the bag-of-tokens retriever needs a model with a sparse head".into(),
            });
        }
        check_sparse_index(&encoder, &self.index, Weighting::Binary)?;
        self.encoder = encoder;
        Ok(())
    }

    /// The number of candidates re-ranked by the model.
    pub fn rerank_m(&self) -> usize {
        self.rerank_m
    }

    /// Documents held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no documents are held.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The best `k` documents for `query`, best first.
    pub fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>, RetrieverError> {
        let q = self
            .encoder
            .encode_sparse(&[query])?
            .pop()
            .unwrap_or_default();
        let candidates = self.index.search(&q, k.max(self.rerank_m));
        if self.rerank_m == 0 || candidates.is_empty() {
            return Ok(candidates.into_iter().take(k).collect());
        }
        let m = self.rerank_m.min(candidates.len());
        let texts: Vec<&str> = candidates[..m]
            .iter()
            .map(|h| self.texts.get(&h.id).map_or("", String::as_str))
            .collect();
        let vectors = self.encoder.encode_sparse(&texts)?;
        Ok(rerank(candidates, &vectors, &q, k))
    }
}

/// Late-parametric re-rank: the first `vectors.len()` candidates re-scored by
/// the learned-sparse dot product with `q`; the rest keep their order below
/// them. Returns the top `k`.
pub(crate) fn rerank(
    candidates: Vec<Hit>,
    vectors: &[SparseVector],
    q: &SparseVector,
    k: usize,
) -> Vec<Hit> {
    let m = vectors.len().min(candidates.len());
    let mut reranked: Vec<Hit> = candidates[..m]
        .iter()
        .zip(vectors)
        .map(|(h, v)| Hit::new(h.id.clone(), q.dot(v)))
        .collect();
    reranked.sort_by(|a, b| b.score.total_cmp(&a.score));
    // Candidates beyond m keep their bag-of-tokens order, placed below the
    // re-ranked ones (their scores are shifted under the lowest re-ranked score).
    let floor = reranked.last().map_or(0.0, |h| h.score);
    let tail = candidates[m..]
        .iter()
        .enumerate()
        .map(|(i, h)| Hit::new(h.id.clone(), floor - 1.0 - i as f32 * 1e-3));
    reranked.into_iter().chain(tail).take(k).collect()
}
