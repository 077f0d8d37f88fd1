//! `trainer eval`: index a dataset's corpus, run its queries, and report the
//! metrics of the reward crate with per-query latency.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use rlrag_retriever::{AnnProbe, Dataset, DatasetFormat, Document, Query, Retriever};
use rlrag_reward::answer::NormalizedText;
use rlrag_reward::retrieval::{all_gold_at_k, mrr_at_k, ndcg_at_k, recall_at_k};
use rlrag_router::eval::Latency;
use serde::Serialize;

use crate::progress::LazyBar;
use crate::retrievers::{self, RetrieverArgs, RetrieverKind};

/// What to evaluate.
pub struct EvalConfig {
    pub data: PathBuf,
    pub format: Option<DatasetFormat>,
    pub split: Option<String>,
    pub retriever: RetrieverKind,
    pub k: usize,
    pub settings: RetrieverArgs,
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
fn measure_ann(probe: &dyn AnnProbe, queries: &[Query]) -> anyhow::Result<AnnReport> {
    let vectors = queries
        .iter()
        .map(|q| probe.embed(&q.text))
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
    pub dataset: String,
    pub retriever: String,
    pub queries: usize,
    pub metrics: BTreeMap<&'static str, f64>,
    pub latency_ms: Latency,
    pub split: String,
    pub k: usize,
    pub documents: usize,
    pub warnings: Vec<String>,
    /// Present for approximate retrievers (dense HNSW).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ann: Option<AnnReport>,
}

/// A finished evaluation.
pub struct Report {
    pub json: ReportJson,
    pub format: DatasetFormat,
    pub index_seconds: f64,
    pub settings: String,
}

/// The contract's metrics, in the order the table shows them.
const METRIC_ORDER: [&str; 6] = [
    "ndcg@10",
    "recall@10",
    "recall@100",
    "mrr@10",
    "containment@10",
    "all_gold@10",
];

/// Mean of per-query values under one metric name.
#[derive(Default)]
struct Means(BTreeMap<&'static str, (f64, usize)>);

impl Means {
    fn add(&mut self, name: &'static str, value: f64) {
        let e = self.0.entry(name).or_default();
        e.0 += value;
        e.1 += 1;
    }

    fn finish(self) -> BTreeMap<&'static str, f64> {
        self.0
            .into_iter()
            .map(|(k, (sum, n))| (k, sum / n as f64))
            .collect()
    }
}

/// Search every query (depth `k`) and average the metrics that apply to it;
/// returns the means and each query's latency in milliseconds, in order.
pub fn score_queries(
    index: &dyn Retriever,
    queries: &[Query],
    by_id: &HashMap<&str, &Document>,
    k: usize,
) -> anyhow::Result<(BTreeMap<&'static str, f64>, Vec<f64>)> {
    let mut means = Means::default();
    let mut latencies = Vec::with_capacity(queries.len());
    let mut bar = LazyBar::new(queries.len() as u64, "querying");
    for q in queries {
        let t = Instant::now();
        let hits = index.search(&q.text, k)?;
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
        let ranked: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
        if !q.qrels.is_empty() {
            means.add("ndcg@10", ndcg_at_k(&ranked, &q.qrels, 10));
            means.add("recall@10", recall_at_k(&ranked, &q.qrels, 10));
            if k >= 100 {
                means.add("recall@100", recall_at_k(&ranked, &q.qrels, 100));
            }
            means.add("mrr@10", mrr_at_k(&ranked, &q.qrels, 10));
            means.add("all_gold@10", all_gold_at_k(&ranked, &q.qrels, 10));
        }
        if !q.answers.is_empty() {
            let found = ranked.iter().take(10).any(|id| {
                by_id
                    .get(id)
                    .is_some_and(|d| NormalizedText::new(&d.full_text()).contains_any(&q.answers))
            });
            means.add("containment@10", f64::from(u8::from(found)));
        }
        bar.inc(1);
    }
    bar.finish();
    Ok((means.finish(), latencies))
}

/// Run an evaluation.
pub fn run(config: &EvalConfig) -> anyhow::Result<Report> {
    if config.k == 0 {
        anyhow::bail!("--k must be at least 1");
    }
    let ds = Dataset::load(&config.data, config.format, config.split.as_deref())
        .with_context(|| format!("cannot load dataset {}", config.data.display()))?;
    let warnings = ds.report.warnings();
    for w in &warnings {
        eprintln!("warning: {w}");
    }

    let started = Instant::now();
    let index = retrievers::build(config.retriever, &config.settings, &ds.corpus)?;
    let index_seconds = started.elapsed().as_secs_f64();
    let by_id: HashMap<&str, &Document> = ds.corpus.iter().map(|d| (d.id.as_str(), d)).collect();

    let (metrics, latencies) = score_queries(index.as_ref(), &ds.queries, &by_id, config.k)?;
    let ann = index
        .ann()
        .map(|probe| measure_ann(probe, &ds.queries))
        .transpose()?;

    let settings = config.settings.describe(config.retriever);
    Ok(Report {
        json: ReportJson {
            dataset: ds.name.clone(),
            retriever: index.name().to_string(),
            queries: ds.queries.len(),
            metrics,
            latency_ms: Latency::of(latencies),
            split: ds.split.clone(),
            k: config.k,
            documents: ds.corpus.len(),
            warnings,
            ann,
        },
        format: ds.format,
        index_seconds,
        settings,
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
        for name in METRIC_ORDER {
            if let Some(value) = j.metrics.get(name) {
                let _ = writeln!(out, "| {name:<14} | {value:>7.4} |");
            }
        }
        let _ = writeln!(out, "| latency p50 ms | {:>7.3} |", j.latency_ms.p50);
        let _ = writeln!(out, "| latency p95 ms | {:>7.3} |", j.latency_ms.p95);
        if let Some(ann) = &j.ann {
            let _ = writeln!(out, "| ann recall@10  | {:>7.4} |", ann.recall_at_10);
            let _ = writeln!(out, "| ann q/s        | {:>7.0} |", ann.queries_per_s);
            let _ = writeln!(out, "| exact q/s      | {:>7.0} |", ann.exact_queries_per_s);
        }
        let _ = writeln!(out, "+----------------+---------+");
        out
    }
}
