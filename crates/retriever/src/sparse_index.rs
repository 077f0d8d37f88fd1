//! An inverted index over sparse vocabulary vectors with exact top-k by dot
//! product: learned-sparse document vectors (SPLADE / SiDR) or binary bags of
//! tokens (SiDR's bag-of-tokens index, weight 1 per distinct token).

use rlrag_encoder::{MAX_VOCAB_SIZE, SparseVector};
use serde::{Deserialize, Serialize};

use crate::inverted::{Entry, Inverted, normalize_terms};
use crate::persist::{self, SavedIndex, invalid, validate_terms};
use crate::{Hit, RetrieverError};

/// The kind name of sparse index files.
pub const INDEX_KIND: &str = "sparse";
/// The payload version this build writes and reads.
pub const PAYLOAD_VERSION: u16 = 1;

/// How documents are weighted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weighting {
    /// Encoder weights per term.
    Learned,
    /// 1 for every distinct token (bag of tokens).
    Binary,
}

/// A sparse inverted index.
#[derive(Debug, Clone)]
pub struct SparseIndex {
    weighting: Weighting,
    vocab_size: u32,
    index: Inverted<f32>,
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    weighting: Weighting,
    vocab_size: u32,
    docs: Vec<Entry<f32>>,
}

impl SparseIndex {
    /// An empty index for term ids below `vocab_size` (at most
    /// [`MAX_VOCAB_SIZE`]: the index keeps a posting list per term id).
    pub fn new(weighting: Weighting, vocab_size: u32) -> Result<Self, RetrieverError> {
        if vocab_size as usize > MAX_VOCAB_SIZE {
            return Err(RetrieverError::InvalidParameter {
                name: "vocab_size",
                reason: format!("{vocab_size} terms (at most {MAX_VOCAB_SIZE})"),
            });
        }
        Ok(Self {
            weighting,
            vocab_size,
            index: Inverted::default(),
        })
    }

    /// How documents are weighted.
    pub fn weighting(&self) -> Weighting {
        self.weighting
    }

    /// Term ids are below this.
    pub fn vocab_size(&self) -> u32 {
        self.vocab_size
    }

    /// Live documents.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no document is indexed.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Whether a document id is indexed.
    pub fn contains(&self, id: &str) -> bool {
        self.index.contains(id)
    }

    fn check_terms(&self, id: &str, v: &SparseVector) -> Result<(), RetrieverError> {
        if let Some(&(t, w)) = v
            .terms
            .iter()
            .find(|(t, w)| *t >= self.vocab_size || !w.is_finite() || *w < 0.0)
        {
            return Err(RetrieverError::InvalidParameter {
                name: "vector",
                reason: format!(
                    "document `{id}`: term {t} with weight {w} (vocabulary {}, weights must be finite and >= 0)",
                    self.vocab_size
                ),
            });
        }
        Ok(())
    }

    /// Add documents with their vectors (binary indexes store weight 1 for
    /// every term). All or nothing on duplicate ids or bad vectors.
    pub fn add(&mut self, docs: &[(String, SparseVector)]) -> Result<(), RetrieverError> {
        self.index
            .check_new(docs.iter().map(|(id, _)| id.as_str()))?;
        for (id, v) in docs {
            self.check_terms(id, v)?;
        }
        for (id, v) in docs {
            let terms = v.terms.iter().filter(|t| t.1 > 0.0).map(|&(t, w)| {
                (
                    t,
                    if self.weighting == Weighting::Binary {
                        1.0
                    } else {
                        w
                    },
                )
            });
            let terms = normalize_terms(terms.collect(), f32::max);
            self.index.push(Entry {
                id: id.clone(),
                terms,
            });
        }
        Ok(())
    }

    /// Remove documents by id; unknown ids are ignored. Returns how many went.
    pub fn remove<S: AsRef<str>>(&mut self, ids: &[S]) -> usize {
        let removed = ids
            .iter()
            .filter(|id| self.index.remove(id.as_ref()).is_some())
            .count();
        if removed > 0 {
            self.index.maybe_compact();
        }
        removed
    }

    /// The best `k` documents by dot product with `query`.
    pub fn search(&self, query: &SparseVector, k: usize) -> Vec<Hit> {
        self.index.search_scores(k, |scores, touched| {
            for &(t, w) in &query.terms {
                if w > 0.0 {
                    self.index.accumulate(t, scores, touched, |_, d| w * d);
                }
            }
        })
    }

    /// Live documents in index order (the order ties break on), each with
    /// its stored terms: what [`crate::block_max::BlockMaxIndex::build`] takes.
    pub fn documents(&self) -> impl Iterator<Item = (&str, &[(u32, f32)])> {
        self.index
            .entries()
            .map(|(_, e)| (e.id.as_str(), e.terms.as_slice()))
    }

    /// The stored vector of a document.
    pub fn vector(&self, id: &str) -> Option<SparseVector> {
        self.index.entry_by_id(id).map(|e| SparseVector {
            terms: e.terms.clone(),
        })
    }
}

impl SavedIndex for SparseIndex {
    /// Serialise to the versioned, checksummed index format.
    fn to_bytes(&self) -> Result<Vec<u8>, RetrieverError> {
        let snapshot = Snapshot {
            weighting: self.weighting,
            vocab_size: self.vocab_size,
            docs: self.index.entries().map(|(_, e)| e.clone()).collect(),
        };
        persist::encode_snapshot(INDEX_KIND, PAYLOAD_VERSION, &snapshot)
    }

    /// Read an index written by [`SparseIndex::to_bytes`].
    fn from_bytes(bytes: &[u8]) -> Result<Self, RetrieverError> {
        let snap: Snapshot = persist::decode_snapshot(bytes, INDEX_KIND, PAYLOAD_VERSION)?;
        let mut index =
            Self::new(snap.weighting, snap.vocab_size).map_err(|e| invalid(e.to_string()))?;
        index
            .index
            .check_new(snap.docs.iter().map(|d| d.id.as_str()))
            .map_err(|e| invalid(e.to_string()))?;
        for doc in snap.docs {
            validate_terms(&doc, snap.vocab_size, |w| w.is_finite() && *w > 0.0)?;
            index.index.push(doc);
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny file with a valid frame and checksum that claims the largest
    /// vocabulary and uses a term near its end: refused before any posting
    /// list is allocated (it asked for ~96 GiB).
    #[test]
    fn a_huge_claimed_vocabulary_is_refused_before_allocating() {
        let snap = Snapshot {
            weighting: Weighting::Learned,
            vocab_size: u32::MAX,
            docs: vec![Entry {
                id: "d".into(),
                terms: vec![(u32::MAX - 1, 1.0)],
            }],
        };
        let bytes = persist::encode_snapshot(INDEX_KIND, PAYLOAD_VERSION, &snap).expect("frames");
        assert!(bytes.len() < 100, "{} bytes", bytes.len());
        let err = SparseIndex::from_bytes(&bytes).expect_err("refused");
        assert!(err.to_string().contains("at most"), "{err}");
        assert!(SparseIndex::new(Weighting::Binary, u32::MAX).is_err());
        assert!(SparseIndex::new(Weighting::Binary, MAX_VOCAB_SIZE as u32).is_ok());
    }
}
