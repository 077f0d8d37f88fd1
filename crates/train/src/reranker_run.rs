//! A whole training run of the cross-encoder reranker (`trainer
//! train-reranker`, issue 22): candidates from a first-stage retriever
//! (hard negatives from our own retrievers), labels from the set's passage
//! judgements or answers, optionally a generator's judgements (P("yes"),
//! cached as JSONL and resumable), a listwise + pointwise distillation loss,
//! a held-out evaluation of the first stage reranked, checkpoints, a JSONL
//! log, a curve, and the model directory.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::activation::{log_sigmoid, log_softmax};
use burn::tensor::{Tensor, TensorData};
use futures_lite::future::block_on;
use rlrag_encoder::models::pretrained;
use rlrag_encoder::{Calibration, CrossEncoderInit, Encoder, Head, ModelConfig};
use rlrag_eval::models::{ModelDir, save_model};
use rlrag_eval::progress::Progress;
use rlrag_eval::retrieval::score_queries;
use rlrag_eval::retrievers::{self, RetrieverSettings};
use rlrag_retriever::rng::SplitMix64;
use rlrag_retriever::{DatasetFormat, Document, Engine, Hit, Query, Reranker, SearchMode, Split};
use rlrag_reward::answer::contains_answer;
use rlrag_router::llm::{LlmClient, LlmConfig};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::TrainError;
use crate::retriever_run::{Metrics, QuestionSource, primary, split_questions, step_curve};
use rlrag_eval::cache::JsonlCache;

/// The teacher's judgements file in the output directory (one JSON object
/// per line: question, passage, p_yes).
pub const TEACHER_FILE: &str = "teacher.jsonl";

/// A training run of the reranker.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct RerankerRunConfig {
    /// Dataset: a BEIR or QA directory, or a HotpotQA .json file (or its directory).
    #[cfg_attr(feature = "clap", arg(long))]
    pub data: PathBuf,
    /// Dataset format; detected from the path when omitted.
    #[cfg_attr(feature = "clap", arg(long))]
    pub format: Option<DatasetFormat>,
    /// Training split.
    #[cfg_attr(feature = "clap", arg(long, default_value = "train"))]
    pub split: Split,
    /// Keep this fraction of the training split's questions out of training
    /// and evaluate on them; 0 evaluates on --eval-split instead.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.0))]
    pub holdout: f64,
    /// Split evaluated when --holdout is 0.
    #[cfg_attr(feature = "clap", arg(long, default_value = "test"))]
    pub eval_split: Split,
    /// Cross-validation fold `I/K`: train on every part of the split but I
    /// (the fixed hash partition `cv-router` uses) and evaluate on part I.
    #[cfg_attr(feature = "clap", arg(long))]
    pub fold: Option<rlrag_eval::datasets::Fold>,
    /// Evaluate at most this many held-out questions during training (a
    /// seeded sample; 0: all); the final evaluation uses all.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0))]
    pub eval_questions: usize,
    /// Output directory: the model, checkpoints, log, teacher cache and curve.
    #[cfg_attr(feature = "clap", arg(long))]
    pub out: PathBuf,
    /// Model directory to start from: a cross-encoder to train further, or
    /// a BERT model (default: pretrained all-MiniLM-L6-v2) whose body and
    /// pooler a new cross-encoder starts from.
    #[cfg_attr(feature = "clap", arg(long))]
    pub init: Option<PathBuf>,
    /// A new cross-encoder keeps the first N layers of --init (default: all).
    #[cfg_attr(feature = "clap", arg(long))]
    pub layers: Option<usize>,
    /// A new cross-encoder's pair length in tokens.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 256))]
    pub max_length: usize,
    /// A new cross-encoder's question length in tokens.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = rlrag_encoder::DEFAULT_MAX_QUESTION_TOKENS))]
    pub max_question_tokens: usize,
    /// First-stage retriever the candidates (and the evaluation) come from.
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value_t = SearchMode::Bm25))]
    pub retriever: SearchMode,
    /// How the first stage is built (and where training runs: --device).
    #[cfg_attr(feature = "clap", command(flatten))]
    pub settings: RetrieverSettings,
    /// First-stage candidates per training question (hard negatives come
    /// from these).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 30))]
    pub candidates: usize,
    /// Passages per question in a step: one positive and the rest
    /// negatives drawn from the candidates.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 8))]
    pub group: usize,
    /// Questions per step.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 4))]
    pub batch_size: usize,
    /// Optimizer steps.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 200))]
    pub steps: usize,
    /// AdamW learning rate (linear warm-up over the first tenth of the steps).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 3e-5))]
    pub learning_rate: f64,
    /// Weight of the pointwise (binary cross-entropy) term beside the
    /// listwise one.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1.0))]
    pub pointwise_weight: f32,
    /// Candidates re-scored per held-out question.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 20))]
    pub rerank: usize,
    /// Evaluate every N steps (0: before and after only).
    #[cfg_attr(feature = "clap", arg(long))]
    pub eval_every: Option<usize>,
    /// Seed of the question order, the negatives, the holdout and the classifier.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 42))]
    pub seed: u64,
    /// A generator (OpenAI-compatible base URL, `scripts/llm-server.sh`,
    /// or `local:<file.gguf>`) whose P("yes") judges the training pairs
    /// beside the labels.
    #[cfg_attr(feature = "clap", arg(long))]
    pub teacher: Option<String>,
    /// The teacher's model name, sent with requests.
    #[cfg_attr(
        feature = "clap",
        arg(long, default_value = "qwen2.5-coder-0.5b-instruct")
    )]
    pub teacher_model: String,
    /// Per-judgement timeout in milliseconds.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 60_000))]
    pub teacher_timeout_ms: u64,
    /// The target of a pair: (1 − w)·label + w·P("yes") (with --teacher).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.5))]
    pub teacher_weight: f32,
}

/// A refused setting.
pub(crate) fn setting(name: &'static str, reason: impl Into<String>) -> TrainError {
    TrainError::Config {
        name,
        reason: reason.into(),
    }
}

/// An I/O error on `path`.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError {
    let path = path.to_path_buf();
    move |source| TrainError::Io { path, source }
}

impl RerankerRunConfig {
    fn validate(&self) -> Result<(), TrainError> {
        if self.group < 2 {
            return Err(setting(
                "group",
                "--group needs a positive and at least one negative (≥ 2)",
            ));
        }
        if self.candidates < self.group {
            return Err(setting(
                "candidates",
                format!(
                    "--candidates {} is fewer than --group {}",
                    self.candidates, self.group
                ),
            ));
        }
        if self.batch_size == 0 || self.steps == 0 {
            return Err(setting(
                "steps",
                "--steps and --batch-size must be positive",
            ));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(setting("learning-rate", "must be positive"));
        }
        if !(self.pointwise_weight.is_finite() && self.pointwise_weight >= 0.0) {
            return Err(setting("pointwise-weight", "must be ≥ 0"));
        }
        if !(0.0..=1.0).contains(&self.teacher_weight) {
            return Err(setting("teacher-weight", "must be in [0, 1]"));
        }
        Ok(())
    }
}

/// One training question: its positives and hard negatives (document ids).
#[derive(Debug, Clone)]
struct Example {
    query: Query,
    positives: Vec<String>,
    negatives: Vec<String>,
}

/// Whether `doc` answers `q`: a judged-relevant passage where the set has
/// passage judgements, else one that contains a gold answer.
pub fn is_positive(q: &Query, doc: &Document) -> bool {
    if !q.qrels.is_empty() {
        return q.qrels.get(&doc.id).is_some_and(|&g| g > 0);
    }
    let text = doc.full_text();
    q.answers.iter().any(|a| contains_answer(&text, a))
}

/// Training examples: each question's first-stage top `candidates`, split
/// into positives (judged passages outside the top are added) and
/// negatives; questions without both are skipped.
fn mine(
    engine: &Engine,
    mode: SearchMode,
    questions: &[Query],
    docs: &HashMap<&str, &Document>,
    candidates: usize,
    progress: &dyn Progress,
) -> Result<(Vec<Example>, usize), TrainError> {
    let mut out = Vec::with_capacity(questions.len());
    let mut bar = progress.bar(questions.len() as u64, "candidates");
    for q in questions {
        let hits = block_on(engine.search_with(&q.text, candidates, mode, false))?;
        let mut positives = Vec::new();
        let mut negatives = Vec::new();
        for h in &hits {
            let Some(doc) = docs.get(h.id.as_str()) else {
                continue;
            };
            if is_positive(q, doc) {
                positives.push(h.id.clone());
            } else {
                negatives.push(h.id.clone());
            }
        }
        let mut judged: Vec<&String> = q
            .qrels
            .iter()
            .filter(|(id, g)| **g > 0 && docs.contains_key(id.as_str()))
            .map(|(id, _)| id)
            .collect();
        judged.sort();
        for id in judged {
            if !positives.contains(id) {
                positives.push(id.clone());
            }
        }
        if !positives.is_empty() && !negatives.is_empty() {
            out.push(Example {
                query: q.clone(),
                positives,
                negatives,
            });
        }
        bar.inc(1);
    }
    bar.finish();
    let skipped = questions.len() - out.len();
    Ok((out, skipped))
}

/// A cached teacher judgement.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CachedJudgement {
    question: String,
    passage: String,
    /// `None`: the teacher gave neither yes nor no.
    p_yes: Option<f64>,
}

/// The teacher and its cache of judgements (read at start, appended to as
/// judgements arrive, so a stopped run resumes without judging again).
struct Teacher {
    client: LlmClient,
    cache: JsonlCache<(String, String), Option<f64>>,
}

impl Teacher {
    fn open(config: &RerankerRunConfig, url: &str) -> Result<Self, TrainError> {
        let client = LlmClient::new(LlmConfig {
            base_url: url.to_owned(),
            model: config.teacher_model.clone(),
            timeout_ms: config.teacher_timeout_ms,
            ..LlmConfig::default()
        })?;
        let cache = JsonlCache::open(config.out.join(TEACHER_FILE), |j: CachedJudgement| {
            ((j.question, j.passage), j.p_yes)
        })?;
        Ok(Self { client, cache })
    }

    fn p_yes(&mut self, q: &Query, doc: &Document) -> Result<Option<f64>, TrainError> {
        let key = (q.id.clone(), doc.id.clone());
        if let Some(p) = self.cache.get(&key) {
            return Ok(p);
        }
        let p = self.client.passage_verdict(&q.text, &doc.full_text())?;
        let record = CachedJudgement {
            question: key.0.clone(),
            passage: key.1.clone(),
            p_yes: p,
        };
        self.cache.insert(key, p, &record)?;
        Ok(p)
    }
}

/// The reranker's loss on `logits` `[questions, group]` against soft
/// targets in [0, 1] of the same shape: listwise (cross-entropy of the
/// softmax over each group against the targets normalised to sum 1; rows
/// without a positive target are left out of it) plus `pointwise_weight` ×
/// binary cross-entropy of each logit against its target.
pub fn rerank_loss(logits: Tensor<2>, targets: &[Vec<f32>], pointwise_weight: f32) -> Tensor<1> {
    let [rows, group] = logits.dims();
    let device = logits.device();
    let flat: Vec<f32> = targets.iter().flatten().copied().collect();
    let listwise: Vec<f32> = targets
        .iter()
        .flat_map(|row| {
            let sum: f32 = row.iter().sum();
            row.iter()
                .map(move |t| if sum > 0.0 { t / sum } else { 0.0 })
        })
        .collect();
    let with_positive = targets
        .iter()
        .filter(|r| r.iter().sum::<f32>() > 0.0)
        .count()
        .max(1);
    let y = Tensor::<2>::from_data(TensorData::new(flat, [rows, group]), &device);
    let p = Tensor::<2>::from_data(TensorData::new(listwise, [rows, group]), &device);
    let list = (p * log_softmax(logits.clone(), 1))
        .sum()
        .neg()
        .div_scalar(with_positive as f32);
    let point = (y.clone() * log_sigmoid(logits.clone())
        + (y.neg().add_scalar(1.0)) * log_sigmoid(logits.neg()))
    .mean()
    .neg();
    list + point.mul_scalar(pointwise_weight)
}

/// The held-out metrics of the first stage with its top `rerank` re-scored
/// by `reranker` (`None`: the first stage alone).
fn evaluate(
    engine: &mut Engine,
    mode: SearchMode,
    reranker: Option<&Reranker>,
    rerank: usize,
    questions: &[Query],
    docs: &HashMap<&str, &Document>,
    progress: &dyn Progress,
) -> Result<Metrics, TrainError> {
    engine.set_reranker(reranker.cloned());
    let m = if reranker.is_some() { rerank } else { 0 };
    let engine = &*engine;
    let search = |q: &str, k: usize| -> Result<Vec<Hit>, rlrag_eval::EvalError> {
        Ok(block_on(engine.search_reranked(q, k, mode, false, m))?)
    };
    Ok(score_queries(search, questions, docs, 100, progress)?.0)
}

/// The Platt calibration of `encoder`'s logits on `examples` (questions
/// it never trained on): each question's positives and up to `per_question`
/// candidates in all; `None` without both classes.
fn calibrate(
    encoder: &Encoder,
    examples: &[Example],
    docs: &HashMap<&str, &Document>,
    per_question: usize,
) -> Result<Option<Calibration>, TrainError> {
    let mut pairs = Vec::new();
    for ex in examples {
        let ids: Vec<(&String, bool)> = ex
            .positives
            .iter()
            .map(|p| (p, true))
            .chain(ex.negatives.iter().map(|n| (n, false)))
            .take(per_question.max(ex.positives.len() + 1))
            .collect();
        let texts: Vec<String> = ids
            .iter()
            .map(|(id, _)| {
                docs.get(id.as_str())
                    .map(|d| d.full_text())
                    .unwrap_or_default()
            })
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let logits = encoder.score_pairs(&ex.query.text, &refs)?;
        pairs.extend(logits.into_iter().zip(ids.iter().map(|(_, y)| *y)));
    }
    Ok(Calibration::fit(&pairs))
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct RerankerRunReport {
    /// Steps trained.
    pub steps: usize,
    /// Seconds the steps took.
    pub seconds: f64,
    /// Training questions used (with a positive and a negative).
    pub train_questions: usize,
    /// Training questions skipped (no positive or no negative).
    pub skipped: usize,
    /// Teacher judgements made in this run (cached ones not counted).
    pub judged: usize,
    /// Held-out questions.
    pub eval_questions: usize,
    /// The first stage and the rerank depth, in words.
    pub searched_as: String,
    /// The first stage alone on the held-out questions.
    pub first_stage: Metrics,
    /// The first stage reranked by the trained model.
    pub reranked: Metrics,
    /// Mean milliseconds to rerank one held-out question (the final evaluation).
    pub rerank_ms: f64,
    /// The model directory written.
    pub out: PathBuf,
}

impl RerankerRunReport {
    /// The held-out table: first stage, reranked, change.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "trained {} steps in {:.0} s on {} questions ({} skipped: no positive or no negative); teacher judgements made: {}",
            self.steps, self.seconds, self.train_questions, self.skipped, self.judged
        );
        let _ = writeln!(
            out,
            "held-out {} questions ({}; {:.0} ms per question to rerank):",
            self.eval_questions, self.searched_as, self.rerank_ms
        );
        let _ = writeln!(out, "| metric         | first stage | reranked | change |");
        let _ = writeln!(out, "|----------------|-------------|----------|--------|");
        for (name, b) in &self.first_stage {
            let Some(a) = self.reranked.get(name) else {
                continue;
            };
            let _ = writeln!(
                out,
                "| {name:<14} | {b:>11.4} | {a:>8.4} | {:>+6.4} |",
                a - b
            );
        }
        out
    }
}

/// The model to train: a cross-encoder directory as it is, or a new
/// cross-encoder from another BERT model's directory.
fn initial_model(
    config: &RerankerRunConfig,
    device: &burn::tensor::Device,
) -> Result<(Encoder, Vec<u8>, PathBuf), TrainError> {
    let init = config.init.clone().unwrap_or_else(|| pretrained("minilm"));
    let files = ModelDir::read(&init)?;
    let base = ModelConfig::from_json(&files.config)?;
    let encoder = if matches!(base.rlrag.head, Head::CrossEncoder { .. }) {
        files.load(device)?
    } else {
        Encoder::new_cross_encoder(
            files.files(),
            CrossEncoderInit {
                layers: config.layers,
                max_length: config.max_length,
                max_question_tokens: config.max_question_tokens,
                seed: config.seed,
            },
            device,
        )?
    };
    Ok((encoder, files.tokenizer, init))
}

/// Run the training as `config` says; writes the model directory, its
/// checkpoints, `train.jsonl`, `teacher.jsonl` (with a teacher) and
/// `curve.svg` under `config.out`.
///
/// Long on purpose, as [`crate::retriever_run::run`]: the run's stages in
/// the order a reader checks them.
pub fn run(
    config: &RerankerRunConfig,
    progress: &dyn Progress,
) -> Result<RerankerRunReport, TrainError> {
    config.validate()?;
    let source = QuestionSource {
        data: &config.data,
        format: config.format,
        split: &config.split,
        holdout: config.holdout,
        eval_split: &config.eval_split,
        seed: config.seed,
        fold: config.fold,
    };
    let (ds, train_q, eval_q) = split_questions(&source, progress)?;
    let device = config.settings.device.device()?;
    let (mut encoder, tokenizer, init) = initial_model(config, &device.autodiff())?;
    let docs: HashMap<&str, &Document> = ds.corpus.iter().map(|d| (d.id.as_str(), d)).collect();
    let mode = config.retriever;
    let mut engine = retrievers::build(mode, &config.settings, &ds.corpus, progress)?;
    let (examples, skipped) = mine(&engine, mode, &train_q, &docs, config.candidates, progress)?;
    if examples.is_empty() {
        return Err(setting(
            "data",
            "no training question has both a positive and a negative among its candidates",
        ));
    }
    // A tenth of the questions (seeded) calibrate the reader's probability
    // after training and are never trained on.
    let mut examples = examples;
    SplitMix64::new(config.seed ^ 0x6361_6c69).shuffle(&mut examples);
    let calibration_set = examples.split_off(examples.len() - examples.len() / 10);
    let mut rng = SplitMix64::new(config.seed);
    let mut sample = eval_q.clone();
    if config.eval_questions > 0 && config.eval_questions < sample.len() {
        SplitMix64::new(config.seed ^ 0x6576_616c).shuffle(&mut sample);
        sample.truncate(config.eval_questions);
    }
    let searched_as = format!("{mode} top 100, top {} reranked", config.rerank);
    progress.note(&format!(
        "training on {} questions of {} ({} skipped, {} documents), evaluating on {} ({} during training); {searched_as}; device {}",
        examples.len(),
        ds.name,
        skipped,
        ds.corpus.len(),
        eval_q.len(),
        sample.len(),
        config.settings.device
    ));
    let first_stage = evaluate(&mut engine, mode, None, 0, &eval_q, &docs, progress)?;
    // The sample is every held-out question unless --eval-questions cut it.
    let first_sample = if sample.len() == eval_q.len() {
        first_stage.clone()
    } else {
        evaluate(&mut engine, mode, None, 0, &sample, &docs, progress)?
    };
    let (metric_name, first_value) = primary(&first_sample);

    std::fs::create_dir_all(&config.out).map_err(io_err(&config.out))?;
    let mut teacher = match &config.teacher {
        Some(url) => Some(Teacher::open(config, url)?),
        None => None,
    };
    let log_path = config.out.join("train.jsonl");
    let mut log =
        std::io::BufWriter::new(std::fs::File::create(&log_path).map_err(io_err(&log_path))?);
    let mut log_line = |line: String| -> Result<(), TrainError> {
        writeln!(log, "{line}")
            .and_then(|()| log.flush())
            .map_err(io_err(&log_path))
    };
    let mut manifest = json!({
        "format_version": 1,
        "model_kind": "cross_encoder",
        "init": init.display().to_string(),
        "data": {"path": config.data.display().to_string(), "dataset": ds.name, "split": ds.split,
                 "train_questions": examples.len(), "eval_questions": eval_q.len(), "holdout": config.holdout,
                 "fold": config.fold.map(|f| format!("{}/{}", f.index, f.count))},
        "first_stage": mode.name(),
        "config": {
            "candidates": config.candidates, "group": config.group, "batch_size": config.batch_size,
            "steps": config.steps, "learning_rate": config.learning_rate,
            "pointwise_weight": config.pointwise_weight, "rerank": config.rerank, "seed": config.seed,
            "teacher": config.teacher, "teacher_model": config.teacher.as_ref().map(|_| &config.teacher_model),
            "teacher_weight": config.teacher.as_ref().map(|_| config.teacher_weight),
        },
    });
    log_line(json!({"step": 0, "eval_first_stage": first_sample}).to_string())?;

    let mut optim = AdamWConfig::new()
        .with_weight_decay(0.01)
        .with_grad_clipping(Some(GradientClippingConfig::Norm(1.0)))
        .init();
    let warmup = (config.steps / 10).max(1);
    let eval_every = config.eval_every.unwrap_or((config.steps / 4).max(1));
    let mut order: Vec<usize> = Vec::new();
    let mut cursor = 0usize;
    let mut losses = Vec::new();
    let mut held_out = vec![(0usize, first_value)];
    let started = Instant::now();
    let mut bar = progress.bar(config.steps as u64, "training");
    let mut running = None::<f64>;
    for step in 1..=config.steps {
        // The step's questions: a seeded order, reshuffled every epoch.
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut targets: Vec<Vec<f32>> = Vec::new();
        for _ in 0..config.batch_size.min(examples.len()) {
            if cursor >= order.len() {
                order = (0..examples.len()).collect();
                rng.shuffle(&mut order);
                cursor = 0;
            }
            let ex = &examples[order[cursor]];
            cursor += 1;
            let pos = &ex.positives[(rng.next_u64() % ex.positives.len() as u64) as usize];
            let mut negs = ex.negatives.clone();
            rng.shuffle(&mut negs);
            let mut group = vec![(pos.clone(), 1.0f32)];
            let need = config.group - 1;
            group.extend(negs.into_iter().cycle().take(need).map(|n| (n, 0.0)));
            let mut row = Vec::with_capacity(group.len());
            for (id, label) in group {
                let Some(doc) = docs.get(id.as_str()) else {
                    continue;
                };
                let target = match teacher.as_mut() {
                    Some(t) => match t.p_yes(&ex.query, doc)? {
                        Some(p) => {
                            (1.0 - config.teacher_weight) * label + config.teacher_weight * p as f32
                        }
                        None => label,
                    },
                    None => label,
                };
                pairs.push((ex.query.text.clone(), doc.full_text()));
                row.push(target);
            }
            targets.push(row);
        }
        if targets.iter().any(|r| r.len() != config.group) {
            return Err(setting(
                "data",
                "a candidate passage is missing from the corpus",
            ));
        }
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(q, p)| (q.as_str(), p.as_str()))
            .collect();
        let logits = encoder
            .pair_logits(&refs)?
            .reshape([targets.len(), config.group]);
        let loss = rerank_loss(logits, &targets, config.pointwise_weight);
        let value = f64::from(
            loss.clone()
                .try_into_scalar::<f32>()
                .map_err(|e| setting("device", format!("{e:?}")))?,
        );
        if !value.is_finite() {
            return Err(setting(
                "learning-rate",
                format!("the loss became {value} at step {step}"),
            ));
        }
        let grads = loss.backward();
        let model = encoder.model().clone();
        let grads = GradientsParams::from_grads(grads, &model);
        let lr = config.learning_rate * (step.min(warmup) as f64 / warmup as f64);
        let model = optim.step(lr, model, grads);
        encoder = encoder.with_model(model);
        losses.push((step, value));
        running = Some(running.map_or(value, |x| 0.9 * x + 0.1 * value));
        let mut line = json!({"step": step, "loss": value, "lr": lr});
        if eval_every > 0 && (step % eval_every == 0 || step == config.steps) {
            let reranker = Reranker::new(Arc::new(encoder.valid()))?;
            let m = evaluate(
                &mut engine,
                mode,
                Some(&reranker),
                config.rerank,
                &sample,
                &docs,
                progress,
            )?;
            held_out.push((step, primary(&m).1));
            line["eval"] = serde_json::to_value(&m)?;
            manifest["steps"] = json!(step);
            save_model(
                &config.out.join("checkpoints").join(format!("step-{step}")),
                reranker.encoder(),
                &tokenizer,
                &manifest,
            )?;
        }
        log_line(line.to_string())?;
        bar.set_message(format!("loss {:.3}", running.unwrap_or(0.0)));
        bar.inc(1);
    }
    bar.finish();
    let seconds = started.elapsed().as_secs_f64();
    let reranker = Reranker::new(Arc::new(encoder.valid()))?;
    let t = Instant::now();
    let reranked = evaluate(
        &mut engine,
        mode,
        Some(&reranker),
        config.rerank,
        &eval_q,
        &docs,
        progress,
    )?;
    let rerank_ms = t.elapsed().as_secs_f64() * 1e3 / eval_q.len().max(1) as f64;
    let calibration = calibrate(
        reranker.encoder(),
        &calibration_set,
        &docs,
        2 * config.group,
    )?;
    let encoder = Arc::new(
        reranker
            .encoder()
            .as_ref()
            .valid()
            .with_calibration(calibration),
    );
    let reranker = Reranker::new(encoder)?;
    manifest["steps"] = json!(config.steps);
    manifest["seconds"] = json!(seconds);
    manifest["metrics"] =
        json!({"first_stage": first_stage, "reranked": reranked, "rerank_ms": rerank_ms});
    save_model(&config.out, reranker.encoder(), &tokenizer, &manifest)?;
    let svg_path = config.out.join("curve.svg");
    let held_name = format!("held-out {metric_name}, reranked");
    let chart = step_curve(("loss (per step)", &losses), (&held_name, &held_out));
    std::fs::write(&svg_path, chart.to_svg()).map_err(io_err(&svg_path))?;
    let judged = teacher.as_ref().map_or(0, |t| t.cache.made);
    Ok(RerankerRunReport {
        steps: config.steps,
        seconds,
        train_questions: examples.len(),
        skipped,
        judged,
        eval_questions: eval_q.len(),
        searched_as,
        first_stage,
        reranked,
        rerank_ms,
        out: config.out.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loss_of(logits: Vec<f32>, rows: usize, targets: &[Vec<f32>], w: f32) -> f32 {
        let group = logits.len() / rows;
        let t = Tensor::<2>::from_data(
            TensorData::new(logits, [rows, group]),
            &burn::tensor::Device::flex(),
        );
        rerank_loss(t, targets, w)
            .try_into_scalar::<f32>()
            .expect("scalar")
    }

    #[test]
    fn the_loss_is_listwise_cross_entropy_plus_weighted_binary_cross_entropy() {
        let list = (2f32.exp() + 2.0).ln() - 2.0;
        let point = ((1.0 + (-2f32).exp()).ln() + 2.0 * 2f32.ln()) / 3.0;
        let got = loss_of(vec![2.0, 0.0, 0.0], 1, &[vec![1.0, 0.0, 0.0]], 0.0);
        assert!((got - list).abs() < 1e-5, "{got} vs {list}");
        let got = loss_of(vec![2.0, 0.0, 0.0], 1, &[vec![1.0, 0.0, 0.0]], 0.5);
        assert!((got - (list + 0.5 * point)).abs() < 1e-5, "{got}");
        // Soft targets are normalised per row; a row without a positive
        // target only enters the pointwise term.
        let soft = loss_of(vec![0.0, 0.0], 1, &[vec![0.5, 0.5]], 0.0);
        assert!((soft - 2f32.ln()).abs() < 1e-5, "{soft}");
        let rows = loss_of(
            vec![2.0, 0.0, 0.0, 5.0, 5.0, 5.0],
            2,
            &[vec![1.0, 0.0, 0.0], vec![0.0, 0.0, 0.0]],
            0.0,
        );
        assert!((rows - list).abs() < 1e-5, "{rows}");
        // Ranking the positive first lowers the loss.
        let worse = loss_of(vec![0.0, 2.0, 0.0], 1, &[vec![1.0, 0.0, 0.0]], 1.0);
        let better = loss_of(vec![2.0, 0.0, 0.0], 1, &[vec![1.0, 0.0, 0.0]], 1.0);
        assert!(better < worse);
    }

    #[test]
    fn positives_come_from_judgements_where_a_set_has_them_else_answers() {
        let doc = Document::new("d1", "Paris", "Paris is the capital of France.");
        let other = Document::new("d2", "Lyon", "Lyon is a city in France.");
        let mut q = Query {
            id: "q".into(),
            text: "capital of France?".into(),
            answers: vec!["Paris".into()],
            qrels: Default::default(),
        };
        assert!(is_positive(&q, &doc) && !is_positive(&q, &other));
        q.qrels.insert("d2".into(), 1);
        assert!(!is_positive(&q, &doc) && is_positive(&q, &other));
        q.qrels.insert("d2".into(), 0);
        assert!(!is_positive(&q, &other));
    }
}
