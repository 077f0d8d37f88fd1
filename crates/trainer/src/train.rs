//! `trainer train-retriever`: R3 training of the learned-sparse retriever,
//! with a held-out evaluation before, during and after, checkpoints, a JSONL
//! log, a training curve, and the exported model directory.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rlrag_encoder::Encoder;
use rlrag_encoder::models::pretrained;
use rlrag_retriever::{
    AnalyzerConfig, Bm25Index, Bm25Params, Dataset, DatasetFormat, Document, Query, Retriever,
};
use rlrag_train::{
    ContainmentEnv, DeviceChoice, DocSide, LlmClient, LlmConfig, LlmEnv, LlmScoring, QrelsEnv,
    R3Config, R3Trainer, RewardEnv,
};
use serde_json::json;

use crate::eval::score_queries;
use crate::progress::LazyBar;
use crate::retrievers::{ActivationArg, RetrieverArgs, load_sparse_model};

/// Reward environments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EnvKind {
    /// Relevance judgements (BEIR qrels): reward 1 for a judged-relevant passage.
    Qrels,
    /// A gold answer occurs in the passage (R3's system reward without an LLM).
    Containment,
    /// An OpenAI-compatible generator answers from the passage (see --llm-url).
    Llm,
}

/// Passage side of the loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DocSideArg {
    /// The passage's bag of tokens.
    Bag,
    /// The model's passage vector.
    Model,
}

/// How the `llm` environment scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LlmScoringArg {
    /// Generate an answer and match it against the gold answers.
    Answer,
    /// Probability of the gold answer in one forward pass, thresholded.
    Probability,
}

/// The `train-retriever` arguments.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Dataset: a BEIR or QA directory, or a HotpotQA .json file (or its directory).
    #[arg(long)]
    pub data: PathBuf,
    /// Dataset format; detected from the path when omitted.
    #[arg(long, value_parser = crate::parse_format)]
    pub format: Option<DatasetFormat>,
    /// Training split (default `train`).
    #[arg(long, default_value = "train")]
    pub split: String,
    /// Reward environment.
    #[arg(long, value_enum)]
    pub env: EnvKind,
    /// Output directory: the model, checkpoints, log and curve.
    #[arg(long)]
    pub out: PathBuf,
    /// Model directory to start from (default: pretrained SPLADE-tiny).
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Where training runs: cpu, wgpu (a GPU through Vulkan/Metal/DirectX) or
    /// cuda[:N] (built with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Optimizer steps.
    #[arg(long, default_value_t = 100)]
    pub steps: usize,
    /// Seed of the question order and the holdout draw.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Keep this fraction of the training split's questions out of training
    /// and evaluate on them; 0 evaluates on --eval-split instead.
    #[arg(long, default_value_t = 0.0)]
    pub holdout: f64,
    /// Split evaluated when --holdout is 0.
    #[arg(long, default_value = "test")]
    pub eval_split: String,
    /// Evaluate the held-out questions every N steps (0: before and after only).
    #[arg(long)]
    pub eval_every: Option<usize>,
    /// Passages retrieved and judged per question.
    #[arg(long, default_value_t = R3Config::default().k)]
    pub k: usize,
    /// Bag-of-tokens candidates re-scored by the current model (0 = off).
    #[arg(long, default_value_t = 0)]
    pub rerank_m: usize,
    /// InfoNCE temperature.
    #[arg(long, default_value_t = R3Config::default().temperature)]
    pub temperature: f32,
    /// AdamW learning rate.
    #[arg(long, default_value_t = R3Config::default().learning_rate)]
    pub learning_rate: f64,
    /// Questions per step.
    #[arg(long, default_value_t = R3Config::default().batch_size)]
    pub batch_size: usize,
    /// Passage tokens in the training forward pass.
    #[arg(long, default_value_t = R3Config::default().max_passage_tokens)]
    pub max_passage_tokens: usize,
    /// Passage side of the loss: `bag` (as the bag-of-tokens index scores;
    /// default) or `model` (learned passage vectors, as sparse search and the
    /// re-rank score).
    #[arg(long, value_enum, default_value_t = DocSideArg::Bag)]
    pub doc_side: DocSideArg,
    /// Train only the top N transformer layers (and the MLM transform).
    #[arg(long)]
    pub train_top_layers: Option<usize>,
    /// Sparse activation of the trained model.
    #[arg(long, value_enum)]
    pub activation: Option<ActivationArg>,
    /// Top-k sparse terms per vector at inference.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// `llm` environment: base URL of an OpenAI-compatible API.
    #[arg(long, default_value = "http://127.0.0.1:8080/v1")]
    pub llm_url: String,
    /// `llm` environment: model name sent with requests.
    #[arg(long, default_value = "smollm2-135m-instruct")]
    pub llm_model: String,
    /// `llm` environment: per-request timeout in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub llm_timeout_ms: u64,
    /// `llm` environment: scoring.
    #[arg(long, value_enum, default_value_t = LlmScoringArg::Answer)]
    pub llm_scoring: LlmScoringArg,
    /// `llm` environment: probability threshold of `--llm-scoring probability` (R3: 0.65).
    #[arg(long, default_value_t = 0.65)]
    pub llm_threshold: f32,
}

/// The metric followed during training: nDCG@10 with judgements, else containment@10.
fn primary(metrics: &std::collections::BTreeMap<&'static str, f64>) -> (&'static str, f64) {
    for name in ["ndcg@10", "containment@10"] {
        if let Some(&v) = metrics.get(name) {
            return (name, v);
        }
    }
    ("none", 0.0)
}

/// Training and evaluation questions: a seeded holdout of the training split,
/// or another split.
fn split_questions(args: &TrainArgs) -> anyhow::Result<(Dataset, Vec<Query>, Vec<Query>)> {
    let ds = Dataset::load(&args.data, args.format, Some(&args.split))
        .with_context(|| format!("cannot load dataset {}", args.data.display()))?;
    for w in ds.report.warnings() {
        eprintln!("warning: {w}");
    }
    if !(0.0..1.0).contains(&args.holdout) {
        anyhow::bail!("--holdout is a fraction in [0, 1), got {}", args.holdout);
    }
    if args.holdout > 0.0 {
        let mut questions = ds.queries.clone();
        questions.shuffle(&mut ChaCha8Rng::seed_from_u64(args.seed ^ 0x686f_6c64));
        let n = ((questions.len() as f64) * args.holdout).round().max(1.0) as usize;
        if n >= questions.len() {
            anyhow::bail!("--holdout {} leaves no training questions", args.holdout);
        }
        let train = questions.split_off(n);
        return Ok((ds, train, questions));
    }
    if args.eval_split == ds.split {
        anyhow::bail!(
            "the evaluation split is the training split `{}`: pass --holdout or another --eval-split",
            ds.split
        );
    }
    let eval = Dataset::load(&args.data, args.format, Some(&args.eval_split))
        .with_context(|| format!("cannot load the evaluation split `{}`", args.eval_split))?;
    let train = ds.queries.clone();
    Ok((ds, train, eval.queries))
}

fn environment(args: &TrainArgs) -> anyhow::Result<Box<dyn RewardEnv>> {
    Ok(match args.env {
        EnvKind::Qrels => Box::new(QrelsEnv::default()),
        EnvKind::Containment => Box::new(ContainmentEnv::default()),
        EnvKind::Llm => {
            let client = LlmClient::new(LlmConfig {
                base_url: args.llm_url.clone(),
                model: args.llm_model.clone(),
                timeout_ms: args.llm_timeout_ms,
                ..LlmConfig::default()
            })?;
            let scoring = match args.llm_scoring {
                LlmScoringArg::Answer => LlmScoring::Answer,
                LlmScoringArg::Probability => LlmScoring::GoldProbability {
                    threshold: args.llm_threshold,
                },
            };
            Box::new(LlmEnv::new(client, scoring))
        }
    })
}

/// Write a model directory: weights, config, tokenizer, manifest.
fn save_model(
    dir: &Path,
    encoder: &Encoder,
    tokenizer: &[u8],
    manifest: &serde_json::Value,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))
    };
    write("model.safetensors", &encoder.weights_safetensors()?)?;
    write("config.json", &encoder.config().to_json()?)?;
    write("tokenizer.json", tokenizer)?;
    write("manifest.json", &serde_json::to_vec_pretty(manifest)?)?;
    Ok(())
}

fn commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// A training curve: mean reward per step and the held-out metric, on [0, 1].
pub fn curve_svg(rewards: &[(usize, f64)], metric: &[(usize, f64)], metric_name: &str) -> String {
    let (w, h, pad) = (640.0, 360.0, 40.0);
    let max_step = rewards
        .iter()
        .chain(metric)
        .map(|p| p.0)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let x = |s: usize| pad + (w - 2.0 * pad) * s as f64 / max_step;
    let y = |v: f64| h - pad - (h - 2.0 * pad) * v.clamp(0.0, 1.0);
    let line = |pts: &[(usize, f64)]| {
        pts.iter()
            .map(|&(s, v)| format!("{:.1},{:.1}", x(s), y(v)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<line x1="{pad}" y1="{b}" x2="{r}" y2="{b}" stroke="black"/><line x1="{pad}" y1="{pad}" x2="{pad}" y2="{b}" stroke="black"/>
<text x="{pad}" y="{t}">1.0</text><text x="8" y="{b}">0.0</text><text x="{r}" y="{l}" text-anchor="end">step {max_step}</text>
<polyline fill="none" stroke="#888" points="{}"/>
<polyline fill="none" stroke="#c00" stroke-width="2" points="{}"/>
<text x="{lx}" y="20" fill="#888">mean reward (per step)</text><text x="{lx2}" y="20" fill="#c00">held-out {metric_name}</text>
</svg>
"##,
        line(rewards),
        line(metric),
        b = h - pad,
        r = w - pad,
        t = pad - 4.0,
        l = h - pad + 16.0,
        lx = pad,
        lx2 = pad + 200.0,
    );
    svg
}

/// Run `train-retriever`.
pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let (ds, train_q, eval_q) = split_questions(args)?;
    if train_q.is_empty() || eval_q.is_empty() {
        anyhow::bail!(
            "need training and evaluation questions (got {} and {})",
            train_q.len(),
            eval_q.len()
        );
    }
    let init = args
        .init
        .clone()
        .unwrap_or_else(|| pretrained("splade-tiny"));
    let overrides = RetrieverArgs::sparse_overrides(args.activation, args.top_k);
    let (encoder, tokenizer) =
        load_sparse_model(&init, &overrides, &args.device.device()?.autodiff())?;
    let config = R3Config {
        k: args.k,
        rerank_m: args.rerank_m,
        temperature: args.temperature,
        learning_rate: args.learning_rate,
        batch_size: args.batch_size,
        steps: args.steps,
        max_passage_tokens: args.max_passage_tokens,
        train_top_layers: args.train_top_layers,
        seed: args.seed,
        doc_side: match args.doc_side {
            DocSideArg::Bag => DocSide::Bag,
            DocSideArg::Model => DocSide::Model,
        },
        ..R3Config::default()
    };
    let mut env = environment(args)?;
    eprintln!(
        "training on {} questions of {} ({} documents), evaluating on {}; env {}; device {}",
        train_q.len(),
        ds.name,
        ds.corpus.len(),
        eval_q.len(),
        env.name(),
        args.device
    );
    let mut trainer = R3Trainer::new(encoder, &ds.corpus, config.clone())?;
    let by_id: HashMap<&str, &Document> = ds.corpus.iter().map(|d| (d.id.as_str(), d)).collect();
    let evaluate = |r: &dyn Retriever| score_queries(r, &eval_q, &by_id, 100).map(|m| m.0);

    let mut bm25 = Bm25Index::new(Bm25Params::default(), AnalyzerConfig::default())?;
    bm25.add_documents(&ds.corpus)?;
    let bm25_metrics = evaluate(&bm25)?;
    let before = evaluate(trainer.retriever())?;
    let (metric_name, before_value) = primary(&before);

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let log_path = args.out.join("train.jsonl");
    let mut log = std::io::BufWriter::new(
        std::fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?,
    );
    let mut manifest = json!({
        "format_version": 1,
        "model_kind": "sparse",
        "activation": trainer.encoder().sparse_settings().map(|s| s.0),
        "top_k": trainer.encoder().sparse_settings().and_then(|s| s.1),
        "init": init.display().to_string(),
        "data": {"path": args.data.display().to_string(), "dataset": ds.name, "split": ds.split,
                 "train_questions": train_q.len(), "eval_questions": eval_q.len(), "holdout": args.holdout},
        "reward": env.name(),
        "config": config,
        "commit": commit(),
    });
    let eval_every = args.eval_every.unwrap_or((args.steps / 5).max(1));
    let mut rewards = Vec::new();
    let mut curve = vec![(0usize, before_value)];
    writeln!(log, "{}", json!({"step": 0, "eval": before}))?;
    let started = Instant::now();
    let mut bar = LazyBar::new(args.steps as u64, "training");
    let mut running = None::<f64>;
    let mut skipped_total = 0usize;
    for step in 1..=args.steps {
        let s = trainer.step(&train_q, env.as_mut())?;
        skipped_total += s.skipped;
        let r = f64::from(s.mean_reward);
        running = Some(running.map_or(r, |x| 0.9 * x + 0.1 * r));
        rewards.push((step, r));
        let mut line = serde_json::to_value(&s)?;
        if eval_every > 0 && (step % eval_every == 0 || step == args.steps) {
            let m = evaluate(trainer.retriever())?;
            curve.push((step, primary(&m).1));
            line["eval"] = serde_json::to_value(&m)?;
            manifest["steps"] = json!(step);
            save_model(
                &args.out.join("checkpoints").join(format!("step-{step}")),
                trainer.inference_encoder(),
                &tokenizer,
                &manifest,
            )?;
        }
        writeln!(log, "{line}")?;
        log.flush()?;
        bar.set_message(format!("reward {:.3}", running.unwrap_or(0.0)));
        bar.inc(1);
    }
    bar.finish();
    let seconds = started.elapsed().as_secs_f64();
    let after = evaluate(trainer.retriever())?;
    manifest["steps"] = json!(args.steps);
    manifest["seconds"] = json!(seconds);
    manifest["skipped_questions"] = json!(skipped_total);
    manifest["env_stats"] = serde_json::to_value(env.stats())?;
    manifest["metrics"] =
        json!({"metric": metric_name, "before": before, "after": after, "bm25": bm25_metrics});
    save_model(
        &args.out,
        trainer.inference_encoder(),
        &tokenizer,
        &manifest,
    )?;
    std::fs::write(
        args.out.join("curve.svg"),
        curve_svg(&rewards, &curve, metric_name),
    )?;

    println!(
        "trained {} steps in {seconds:.0} s ({:.2} steps/s); questions skipped (no positive in top-k): {skipped_total}",
        args.steps,
        args.steps as f64 / seconds.max(1e-9)
    );
    let label = if args.rerank_m > 0 {
        format!("bag of tokens + re-rank {}", args.rerank_m)
    } else {
        "bag of tokens".to_string()
    };
    println!("held-out {} questions ({label}):", eval_q.len());
    println!("| metric         |    bm25 |  before |   after | change |");
    println!("|----------------|---------|---------|---------|--------|");
    for name in ["ndcg@10", "recall@10", "containment@10", "all_gold@10"] {
        let (Some(b), Some(a)) = (before.get(name), after.get(name)) else {
            continue;
        };
        let rel = if *b > 0.0 { (a / b - 1.0) * 100.0 } else { 0.0 };
        let base = bm25_metrics.get(name).copied().unwrap_or(f64::NAN);
        println!("| {name:<14} | {base:>7.4} | {b:>7.4} | {a:>7.4} | {rel:>+5.1}% |");
    }
    println!("wrote {}", args.out.display());
    Ok(())
}
