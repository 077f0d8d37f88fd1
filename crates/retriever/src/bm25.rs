//! Okapi BM25 over title + text, with Lucene's idf, incremental additions and
//! removals, and a versioned save format.
//!
//! `score(q, d) = Σ_{t ∈ q} idf(t) · tf / (tf + k1 · (1 − b + b · |d| / avgdl))`
//! with `idf(t) = ln(1 + (N − df + 0.5) / (df + 0.5))` (Lucene ≥ 8, `bm25s`'
//! `lucene` method). Query terms count with their multiplicity.

use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use crate::analyzer::{Analyzer, AnalyzerConfig};
use crate::inverted::{Entry, Inverted, normalize_terms};
use crate::persist::{self, SavedIndex, invalid, validate_terms};
use crate::{Document, Hit, RetrieverError};
use rlrag_encoder::fasthash::FastMap;

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

/// The largest `k1` accepted.
pub const MAX_K1: f32 = 1000.0;

impl Bm25Params {
    /// Check the ranges.
    pub fn validate(&self) -> Result<(), RetrieverError> {
        // Past ~1e3 BM25 is term-frequency-linear already; far past it the
        // length norm overflows to infinity and every score to 0.
        if !(0.0..=MAX_K1).contains(&self.k1) {
            return Err(RetrieverError::InvalidParameter {
                name: "k1",
                reason: format!("must be in [0, {MAX_K1}], got {}", self.k1),
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

/// A BM25 inverted index.
#[derive(Debug, Clone)]
pub struct Bm25Index {
    params: Bm25Params,
    analyzer: Analyzer,
    vocab: FastMap<String, u32>,
    terms: Vec<String>,
    /// Term frequencies per document.
    index: Inverted<u32>,
    total_len: u64,
    /// `k1 · (1 − b + b · len / avgdl)` per slot.
    norms: Vec<f32>,
    /// Per term, the largest `tf / (tf + norm)` of its postings under the
    /// current norms: the MaxScore bounds, computed when a query first
    /// needs them and kept until the norms change.
    bounds: TermBounds,
}

/// Per-term values computed on first use and valid for one generation (of
/// the norms): one atomic word per term, the generation in the high half
/// and the value's bits in the low half, so searches (`&self`, on any
/// thread) fill it without locks. Generation 0 marks an empty cell.
#[derive(Debug, Default)]
struct TermBounds {
    generation: u32,
    cells: Vec<std::sync::atomic::AtomicU64>,
}

impl Clone for TermBounds {
    fn clone(&self) -> Self {
        Self {
            generation: self.generation,
            cells: self
                .cells
                .iter()
                .map(|c| std::sync::atomic::AtomicU64::new(c.load(Ordering::Relaxed)))
                .collect(),
        }
    }
}

impl TermBounds {
    /// Forget every value (the norms changed); `terms` cells from now on.
    fn invalidate(&mut self, terms: usize) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            // After 2^32 changes: clear the cells rather than reuse 0.
            self.cells.clear();
            self.generation = 1;
        }
        self.cells
            .resize_with(terms, || std::sync::atomic::AtomicU64::new(0));
    }

    /// The value of `term`, from `compute` the first time in a generation.
    fn get(&self, term: u32, compute: impl FnOnce() -> f32) -> f32 {
        let Some(cell) = self.cells.get(term as usize) else {
            return compute();
        };
        let word = cell.load(Ordering::Relaxed);
        if (word >> 32) as u32 == self.generation {
            return f32::from_bits(word as u32);
        }
        let value = compute();
        cell.store(
            (u64::from(self.generation) << 32) | u64::from(value.to_bits()),
            Ordering::Relaxed,
        );
        value
    }
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
    docs: Vec<Entry<u32>>,
}

/// The id of `term`, added to the vocabulary when new.
fn intern(vocab: &mut FastMap<String, u32>, terms: &mut Vec<String>, term: &str) -> u32 {
    if let Some(&id) = vocab.get(term) {
        return id;
    }
    let id = terms.len() as u32;
    vocab.insert(term.to_string(), id);
    terms.push(term.to_string());
    id
}

fn doc_len(entry: &Entry<u32>) -> u64 {
    entry.terms.iter().map(|&(_, tf)| u64::from(tf)).sum()
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
            vocab: FastMap::default(),
            terms: Vec::new(),
            index: Inverted::default(),
            total_len: 0,
            norms: Vec::new(),
            bounds: TermBounds::default(),
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
        self.index.contains(id)
    }

    /// Index documents (title + text). All or nothing: if any id is already
    /// indexed or repeats within `docs`, nothing is added.
    pub fn add_documents(&mut self, docs: &[Document]) -> Result<(), RetrieverError> {
        self.index.check_new(docs.iter().map(|d| d.id.as_str()))?;
        let mut term_ids: Vec<(u32, u32)> = Vec::new();
        for d in docs {
            term_ids.clear();
            {
                let Self {
                    analyzer,
                    vocab,
                    terms,
                    ..
                } = &mut *self;
                let mut add = |t: &str| term_ids.push((intern(vocab, terms, t), 1));
                analyzer.for_each_term(&d.title, &mut add);
                analyzer.for_each_term(&d.text, &mut add);
            }
            let terms = normalize_terms(std::mem::take(&mut term_ids), |a, b| a.saturating_add(b));
            let entry = Entry {
                id: d.id.clone(),
                terms,
            };
            self.total_len += doc_len(&entry);
            self.index.push(entry);
        }
        self.refresh_norms();
        Ok(())
    }

    /// Remove documents by id; ids not in the index are ignored. Returns how
    /// many were removed.
    pub fn remove_documents<S: AsRef<str>>(&mut self, ids: &[S]) -> usize {
        let mut removed = 0;
        for id in ids {
            if let Some(entry) = self.index.remove(id.as_ref()) {
                self.total_len -= doc_len(&entry);
                removed += 1;
            }
        }
        if removed > 0 {
            self.index.maybe_compact();
            self.refresh_norms();
        }
        removed
    }

    fn refresh_norms(&mut self) {
        let live = self.index.len();
        let avgdl = if live == 0 || self.total_len == 0 {
            1.0
        } else {
            self.total_len as f64 / live as f64
        };
        let Bm25Params { k1, b } = self.params;
        let (k1, b) = (f64::from(k1), f64::from(b));
        self.norms = vec![0.0; self.index.num_slots()];
        for (s, entry) in self.index.entries() {
            let len = doc_len(entry) as f64;
            self.norms[s as usize] = (k1 * (1.0 - b + b * len / avgdl)) as f32;
        }
        self.bounds.invalidate(self.terms.len());
    }
}

impl SavedIndex for Bm25Index {
    /// Serialise to the versioned, checksummed index format ([`persist`]).
    fn to_bytes(&self) -> Result<Vec<u8>, RetrieverError> {
        let mut remap = vec![u32::MAX; self.terms.len()];
        let mut terms = Vec::new();
        for (t, term) in self.terms.iter().enumerate() {
            if self.index.document_frequency(t as u32) > 0 {
                remap[t] = terms.len() as u32;
                terms.push(term.clone());
            }
        }
        let docs = self
            .index
            .entries()
            .map(|(_, e)| Entry {
                id: e.id.clone(),
                terms: e
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
        persist::encode_snapshot(INDEX_KIND, PAYLOAD_VERSION, &snapshot)
    }

    /// Read an index written by [`Bm25Index::to_bytes`]; anything foreign,
    /// damaged or inconsistent is refused whole.
    fn from_bytes(bytes: &[u8]) -> Result<Self, RetrieverError> {
        let snap: Snapshot = persist::decode_snapshot(bytes, INDEX_KIND, PAYLOAD_VERSION)?;
        snap.params
            .validate()
            .map_err(|e| invalid(format!("stored parameters: {e}")))?;
        let mut index = Self::with_parts(snap.params, Analyzer::new(snap.analyzer));
        for term in snap.terms {
            if index.vocab.contains_key(&term) {
                return Err(invalid(format!("term `{term}` appears twice")));
            }
            intern(&mut index.vocab, &mut index.terms, &term);
        }
        let n_terms = index.terms.len() as u32;
        index
            .index
            .check_new(snap.docs.iter().map(|d| d.id.as_str()))
            .map_err(|e| invalid(e.to_string()))?;
        for doc in snap.docs {
            validate_terms(&doc, n_terms, |&tf| tf > 0)?;
            index.total_len += doc_len(&doc);
            index.index.push(doc);
        }
        index.refresh_norms();
        Ok(index)
    }
}

impl Bm25Index {
    /// Documents held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no documents are held.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The best `k` documents for `query`, best first; ties keep insertion order.
    pub fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>, RetrieverError> {
        self.search_mixed(&[(query, 1.0)], k)
    }

    /// The best `k` documents for a weighted mix of texts: each text's
    /// query-term counts scaled by its weight, so a document scores
    /// Σ weight·BM25(text) (a query with a hypothetical document mixed in:
    /// `[(query, 0.8), (document, 0.2)]`). Weights must be finite and
    /// non-negative.
    pub fn search_mixed(
        &self,
        texts: &[(&str, f32)],
        k: usize,
    ) -> Result<Vec<Hit>, RetrieverError> {
        if let Some((_, w)) = texts.iter().find(|(_, w)| !w.is_finite() || *w < 0.0) {
            return Err(RetrieverError::InvalidParameter {
                name: "weight",
                reason: format!("a text's weight is {w} (finite, at least 0)"),
            });
        }
        if k == 0 || self.index.is_empty() {
            return Ok(Vec::new());
        }
        let terms = self.weighted_terms(texts);
        let bounded = self.bounded(&terms);
        Ok(self.index.search_max_score(&bounded, k, |i, s, tf| {
            let tf = tf as f32;
            terms[i].1 * tf / (tf + self.norms[s as usize])
        }))
    }

    /// Each weighted term with the most one of its postings can score:
    /// weight · tf / (tf + norm) is at most the weight times the term's
    /// largest tf / (tf + norm) (the margin covers rounding).
    fn bounded(&self, terms: &[(u32, f32)]) -> Vec<(u32, f32)> {
        terms
            .iter()
            .map(|&(t, w)| {
                let most = self.bounds.get(t, || {
                    self.index
                        .postings(t)
                        .iter()
                        .map(|&(s, tf)| {
                            let tf = tf as f32;
                            tf / (tf + self.norms[s as usize])
                        })
                        .fold(0.0, f32::max)
                });
                (t, w * most * 1.0001)
            })
            .collect()
    }

    /// The query's distinct terms, each with weight `qtf · idf`, in
    /// first-occurrence order (the order scores are summed in); a term
    /// repeated 800 times is one term of weight 800 · idf.
    fn weighted_terms(&self, texts: &[(&str, f32)]) -> Vec<(u32, f32)> {
        let n = self.index.len() as f32;
        let mut terms: Vec<(u32, f32)> = Vec::new();
        let mut slot_of: FastMap<u32, usize> = FastMap::default();
        for &(text, weight) in texts {
            self.analyzer.for_each_term(text, |term| {
                let Some(&t) = self.vocab.get(term) else {
                    return;
                };
                match slot_of.get(&t) {
                    Some(&i) => terms[i].1 += weight,
                    None => {
                        slot_of.insert(t, terms.len());
                        terms.push((t, weight));
                    }
                }
            });
        }
        terms.retain(|&(t, qtf)| self.index.document_frequency(t) > 0 && qtf > 0.0);
        for (t, qtf) in &mut terms {
            let df = self.index.document_frequency(*t) as f32;
            *qtf *= (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
        }
        terms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inverted::WALKED;

    /// A query repeating one term 800 times is one term of 800 times the
    /// weight, and scores as BM25 defines it: 800 times the single term's
    /// score.
    #[test]
    fn a_repeated_query_term_is_one_term() {
        let mut index = Bm25Index::new(Bm25Params::default(), AnalyzerConfig::default()).unwrap();
        let docs: Vec<Document> = (0..50)
            .map(|i| {
                Document::new(
                    format!("d{i}"),
                    "",
                    format!("paris {} france", "x ".repeat(i)),
                )
            })
            .collect();
        index.add_documents(&docs).unwrap();
        let once = index.search("paris", 10).unwrap();
        let repeated_query = "paris ".repeat(800);
        assert_eq!(index.weighted_terms(&[(&repeated_query, 1.0)]).len(), 1);
        let repeated = index.search(&repeated_query, 10).unwrap();
        assert_eq!(once.len(), repeated.len());
        for (a, b) in once.iter().zip(&repeated) {
            assert_eq!(a.id, b.id);
            assert!(
                (b.score / a.score - 800.0).abs() < 1e-3,
                "{} vs {}",
                a.score,
                b.score
            );
        }
        // Distinct terms each once, in any order or repetition.
        let terms = index.weighted_terms(&[("paris france paris france paris", 1.0)]);
        assert_eq!(terms.len(), 2);
    }

    /// Every posting of every query term scored, term at a time, in
    /// MaxScore's order: what MaxScore must return.
    fn score_every_posting(index: &Bm25Index, query: &str, k: usize) -> Vec<Hit> {
        let terms = index.weighted_terms(&[(query, 1.0)]);
        let order = index.index.max_score_order(&index.bounded(&terms));
        index.index.search_scores(k, |scores, touched| {
            for i in order {
                let (t, weight) = terms[i];
                index.index.accumulate(t, scores, touched, |s, tf| {
                    let tf = tf as f32;
                    weight * tf / (tf + index.norms[s as usize])
                });
            }
        })
    }

    /// MaxScore returns exactly the hits, scores and tie order of scoring
    /// every posting, on a corpus with Zipf-like term frequencies (long
    /// lists for common terms), before and after removals, for many
    /// queries and depths; and it walks under 60 % of the posting lists.
    #[test]
    fn max_score_equals_scoring_every_posting() {
        let mut rng = crate::rng::SplitMix64::new(2405);
        // Word w is drawn with probability about 1 / (w + 1).
        let word = |rng: &mut crate::rng::SplitMix64| {
            let u = rng.next_f32();
            let w = ((301.0f32).powf(u) - 1.0) as usize;
            format!("w{}", w.min(299))
        };
        let docs: Vec<Document> = (0..3000)
            .map(|i| {
                let len = 3 + (rng.next_f32() * 60.0) as usize;
                let text: Vec<String> = (0..len).map(|_| word(&mut rng)).collect();
                Document::new(format!("d{i}"), "", text.join(" "))
            })
            .collect();
        let queries: Vec<String> = (0..200)
            .map(|_| {
                let len = 1 + (rng.next_f32() * 12.0) as usize;
                (0..len)
                    .map(|_| word(&mut rng))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        for k1 in [0.0, 1.2] {
            let mut index =
                Bm25Index::new(Bm25Params { k1, b: 0.75 }, AnalyzerConfig::default()).unwrap();
            index.add_documents(&docs).unwrap();
            for round in 0..2 {
                let (mut walked, mut lists) = (0, 0);
                for (i, q) in queries.iter().enumerate() {
                    let k = [1, 3, 10, 50][i % 4];
                    WALKED.with(|c| c.set(0));
                    let got = index.search(q, k).unwrap();
                    walked += WALKED.with(std::cell::Cell::get);
                    lists += index.weighted_terms(&[(q, 1.0)]).len();
                    let want = score_every_posting(&index, q, k);
                    assert_eq!(got, want, "k1 {k1}, round {round}, query {q:?}, k {k}");
                }
                assert!(walked * 5 < lists * 3, "walked {walked} of {lists} lists");
                // Remove every third document: slots with holes.
                let gone: Vec<String> = (0..3000).step_by(3).map(|i| format!("d{i}")).collect();
                index.remove_documents(&gone);
            }
        }
    }

    /// Searches share one score array per thread: one index's search
    /// leaves nothing behind for the next, on a smaller or larger index,
    /// nor after a search that touched every document.
    #[test]
    fn searches_on_one_thread_leave_no_scores_behind() {
        let index_of = |n: usize, word: &str| {
            let mut index =
                Bm25Index::new(Bm25Params::default(), AnalyzerConfig::default()).unwrap();
            let docs: Vec<Document> = (0..n)
                .map(|i| {
                    Document::new(
                        format!("d{i}"),
                        "",
                        format!("{word} {}", "x ".repeat(i % 7)),
                    )
                })
                .collect();
            index.add_documents(&docs).unwrap();
            index
        };
        let (big, small) = (index_of(300, "paris"), index_of(20, "berlin"));
        let fresh = std::thread::scope(|s| {
            s.spawn(|| {
                (
                    big.search("paris x", 300).unwrap(),
                    small.search("berlin", 20).unwrap(),
                )
            })
            .join()
            .unwrap()
        });
        for _ in 0..3 {
            assert_eq!(big.search("paris x", 300).unwrap(), fresh.0);
            assert_eq!(small.search("berlin", 20).unwrap(), fresh.1);
            assert!(small.search("paris", 10).unwrap().is_empty());
        }
    }

    /// A mix of texts scores every document as the same mix of the texts'
    /// BM25 scores; bad weights are refused.
    #[test]
    fn a_weighted_mix_scores_as_the_mix_of_scores() {
        let mut index = Bm25Index::new(Bm25Params::default(), AnalyzerConfig::default()).unwrap();
        let texts = [
            "paris is the capital of france",
            "berlin is the capital of germany",
            "the seine flows through paris",
            "rivers of germany include the rhine",
        ];
        let docs: Vec<Document> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| Document::new(format!("d{i}"), "", *t))
            .collect();
        index.add_documents(&docs).unwrap();
        let score =
            |hits: &[Hit], id: &str| hits.iter().find(|h| h.id == id).map_or(0.0, |h| h.score);
        let (q, h) = ("capital of france", "the seine river in paris");
        let plain = index.search(q, 10).unwrap();
        let hypo = index.search(h, 10).unwrap();
        let mixed = index.search_mixed(&[(q, 0.8), (h, 0.2)], 10).unwrap();
        for d in &docs {
            let expected = 0.8 * score(&plain, &d.id) + 0.2 * score(&hypo, &d.id);
            assert!((score(&mixed, &d.id) - expected).abs() < 1e-5, "{}", d.id);
        }
        // The hypothetical document lifts the passage it describes.
        assert_eq!(plain[0].id, "d0");
        assert!(score(&mixed, "d2") > score(&plain, "d2"));
        assert_eq!(index.search_mixed(&[(q, 1.0)], 10).unwrap(), plain);
        for w in [f32::NAN, -0.5, f32::INFINITY] {
            assert!(matches!(
                index.search_mixed(&[(q, 1.0), (h, w)], 10),
                Err(RetrieverError::InvalidParameter { name: "weight", .. })
            ));
        }
    }
}
