//! The engine's saved form: the corpus and every index in one versioned,
//! checksummed file, tied to the model files by fingerprint; older
//! versions that still import, and the checks an import makes.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{Engine, EngineModels, EngineOptions, invalid};
use crate::dense_index::FlatIndex;
use crate::neural::vocab_size;
use crate::persist::{decode_snapshot, encode_snapshot};
use crate::sparse_index::{SparseIndex, Weighting};
use crate::{Bm25Index, Document, IndexFileError, RetrieverError, SavedIndex};

pub(super) const SNAPSHOT_KIND: &str = "engine";
/// 2: model fingerprints are XXH3 (were CRC-32). 3: the options hold BM25's
/// parameters, the dense search and the hybrid's parts and fusion (version
/// 2 files still import, with the defaults of those).
pub(super) const SNAPSHOT_VERSION: u16 = 3;

#[derive(Serialize, Deserialize)]
pub(super) struct Snapshot {
    pub(super) sparse_fingerprint: u64,
    pub(super) dense_fingerprint: Option<u64>,
    pub(super) options: EngineOptions,
    pub(super) documents: Vec<Document>,
    pub(super) bm25: Vec<u8>,
    pub(super) bags: Vec<u8>,
    pub(super) learned: Option<Vec<u8>>,
    pub(super) dense: Option<Vec<u8>>,
}

/// A version-2 snapshot: the options held only what is indexed.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(super) struct SnapshotV2 {
    pub(super) sparse_fingerprint: u64,
    pub(super) dense_fingerprint: Option<u64>,
    pub(super) options: OptionsV2,
    pub(super) documents: Vec<Document>,
    pub(super) bm25: Vec<u8>,
    pub(super) bags: Vec<u8>,
    pub(super) learned: Option<Vec<u8>>,
    pub(super) dense: Option<Vec<u8>>,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(super) struct OptionsV2 {
    pub(super) sparse_vectors: bool,
    pub(super) rerank_m: usize,
}

impl From<SnapshotV2> for Snapshot {
    fn from(v2: SnapshotV2) -> Self {
        Self {
            sparse_fingerprint: v2.sparse_fingerprint,
            dense_fingerprint: v2.dense_fingerprint,
            options: EngineOptions {
                sparse_vectors: v2.options.sparse_vectors,
                rerank_m: v2.options.rerank_m,
                ..EngineOptions::default()
            },
            documents: v2.documents,
            bm25: v2.bm25,
            bags: v2.bags,
            learned: v2.learned,
            dense: v2.dense,
        }
    }
}

impl Engine {
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
        let snap: Snapshot = match decode_snapshot(bytes, SNAPSHOT_KIND, SNAPSHOT_VERSION) {
            Err(RetrieverError::IndexFile(IndexFileError::UnsupportedVersion {
                what: "payload",
                found: 2,
                ..
            })) => decode_snapshot::<SnapshotV2>(bytes, SNAPSHOT_KIND, 2)?.into(),
            other => other?,
        };
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
        engine.rebuild_hnsw();
        Ok(engine)
    }

    /// Every index holds exactly the documents, with matching vocabularies.
    fn check_consistent(&self) -> Result<(), RetrieverError> {
        let n = self.docs.len();
        let vocab = vocab_size(&self.models.sparse);
        if self.bm25.params() != self.options.bm25 {
            return Err(invalid(
                "index",
                "the BM25 index and the options hold different parameters",
            ));
        }
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
