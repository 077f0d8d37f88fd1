//! The browser engine's work, timed natively (`trainer bench-engine`) — the
//! same steps, corpus and queries as the page `web/bench/` runs in a browser
//! (`scripts/bench-browser.sh` runs both and prints the ratios).
//!
//! 1. load the model directory (read + parse the weights and tokenizer);
//! 2. index the whole corpus as the demo does (BM25 + bags of tokens, no
//!    encoder run);
//! 3. the first query (`bot`): load + index + first query is the time to
//!    first result;
//! 4. every query in `bm25`, `bot` and `hybrid` mode: latency percentiles;
//! 5. a second engine with learned-sparse document vectors over the first
//!    `--encode-docs` documents (the encoder's throughput), then `sparse` queries.
//!
//! Steps 1–3 run `--runs` times, each with cold per-thread caches (bags of
//! tokens, stems): the first on this thread, the others on fresh threads.
//! The report gives the median of each; every run is kept in `startups`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::{Device, try_read_sync};
use rlrag_encoder::Encoder;
use rlrag_retriever::engine::{Engine, EngineModels, EngineOptions, SearchMode};
use rlrag_retriever::{Dataset, DatasetFormat, Reranker};
use rlrag_reward::latency::Latency;
use serde::Serialize;

use crate::EvalError;
use crate::models::ModelDir;

/// What `bench-engine` times.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct EngineBenchConfig {
    /// A model directory (the trainer's output, or a pretrained SPLADE-tiny).
    #[cfg_attr(feature = "clap", arg(long))]
    pub model: PathBuf,
    /// The corpus and queries: a BEIR or QA directory, or a HotpotQA file.
    #[cfg_attr(feature = "clap", arg(long))]
    pub data: PathBuf,
    /// Dataset format; detected from the path when omitted.
    #[cfg_attr(feature = "clap", arg(long))]
    pub format: Option<DatasetFormat>,
    /// How many queries to time per mode (the dataset's first ones).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 100))]
    pub queries: usize,
    /// How many documents to index with learned-sparse vectors (0: skip step 5).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 200))]
    pub encode_docs: usize,
    /// Results per query.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 10))]
    pub k: usize,
    /// How many times to time steps 1–3 (load, index, first query).
    #[cfg_attr(
        feature = "clap",
        arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..))
    )]
    pub runs: u16,
    /// A cross-encoder directory (`train-reranker`): also time BM25 with
    /// its top `--rerank` re-scored (`bm25+rerank<M>`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub reranker: Option<PathBuf>,
    /// Candidates the reranker re-scores per query.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 20))]
    pub rerank: usize,
}

/// The timings of steps 1–3 (one run).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Startup {
    /// Step 1: read and parse the model.
    pub load_ms: f64,
    /// Step 2: index the corpus.
    pub index_ms: f64,
    /// Step 3: the first query.
    pub first_query_ms: f64,
    /// Steps 1–3.
    pub time_to_first_result_ms: f64,
}

/// The report; the browser bench writes the same fields.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// `native` here (the browser bench names its browser).
    pub runtime: String,
    /// CPU threads burn may use.
    pub threads: usize,
    /// Documents indexed.
    pub documents: usize,
    /// Medians over `startups`.
    pub load_ms: f64,
    /// Median indexing time.
    pub index_ms: f64,
    /// Documents per second, BM25 + bags of tokens (from the median `index_ms`).
    pub index_docs_per_s: f64,
    /// Median first query.
    pub first_query_ms: f64,
    /// Median time to first result.
    pub time_to_first_result_ms: f64,
    /// Every run of steps 1–3.
    pub startups: Vec<Startup>,
    /// Per mode: latency percentiles over the queries.
    pub query_ms: std::collections::BTreeMap<String, Latency>,
    /// Documents encoded into learned-sparse vectors.
    pub encode_docs: usize,
    /// How fast they were encoded.
    pub encode_docs_per_s: Option<f64>,
    /// The queries timed (the browser run uses the same).
    pub queries: Vec<String>,
}

fn bench_error(reason: impl Into<String>) -> EvalError {
    EvalError::Bench {
        reason: reason.into(),
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn block<T>(f: impl std::future::Future<Output = T>) -> Result<T, EvalError> {
    try_read_sync(f).ok_or_else(|| bench_error("a CPU computation did not complete at once"))
}

fn latencies(
    engine: &Engine,
    queries: &[String],
    k: usize,
    mode: SearchMode,
    rerank: usize,
) -> Result<Latency, EvalError> {
    let mut times = Vec::with_capacity(queries.len());
    for q in queries {
        let t = Instant::now();
        let hits = block(engine.search_reranked(q, k, mode, true, rerank))??;
        times.push(ms(t));
        if hits.is_empty() {
            return Err(bench_error(format!(
                "`{}` found nothing for {q:?}",
                mode.name()
            )));
        }
    }
    Ok(Latency::of(times))
}

/// Time the engine as `args` says.
pub fn run(args: &EngineBenchConfig) -> Result<BenchReport, EvalError> {
    let ds = crate::datasets::load(&args.data, args.format, None)?;
    let queries: Vec<String> = ds
        .queries
        .iter()
        .take(args.queries)
        .map(|q| q.text.clone())
        .collect();
    if queries.is_empty() {
        return Err(bench_error(format!(
            "{} has no queries to time",
            args.data.display()
        )));
    }
    // The first run here (nothing has warmed this thread's caches yet); its
    // engine serves steps 4 and 5.
    let (first, (engine, models)) = startup(args, &ds, &queries[0])?;
    let mut startups = vec![first];
    for _ in 1..args.runs {
        let run = std::thread::scope(|s| {
            s.spawn(|| startup(args, &ds, &queries[0]).map(|(times, _)| times))
                .join()
        });
        startups.push(run.map_err(|_| bench_error("a timed run panicked"))??);
    }
    let median = |f: fn(&Startup) -> f64| {
        let mut v: Vec<f64> = startups.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (load_ms, index_ms) = (median(|s| s.load_ms), median(|s| s.index_ms));
    let first_query_ms = median(|s| s.first_query_ms);
    let time_to_first_result_ms = median(|s| s.time_to_first_result_ms);

    let mut query_ms = std::collections::BTreeMap::new();
    for mode in [SearchMode::Bm25, SearchMode::Bot, SearchMode::Hybrid] {
        query_ms.insert(
            mode.name().to_owned(),
            latencies(&engine, &queries, args.k, mode, 0)?,
        );
    }
    let mut engine = engine;
    if let Some(dir) = &args.reranker {
        let encoder = ModelDir::read(dir)?.load(&Device::flex())?;
        engine.set_reranker(Some(Reranker::new(Arc::new(encoder))?));
        query_ms.insert(
            format!("bm25+rerank{}", args.rerank),
            latencies(&engine, &queries, args.k, SearchMode::Bm25, args.rerank)?,
        );
    }

    let encode_docs = args.encode_docs.min(ds.corpus.len());
    let mut encode_docs_per_s = None;
    if encode_docs > 0 {
        let options = EngineOptions {
            sparse_vectors: true,
            rerank_m: 0,
            ..EngineOptions::default()
        };
        let mut sparse = Engine::new(models, options)?;
        let t = Instant::now();
        block(sparse.add_documents(&ds.corpus[..encode_docs], &mut |_| {}))??;
        encode_docs_per_s = Some(encode_docs as f64 / t.elapsed().as_secs_f64());
        query_ms.insert(
            SearchMode::Sparse.name().to_owned(),
            latencies(&sparse, &queries, args.k, SearchMode::Sparse, 0)?,
        );
    }

    Ok(BenchReport {
        runtime: "native".to_owned(),
        threads: rayon_threads(),
        documents: ds.corpus.len(),
        load_ms,
        index_ms,
        index_docs_per_s: ds.corpus.len() as f64 / (index_ms / 1000.0),
        first_query_ms,
        time_to_first_result_ms,
        startups,
        query_ms,
        encode_docs,
        encode_docs_per_s,
        queries,
    })
}

/// Steps 1–3: load the model, index the corpus, run the first query; the
/// engine and its models for the later steps.
fn startup(
    args: &EngineBenchConfig,
    ds: &Dataset,
    first_query: &str,
) -> Result<(Startup, (Engine, EngineModels)), EvalError> {
    let device = Device::flex();
    let start = Instant::now();
    let files = ModelDir::read(&args.model)?;
    // As the browser package does: fingerprint, then hand the weights over.
    let sparse_fingerprint = files.fingerprint();
    let encoder = Arc::new(Encoder::load_owned(
        files.weights,
        &files.config,
        &files.tokenizer,
        &device,
    )?);
    let models = || EngineModels {
        sparse: Arc::clone(&encoder),
        sparse_fingerprint,
        dense: None,
    };
    let load_ms = ms(start);

    let t = Instant::now();
    let options = EngineOptions {
        sparse_vectors: false,
        rerank_m: 0,
        ..EngineOptions::default()
    };
    let mut engine = Engine::new(models(), options)?;
    block(engine.add_documents(&ds.corpus, &mut |_| {}))??;
    let index_ms = ms(t);

    let t = Instant::now();
    block(engine.search(first_query, args.k, SearchMode::Bot))??;
    let first_query_ms = ms(t);
    let times = Startup {
        load_ms,
        index_ms,
        first_query_ms,
        time_to_first_result_ms: ms(start),
    };
    Ok((times, (engine, models())))
}

/// The CPU threads burn's kernels may use (`RAYON_NUM_THREADS`, else all cores).
fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
}
