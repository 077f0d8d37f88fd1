//! Building any retriever of the `eval` command over a corpus.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use burn::tensor::Device;
use rlrag_encoder::models::pretrained;
use rlrag_encoder::{Encoder, Head, ModelConfig, ModelFiles, SparseActivation};
use rlrag_retriever::{
    AnalyzerConfig, Bm25Index, Bm25Params, BotRetriever, DenseRetriever, DenseSearch, Document,
    Fusion, HnswParams, HybridRetriever, Retriever, SparseRetriever,
};

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
    /// Set while building the parts of a hybrid: `--weights` then names the
    /// sparse model only.
    #[arg(skip)]
    pub in_hybrid: bool,
}

impl RetrieverArgs {
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

/// Load an encoder from `dir`, applying sparse overrides.
fn load_encoder(
    dir: &std::path::Path,
    args: &RetrieverArgs,
    sparse: bool,
) -> anyhow::Result<Arc<Encoder>> {
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
        &Device::flex(),
    )
    .with_context(|| format!("cannot load the model in {}", dir.display()))?;
    Ok(Arc::new(encoder))
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
            let encoder = load_encoder(&args.model_dir(kind), args, true)?;
            let mut r = SparseRetriever::new(encoder)?;
            r.add_documents(corpus, &mut |n| bar.inc(n as u64))?;
            Box::new(r)
        }
        RetrieverKind::Bot => {
            let encoder = load_encoder(&args.model_dir(kind), args, true)?;
            let mut r = BotRetriever::new(encoder, args.rerank_m)?;
            for chunk in corpus.chunks(512) {
                r.add_documents(chunk)?;
                bar.inc(chunk.len() as u64);
            }
            Box::new(r)
        }
        RetrieverKind::Dense => {
            let encoder = load_encoder(&args.model_dir(kind), args, false)?;
            let mode = match args.dense_index {
                DenseIndexKind::Flat => DenseSearch::Flat,
                DenseIndexKind::Hnsw => DenseSearch::Hnsw(HnswParams {
                    ef_search: args.ef_search,
                    ..HnswParams::default()
                }),
            };
            let mut r = DenseRetriever::new(encoder, mode)?;
            r.add_documents(corpus, &mut |n| bar.inc(n as u64))?;
            Box::new(r)
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
