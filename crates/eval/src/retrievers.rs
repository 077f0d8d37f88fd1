//! The engine an evaluation searches, built from its settings over a
//! corpus, with an optional cache of built engines keyed by a stable
//! fingerprint of the model files, the settings and the corpus.

use std::path::{Path, PathBuf};

use futures_lite::future::block_on;
use rlrag_encoder::SparseActivation;
use rlrag_encoder::models::pretrained;
use rlrag_retriever::engine::Progress as EngineProgress;
use rlrag_retriever::{
    Bm25Params, DenseSearch, Document, Engine, EngineModels, EngineOptions, Fusion, HnswParams,
    SearchMode,
};
use xxhash_rust::xxh3::Xxh3;

use crate::EvalError;
use crate::device::DeviceChoice;
use crate::error::setting;
use crate::models::{LoadedEncoder, SparseOverrides, load_encoder, write_atomic};
use crate::progress::{Bar, Progress};

/// The dense index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum DenseIndexKind {
    /// Exact inner product.
    Flat,
    /// HNSW (instant-distance), seeded.
    Hnsw,
}

/// How a hybrid fuses its parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum FusionKind {
    /// Reciprocal-rank fusion (k = 60).
    Rrf,
    /// Weighted sum of min-max normalised scores.
    Weighted,
}

/// Everything needed to build retrievers.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct RetrieverSettings {
    /// Model directory for sparse/bot (or dense with --retriever dense):
    /// model.safetensors + config.json + tokenizer.json. Defaults to the
    /// pretrained SPLADE-tiny (sparse, bot) or all-MiniLM-L6-v2 (dense).
    #[cfg_attr(feature = "clap", arg(long))]
    pub weights: Option<PathBuf>,
    /// Dense model directory for hybrid runs (default: pretrained all-MiniLM-L6-v2).
    #[cfg_attr(feature = "clap", arg(long))]
    pub dense_weights: Option<PathBuf>,
    /// Sparse activation override.
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub activation: Option<SparseActivation>,
    /// Keep the top-k sparse terms per vector (overrides the model's setting).
    #[cfg_attr(feature = "clap", arg(long))]
    pub top_k: Option<usize>,
    /// Bag of tokens: re-rank this many candidates with the sparse encoder (0 = off).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0))]
    pub rerank_m: usize,
    /// Dense index.
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value_t = DenseIndexKind::Flat))]
    pub dense_index: DenseIndexKind,
    /// HNSW candidate list size at search time.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = HnswParams::default().ef_search))]
    pub ef_search: usize,
    /// Retrievers fused by --retriever hybrid, comma-separated.
    #[cfg_attr(
        feature = "clap",
        arg(long, value_enum, value_delimiter = ',', default_value = "bm25,dense")
    )]
    pub hybrid: Vec<SearchMode>,
    /// Fusion of the hybrid retriever.
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value_t = FusionKind::Rrf))]
    pub fusion: FusionKind,
    /// BM25 term-frequency saturation.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Bm25Params::default().k1))]
    pub k1: f32,
    /// BM25 length normalisation.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Bm25Params::default().b))]
    pub b: f32,
    /// Directory caching built indexes between runs, keyed by the models,
    /// the settings and the corpus; off when omitted.
    #[cfg_attr(feature = "clap", arg(long))]
    pub cache: Option<PathBuf>,
    /// Where encoders run: cpu, wgpu (a GPU through Vulkan/Metal/DirectX) or
    /// cuda[:N] (built with `--features cuda`).
    #[cfg_attr(feature = "clap", arg(long, default_value = "cpu"))]
    pub device: DeviceChoice,
}

impl Default for RetrieverSettings {
    fn default() -> Self {
        Self {
            weights: None,
            dense_weights: None,
            activation: None,
            top_k: None,
            rerank_m: 0,
            dense_index: DenseIndexKind::Flat,
            ef_search: HnswParams::default().ef_search,
            hybrid: vec![SearchMode::Bm25, SearchMode::Dense],
            fusion: FusionKind::Rrf,
            k1: Bm25Params::default().k1,
            b: Bm25Params::default().b,
            cache: None,
            device: DeviceChoice::Cpu,
        }
    }
}

impl RetrieverSettings {
    /// The sparse-head overrides.
    pub fn sparse_overrides(&self) -> SparseOverrides {
        SparseOverrides {
            activation: self.activation,
            top_k: self.top_k,
        }
    }

    /// A one-line description of the settings that apply to `mode`.
    pub fn describe(&self, mode: SearchMode) -> String {
        match mode {
            SearchMode::Bm25 => format!("k1 {}, b {}", self.k1, self.b),
            SearchMode::Sparse | SearchMode::Bot => {
                let mut s = format!("model {}", self.sparse_dir(mode).display());
                if let Some(a) = self.activation {
                    s += &format!(", activation {a:?}");
                }
                if let Some(k) = self.top_k {
                    s += &format!(", top-k {k}");
                }
                if mode == SearchMode::Bot {
                    s += &format!(", rerank-m {}", self.rerank_m);
                }
                s
            }
            SearchMode::Dense => {
                format!(
                    "model {}, {:?} index",
                    self.dense_dir(mode).display(),
                    self.dense_index
                )
            }
            SearchMode::Hybrid => {
                let parts: Vec<&str> = self.hybrid.iter().map(|k| k.name()).collect();
                format!("{} fused by {:?}", parts.join(" + "), self.fusion)
            }
        }
    }

    /// The sparse model an engine searching in `mode` loads: `--weights`,
    /// unless they name the dense model (`--retriever dense`), else the
    /// pretrained SPLADE-tiny.
    fn sparse_dir(&self, mode: SearchMode) -> PathBuf {
        match (&self.weights, mode) {
            (Some(w), m) if m != SearchMode::Dense => w.clone(),
            _ => pretrained("splade-tiny"),
        }
    }

    /// The dense model: `--dense-weights`, else `--weights` for `--retriever
    /// dense`, else the pretrained all-MiniLM-L6-v2.
    fn dense_dir(&self, mode: SearchMode) -> PathBuf {
        match (&self.dense_weights, &self.weights) {
            (Some(d), _) => d.clone(),
            (None, Some(w)) if mode == SearchMode::Dense => w.clone(),
            _ => pretrained("minilm"),
        }
    }

    /// The modes a search in `mode` reads: itself, or a hybrid's parts.
    fn parts(&self, mode: SearchMode) -> Result<Vec<SearchMode>, EvalError> {
        if mode != SearchMode::Hybrid {
            return Ok(vec![mode]);
        }
        if self.hybrid.is_empty() || self.hybrid.contains(&SearchMode::Hybrid) {
            return Err(setting(
                "--hybrid",
                "--hybrid lists the retrievers to fuse (not hybrid itself), e.g. bm25,dense",
            ));
        }
        Ok(self.hybrid.clone())
    }

    /// The engine's options for a search in `mode`.
    fn options(&self, mode: SearchMode) -> Result<EngineOptions, EvalError> {
        let parts = self.parts(mode)?;
        Ok(EngineOptions {
            sparse_vectors: parts.contains(&SearchMode::Sparse),
            rerank_m: self.rerank_m,
            bm25: Bm25Params {
                k1: self.k1,
                b: self.b,
            },
            dense_search: match self.dense_index {
                DenseIndexKind::Flat => DenseSearch::Flat,
                DenseIndexKind::Hnsw => DenseSearch::Hnsw(HnswParams {
                    ef_search: self.ef_search,
                    ..HnswParams::default()
                }),
            },
            hybrid: if mode == SearchMode::Hybrid {
                parts
            } else {
                Vec::new()
            },
            fusion: self.fusion(),
        })
    }

    /// How the hybrid's lists combine.
    pub fn fusion(&self) -> Fusion {
        match self.fusion {
            FusionKind::Rrf => Fusion::default(),
            FusionKind::Weighted => Fusion::Weighted,
        }
    }
}

/// A stable fingerprint of a corpus: ids and indexed text, in order.
pub fn corpus_fingerprint(corpus: &[Document]) -> u64 {
    let mut h = Xxh3::new();
    for d in corpus {
        let text = d.full_text();
        h.update(&(d.id.len() as u64).to_le_bytes());
        h.update(d.id.as_bytes());
        h.update(&(text.len() as u64).to_le_bytes());
        h.update(text.as_bytes());
    }
    h.digest()
}

/// The cache file of an index of `kind` built by the encoder with
/// `encoder` fingerprint over `corpus`: the same on every build and toolchain.
pub fn cache_path(dir: &Path, kind: &str, encoder: u64, corpus: &[Document]) -> PathBuf {
    let corpus = corpus_fingerprint(corpus);
    let key = rlrag_retriever::hash::fingerprint(&[&encoder.to_le_bytes(), &corpus.to_le_bytes()]);
    dir.join(format!("{kind}-{key:016x}.idx"))
}

/// The engine's models and their files' fingerprints.
struct Models {
    sparse: LoadedEncoder,
    dense: Option<LoadedEncoder>,
}

impl Models {
    fn engine(&self) -> EngineModels {
        EngineModels {
            sparse: self.sparse.encoder.clone(),
            sparse_fingerprint: self.sparse.fingerprint,
            dense: self
                .dense
                .as_ref()
                .map(|d| (d.encoder.clone(), d.fingerprint)),
        }
    }

    /// What the cache key holds besides the corpus: the models and the options.
    fn key(&self, mode: SearchMode, options: &EngineOptions) -> Result<u64, EvalError> {
        let options = serde_json::to_vec(options)?;
        let dense = self.dense.as_ref().map_or(0, |d| d.fingerprint);
        Ok(rlrag_retriever::hash::fingerprint(&[
            mode.name().as_bytes(),
            &self.sparse.fingerprint.to_le_bytes(),
            &dense.to_le_bytes(),
            &options,
        ]))
    }
}

/// An engine over `corpus` that searches in `mode` as the settings say:
/// read from the cache when a usable entry is there (a damaged one is
/// reported and rebuilt), else built, with a progress bar per stage, and
/// cached.
pub fn build(
    mode: SearchMode,
    settings: &RetrieverSettings,
    corpus: &[Document],
    progress: &dyn Progress,
) -> Result<Engine, EvalError> {
    let options = settings.options(mode)?;
    let device = settings.device.device()?;
    let parts = settings.parts(mode)?;
    let models = Models {
        sparse: load_encoder(
            &settings.sparse_dir(mode),
            settings.sparse_overrides(),
            true,
            &device,
        )?,
        dense: parts
            .contains(&SearchMode::Dense)
            .then(|| {
                load_encoder(
                    &settings.dense_dir(mode),
                    SparseOverrides::default(),
                    false,
                    &device,
                )
            })
            .transpose()?,
    };
    let path = match &settings.cache {
        Some(dir) => Some(cache_path(
            dir,
            &format!("engine-{mode}"),
            models.key(mode, &options)?,
            corpus,
        )),
        None => None,
    };
    if let Some(path) = path.as_deref().filter(|p| p.exists()) {
        let cached = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| Engine::import(models.engine(), &bytes).map_err(|e| e.to_string()));
        match cached {
            Ok(engine) => {
                progress.note(&format!("loaded cached index {}", path.display()));
                return Ok(engine);
            }
            Err(e) => progress.note(&format!("warning: rebuilding; cached index refused: {e}")),
        }
    }
    let mut engine = Engine::new(models.engine(), options)?;
    // One bar per stage: tokenizing, then each encoder.
    let mut current: Option<(&'static str, Box<dyn Bar>)> = None;
    let mut report = |p: EngineProgress| {
        if current.as_ref().is_none_or(|(stage, _)| *stage != p.stage) {
            if let Some((_, bar)) = current.take() {
                bar.finish();
            }
            let label = if p.stage == "tokens" {
                "indexing"
            } else {
                "encoding"
            };
            current = Some((p.stage, progress.bar(p.total as u64, label)));
        }
        if let Some((_, bar)) = current.as_mut() {
            bar.set_position(p.done as u64);
        }
    };
    block_on(engine.add_documents(corpus, &mut report))?;
    if let Some((_, bar)) = current.take() {
        bar.finish();
    }
    if let Some(path) = path {
        let stored = engine
            .export()
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
                }
                write_atomic(&path, &bytes).map_err(|e| e.to_string())
            });
        match stored {
            Ok(()) => progress.note(&format!("cached index {}", path.display())),
            Err(e) => progress.note(&format!("warning: cannot cache the index: {e}")),
        }
    }
    Ok(engine)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str, text: &str) -> Document {
        Document {
            id: id.into(),
            title: String::new(),
            text: text.into(),
        }
    }

    #[test]
    fn cache_keys_are_pinned_and_see_ids_text_and_order() {
        let a = [doc("1", "alpha"), doc("2", "beta")];
        // Pinned: a change here orphans every user's cached indexes.
        assert_eq!(
            cache_path(Path::new("c"), "sparse", 7, &a),
            PathBuf::from(format!(
                "c/sparse-{:016x}.idx",
                rlrag_retriever::hash::fingerprint(&[
                    &7u64.to_le_bytes(),
                    &corpus_fingerprint(&a).to_le_bytes()
                ])
            ))
        );
        let base = corpus_fingerprint(&a);
        assert_eq!(
            base, 0x38a5_f25d_ac51_ffb5_u64,
            "corpus fingerprint changed: {base:#x}"
        );
        assert_ne!(
            corpus_fingerprint(&[doc("1", "alph"), doc("2", "abeta")]),
            base
        );
        assert_ne!(
            corpus_fingerprint(&[doc("2", "beta"), doc("1", "alpha")]),
            base
        );
        assert_ne!(
            corpus_fingerprint(&[doc("1", "alpha"), doc("3", "beta")]),
            base
        );
        assert_ne!(
            cache_path(Path::new("c"), "sparse", 8, &a),
            cache_path(Path::new("c"), "sparse", 7, &a)
        );
    }
}
