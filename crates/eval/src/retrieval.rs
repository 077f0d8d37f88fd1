//! Retrieval evaluation: index a dataset's corpus, run its queries, and
//! report the metrics of the reward crate with per-query latency.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use futures_lite::future::block_on;

use rlrag_retriever::engine::AnnProbe;
use rlrag_retriever::{
    Augmentation, DatasetFormat, Document, Hit, Query, Reranker, SearchMode, Split,
};
use rlrag_reward::answer::NormalizedText;
use rlrag_reward::latency::Latency;
use rlrag_reward::retrieval::{Metric, all_gold_at_k, mrr_at_k, ndcg_at_k, recall_at_k};
use rlrag_router::Source;
use rlrag_router::llm::{LlmClient, LlmConfig};
use serde::Serialize;

use crate::EvalError;
use crate::augment::{AugmentSettings, Hypotheticals, Sampling};
use crate::error::{io, setting};
use crate::opensearch::ClusterArgs;
use crate::progress::Progress;
use crate::retrievers::{self, RetrieverSettings};

/// What to evaluate.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct RetrievalEvalConfig {
    /// Dataset: a BEIR or QA directory, or a HotpotQA .json file (or its directory).
    #[cfg_attr(feature = "clap", arg(long))]
    pub data: PathBuf,
    /// Dataset format; detected from the path when omitted.
    #[cfg_attr(feature = "clap", arg(long))]
    pub format: Option<DatasetFormat>,
    /// Split: BEIR qrels file name (default `test`); `all` (default), `train` or `test` otherwise.
    #[cfg_attr(feature = "clap", arg(long))]
    pub split: Option<Split>,
    /// Which retriever to evaluate: one of the engine's search modes, or
    /// an index on an OpenSearch / Elasticsearch cluster (`trainer
    /// index-opensearch`; --url, --index, --opensearch-mode).
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub retriever: EvalRetriever,
    /// How `--retriever opensearch` searches: bm25, sparse (the query's
    /// sparse vector as term weights) or hybrid (both, fused as --fusion).
    #[cfg_attr(feature = "clap", arg(long, default_value = "hybrid"))]
    pub opensearch_mode: SearchMode,
    /// The cluster and index of `--retriever opensearch`.
    #[cfg_attr(feature = "clap", command(flatten))]
    pub cluster: ClusterArgs,
    /// With `--retriever opensearch`: also search the local engine in the
    /// same mode and report how the two rankings agree (overlap@10, the
    /// same first hit).
    #[cfg_attr(feature = "clap", arg(long))]
    pub agreement: bool,
    /// Retrieval depth per query.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 100))]
    pub k: usize,
    /// How the retrievers are built.
    #[cfg_attr(feature = "clap", command(flatten))]
    pub settings: RetrieverSettings,
    /// Re-score the retriever's top M with the cross-encoder of --reranker
    /// (0: off).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0))]
    pub rerank: usize,
    /// A cross-encoder model directory (`trainer train-reranker`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub reranker: Option<PathBuf>,
    /// How queries are augmented with a generator's hypothetical document.
    #[cfg_attr(feature = "clap", command(flatten))]
    pub augment: AugmentSettings,
    /// The generator that writes --augment's documents: an
    /// OpenAI-compatible server (`http://host:port/v1`, e.g.
    /// scripts/llm-server.sh) or a model in this process
    /// (`local:<file.gguf>`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub generator: Option<String>,
    /// The `model` field of generator requests.
    #[cfg_attr(feature = "clap", arg(long, default_value = "smollm2-135m-instruct"))]
    pub generator_model: String,
}

/// What `eval --retriever` evaluates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum EvalRetriever {
    /// Learned-sparse vectors.
    Sparse,
    /// The sparse-encoded query against bags of tokens.
    Bot,
    /// Dense embeddings.
    Dense,
    /// Okapi BM25.
    Bm25,
    /// Fusion of other modes (--hybrid).
    Hybrid,
    /// An index on an OpenSearch / Elasticsearch cluster.
    Opensearch,
}

impl EvalRetriever {
    /// The local engine's mode (`None` for a cluster).
    pub fn mode(self) -> Option<SearchMode> {
        match self {
            Self::Sparse => Some(SearchMode::Sparse),
            Self::Bot => Some(SearchMode::Bot),
            Self::Dense => Some(SearchMode::Dense),
            Self::Bm25 => Some(SearchMode::Bm25),
            Self::Hybrid => Some(SearchMode::Hybrid),
            Self::Opensearch => None,
        }
    }
}

/// How a cluster's rankings agree with the local engine's in the same mode.
#[derive(Debug, Serialize)]
pub struct AgreementJson {
    /// The mode both searched.
    pub mode: String,
    /// Mean share of the local top 10 that the cluster's top 10 holds.
    #[serde(rename = "overlap@10")]
    pub overlap_at_10: f64,
    /// Share of queries whose first hit is the same.
    pub same_first: f64,
}

/// How an approximate index compares with exact search on the same query
/// vectors (index time only, queries one after another).
#[derive(Debug, Serialize)]
pub struct AnnReport {
    /// Mean fraction of the exact top 10 that the approximate top 10 holds.
    #[serde(rename = "recall@10_vs_exact")]
    pub recall_at_10: f64,
    /// Queries per second of the approximate index.
    pub queries_per_s: f64,
    /// Queries per second of exhaustive search.
    pub exact_queries_per_s: f64,
}

/// Run `search` over every vector; returns the results and the seconds taken.
fn timed<T, E>(
    vectors: &[Vec<f32>],
    search: impl Fn(&[f32]) -> Result<T, E>,
) -> Result<(Vec<T>, f64), E> {
    let started = Instant::now();
    let out = vectors
        .iter()
        .map(|v| search(v))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((out, started.elapsed().as_secs_f64().max(1e-9)))
}

/// Search every query vector through both indexes of `probe`.
fn measure_ann(probe: &AnnProbe<'_>, queries: &[Query]) -> Result<AnnReport, EvalError> {
    let vectors = queries
        .iter()
        .map(|q| block_on(probe.embed(&q.text)))
        .collect::<Result<Vec<_>, _>>()?;
    let (approx, approx_seconds) = timed(&vectors, |v| probe.search_approximate(v, 10))?;
    let (exact, exact_seconds) = timed(&vectors, |v| probe.search_exact(v, 10))?;
    let queries_per_s = vectors.len() as f64 / approx_seconds;
    let exact_queries_per_s = vectors.len() as f64 / exact_seconds;
    let recalls: Vec<f64> = approx
        .iter()
        .zip(&exact)
        .map(|(a, e)| {
            let found = e.iter().filter(|h| a.iter().any(|x| x.id == h.id)).count();
            found as f64 / e.len().max(1) as f64
        })
        .collect();
    Ok(AnnReport {
        recall_at_10: recalls.iter().sum::<f64>() / recalls.len().max(1) as f64,
        queries_per_s,
        exact_queries_per_s,
    })
}

/// The JSON report (the `eval --json` contract).
#[derive(Debug, Serialize)]
pub struct ReportJson {
    /// The dataset's name.
    pub dataset: String,
    /// The retriever's name.
    pub retriever: String,
    /// Queries evaluated.
    pub queries: usize,
    /// Mean of each metric that applies (named by [`Metric::name`]).
    pub metrics: BTreeMap<&'static str, f64>,
    /// Per-query search latency.
    pub latency_ms: Latency,
    /// The split evaluated.
    pub split: String,
    /// Retrieval depth.
    pub k: usize,
    /// Passages in the corpus.
    pub documents: usize,
    /// What the loader skipped or repaired.
    pub warnings: Vec<String>,
    /// Present for approximate retrievers (dense HNSW).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ann: Option<AnnReport>,
    /// Present when a cross-encoder re-scored the top candidates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerank: Option<RerankJson>,
    /// Present when queries were augmented with hypothetical documents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub augment: Option<AugmentJson>,
    /// Present for a cluster searched with --agreement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement: Option<AgreementJson>,
}

impl ReportJson {
    /// The report of `retriever` on `ds` without the optional sections.
    fn new(
        ds: &rlrag_retriever::Dataset,
        retriever: &str,
        metrics: BTreeMap<&'static str, f64>,
        latencies: Vec<f64>,
        k: usize,
        warnings: Vec<String>,
    ) -> Self {
        Self {
            dataset: ds.name.clone(),
            retriever: retriever.to_owned(),
            queries: ds.queries.len(),
            metrics,
            latency_ms: Latency::of(latencies),
            split: ds.split.to_string(),
            k,
            documents: ds.corpus.len(),
            warnings,
            ann: None,
            rerank: None,
            augment: None,
            agreement: None,
        }
    }
}

/// How queries were augmented.
#[derive(Debug, Serialize)]
pub struct AugmentJson {
    /// The hypothetical document's share of each query.
    pub weight: f32,
    /// The generator's `model` field.
    pub generator_model: String,
    /// The cache of hypothetical documents.
    pub cache: String,
    /// Documents the generator wrote in this run.
    pub generated: usize,
    /// Documents served from the cache (one per distinct query text).
    pub cached: usize,
    /// Distinct queries whose document was empty (searched unaugmented).
    pub empty: usize,
    /// Mean seconds per generated document (0 when all were cached).
    pub seconds_per_document: f64,
}

/// The second stage of a reranked evaluation.
#[derive(Debug, Serialize)]
pub struct RerankJson {
    /// Candidates re-scored per query.
    pub m: usize,
    /// The cross-encoder's directory.
    pub model: String,
}

/// A finished evaluation.
#[derive(Debug)]
pub struct Report {
    /// The JSON report.
    pub json: ReportJson,
    /// The dataset's format.
    pub format: DatasetFormat,
    /// Seconds spent building the index.
    pub index_seconds: f64,
    /// The retriever's settings in one line.
    pub settings: String,
}

/// Mean of per-query values of each metric.
#[derive(Default)]
struct Means(BTreeMap<Metric, (f64, usize)>);

impl Means {
    fn add(&mut self, metric: Metric, value: f64) {
        let e = self.0.entry(metric).or_default();
        e.0 += value;
        e.1 += 1;
    }

    /// The means by name (the report's keys).
    fn finish(self) -> BTreeMap<&'static str, f64> {
        self.0
            .into_iter()
            .map(|(m, (sum, n))| (m.name(), sum / n as f64))
            .collect()
    }
}

/// Search every query (depth `k`) with `search` and average the metrics
/// that apply to it; returns the means and each query's latency in
/// milliseconds, in order.
pub fn score_queries(
    mut search: impl FnMut(&str, usize) -> Result<Vec<Hit>, EvalError>,
    queries: &[Query],
    by_id: &HashMap<&str, &Document>,
    k: usize,
    progress: &dyn Progress,
) -> Result<(BTreeMap<&'static str, f64>, Vec<f64>), EvalError> {
    let mut means = Means::default();
    let mut latencies = Vec::with_capacity(queries.len());
    let mut bar = progress.bar(queries.len() as u64, "querying");
    for q in queries {
        let t = Instant::now();
        let hits = search(&q.text, k)?;
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
        let ranked: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
        if !q.qrels.is_empty() {
            means.add(Metric::Ndcg10, ndcg_at_k(&ranked, &q.qrels, 10));
            means.add(Metric::Recall10, recall_at_k(&ranked, &q.qrels, 10));
            if k >= 100 {
                means.add(Metric::Recall100, recall_at_k(&ranked, &q.qrels, 100));
            }
            means.add(Metric::Mrr10, mrr_at_k(&ranked, &q.qrels, 10));
            means.add(Metric::AllGold10, all_gold_at_k(&ranked, &q.qrels, 10));
        }
        if !q.answers.is_empty() {
            let found = ranked.iter().take(10).any(|id| {
                by_id
                    .get(id)
                    .is_some_and(|d| NormalizedText::new(&d.full_text()).contains_any(&q.answers))
            });
            means.add(Metric::Containment10, f64::from(u8::from(found)));
        }
        bar.inc(1);
    }
    bar.finish();
    Ok((means.finish(), latencies))
}

/// Run an evaluation.
pub fn run(config: &RetrievalEvalConfig, progress: &dyn Progress) -> Result<Report, EvalError> {
    if config.k == 0 {
        return Err(setting("--k", "--k must be at least 1"));
    }
    config.augment.validate(config.generator.is_some())?;
    let ds = crate::datasets::load(&config.data, config.format, config.split.as_ref())?;
    let warnings = ds.report.warnings();
    for w in &warnings {
        progress.note(&format!("warning: {w}"));
    }

    let Some(mode) = config.retriever.mode() else {
        return run_cluster(config, &ds, warnings, progress);
    };
    let rerank = match (config.rerank, &config.reranker) {
        (0, _) => None,
        (m, Some(dir)) => {
            let device = config.settings.device.device()?;
            let encoder = crate::models::ModelDir::read(dir)?.load(&device)?;
            Some((m, dir, Reranker::new(Arc::new(encoder))?))
        }
        (_, None) => {
            return Err(setting(
                "--reranker",
                "--rerank needs --reranker <cross-encoder directory>",
            ));
        }
    };
    let started = Instant::now();
    let mut engine = retrievers::build(mode, &config.settings, &ds.corpus, progress)?;
    let index_seconds = started.elapsed().as_secs_f64();
    let by_id: HashMap<&str, &Document> = ds.corpus.iter().map(|d| (d.id.as_str(), d)).collect();
    let m = rerank.as_ref().map_or(0, |r| r.0);
    let rerank_json = rerank.map(|(m, dir, reranker)| {
        engine.set_reranker(Some(reranker));
        RerankJson {
            m,
            model: dir.display().to_string(),
        }
    });

    // Each query's hypothetical document (none without --augment): written
    // first (the slow part, with its own progress), so the latencies below
    // are the search's alone.
    let mut documents: HashMap<&str, String> = HashMap::new();
    let augment = if config.augment.augment {
        let a = &config.augment;
        let client = config
            .generator
            .as_ref()
            .map(|url| {
                LlmClient::new(LlmConfig {
                    base_url: url.clone(),
                    model: config.generator_model.clone(),
                    ..LlmConfig::default()
                })
            })
            .transpose()?;
        let path = a.cache_path(
            &ds.name,
            &config.generator_model,
            config.settings.cache.as_deref(),
        );
        let mut hypotheticals =
            Hypotheticals::open(path.clone(), client, Sampling::search(a.augment_tokens))?;
        let started = Instant::now();
        let mut bar = progress.bar(ds.queries.len() as u64, "hypothetical documents");
        for q in &ds.queries {
            documents.insert(q.text.as_str(), hypotheticals.get(&q.text, 0)?);
            bar.inc(1);
        }
        bar.finish();
        let generated = hypotheticals.made();
        let seconds = started.elapsed().as_secs_f64();
        Some(AugmentJson {
            weight: a.augment_weight,
            generator_model: config.generator_model.clone(),
            cache: path.display().to_string(),
            generated,
            cached: documents.len() - generated,
            empty: documents.values().filter(|d| d.trim().is_empty()).count(),
            seconds_per_document: if generated == 0 {
                0.0
            } else {
                seconds / generated as f64
            },
        })
    } else {
        None
    };
    let weight = config.augment.augment_weight;
    let search = |q: &str, k: usize| {
        let augment = documents.get(q).map(|d| Augmentation {
            document: d.as_str(),
            weight,
        });
        Ok(block_on(
            engine.search_augmented(q, augment, k, mode, false, m),
        )?)
    };
    let (metrics, latencies) = score_queries(search, &ds.queries, &by_id, config.k, progress)?;
    let ann = engine
        .ann()
        .map(|probe| measure_ann(&probe, &ds.queries))
        .transpose()?;

    let mut settings = config.settings.describe(mode);
    if let Some(r) = &rerank_json {
        let _ = write!(settings, "; top {} reranked by {}", r.m, r.model);
    }
    if let Some(a) = &augment {
        let _ = write!(
            settings,
            "; queries augmented ({} hypothetical document share, {} generated, {} cached in {})",
            a.weight, a.generated, a.cached, a.cache
        );
    }
    Ok(Report {
        json: ReportJson {
            ann,
            rerank: rerank_json,
            augment,
            ..ReportJson::new(&ds, mode.name(), metrics, latencies, config.k, warnings)
        },
        format: ds.format,
        index_seconds,
        settings,
    })
}

/// `eval --retriever opensearch`: the queries searched on the cluster,
/// optionally beside the local engine in the same mode.
fn run_cluster(
    config: &RetrievalEvalConfig,
    ds: &rlrag_retriever::Dataset,
    warnings: Vec<String>,
    progress: &dyn Progress,
) -> Result<Report, EvalError> {
    if config.rerank > 0 {
        return Err(setting(
            "--rerank",
            "--rerank re-scores a local engine's candidates: not with --retriever opensearch",
        ));
    }
    if config.augment.augment {
        return Err(setting(
            "--augment",
            "--augment mixes documents into a local engine's queries: not with --retriever opensearch",
        ));
    }
    let mode = config.opensearch_mode;
    let fusion = config.settings.fusion();
    let started = Instant::now();
    let source = crate::opensearch::source(
        &config.cluster,
        mode,
        config.settings.weights.as_ref(),
        fusion,
        &config.settings.device,
    )?;
    let index_seconds = started.elapsed().as_secs_f64();
    let by_id: HashMap<&str, &Document> = ds.corpus.iter().map(|d| (d.id.as_str(), d)).collect();
    let mut tops: Vec<Vec<String>> = Vec::with_capacity(ds.queries.len());
    let search = |q: &str, k: usize| -> Result<Vec<Hit>, EvalError> {
        let lists = block_on(source.search(&[q.to_owned()], k)).map_err(|fault| {
            rlrag_router::RouterError::Source {
                source_kind: rlrag_router::SourceKind::Network,
                fault,
            }
        })?;
        let hits: Vec<Hit> = lists
            .into_iter()
            .next()
            .unwrap_or_default()
            .into_iter()
            .map(|h| Hit::new(h.id, h.score))
            .collect();
        tops.push(hits.iter().take(10).map(|h| h.id.clone()).collect());
        Ok(hits)
    };
    let (metrics, latencies) = score_queries(search, &ds.queries, &by_id, config.k, progress)?;
    let agreement = if config.agreement {
        Some(agree(config, mode, ds, &tops, progress)?)
    } else {
        None
    };
    let cluster = source.cluster().config();
    let settings = format!(
        "{} index `{}` on {}, {mode}",
        match cluster.flavour {
            rlrag_router::opensearch::Flavour::OpenSearch => "OpenSearch",
            rlrag_router::opensearch::Flavour::Elasticsearch => "Elasticsearch",
        },
        cluster.index,
        cluster.url
    );
    let name = format!("opensearch-{mode}");
    Ok(Report {
        json: ReportJson {
            agreement,
            ..ReportJson::new(ds, &name, metrics, latencies, config.k, warnings)
        },
        format: ds.format,
        index_seconds,
        settings,
    })
}

/// The cluster's top 10s (`tops`, in query order) against the local
/// engine's in `mode` (a hybrid fuses BM25 and sparse, as the cluster's).
fn agree(
    config: &RetrievalEvalConfig,
    mode: SearchMode,
    ds: &rlrag_retriever::Dataset,
    tops: &[Vec<String>],
    progress: &dyn Progress,
) -> Result<AgreementJson, EvalError> {
    let mut settings = config.settings.clone();
    settings.hybrid = vec![SearchMode::Bm25, SearchMode::Sparse];
    let engine = retrievers::build(mode, &settings, &ds.corpus, progress)?;
    let (mut overlap, mut same_first) = (0.0, 0.0);
    for (q, theirs) in ds.queries.iter().zip(tops) {
        let ours = block_on(engine.search_with(&q.text, 10, mode, false))?;
        let shared = ours.iter().filter(|h| theirs.contains(&h.id)).count();
        overlap += if ours.is_empty() {
            f64::from(u8::from(theirs.is_empty()))
        } else {
            shared as f64 / ours.len() as f64
        };
        same_first += f64::from(u8::from(ours.first().map(|h| &h.id) == theirs.first()));
    }
    let n = tops.len().max(1) as f64;
    Ok(AgreementJson {
        mode: mode.name().to_owned(),
        overlap_at_10: overlap / n,
        same_first: same_first / n,
    })
}

impl Report {
    /// The human-readable table.
    pub fn table(&self) -> String {
        let j = &self.json;
        let mut out = String::new();
        let docs_per_s = j.documents as f64 / self.index_seconds.max(1e-9);
        let _ = writeln!(
            out,
            "dataset    {} ({}, split {}, {} queries, {} documents)",
            j.dataset, self.format, j.split, j.queries, j.documents
        );
        let _ = writeln!(
            out,
            "retriever  {} ({}), k {}",
            j.retriever, self.settings, j.k
        );
        let _ = writeln!(
            out,
            "indexing   {:.2} s ({docs_per_s:.0} docs/s)",
            self.index_seconds
        );
        let _ = writeln!(out, "+----------------+---------+");
        let _ = writeln!(out, "| metric         |   value |");
        let _ = writeln!(out, "+----------------+---------+");
        for name in Metric::ALL.map(Metric::name) {
            if let Some(value) = j.metrics.get(name) {
                let _ = writeln!(out, "| {name:<14} | {value:>7.4} |");
            }
        }
        let _ = writeln!(out, "| latency p50 ms | {:>7.3} |", j.latency_ms.p50);
        let _ = writeln!(out, "| latency p95 ms | {:>7.3} |", j.latency_ms.p95);
        if let Some(a) = &j.agreement {
            let _ = writeln!(out, "| local overlap  | {:>7.4} |", a.overlap_at_10);
            let _ = writeln!(out, "| same 1st hit   | {:>7.4} |", a.same_first);
        }
        if let Some(ann) = &j.ann {
            let _ = writeln!(out, "| ann recall@10  | {:>7.4} |", ann.recall_at_10);
            let _ = writeln!(out, "| ann q/s        | {:>7.0} |", ann.queries_per_s);
            let _ = writeln!(out, "| exact q/s      | {:>7.0} |", ann.exact_queries_per_s);
        }
        let _ = writeln!(out, "+----------------+---------+");
        out
    }
}
/// A Markdown table of saved `eval --json` reports: every `*.json` in
/// `dir` named `<dataset>--<label>.json`, in name order (what
/// `scripts/eval-table.sh` writes and prints).
pub fn reports_table(dir: &Path) -> Result<String, EvalError> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io("read", dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let mut out = String::from(
        "| dataset | retriever | nDCG@10 | recall@100 | containment@10 | all_gold@10 | p50 ms | p95 ms | HNSW recall@10 / q/s vs exact |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for path in &paths {
        let bad = |reason: &str| EvalError::Format {
            path: path.clone(),
            reason: reason.to_owned(),
        };
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        let Some((dataset, label)) = stem.as_deref().and_then(|s| s.split_once("--")) else {
            return Err(bad("not named <dataset>--<label>.json"));
        };
        let bytes = std::fs::read(path).map_err(io("read", path))?;
        let r: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| bad(&format!("not JSON: {e}")))?;
        let metric = |m: Metric| {
            r["metrics"][m.name()]
                .as_f64()
                .map_or("–".to_owned(), |v| format!("{v:.4}"))
        };
        let latency = |p: &str| {
            r["latency_ms"][p]
                .as_f64()
                .ok_or_else(|| bad("no latency_ms"))
        };
        let ann = match r.get("ann") {
            Some(a) => format!(
                "{:.4} / {:.0} vs {:.0}",
                a["recall@10_vs_exact"].as_f64().unwrap_or(f64::NAN),
                a["queries_per_s"].as_f64().unwrap_or(f64::NAN),
                a["exact_queries_per_s"].as_f64().unwrap_or(f64::NAN)
            ),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "| {dataset} | {label} | {} | {} | {} | {} | {:.2} | {:.2} | {ann} |",
            metric(Metric::Ndcg10),
            metric(Metric::Recall100),
            metric(Metric::Containment10),
            metric(Metric::AllGold10),
            latency("p50")?,
            latency("p95")?
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_reports_make_one_row_each_in_name_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write =
            |name: &str, json: &str| std::fs::write(dir.path().join(name), json).expect("write");
        write(
            "scifact--dense-hnsw.json",
            r#"{"metrics": {"ndcg@10": 0.64512, "recall@100": 0.9}, "latency_ms": {"p50": 1.234, "p95": 2.5},
                "ann": {"recall@10_vs_exact": 0.99, "queries_per_s": 1500.4, "exact_queries_per_s": 300.0}}"#,
        );
        write(
            "hotpotqa100--bm25.json",
            r#"{"metrics": {"ndcg@10": 0.78221, "containment@10": 0.8}, "latency_ms": {"p50": 0.5, "p95": 0.75}}"#,
        );
        write("notes.txt", "ignored");
        let table = reports_table(dir.path()).expect("table");
        let rows: Vec<&str> = table.lines().collect();
        assert_eq!(rows.len(), 4, "{table}");
        assert_eq!(
            rows[2],
            "| hotpotqa100 | bm25 | 0.7822 | – | 0.8000 | – | 0.50 | 0.75 |  |"
        );
        assert_eq!(
            rows[3],
            "| scifact | dense-hnsw | 0.6451 | 0.9000 | – | – | 1.23 | 2.50 | 0.9900 / 1500 vs 300 |"
        );
        write("badname.json", "{}");
        let err = reports_table(dir.path()).expect_err("badly named report");
        assert!(err.to_string().contains("badname.json"), "{err}");
    }
}
