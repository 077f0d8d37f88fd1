//! The engine behind the browser binding: one corpus, every index over it,
//! one search call that also says why each passage was found.
//!
//! - BM25 and the bag-of-tokens (BoT) index are always built (tokenizer only,
//!   no encoder run);
//! - learned-sparse document vectors when [`EngineOptions::sparse_vectors`]
//!   is set, dense embeddings when a dense model is loaded (encoder runs, in
//!   chunks, with progress);
//! - search in any [`SearchMode`]; each hit carries the learned-sparse terms
//!   it matched (query weight × document weight), heaviest first;
//! - [`Engine::export`] / [`Engine::import`]: the corpus and every index in one
//!   versioned, checksummed file, tied to the model files by fingerprint.
//!
//! Reading results off a GPU is asynchronous in browsers (WebGPU), so every
//! method that runs an encoder is `async`; on the CPU the futures complete at
//! once.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use rlrag_encoder::{Encoder, SparseVector};
use serde::{Deserialize, Serialize};

use crate::fusion::{Fusion, fuse};
use crate::neural::{ENCODE_CHUNK, matched_terms, vocab_size};
use crate::persist::{decode_snapshot, encode_snapshot};
use crate::sparse_index::{SparseIndex, Weighting};
use crate::{Bm25Index, Document, FlatIndex, Hit, Retriever, RetrieverError, SavedIndex};

/// The largest document the engine accepts (title + text, bytes).
pub const MAX_DOCUMENT_BYTES: usize = 1 << 22;
/// The largest query the engine accepts (bytes).
pub const MAX_QUERY_BYTES: usize = 1 << 16;

/// Documents tokenized (BM25 terms and bags) between two returns to the
/// caller's executor. In a browser each return ends the running
/// WebAssembly call, so a page indexing on its main thread stays
/// responsive and shows progress. (It did not make a cold page's first
/// indexing faster: see results/performance.md.)
const TOKENIZE_CHUNK: usize = 64;

/// Reports a finished chunk of indexing, then hands control back.
async fn chunk_done(
    progress: &mut dyn FnMut(Progress),
    stage: &'static str,
    done: usize,
    total: usize,
) {
    progress(Progress { stage, done, total });
    futures_lite::future::yield_now().await;
}

const SNAPSHOT_KIND: &str = "engine";
/// 2: model fingerprints are XXH3 (were CRC-32).
const SNAPSHOT_VERSION: u16 = 2;

/// How [`Engine::search`] ranks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Learned-sparse vectors of the documents (needs `sparse_vectors`).
    Sparse,
    /// The sparse-encoded query against the documents' bags of tokens.
    Bot,
    /// Dense embeddings (needs a dense model).
    Dense,
    /// Okapi BM25.
    Bm25,
    /// Reciprocal-rank fusion of BM25, sparse (or BoT) and dense where present.
    Hybrid,
}

impl SearchMode {
    /// Every mode, in a fixed order.
    pub const ALL: [SearchMode; 5] = [
        SearchMode::Sparse,
        SearchMode::Bot,
        SearchMode::Dense,
        SearchMode::Bm25,
        SearchMode::Hybrid,
    ];

    /// The mode's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sparse => "sparse",
            Self::Bot => "bot",
            Self::Dense => "dense",
            Self::Bm25 => "bm25",
            Self::Hybrid => "hybrid",
        }
    }
}

impl fmt::Display for SearchMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SearchMode {
    type Err = RetrieverError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| RetrieverError::InvalidParameter {
                name: "mode",
                reason: format!("unknown mode `{s}` (sparse, bot, dense, bm25 or hybrid)"),
            })
    }
}

/// What the engine indexes beyond BM25 and bags of tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineOptions {
    /// Encode documents with the sparse model for [`SearchMode::Sparse`].
    pub sparse_vectors: bool,
    /// BoT: re-score this many top candidates with the sparse model (0 = off).
    pub rerank_m: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            sparse_vectors: true,
            rerank_m: 0,
        }
    }
}

/// The model files an engine runs, identified by fingerprint so that a saved
/// index is only ever searched with the models that built it.
pub struct EngineModels {
    /// The learned-sparse model (queries of every mode but BM25 and dense,
    /// the explanation terms, the bags' tokenizer).
    pub sparse: Arc<Encoder>,
    /// Its fingerprint ([`crate::hash::fingerprint`] of its files).
    pub sparse_fingerprint: u64,
    /// An optional dense model and its fingerprint.
    pub dense: Option<(Arc<Encoder>, u64)>,
}

/// A learned-sparse term that a hit matched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TermWeight {
    /// The vocabulary token (a word or word piece).
    pub term: String,
    /// Query weight × document weight (1 for a bag of tokens).
    pub weight: f32,
}

/// One search result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// Document id.
    pub id: String,
    /// Score of the mode that ranked it.
    pub score: f32,
    /// Document title.
    pub title: String,
    /// Document text.
    pub text: String,
    /// Matched learned-sparse terms, heaviest first.
    pub terms: Vec<TermWeight>,
}

/// Indexing progress: `done` of `total` documents through `stage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// `"tokens"` (BM25 terms and bags of tokens: no encoder runs), then
    /// `"sparse"` and `"dense"` (the encoders run).
    pub stage: &'static str,
    /// Documents finished.
    pub done: usize,
    /// Documents in this call.
    pub total: usize,
}

/// A corpus with its indexes and models.
pub struct Engine {
    models: EngineModels,
    options: EngineOptions,
    docs: BTreeMap<String, Document>,
    bm25: Bm25Index,
    bags: SparseIndex,
    learned: Option<SparseIndex>,
    dense: Option<FlatIndex>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("documents", &self.docs.len())
            .field("options", &self.options)
            .field("modes", &self.modes())
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    sparse_fingerprint: u64,
    dense_fingerprint: Option<u64>,
    options: EngineOptions,
    documents: Vec<Document>,
    bm25: Vec<u8>,
    bags: Vec<u8>,
    learned: Option<Vec<u8>>,
    dense: Option<Vec<u8>>,
}

fn invalid(name: &'static str, reason: impl Into<String>) -> RetrieverError {
    RetrieverError::InvalidParameter {
        name,
        reason: reason.into(),
    }
}

impl Engine {
    /// An empty engine over `models`.
    pub fn new(models: EngineModels, options: EngineOptions) -> Result<Self, RetrieverError> {
        if models.sparse.sparse_settings().is_none() {
            return Err(invalid(
                "model",
                "the engine's main model needs a sparse head",
            ));
        }
        if let Some((dense, _)) = &models.dense
            && dense.sparse_settings().is_some()
        {
            return Err(invalid("dense", "the dense model has a sparse head"));
        }
        let vocab = vocab_size(&models.sparse);
        let learned = options
            .sparse_vectors
            .then(|| SparseIndex::new(Weighting::Learned, vocab));
        let dense = models
            .dense
            .as_ref()
            .map(|(d, _)| FlatIndex::new(d.config().bert.hidden_size));
        Ok(Self {
            options,
            docs: BTreeMap::new(),
            bm25: Bm25Index::default(),
            bags: SparseIndex::new(Weighting::Binary, vocab),
            learned,
            dense,
            models,
        })
    }

    /// Documents held.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// Whether no documents are held.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// A document by id.
    pub fn document(&self, id: &str) -> Option<&Document> {
        self.docs.get(id)
    }

    /// The options the engine was made with.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// The modes this engine can search in.
    pub fn modes(&self) -> Vec<SearchMode> {
        SearchMode::ALL
            .into_iter()
            .filter(|m| self.unavailable(*m).is_none())
            .collect()
    }

    fn unavailable(&self, mode: SearchMode) -> Option<&'static str> {
        match mode {
            SearchMode::Sparse if self.learned.is_none() => {
                Some("documents were indexed without sparse vectors (sparseVectors: false)")
            }
            SearchMode::Dense if self.dense.is_none() => Some("no dense model was loaded"),
            _ => None,
        }
    }

    /// Index documents (replacing any with the same id). Every document is
    /// checked before anything changes; if an encoder fails part way, the
    /// documents of this call are removed again, so the engine is never left
    /// half-indexed.
    pub async fn add_documents(
        &mut self,
        docs: &[Document],
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), RetrieverError> {
        let mut seen = std::collections::HashSet::new();
        for d in docs {
            if d.id.is_empty() {
                return Err(invalid("documents", "a document has an empty id"));
            }
            if d.id.len() > 1024 {
                return Err(invalid(
                    "documents",
                    format!("document id of {} bytes (at most 1024)", d.id.len()),
                ));
            }
            if !seen.insert(d.id.as_str()) {
                return Err(RetrieverError::DuplicateDocument { id: d.id.clone() });
            }
            let size = d.title.len() + d.text.len();
            if size > MAX_DOCUMENT_BYTES {
                return Err(invalid(
                    "documents",
                    format!(
                        "document `{}` has {size} bytes of text (at most {MAX_DOCUMENT_BYTES})",
                        d.id
                    ),
                ));
            }
        }
        let replaced: Vec<&str> = docs
            .iter()
            .filter(|d| self.docs.contains_key(&d.id))
            .map(|d| d.id.as_str())
            .collect();
        self.remove_documents(&replaced);
        let ids: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
        let result = self.index(docs, progress).await;
        if result.is_err() {
            self.remove_documents(&ids);
        }
        result
    }

    async fn index(
        &mut self,
        docs: &[Document],
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), RetrieverError> {
        let total = docs.len();
        let mut done = 0;
        for chunk in docs.chunks(TOKENIZE_CHUNK) {
            let mut bags = Vec::with_capacity(chunk.len());
            for d in chunk {
                let bag = self.models.sparse.bag_of_tokens(&d.full_text())?;
                bags.push((
                    d.id.clone(),
                    SparseVector {
                        terms: bag.into_iter().map(|t| (t, 1.0)).collect(),
                    },
                ));
            }
            self.bm25.add_documents(chunk)?;
            self.bags.add(&bags)?;
            for d in chunk {
                self.docs.insert(d.id.clone(), d.clone());
            }
            done += chunk.len();
            chunk_done(progress, "tokens", done, total).await;
        }
        if let Some(learned) = &mut self.learned {
            let mut done = 0;
            for chunk in docs.chunks(ENCODE_CHUNK) {
                let texts: Vec<String> = chunk.iter().map(Document::full_text).collect();
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let vectors = self.models.sparse.encode_sparse_async(&refs).await?;
                let batch: Vec<(String, SparseVector)> =
                    chunk.iter().map(|d| d.id.clone()).zip(vectors).collect();
                learned.add(&batch)?;
                done += chunk.len();
                chunk_done(progress, "sparse", done, total).await;
            }
        }
        if let (Some(flat), Some((encoder, _))) = (&mut self.dense, &self.models.dense) {
            let mut done = 0;
            for chunk in docs.chunks(ENCODE_CHUNK) {
                let texts: Vec<String> = chunk.iter().map(Document::full_text).collect();
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let vectors = encoder.encode_dense_async(&refs).await?;
                let batch: Vec<(String, Vec<f32>)> =
                    chunk.iter().map(|d| d.id.clone()).zip(vectors).collect();
                flat.add(&batch)?;
                done += chunk.len();
                chunk_done(progress, "dense", done, total).await;
            }
        }
        Ok(())
    }

    /// Remove documents by id from every index; returns how many went
    /// (unknown ids are ignored).
    pub fn remove_documents<S: AsRef<str>>(&mut self, ids: &[S]) -> usize {
        let present: Vec<&str> = ids
            .iter()
            .map(AsRef::as_ref)
            .filter(|id| self.docs.contains_key(*id))
            .collect();
        self.bm25.remove_documents(&present);
        self.bags.remove(&present);
        if let Some(l) = &mut self.learned {
            l.remove(&present);
        }
        if let Some(d) = &mut self.dense {
            d.remove(&present);
        }
        for id in &present {
            self.docs.remove(*id);
        }
        present.len()
    }

    /// The top `k` documents for `query` in `mode`, with the learned-sparse
    /// terms each matched.
    pub async fn search(
        &self,
        query: &str,
        k: usize,
        mode: SearchMode,
    ) -> Result<Vec<SearchHit>, RetrieverError> {
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
    ) -> Result<Vec<SearchHit>, RetrieverError> {
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
        if k == 0 || self.docs.is_empty() {
            return Ok(Vec::new());
        }
        // The sparse query vector ranks sparse/BoT and explains every mode;
        // BM25 and dense without explanations need no encoder run.
        let q = if explain || !matches!(mode, SearchMode::Bm25 | SearchMode::Dense) {
            self.models
                .sparse
                .encode_sparse_async(&[query])
                .await?
                .pop()
                .unwrap_or_default()
        } else {
            SparseVector::default()
        };
        let hits = match mode {
            SearchMode::Sparse => self.sparse_hits(&q, k),
            SearchMode::Bot => self.bot_hits(&q, k).await?,
            SearchMode::Dense => self.dense_hits(query, k).await?,
            SearchMode::Bm25 => self.bm25.search(query, k)?,
            SearchMode::Hybrid => {
                let depth = k.max(100);
                let mut lists = vec![self.bm25.search(query, depth)?];
                lists.push(if self.learned.is_some() {
                    self.sparse_hits(&q, depth)
                } else {
                    self.bot_hits(&q, depth).await?
                });
                if self.dense.is_some() {
                    lists.push(self.dense_hits(query, depth).await?);
                }
                let weights = vec![1.0; lists.len()];
                fuse(&lists, &weights, Fusion::default(), k)
            }
        };
        Ok(hits
            .into_iter()
            .filter_map(|h| {
                let doc = self.docs.get(&h.id)?;
                Some(SearchHit {
                    terms: if explain {
                        self.explain(&q, &h.id)
                    } else {
                        Vec::new()
                    },
                    id: h.id,
                    score: h.score,
                    title: doc.title.clone(),
                    text: doc.text.clone(),
                })
            })
            .collect())
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

    async fn dense_hits(&self, query: &str, k: usize) -> Result<Vec<Hit>, RetrieverError> {
        let (Some(flat), Some((encoder, _))) = (&self.dense, &self.models.dense) else {
            return Ok(Vec::new());
        };
        let q = encoder
            .encode_dense_async(&[query])
            .await?
            .pop()
            .unwrap_or_default();
        flat.search(&q, k)
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

    /// The corpus and every index in one versioned, checksummed file.
    pub fn export(&self) -> Result<Vec<u8>, RetrieverError> {
        let snap = Snapshot {
            sparse_fingerprint: self.models.sparse_fingerprint,
            dense_fingerprint: self.models.dense.as_ref().map(|(_, f)| *f),
            options: self.options.clone(),
            documents: self.docs.values().cloned().collect(),
            bm25: self.bm25.to_bytes()?,
            bags: self.bags.to_bytes()?,
            learned: self
                .learned
                .as_ref()
                .map(SavedIndex::to_bytes)
                .transpose()?,
            dense: self.dense.as_ref().map(SavedIndex::to_bytes).transpose()?,
        };
        encode_snapshot(SNAPSHOT_KIND, SNAPSHOT_VERSION, &snap)
    }

    /// An engine over `models` from what [`Engine::export`] wrote with the
    /// same model files. Anything foreign, damaged, inconsistent or built
    /// with other models is refused whole.
    pub fn import(models: EngineModels, bytes: &[u8]) -> Result<Self, RetrieverError> {
        let snap: Snapshot = decode_snapshot(bytes, SNAPSHOT_KIND, SNAPSHOT_VERSION)?;
        if snap.sparse_fingerprint != models.sparse_fingerprint {
            return Err(RetrieverError::ModelMismatch {
                model: "sparse",
                saved: snap.sparse_fingerprint,
                loaded: models.sparse_fingerprint,
            });
        }
        let loaded_dense = models.dense.as_ref().map(|(_, f)| *f);
        if snap.dense_fingerprint != loaded_dense {
            return Err(match (snap.dense_fingerprint, loaded_dense) {
                (Some(saved), Some(loaded)) => RetrieverError::ModelMismatch {
                    model: "dense",
                    saved,
                    loaded,
                },
                (Some(_), None) => invalid(
                    "index",
                    "the index holds dense vectors: load its dense model",
                ),
                _ => invalid(
                    "index",
                    "the index has no dense vectors for the loaded dense model",
                ),
            });
        }
        let mut engine = Self::new(models, snap.options)?;
        engine.bm25 = Bm25Index::from_bytes(&snap.bm25)?;
        engine.bags = SparseIndex::from_bytes(&snap.bags)?;
        engine.learned = snap
            .learned
            .as_deref()
            .map(SparseIndex::from_bytes)
            .transpose()?;
        engine.dense = snap
            .dense
            .as_deref()
            .map(FlatIndex::from_bytes)
            .transpose()?;
        engine.docs = snap
            .documents
            .into_iter()
            .map(|d| (d.id.clone(), d))
            .collect();
        engine.check_consistent()?;
        Ok(engine)
    }

    /// Every index holds exactly the documents, with matching vocabularies.
    fn check_consistent(&self) -> Result<(), RetrieverError> {
        let n = self.docs.len();
        let vocab = vocab_size(&self.models.sparse);
        let mut sizes: HashMap<&str, usize> = HashMap::new();
        sizes.insert("bm25", self.bm25.len());
        sizes.insert("bags", self.bags.len());
        if self.bags.weighting() != Weighting::Binary || self.bags.vocab_size() != vocab {
            return Err(invalid(
                "index",
                "the bag-of-tokens index does not fit the model",
            ));
        }
        if let Some(l) = &self.learned {
            if l.weighting() != Weighting::Learned || l.vocab_size() != vocab {
                return Err(invalid("index", "the sparse index does not fit the model"));
            }
            sizes.insert("sparse", l.len());
        }
        if let (Some(flat), Some((encoder, _))) = (&self.dense, &self.models.dense) {
            if flat.dim() != encoder.config().bert.hidden_size {
                return Err(invalid("index", "the dense index does not fit the model"));
            }
            sizes.insert("dense", flat.len());
        }
        for (name, len) in sizes {
            if len != n {
                return Err(invalid(
                    "index",
                    format!("the {name} index holds {len} documents, the corpus {n}"),
                ));
            }
        }
        if self.docs.keys().any(|id| !self.bags.contains(id)) {
            return Err(invalid(
                "index",
                "the indexes and the corpus hold different ids",
            ));
        }
        Ok(())
    }
}
