//! Reinforced-IR self-boosting (`trainer self-boost`, arXiv 2502.11562):
//! the retrievers adapt to a corpus with no labels, a generator alone
//! teaching them, in rounds.
//!
//! Each round:
//! 1. **Synthetic queries.** The generator writes one query for each of a
//!    fresh seeded sample of passages (temperature 0.5), cached in
//!    `queries.jsonl` (resumable); queries that copy the prompt's examples
//!    and duplicates are dropped. Before the first
//!    round, queries for `probe_queries` other passages are written once and
//!    kept apart: the synthetic-query metric (MRR@10 of the source passage),
//!    never trained on, the same set in every round.
//! 2. **Round-trip filter.** A query is kept for a retriever only when that
//!    retriever, as it is at the round's start, finds its source passage in
//!    the top `round_trip_k`.
//! 3. **RLGF.** Candidates are the source passage plus hard negatives
//!    sampled from ranks `negative_from..negative_to` of the current
//!    retriever; the teacher scores them (the generator's query likelihood
//!    given the passage, its P("yes"), or a cross-encoder), cached in
//!    `teacher.jsonl`; the retriever learns the contrastive loss (source
//!    positive, candidates and in-batch passages negative) plus the
//!    listwise KL to the teacher's order. Learned-sparse and dense models
//!    both learn, both sides.
//! 4. **RLRF.** For some training queries the generator samples
//!    hypothetical documents (HyDE; temperature 0.9, top-p 0.9); each
//!    augmented query `0.8·e(q) + 0.2·e(h)` is scored against the source
//!    passage by the current retriever; the best and worst become a DPO
//!    pair when the best beats the raw query and
//!    `(best − 0.8·raw)·γ ≥ (worst − 0.8·raw)` (Reinforced-IR's filter),
//!    written to `dpo-round-N.jsonl` for the generator's training.
//! 5. **Report.** Every model is evaluated on the set's labelled split
//!    (labels only score, never train), alone and fused with BM25, and on
//!    the held-out synthetic queries; the model directories are written.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use futures_lite::future::block_on;
use rlrag_eval::augment::{Hypotheticals, Sampling};
use rlrag_eval::cache::JsonlCache;
use rlrag_eval::datasets;
use rlrag_eval::device::DeviceChoice;
use rlrag_eval::models::{SparseOverrides, load_encoder, save_model};
use rlrag_eval::progress::Progress;
use rlrag_eval::retrieval::score_queries;
use rlrag_retriever::hash::{fnv1a_str, seed_from};
use rlrag_retriever::rng::SplitMix64;
use rlrag_retriever::{Bm25Index, DatasetFormat, Document, Hit, Query, Reranker, Split};
use rlrag_reward::retrieval::{Qrels, mrr_at_k, recall_at_k};
use rlrag_router::llm::{LlmClient, LlmConfig, QueryPrompt};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::loss::Role;
use crate::reranker_run::{io_err, setting};
use crate::retriever_run::{
    Metrics, ModelKind, bm25_metrics, fused_with_bm25, load_trainable, primary,
};
use crate::{PolicySearch, R3Config, R3Trainer, TrainError};

/// The synthetic queries' cache in the output directory.
pub const QUERIES_FILE: &str = "queries.jsonl";
/// The teacher's scores' cache in the output directory.
pub const TEACHER_FILE: &str = "teacher.jsonl";
/// The hypothetical documents' cache in the output directory.
pub const HYDE_FILE: &str = "hyde.jsonl";
/// The query examples the caches were written with.
pub const EXAMPLES_FILE: &str = "query-examples.json";
/// Weight of the raw query in an augmented query (Reinforced-IR: 0.8).
pub const RAW_WEIGHT: f32 = 0.8;

/// Which retrievers self-boost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum BoostTarget {
    /// The learned-sparse model.
    Sparse,
    /// The dense model.
    Dense,
    /// Both, each from the same synthetic queries.
    Both,
}

impl BoostTarget {
    fn models(self) -> Vec<ModelKind> {
        match self {
            Self::Sparse => vec![ModelKind::Sparse],
            Self::Dense => vec![ModelKind::Dense],
            Self::Both => vec![ModelKind::Sparse, ModelKind::Dense],
        }
    }
}

/// Who orders the candidates in RLGF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum TeacherKind {
    /// No teacher: the source passage against the mined negatives only.
    None,
    /// The generator's mean log-probability of the query given the passage
    /// (UPR); one forward pass per candidate.
    Likelihood,
    /// The generator's P("yes") that the passage answers the query.
    Judge,
    /// A cross-encoder (`--teacher-reranker`, from `train-reranker`).
    Reranker,
}

impl TeacherKind {
    /// The teacher's softmax temperature without `--teacher-temperature`:
    /// mean per-token log-likelihoods differ by fractions of a nat between
    /// passages, so they are sharpened (0.2); logits are used as they are.
    fn default_temperature(self) -> f32 {
        match self {
            Self::Likelihood => 0.2,
            Self::None | Self::Judge | Self::Reranker => 1.0,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Likelihood => "likelihood",
            Self::Judge => "judge",
            Self::Reranker => "reranker",
        }
    }
}

/// A self-boosting run.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct SelfBoostConfig {
    /// Dataset: its corpus trains; its questions only score the report.
    #[cfg_attr(feature = "clap", arg(long))]
    pub data: PathBuf,
    /// Dataset format; detected from the path when omitted.
    #[cfg_attr(feature = "clap", arg(long))]
    pub format: Option<DatasetFormat>,
    /// Labelled split the report scores (never trained on).
    #[cfg_attr(feature = "clap", arg(long, default_value = "test"))]
    pub eval_split: Split,
    /// Output directory: models per round, caches, log, report, curve.
    #[cfg_attr(feature = "clap", arg(long))]
    pub out: PathBuf,
    /// The generator: base URL of an OpenAI-compatible API with
    /// `/completions` (scripts/llm-server.sh serves one), or
    /// `local:<file.gguf>` for a model in this process.
    #[cfg_attr(feature = "clap", arg(long))]
    pub generator: String,
    /// The generator's model name, sent with requests.
    #[cfg_attr(feature = "clap", arg(long, default_value = "smollm2-135m-instruct"))]
    pub generator_model: String,
    /// Per-request timeout in milliseconds.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 60_000))]
    pub generator_timeout_ms: u64,
    /// The retrievers that learn.
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value_t = BoostTarget::Both))]
    pub retriever: BoostTarget,
    /// Learned-sparse model to start from (default: pretrained SPLADE-tiny).
    #[cfg_attr(feature = "clap", arg(long))]
    pub sparse_init: Option<PathBuf>,
    /// Dense model to start from (default: pretrained all-MiniLM-L6-v2).
    #[cfg_attr(feature = "clap", arg(long))]
    pub dense_init: Option<PathBuf>,
    /// Self-boosting rounds.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 3))]
    pub rounds: usize,
    /// Passages that get a synthetic query in each round (a fresh sample per round).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 200))]
    pub queries: usize,
    /// Passages whose queries are held out for the synthetic-query metric.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 50))]
    pub probe_queries: usize,
    /// Sampling temperature of query writing.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.5))]
    pub query_temperature: f32,
    /// Few-shot examples of the queries your users type, JSONL
    /// `{"passage": …, "query": …}` per line (1 to 8; passages like your
    /// corpus's, not from it); default: two generic questions. The query
    /// writer and the likelihood teacher both read them.
    #[cfg_attr(feature = "clap", arg(long))]
    pub query_examples: Option<PathBuf>,
    /// Round-trip filter: the source passage must be in this many top hits.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 20))]
    pub round_trip_k: usize,
    /// Hard negatives per query.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 7))]
    pub negatives: usize,
    /// Hard negatives come from ranks `negative_from..negative_to` (0-based).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 30))]
    pub negative_from: usize,
    /// See `--negative-from`.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 200))]
    pub negative_to: usize,
    /// Who orders the candidates.
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value_t = TeacherKind::Likelihood))]
    pub teacher: TeacherKind,
    /// The cross-encoder of `--teacher reranker`.
    #[cfg_attr(feature = "clap", arg(long))]
    pub teacher_reranker: Option<PathBuf>,
    /// The teacher's softmax temperature (default 0.2 for likelihood, else 1).
    #[cfg_attr(feature = "clap", arg(long))]
    pub teacher_temperature: Option<f32>,
    /// Weight of the listwise distillation beside the contrastive loss.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1.0))]
    pub distill_weight: f32,
    /// Passes over a round's training queries.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1))]
    pub epochs: usize,
    /// Queries per step.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 8))]
    pub batch_size: usize,
    /// AdamW learning rate.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 5e-5))]
    pub learning_rate: f64,
    /// Passage tokens in the training forward pass.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 128))]
    pub max_passage_tokens: usize,
    /// RLRF: training queries per round that get hypothetical documents (0: off).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 16))]
    pub hyde_queries: usize,
    /// RLRF: hypothetical documents sampled per query.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 5))]
    pub hypotheticals: usize,
    /// RLRF: most tokens of a hypothetical document (Reinforced-IR: 300).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 128))]
    pub hyde_max_tokens: u32,
    /// RLRF: the pair filter's γ.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.95))]
    pub gamma: f32,
    /// Seed of the passage samples, negatives, batches and generation.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 42))]
    pub seed: u64,
    /// Where training runs: cpu, wgpu or cuda[:N].
    #[cfg_attr(feature = "clap", arg(long, default_value = "cpu"))]
    pub device: DeviceChoice,
}

impl SelfBoostConfig {
    fn validate(&self) -> Result<(), TrainError> {
        if self.rounds == 0 || self.queries == 0 || self.batch_size == 0 || self.epochs == 0 {
            return Err(setting(
                "rounds",
                "rounds, queries, epochs and batch size must be >= 1",
            ));
        }
        if self.negative_from >= self.negative_to {
            return Err(setting(
                "negative-from",
                format!(
                    "ranks {}..{} are empty",
                    self.negative_from, self.negative_to
                ),
            ));
        }
        if self.round_trip_k == 0 {
            return Err(setting("round-trip-k", "must be >= 1"));
        }
        if self.teacher == TeacherKind::Reranker && self.teacher_reranker.is_none() {
            return Err(setting(
                "teacher-reranker",
                "--teacher reranker needs --teacher-reranker <model dir>",
            ));
        }
        if !(self.distill_weight.is_finite() && self.distill_weight >= 0.0) {
            return Err(setting("distill-weight", "must be finite and >= 0"));
        }
        if !(0.0..=1.0).contains(&self.gamma) {
            return Err(setting("gamma", "must be in [0, 1]"));
        }
        if let Some(t) = self.teacher_temperature
            && !(t.is_finite() && t > 0.0)
        {
            return Err(setting("teacher-temperature", "must be finite and > 0"));
        }
        Ok(())
    }
}

/// A query the generator wrote for a passage (a line of `queries.jsonl`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyntheticQuery {
    /// The source passage.
    pub doc: String,
    /// The query; `None` when the generator wrote nothing usable.
    pub query: Option<String>,
}

/// A cached teacher score (a line of `teacher.jsonl`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TeacherScore {
    teacher: String,
    query: String,
    doc: String,
    score: Option<f32>,
}

/// The teacher of RLGF with its cache.
struct Teacher {
    kind: TeacherKind,
    prompt: QueryPrompt,
    reranker: Option<Reranker>,
    cache: JsonlCache<(String, String), Option<f32>>,
}

impl Teacher {
    /// Scores (logits; higher is better) of `docs` for `query`; `None`
    /// where the teacher has no opinion.
    fn scores(
        &mut self,
        client: &LlmClient,
        query: &str,
        docs: &[&Document],
    ) -> Result<Vec<Option<f32>>, TrainError> {
        let mut out = Vec::with_capacity(docs.len());
        if let Some(reranker) = &self.reranker {
            let texts: Vec<String> = docs.iter().map(|d| d.full_text()).collect();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let logits = block_on(reranker.logits(query, &refs))?;
            return Ok(logits
                .into_iter()
                .map(|l| l.is_finite().then_some(l))
                .collect());
        }
        for d in docs {
            let key = (query.to_owned(), d.id.clone());
            if let Some(s) = self.cache.get(&key) {
                out.push(s);
                continue;
            }
            let text = d.full_text();
            let score = match self.kind {
                TeacherKind::Likelihood => client
                    .query_likelihood(&self.prompt, query, &text)?
                    .map(|x| x as f32),
                TeacherKind::Judge => client.passage_verdict(query, &text)?.map(|p| {
                    let p = p.clamp(1e-4, 1.0 - 1e-4);
                    (p / (1.0 - p)).ln() as f32
                }),
                TeacherKind::None | TeacherKind::Reranker => None,
            };
            let record = TeacherScore {
                teacher: self.kind.name().into(),
                query: key.0.clone(),
                doc: key.1.clone(),
                score,
            };
            self.cache.insert(key, score, &record)?;
            out.push(score);
        }
        Ok(out)
    }
}

/// A query's text for duplicate detection: lower case, words of letters
/// and digits only.
pub fn dedup_key(query: &str) -> String {
    query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The queries kept from `written`: usable, and the first of each
/// duplicate (by [`dedup_key`]; `seen` spans rounds).
pub fn deduplicate(
    written: &[SyntheticQuery],
    seen: &mut BTreeSet<String>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for s in written {
        let Some(q) = &s.query else { continue };
        if seen.insert(dedup_key(q)) {
            out.push((s.doc.clone(), q.clone()));
        }
    }
    out
}

/// Hard negatives for a query: `n` ids sampled without replacement from
/// `hits[from..to]`, never the source.
pub fn sample_negatives(
    hits: &[Hit],
    source: &str,
    from: usize,
    to: usize,
    n: usize,
    rng: &mut SplitMix64,
) -> Vec<String> {
    let mut pool: Vec<&str> = hits
        .iter()
        .take(to)
        .skip(from)
        .map(|h| h.id.as_str())
        .filter(|id| *id != source)
        .collect();
    rng.shuffle(&mut pool);
    pool.into_iter().take(n).map(str::to_owned).collect()
}

/// RLRF's choice among the scores of augmented queries: (best, worst)
/// indices when the best beats the raw query and the pair is far enough
/// apart (`(best − w·raw)·γ ≥ (worst − w·raw)`, w = [`RAW_WEIGHT`]).
pub fn preference_pair(raw: f32, augmented: &[f32], gamma: f32) -> Option<(usize, usize)> {
    let finite = |i: &usize| augmented[*i].is_finite();
    let best = (0..augmented.len())
        .filter(finite)
        .max_by(|&a, &b| augmented[a].total_cmp(&augmented[b]))?;
    let worst = (0..augmented.len())
        .filter(finite)
        .min_by(|&a, &b| augmented[a].total_cmp(&augmented[b]))?;
    let (b, w) = (augmented[best], augmented[worst]);
    let base = RAW_WEIGHT * raw;
    (best != worst && b > raw && (b - base) * gamma >= w - base).then_some((best, worst))
}

/// One model that self-boosts.
struct Student {
    kind: ModelKind,
    trainer: R3Trainer,
    tokenizer: Vec<u8>,
    init: PathBuf,
}

impl Student {
    fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// The retriever's score of `passage` for each text (a query, or a
    /// hypothetical document), with the current weights.
    fn similarity(&self, texts: &[&str], passage: &str) -> Result<Vec<f32>, TrainError> {
        let enc = self.trainer.inference_encoder();
        let mut all: Vec<&str> = texts.to_vec();
        all.push(passage);
        if enc.sparse_settings().is_some() {
            let mut v = enc.encode_sparse(&all)?;
            let p = v.pop().unwrap_or_default();
            return Ok(v.iter().map(|x| x.dot(&p)).collect());
        }
        let mut v = enc.encode_dense(&all)?;
        let p = v.pop().unwrap_or_default();
        Ok(v.iter()
            .map(|x| x.iter().zip(&p).map(|(a, b)| a * b).sum())
            .collect())
    }
}

/// One round's row of the report, per model.
#[derive(Debug, Clone, Serialize)]
pub struct RoundRow {
    /// 0 for the starting model.
    pub round: usize,
    /// `sparse` or `dense`.
    pub model: &'static str,
    /// Labelled-split metrics of the model alone.
    pub alone: Metrics,
    /// Labelled-split metrics of the model fused with BM25.
    pub with_bm25: Metrics,
    /// Held-out synthetic queries: MRR@10 and recall@10 of the source.
    pub synthetic: Metrics,
    /// Training queries after the round-trip filter (0 in round 0).
    pub trained_queries: usize,
    /// MRR@10 of the source passage over the round's training queries,
    /// before and after the round (the fit; the probe is the held-out check).
    pub train_mrr: Option<(f64, f64)>,
    /// Optimizer steps of the round.
    pub steps: usize,
    /// Mean loss over the round's steps.
    pub mean_loss: Option<f64>,
    /// DPO pairs written by the round.
    pub dpo_pairs: usize,
    /// Seconds the round took (generation, teaching, training, evaluation).
    pub seconds: f64,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct SelfBoostReport {
    /// The labelled split's questions.
    pub eval_questions: usize,
    /// BM25 on them.
    pub bm25: Metrics,
    /// A row per model and round.
    pub rows: Vec<RoundRow>,
    /// Synthetic queries written (cache hits included) and kept.
    pub queries_written: usize,
    /// Usable and distinct ones.
    pub queries_kept: usize,
    /// Teacher scores made in this run (not from the cache).
    pub teacher_calls: usize,
    /// The output directory.
    pub out: PathBuf,
}

impl SelfBoostReport {
    /// The per-round table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let (name, bm25) = primary(&self.bm25);
        let _ = writeln!(
            out,
            "{} labelled questions (scoring only); BM25 {name} {bm25:.4}; synthetic queries: {} written, {} distinct; teacher calls this run: {}",
            self.eval_questions, self.queries_written, self.queries_kept, self.teacher_calls
        );
        let _ = writeln!(
            out,
            "| round | model  | {name:<9} | + BM25  | change | probe MRR@10 | train MRR@10 | trained q | steps | loss   | DPO pairs | s      |"
        );
        let _ = writeln!(
            out,
            "|-------|--------|-----------|---------|--------|--------------|--------------|-----------|-------|--------|-----------|--------|"
        );
        for r in &self.rows {
            let start = self
                .rows
                .iter()
                .find(|s| s.round == 0 && s.model == r.model)
                .map_or(f64::NAN, |s| primary(&s.alone).1);
            let alone = primary(&r.alone).1;
            let change = if start > 0.0 {
                (alone / start - 1.0) * 100.0
            } else {
                0.0
            };
            let _ = writeln!(
                out,
                "| {:>5} | {:<6} | {alone:>9.4} | {:>7.4} | {change:>+5.1}% | {:>12.4} | {:>12} | {:>9} | {:>5} | {:>6} | {:>9} | {:>6.0} |",
                r.round,
                r.model,
                primary(&r.with_bm25).1,
                r.synthetic.get("mrr@10").copied().unwrap_or(f64::NAN),
                r.train_mrr
                    .map_or("-".into(), |(b, a)| format!("{b:.3}→{a:.3}")),
                r.trained_queries,
                r.steps,
                r.mean_loss.map_or("-".into(), |l| format!("{l:.3}")),
                r.dpo_pairs,
                r.seconds
            );
        }
        out
    }
}

/// Run self-boosting as `config` says.
///
/// Long on purpose: the rounds' stages in the order the module's doc lists
/// them, threading the caches, the log and the report through each.
pub fn run(
    config: &SelfBoostConfig,
    progress: &dyn Progress,
) -> Result<SelfBoostReport, TrainError> {
    config.validate()?;
    let ds = datasets::load(&config.data, config.format, Some(&config.eval_split))?;
    for w in ds.report.warnings() {
        progress.note(&format!("warning: {w}"));
    }
    let eval_q: Vec<Query> = ds
        .queries
        .iter()
        .filter(|q| !q.qrels.is_empty() || !q.answers.is_empty())
        .cloned()
        .collect();
    if eval_q.is_empty() {
        return Err(setting(
            "eval-split",
            format!("split `{}` has no labelled questions to score", ds.split),
        ));
    }
    let corpus = &ds.corpus;
    let by_id: HashMap<&str, &Document> = corpus.iter().map(|d| (d.id.as_str(), d)).collect();
    let prompt = match &config.query_examples {
        Some(path) => {
            QueryPrompt::from_jsonl(&std::fs::read_to_string(path).map_err(io_err(path))?)?
        }
        None => QueryPrompt::default(),
    };
    std::fs::create_dir_all(&config.out).map_err(io_err(&config.out))?;
    check_examples(&config.out, &prompt)?;

    let client = LlmClient::new(LlmConfig {
        base_url: config.generator.clone(),
        model: config.generator_model.clone(),
        timeout_ms: config.generator_timeout_ms,
        ..LlmConfig::default()
    })?;
    let mut queries_cache: JsonlCache<String, Option<String>> =
        JsonlCache::open(config.out.join(QUERIES_FILE), |s: SyntheticQuery| {
            (s.doc, s.query)
        })?;
    let teacher_kind = config.teacher;
    let mut teacher = Teacher {
        kind: teacher_kind,
        prompt: prompt.clone(),
        reranker: match (&config.teacher_reranker, teacher_kind) {
            (Some(dir), TeacherKind::Reranker) => Some(Reranker::new(
                load_encoder(
                    dir,
                    SparseOverrides::default(),
                    false,
                    &burn::tensor::Device::flex(),
                )?
                .encoder,
            )?),
            _ => None,
        },
        cache: JsonlCache::open(config.out.join(TEACHER_FILE), move |s: TeacherScore| {
            ((s.query, s.doc), s.score)
        })?,
    };
    let mut hypotheticals = Hypotheticals::open(
        config.out.join(HYDE_FILE),
        Some(client.clone()),
        Sampling {
            temperature: 0.9,
            top_p: 0.9,
            max_tokens: config.hyde_max_tokens,
            seed: config.seed,
        },
    )?;
    let teacher_temperature = config
        .teacher_temperature
        .unwrap_or(teacher_kind.default_temperature());

    // The passages that get queries, a fresh slice per round; the probe's
    // first (before any model is loaded: a generator that fails, fails early).
    let mut order: Vec<&Document> = corpus.iter().collect();
    SplitMix64::new(seed_from(&[config.seed, 0x7175_6572])).shuffle(&mut order);
    // The probe: queries of the first passages, held out in every round.
    let probe_docs: Vec<&Document> = order.iter().take(config.probe_queries).copied().collect();
    let probe_written = write_queries(
        config,
        &client,
        &prompt,
        &mut queries_cache,
        &probe_docs,
        progress,
    )?;
    let mut seen = BTreeSet::new();
    let held = deduplicate(&probe_written, &mut seen);
    let mut written = probe_written.len();
    let mut kept = held.len();
    // The students, each with its own index of the corpus.
    let device = config.device.device()?.autodiff();
    let mut students = Vec::new();
    for kind in config.retriever.models() {
        let init = match kind {
            ModelKind::Sparse => config.sparse_init.clone(),
            ModelKind::Dense => config.dense_init.clone(),
        }
        .unwrap_or_else(|| kind.pretrained());
        let (encoder, tokenizer) =
            load_trainable(kind, &init, SparseOverrides::default(), &device)?;
        progress.note(&format!(
            "{kind:?}: embedding {} passages with {}",
            corpus.len(),
            init.display()
        ));
        let r3 = R3Config {
            k: config.round_trip_k.max(config.negative_to),
            temperature: kind.default_temperature(),
            learning_rate: config.learning_rate,
            batch_size: config.batch_size,
            max_passage_tokens: config.max_passage_tokens,
            seed: config.seed,
            doc_side: crate::DocSide::Model,
            search: PolicySearch::Index,
            ..R3Config::default()
        };
        students.push(Student {
            kind,
            trainer: R3Trainer::new(encoder, corpus, r3)?,
            tokenizer,
            init,
        });
    }

    let (bm25, bm25_metrics) = bm25_metrics(corpus, &eval_q, &by_id, progress)?;

    let mut rows = Vec::new();
    let log_path = config.out.join("rounds.jsonl");
    let mut log =
        std::io::BufWriter::new(std::fs::File::create(&log_path).map_err(io_err(&log_path))?);
    let started = Instant::now();
    for student in &students {
        let row = RoundRow {
            seconds: started.elapsed().as_secs_f64(),
            ..evaluate_round(0, student, &bm25, &eval_q, &by_id, &held, progress)?
        };
        writeln!(log, "{}", serde_json::to_string(&row)?)
            .and_then(|()| log.flush())
            .map_err(io_err(&log_path))?;
        rows.push(row);
    }
    for round in 1..=config.rounds {
        let round_started = Instant::now();
        // 1. Synthetic queries for this round's passages.
        let slice: Vec<&Document> = order
            .iter()
            .skip(config.probe_queries + (round - 1) * config.queries)
            .take(config.queries)
            .copied()
            .collect();
        if slice.is_empty() {
            progress.note(&format!("round {round}: no passages left for new queries"));
        }
        let batch_written = write_queries(
            config,
            &client,
            &prompt,
            &mut queries_cache,
            &slice,
            progress,
        )?;
        written += batch_written.len();
        let train = deduplicate(&batch_written, &mut seen);
        kept += train.len();

        for (si, student) in students.iter_mut().enumerate() {
            // 2. Round trip and mining with the round's starting weights.
            let mut rng = SplitMix64::new(seed_from(&[config.seed, round as u64, si as u64]));
            let mut examples: Vec<(String, String, Vec<String>)> = Vec::new();
            let mut mrr_before = 0.0;
            for (doc, q) in &train {
                let hits = student.trainer.search(q, config.negative_to)?;
                let found = hits.iter().take(config.round_trip_k).any(|h| h.id == *doc);
                if !found {
                    continue;
                }
                mrr_before += source_mrr(&hits, doc);
                let negatives = sample_negatives(
                    &hits,
                    doc,
                    config.negative_from,
                    config.negative_to,
                    config.negatives,
                    &mut rng,
                );
                examples.push((doc.clone(), q.clone(), negatives));
            }
            // 3. RLGF: teacher scores, then the steps.
            let mut teacher_logits: Vec<Vec<Option<f32>>> = Vec::with_capacity(examples.len());
            if teacher_kind != TeacherKind::None && config.distill_weight > 0.0 {
                let mut bar = progress.bar(examples.len() as u64, "teacher");
                for (doc, q, negatives) in &examples {
                    let docs: Vec<&Document> = std::iter::once(doc)
                        .chain(negatives)
                        .filter_map(|id| by_id.get(id.as_str()).copied())
                        .collect();
                    teacher_logits.push(teacher.scores(&client, q, &docs)?);
                    bar.inc(1);
                }
                bar.finish();
            }
            let mut index: Vec<usize> = (0..examples.len()).collect();
            let mut losses = Vec::new();
            let steps_total = config.epochs * examples.len().div_ceil(config.batch_size);
            let mut bar = progress.bar(steps_total as u64, "training");
            for _ in 0..config.epochs {
                rng.shuffle(&mut index);
                for chunk in index.chunks(config.batch_size) {
                    let loss = rlgf_step(
                        student,
                        chunk,
                        &examples,
                        &teacher_logits,
                        teacher_temperature,
                        config.distill_weight,
                        &by_id,
                    )?;
                    if let Some(l) = loss {
                        losses.push(f64::from(l));
                        bar.set_message(format!("loss {l:.3}"));
                    }
                    bar.inc(1);
                }
            }
            bar.finish();
            progress.note(&format!(
                "round {round} {}: {} of {} queries passed the round trip; {} steps",
                student.name(),
                examples.len(),
                train.len(),
                steps_total
            ));
            student.trainer.refresh_index()?;
            let mut mrr_after = 0.0;
            for (doc, q, _) in &examples {
                mrr_after += source_mrr(&student.trainer.search(q, 10)?, doc);
            }
            let n = examples.len().max(1) as f64;
            let train_mrr = (!examples.is_empty()).then_some((mrr_before / n, mrr_after / n));

            // 4. RLRF: preference pairs for the generator.
            let pairs = rlrf(
                config,
                round,
                student,
                &examples,
                &mut hypotheticals,
                &by_id,
                progress,
            )?;

            // 5. The report's row and the model directory.
            let row = evaluate_round(round, student, &bm25, &eval_q, &by_id, &held, progress)?;
            let row = RoundRow {
                trained_queries: examples.len(),
                train_mrr,
                steps: steps_total,
                mean_loss: (!losses.is_empty())
                    .then(|| losses.iter().sum::<f64>() / losses.len() as f64),
                dpo_pairs: pairs,
                seconds: round_started.elapsed().as_secs_f64(),
                ..row
            };
            let manifest = json!({
                "format_version": 1,
                "model_kind": student.name(),
                "trained_by": "self-boost",
                "init": student.init.display().to_string(),
                "round": round,
                "data": {"path": config.data.display().to_string(), "dataset": ds.name,
                         "corpus_only": true, "eval_split": ds.split},
                "generator": {"url": config.generator, "model": config.generator_model},
                "teacher": teacher_kind.name(),
                "seed": config.seed,
                "row": row,
            });
            let dir = config
                .out
                .join(format!("round-{round}"))
                .join(student.name());
            save_model(
                &dir,
                student.trainer.inference_encoder(),
                &student.tokenizer,
                &manifest,
            )?;
            if round == config.rounds {
                save_model(
                    &config.out.join(student.name()),
                    student.trainer.inference_encoder(),
                    &student.tokenizer,
                    &manifest,
                )?;
            }
            writeln!(log, "{}", serde_json::to_string(&row)?)
                .and_then(|()| log.flush())
                .map_err(io_err(&log_path))?;
            rows.push(row);
        }
    }
    let report = SelfBoostReport {
        eval_questions: eval_q.len(),
        bm25: bm25_metrics,
        rows,
        queries_written: written,
        queries_kept: kept,
        teacher_calls: teacher.cache.made,
        out: config.out.clone(),
    };
    let report_path = config.out.join("report.json");
    std::fs::write(&report_path, serde_json::to_vec_pretty(&report)?)
        .map_err(io_err(&report_path))?;
    Ok(report)
}

/// The caches in `out` hold queries and likelihoods of one prompt: its
/// examples are kept in `query-examples.json` (a directory from before it
/// existed was written with the default examples), and a run with others
/// is refused.
fn check_examples(out: &Path, prompt: &QueryPrompt) -> Result<(), TrainError> {
    let path = out.join(EXAMPLES_FILE);
    let wanted = serde_json::to_string_pretty(prompt.examples())?;
    let earlier = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let queries = out.join(QUERIES_FILE);
            let used = std::fs::metadata(&queries).is_ok_and(|m| m.len() > 0);
            used.then(|| serde_json::to_string_pretty(QueryPrompt::default().examples()))
                .transpose()?
        }
        Err(e) => return Err(io_err(&path)(e)),
    };
    if earlier.is_some_and(|e| e.trim() != wanted.trim()) {
        return Err(setting(
            "query-examples",
            format!(
                "the caches in {} were written with other query examples ({EXAMPLES_FILE}): use a new --out",
                out.display()
            ),
        ));
    }
    std::fs::write(&path, wanted + "\n").map_err(io_err(&path))
}

/// The generator's query for each of `docs` (cached), in order.
fn write_queries(
    config: &SelfBoostConfig,
    client: &LlmClient,
    prompt: &QueryPrompt,
    cache: &mut JsonlCache<String, Option<String>>,
    docs: &[&Document],
    progress: &dyn Progress,
) -> Result<Vec<SyntheticQuery>, TrainError> {
    let mut out = Vec::with_capacity(docs.len());
    let mut bar = progress.bar(docs.len() as u64, "writing queries");
    for d in docs {
        let query = match cache.get(&d.id) {
            Some(q) => q,
            None => {
                let seed = seed_from(&[config.seed, fnv1a_str(&d.id)]);
                let q =
                    client.write_query(prompt, &d.full_text(), config.query_temperature, seed)?;
                let record = SyntheticQuery {
                    doc: d.id.clone(),
                    query: q.clone(),
                };
                cache.insert(d.id.clone(), q.clone(), &record)?;
                q
            }
        };
        // A query that copies the prompt's examples is not about its passage.
        let query = query.filter(|q| !prompt.borrows(q, &d.full_text()));
        out.push(SyntheticQuery {
            doc: d.id.clone(),
            query,
        });
        bar.inc(1);
    }
    bar.finish();
    Ok(out)
}

/// One RLGF step on the examples `chunk` indexes: the contrastive loss
/// (each source passage positive for its query; every other passage of the
/// batch negative) plus the listwise KL to the teacher over each query's
/// own candidates.
fn rlgf_step(
    student: &mut Student,
    chunk: &[usize],
    examples: &[(String, String, Vec<String>)],
    teacher_logits: &[Vec<Option<f32>>],
    teacher_temperature: f32,
    weight: f32,
    by_id: &HashMap<&str, &Document>,
) -> Result<Option<f32>, TrainError> {
    let mut columns: Vec<String> = Vec::new();
    let mut col_of: HashMap<String, usize> = HashMap::new();
    for &i in chunk {
        let (doc, _, negatives) = &examples[i];
        for id in std::iter::once(doc).chain(negatives) {
            if !col_of.contains_key(id) && by_id.contains_key(id.as_str()) {
                col_of.insert(id.clone(), columns.len());
                columns.push(id.clone());
            }
        }
    }
    let m = columns.len();
    let mut roles = Vec::with_capacity(chunk.len());
    let mut teacher = Vec::with_capacity(chunk.len());
    for &i in chunk {
        let (doc, _, negatives) = &examples[i];
        let mut r = vec![Role::Negative; m];
        if let Some(&c) = col_of.get(doc) {
            r[c] = Role::Positive;
        }
        roles.push(r);
        let mut t = vec![None; m];
        if let Some(logits) = teacher_logits.get(i) {
            // The teacher scored [source, negatives…] in order, skipping
            // ids missing from the corpus, as the columns do.
            let ids = std::iter::once(doc)
                .chain(negatives)
                .filter(|id| by_id.contains_key(id.as_str()));
            for (id, l) in ids.zip(logits) {
                if let (Some(&c), Some(l)) = (col_of.get(id), l) {
                    t[c] = Some(l / teacher_temperature);
                }
            }
        }
        teacher.push(t);
    }
    let queries: Vec<&str> = chunk.iter().map(|&i| examples[i].1.as_str()).collect();
    let texts: Vec<String> = columns
        .iter()
        .map(|id| {
            by_id
                .get(id.as_str())
                .map(|d| d.full_text())
                .unwrap_or_default()
        })
        .collect();
    let passages: Vec<&str> = texts.iter().map(String::as_str).collect();
    student
        .trainer
        .update_distilled(&queries, &passages, &roles, &teacher, weight)
}

/// RLRF for one student: hypothetical documents for the first
/// `hyde_queries` training queries, scored as augmented queries against
/// the source passage, kept pairs appended to `dpo-round-N.jsonl`.
/// Returns the pairs written.
#[allow(clippy::too_many_arguments)]
fn rlrf(
    config: &SelfBoostConfig,
    round: usize,
    student: &Student,
    examples: &[(String, String, Vec<String>)],
    hypotheticals: &mut Hypotheticals,
    by_id: &HashMap<&str, &Document>,
    progress: &dyn Progress,
) -> Result<usize, TrainError> {
    if config.hyde_queries == 0 || config.hypotheticals < 2 {
        return Ok(0);
    }
    let path = config
        .out
        .join(format!("dpo-round-{round}-{}.jsonl", student.name()));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).map_err(io_err(&path))?);
    let mut pairs = 0usize;
    let chosen: Vec<&(String, String, Vec<String>)> =
        examples.iter().take(config.hyde_queries).collect();
    let mut bar = progress.bar(chosen.len() as u64, "hypothetical documents");
    for (doc, q, _) in chosen {
        let Some(passage) = by_id.get(doc.as_str()) else {
            continue;
        };
        let texts = (0..config.hypotheticals)
            .map(|sample| hypotheticals.get(q, sample))
            .collect::<Result<Vec<_>, _>>()?;
        // Linear in the query vector: (0.8·q + 0.2·h)·p = 0.8·q·p + 0.2·h·p.
        let mut all: Vec<&str> = vec![q.as_str()];
        all.extend(texts.iter().map(String::as_str));
        let sims = student.similarity(&all, &passage.full_text())?;
        let raw = sims[0];
        // An empty generation is no augmentation: it takes no part in a pair.
        let augmented: Vec<f32> = sims[1..]
            .iter()
            .zip(&texts)
            .map(|(h, t)| {
                if t.trim().is_empty() {
                    f32::NAN
                } else {
                    RAW_WEIGHT * raw + (1.0 - RAW_WEIGHT) * h
                }
            })
            .collect();
        if let Some((best, worst)) = preference_pair(raw, &augmented, config.gamma) {
            let line = json!({
                "prompt": rlrag_router::llm::hyde_prompt(q),
                "chosen": texts[best],
                "rejected": texts[worst],
                "query": q, "doc": doc, "raw": raw,
                "chosen_score": augmented[best], "rejected_score": augmented[worst],
            });
            writeln!(file, "{line}").map_err(io_err(&path))?;
            pairs += 1;
        }
        bar.inc(1);
    }
    bar.finish();
    file.flush().map_err(io_err(&path))?;
    Ok(pairs)
}

/// MRR@10 of `source` in `hits`.
fn source_mrr(hits: &[Hit], source: &str) -> f64 {
    let ranked: Vec<&str> = hits.iter().take(10).map(|h| h.id.as_str()).collect();
    let qrels: Qrels = [(source.to_owned(), 1)].into_iter().collect();
    mrr_at_k(&ranked, &qrels, 10)
}

/// A student's report row (metrics only) as it is now.
fn evaluate_round(
    round: usize,
    student: &Student,
    bm25: &Bm25Index,
    eval_q: &[Query],
    by_id: &HashMap<&str, &Document>,
    held: &[(String, String)],
    progress: &dyn Progress,
) -> Result<RoundRow, TrainError> {
    let t = &student.trainer;
    let alone = score_queries(|q, k| Ok(t.search(q, k)?), eval_q, by_id, 100, progress)?.0;
    let with_bm25 = fused_with_bm25(t, bm25, eval_q, by_id, progress)?;
    let mut synthetic = BTreeMap::new();
    if !held.is_empty() {
        let (mut mrr, mut recall) = (0.0, 0.0);
        for (doc, q) in held {
            let hits = t.search(q, 10)?;
            mrr += source_mrr(&hits, doc);
            let ranked: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
            let qrels: Qrels = [(doc.clone(), 1)].into_iter().collect();
            recall += recall_at_k(&ranked, &qrels, 10);
        }
        synthetic.insert("mrr@10", mrr / held.len() as f64);
        synthetic.insert("recall@10", recall / held.len() as f64);
    }
    Ok(RoundRow {
        round,
        model: student.name(),
        alone,
        with_bm25,
        synthetic,
        trained_queries: 0,
        train_mrr: None,
        steps: 0,
        mean_loss: None,
        dpo_pairs: 0,
        seconds: 0.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: &str) -> Hit {
        Hit::new(id.to_owned(), 0.0)
    }

    #[test]
    fn duplicates_and_unusable_queries_are_dropped_across_rounds() {
        let q = |doc: &str, query: Option<&str>| SyntheticQuery {
            doc: doc.into(),
            query: query.map(str::to_owned),
        };
        let mut seen = BTreeSet::new();
        let first = deduplicate(
            &[
                q("a", Some("What causes Scurvy?")),
                q("b", None),
                q("c", Some("what causes scurvy")),
                q("d", Some("vitamin c sources")),
            ],
            &mut seen,
        );
        assert_eq!(
            first,
            vec![
                ("a".into(), "What causes Scurvy?".into()),
                ("d".into(), "vitamin c sources".into())
            ]
        );
        let second = deduplicate(&[q("e", Some("Vitamin C   sources!"))], &mut seen);
        assert!(second.is_empty());
    }

    #[test]
    fn negatives_come_from_the_rank_window_and_never_the_source() {
        let hits: Vec<Hit> = (0..50).map(|i| hit(&format!("d{i}"))).collect();
        let mut rng = SplitMix64::new(7);
        let n = sample_negatives(&hits, "d35", 30, 40, 20, &mut rng);
        assert_eq!(n.len(), 9, "ranks 30..40 without the source");
        for id in &n {
            let rank: usize = id[1..].parse().expect("id");
            assert!((30..40).contains(&rank) && rank != 35, "{id}");
        }
        let again = sample_negatives(&hits, "d35", 30, 40, 20, &mut SplitMix64::new(7));
        assert_eq!(n, again, "seeded");
        assert!(sample_negatives(&hits[..10], "d1", 30, 40, 5, &mut rng).is_empty());
    }

    #[test]
    fn preference_pairs_follow_the_reinforced_ir_filter() {
        // raw 1.0: 0.8·raw = 0.8. Best 1.2 (margin 0.4), worst 0.9 (0.1):
        // 0.4·0.95 ≥ 0.1, kept.
        assert_eq!(preference_pair(1.0, &[0.9, 1.2, 1.0], 0.95), Some((1, 0)));
        // The best does not beat the raw query: dropped.
        assert_eq!(preference_pair(1.0, &[0.9, 0.95], 0.95), None);
        // Too close: 0.4·0.95 = 0.38 < 0.39.
        assert_eq!(preference_pair(1.0, &[1.19, 1.2], 0.95), None);
        // One sample, or nothing finite: no pair.
        assert_eq!(preference_pair(1.0, &[2.0], 0.95), None);
        assert_eq!(preference_pair(1.0, &[f32::NAN, f32::NAN], 0.95), None);
    }
}
