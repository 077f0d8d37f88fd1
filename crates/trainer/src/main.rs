//! `trainer`: the rlrag command line. Argument parsing, progress, tables
//! and files the user asked for; every run lives in `rlrag-eval`
//! (evaluation, benchmarks, the corpus server) and `rlrag-train` (training
//! runs, cross-validation).

mod progress;
mod serve;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use progress::Terminal;
use rlrag_eval::bench::EngineBenchConfig;
use rlrag_eval::bench_encoder::EncoderBenchConfig;
use rlrag_eval::retrieval::RetrievalEvalConfig;
use rlrag_eval::router_eval::RouterEvalConfig;
use rlrag_retriever::DatasetFormat;
use rlrag_train::cv::CvConfig;
use rlrag_train::reranker_run::RerankerRunConfig;
use rlrag_train::retriever_run::RetrieverRunConfig;
use rlrag_train::router_run::{self, RouterRunConfig};
use rlrag_train::self_boost::SelfBoostConfig;
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "trainer",
    version,
    about = "Train and evaluate rlrag retrievers and routers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Evaluate a retriever on a dataset split and print (and optionally save) the metrics.
    Eval(EvalArgs),
    /// Train the learned-sparse or dense retriever by reward (R3) and write
    /// the model directory.
    TrainRetriever(RetrieverRunConfig),
    /// Self-boost the retrievers on a corpus with no labels (Reinforced-IR):
    /// a generator writes queries, teaches the order (RLGF) and gets
    /// preference pairs (RLRF), in rounds.
    SelfBoost(SelfBoostConfig),
    /// Train the cross-encoder reranker (hard negatives from a first-stage
    /// retriever, labels and an optional generator teacher) and write the
    /// model directory.
    TrainReranker(RerankerRunConfig),
    /// Train the generator by preference (DPO against its frozen start) on
    /// `prompt`/`chosen`/`rejected` pairs (RLAG's `eval-router --rlag-out`,
    /// RLRF's `self-boost` pairs) and write its model directory.
    TrainGenerator(rlrag_train::generator_run::GeneratorRunConfig),
    /// RLAG in rounds: sample answers with and without BM25 passages, pair
    /// the best against the worst by answer F1, DPO, repeat; held-out
    /// EM/F1 with and without passages before and after each round.
    Rlag(rlrag_train::rlag::RlagConfig),
    /// Write a dataset's corpus as a JSON array of `{id, title, text}` (what
    /// the browser package's `addDocuments` takes; the demo page loads it).
    ExportCorpus(ExportCorpusArgs),
    /// Time the browser engine's work natively: load, index, time to first
    /// result, query latency per mode, encoder throughput (JSON for
    /// scripts/bench-browser.sh, which runs the same steps in Chromium).
    BenchEngine(BenchEngineArgs),
    /// Encoder throughput on real passages (the burn side of scripts/bench-encoder.sh).
    BenchEncoder(EncoderBenchConfig),
    /// Generator throughput: prefill and decoding tokens/s on a QA set's
    /// answer prompts (the burn side of scripts/bench-generator.sh).
    BenchGenerator(BenchGeneratorArgs),
    /// The indexes at scale: build time, memory and query latency of BM25 and
    /// the bag-of-tokens index (exhaustive and block-max pruned) on prefixes
    /// of a large corpus (scripts/build-scale-corpus.sh, scripts/bench-scale.sh).
    BenchScale(BenchScaleArgs),
    /// Dense search at scale: a corpus prefix encoded by a real dense model,
    /// the exact flat index and HNSW at several ef_search, with recall@10
    /// against exact; the vectors are kept for faiss and hnswlib
    /// (scripts/bench-dense.sh).
    BenchDense(BenchDenseArgs),
    /// Serve a corpus as a network search source (POST /search {queries, k}).
    Serve(serve::ServeArgs),
    /// Load a corpus into an OpenSearch / Elasticsearch index: title and text
    /// (the engine's BM25) and the learned-sparse vectors (`rank_features`),
    /// in batches; resumable and idempotent (`eval --retriever opensearch` and
    /// the router's `--network-index` search it).
    IndexOpensearch(IndexOpensearchArgs),
    /// Train the routing policy by RL (local / network / both / decompose / answer).
    TrainRouter(RouterRunConfig),
    /// Compare the learned router with fixed routing policies on a QA set.
    EvalRouter(EvalRouterArgs),
    /// A Markdown table of saved `eval --json` reports
    /// (`<dataset>--<label>.json` in one directory; scripts/eval-table.sh).
    ReportTable(ReportTableArgs),
    /// Cross-validate the router: K folds, each trained on the others and
    /// evaluated on its own questions, pooled (`--out`/cv.json).
    CvRouter(CvConfig),
    /// How far a cheap local-first gate can go: the best threshold per
    /// evidence feature of `eval-router --traces` (local and network policies).
    GateFrontier(GateFrontierArgs),
    /// How well a generator judges "does this passage answer the question?"
    /// (P(yes), one forward pass) on a set's BM25 top k: AUC per passage and
    /// per question, seconds per judgement (the reranker's teacher).
    TeacherTable(TeacherTableArgs),
}

#[derive(clap::Args, Debug)]
struct TeacherTableArgs {
    /// Dataset: a BEIR or QA directory, or a HotpotQA .json file (or its directory).
    #[arg(long)]
    data: PathBuf,
    /// Dataset format; detected from the path when omitted.
    #[arg(long)]
    format: Option<DatasetFormat>,
    /// The generator: an OpenAI-compatible base URL (`http://127.0.0.1:8080/v1`,
    /// scripts/llm-server.sh --model qwen-0.5b), or `local:<file.gguf>`.
    #[arg(long)]
    generator: String,
    /// The model name sent to the generator.
    #[arg(long, default_value = "teacher")]
    model: String,
    /// Questions judged (a seeded sample).
    #[arg(long, default_value_t = 30)]
    questions: usize,
    /// Passages judged per question (the BM25 top k).
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Seed of the sample.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Time limit per judgement.
    #[arg(long, default_value_t = 60_000)]
    timeout_ms: u64,
    /// Write the report (with every judgement) here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct GateFrontierArgs {
    /// The traces JSONL (`eval-router --traces`, with the local and network policies).
    #[arg(long)]
    traces: PathBuf,
    /// The largest share of questions a gate may send to the network.
    #[arg(long, default_value_t = 0.5)]
    max_share: f64,
}

#[derive(clap::Args, Debug)]
struct ExportCorpusArgs {
    /// Dataset: a BEIR or QA directory, or a HotpotQA .json file (or its directory).
    #[arg(long)]
    data: PathBuf,
    /// Dataset format; detected from the path when omitted.
    #[arg(long)]
    format: Option<DatasetFormat>,
    /// The JSON file to write.
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args, Debug)]
struct ReportTableArgs {
    /// The directory of reports.
    #[arg(long)]
    reports: PathBuf,
}

#[derive(clap::Args, Debug)]
struct IndexOpensearchArgs {
    #[command(flatten)]
    config: rlrag_eval::opensearch::IndexConfig,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct EvalArgs {
    #[command(flatten)]
    config: RetrievalEvalConfig,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct BenchEngineArgs {
    #[command(flatten)]
    config: EngineBenchConfig,
    /// Write the report (with the query texts, for the browser run) here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct BenchScaleArgs {
    #[command(flatten)]
    config: rlrag_eval::scale::ScaleBenchConfig,
    /// Write the report here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct BenchGeneratorArgs {
    #[command(flatten)]
    config: rlrag_eval::bench_generator::GeneratorBenchConfig,
    /// Write the report here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct BenchDenseArgs {
    #[command(flatten)]
    config: rlrag_eval::dense_scale::DenseBenchConfig,
    /// Write the report here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct EvalRouterArgs {
    #[command(flatten)]
    config: RouterEvalConfig,
    /// Write the report here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

// Encoder runs allocate and free large temporaries per op; glibc malloc maps
// and unmaps each one (page faults), mimalloc reuses them: about 20% more
// passages/s (`trainer bench-encoder`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Write `value` as pretty JSON to `path`.
fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(value)?;
    std::fs::write(path, json + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Eval(args) => {
            let report = rlrag_eval::retrieval::run(&args.config, &Terminal)?;
            print!("{}", report.table());
            if let Some(path) = args.json {
                write_json(&path, &report.json)?;
            }
        }
        Command::TrainRetriever(config) => {
            let report = rlrag_train::retriever_run::run(&config, &Terminal)?;
            print!("{}", report.table());
            println!("wrote {}", report.out.display());
        }
        Command::TrainGenerator(config) => {
            let report = rlrag_train::generator_run::run(&config, &Terminal)?;
            print!("{}", report.table());
            println!("wrote {}", report.model.display());
        }
        Command::Rlag(config) => {
            let report = rlrag_train::rlag::run(&config, &Terminal)?;
            print!("{}", report.table());
            println!("wrote {}", report.model.display());
        }
        Command::TrainReranker(config) => {
            let report = rlrag_train::reranker_run::run(&config, &Terminal)?;
            print!("{}", report.table());
            println!("wrote {}", report.out.display());
        }
        Command::SelfBoost(config) => {
            let report = rlrag_train::self_boost::run(&config, &Terminal)?;
            print!("{}", report.table());
            println!("wrote {}", report.out.display());
        }
        Command::Serve(args) => serve::run(&args)?,
        Command::IndexOpensearch(args) => {
            let report = rlrag_eval::opensearch::index(&args.config, &Terminal)?;
            print!("{}", report.table());
            if let Some(path) = args.json {
                write_json(&path, &report)?;
            }
        }
        Command::TrainRouter(config) => {
            let report = router_run::run(&config, &Terminal)?;
            eprintln!(
                "wrote {} (model.safetensors, config.json, manifest.json, {}, {}) in {:.0} s",
                report.out.display(),
                router_run::LOG_FILE,
                router_run::CHART_FILE,
                report.seconds
            );
        }
        Command::EvalRouter(args) => {
            let report = rlrag_eval::router_eval::evaluate(&args.config, &Terminal)?;
            print!("{}", report.table());
            if let Some(path) = args.json {
                write_json(&path, &report)?;
            }
        }
        Command::GateFrontier(args) => {
            let frontier = rlrag_eval::gate_frontier::gate_frontier(&args.traces, args.max_share)?;
            print!("{}", frontier.table());
        }
        Command::TeacherTable(args) => {
            let ds = rlrag_eval::datasets::load(&args.data, args.format, None)?;
            let teacher = rlrag_router::LlmClient::new(rlrag_router::LlmConfig {
                base_url: args.generator.clone(),
                model: args.model.clone(),
                timeout_ms: args.timeout_ms,
                ..rlrag_router::LlmConfig::default()
            })?;
            let settings = rlrag_eval::teacher::TeacherSettings {
                questions: args.questions,
                k: args.k,
                seed: args.seed,
            };
            let report = rlrag_eval::teacher::teacher_table(&ds, &teacher, settings, &Terminal)?;
            print!("{}", report.table());
            if let Some(path) = args.json {
                write_json(&path, &report)?;
            }
        }
        Command::ReportTable(args) => {
            print!("{}", rlrag_eval::retrieval::reports_table(&args.reports)?);
        }
        Command::CvRouter(config) => {
            let report = rlrag_train::cv::run(&config, &Terminal)?;
            print!("{}", report.table());
            eprintln!(
                "wrote {}",
                rlrag_train::cv::CvReport::path(&config.run.out).display()
            );
        }
        Command::BenchEngine(args) => {
            let report = rlrag_eval::bench::run(&args.config)?;
            match &args.json {
                Some(path) => write_json(path, &report)?,
                None => println!("{}", serde_json::to_string_pretty(&report)?),
            }
        }
        Command::BenchScale(args) => {
            let report = rlrag_eval::scale::run(&args.config, &Terminal)?;
            print!("{}", report.table());
            if let Some(path) = args.json {
                write_json(&path, &report)?;
            }
        }
        Command::BenchDense(args) => {
            let report = rlrag_eval::dense_scale::run(&args.config, &Terminal)?;
            print!("{}", report.table());
            if let Some(path) = args.json {
                write_json(&path, &report)?;
            }
        }
        Command::BenchGenerator(args) => {
            let report = rlrag_eval::bench_generator::run(&args.config)?;
            match &args.json {
                Some(path) => write_json(path, &report)?,
                None => println!("{}", serde_json::to_string_pretty(&report)?),
            }
        }
        Command::BenchEncoder(config) => {
            println!("{}", rlrag_eval::bench_encoder::run(&config)?);
        }
        Command::ExportCorpus(args) => {
            let ds = rlrag_eval::datasets::load(&args.data, args.format, None)?;
            let json = serde_json::to_string(&ds.corpus)?;
            std::fs::write(&args.out, json + "\n")
                .with_context(|| format!("cannot write {}", args.out.display()))?;
            eprintln!(
                "wrote {} documents to {}",
                ds.corpus.len(),
                args.out.display()
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
