//! Building any retriever of the `eval` command over a corpus.

use std::hash::{DefaultHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use burn::tensor::Device;
use rlrag_encoder::models::pretrained;
use rlrag_encoder::{Encoder, Head, ModelConfig, ModelFiles, SparseActivation};
use rlrag_retriever::{
    AnalyzerConfig, Bm25Index, Bm25Params, BotRetriever, DenseRetriever, DenseSearch, Document,
    Fusion, HnswParams, HybridRetriever, Retriever, RetrieverError, SavedIndex, SparseRetriever,
};
use rlrag_train::DeviceChoice;

use crate::progress::LazyBar;

/// Retrievers `eval` can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
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

/// Dense index choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DenseIndexKind {
    /// Exact inner product.
    Flat,
    /// HNSW (instant-distance), seeded.
    Hnsw,
}

/// Fusion choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FusionKind {
    /// Reciprocal-rank fusion (k = 60).
    Rrf,
    /// Weighted sum of min-max normalised scores.
    Weighted,
}

/// Activation override of a sparse model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ActivationArg {
    /// log(1 + relu(x)) (SPLADE).
    Log1pRelu,
    /// elu(x) + 1 (SiDR).
    Elu1p,
}

/// Everything needed to build retrievers.
#[derive(Debug, Clone, clap::Args)]
pub struct RetrieverArgs {
    /// Model directory for sparse/bot (or dense with --retriever dense):
    /// model.safetensors + config.json + tokenizer.json. Defaults to the
    /// pretrained SPLADE-tiny (sparse, bot) or all-MiniLM-L6-v2 (dense).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Dense model directory for hybrid runs (default: pretrained all-MiniLM-L6-v2).
    #[arg(long)]
    pub dense_weights: Option<PathBuf>,
    /// Sparse activation override.
    #[arg(long, value_enum)]
    pub activation: Option<ActivationArg>,
    /// Keep the top-k sparse terms per vector (overrides the model's setting).
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Bag of tokens: re-rank this many candidates with the sparse encoder (0 = off).
    #[arg(long, default_value_t = 0)]
    pub rerank_m: usize,
    /// Dense index.
    #[arg(long, value_enum, default_value_t = DenseIndexKind::Flat)]
    pub dense_index: DenseIndexKind,
    /// HNSW candidate list size at search time.
    #[arg(long, default_value_t = HnswParams::default().ef_search)]
    pub ef_search: usize,
    /// Retrievers fused by --retriever hybrid, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "bm25,dense")]
    pub hybrid: Vec<RetrieverKind>,
    /// Fusion of the hybrid retriever.
    #[arg(long, value_enum, default_value_t = FusionKind::Rrf)]
    pub fusion: FusionKind,
    /// BM25 term-frequency saturation.
    #[arg(long, default_value_t = Bm25Params::default().k1)]
    pub k1: f32,
    /// BM25 length normalisation.
    #[arg(long, default_value_t = Bm25Params::default().b)]
    pub b: f32,
    /// Directory caching encoded document indexes (sparse, dense) between
    /// runs, keyed by model, head settings and corpus; off when omitted.
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Where encoders run: cpu, wgpu (a GPU through Vulkan/Metal/DirectX) or
    /// cuda[:N] (built with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Set while building the parts of a hybrid: `--weights` then names the
    /// sparse model only.
    #[arg(skip)]
    pub in_hybrid: bool,
}

impl RetrieverArgs {
    /// Default settings with only the sparse-model overrides set.
    pub fn sparse_overrides(activation: Option<ActivationArg>, top_k: Option<usize>) -> Self {
        Self {
            weights: None,
            dense_weights: None,
            activation,
            top_k,
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
}

/// A loaded encoder and a fingerprint of everything that shapes its vectors
/// (weights, effective config, tokenizer).
struct LoadedEncoder {
    encoder: Arc<Encoder>,
    fingerprint: u64,
    /// `tokenizer.json` as read (model exports copy it).
    tokenizer: Vec<u8>,
}

/// A stable-within-a-build hash of byte strings (cache keys only).
fn fingerprint(parts: &[&[u8]]) -> u64 {
    let mut h = DefaultHasher::new();
    for p in parts {
        h.write_usize(p.len());
        h.write(p);
    }
    h.finish()
}

/// A fingerprint of a corpus: ids and indexed text, in order.
fn corpus_fingerprint(corpus: &[Document]) -> u64 {
    let mut h = DefaultHasher::new();
    for d in corpus {
        let text = d.full_text();
        h.write_usize(d.id.len());
        h.write(d.id.as_bytes());
        h.write_usize(text.len());
        h.write(text.as_bytes());
    }
    h.finish()
}

/// The cache file of an index of `kind` built by `encoder` over a corpus.
fn cache_path(
    args: &RetrieverArgs,
    kind: &str,
    encoder: u64,
    corpus: &[Document],
) -> Option<PathBuf> {
    let dir = args.cache.as_ref()?;
    let corpus = corpus_fingerprint(corpus);
    let key = fingerprint(&[&encoder.to_le_bytes(), &corpus.to_le_bytes()]);
    Some(dir.join(format!("{kind}-{key:016x}.idx")))
}

/// A cached index, if one is there and readable (a damaged one is reported
/// and rebuilt).
fn load_cached<I: SavedIndex>(path: Option<&Path>) -> Option<I> {
    let path = path.filter(|p| p.exists())?;
    match I::load(path) {
        Ok(index) => {
            eprintln!("loaded cached index {}", path.display());
            Some(index)
        }
        Err(e) => {
            eprintln!("warning: rebuilding; cached index refused: {e}");
            None
        }
    }
}

/// Save an index into the cache (a failure only warns: the run goes on).
fn store_cached<I: SavedIndex>(path: Option<&Path>, index: &I) {
    let Some(path) = path else { return };
    let saved = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .map_err(anyhow::Error::from)
        .and_then(|()| Ok(index.save(path)?));
    match saved {
        Ok(()) => eprintln!("cached index {}", path.display()),
        Err(e) => eprintln!("warning: cannot cache the index: {e}"),
    }
}

/// A retriever over the cached index at `path` when one is usable, else one
/// built (and its index cached).
fn cached_or_built<I: SavedIndex, R>(
    path: Option<&Path>,
    from_index: impl FnOnce(I) -> Result<R, RetrieverError>,
    build: impl FnOnce() -> Result<R, RetrieverError>,
    index_of: impl Fn(&R) -> &I,
) -> Result<R, RetrieverError> {
    if let Some(index) = load_cached::<I>(path) {
        return from_index(index);
    }
    let r = build()?;
    store_cached(path, index_of(&r));
    Ok(r)
}

/// Load an encoder from `dir`, applying sparse overrides.
fn load_encoder(dir: &Path, args: &RetrieverArgs, sparse: bool) -> anyhow::Result<LoadedEncoder> {
    load_encoder_on(dir, args, sparse, &args.device.device()?)
}

/// A sparse model from `dir` on `device` with the `--activation`/`--top-k`
/// overrides applied, and the bytes of its tokenizer (for exports).
pub fn load_sparse_model(
    dir: &Path,
    args: &RetrieverArgs,
    device: &Device,
) -> anyhow::Result<(Encoder, Vec<u8>)> {
    let loaded = load_encoder_on(dir, args, true, device)?;
    let encoder =
        Arc::try_unwrap(loaded.encoder).map_err(|_| anyhow::anyhow!("the encoder is shared"))?;
    Ok((encoder, loaded.tokenizer))
}

fn load_encoder_on(
    dir: &Path,
    args: &RetrieverArgs,
    sparse: bool,
    device: &Device,
) -> anyhow::Result<LoadedEncoder> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).with_context(|| {
            format!(
                "cannot read {} (fetch the pretrained models with scripts/fetch-models.sh)",
                path.display()
            )
        })
    };
    let (weights, config, tokenizer) = (
        read("model.safetensors")?,
        read("config.json")?,
        read("tokenizer.json")?,
    );
    let mut cfg =
        ModelConfig::from_json(&config).with_context(|| format!("in {}", dir.display()))?;
    if sparse && let Head::Sparse { activation, top_k } = &mut cfg.rlrag.head {
        if let Some(a) = args.activation {
            *activation = match a {
                ActivationArg::Log1pRelu => SparseActivation::Log1pRelu,
                ActivationArg::Elu1p => SparseActivation::Elu1p,
            };
        }
        if let Some(k) = args.top_k {
            *top_k = Some(k);
        }
        if *activation == SparseActivation::Elu1p && top_k.is_none() {
            anyhow::bail!("elu1p weights every vocabulary term: pass --top-k (SiDR uses 768)");
        }
    }
    cfg.validate()?;
    let config = cfg.to_json()?;
    let encoder = Encoder::load(
        ModelFiles {
            weights: &weights,
            config: &config,
            tokenizer: &tokenizer,
        },
        device,
    )
    .with_context(|| format!("cannot load the model in {}", dir.display()))?;
    Ok(LoadedEncoder {
        encoder: Arc::new(encoder),
        fingerprint: fingerprint(&[&weights, &config, &tokenizer]),
        tokenizer,
    })
}

/// Build and fill a retriever of `kind` over `corpus`.
pub fn build(
    kind: RetrieverKind,
    args: &RetrieverArgs,
    corpus: &[Document],
) -> anyhow::Result<Box<dyn Retriever>> {
    let label = |k: RetrieverKind| -> &'static str {
        match k {
            RetrieverKind::Bm25 | RetrieverKind::Bot => "indexing",
            _ => "encoding",
        }
    };
    let mut bar = LazyBar::new(corpus.len() as u64, label(kind));
    let retriever: Box<dyn Retriever> = match kind {
        RetrieverKind::Bm25 => {
            let mut index = Bm25Index::new(
                Bm25Params {
                    k1: args.k1,
                    b: args.b,
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
            let loaded = load_encoder(&args.model_dir(kind), args, true)?;
            let path = cache_path(args, "sparse", loaded.fingerprint, corpus);
            Box::new(cached_or_built(
                path.as_deref(),
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
            let encoder = load_encoder(&args.model_dir(kind), args, true)?.encoder;
            let mut r = BotRetriever::new(encoder, args.rerank_m)?;
            for chunk in corpus.chunks(512) {
                r.add_documents(chunk)?;
                bar.inc(chunk.len() as u64);
            }
            Box::new(r)
        }
        RetrieverKind::Dense => {
            let loaded = load_encoder(&args.model_dir(kind), args, false)?;
            let mode = match args.dense_index {
                DenseIndexKind::Flat => DenseSearch::Flat,
                DenseIndexKind::Hnsw => DenseSearch::Hnsw(HnswParams {
                    ef_search: args.ef_search,
                    ..HnswParams::default()
                }),
            };
            let path = cache_path(args, "dense", loaded.fingerprint, corpus);
            Box::new(cached_or_built(
                path.as_deref(),
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
            if args.hybrid.is_empty() || args.hybrid.contains(&RetrieverKind::Hybrid) {
                anyhow::bail!(
                    "--hybrid lists the retrievers to fuse (not hybrid itself), e.g. bm25,dense"
                );
            }
            let inner = RetrieverArgs {
                in_hybrid: true,
                ..args.clone()
            };
            let mut parts = Vec::new();
            for &k in &args.hybrid {
                parts.push((build(k, &inner, corpus)?, 1.0));
            }
            let fusion = match args.fusion {
                FusionKind::Rrf => Fusion::default(),
                FusionKind::Weighted => Fusion::Weighted,
            };
            return Ok(Box::new(HybridRetriever::new(parts, fusion, 100)?));
        }
    };
    bar.finish();
    Ok(retriever)
}
