//! Retrievers over the encoders: learned sparse, bag of tokens (with
//! late-parametric re-ranking), dense (flat or HNSW), and hybrid fusion.

use std::collections::HashMap;
use std::sync::Arc;

use rlrag_encoder::{Encoder, SparseVector};

use crate::dense_index::{FlatIndex, HnswIndex, HnswParams};
use crate::fusion::{Fusion, fuse};
use crate::sparse_index::{SparseIndex, Weighting};
use crate::{AnnProbe, Document, Hit, Retriever, RetrieverError};

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

/// Encode documents (title + text) [`ENCODE_CHUNK`] at a time, handing each
/// chunk's `(id, vector)` pairs to `sink` and calling `progress` with the
/// number done.
fn encode_in_chunks<V>(
    docs: &[Document],
    encode: impl Fn(&[&str]) -> Result<Vec<V>, RetrieverError>,
    mut sink: impl FnMut(&[(String, V)]) -> Result<(), RetrieverError>,
    progress: &mut dyn FnMut(usize),
) -> Result<(), RetrieverError> {
    for chunk in docs.chunks(ENCODE_CHUNK) {
        let texts: Vec<String> = chunk.iter().map(Document::full_text).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vectors = encode(&refs)?;
        let batch: Vec<(String, V)> = chunk.iter().map(|d| d.id.clone()).zip(vectors).collect();
        sink(&batch)?;
        progress(chunk.len());
    }
    Ok(())
}

/// Learned-sparse retrieval: documents and queries encoded by the sparse head,
/// scored by dot product over an inverted index.
#[derive(Debug)]
pub struct SparseRetriever {
    encoder: Arc<Encoder>,
    index: SparseIndex,
}

impl SparseRetriever {
    /// An empty retriever over a sparse-head encoder.
    pub fn new(encoder: Arc<Encoder>) -> Result<Self, RetrieverError> {
        if encoder.sparse_settings().is_none() {
            return Err(RetrieverError::InvalidParameter {
                name: "encoder",
                reason: "the sparse retriever needs a model with a sparse head".into(),
            });
        }
        let index = SparseIndex::new(Weighting::Learned, vocab_size(&encoder));
        Self::with_index(encoder, index)
    }

    /// A retriever over a saved index of learned-sparse document vectors; the
    /// index must use learned weights over this encoder's vocabulary.
    pub fn with_index(encoder: Arc<Encoder>, index: SparseIndex) -> Result<Self, RetrieverError> {
        if encoder.sparse_settings().is_none() {
            return Err(RetrieverError::InvalidParameter {
                name: "encoder",
                reason: "the sparse retriever needs a model with a sparse head".into(),
            });
        }
        check_sparse_index(&encoder, &index, Weighting::Learned)?;
        Ok(Self { encoder, index })
    }

    /// Encode and index documents (title + text), calling `progress` with the
    /// number done after each chunk.
    pub fn add_documents(
        &mut self,
        docs: &[Document],
        progress: &mut dyn FnMut(usize),
    ) -> Result<(), RetrieverError> {
        let encoder = &self.encoder;
        let index = &mut self.index;
        encode_in_chunks(
            docs,
            |texts| Ok(encoder.encode_sparse(texts)?),
            |batch| index.add(batch),
            progress,
        )
    }

    /// Remove documents by id; returns how many went.
    pub fn remove_documents<S: AsRef<str>>(&mut self, ids: &[S]) -> usize {
        self.index.remove(ids)
    }

    /// The matched terms of a document for a query, heaviest contribution
    /// first, as `(token, query weight × document weight)`: the "why".
    pub fn explain(&self, query: &str, id: &str) -> Result<Vec<(String, f32)>, RetrieverError> {
        let q = self.encode_query(query)?;
        let d = self.index.vector(id).unwrap_or_default();
        Ok(matched_terms(&self.encoder, &q, &d))
    }

    fn encode_query(&self, query: &str) -> Result<SparseVector, RetrieverError> {
        Ok(self
            .encoder
            .encode_sparse(&[query])?
            .pop()
            .unwrap_or_default())
    }

    /// The index.
    pub fn index(&self) -> &SparseIndex {
        &self.index
    }
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

impl Retriever for SparseRetriever {
    fn name(&self) -> &str {
        "sparse"
    }

    fn len(&self) -> usize {
        self.index.len()
    }

    fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>, RetrieverError> {
        let q = self.encode_query(query)?;
        Ok(self.index.search(&q, k))
    }
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
        let index = SparseIndex::new(Weighting::Binary, vocab_size(&encoder));
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
}

impl Retriever for BotRetriever {
    fn name(&self) -> &str {
        "bot"
    }

    fn len(&self) -> usize {
        self.index.len()
    }

    fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>, RetrieverError> {
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
        .map(|(h, v)| Hit {
            id: h.id.clone(),
            score: q.dot(v),
        })
        .collect();
    reranked.sort_by(|a, b| b.score.total_cmp(&a.score));
    // Candidates beyond m keep their bag-of-tokens order, placed below the
    // re-ranked ones (their scores are shifted under the lowest re-ranked score).
    let floor = reranked.last().map_or(0.0, |h| h.score);
    let tail = candidates[m..].iter().enumerate().map(|(i, h)| Hit {
        id: h.id.clone(),
        score: floor - 1.0 - i as f32 * 1e-3,
    });
    reranked.into_iter().chain(tail).take(k).collect()
}

/// Which dense index answers queries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DenseSearch {
    /// Exact inner product over every vector.
    Flat,
    /// HNSW (approximate), rebuilt after every change.
    Hnsw(HnswParams),
}

/// Dense retrieval: documents and queries embedded by the dense head.
#[derive(Debug)]
pub struct DenseRetriever {
    encoder: Arc<Encoder>,
    flat: FlatIndex,
    mode: DenseSearch,
    hnsw: Option<HnswIndex>,
}

impl DenseRetriever {
    /// An empty retriever over a dense-head encoder.
    pub fn new(encoder: Arc<Encoder>, mode: DenseSearch) -> Result<Self, RetrieverError> {
        if encoder.sparse_settings().is_some() {
            return Err(RetrieverError::InvalidParameter {
                name: "encoder",
                reason: "the dense retriever needs a model with a dense head".into(),
            });
        }
        let dim = encoder.config().bert.hidden_size;
        Self::with_index(encoder, FlatIndex::new(dim), mode)
    }

    /// A retriever over a saved flat index of this encoder's embeddings (the
    /// HNSW graph, if any, is built from it).
    pub fn with_index(
        encoder: Arc<Encoder>,
        flat: FlatIndex,
        mode: DenseSearch,
    ) -> Result<Self, RetrieverError> {
        if encoder.sparse_settings().is_some() {
            return Err(RetrieverError::InvalidParameter {
                name: "encoder",
                reason: "the dense retriever needs a model with a dense head".into(),
            });
        }
        let dim = encoder.config().bert.hidden_size;
        if flat.dim() != dim {
            return Err(RetrieverError::InvalidParameter {
                name: "index",
                reason: format!(
                    "the index holds {}-dimensional vectors, the encoder makes {dim}",
                    flat.dim()
                ),
            });
        }
        let mut r = Self {
            encoder,
            flat,
            mode,
            hnsw: None,
        };
        r.rebuild();
        Ok(r)
    }

    /// Encode and index documents, calling `progress` after each chunk.
    pub fn add_documents(
        &mut self,
        docs: &[Document],
        progress: &mut dyn FnMut(usize),
    ) -> Result<(), RetrieverError> {
        let encoder = &self.encoder;
        let flat = &mut self.flat;
        let result = encode_in_chunks(
            docs,
            |texts| Ok(encoder.encode_dense(texts)?),
            |batch| flat.add(batch),
            progress,
        );
        // Chunks added before a failure stay searchable.
        self.rebuild();
        result
    }

    /// Remove documents by id; returns how many went.
    pub fn remove_documents<S: AsRef<str>>(&mut self, ids: &[S]) -> usize {
        let n = self.flat.remove(ids);
        if n > 0 {
            self.rebuild();
        }
        n
    }

    fn rebuild(&mut self) {
        self.hnsw = match self.mode {
            DenseSearch::Hnsw(p) if !self.flat.is_empty() => Some(HnswIndex::build(&self.flat, p)),
            _ => None,
        };
    }

    /// The exact index.
    pub fn flat(&self) -> &FlatIndex {
        &self.flat
    }

    /// The HNSW graph, when searching approximately.
    pub fn hnsw(&self) -> Option<&HnswIndex> {
        self.hnsw.as_ref()
    }

    /// Embed a query.
    pub fn embed(&self, query: &str) -> Result<Vec<f32>, RetrieverError> {
        Ok(self
            .encoder
            .encode_dense(&[query])?
            .pop()
            .unwrap_or_default())
    }
}

impl Retriever for DenseRetriever {
    fn name(&self) -> &str {
        "dense"
    }

    fn len(&self) -> usize {
        self.flat.len()
    }

    fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>, RetrieverError> {
        let q = self.embed(query)?;
        match &self.hnsw {
            Some(h) => h.search(&q, k),
            None => self.flat.search(&q, k),
        }
    }

    fn ann(&self) -> Option<&dyn AnnProbe> {
        self.hnsw.as_ref().map(|_| self as &dyn AnnProbe)
    }
}

impl AnnProbe for DenseRetriever {
    fn embed(&self, query: &str) -> Result<Vec<f32>, RetrieverError> {
        DenseRetriever::embed(self, query)
    }

    fn search_approximate(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, RetrieverError> {
        match &self.hnsw {
            Some(h) => h.search(query, k),
            None => self.flat.search(query, k),
        }
    }

    fn search_exact(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, RetrieverError> {
        self.flat.search(query, k)
    }
}

/// Several retrievers fused into one ranking.
pub struct HybridRetriever {
    parts: Vec<(Box<dyn Retriever>, f32)>,
    fusion: Fusion,
    depth: usize,
}

impl std::fmt::Debug for HybridRetriever {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.parts.iter().map(|(r, _)| r.name()).collect();
        f.debug_struct("HybridRetriever")
            .field("parts", &names)
            .field("fusion", &self.fusion)
            .finish()
    }
}

impl HybridRetriever {
    /// Fuse `parts` (retriever, weight), each searched to at least `depth`.
    pub fn new(
        parts: Vec<(Box<dyn Retriever>, f32)>,
        fusion: Fusion,
        depth: usize,
    ) -> Result<Self, RetrieverError> {
        if parts.is_empty() {
            return Err(RetrieverError::InvalidParameter {
                name: "hybrid",
                reason: "needs at least one retriever".into(),
            });
        }
        if let Some((_, w)) = parts.iter().find(|(_, w)| !w.is_finite() || *w < 0.0) {
            return Err(RetrieverError::InvalidParameter {
                name: "hybrid",
                reason: format!("weights must be finite and >= 0, got {w}"),
            });
        }
        Ok(Self {
            parts,
            fusion,
            depth,
        })
    }
}

impl Retriever for HybridRetriever {
    fn name(&self) -> &str {
        "hybrid"
    }

    fn len(&self) -> usize {
        self.parts.first().map_or(0, |(r, _)| r.len())
    }

    fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>, RetrieverError> {
        let depth = self.depth.max(k);
        let lists = self
            .parts
            .iter()
            .map(|(r, _)| r.search(query, depth))
            .collect::<Result<Vec<_>, _>>()?;
        let weights: Vec<f32> = self.parts.iter().map(|(_, w)| *w).collect();
        Ok(fuse(&lists, &weights, self.fusion, k))
    }
}
