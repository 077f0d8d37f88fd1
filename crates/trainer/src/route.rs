//! `trainer eval-router` and `trainer train-router`: the routing pipeline on a
//! QA set with the local source holding a seeded fraction of the corpus and
//! the network source all of it (served in-process on 127.0.0.1 unless
//! `--network` names an endpoint).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use burn::tensor::Device;
use futures_lite::future::block_on;
use rlrag_encoder::Encoder;
use rlrag_encoder::models::pretrained;
use rlrag_retriever::data::fold_of;
use rlrag_retriever::engine::{Engine, EngineModels, EngineOptions, SearchMode, fingerprint};
use rlrag_retriever::{Dataset, DatasetFormat, Document, Query};
use rlrag_reward::composite::{Correctness, RewardConfig};
use rlrag_reward::cost::CostWeights;
use rlrag_router::eval::{PolicyReport, QuestionScore, score, summarize};
use rlrag_router::http::HttpSource;
use rlrag_router::memory::{CONFIDENCE_FEATURES, Confidence};
use rlrag_router::policy::{LearnedDecider, LearnedPolicy, ROUTER_FORMAT_VERSION, RouterConfig};
use rlrag_router::{
    Decider, FixedPolicy, LocalSource, Outcome, PipelineConfig, Router, Sensed, SystemClock,
};
use rlrag_train::{
    LlmClient, LlmConfig, Rollout, RouterTrainConfig, RouterTrainer, preference_pair,
};
use serde::Serialize;

use crate::progress::LazyBar;
use crate::serve;

#[derive(clap::Args, Debug, Clone)]
pub struct SetupArgs {
    /// The QA set: a HotpotQA file or directory, or a `qa` directory.
    #[arg(long)]
    data: PathBuf,
    /// Dataset format; detected from the path when omitted.
    #[arg(long, value_parser = crate::parse_format)]
    format: Option<DatasetFormat>,
    /// Questions: `train` or `test` (the fixed hash partition) or `all`.
    #[arg(long)]
    split: Option<String>,
    /// Use only the first N questions of the split (before --fold cuts them).
    #[arg(long)]
    limit: Option<usize>,
    /// Cross-validation fold `I/K`: the split's questions are cut into K
    /// parts by a fixed hash of their ids (part 0 of 5 is the `test`
    /// split); `train-router` trains on every part but I and `eval-router`
    /// evaluates on part I (scripts/router-cv.py runs every fold).
    #[arg(long, value_parser = parse_fold)]
    fold: Option<Fold>,
    /// Share of the corpus in the local index (seeded by --seed).
    #[arg(long, default_value_t = 0.5)]
    local_fraction: f64,
    /// The network source (`http://host:port/search`); default: the whole
    /// corpus served in-process on 127.0.0.1.
    #[arg(long)]
    network: Option<String>,
    /// Network time limit per request.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// How the local index is searched.
    #[arg(long, default_value = "bm25")]
    local_mode: SearchMode,
    /// Sparse model of the local index (a trainer directory); default the
    /// pretrained SPLADE-tiny.
    #[arg(long)]
    local_weights: Option<PathBuf>,
    /// Seed of the local split and of every rollout.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// λ of the reward: correctness − λ·cost.
    #[arg(long, default_value_t = 0.1)]
    lambda: f64,
    /// Cost of one network request (before λ).
    #[arg(long, default_value_t = CostWeights::default().network_call)]
    network_cost: f64,
    /// Cost of one retrieval round (before λ).
    #[arg(long, default_value_t = CostWeights::default().round)]
    round_cost: f64,
    /// Most hops per question.
    #[arg(long, default_value_t = 3)]
    max_hops: u32,
    /// Weight of a local list against a network list's 1 when the hops'
    /// lists are fused by reciprocal rank.
    #[arg(long, default_value_t = PipelineConfig::default().local_weight)]
    local_weight: f32,
    /// Weight of the background-sensing passages in that fusion (0: they
    /// only align the query, the evidence leaves them out).
    #[arg(long, default_value_t = PipelineConfig::default().sensing_weight)]
    sensing_weight: f32,
    /// An OpenAI-compatible generator (`http://host:port/v1`, e.g.
    /// scripts/llm-server.sh): it answers every question from the top
    /// evidence, and the answers are scored by EM and F1.
    #[arg(long)]
    generator: Option<String>,
    /// The `model` field of generator requests.
    #[arg(long, default_value = "smollm2-135m-instruct")]
    generator_model: String,
    /// Generator time limit per request (each request is tried twice).
    #[arg(long, default_value_t = 30_000)]
    generator_timeout_ms: u64,
    /// Correctness term of the reward: `containment` (of the evidence), or
    /// `f1` / `exact_match` of the generator's answer (need --generator).
    #[arg(long, default_value = "containment", value_parser = parse_correctness)]
    correctness: Correctness,
    /// `decompose` hops ask the generator for their sub-queries (RAG-R1).
    #[arg(long)]
    llm_sub_queries: bool,
}

fn parse_correctness(s: &str) -> Result<Correctness, String> {
    match s {
        "containment" => Ok(Correctness::Containment),
        "f1" => Ok(Correctness::F1),
        "exact_match" | "em" => Ok(Correctness::ExactMatch),
        other => Err(format!(
            "`{other}` is not one of containment, f1, exact_match"
        )),
    }
}

/// One part of a K-fold cut of a split's questions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fold {
    index: u64,
    count: u64,
}

fn parse_fold(s: &str) -> Result<Fold, String> {
    let parse = |part: Option<&str>| part.and_then(|p| p.trim().parse::<u64>().ok());
    let mut parts = s.splitn(2, '/');
    match (parse(parts.next()), parse(parts.next())) {
        (Some(index), Some(count)) if count >= 2 && index < count => Ok(Fold { index, count }),
        _ => Err(format!(
            "`{s}` is not a fold I/K with K ≥ 2 and 0 ≤ I < K (e.g. 0/5)"
        )),
    }
}

/// What the questions are for: a fold keeps its part for evaluation and
/// the rest for training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Train,
    Eval,
}

/// Passages of the evidence the generator reads.
const ANSWER_PASSAGES: usize = 3;

/// Sources and questions, ready to route.
struct Setup {
    name: String,
    split: String,
    questions: Vec<Query>,
    local: LocalSource<'static>,
    network: HttpSource,
    _server: Option<serve::Background>,
    reward: RewardConfig,
    local_docs: usize,
    corpus_docs: usize,
    generator: Option<LlmClient>,
    llm_sub_queries: bool,
    generator_failures: Cell<u32>,
}

/// One routed question: its outcome, the generator's answer, its scores.
struct Run {
    outcome: Outcome,
    prediction: Option<String>,
    score: QuestionScore,
}

/// FNV-1a over bytes: seeds and the local/network split, the same everywhere.
fn fnv1a<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in parts.into_iter().flatten() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Whether document `id` goes to the local index (a seeded `fraction` of them).
fn keep_local(seed: u64, id: &str, fraction: f64) -> bool {
    let h = fnv1a([&seed.to_le_bytes()[..], id.as_bytes()]);
    ((h >> 11) as f64 / (1u64 << 53) as f64) < fraction
}

fn load_encoder(dir: &Path) -> anyhow::Result<(Arc<Encoder>, u64)> {
    let read = |f: &str| {
        let p = dir.join(f);
        std::fs::read(&p)
            .with_context(|| format!("cannot read {} (scripts/fetch-models.sh?)", p.display()))
    };
    let (w, c, t) = (
        read("model.safetensors")?,
        read("config.json")?,
        read("tokenizer.json")?,
    );
    let files = rlrag_encoder::ModelFiles {
        weights: &w,
        config: &c,
        tokenizer: &t,
    };
    let encoder = Encoder::load(files, &Device::flex())?;
    Ok((Arc::new(encoder), fingerprint(&[&w, &c, &t])))
}

impl Setup {
    fn new(args: &SetupArgs, role: Role) -> anyhow::Result<Self> {
        if !(args.local_fraction > 0.0 && args.local_fraction <= 1.0) {
            bail!(
                "--local-fraction must be in (0, 1], got {}",
                args.local_fraction
            );
        }
        let split = args.split.clone().unwrap_or_else(|| {
            match (role, args.fold) {
                (_, Some(_)) => "all",
                (Role::Train, None) => "train",
                (Role::Eval, None) => "test",
            }
            .to_owned()
        });
        let ds = Dataset::load(&args.data, args.format, Some(&split))?;
        let in_part = |q: &Query| match args.fold {
            None => true,
            Some(f) => (fold_of(&q.id, f.count) == Some(f.index)) == (role == Role::Eval),
        };
        let mut questions: Vec<Query> = ds
            .queries
            .iter()
            .filter(|q| !q.answers.is_empty() || !q.qrels.is_empty())
            .cloned()
            .collect();
        if let Some(n) = args.limit {
            questions.truncate(n);
        }
        questions.retain(in_part);
        let split = match args.fold {
            Some(f) if role == Role::Train => {
                format!("{split}, all folds but {}/{}", f.index, f.count)
            }
            Some(f) => format!("{split}, fold {}/{}", f.index, f.count),
            None => split,
        };
        if questions.is_empty() {
            bail!(
                "{} has no labelled questions in split `{split}`",
                args.data.display()
            );
        }
        let local_docs: Vec<Document> = ds
            .corpus
            .iter()
            .filter(|d| keep_local(args.seed, &d.id, args.local_fraction))
            .cloned()
            .collect();
        let model = args
            .local_weights
            .clone()
            .unwrap_or_else(|| pretrained("splade-tiny"));
        let (sparse, sparse_fingerprint) = load_encoder(&model)?;
        let options = EngineOptions {
            sparse_vectors: args.local_mode == SearchMode::Sparse,
            rerank_m: 0,
        };
        let mut engine = Engine::new(
            EngineModels {
                sparse,
                sparse_fingerprint,
                dense: None,
            },
            options,
        )?;
        let mut bar = LazyBar::new(local_docs.len() as u64, "local index");
        block_on(engine.add_documents(&local_docs, &mut |p| {
            bar.set_message(format!("local {}", p.stage));
            bar.set_position(p.done as u64);
        }))?;
        bar.finish();
        let local = LocalSource::new(engine, args.local_mode)?;
        let (url, server) = match &args.network {
            Some(url) => (url.clone(), None),
            None => {
                let corpus = serve::Corpus::new(ds.corpus.clone(), Duration::ZERO)?;
                let bg = serve::spawn(corpus)?;
                (bg.url.clone(), Some(bg))
            }
        };
        let network = HttpSource::new(&url, Duration::from_millis(args.timeout_ms.max(1)))?;
        let reward = RewardConfig {
            lambda: args.lambda,
            cost: CostWeights {
                network_call: args.network_cost,
                round: args.round_cost,
                ..CostWeights::default()
            },
            correctness: args.correctness,
            ..RewardConfig::default()
        };
        reward.validate()?;
        if args.generator.is_none() && args.correctness != Correctness::Containment {
            bail!(
                "--correctness {:?} scores the generator's answers: give --generator",
                args.correctness
            );
        }
        if args.generator.is_none() && args.llm_sub_queries {
            bail!("--llm-sub-queries needs --generator");
        }
        let generator = match &args.generator {
            Some(url) => Some(LlmClient::new(LlmConfig {
                base_url: url.clone(),
                model: args.generator_model.clone(),
                timeout_ms: args.generator_timeout_ms,
                ..LlmConfig::default()
            })?),
            None => None,
        };
        Ok(Self {
            name: ds.name.clone(),
            split,
            questions,
            local,
            network,
            _server: server,
            reward,
            local_docs: local_docs.len(),
            corpus_docs: ds.corpus.len(),
            generator,
            llm_sub_queries: args.llm_sub_queries,
            generator_failures: Cell::new(0),
        })
    }

    /// The generator's answer to `q` from the outcome's top evidence; `None`
    /// without a generator, or when it failed (counted; the answer scores 0).
    fn predict(&self, q: &Query, out: &Outcome) -> Option<String> {
        let g = self.generator.as_ref()?;
        let passages = evidence_texts(out);
        let refs: Vec<&str> = passages.iter().map(|(_, t)| t.as_str()).collect();
        match g.answer_from(&q.text, &refs) {
            Ok(a) => Some(a),
            Err(e) => {
                self.failed(&e);
                None
            }
        }
    }

    fn failed(&self, e: &rlrag_train::TrainError) {
        let n = self.generator_failures.get() + 1;
        self.generator_failures.set(n);
        if n <= 3 {
            eprintln!("generator failed ({n} so far): {e}");
        }
    }

    fn router(
        &self,
        pipeline: PipelineConfig,
        confidence: Confidence,
    ) -> anyhow::Result<Router<'_>> {
        let router = Router::new(&self.local, Some(&self.network), pipeline, confidence)?;
        Ok(match &self.generator {
            Some(g) if self.llm_sub_queries => router.with_writer(g),
            _ => router,
        })
    }
}

fn pipeline(args: &SetupArgs, confidence_stop: f32) -> PipelineConfig {
    PipelineConfig {
        max_hops: args.max_hops,
        confidence_stop,
        local_weight: args.local_weight,
        sensing_weight: args.sensing_weight,
        ..PipelineConfig::default()
    }
}

/// Pipeline settings for the fixed baselines: their schedules decide, the
/// confidence never stops them.
const NEVER: f32 = 2.0;

fn run_one(router: &Router<'_>, q: &Query, decider: &mut dyn Decider) -> anyhow::Result<Outcome> {
    let clock = SystemClock::default();
    Ok(block_on(router.run(&q.text, decider, &clock))?)
}

/// The top evidence as (id, "title: text") for the generator.
fn evidence_texts(out: &Outcome) -> Vec<(String, String)> {
    out.evidence
        .iter()
        .take(ANSWER_PASSAGES)
        .map(|h| {
            let text = if h.title.is_empty() {
                h.text.clone()
            } else {
                format!("{}: {}", h.title, h.text)
            };
            (h.id.clone(), text)
        })
        .collect()
}

/// Route, answer (with a generator) and score one question.
fn route_one(
    setup: &Setup,
    router: &Router<'_>,
    q: &Query,
    decider: &mut dyn Decider,
) -> anyhow::Result<Run> {
    let outcome = run_one(router, q, decider)?;
    let prediction = setup.predict(q, &outcome);
    let score = score(&outcome, q, &setup.reward, prediction.as_deref())?;
    Ok(Run {
        outcome,
        prediction,
        score,
    })
}

/// Run every question with a fresh decider each.
fn run_all<'p>(
    setup: &Setup,
    router: &Router<'_>,
    label: &'static str,
    mut decider: impl FnMut(usize) -> Box<dyn Decider + 'p>,
) -> anyhow::Result<Vec<Run>> {
    let questions = &setup.questions;
    let mut bar = LazyBar::new(questions.len() as u64, label);
    let mut runs = Vec::with_capacity(questions.len());
    for (i, q) in questions.iter().enumerate() {
        let mut d = decider(i);
        runs.push(route_one(setup, router, q, d.as_mut())?);
        bar.inc(1);
    }
    bar.finish();
    Ok(runs)
}

/// A router directory: weights, config, manifest.
fn load_router(dir: &Path) -> anyhow::Result<(LearnedPolicy, RouterConfig)> {
    let read = |f: &str| {
        let p = dir.join(f);
        std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))
    };
    let config: RouterConfig = serde_json::from_slice(&read("config.json")?)
        .with_context(|| format!("{}/config.json is not a router config", dir.display()))?;
    let policy = LearnedPolicy::load(&config, &read("model.safetensors")?, &Device::flex())
        .with_context(|| format!("cannot load the router in {}", dir.display()))?;
    Ok((policy, config))
}

#[derive(clap::Args, Debug)]
pub struct EvalRouterArgs {
    #[command(flatten)]
    setup: SetupArgs,
    /// A router directory from `train-router` (adds the `learned` policy).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Hold the learned policy's network calls to this bar instead of the
    /// one saved with it (`network_bar`, see train-router --network-budget).
    #[arg(long, requires = "weights")]
    network_bar: Option<f32>,
    /// Write the report here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also ask the generator to judge every answer against the gold ones
    /// (LLM-as-judge; needs --generator).
    #[arg(long)]
    judge: bool,
    /// Write RLAG preference pairs (the answer with the evidence against the
    /// answer without it) as JSONL here (needs --generator).
    #[arg(long)]
    rlag_out: Option<PathBuf>,
    /// Whose evidence the RLAG pairs use: `local`, `network`, `both`,
    /// `multihop` or `learned` (the default with --weights; else `network`).
    #[arg(long)]
    rlag_policy: Option<String>,
    /// Write every question's trace (each decision with its features,
    /// probability, queries, faults, cost) and scores, per policy, as JSONL here.
    #[arg(long)]
    traces: Option<PathBuf>,
    /// The fixed baselines run background sensing before their schedule
    /// (its passages align the first round's queries and seed its bridges).
    #[arg(long)]
    sense_baselines: bool,
}

/// One line of `--traces`.
#[derive(Serialize)]
struct TraceLine<'a> {
    policy: &'a str,
    question_id: &'a str,
    answers: &'a [String],
    prediction: Option<&'a str>,
    score: &'a QuestionScore,
    evidence_ids: Vec<&'a str>,
    trace: &'a rlrag_router::Trace,
}

fn trace_lines(
    policy: &str,
    runs: &[Run],
    questions: &[Query],
    out: &mut String,
) -> anyhow::Result<()> {
    for (r, q) in runs.iter().zip(questions) {
        let line = TraceLine {
            policy,
            question_id: &q.id,
            answers: &q.answers,
            prediction: r.prediction.as_deref(),
            score: &r.score,
            evidence_ids: r.outcome.evidence.iter().map(|h| h.id.as_str()).collect(),
            trace: &r.outcome.trace,
        };
        out.push_str(&serde_json::to_string(&line)?);
        out.push('\n');
    }
    Ok(())
}

#[derive(Serialize)]
struct EvalReport {
    dataset: String,
    split: String,
    questions: usize,
    local_documents: usize,
    corpus_documents: usize,
    policies: BTreeMap<String, PolicyReport>,
}

fn table(report: &EvalReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({} split, {} questions; local index {} of {} passages)",
        report.dataset,
        report.split,
        report.questions,
        report.local_documents,
        report.corpus_documents
    );
    let generated = report.policies.values().any(|p| p.f1.is_some());
    let judged = report.policies.values().any(|p| p.judge.is_some());
    let mut head = "| policy | containment@10 | all_gold@10 |".to_owned();
    let mut rule = "|---|---|---|".to_owned();
    if generated {
        head.push_str(" EM | F1 |");
        rule.push_str("---|---|");
    }
    if judged {
        head.push_str(" judge |");
        rule.push_str("---|");
    }
    head.push_str(" network calls/q | rounds/q | p50 ms | p95 ms | suppressed/q | reward |");
    rule.push_str("---|---|---|---|---|---|");
    let _ = writeln!(out, "{head}\n{rule}");
    let f = |v: Option<f64>| v.map_or("–".to_owned(), |x| format!("{x:.3}"));
    for (name, p) in &report.policies {
        let mut answers = String::new();
        if generated {
            let _ = write!(answers, " {} | {} |", f(p.exact_match), f(p.f1));
        }
        if judged {
            let _ = write!(answers, " {} |", f(p.judge));
        }
        let _ = writeln!(
            out,
            "| {name} | {} | {} |{answers} {:.2} | {:.2} | {:.1} | {:.1} | {:.2} | {:.3} |",
            f(p.containment),
            f(p.all_gold),
            p.network_share,
            p.rounds,
            p.latency_ms.p50,
            p.latency_ms.p95,
            p.suppressed_per_question,
            p.reward
        );
    }
    out
}

/// The policy whose evidence feeds the RLAG pairs, checked before any work.
fn rlag_policy(args: &EvalRouterArgs) -> anyhow::Result<&str> {
    let Some(name) = args.rlag_policy.as_deref() else {
        return Ok(if args.weights.is_some() {
            "learned"
        } else {
            "network"
        });
    };
    if args.rlag_out.is_none() {
        bail!("--rlag-policy needs --rlag-out");
    }
    if name == "learned" {
        if args.weights.is_none() {
            bail!("--rlag-policy learned needs --weights");
        }
    } else if !FixedPolicy::BASELINES.iter().any(|p| p.name() == name) {
        let names: Vec<&str> = FixedPolicy::BASELINES.iter().map(|p| p.name()).collect();
        bail!(
            "--rlag-policy {name:?} is not one of {}, learned",
            names.join(", ")
        );
    }
    Ok(name)
}

pub fn eval(args: &EvalRouterArgs) -> anyhow::Result<()> {
    if args.setup.generator.is_none() && (args.judge || args.rlag_out.is_some()) {
        bail!("--judge and --rlag-out need --generator");
    }
    let rlag_policy = rlag_policy(args)?;
    let setup = Setup::new(&args.setup, Role::Eval)?;
    let mut policies = BTreeMap::new();
    let mut rlag_runs = None;
    // Only serialised when asked for.
    let mut traces = args.traces.as_ref().map(|_| String::new());
    // Judge (with --judge), summarise and trace one policy's runs.
    let mut record = |name: &str, runs: &mut [Run]| -> anyhow::Result<()> {
        judge_all(&setup, runs, args.judge);
        let scores: Vec<QuestionScore> = runs.iter().map(|r| r.score.clone()).collect();
        policies.insert(name.to_owned(), summarize(&scores));
        if let Some(out) = traces.as_mut() {
            trace_lines(name, runs, &setup.questions, out)?;
        }
        Ok(())
    };
    for fixed in FixedPolicy::BASELINES {
        let router = setup.router(pipeline(&args.setup, NEVER), Confidence::default())?;
        let sense = args.sense_baselines;
        let mut runs = run_all(&setup, &router, fixed.name(), |_| -> Box<dyn Decider> {
            if sense {
                Box::new(Sensed(fixed))
            } else {
                Box::new(fixed)
            }
        })?;
        record(fixed.name(), &mut runs)?;
        if fixed.name() == rlag_policy {
            rlag_runs = Some(runs);
        }
    }
    if let Some(dir) = &args.weights {
        let (policy, config) = load_router(dir)?;
        let policy = match args.network_bar {
            Some(bar) => policy.with_network_bar(bar)?,
            None => policy,
        };
        let router = setup.router(config.pipeline.clone(), config.confidence.clone())?;
        let mut runs = run_all(&setup, &router, "learned", |_| {
            Box::new(LearnedDecider::greedy(&policy))
        })?;
        record("learned", &mut runs)?;
        if rlag_policy == "learned" {
            rlag_runs = Some(runs);
        }
    }
    if let (Some(path), Some(traces)) = (&args.traces, &traces) {
        std::fs::write(path, traces).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote the traces to {}", path.display());
    }
    if let (Some(path), Some(runs)) = (&args.rlag_out, &rlag_runs) {
        let written = write_rlag(&setup, runs, path)?;
        eprintln!(
            "wrote {written} RLAG preference pairs ({} questions, {rlag_policy}'s evidence) to {}",
            runs.len(),
            path.display()
        );
    }
    if setup.generator_failures.get() > 0 {
        eprintln!(
            "the generator failed {} times (those answers scored 0)",
            setup.generator_failures.get()
        );
    }
    let report = EvalReport {
        dataset: setup.name.clone(),
        split: setup.split.clone(),
        questions: setup.questions.len(),
        local_documents: setup.local_docs,
        corpus_documents: setup.corpus_docs,
        policies,
    };
    print!("{}", table(&report));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct TrainRouterArgs {
    #[command(flatten)]
    setup: SetupArgs,
    /// Where to write the router directory.
    #[arg(long)]
    out: PathBuf,
    /// Passes over the training questions.
    #[arg(long, default_value_t = 60)]
    epochs: usize,
    /// Rollouts per question (a group; 1 uses the learned baseline alone).
    #[arg(long, default_value_t = 8)]
    rollouts: usize,
    /// Questions per update.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = 0.01)]
    lr: f64,
    /// Entropy bonus.
    #[arg(long, default_value_t = 0.03)]
    entropy: f32,
    /// Hidden units of the policy.
    #[arg(long, default_value_t = 32)]
    hidden: usize,
    /// Stop a question once the evidence confidence reaches this.
    #[arg(long, default_value_t = 0.9)]
    confidence_stop: f32,
    /// Seed of the policy's initialisation, shuffles and rollouts (default:
    /// --seed); varies the training run on the same local/network split.
    #[arg(long)]
    policy_seed: Option<u64>,
    /// Network calls per question the trained policy may make on the
    /// training questions: after training, the smallest network bar that
    /// keeps its greedy decisions within it is saved with the weights
    /// (`network_bar` in config.json). Without it the bar is 0.
    #[arg(long, value_parser = parse_budget)]
    network_budget: Option<f64>,
}

fn parse_budget(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(b) if b.is_finite() && b >= 0.0 => Ok(b),
        _ => Err(format!(
            "{s:?} is not a number of calls per question (0 or more)"
        )),
    }
}

/// Bisection steps of the network bar (a bar within 1/2^12 of the smallest).
const BAR_STEPS: usize = 12;

/// `policy` held to the smallest network bar at which it makes at most
/// `budget` network calls per training question (greedy), and the calls it
/// makes there. Fewer calls as the bar rises is assumed, not guaranteed (a
/// question kept off the network at one hop may call it at the next), so
/// the bar returned is always one measured to keep the budget, or 1.
fn calibrate_bar(
    setup: &Setup,
    router: &Router<'_>,
    policy: LearnedPolicy,
    budget: f64,
) -> anyhow::Result<(LearnedPolicy, f64)> {
    let share = |policy: &LearnedPolicy| -> anyhow::Result<f64> {
        let runs = run_all(setup, router, "network bar", |_| {
            Box::new(LearnedDecider::greedy(policy))
        })?;
        let scores: Vec<QuestionScore> = runs.into_iter().map(|r| r.score).collect();
        Ok(summarize(&scores).network_share)
    };
    let mut policy = policy.with_network_bar(0.0)?;
    let at_zero = share(&policy)?;
    if at_zero <= budget {
        return Ok((policy, at_zero));
    }
    policy = policy.with_network_bar(1.0)?;
    let (mut lo, mut hi, mut at_hi) = (0.0_f32, 1.0_f32, share(&policy)?);
    if at_hi > budget {
        eprintln!(
            "warning: even a network bar of 1 leaves {at_hi:.2} network calls/q (budget {budget})"
        );
        return Ok((policy, at_hi));
    }
    for _ in 0..BAR_STEPS {
        let mid = 0.5 * (lo + hi);
        policy = policy.with_network_bar(mid)?;
        let at = share(&policy)?;
        if at <= budget {
            (hi, at_hi) = (mid, at);
        } else {
            lo = mid;
        }
    }
    Ok((policy.with_network_bar(hi)?, at_hi))
}

#[derive(Serialize)]
struct EpochLog {
    epoch: usize,
    reward: f64,
    network_share: f64,
    containment: Option<f64>,
    all_gold: Option<f64>,
    rounds: f64,
    policy_loss: f32,
    value_loss: f32,
    entropy: f32,
}

/// Fit the confidence on the fixed policies' final evidence.
fn fit_confidence(setup: &Setup, args: &SetupArgs) -> anyhow::Result<(Confidence, f32, usize)> {
    let mut samples: Vec<([f32; CONFIDENCE_FEATURES], bool)> = Vec::new();
    for fixed in [
        FixedPolicy::Local,
        FixedPolicy::Network,
        FixedPolicy::Multihop,
    ] {
        let router = setup.router(pipeline(args, NEVER), Confidence::default())?;
        let runs = run_all(setup, &router, "confidence", |_| Box::new(fixed))?;
        for r in &runs {
            if let (Some(label), Some(last)) = (
                r.score.containment.or(r.score.all_gold),
                r.outcome.trace.decisions.last(),
            ) {
                samples.push((last.evidence_features, label));
            }
        }
    }
    let fitted = Confidence::fit(&samples, 3000).unwrap_or_default();
    let ece = fitted.calibration_error(&samples);
    Ok((fitted, ece, samples.len()))
}

/// With `judge`, the generator's verdict on every answer.
fn judge_all(setup: &Setup, runs: &mut [Run], judge: bool) {
    let Some(g) = setup.generator.as_ref().filter(|_| judge) else {
        return;
    };
    let mut bar = LazyBar::new(runs.len() as u64, "judge");
    for (r, q) in runs.iter_mut().zip(&setup.questions) {
        if let Some(p) = &r.prediction
            && !q.answers.is_empty()
        {
            match g.judge(&q.text, &q.answers, p) {
                Ok(v) => r.score.judge = Some(v),
                Err(e) => setup.failed(&e),
            }
        }
        bar.inc(1);
    }
    bar.finish();
}

/// RLAG pairs: every question's answer with its evidence against a plain
/// answer; returns the pairs written.
fn write_rlag(setup: &Setup, runs: &[Run], path: &Path) -> anyhow::Result<usize> {
    let Some(g) = setup.generator.as_ref() else {
        bail!("--rlag-out needs --generator");
    };
    let mut out = String::new();
    let mut written = 0;
    let mut bar = LazyBar::new(runs.len() as u64, "rlag");
    for (r, q) in runs.iter().zip(&setup.questions) {
        bar.inc(1);
        let Some(augmented) = &r.prediction else {
            continue;
        };
        let plain = match g.answer_from(&q.text, &[]) {
            Ok(p) => p,
            Err(e) => {
                setup.failed(&e);
                continue;
            }
        };
        let passages = evidence_texts(&r.outcome);
        let refs: Vec<(&str, &str)> = passages
            .iter()
            .map(|(id, t)| (id.as_str(), t.as_str()))
            .collect();
        if let Some(pair) = preference_pair(&q.text, &q.answers, &refs, augmented, &plain) {
            out.push_str(&serde_json::to_string(&pair)?);
            out.push('\n');
            written += 1;
        }
    }
    bar.finish();
    std::fs::write(path, out).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(written)
}

fn hash_seed(parts: &[u64]) -> u64 {
    let bytes: Vec<[u8; 8]> = parts.iter().map(|p| p.to_le_bytes()).collect();
    fnv1a(bytes.iter().map(|b| &b[..]))
}

pub fn train(args: &TrainRouterArgs) -> anyhow::Result<()> {
    if args.rollouts == 0 || args.batch_size == 0 || args.epochs == 0 {
        bail!("--epochs, --rollouts and --batch-size must be at least 1");
    }
    let started = std::time::Instant::now();
    let setup = Setup::new(&args.setup, Role::Train)?;
    eprintln!(
        "{}: {} training questions; local index {} of {} passages; network {}",
        setup.name,
        setup.questions.len(),
        setup.local_docs,
        setup.corpus_docs,
        setup.network.url()
    );
    let (confidence, ece, samples) = fit_confidence(&setup, &args.setup)?;
    eprintln!(
        "confidence fitted on {samples} outcomes: weights {:?}, bias {:.3}, calibration error {ece:.3}",
        confidence.weights, confidence.bias
    );
    let pipe = pipeline(&args.setup, args.confidence_stop);
    let router = setup.router(pipe.clone(), confidence.clone())?;
    let policy_seed = args.policy_seed.unwrap_or(args.setup.seed);
    let config = RouterTrainConfig {
        hidden: args.hidden,
        learning_rate: args.lr,
        entropy: args.entropy,
        seed: policy_seed,
        ..RouterTrainConfig::default()
    };
    let mut trainer = RouterTrainer::new(config, &Device::flex().autodiff())?;
    let mut logs = Vec::new();
    let n = setup.questions.len();
    let mut order: Vec<usize> = (0..n).collect();
    let mut bar = LazyBar::new((args.epochs * n) as u64, "train");
    for epoch in 0..args.epochs {
        // A seeded shuffle per epoch (Fisher–Yates on SplitMix draws).
        let mut sampler =
            rlrag_router::policy::Sampler::new(hash_seed(&[policy_seed, epoch as u64]));
        for i in (1..n).rev() {
            let j = ((sampler.next_f32() * (i + 1) as f32) as usize).min(i);
            order.swap(i, j);
        }
        let mut all_scores = Vec::new();
        let (mut pl, mut vl, mut en, mut updates) = (0.0, 0.0, 0.0, 0);
        for chunk in order.chunks(args.batch_size) {
            let policy = trainer.policy();
            let mut groups = Vec::with_capacity(chunk.len());
            for &qi in chunk {
                let q = &setup.questions[qi];
                let mut group = Vec::with_capacity(args.rollouts);
                for g in 0..args.rollouts {
                    let seed = hash_seed(&[policy_seed, epoch as u64, qi as u64, g as u64]);
                    let mut d = LearnedDecider::sampling(&policy, seed);
                    let run = route_one(&setup, &router, q, &mut d)?;
                    group.push(Rollout {
                        trace: run.outcome.trace,
                        reward: run.score.reward,
                    });
                    all_scores.push(run.score);
                }
                groups.push(group);
                bar.inc(1);
            }
            let log = trainer.update(&groups)?;
            pl += log.policy_loss;
            vl += log.value_loss;
            en += log.entropy;
            updates += 1;
        }
        let s = summarize(&all_scores);
        let u = updates.max(1) as f32;
        let log = EpochLog {
            epoch: epoch + 1,
            reward: s.reward,
            network_share: s.network_share,
            containment: s.containment,
            all_gold: s.all_gold,
            rounds: s.rounds,
            policy_loss: pl / u,
            value_loss: vl / u,
            entropy: en / u,
        };
        bar.set_message(format!("epoch {} reward {:.3}", epoch + 1, s.reward));
        eprintln!(
            "epoch {:>2}: reward {:.3}, network calls/q {:.2}, containment {}, all_gold {}, rounds {:.2}, entropy {:.3}",
            log.epoch,
            log.reward,
            log.network_share,
            log.containment.map_or("–".into(), |v| format!("{v:.3}")),
            log.all_gold.map_or("–".into(), |v| format!("{v:.3}")),
            log.rounds,
            log.entropy
        );
        logs.push(log);
    }
    bar.finish();
    let mut policy = trainer.policy();
    if let Some(budget) = args.network_budget {
        let share;
        (policy, share) = calibrate_bar(&setup, &router, policy, budget)?;
        eprintln!(
            "network bar {:.4}: {share:.2} network calls per training question (budget {budget})",
            policy.network_bar()
        );
    }
    let network_bar = policy.network_bar();
    let router_config = RouterConfig {
        version: ROUTER_FORMAT_VERSION,
        hidden: args.hidden,
        features: rlrag_router::features::FEATURES,
        confidence,
        pipeline: pipe,
        network_bar,
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let write = |name: &str, bytes: &[u8]| {
        let p = args.out.join(name);
        std::fs::write(&p, bytes).with_context(|| format!("cannot write {}", p.display()))
    };
    write("model.safetensors", &policy.weights_safetensors()?)?;
    write("config.json", &serde_json::to_vec_pretty(&router_config)?)?;
    let manifest = serde_json::json!({
        "model_kind": "router",
        "data": args.setup.data.display().to_string(),
        "split": setup.split,
        "questions": n,
        "local_fraction": args.setup.local_fraction,
        "reward": setup.reward,
        "epochs": args.epochs,
        "rollouts": args.rollouts,
        "seed": args.setup.seed,
        "policy_seed": policy_seed,
        "network_budget": args.network_budget,
        "seconds": started.elapsed().as_secs_f64(),
    });
    write("manifest.json", &serde_json::to_vec_pretty(&manifest)?)?;
    let mut jsonl = String::new();
    for l in &logs {
        jsonl.push_str(&serde_json::to_string(l)?);
        jsonl.push('\n');
    }
    write("training.jsonl", jsonl.as_bytes())?;
    write("training.svg", plot(&logs).as_bytes())?;
    eprintln!(
        "wrote {} (model.safetensors, config.json, manifest.json, training.jsonl, training.svg) in {:.0} s",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Reward, network calls per question and accuracy per epoch as an SVG chart.
fn plot(logs: &[EpochLog]) -> String {
    let (w, h, pad) = (640.0, 360.0, 48.0);
    let n = logs.len().max(2) as f64 - 1.0;
    let x = |i: usize| pad + (w - 2.0 * pad) * i as f64 / n;
    let y = |v: f64| h - pad - (h - 2.0 * pad) * v.clamp(0.0, 1.0);
    type Series = fn(&EpochLog) -> Option<f64>;
    let series: [(&str, &str, Series); 4] = [
        ("reward", "#1f77b4", |l| Some(l.reward)),
        ("network calls / question", "#d62728", |l| {
            Some(l.network_share)
        }),
        ("containment@10", "#2ca02c", |l| l.containment),
        ("all_gold@10", "#9467bd", |l| l.all_gold),
    ];
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let _ = writeln!(
        svg,
        "<line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/><line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{}\" stroke=\"black\"/>",
        h - pad,
        w - pad,
        h - pad,
        h - pad
    );
    for t in [0.0, 0.5, 1.0] {
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{t:.1}</text>",
            pad - 6.0,
            y(t) + 4.0
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">epoch</text>",
        w / 2.0,
        h - 12.0
    );
    for (k, (name, color, f)) in series.iter().enumerate() {
        let points: Vec<String> = logs
            .iter()
            .enumerate()
            .filter_map(|(i, l)| f(l).map(|v| format!("{:.1},{:.1}", x(i), y(v))))
            .collect();
        if points.is_empty() {
            continue;
        }
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            points.join(" ")
        );
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" fill=\"{color}\">{name}</text>",
            pad + 8.0 + 150.0 * k as f64,
            pad - 16.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}
