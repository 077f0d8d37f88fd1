//! `trainer`: the rlrag command line. Today: `eval` of a retriever on a
//! dataset; training commands arrive with the trainer issue.

mod bench;
mod bench_encoder;
mod eval;
mod progress;
mod retrievers;
mod route;
mod serve;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use retrievers::{RetrieverArgs, RetrieverKind};
use rlrag_retriever::DatasetFormat;

#[derive(Parser)]
#[command(
    name = "trainer",
    version,
    about = "Train and evaluate rlrag retrievers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Evaluate a retriever on a dataset split and print (and optionally save) the metrics.
    Eval(EvalArgs),
    /// Train the learned-sparse retriever by reward (R3) and write the model directory.
    TrainRetriever(train::TrainArgs),
    /// Write a dataset's corpus as a JSON array of `{id, title, text}` (what
    /// the browser package's `addDocuments` takes; the demo page loads it).
    ExportCorpus(ExportCorpusArgs),
    /// Time the browser engine's work natively: load, index, time to first
    /// result, query latency per mode, encoder throughput (JSON for
    /// scripts/bench-browser.sh, which runs the same steps in Chromium).
    BenchEngine(bench::BenchArgs),
    /// Encoder throughput on real passages (the burn side of scripts/bench-encoder.sh).
    BenchEncoder(bench_encoder::BenchEncoderArgs),
    /// Serve a corpus as a network search source (POST /search {queries, k}).
    Serve(serve::ServeArgs),
    /// Train the routing policy by RL (local / network / both / decompose / answer).
    TrainRouter(route::TrainRouterArgs),
    /// Compare the learned router with fixed routing policies on a QA set.
    EvalRouter(route::EvalRouterArgs),
}

#[derive(clap::Args, Debug)]
struct ExportCorpusArgs {
    /// Dataset: a BEIR or QA directory, or a HotpotQA .json file (or its directory).
    #[arg(long)]
    data: PathBuf,
    /// Dataset format; detected from the path when omitted.
    #[arg(long, value_parser = parse_format)]
    format: Option<DatasetFormat>,
    /// The JSON file to write.
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args, Debug)]
struct EvalArgs {
    /// Dataset: a BEIR or QA directory, or a HotpotQA .json file (or its directory).
    #[arg(long)]
    data: PathBuf,
    /// Dataset format; detected from the path when omitted.
    #[arg(long, value_parser = parse_format)]
    format: Option<DatasetFormat>,
    /// Split: BEIR qrels file name (default `test`); `all` (default), `train` or `test` otherwise.
    #[arg(long)]
    split: Option<String>,
    /// Which retriever to evaluate.
    #[arg(long, value_enum)]
    retriever: RetrieverKind,
    /// Retrieval depth per query.
    #[arg(long, default_value_t = 100)]
    k: usize,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    settings: RetrieverArgs,
}

// Encoder runs allocate and free large temporaries per op; glibc malloc maps
// and unmaps each one (page faults), mimalloc reuses them: about 20% more
// passages/s (`trainer bench-encoder`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub(crate) fn parse_format(s: &str) -> Result<DatasetFormat, String> {
    s.parse()
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Eval(args) => {
            let config = eval::EvalConfig {
                data: args.data,
                format: args.format,
                split: args.split,
                retriever: args.retriever,
                k: args.k,
                settings: args.settings,
            };
            let report = eval::run(&config)?;
            print!("{}", report.table());
            if let Some(path) = args.json {
                let json = serde_json::to_string_pretty(&report.json)?;
                std::fs::write(&path, json + "\n")
                    .with_context(|| format!("cannot write {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
            Ok(())
        }
        Command::TrainRetriever(args) => train::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::TrainRouter(args) => route::train(&args),
        Command::EvalRouter(args) => route::eval(&args),
        Command::BenchEngine(args) => {
            let report = bench::run(&args)?;
            let json = serde_json::to_string_pretty(&report)?;
            match &args.json {
                Some(path) => std::fs::write(path, json + "\n")
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => println!("{json}"),
            }
            Ok(())
        }
        Command::BenchEncoder(args) => bench_encoder::run(&args),
        Command::ExportCorpus(args) => {
            let ds = rlrag_retriever::Dataset::load(&args.data, args.format, None)?;
            let json = serde_json::to_string(&ds.corpus)?;
            std::fs::write(&args.out, json + "\n")
                .with_context(|| format!("cannot write {}", args.out.display()))?;
            eprintln!(
                "wrote {} documents to {}",
                ds.corpus.len(),
                args.out.display()
            );
            Ok(())
        }
    }
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
