//! A corpus on an OpenSearch / Elasticsearch cluster: `trainer
//! index-opensearch` loads it (title and text for the engine's BM25, the
//! learned-sparse vectors as term weights), in batches, resumable and
//! idempotent; `eval --retriever opensearch` and the router's network
//! source search it ([`rlrag_router::opensearch`]).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_lite::future::block_on;
use rlrag_encoder::SparseVector;
use rlrag_encoder::models::pretrained;
use rlrag_retriever::{Bm25Params, DatasetFormat, Fusion, SearchMode};
use rlrag_router::opensearch::{
    Cluster, ClusterConfig, Flavour, IndexDoc, IndexMeta, IndexState, MAX_BATCH, OpenSearchSource,
};
use serde::Serialize;

use crate::EvalError;
use crate::device::DeviceChoice;
use crate::error::setting;
use crate::models::{LoadedEncoder, SparseOverrides, load_encoder};
use crate::progress::Progress;

/// The environment variable whose value is sent as every cluster request's
/// `Authorization` header (`Basic <base64 user:password>`, `ApiKey <key>`).
pub const AUTHORIZATION_ENV: &str = "RLRAG_CLUSTER_AUTHORIZATION";

/// Texts encoded per encoder call while indexing.
const ENCODE_CHUNK: usize = 32;

/// Which cluster and index.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct ClusterArgs {
    /// The cluster's URL (`http://host:9200`); the request header
    /// `Authorization` is read from RLRAG_CLUSTER_AUTHORIZATION when set.
    #[cfg_attr(feature = "clap", arg(long))]
    pub url: Option<String>,
    /// The index on the cluster.
    #[cfg_attr(feature = "clap", arg(long))]
    pub index: Option<String>,
    /// The cluster's engine (the sparse field and query differ).
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value_t = Flavour::OpenSearch))]
    pub flavour: Flavour,
    /// Time limit of each cluster request.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 10_000))]
    pub cluster_timeout_ms: u64,
    /// Further tries after a timeout, a failed connection or a busy status.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 2))]
    pub cluster_retries: u32,
}

impl Default for ClusterArgs {
    fn default() -> Self {
        Self {
            url: None,
            index: None,
            flavour: Flavour::OpenSearch,
            cluster_timeout_ms: 10_000,
            cluster_retries: 2,
        }
    }
}

impl ClusterArgs {
    /// The client (needs --url and --index).
    pub fn cluster(&self) -> Result<Cluster, EvalError> {
        let (Some(url), Some(index)) = (&self.url, &self.index) else {
            return Err(setting(
                "--url",
                "a cluster needs --url <http://host:9200> and --index <name>",
            ));
        };
        let authorization = std::env::var(AUTHORIZATION_ENV)
            .ok()
            .filter(|a| !a.is_empty());
        Ok(Cluster::new(ClusterConfig {
            url: url.clone(),
            index: index.clone(),
            flavour: self.flavour,
            timeout: Duration::from_millis(self.cluster_timeout_ms.max(1)),
            retries: self.cluster_retries,
            authorization,
        })?)
    }
}

/// What `trainer index-opensearch` loads, and where.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct IndexConfig {
    /// Dataset whose corpus is indexed: a BEIR or QA directory, or a
    /// HotpotQA .json file (or its directory).
    #[cfg_attr(feature = "clap", arg(long))]
    pub data: PathBuf,
    /// Dataset format; detected from the path when omitted.
    #[cfg_attr(feature = "clap", arg(long))]
    pub format: Option<DatasetFormat>,
    /// The cluster and index.
    #[cfg_attr(feature = "clap", command(flatten))]
    pub cluster: ClusterArgs,
    /// The sparse model whose document vectors are indexed (a trainer
    /// directory; default the pretrained SPLADE-tiny).
    #[cfg_attr(feature = "clap", arg(long))]
    pub weights: Option<PathBuf>,
    /// Index title and text only (BM25; no sparse vectors).
    #[cfg_attr(feature = "clap", arg(long))]
    pub bm25_only: bool,
    /// Documents per bulk request.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 256))]
    pub batch_size: usize,
    /// Delete the index first (needed when the model, BM25's parameters or
    /// the layout changed, or the name holds an index rlrag did not make).
    #[cfg_attr(feature = "clap", arg(long))]
    pub recreate: bool,
    /// BM25 term-frequency saturation (the index's similarity).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Bm25Params::default().k1))]
    pub k1: f32,
    /// BM25 length normalisation.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Bm25Params::default().b))]
    pub b: f32,
    /// Where the sparse encoder runs.
    #[cfg_attr(feature = "clap", arg(long, default_value = "cpu"))]
    pub device: DeviceChoice,
}

/// What an indexing run did.
#[derive(Debug, Clone, Serialize)]
pub struct IndexReport {
    /// The cluster.
    pub url: String,
    /// The index.
    pub index: String,
    /// Passages in the corpus.
    pub documents: usize,
    /// Passages sent in this run.
    pub indexed: usize,
    /// Passages the index already held (an earlier, interrupted or
    /// finished run): not encoded or sent again.
    pub skipped: usize,
    /// Documents the index holds afterwards.
    pub in_index: u64,
    /// The sparse model's fingerprint (none: BM25 only).
    pub sparse_model: Option<String>,
    /// Whether the index was created by this run.
    pub created: bool,
    /// Seconds the run took.
    pub seconds: f64,
}

impl IndexReport {
    /// The human-readable summary.
    pub fn table(&self) -> String {
        format!(
            "index      {} on {}{}\ndocuments  {} in the corpus: {} sent, {} already there; {} in the index\nsparse     {}\ntime       {:.1} s ({:.0} docs/s sent)\n",
            self.index,
            self.url,
            if self.created { " (created)" } else { "" },
            self.documents,
            self.indexed,
            self.skipped,
            self.in_index,
            self.sparse_model
                .as_deref()
                .map_or("none (BM25 only)".to_owned(), |m| format!("model {m}")),
            self.seconds,
            self.indexed as f64 / self.seconds.max(1e-9)
        )
    }
}

/// Load a corpus into the cluster: create the index (or check the one
/// there was made by the same model and settings), then per batch send
/// the passages it does not hold yet, with their sparse vectors.
pub fn index(config: &IndexConfig, progress: &dyn Progress) -> Result<IndexReport, EvalError> {
    if !(1..=MAX_BATCH).contains(&config.batch_size) {
        return Err(setting(
            "--batch-size",
            format!("--batch-size must be in 1..={MAX_BATCH}"),
        ));
    }
    let bm25 = Bm25Params {
        k1: config.k1,
        b: config.b,
    };
    bm25.validate()?;
    let started = Instant::now();
    let cluster = config.cluster.cluster()?;
    let ds = crate::datasets::load(&config.data, config.format, None)?;
    let encoder = if config.bm25_only {
        None
    } else {
        Some(sparse_encoder(config.weights.as_ref(), config.device)?)
    };
    let meta = IndexMeta::new(encoder.as_ref().map(|e| e.fingerprint), bm25);
    if config.recreate {
        cluster.delete()?;
    }
    let created = match cluster.state()? {
        IndexState::Missing => {
            cluster.create(&meta)?;
            true
        }
        IndexState::Rlrag(there) if there == meta => false,
        IndexState::Rlrag(there) => {
            return Err(setting(
                "--recreate",
                format!(
                    "index `{}` holds other vectors or settings ({}); this run writes ({}): \
                     pass --recreate to rebuild it",
                    cluster.config().index,
                    describe(&there),
                    describe(&meta)
                ),
            ));
        }
        IndexState::Foreign => {
            return Err(setting(
                "--recreate",
                format!(
                    "index `{}` was not created by rlrag: pass --recreate to replace it",
                    cluster.config().index
                ),
            ));
        }
    };
    let mut bar = progress.bar(ds.corpus.len() as u64, "indexing");
    let (mut indexed, mut skipped) = (0, 0);
    for batch in ds.corpus.chunks(config.batch_size) {
        let ids: Vec<&str> = batch.iter().map(|d| d.id.as_str()).collect();
        let there = cluster.existing(&ids)?;
        let todo: Vec<_> = batch.iter().filter(|d| !there.contains(&d.id)).collect();
        skipped += batch.len() - todo.len();
        let vectors: Vec<SparseVector> = match &encoder {
            Some(e) => {
                let mut out = Vec::with_capacity(todo.len());
                for chunk in todo.chunks(ENCODE_CHUNK) {
                    // The engine's document text: title and text.
                    let texts: Vec<String> = chunk.iter().map(|d| d.full_text()).collect();
                    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                    out.extend(block_on(e.encoder.encode_sparse_async(&refs))?);
                }
                out
            }
            None => Vec::new(),
        };
        let docs: Vec<IndexDoc<'_>> = todo
            .iter()
            .enumerate()
            .map(|(i, d)| IndexDoc {
                id: &d.id,
                title: &d.title,
                text: &d.text,
                sparse: vectors.get(i),
            })
            .collect();
        cluster.bulk(&docs)?;
        indexed += docs.len();
        bar.inc(batch.len() as u64);
    }
    bar.finish();
    cluster.refresh()?;
    let in_index = cluster.count()?;
    Ok(IndexReport {
        url: cluster.config().url.clone(),
        index: cluster.config().index.clone(),
        documents: ds.corpus.len(),
        indexed,
        skipped,
        in_index,
        sparse_model: meta.sparse_model,
        created,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn describe(meta: &IndexMeta) -> String {
    format!(
        "layout {}, sparse model {}, k1 {}, b {}",
        meta.format,
        meta.sparse_model.as_deref().unwrap_or("none"),
        meta.bm25.k1,
        meta.bm25.b
    )
}

/// The sparse model of an index (`weights`, default the pretrained
/// SPLADE-tiny) on `device`: what encodes its documents and its queries.
fn sparse_encoder(
    weights: Option<&PathBuf>,
    device: DeviceChoice,
) -> Result<LoadedEncoder, EvalError> {
    let dir = weights
        .cloned()
        .unwrap_or_else(|| pretrained("splade-tiny"));
    let loaded = load_encoder(&dir, SparseOverrides::default(), true, &device.device()?)?;
    if loaded.encoder.sparse_settings().is_none() {
        return Err(setting(
            "--weights",
            format!("{} is not a sparse model", dir.display()),
        ));
    }
    Ok(loaded)
}

/// The source searching `cluster` in `mode`, its sparse queries encoded by
/// `weights` (default the pretrained SPLADE-tiny) on `device`.
pub fn source(
    cluster: &ClusterArgs,
    mode: SearchMode,
    weights: Option<&PathBuf>,
    fusion: Fusion,
    device: &DeviceChoice,
) -> Result<OpenSearchSource, EvalError> {
    let cluster = cluster.cluster()?;
    let encoder = if mode == SearchMode::Bm25 {
        None
    } else {
        let loaded = sparse_encoder(weights, *device)?;
        Some((loaded.encoder, loaded.fingerprint))
    };
    Ok(OpenSearchSource::connect(cluster, mode, encoder, fusion)?)
}
