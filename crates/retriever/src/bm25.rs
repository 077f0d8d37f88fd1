//! Okapi BM25 over title + text, with Lucene's idf, incremental additions and
//! removals, and a versioned save format.
//!
//! `score(q, d) = Σ_{t ∈ q} idf(t) · tf / (tf + k1 · (1 − b + b · |d| / avgdl))`
//! with `idf(t) = ln(1 + (N − df + 0.5) / (df + 0.5))` (Lucene ≥ 8, `bm25s`'
//! `lucene` method). Query terms count with their multiplicity.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::analyzer::{Analyzer, AnalyzerConfig};
use crate::{Document, Hit, IndexFileError, Retriever, RetrieverError, persist};

/// The kind name of BM25 index files.
pub const INDEX_KIND: &str = "bm25";
/// The BM25 payload version this build writes and reads.
pub const PAYLOAD_VERSION: u16 = 1;

/// BM25's free parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bm25Params {
    /// Term-frequency saturation (≥ 0).
    pub k1: f32,
    /// Length normalisation, in `[0, 1]`.
    pub b: f32,
}

impl Default for Bm25Params {
    /// `k1 = 1.5, b = 0.75`, the defaults of `bm25s` and Pyserini's
    /// BEIR-tuned runs sit close to; Lucene's own default `k1` is 1.2.
    fn default() -> Self {
        Self { k1: 1.5, b: 0.75 }
    }
}

impl Bm25Params {
    /// Check the ranges.
    pub fn validate(&self) -> Result<(), RetrieverError> {
        if !self.k1.is_finite() || self.k1 < 0.0 {
            return Err(RetrieverError::InvalidParameter {
                name: "k1",
                reason: format!("must be finite and >= 0, got {}", self.k1),
            });
        }
        if !(0.0..=1.0).contains(&self.b) {
            return Err(RetrieverError::InvalidParameter {
                name: "b",
                reason: format!("must be in [0, 1], got {}", self.b),
            });
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Slot {
    id: String,
    /// Number of terms after analysis.
    len: u32,
    /// (term id, term frequency), sorted by term id.
    terms: Vec<(u32, u32)>,
}

/// A BM25 inverted index.
#[derive(Debug, Clone)]
pub struct Bm25Index {
    params: Bm25Params,
    analyzer: Analyzer,
    vocab: HashMap<String, u32>,
    terms: Vec<String>,
    /// Per term: (slot, tf), sorted by slot.
    postings: Vec<Vec<(u32, u32)>>,
    /// Documents by slot; `None` once removed (until compaction).
    slots: Vec<Option<Slot>>,
    by_id: HashMap<String, u32>,
    total_len: u64,
    /// `k1 · (1 − b + b · len / avgdl)` per slot.
    norms: Vec<f32>,
}

impl Default for Bm25Index {
    fn default() -> Self {
        Self::with_parts(Bm25Params::default(), Analyzer::default())
    }
}

/// The saved form: only live documents and the terms they use.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    params: Bm25Params,
    analyzer: AnalyzerConfig,
    terms: Vec<String>,
    docs: Vec<Slot>,
}

/// The id of `term`, added to the vocabulary when new.
fn intern(
    vocab: &mut HashMap<String, u32>,
    terms: &mut Vec<String>,
    postings: &mut Vec<Vec<(u32, u32)>>,
    term: &str,
) -> u32 {
    if let Some(&id) = vocab.get(term) {
        return id;
    }
    let id = terms.len() as u32;
    vocab.insert(term.to_string(), id);
    terms.push(term.to_string());
    postings.push(Vec::new());
    id
}

fn invalid(reason: impl Into<String>) -> RetrieverError {
    RetrieverError::IndexFile(IndexFileError::InvalidPayload(reason.into()))
}

impl Bm25Index {
    /// An empty index with the given parameters and analyzer settings.
    pub fn new(params: Bm25Params, analyzer: AnalyzerConfig) -> Result<Self, RetrieverError> {
        params.validate()?;
        Ok(Self::with_parts(params, Analyzer::new(analyzer)))
    }

    fn with_parts(params: Bm25Params, analyzer: Analyzer) -> Self {
        Self {
            params,
            analyzer,
            vocab: HashMap::new(),
            terms: Vec::new(),
            postings: Vec::new(),
            slots: Vec::new(),
            by_id: HashMap::new(),
            total_len: 0,
            norms: Vec::new(),
        }
    }

    /// The parameters.
    pub fn params(&self) -> Bm25Params {
        self.params
    }

    /// The analyzer (shared by documents and queries).
    pub fn analyzer(&self) -> &Analyzer {
        &self.analyzer
    }

    /// Whether a document id is indexed.
    pub fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// Number of distinct terms in live documents.
    pub fn num_terms(&self) -> usize {
        self.postings.iter().filter(|p| !p.is_empty()).count()
    }

    fn intern(&mut self, term: &str) -> u32 {
        intern(&mut self.vocab, &mut self.terms, &mut self.postings, term)
    }

    /// Index documents (title + text). All or nothing: if any id is already
    /// indexed or repeats within `docs`, nothing is added.
    pub fn add_documents(&mut self, docs: &[Document]) -> Result<(), RetrieverError> {
        let mut batch = std::collections::HashSet::with_capacity(docs.len());
        for d in docs {
            if self.by_id.contains_key(&d.id) || !batch.insert(d.id.as_str()) {
                return Err(RetrieverError::DuplicateDocument { id: d.id.clone() });
            }
        }
        let mut term_ids: Vec<u32> = Vec::new();
        for d in docs {
            term_ids.clear();
            {
                let Self {
                    analyzer,
                    vocab,
                    terms,
                    postings,
                    ..
                } = &mut *self;
                let mut add = |t: &str| term_ids.push(intern(vocab, terms, postings, t));
                analyzer.for_each_term(&d.title, &mut add);
                analyzer.for_each_term(&d.text, &mut add);
            }
            let len = u32::try_from(term_ids.len()).unwrap_or(u32::MAX);
            term_ids.sort_unstable();
            let mut terms: Vec<(u32, u32)> = Vec::new();
            for &t in &term_ids {
                match terms.last_mut() {
                    Some((last, tf)) if *last == t => *tf += 1,
                    _ => terms.push((t, 1)),
                }
            }
            self.push_slot(Slot {
                id: d.id.clone(),
                len,
                terms,
            });
        }
        self.refresh_norms();
        Ok(())
    }

    fn push_slot(&mut self, slot: Slot) {
        let s = self.slots.len() as u32;
        for &(t, tf) in &slot.terms {
            self.postings[t as usize].push((s, tf));
        }
        self.total_len += u64::from(slot.len);
        self.by_id.insert(slot.id.clone(), s);
        self.slots.push(Some(slot));
    }

    /// Remove documents by id; ids not in the index are ignored. Returns how
    /// many were removed.
    pub fn remove_documents<S: AsRef<str>>(&mut self, ids: &[S]) -> usize {
        let mut removed = 0;
        for id in ids {
            let Some(s) = self.by_id.remove(id.as_ref()) else {
                continue;
            };
            let Some(slot) = self.slots.get_mut(s as usize).and_then(Option::take) else {
                continue;
            };
            for &(t, _) in &slot.terms {
                let p = &mut self.postings[t as usize];
                if let Ok(i) = p.binary_search_by_key(&s, |&(slot, _)| slot) {
                    p.remove(i);
                }
            }
            self.total_len -= u64::from(slot.len);
            removed += 1;
        }
        if removed > 0 {
            let dead = self.slots.len() - self.by_id.len();
            if dead >= 64 && dead > self.by_id.len() {
                self.compact();
            }
            self.refresh_norms();
        }
        removed
    }

    /// Renumber live slots densely, keeping their order.
    fn compact(&mut self) {
        let mut remap = vec![u32::MAX; self.slots.len()];
        let mut live = Vec::with_capacity(self.by_id.len());
        for (old, slot) in std::mem::take(&mut self.slots).into_iter().enumerate() {
            if let Some(slot) = slot {
                remap[old] = live.len() as u32;
                self.by_id.insert(slot.id.clone(), live.len() as u32);
                live.push(Some(slot));
            }
        }
        for p in &mut self.postings {
            for entry in p.iter_mut() {
                entry.0 = remap[entry.0 as usize];
            }
        }
        self.slots = live;
    }

    fn refresh_norms(&mut self) {
        let live = self.by_id.len();
        let avgdl = if live == 0 || self.total_len == 0 {
            1.0
        } else {
            self.total_len as f64 / live as f64
        };
        let Bm25Params { k1, b } = self.params;
        let (k1, b) = (f64::from(k1), f64::from(b));
        self.norms = self
            .slots
            .iter()
            .map(|s| {
                let len = s.as_ref().map_or(0.0, |s| f64::from(s.len));
                (k1 * (1.0 - b + b * len / avgdl)) as f32
            })
            .collect();
    }

    /// Scores of every slot for `query` and the slots that matched.
    fn score_all(&self, query: &str) -> (Vec<f32>, Vec<u32>) {
        let n = self.by_id.len() as f32;
        let mut scores = vec![0f32; self.slots.len()];
        let mut touched = Vec::new();
        self.analyzer.for_each_term(query, |term| {
            let Some(&t) = self.vocab.get(term) else {
                return;
            };
            let postings = &self.postings[t as usize];
            if postings.is_empty() {
                return;
            }
            let df = postings.len() as f32;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for &(s, tf) in postings {
                let tf = tf as f32;
                let su = s as usize;
                if scores[su] == 0.0 {
                    touched.push(s);
                }
                scores[su] += idf * tf / (tf + self.norms[su]);
            }
        });
        (scores, touched)
    }

    /// Serialise to the versioned, checksummed index format ([`persist`]).
    pub fn to_bytes(&self) -> Result<Vec<u8>, RetrieverError> {
        let mut remap = vec![u32::MAX; self.terms.len()];
        let mut terms = Vec::new();
        for (t, p) in self.postings.iter().enumerate() {
            if !p.is_empty() {
                remap[t] = terms.len() as u32;
                terms.push(self.terms[t].clone());
            }
        }
        let docs = self
            .slots
            .iter()
            .flatten()
            .map(|s| Slot {
                id: s.id.clone(),
                len: s.len,
                terms: s
                    .terms
                    .iter()
                    .map(|&(t, tf)| (remap[t as usize], tf))
                    .collect(),
            })
            .collect();
        let snapshot = Snapshot {
            params: self.params,
            analyzer: self.analyzer.config().clone(),
            terms,
            docs,
        };
        let payload = postcard::to_allocvec(&snapshot)
            .map_err(|e| invalid(format!("cannot encode the index: {e}")))?;
        Ok(persist::encode(INDEX_KIND, PAYLOAD_VERSION, &payload)?)
    }

    /// Read an index written by [`Bm25Index::to_bytes`]; anything foreign,
    /// damaged or inconsistent is refused whole.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RetrieverError> {
        let payload = persist::decode(bytes, INDEX_KIND, PAYLOAD_VERSION)?;
        let snap: Snapshot = postcard::from_bytes(payload)
            .map_err(|e| invalid(format!("cannot decode the BM25 snapshot: {e}")))?;
        snap.params
            .validate()
            .map_err(|e| invalid(format!("stored parameters: {e}")))?;
        let mut index = Self::with_parts(snap.params, Analyzer::new(snap.analyzer));
        for term in snap.terms {
            if index.vocab.contains_key(&term) {
                return Err(invalid(format!("term `{term}` appears twice")));
            }
            index.intern(&term);
        }
        let n_terms = index.terms.len() as u64;
        for doc in snap.docs {
            if index.by_id.contains_key(&doc.id) {
                return Err(invalid(format!("document `{}` appears twice", doc.id)));
            }
            let mut sum = 0u64;
            let mut prev: Option<u32> = None;
            for &(t, tf) in &doc.terms {
                if u64::from(t) >= n_terms || tf == 0 || prev.is_some_and(|p| p >= t) {
                    return Err(invalid(format!(
                        "document `{}` has a bad term list",
                        doc.id
                    )));
                }
                prev = Some(t);
                sum += u64::from(tf);
            }
            if sum != u64::from(doc.len) {
                return Err(invalid(format!(
                    "document `{}` length {} does not match its term counts ({sum})",
                    doc.id, doc.len
                )));
            }
            index.push_slot(doc);
        }
        index.refresh_norms();
        Ok(index)
    }

    /// Save to a file (see [`Bm25Index::to_bytes`]).
    pub fn save(&self, path: &Path) -> Result<(), RetrieverError> {
        let bytes = self.to_bytes()?;
        std::fs::write(path, bytes).map_err(|source| RetrieverError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Load from a file (see [`Bm25Index::from_bytes`]).
    pub fn load(path: &Path) -> Result<Self, RetrieverError> {
        let bytes = std::fs::read(path).map_err(|source| RetrieverError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes)
    }
}

impl Retriever for Bm25Index {
    fn name(&self) -> &str {
        INDEX_KIND
    }

    fn len(&self) -> usize {
        self.by_id.len()
    }

    fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>, RetrieverError> {
        if k == 0 || self.by_id.is_empty() {
            return Ok(Vec::new());
        }
        let (scores, mut touched) = self.score_all(query);
        let order = |a: &u32, b: &u32| {
            scores[*b as usize]
                .total_cmp(&scores[*a as usize])
                .then(a.cmp(b))
        };
        if touched.len() > k {
            touched.select_nth_unstable_by(k - 1, order);
            touched.truncate(k);
        }
        touched.sort_unstable_by(order);
        Ok(touched
            .into_iter()
            .filter_map(|s| {
                self.slots[s as usize].as_ref().map(|slot| Hit {
                    id: slot.id.clone(),
                    score: scores[s as usize],
                })
            })
            .collect())
    }
}
