//! A whole R3 run of the learned-sparse retriever (`trainer
//! train-retriever`): questions split into training and held-out ones,
//! the reward environment, BM25 and the starting model measured, the
//! training steps with a held-out evaluation and a checkpoint every N
//! steps, a JSONL log, a training curve, and the exported model directory.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rlrag_encoder::SparseActivation;
use rlrag_encoder::models::pretrained;
use rlrag_eval::EvalError;
use rlrag_eval::chart::{LineChart, Series};
use rlrag_eval::datasets::{self, Fold, Role};
use rlrag_eval::device::{DeviceChoice, DeviceList};
use rlrag_eval::models::{SparseOverrides, load_encoder, save_model};
use rlrag_eval::progress::Progress;
use rlrag_eval::retrieval::score_queries;
use rlrag_retriever::engine::HYBRID_DEPTH;
use rlrag_retriever::fusion::{Fusion, fuse};
use rlrag_retriever::rng::SplitMix64;
use rlrag_retriever::{
    AnalyzerConfig, Bm25Index, Bm25Params, Dataset, DatasetFormat, Document, Query, Split,
};
use rlrag_reward::retrieval::Metric;
use rlrag_router::llm::{LlmClient, LlmConfig};
use serde_json::json;

use crate::parallel::training_devices;
use crate::{
    ContainmentEnv, DocSide, LlmEnv, LlmScoring, PolicySearch, QrelsEnv, R3Config, R3Trainer,
    RewardEnv, TrainError,
};

/// Reward environments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum EnvKind {
    /// Relevance judgements (BEIR qrels): reward 1 for a judged-relevant passage.
    Qrels,
    /// A gold answer occurs in the passage (R3's system reward without an LLM).
    Containment,
    /// An OpenAI-compatible generator answers from the passage (see --llm-url).
    Llm,
}

/// How the `llm` environment scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum LlmScoringKind {
    /// Generate an answer and match it against the gold answers.
    Answer,
    /// Probability of the gold answer in one forward pass, thresholded.
    Probability,
}

/// Which retriever a run trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ModelKind {
    /// The learned-sparse model (default start: SPLADE-tiny).
    Sparse,
    /// The dense model (default start: all-MiniLM-L6-v2).
    Dense,
}

impl ModelKind {
    /// The pretrained model a run starts from without `--init`.
    pub fn pretrained(self) -> PathBuf {
        pretrained(match self {
            Self::Sparse => "splade-tiny",
            Self::Dense => "minilm",
        })
    }

    /// The InfoNCE temperature without `--temperature`: 1 for learned-sparse
    /// dot products (unbounded), 0.05 for dense cosine similarities (in
    /// [−1, 1]; Reinforced-IR uses 0.02–0.05).
    pub fn default_temperature(self) -> f32 {
        match self {
            Self::Sparse => R3Config::default().temperature,
            Self::Dense => 0.05,
        }
    }

    /// What on-policy retrieval searches without `--search`.
    pub fn default_search(self) -> PolicySearch {
        match self {
            Self::Sparse => PolicySearch::Bag,
            Self::Dense => PolicySearch::Index,
        }
    }

    /// `sparse` or `dense` (manifests, output directories).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Sparse => "sparse",
            Self::Dense => "dense",
        }
    }
}

/// A training run of the retriever.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct RetrieverRunConfig {
    /// Dataset: a BEIR or QA directory, or a HotpotQA .json file (or its directory).
    #[cfg_attr(feature = "clap", arg(long))]
    pub data: PathBuf,
    /// Dataset format; detected from the path when omitted.
    #[cfg_attr(feature = "clap", arg(long))]
    pub format: Option<DatasetFormat>,
    /// Training split (default `train`).
    #[cfg_attr(feature = "clap", arg(long, default_value = "train"))]
    pub split: Split,
    /// Reward environment.
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub env: EnvKind,
    /// Output directory: the model, checkpoints, log and curve.
    #[cfg_attr(feature = "clap", arg(long))]
    pub out: PathBuf,
    /// The retriever trained: `sparse` (learned-sparse) or `dense`.
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value_t = ModelKind::Sparse))]
    pub model: ModelKind,
    /// Model directory to start from (default: pretrained SPLADE-tiny for
    /// `--model sparse`, all-MiniLM-L6-v2 for `--model dense`); its head must
    /// match `--model`.
    #[cfg_attr(feature = "clap", arg(long))]
    pub init: Option<PathBuf>,
    /// Where training runs: cpu, wgpu (a GPU through Vulkan/Metal/DirectX) or
    /// cuda[:N] (built with `--features cuda`).
    #[cfg_attr(feature = "clap", arg(long, default_value = "cpu"))]
    pub device: DeviceChoice,
    /// Data-parallel training across devices, comma-separated (`cpu:0,cpu:1`
    /// for two CPU workers, `cuda:0,cuda:1`): each step's questions are
    /// split between them and the gradients summed on the first, which
    /// holds the model (the step one device takes on the whole batch).
    /// Replaces `--device`.
    #[cfg_attr(feature = "clap", arg(long, conflicts_with = "device"))]
    pub devices: Option<DeviceList>,
    /// Optimizer steps.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 100))]
    pub steps: usize,
    /// Seed of the question order and the holdout draw.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 42))]
    pub seed: u64,
    /// Keep this fraction of the training split's questions out of training
    /// and evaluate on them; 0 evaluates on --eval-split instead.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.0))]
    pub holdout: f64,
    /// Split evaluated when --holdout is 0.
    #[cfg_attr(feature = "clap", arg(long, default_value = "test"))]
    pub eval_split: Split,
    /// Evaluate the held-out questions every N steps (0: before and after only).
    #[cfg_attr(feature = "clap", arg(long))]
    pub eval_every: Option<usize>,
    /// Passages retrieved and judged per question.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = R3Config::default().k))]
    pub k: usize,
    /// Bag-of-tokens candidates re-scored by the current model (0 = off).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0))]
    pub rerank_m: usize,
    /// InfoNCE temperature (default 1 for sparse, 0.05 for dense).
    #[cfg_attr(feature = "clap", arg(long))]
    pub temperature: Option<f32>,
    /// AdamW learning rate.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = R3Config::default().learning_rate))]
    pub learning_rate: f64,
    /// Questions per step.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = R3Config::default().batch_size))]
    pub batch_size: usize,
    /// Passage tokens in the training forward pass.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = R3Config::default().max_passage_tokens))]
    pub max_passage_tokens: usize,
    /// Passage side of the loss: `bag` (as the bag-of-tokens index scores;
    /// default) or `model` (learned passage vectors, as sparse search and the
    /// re-rank score).
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value_t = DocSide::Bag))]
    pub doc_side: DocSide,
    /// What on-policy retrieval and the held-out evaluation search: `bag`
    /// (the bag-of-tokens index; sparse only, the default there) or `index`
    /// (the model's own learned-sparse or dense index, re-embedded at every
    /// evaluation; the dense default).
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub search: Option<PolicySearch>,
    /// Train only the top N transformer layers (and the MLM transform).
    #[cfg_attr(feature = "clap", arg(long))]
    pub train_top_layers: Option<usize>,
    /// Sparse activation of the trained model.
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub activation: Option<SparseActivation>,
    /// Top-k sparse terms per vector at inference.
    #[cfg_attr(feature = "clap", arg(long))]
    pub top_k: Option<usize>,
    /// `llm` environment: base URL of an OpenAI-compatible API, or
    /// `local:<file.gguf>` for a model in this process.
    #[cfg_attr(
        feature = "clap",
        arg(long, default_value = "http://127.0.0.1:8080/v1")
    )]
    pub llm_url: String,
    /// `llm` environment: model name sent with requests.
    #[cfg_attr(feature = "clap", arg(long, default_value = "smollm2-135m-instruct"))]
    pub llm_model: String,
    /// `llm` environment: per-request timeout in milliseconds.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 30_000))]
    pub llm_timeout_ms: u64,
    /// `llm` environment: scoring.
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value_t = LlmScoringKind::Answer))]
    pub llm_scoring: LlmScoringKind,
    /// `llm` environment: probability threshold of `--llm-scoring probability` (R3: 0.65).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.65))]
    pub llm_threshold: f32,
}

/// Metrics by name.
pub type Metrics = BTreeMap<&'static str, f64>;

/// What a run measured.
#[derive(Debug, Clone)]
pub struct RetrieverRunReport {
    /// Steps trained.
    pub steps: usize,
    /// Seconds the steps took.
    pub seconds: f64,
    /// Questions skipped (no positive in the top k).
    pub skipped: usize,
    /// Held-out questions.
    pub eval_questions: usize,
    /// What the held-out evaluation searched (`bag of tokens`, with re-rank).
    pub searched_as: String,
    /// BM25 on the held-out questions.
    pub bm25: Metrics,
    /// The starting model.
    pub before: Metrics,
    /// The trained model.
    pub after: Metrics,
    /// The starting model fused with BM25 (reciprocal rank, as `eval
    /// --retriever hybrid` fuses).
    pub before_fused: Metrics,
    /// The trained model fused with BM25.
    pub after_fused: Metrics,
    /// The model directory written.
    pub out: PathBuf,
}

impl RetrieverRunReport {
    /// The held-out table: BM25, before, after, change.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "trained {} steps in {:.0} s ({:.2} steps/s); questions skipped (no positive in top-k): {}",
            self.steps,
            self.seconds,
            self.steps as f64 / self.seconds.max(1e-9),
            self.skipped
        );
        let _ = writeln!(
            out,
            "held-out {} questions ({}):",
            self.eval_questions, self.searched_as
        );
        let _ = writeln!(
            out,
            "| metric         |    bm25 |  before |   after | change |"
        );
        let _ = writeln!(
            out,
            "|----------------|---------|---------|---------|--------|"
        );
        let shown = [
            Metric::Ndcg10,
            Metric::Recall10,
            Metric::Containment10,
            Metric::AllGold10,
        ];
        for name in shown.map(Metric::name) {
            let (Some(b), Some(a)) = (self.before.get(name), self.after.get(name)) else {
                continue;
            };
            let rel = if *b > 0.0 { (a / b - 1.0) * 100.0 } else { 0.0 };
            let base = self.bm25.get(name).copied().unwrap_or(f64::NAN);
            let _ = writeln!(
                out,
                "| {name:<14} | {base:>7.4} | {b:>7.4} | {a:>7.4} | {rel:>+5.1}% |"
            );
        }
        let (name, after) = primary(&self.after);
        let _ = writeln!(
            out,
            "fused with BM25 (reciprocal rank): {name} {:.4} -> {:.4}",
            primary(&self.before_fused).1,
            primary(&self.after_fused).1
        );
        if let Some(&base) = self.bm25.get(name)
            && after <= base
        {
            let _ = writeln!(
                out,
                "the trained retriever does not beat BM25 on {name} here ({after:.4} against {base:.4})"
            );
        }
        out
    }
}

/// The metric followed during training: nDCG@10 with judgements, else containment@10.
pub fn primary(metrics: &Metrics) -> (&'static str, f64) {
    for name in [Metric::Ndcg10, Metric::Containment10].map(Metric::name) {
        if let Some(&v) = metrics.get(name) {
            return (name, v);
        }
    }
    ("none", 0.0)
}

/// The model in `init` on `device`, owned for training, with its
/// `tokenizer.json`; refused when its head is not of `kind`.
pub(crate) fn load_trainable(
    kind: ModelKind,
    init: &Path,
    overrides: SparseOverrides,
    device: &burn::tensor::Device,
) -> Result<(rlrag_encoder::Encoder, Vec<u8>), TrainError> {
    let loaded = load_encoder(init, overrides, true, device)?;
    let encoder = std::sync::Arc::try_unwrap(loaded.encoder)
        .map_err(|_| setting("init", "the encoder is shared".to_owned()))?;
    if (encoder.sparse_settings().is_some()) != (kind == ModelKind::Sparse) {
        let other = match kind {
            ModelKind::Sparse => ModelKind::Dense,
            ModelKind::Dense => ModelKind::Sparse,
        };
        return Err(setting(
            "init",
            format!(
                "{} is not a {} model: pass --model {}",
                init.display(),
                kind.name(),
                other.name()
            ),
        ));
    }
    Ok((encoder, loaded.tokenizer))
}

/// BM25 (default settings) over `corpus` and its metrics on `questions`:
/// the baseline every retriever run reports.
pub(crate) fn bm25_metrics(
    corpus: &[Document],
    questions: &[Query],
    by_id: &HashMap<&str, &Document>,
    progress: &dyn Progress,
) -> Result<(Bm25Index, Metrics), TrainError> {
    let mut bm25 = Bm25Index::new(Bm25Params::default(), AnalyzerConfig::default())?;
    bm25.add_documents(corpus)?;
    let metrics = score_queries(
        |q, k| Ok(bm25.search(q, k)?),
        questions,
        by_id,
        100,
        progress,
    )?
    .0;
    Ok((bm25, metrics))
}

/// The trainer's current search fused with BM25's by reciprocal rank
/// (each list to depth max(k, [`HYBRID_DEPTH`]), as the engine's hybrid),
/// scored on `questions`.
pub(crate) fn fused_with_bm25(
    trainer: &R3Trainer,
    bm25: &Bm25Index,
    questions: &[Query],
    by_id: &HashMap<&str, &Document>,
    progress: &dyn Progress,
) -> Result<Metrics, TrainError> {
    let search = |q: &str, k: usize| -> Result<Vec<rlrag_retriever::Hit>, EvalError> {
        let depth = k.max(HYBRID_DEPTH);
        let lists = [bm25.search(q, depth)?, trainer.search(q, depth)?];
        Ok(fuse(&lists, &[1.0, 1.0], Fusion::default(), k))
    };
    Ok(score_queries(search, questions, by_id, 100, progress)?.0)
}

fn setting(name: &'static str, reason: String) -> TrainError {
    TrainError::Config { name, reason }
}

/// Where a run's training and held-out questions come from.
pub(crate) struct QuestionSource<'a> {
    pub data: &'a Path,
    pub format: Option<DatasetFormat>,
    pub split: &'a Split,
    pub holdout: f64,
    pub eval_split: &'a Split,
    pub seed: u64,
    /// Cross-validation: train on every part of the split but this one,
    /// evaluate on it (instead of `holdout` and `eval_split`).
    pub fold: Option<Fold>,
}

/// Training and evaluation questions (neither empty): a seeded holdout of
/// the training split, or another split.
pub(crate) fn split_questions(
    source: &QuestionSource<'_>,
    progress: &dyn Progress,
) -> Result<(Dataset, Vec<Query>, Vec<Query>), TrainError> {
    let (ds, train, eval) = load_questions(source, progress)?;
    if train.is_empty() || eval.is_empty() {
        return Err(setting(
            "data",
            format!(
                "need training and evaluation questions (got {} and {})",
                train.len(),
                eval.len()
            ),
        ));
    }
    Ok((ds, train, eval))
}

fn load_questions(
    source: &QuestionSource<'_>,
    progress: &dyn Progress,
) -> Result<(Dataset, Vec<Query>, Vec<Query>), TrainError> {
    let ds = datasets::load(source.data, source.format, Some(source.split))?;
    for w in ds.report.warnings() {
        progress.note(&format!("warning: {w}"));
    }
    if !(0.0..1.0).contains(&source.holdout) {
        return Err(setting(
            "holdout",
            format!("--holdout is a fraction in [0, 1), got {}", source.holdout),
        ));
    }
    if let Some(fold) = source.fold {
        if source.holdout > 0.0 {
            return Err(setting(
                "fold",
                "--fold and --holdout both choose the held-out questions: pass one".into(),
            ));
        }
        let (train, eval) = ds
            .queries
            .iter()
            .cloned()
            .partition(|q| fold.holds(q, Role::Train));
        return Ok((ds, train, eval));
    }
    if source.holdout > 0.0 {
        let mut questions = ds.queries.clone();
        SplitMix64::new(source.seed ^ 0x686f_6c64).shuffle(&mut questions);
        let n = ((questions.len() as f64) * source.holdout).round().max(1.0) as usize;
        if n >= questions.len() {
            return Err(setting(
                "holdout",
                format!("--holdout {} leaves no training questions", source.holdout),
            ));
        }
        let train = questions.split_off(n);
        return Ok((ds, train, questions));
    }
    if *source.eval_split == ds.split {
        return Err(setting(
            "eval-split",
            format!(
                "the evaluation split is the training split `{}`: pass --holdout or another --eval-split",
                ds.split
            ),
        ));
    }
    let eval = datasets::load(source.data, source.format, Some(source.eval_split))?;
    let train = ds.queries.clone();
    Ok((ds, train, eval.queries))
}

fn environment(config: &RetrieverRunConfig) -> Result<Box<dyn RewardEnv>, TrainError> {
    Ok(match config.env {
        EnvKind::Qrels => Box::new(QrelsEnv::default()),
        EnvKind::Containment => Box::new(ContainmentEnv::default()),
        EnvKind::Llm => {
            let client = LlmClient::new(LlmConfig {
                base_url: config.llm_url.clone(),
                model: config.llm_model.clone(),
                timeout_ms: config.llm_timeout_ms,
                ..LlmConfig::default()
            })?;
            let scoring = match config.llm_scoring {
                LlmScoringKind::Answer => LlmScoring::Answer,
                LlmScoringKind::Probability => LlmScoring::GoldProbability {
                    threshold: config.llm_threshold,
                },
            };
            Box::new(LlmEnv::new(client, scoring))
        }
    })
}

/// The commit this binary was run from (provenance in the manifest).
fn commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// A training curve: mean reward per step and the held-out metric.
pub fn curve(rewards: &[(usize, f64)], metric: &[(usize, f64)], metric_name: &str) -> LineChart {
    step_curve(
        ("mean reward (per step)", rewards),
        (&format!("held-out {metric_name}"), metric),
    )
}

/// A curve over training steps: a per-step series (grey) and a held-out
/// one (red), each named.
pub(crate) fn step_curve(
    per_step: (&str, &[(usize, f64)]),
    held_out: (&str, &[(usize, f64)]),
) -> LineChart {
    let points = |pts: &[(usize, f64)]| pts.iter().map(|&(s, v)| (s as f64, v)).collect();
    LineChart {
        x_label: "step",
        series: vec![
            Series {
                name: per_step.0.into(),
                color: "#888",
                points: points(per_step.1),
            },
            Series {
                name: held_out.0.into(),
                color: "#c00",
                points: points(held_out.1),
            },
        ],
    }
}

pub(crate) fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError {
    let path = path.to_path_buf();
    move |source| TrainError::Io { path, source }
}

/// Run R3 as `config` says; writes the model directory, its checkpoints,
/// `train.jsonl` and `curve.svg` under `config.out`.
///
/// Longer than the others on purpose: it is the run's steps in the order a
/// reader checks them (split, load, baselines, steps with checkpoints,
/// export), and the log, manifest and curve it threads through every step
/// would otherwise travel through helpers as a dozen arguments.
pub fn run(
    config: &RetrieverRunConfig,
    progress: &dyn Progress,
) -> Result<RetrieverRunReport, TrainError> {
    let source = QuestionSource {
        data: &config.data,
        format: config.format,
        split: &config.split,
        holdout: config.holdout,
        eval_split: &config.eval_split,
        seed: config.seed,
        fold: None,
    };
    let (ds, train_q, eval_q) = split_questions(&source, progress)?;
    let init = config
        .init
        .clone()
        .unwrap_or_else(|| config.model.pretrained());
    let overrides = SparseOverrides {
        activation: config.activation,
        top_k: config.top_k,
    };
    let single = match &config.devices {
        Some(_) => burn::tensor::Device::flex(),
        None => config.device.device()?,
    };
    let devices = training_devices(config.devices.as_ref(), single)?;
    let (encoder, tokenizer) = load_trainable(config.model, &init, overrides, &devices[0])?;
    let search = config.search.unwrap_or(config.model.default_search());
    let r3 = R3Config {
        k: config.k,
        rerank_m: config.rerank_m,
        temperature: config
            .temperature
            .unwrap_or(config.model.default_temperature()),
        learning_rate: config.learning_rate,
        batch_size: config.batch_size,
        steps: config.steps,
        max_passage_tokens: config.max_passage_tokens,
        train_top_layers: config.train_top_layers,
        seed: config.seed,
        doc_side: config.doc_side,
        search,
        ..R3Config::default()
    };
    let mut env = environment(config)?;
    progress.note(&format!(
        "training on {} questions of {} ({} documents), evaluating on {}; env {}; device {}",
        train_q.len(),
        ds.name,
        ds.corpus.len(),
        eval_q.len(),
        env.name(),
        config
            .devices
            .as_ref()
            .map_or(config.device.to_string(), |d| format!(
                "{d} (data-parallel)"
            ))
    ));
    if search == PolicySearch::Index {
        progress.note(&format!(
            "embedding {} passages with the starting model",
            ds.corpus.len()
        ));
    }
    let mut trainer = R3Trainer::new(encoder, &ds.corpus, r3.clone())?;
    trainer.set_devices(devices.clone())?;
    let by_id: HashMap<&str, &Document> = ds.corpus.iter().map(|d| (d.id.as_str(), d)).collect();
    // Held-out evaluation with the current weights: the model's own index is
    // re-embedded first (which also refreshes on-policy retrieval).
    let evaluate = |t: &mut R3Trainer, fresh: bool| -> Result<Metrics, TrainError> {
        if !fresh {
            t.refresh_index()?;
        }
        let t = &*t;
        Ok(score_queries(|q, k| Ok(t.search(q, k)?), &eval_q, &by_id, 100, progress)?.0)
    };

    let (bm25, bm25_metrics) = bm25_metrics(&ds.corpus, &eval_q, &by_id, progress)?;
    let before = evaluate(&mut trainer, true)?;
    let before_fused = fused_with_bm25(&trainer, &bm25, &eval_q, &by_id, progress)?;
    let (metric_name, before_value) = primary(&before);

    std::fs::create_dir_all(&config.out).map_err(write_err(&config.out))?;
    let log_path = config.out.join("train.jsonl");
    let mut log =
        std::io::BufWriter::new(std::fs::File::create(&log_path).map_err(write_err(&log_path))?);
    let mut manifest = json!({
        "format_version": 1,
        "model_kind": config.model.name(),
        "activation": trainer.encoder().sparse_settings().map(|s| s.0),
        "top_k": trainer.encoder().sparse_settings().and_then(|s| s.1),
        "init": init.display().to_string(),
        "data": {"path": config.data.display().to_string(), "dataset": ds.name, "split": ds.split,
                 "train_questions": train_q.len(), "eval_questions": eval_q.len(), "holdout": config.holdout},
        "reward": env.name(),
        "config": r3,
        "commit": commit(),
    });
    let eval_every = config.eval_every.unwrap_or((config.steps / 5).max(1));
    let mut rewards = Vec::new();
    let mut held_out = vec![(0usize, before_value)];
    let mut log_line = |line: String| -> Result<(), TrainError> {
        writeln!(log, "{line}")
            .and_then(|()| log.flush())
            .map_err(write_err(&log_path))
    };
    log_line(json!({"step": 0, "eval": before}).to_string())?;
    let started = Instant::now();
    let mut bar = progress.bar(config.steps as u64, "training");
    let mut running = None::<f64>;
    let mut skipped = 0usize;
    let mut last_eval = None;
    for step in 1..=config.steps {
        let s = trainer.step(&train_q, env.as_mut())?;
        skipped += s.skipped;
        let r = f64::from(s.mean_reward);
        running = Some(running.map_or(r, |x| 0.9 * x + 0.1 * r));
        rewards.push((step, r));
        let mut line = serde_json::to_value(&s)?;
        if eval_every > 0 && (step % eval_every == 0 || step == config.steps) {
            let m = evaluate(&mut trainer, false)?;
            held_out.push((step, primary(&m).1));
            line["eval"] = serde_json::to_value(&m)?;
            last_eval = (step == config.steps).then_some(m);
            manifest["steps"] = json!(step);
            save_model(
                &config.out.join("checkpoints").join(format!("step-{step}")),
                trainer.inference_encoder(),
                &tokenizer,
                &manifest,
            )?;
        }
        log_line(line.to_string())?;
        bar.set_message(format!("reward {:.3}", running.unwrap_or(0.0)));
        bar.inc(1);
    }
    bar.finish();
    let seconds = started.elapsed().as_secs_f64();
    // The last step's evaluation, else one now (re-embedding the index).
    let after = match last_eval {
        Some(m) => m,
        None => evaluate(&mut trainer, false)?,
    };
    let after_fused = fused_with_bm25(&trainer, &bm25, &eval_q, &by_id, progress)?;
    manifest["steps"] = json!(config.steps);
    manifest["seconds"] = json!(seconds);
    manifest["skipped_questions"] = json!(skipped);
    manifest["env_stats"] = serde_json::to_value(env.stats())?;
    manifest["metrics"] = json!({"metric": metric_name, "before": before, "after": after, "bm25": bm25_metrics,
               "before_fused_with_bm25": before_fused, "after_fused_with_bm25": after_fused});
    save_model(
        &config.out,
        trainer.inference_encoder(),
        &tokenizer,
        &manifest,
    )?;
    let svg_path = config.out.join("curve.svg");
    std::fs::write(&svg_path, curve(&rewards, &held_out, metric_name).to_svg())
        .map_err(write_err(&svg_path))?;
    let searched_as = match (search, config.model) {
        (PolicySearch::Index, ModelKind::Dense) => "dense index".to_string(),
        (PolicySearch::Index, ModelKind::Sparse) => "learned-sparse index".to_string(),
        (PolicySearch::Bag, _) if config.rerank_m > 0 => {
            format!("bag of tokens + re-rank {}", config.rerank_m)
        }
        (PolicySearch::Bag, _) => "bag of tokens".to_string(),
    };
    Ok(RetrieverRunReport {
        steps: config.steps,
        seconds,
        skipped,
        eval_questions: eval_q.len(),
        searched_as,
        bm25: bm25_metrics,
        before,
        after,
        before_fused,
        after_fused,
        out: config.out.clone(),
    })
}
