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

const SNAPSHOT_KIND: &str = "engine";
/// 2: model fingerprints are XXH3 (were CRC-32). 3: the options hold BM25's
/// parameters, the dense search and the hybrid's parts and fusion (version
/// 2 files still import, with the defaults of those).
const SNAPSHOT_VERSION: u16 = 3;

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

/// A version-2 snapshot: the options held only what is indexed.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct SnapshotV2 {
    sparse_fingerprint: u64,
    dense_fingerprint: Option<u64>,
    options: OptionsV2,
    documents: Vec<Document>,
    bm25: Vec<u8>,
    bags: Vec<u8>,
    learned: Option<Vec<u8>>,
    dense: Option<Vec<u8>>,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct OptionsV2 {
    sparse_vectors: bool,
    rerank_m: usize,
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rlrag_encoder::Encoder;

    use super::*;
    use crate::engine::SearchMode;

    fn models() -> EngineModels {
        let dir = rlrag_encoder::models::pretrained("splade-tiny");
        let sparse = Encoder::from_dir(&dir, &burn::tensor::Device::flex())
            .unwrap_or_else(|e| panic!("{e}: run scripts/fetch-models.sh"));
        EngineModels {
            sparse: Arc::new(sparse),
            sparse_fingerprint: 7,
            dense: None,
        }
    }

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        burn::tensor::try_read_sync(f).unwrap_or_else(|| panic!("CPU futures complete at once"))
    }

    /// Engines saved before the options grew (version 2) still import, with
    /// the new options at their defaults, and search as before.
    #[test]
    fn version_2_snapshots_import() {
        let options = EngineOptions {
            rerank_m: 2,
            ..EngineOptions::default()
        };
        let mut engine = Engine::new(models(), options.clone()).unwrap_or_else(|e| panic!("{e}"));
        let docs = [
            Document::new("a", "Paris", "Paris is the capital of France."),
            Document::new("b", "Nile", "The Nile flows north through Africa."),
            Document::new("c", "Insulin", "The pancreas makes insulin."),
        ];
        run(engine.add_documents(&docs, &mut |_| {})).unwrap_or_else(|e| panic!("{e}"));
        let v3: Snapshot = decode_snapshot(
            &engine.export().unwrap_or_else(|e| panic!("{e}")),
            SNAPSHOT_KIND,
            SNAPSHOT_VERSION,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let v2 = SnapshotV2 {
            sparse_fingerprint: v3.sparse_fingerprint,
            dense_fingerprint: v3.dense_fingerprint,
            options: OptionsV2 {
                sparse_vectors: v3.options.sparse_vectors,
                rerank_m: v3.options.rerank_m,
            },
            documents: v3.documents,
            bm25: v3.bm25,
            bags: v3.bags,
            learned: v3.learned,
            dense: v3.dense,
        };
        let bytes = encode_snapshot(SNAPSHOT_KIND, 2, &v2).unwrap_or_else(|e| panic!("{e}"));
        let old = Engine::import(models(), &bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(old.options(), &options);
        for mode in SearchMode::ALL
            .into_iter()
            .filter(|m| *m != SearchMode::Dense)
        {
            let q = "which organ makes insulin";
            assert_eq!(
                run(old.search(q, 3, mode)).unwrap_or_else(|e| panic!("{e}")),
                run(engine.search(q, 3, mode)).unwrap_or_else(|e| panic!("{e}")),
                "{mode}"
            );
        }
        // Version 1 (CRC-32 fingerprints) is refused whole.
        let v1 = encode_snapshot(SNAPSHOT_KIND, 1, &v2).unwrap_or_else(|e| panic!("{e}"));
        assert!(Engine::import(models(), &v1).is_err());
    }
}
