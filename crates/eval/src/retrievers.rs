//! Any retriever of the evaluation built from its settings over a corpus,
//! with an optional cache of encoded document indexes keyed by a stable
//! fingerprint of the model files, the head settings and the corpus.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use rlrag_encoder::SparseActivation;
use rlrag_encoder::models::pretrained;
use rlrag_retriever::{
    AnalyzerConfig, Bm25Index, Bm25Params, BotRetriever, DenseRetriever, DenseSearch, Document,
    Fusion, HnswParams, HybridRetriever, Retriever, RetrieverError, SavedIndex, SparseRetriever,
};
use xxhash_rust::xxh3::Xxh3;

use crate::EvalError;
use crate::device::DeviceChoice;
use crate::error::setting;
use crate::models::{LoadedEncoder, SparseOverrides, load_encoder};
use crate::progress::Progress;

/// The retrievers an evaluation can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum RetrieverKind {
    /// Okapi BM25 (Lucene idf) over title + text.
    Bm25,
    /// Learned sparse (SPLADE / SiDR): encoder vectors in an inverted index.
    Sparse,
    /// SiDR bag of tokens: tokenizer-only document bags, sparse-encoded queries.
    Bot,
    /// Dense embeddings (all-MiniLM-L6-v2 by default), flat or HNSW search.
    Dense,
    /// Fusion of several retrievers (see --hybrid, --fusion).
    Hybrid,
}

impl RetrieverKind {
    /// The name the command line and reports use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bm25 => "bm25",
            Self::Sparse => "sparse",
            Self::Bot => "bot",
            Self::Dense => "dense",
            Self::Hybrid => "hybrid",
        }
    }
}

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
    pub hybrid: Vec<RetrieverKind>,
    /// Fusion of the hybrid retriever.
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value_t = FusionKind::Rrf))]
    pub fusion: FusionKind,
    /// BM25 term-frequency saturation.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Bm25Params::default().k1))]
    pub k1: f32,
    /// BM25 length normalisation.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Bm25Params::default().b))]
    pub b: f32,
    /// Directory caching encoded document indexes (sparse, dense) between
    /// runs, keyed by model, head settings and corpus; off when omitted.
    #[cfg_attr(feature = "clap", arg(long))]
    pub cache: Option<PathBuf>,
    /// Where encoders run: cpu, wgpu (a GPU through Vulkan/Metal/DirectX) or
    /// cuda[:N] (built with `--features cuda`).
    #[cfg_attr(feature = "clap", arg(long, default_value = "cpu"))]
    pub device: DeviceChoice,
    /// Set while building the parts of a hybrid: `weights` then names the
    /// sparse model only.
    #[cfg_attr(feature = "clap", arg(skip))]
    pub in_hybrid: bool,
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
            hybrid: vec![RetrieverKind::Bm25, RetrieverKind::Dense],
            fusion: FusionKind::Rrf,
            k1: Bm25Params::default().k1,
            b: Bm25Params::default().b,
            cache: None,
            device: DeviceChoice::Cpu,
            in_hybrid: false,
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

    /// A one-line description of the settings that apply to `kind`.
    pub fn describe(&self, kind: RetrieverKind) -> String {
        match kind {
            RetrieverKind::Bm25 => format!("k1 {}, b {}", self.k1, self.b),
            RetrieverKind::Sparse | RetrieverKind::Bot => {
                let mut s = format!("model {}", self.model_dir(kind).display());
                if let Some(a) = self.activation {
                    s += &format!(", activation {a:?}");
                }
                if let Some(k) = self.top_k {
                    s += &format!(", top-k {k}");
                }
                if kind == RetrieverKind::Bot {
                    s += &format!(", rerank-m {}", self.rerank_m);
                }
                s
            }
            RetrieverKind::Dense => {
                format!(
                    "model {}, {:?} index",
                    self.model_dir(kind).display(),
                    self.dense_index
                )
            }
            RetrieverKind::Hybrid => {
                let parts: Vec<&str> = self.hybrid.iter().map(|k| k.name()).collect();
                format!("{} fused by {:?}", parts.join(" + "), self.fusion)
            }
        }
    }

    /// The model directory a retriever of `kind` loads.
    fn model_dir(&self, kind: RetrieverKind) -> PathBuf {
        let dense = || match (&self.dense_weights, &self.weights) {
            (Some(d), _) => d.clone(),
            (None, Some(w)) if !self.in_hybrid => w.clone(),
            _ => pretrained("minilm"),
        };
        match kind {
            RetrieverKind::Dense => dense(),
            _ => self
                .weights
                .clone()
                .unwrap_or_else(|| pretrained("splade-tiny")),
        }
    }

    fn load(&self, kind: RetrieverKind, device: &Device) -> Result<LoadedEncoder, EvalError> {
        let sparse = kind != RetrieverKind::Dense;
        load_encoder(
            &self.model_dir(kind),
            self.sparse_overrides(),
            sparse,
            device,
        )
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

/// The index cache of one build, and where its notes go.
struct Cache<'a> {
    path: Option<PathBuf>,
    progress: &'a dyn Progress,
}

impl Cache<'_> {
    /// A cached index, if one is there and readable (a damaged one is
    /// reported and rebuilt).
    fn load<I: SavedIndex>(&self) -> Option<I> {
        let path = self.path.as_deref().filter(|p| p.exists())?;
        match I::load(path) {
            Ok(index) => {
                self.progress
                    .note(&format!("loaded cached index {}", path.display()));
                Some(index)
            }
            Err(e) => {
                self.progress
                    .note(&format!("warning: rebuilding; cached index refused: {e}"));
                None
            }
        }
    }

    /// Save an index into the cache (a failure only warns: the run goes on).
    fn store<I: SavedIndex>(&self, index: &I) {
        let Some(path) = self.path.as_deref() else {
            return;
        };
        let saved = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .map_err(|e| e.to_string())
            .and_then(|()| index.save(path).map_err(|e| e.to_string()));
        match saved {
            Ok(()) => self
                .progress
                .note(&format!("cached index {}", path.display())),
            Err(e) => self
                .progress
                .note(&format!("warning: cannot cache the index: {e}")),
        }
    }

    /// A retriever over the cached index when one is usable, else one built
    /// (and its index cached).
    fn or_build<I: SavedIndex, R>(
        &self,
        from_index: impl FnOnce(I) -> Result<R, RetrieverError>,
        build: impl FnOnce() -> Result<R, RetrieverError>,
        index_of: impl Fn(&R) -> &I,
    ) -> Result<R, RetrieverError> {
        if let Some(index) = self.load::<I>() {
            return from_index(index);
        }
        let r = build()?;
        self.store(index_of(&r));
        Ok(r)
    }
}

/// Build and fill a retriever of `kind` over `corpus`.
pub fn build(
    kind: RetrieverKind,
    settings: &RetrieverSettings,
    corpus: &[Document],
    progress: &dyn Progress,
) -> Result<Box<dyn Retriever>, EvalError> {
    let label = match kind {
        RetrieverKind::Bm25 | RetrieverKind::Bot => "indexing",
        _ => "encoding",
    };
    let mut bar = progress.bar(corpus.len() as u64, label);
    let cache = |name: &str, fingerprint: u64| Cache {
        path: settings
            .cache
            .as_deref()
            .map(|dir| cache_path(dir, name, fingerprint, corpus)),
        progress,
    };
    let retriever: Box<dyn Retriever> = match kind {
        RetrieverKind::Bm25 => {
            let mut index = Bm25Index::new(
                Bm25Params {
                    k1: settings.k1,
                    b: settings.b,
                },
                AnalyzerConfig::default(),
            )?;
            for chunk in corpus.chunks(512) {
                index.add_documents(chunk)?;
                bar.inc(chunk.len() as u64);
            }
            Box::new(index)
        }
        RetrieverKind::Sparse => {
            let loaded = settings.load(kind, &settings.device.device()?)?;
            let bar = &mut bar;
            Box::new(cache("sparse", loaded.fingerprint).or_build(
                |index| SparseRetriever::with_index(loaded.encoder.clone(), index),
                || {
                    let mut r = SparseRetriever::new(loaded.encoder.clone())?;
                    r.add_documents(corpus, &mut |n| bar.inc(n as u64))?;
                    Ok(r)
                },
                SparseRetriever::index,
            )?)
        }
        RetrieverKind::Bot => {
            let encoder = settings.load(kind, &settings.device.device()?)?.encoder;
            let mut r = BotRetriever::new(encoder, settings.rerank_m)?;
            for chunk in corpus.chunks(512) {
                r.add_documents(chunk)?;
                bar.inc(chunk.len() as u64);
            }
            Box::new(r)
        }
        RetrieverKind::Dense => {
            let loaded = settings.load(kind, &settings.device.device()?)?;
            let mode = match settings.dense_index {
                DenseIndexKind::Flat => DenseSearch::Flat,
                DenseIndexKind::Hnsw => DenseSearch::Hnsw(HnswParams {
                    ef_search: settings.ef_search,
                    ..HnswParams::default()
                }),
            };
            let bar = &mut bar;
            Box::new(cache("dense", loaded.fingerprint).or_build(
                |flat| DenseRetriever::with_index(loaded.encoder.clone(), flat, mode),
                || {
                    let mut r = DenseRetriever::new(loaded.encoder.clone(), mode)?;
                    r.add_documents(corpus, &mut |n| bar.inc(n as u64))?;
                    Ok(r)
                },
                DenseRetriever::flat,
            )?)
        }
        RetrieverKind::Hybrid => {
            bar.finish();
            return build_hybrid(settings, corpus, progress);
        }
    };
    bar.finish();
    Ok(retriever)
}

fn build_hybrid(
    settings: &RetrieverSettings,
    corpus: &[Document],
    progress: &dyn Progress,
) -> Result<Box<dyn Retriever>, EvalError> {
    if settings.hybrid.is_empty() || settings.hybrid.contains(&RetrieverKind::Hybrid) {
        return Err(setting(
            "--hybrid",
            "--hybrid lists the retrievers to fuse (not hybrid itself), e.g. bm25,dense",
        ));
    }
    let inner = RetrieverSettings {
        in_hybrid: true,
        ..settings.clone()
    };
    let mut parts = Vec::new();
    for &k in &settings.hybrid {
        parts.push((build(k, &inner, corpus, progress)?, 1.0));
    }
    let fusion = match settings.fusion {
        FusionKind::Rrf => Fusion::default(),
        FusionKind::Weighted => Fusion::Weighted,
    };
    Ok(Box::new(HybridRetriever::new(parts, fusion, 100)?))
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
