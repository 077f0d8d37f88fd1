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

mod search;
mod snapshot;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use rlrag_encoder::{Encoder, SparseVector};
use serde::{Deserialize, Serialize};

pub use search::{AUGMENT_WEIGHT, AnnProbe, Augmentation};

use crate::analyzer::AnalyzerConfig;
use crate::dense_index::{DenseSearch, LiveHnsw, MERGE_AT};
use crate::failpoint;
use crate::fusion::Fusion;
use crate::neural::{ENCODE_CHUNK, vocab_size};
use crate::sparse_index::{SparseIndex, Weighting};
use crate::{Bm25Index, Bm25Params, Document, FlatIndex, Reranker, RetrieverError};

/// The largest document the engine accepts (title + text, bytes).
pub const MAX_DOCUMENT_BYTES: usize = 1 << 22;
/// The largest query the engine accepts (bytes).
pub const MAX_QUERY_BYTES: usize = 1 << 16;
/// The most results one search returns: a page or a caller asking for more
/// would only make every index rank (and the binding copy) the whole corpus.
pub const MAX_K: usize = 10_000;

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

/// How [`Engine::search`] ranks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum SearchMode {
    /// Learned-sparse vectors of the documents (needs `sparse_vectors`).
    Sparse,
    /// The sparse-encoded query against the documents' bags of tokens.
    Bot,
    /// Dense embeddings (needs a dense model).
    Dense,
    /// Okapi BM25.
    Bm25,
    /// Fusion of other modes ([`EngineOptions::hybrid`]; by default
    /// reciprocal-rank fusion of BM25, sparse (or BoT) and dense where present).
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

/// What the engine indexes beyond BM25 and bags of tokens, and how its
/// modes search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EngineOptions {
    /// Encode documents with the sparse model for [`SearchMode::Sparse`].
    pub sparse_vectors: bool,
    /// BoT: re-score this many top candidates with the sparse model (0 = off).
    pub rerank_m: usize,
    /// BM25's parameters.
    pub bm25: Bm25Params,
    /// How dense queries search: every vector, or an HNSW graph rebuilt
    /// after each change (never saved: built again on import).
    pub dense_search: DenseSearch,
    /// The modes [`SearchMode::Hybrid`] fuses, each searched to depth
    /// max(k, 100); empty: BM25, sparse (BoT without sparse vectors) and
    /// dense when a dense model is loaded.
    pub hybrid: Vec<SearchMode>,
    /// How the hybrid's lists combine.
    pub fusion: Fusion,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            sparse_vectors: true,
            rerank_m: 0,
            bm25: Bm25Params::default(),
            dense_search: DenseSearch::Flat,
            hybrid: Vec::new(),
            fusion: Fusion::default(),
        }
    }
}

/// The most candidates a bag-of-tokens search re-encodes per query.
pub const MAX_RERANK_M: usize = 1000;
/// The largest HNSW candidate lists.
pub const MAX_HNSW_EF: usize = 4096;

/// Depth of each list a hybrid search fuses (at least `k`).
pub const HYBRID_DEPTH: usize = 100;

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

/// `docs` (title + text) through `encode` [`ENCODE_CHUNK`] at a time, each
/// vector beside its id, reporting `stage` after every chunk.
async fn encode_chunks<V>(
    docs: &[Document],
    stage: &'static str,
    progress: &mut dyn FnMut(Progress),
    encode: impl AsyncFn(&[&str]) -> Result<Vec<V>, rlrag_encoder::EncoderError>,
) -> Result<Vec<(String, V)>, RetrieverError> {
    let total = docs.len();
    let mut out = Vec::with_capacity(total);
    let mut done = 0;
    for chunk in docs.chunks(ENCODE_CHUNK) {
        let texts: Vec<String> = chunk.iter().map(Document::full_text).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vectors = encode(&refs).await?;
        out.extend(chunk.iter().map(|d| d.id.clone()).zip(vectors));
        done += chunk.len();
        chunk_done(progress, stage, done, total).await;
    }
    Ok(out)
}

/// What indexing a batch computed before any index changed.
struct Staged {
    bags: Vec<(String, SparseVector)>,
    learned: Option<Vec<(String, SparseVector)>>,
    dense: Option<Vec<(String, Vec<f32>)>>,
}

/// A document as the indexes held it, to put back after a failed replace.
struct Stored {
    doc: Document,
    bag: SparseVector,
    learned: Option<SparseVector>,
    dense: Option<Vec<f32>>,
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
    /// The graph over `dense` when [`EngineOptions::dense_search`] is HNSW,
    /// with the changes since it was built beside it.
    hnsw: Option<LiveHnsw>,
    /// The second stage of [`Engine::search_reranked`] (not saved with the
    /// indexes: it reads passages, not vectors).
    reranker: Option<Reranker>,
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
        for (i, m) in options.hybrid.iter().enumerate() {
            if *m == SearchMode::Hybrid || options.hybrid[..i].contains(m) {
                return Err(invalid(
                    "hybrid",
                    format!("the hybrid fuses other modes, each once (got `{m}` there)"),
                ));
            }
        }
        // Options also come from imported files: bound what they can cost.
        if options.rerank_m > MAX_RERANK_M {
            return Err(invalid(
                "rerank_m",
                format!(
                    "re-ranking {} candidates per query (at most {MAX_RERANK_M})",
                    options.rerank_m
                ),
            ));
        }
        if let Fusion::Rrf { k } = options.fusion
            && !(k.is_finite() && k >= 0.0)
        {
            return Err(invalid(
                "fusion",
                format!("the RRF rank offset k must be finite and >= 0, got {k}"),
            ));
        }
        if let DenseSearch::Hnsw(p) = options.dense_search
            && (!(1..=MAX_HNSW_EF).contains(&p.ef_search)
                || !(1..=MAX_HNSW_EF).contains(&p.ef_construction))
        {
            return Err(invalid(
                "dense_search",
                format!("HNSW needs ef_search and ef_construction in 1..={MAX_HNSW_EF}"),
            ));
        }
        let vocab = vocab_size(&models.sparse);
        let learned = options
            .sparse_vectors
            .then(|| SparseIndex::new(Weighting::Learned, vocab))
            .transpose()?;
        let dense = models
            .dense
            .as_ref()
            .map(|(d, _)| FlatIndex::new(d.config().bert.hidden_size));
        let engine = Self {
            docs: BTreeMap::new(),
            bm25: Bm25Index::new(options.bm25, AnalyzerConfig::default())?,
            bags: SparseIndex::new(Weighting::Binary, vocab)?,
            learned,
            dense,
            hnsw: None,
            reranker: None,
            options,
            models,
        };
        for m in &engine.options.hybrid {
            if let Some(reason) = engine.unavailable(*m) {
                return Err(invalid(
                    "hybrid",
                    format!("the hybrid cannot fuse `{m}`: {reason}"),
                ));
            }
        }
        Ok(engine)
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

    /// The device the engine's encoders run on (a reranker loaded for it
    /// runs there too).
    pub fn device(&self) -> &burn::tensor::Device {
        self.models.sparse.device()
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
    /// checked, tokenized and encoded before any index changes, so a failure
    /// (a bad document, an encoder) leaves the engine as it was, replaced
    /// documents included.
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
        // Everything that can fail (the tokenizer, the encoders) runs before
        // any index changes; a replaced document stays until then.
        let staged = self.stage(docs, progress).await?;
        let replaced: Vec<Stored> = docs.iter().filter_map(|d| self.take(&d.id)).collect();
        let committed = self.commit(docs, staged);
        if let Err(e) = committed {
            // Only a bug gets here (the batch was checked): undo it all.
            let ids: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
            self.purge(&ids);
            for old in replaced {
                if let Err(again) = self.restore(old) {
                    return Err(invalid(
                        "documents",
                        format!("{e}; putting back a replaced document failed too: {again}"),
                    ));
                }
            }
            self.rebuild_hnsw();
            return Err(e);
        }
        let added: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
        self.update_hnsw(&added, &[]);
        Ok(())
    }

    /// The bags and vectors of `docs`, computed without touching an index.
    async fn stage(
        &self,
        docs: &[Document],
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Staged, RetrieverError> {
        let total = docs.len();
        let mut bags = Vec::with_capacity(total);
        let mut done = 0;
        for chunk in docs.chunks(TOKENIZE_CHUNK) {
            for d in chunk {
                let bag = self.models.sparse.bag_of_tokens(&d.full_text())?;
                bags.push((
                    d.id.clone(),
                    SparseVector {
                        terms: bag.into_iter().map(|t| (t, 1.0)).collect(),
                    },
                ));
            }
            done += chunk.len();
            chunk_done(progress, "tokens", done, total).await;
        }
        let mut learned = None;
        if self.learned.is_some() {
            failpoint::hit("engine.stage.sparse")?;
            let sparse = &self.models.sparse;
            learned = Some(
                encode_chunks(docs, "sparse", progress, async |refs: &[&str]| {
                    sparse.encode_sparse_async(refs).await
                })
                .await?,
            );
        }
        let mut dense = None;
        if let (Some(_), Some((encoder, _))) = (&self.dense, &self.models.dense) {
            failpoint::hit("engine.stage.dense")?;
            dense = Some(
                encode_chunks(docs, "dense", progress, async |refs: &[&str]| {
                    encoder.encode_dense_async(refs).await
                })
                .await?,
            );
        }
        Ok(Staged {
            bags,
            learned,
            dense,
        })
    }

    /// Put a staged batch into every index (its ids are free).
    fn commit(&mut self, docs: &[Document], staged: Staged) -> Result<(), RetrieverError> {
        self.bm25.add_documents(docs)?;
        failpoint::hit("engine.commit")?;
        self.bags.add(&staged.bags)?;
        if let (Some(index), Some(vectors)) = (&mut self.learned, staged.learned) {
            index.add(&vectors)?;
        }
        if let (Some(index), Some(vectors)) = (&mut self.dense, staged.dense) {
            index.add(&vectors)?;
        }
        for d in docs {
            self.docs.insert(d.id.clone(), d.clone());
        }
        Ok(())
    }

    /// Take a document out of every index, with what they held of it.
    fn take(&mut self, id: &str) -> Option<Stored> {
        let doc = self.docs.get(id)?.clone();
        let stored = Stored {
            bag: self.bags.vector(id).unwrap_or_default(),
            learned: self.learned.as_ref().and_then(|l| l.vector(id)),
            dense: self
                .dense
                .as_ref()
                .and_then(|f| f.vector(id))
                .map(<[f32]>::to_vec),
            doc,
        };
        self.purge(&[id]);
        Some(stored)
    }

    /// Put back what [`Engine::take`] took.
    fn restore(&mut self, old: Stored) -> Result<(), RetrieverError> {
        let id = old.doc.id.clone();
        self.bm25.add_documents(std::slice::from_ref(&old.doc))?;
        self.bags.add(&[(id.clone(), old.bag)])?;
        if let (Some(index), Some(v)) = (&mut self.learned, old.learned) {
            index.add(&[(id.clone(), v)])?;
        }
        if let (Some(index), Some(v)) = (&mut self.dense, old.dense) {
            index.add(&[(id.clone(), v)])?;
        }
        self.docs.insert(id, old.doc);
        Ok(())
    }

    /// Remove ids from every index and the corpus, whatever each holds.
    fn purge<S: AsRef<str>>(&mut self, ids: &[S]) {
        self.bm25.remove_documents(ids);
        self.bags.remove(ids);
        if let Some(l) = &mut self.learned {
            l.remove(ids);
        }
        if let Some(d) = &mut self.dense {
            d.remove(ids);
        }
        for id in ids {
            self.docs.remove(id.as_ref());
        }
    }

    /// The HNSW graph over the dense vectors as they are now.
    fn rebuild_hnsw(&mut self) {
        self.hnsw = match (self.options.dense_search, &self.dense) {
            (DenseSearch::Hnsw(p), Some(flat)) if !flat.is_empty() => {
                Some(LiveHnsw::build(flat, p, MERGE_AT))
            }
            _ => None,
        };
    }

    /// Tell the HNSW side what changed: `added` (or replaced) ids, whose
    /// vectors the flat index now holds, and `removed` ids. The graph is
    /// rebuilt only when the changes outgrow their bounds.
    fn update_hnsw(&mut self, added: &[&str], removed: &[&str]) {
        let (Some(live), Some(flat)) = (&mut self.hnsw, &self.dense) else {
            self.rebuild_hnsw();
            return;
        };
        live.remove(removed);
        let vectors: Vec<(String, Vec<f32>)> = added
            .iter()
            .filter_map(|id| flat.vector(id).map(|v| ((*id).to_owned(), v.to_vec())))
            .collect();
        if live.add(&vectors).is_err() {
            // Only a bug gets here (the flat index took the same vectors).
            self.rebuild_hnsw();
            return;
        }
        if live.needs_merge() {
            live.merge(flat);
        }
    }

    /// Remove documents by id from every index; returns how many went
    /// (unknown ids are ignored).
    pub fn remove_documents<S: AsRef<str>>(&mut self, ids: &[S]) -> usize {
        let present: Vec<&str> = ids
            .iter()
            .map(AsRef::as_ref)
            .filter(|id| self.docs.contains_key(*id))
            .collect();
        self.purge(&present);
        if !present.is_empty() && self.hnsw.is_some() {
            self.update_hnsw(&[], &present);
        }
        present.len()
    }
}
