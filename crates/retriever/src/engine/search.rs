//! Searching an engine: one mode, or a hybrid of several fused; the
//! matched terms that explain a hit; HNSW measured against exact search.

use rlrag_encoder::{Encoder, SparseVector};

use super::{Engine, HYBRID_DEPTH, MAX_K, MAX_QUERY_BYTES, MAX_RERANK_M, SearchMode, invalid};
use crate::dense_index::LiveHnsw;
use crate::fusion::fuse;
use crate::neural::matched_terms;
use crate::{Document, FlatIndex, Hit, Reranker, RetrieverError, TermWeight};

/// The hypothetical document's share of an augmented query (Reinforced-IR:
/// `0.8·e(query) + 0.2·e(document)`).
pub const AUGMENT_WEIGHT: f32 = 0.2;

/// A query augmentation (Reinforced-IR's RLRF, HyDE): a hypothetical
/// document a generator wrote for the query, mixed into the query as
/// `(1 − weight)·e(query) + weight·e(document)` in every retriever that
/// embeds (dense, learned-sparse, bag of tokens) and as the same mix of
/// BM25 scores. A reranker still reads the query alone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Augmentation<'a> {
    /// The hypothetical document.
    pub document: &'a str,
    /// Its share, in [0, 1].
    pub weight: f32,
}

impl<'a> Augmentation<'a> {
    /// `document` mixed in at [`AUGMENT_WEIGHT`].
    pub fn new(document: &'a str) -> Self {
        Self {
            document,
            weight: AUGMENT_WEIGHT,
        }
    }

    /// `None` for an empty document (a generator that wrote nothing adds
    /// nothing); an error for a weight outside [0, 1] or a document longer
    /// than a query may be.
    fn checked(self) -> Result<Option<Self>, RetrieverError> {
        if !(0.0..=1.0).contains(&self.weight) {
            return Err(invalid(
                "augment weight",
                format!("the weight is {} (from 0 to 1)", self.weight),
            ));
        }
        if self.document.len() > MAX_QUERY_BYTES {
            return Err(invalid(
                "augment",
                format!(
                    "the hypothetical document has {} bytes (at most {MAX_QUERY_BYTES})",
                    self.document.len()
                ),
            ));
        }
        Ok((!self.document.trim().is_empty()).then_some(self))
    }
}

impl Engine {
    /// The top `k` documents for `query` in `mode`, with the learned-sparse
    /// terms each matched (title and text: [`Engine::document`]).
    pub async fn search(
        &self,
        query: &str,
        k: usize,
        mode: SearchMode,
    ) -> Result<Vec<Hit>, RetrieverError> {
        self.search_with(query, k, mode, true).await
    }

    /// As [`Engine::search`]; with `explain` false the hits' `terms` stay
    /// empty, and BM25 and dense searches skip the query's sparse encoding
    /// (a BM25 search is then index work only: what the router's local
    /// source does for every sub-query).
    pub async fn search_with(
        &self,
        query: &str,
        k: usize,
        mode: SearchMode,
        explain: bool,
    ) -> Result<Vec<Hit>, RetrieverError> {
        self.first_stage(query, None, k, mode, explain).await
    }

    /// The first stage of every search: `query` (with `augment` mixed in)
    /// ranked in `mode`.
    async fn first_stage(
        &self,
        query: &str,
        augment: Option<Augmentation<'_>>,
        k: usize,
        mode: SearchMode,
        explain: bool,
    ) -> Result<Vec<Hit>, RetrieverError> {
        let augment = augment.map(Augmentation::checked).transpose()?.flatten();
        if query.trim().is_empty() {
            return Err(invalid("query", "the query is empty"));
        }
        if query.len() > MAX_QUERY_BYTES {
            return Err(invalid(
                "query",
                format!(
                    "the query has {} bytes (at most {MAX_QUERY_BYTES})",
                    query.len()
                ),
            ));
        }
        if let Some(reason) = self.unavailable(mode) {
            return Err(RetrieverError::ModeUnavailable {
                mode: mode.name(),
                reason: reason.into(),
            });
        }
        if k > MAX_K {
            return Err(invalid(
                "k",
                format!("{k} results asked for (at most {MAX_K})"),
            ));
        }
        if k == 0 || self.docs.is_empty() {
            return Ok(Vec::new());
        }
        // The sparse query vector ranks sparse/BoT and explains every mode;
        // BM25 and dense (and hybrids of them) without explanations need no
        // encoder run.
        let parts = self.hybrid_parts();
        let lexical_only = |m: SearchMode| matches!(m, SearchMode::Bm25 | SearchMode::Dense);
        let needs_sparse = match mode {
            SearchMode::Hybrid => !parts.iter().all(|m| lexical_only(*m)),
            m => !lexical_only(m),
        };
        let q = if explain || needs_sparse {
            let mut texts = vec![query];
            texts.extend(augment.map(|a| a.document));
            let mut v = self.models.sparse.encode_sparse_async(&texts).await?;
            let h = (v.len() > 1).then(|| v.pop().unwrap_or_default());
            let q = v.pop().unwrap_or_default();
            match (h, augment) {
                (Some(h), Some(a)) => q.mix(&h, a.weight),
                _ => q,
            }
        } else {
            SparseVector::default()
        };
        let hits = match mode {
            SearchMode::Hybrid => {
                let depth = k.max(HYBRID_DEPTH);
                let mut lists = Vec::with_capacity(parts.len());
                for m in &parts {
                    lists.push(self.ranked(query, augment, &q, depth, *m).await?);
                }
                let weights = vec![1.0; lists.len()];
                fuse(&lists, &weights, self.options.fusion, k)
            }
            m => self.ranked(query, augment, &q, k, m).await?,
        };
        Ok(hits
            .into_iter()
            .filter(|h| self.docs.contains_key(&h.id))
            .map(|mut h| {
                if explain {
                    h.terms = self.explain(&q, &h.id);
                }
                h
            })
            .collect())
    }

    /// Set (or with `None` remove) the cross-encoder that
    /// [`Engine::search_reranked`] re-scores candidates with.
    pub fn set_reranker(&mut self, reranker: Option<Reranker>) {
        self.reranker = reranker;
    }

    /// The reranker, when one is set.
    pub fn reranker(&self) -> Option<&Reranker> {
        self.reranker.as_ref()
    }

    /// As [`Engine::search_with`], then the top `rerank` of the first
    /// stage (searched to depth max(`k`, `rerank`)) re-scored by the
    /// reranker and re-ordered; `rerank` 0 is the first stage alone.
    pub async fn search_reranked(
        &self,
        query: &str,
        k: usize,
        mode: SearchMode,
        explain: bool,
        rerank: usize,
    ) -> Result<Vec<Hit>, RetrieverError> {
        self.search_augmented(query, None, k, mode, explain, rerank)
            .await
    }

    /// As [`Engine::search_reranked`], with the first stage searching
    /// `query` augmented by a hypothetical document ([`Augmentation`]);
    /// the reranker reads `query` alone.
    pub async fn search_augmented(
        &self,
        query: &str,
        augment: Option<Augmentation<'_>>,
        k: usize,
        mode: SearchMode,
        explain: bool,
        rerank: usize,
    ) -> Result<Vec<Hit>, RetrieverError> {
        if rerank == 0 {
            return self.first_stage(query, augment, k, mode, explain).await;
        }
        let Some(reranker) = &self.reranker else {
            return Err(invalid(
                "rerank",
                "no reranker is loaded: set one (a cross-encoder model directory) first",
            ));
        };
        if rerank > MAX_RERANK_M {
            return Err(invalid(
                "rerank",
                format!("{rerank} candidates to re-score (at most {MAX_RERANK_M})"),
            ));
        }
        let first = self
            .first_stage(query, augment, k.max(rerank), mode, explain)
            .await?;
        let mut hits = reranker
            .rerank(query, first, rerank, |id| {
                self.docs.get(id).map(Document::full_text)
            })
            .await?;
        hits.truncate(k);
        Ok(hits)
    }

    /// The modes a hybrid search fuses.
    fn hybrid_parts(&self) -> Vec<SearchMode> {
        if !self.options.hybrid.is_empty() {
            return self.options.hybrid.clone();
        }
        let mut parts = vec![SearchMode::Bm25];
        parts.push(if self.learned.is_some() {
            SearchMode::Sparse
        } else {
            SearchMode::Bot
        });
        if self.dense.is_some() {
            parts.push(SearchMode::Dense);
        }
        parts
    }

    /// One mode's ranking (not hybrid): `q` is the query's sparse vector
    /// (with the augmentation mixed in).
    async fn ranked(
        &self,
        query: &str,
        augment: Option<Augmentation<'_>>,
        q: &SparseVector,
        k: usize,
        mode: SearchMode,
    ) -> Result<Vec<Hit>, RetrieverError> {
        Ok(match mode {
            SearchMode::Sparse => self.sparse_hits(q, k),
            SearchMode::Bot => self.bot_hits(q, k).await?,
            SearchMode::Dense => self.dense_hits(query, augment, k).await?,
            SearchMode::Bm25 => match augment {
                Some(a) => self
                    .bm25
                    .search_mixed(&[(query, 1.0 - a.weight), (a.document, a.weight)], k)?,
                None => self.bm25.search(query, k)?,
            },
            SearchMode::Hybrid => {
                return Err(invalid("hybrid", "a hybrid cannot fuse itself"));
            }
        })
    }

    fn sparse_hits(&self, q: &SparseVector, k: usize) -> Vec<Hit> {
        self.learned
            .as_ref()
            .map(|l| l.search(q, k))
            .unwrap_or_default()
    }

    async fn bot_hits(&self, q: &SparseVector, k: usize) -> Result<Vec<Hit>, RetrieverError> {
        let m = self.options.rerank_m;
        let candidates = self.bags.search(q, k.max(m));
        if m == 0 || candidates.is_empty() {
            return Ok(candidates.into_iter().take(k).collect());
        }
        let m = m.min(candidates.len());
        let texts: Vec<String> = candidates[..m]
            .iter()
            .map(|h| {
                self.docs
                    .get(&h.id)
                    .map(Document::full_text)
                    .unwrap_or_default()
            })
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vectors = self.models.sparse.encode_sparse_async(&refs).await?;
        Ok(crate::neural::rerank(candidates, &vectors, q, k))
    }

    async fn dense_hits(
        &self,
        query: &str,
        augment: Option<Augmentation<'_>>,
        k: usize,
    ) -> Result<Vec<Hit>, RetrieverError> {
        let (Some(flat), Some((encoder, _))) = (&self.dense, &self.models.dense) else {
            return Ok(Vec::new());
        };
        let mut texts = vec![query];
        texts.extend(augment.map(|a| a.document));
        let mut vectors = encoder.encode_dense_async(&texts).await?.into_iter();
        let mut q = vectors.next().unwrap_or_default();
        if let (Some(h), Some(a)) = (vectors.next(), augment) {
            for (x, y) in q.iter_mut().zip(&h) {
                *x = (1.0 - a.weight) * *x + a.weight * y;
            }
        }
        match &self.hnsw {
            Some(h) => h.search(&q, k),
            None => flat.search(&q, k),
        }
    }

    /// With HNSW dense search: the graph and the exact index it
    /// approximates, to measure its recall and speed; `None` otherwise.
    pub fn ann(&self) -> Option<AnnProbe<'_>> {
        let (Some(hnsw), Some(flat), Some((encoder, _))) =
            (&self.hnsw, &self.dense, &self.models.dense)
        else {
            return None;
        };
        Some(AnnProbe {
            encoder,
            hnsw,
            flat,
        })
    }

    /// Terms of the query vector that the document holds: against its
    /// learned-sparse vector when indexed, else against its bag of tokens.
    fn explain(&self, q: &SparseVector, id: &str) -> Vec<TermWeight> {
        let d = self
            .learned
            .as_ref()
            .and_then(|l| l.vector(id))
            .or_else(|| self.bags.vector(id))
            .unwrap_or_default();
        matched_terms(&self.models.sparse, q, &d)
            .into_iter()
            .map(|(term, weight)| TermWeight { term, weight })
            .collect()
    }
}

/// The dense side of an engine searching by HNSW, for measuring the graph
/// against exact search ([`Engine::ann`]).
pub struct AnnProbe<'e> {
    encoder: &'e Encoder,
    hnsw: &'e LiveHnsw,
    flat: &'e FlatIndex,
}

impl AnnProbe<'_> {
    /// The query vector dense search uses.
    pub async fn embed(&self, query: &str) -> Result<Vec<f32>, RetrieverError> {
        Ok(self
            .encoder
            .encode_dense_async(&[query])
            .await?
            .pop()
            .unwrap_or_default())
    }

    /// Top-k from the HNSW graph.
    pub fn search_approximate(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, RetrieverError> {
        self.hnsw.search(query, k)
    }

    /// Top-k by exhaustive search.
    pub fn search_exact(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, RetrieverError> {
        self.flat.search(query, k)
    }
}
