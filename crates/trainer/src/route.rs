//! `trainer eval-router` and `trainer train-router`: the routing pipeline on a
//! QA set with the local source holding a seeded fraction of the corpus and
//! the network source all of it (served in-process on 127.0.0.1 unless
//! `--network` names an endpoint).

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
use rlrag_retriever::engine::{Engine, EngineModels, EngineOptions, SearchMode, fingerprint};
use rlrag_retriever::{Dataset, DatasetFormat, Document, Query};
use rlrag_reward::composite::RewardConfig;
use rlrag_router::eval::{PolicyReport, QuestionScore, score, summarize};
use rlrag_router::http::HttpSource;
use rlrag_router::memory::{CONFIDENCE_FEATURES, Confidence};
use rlrag_router::policy::{LearnedDecider, LearnedPolicy, ROUTER_FORMAT_VERSION, RouterConfig};
use rlrag_router::{
    Decider, FixedPolicy, LocalSource, Outcome, PipelineConfig, Router, SystemClock,
};
use rlrag_train::{Rollout, RouterTrainConfig, RouterTrainer};
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
    /// Use only the first N questions of the split.
    #[arg(long)]
    limit: Option<usize>,
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
    /// Most hops per question.
    #[arg(long, default_value_t = 3)]
    max_hops: u32,
}

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
    fn new(args: &SetupArgs, default_split: &str) -> anyhow::Result<Self> {
        if !(args.local_fraction > 0.0 && args.local_fraction <= 1.0) {
            bail!(
                "--local-fraction must be in (0, 1], got {}",
                args.local_fraction
            );
        }
        let split = args
            .split
            .clone()
            .unwrap_or_else(|| default_split.to_owned());
        let ds = Dataset::load(&args.data, args.format, Some(&split))?;
        let mut questions: Vec<Query> = ds
            .queries
            .iter()
            .filter(|q| !q.answers.is_empty() || !q.qrels.is_empty())
            .cloned()
            .collect();
        if let Some(n) = args.limit {
            questions.truncate(n);
        }
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
        block_on(engine.add_documents(&local_docs, &mut |p| bar.inc(p.done as u64)))?;
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
            ..RewardConfig::default()
        };
        reward.validate()?;
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
        })
    }

    fn router(
        &self,
        pipeline: PipelineConfig,
        confidence: Confidence,
    ) -> anyhow::Result<Router<'_>> {
        Ok(Router::new(
            &self.local,
            Some(&self.network),
            pipeline,
            confidence,
        )?)
    }
}

fn pipeline(args: &SetupArgs, confidence_stop: f32) -> PipelineConfig {
    PipelineConfig {
        max_hops: args.max_hops,
        confidence_stop,
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

/// Run `questions` with a fresh decider each; scores and outcomes.
fn run_all<'p>(
    router: &Router<'_>,
    questions: &[Query],
    reward: &RewardConfig,
    label: &'static str,
    mut decider: impl FnMut(usize) -> Box<dyn Decider + 'p>,
) -> anyhow::Result<(Vec<QuestionScore>, Vec<Outcome>)> {
    let mut bar = LazyBar::new(questions.len() as u64, label);
    let mut scores = Vec::with_capacity(questions.len());
    let mut outcomes = Vec::with_capacity(questions.len());
    for (i, q) in questions.iter().enumerate() {
        let mut d = decider(i);
        let out = run_one(router, q, d.as_mut())?;
        scores.push(score(&out, q, reward)?);
        outcomes.push(out);
        bar.inc(1);
    }
    bar.finish();
    Ok((scores, outcomes))
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
    /// Write the report here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
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
    let _ = writeln!(
        out,
        "| policy | containment@10 | all_gold@10 | network calls/q | rounds/q | p50 ms | p95 ms | suppressed/q | reward |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    let f = |v: Option<f64>| v.map_or("–".to_owned(), |x| format!("{x:.3}"));
    for (name, p) in &report.policies {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {:.2} | {:.2} | {:.1} | {:.1} | {:.2} | {:.3} |",
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

pub fn eval(args: &EvalRouterArgs) -> anyhow::Result<()> {
    let setup = Setup::new(&args.setup, "test")?;
    let mut policies = BTreeMap::new();
    for fixed in FixedPolicy::ALL {
        let router = setup.router(pipeline(&args.setup, NEVER), Confidence::default())?;
        let (scores, _) = run_all(
            &router,
            &setup.questions,
            &setup.reward,
            fixed.name(),
            |_| Box::new(fixed),
        )?;
        policies.insert(fixed.name().to_owned(), summarize(&scores));
    }
    if let Some(dir) = &args.weights {
        let (policy, config) = load_router(dir)?;
        let router = setup.router(config.pipeline.clone(), config.confidence.clone())?;
        let (scores, _) = run_all(&router, &setup.questions, &setup.reward, "learned", |_| {
            Box::new(LearnedDecider::greedy(&policy))
        })?;
        policies.insert("learned".to_owned(), summarize(&scores));
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
    #[arg(long, default_value_t = 8)]
    epochs: usize,
    /// Rollouts per question (a group; 1 uses the learned baseline alone).
    #[arg(long, default_value_t = 4)]
    rollouts: usize,
    /// Questions per update.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    /// Entropy bonus.
    #[arg(long, default_value_t = 0.01)]
    entropy: f32,
    /// Hidden units of the policy.
    #[arg(long, default_value_t = 32)]
    hidden: usize,
    /// Stop a question once the evidence confidence reaches this.
    #[arg(long, default_value_t = 0.9)]
    confidence_stop: f32,
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
        let (scores, outcomes) = run_all(
            &router,
            &setup.questions,
            &setup.reward,
            "confidence",
            |_| Box::new(fixed),
        )?;
        for (s, o) in scores.iter().zip(&outcomes) {
            if let (Some(label), Some(last)) =
                (s.containment.or(s.all_gold), o.trace.decisions.last())
            {
                samples.push((last.evidence_features, label));
            }
        }
    }
    let fitted = Confidence::fit(&samples, 3000).unwrap_or_default();
    let ece = fitted.calibration_error(&samples);
    Ok((fitted, ece, samples.len()))
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
    let setup = Setup::new(&args.setup, "train")?;
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
    let config = RouterTrainConfig {
        hidden: args.hidden,
        learning_rate: args.lr,
        entropy: args.entropy,
        seed: args.setup.seed,
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
            rlrag_router::policy::Sampler::new(hash_seed(&[args.setup.seed, epoch as u64]));
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
                    let seed = hash_seed(&[args.setup.seed, epoch as u64, qi as u64, g as u64]);
                    let mut d = LearnedDecider::sampling(&policy, seed);
                    let out = run_one(&router, q, &mut d)?;
                    let s = score(&out, q, &setup.reward)?;
                    group.push(Rollout {
                        trace: out.trace,
                        reward: s.reward,
                    });
                    all_scores.push(s);
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
    let policy = trainer.policy();
    let router_config = RouterConfig {
        version: ROUTER_FORMAT_VERSION,
        hidden: args.hidden,
        features: rlrag_router::features::FEATURES,
        confidence,
        pipeline: pipe,
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
        "reward": {"correctness": "containment", "lambda": args.setup.lambda},
        "epochs": args.epochs,
        "rollouts": args.rollouts,
        "seed": args.setup.seed,
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
