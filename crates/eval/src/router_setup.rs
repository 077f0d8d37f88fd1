//! The router's experiment: a QA set with the local source holding a
//! seeded fraction of the corpus and the network source all of it (served
//! in-process on 127.0.0.1 unless an endpoint is given), the reward, the
//! optional generator; questions routed, answered and scored. Training
//! (`rlrag-train`) and evaluation ([`crate::router_eval`]) both run on it.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use burn::tensor::Device;
use futures_lite::future::block_on;
use rlrag_encoder::models::pretrained;
use rlrag_retriever::engine::{Engine, EngineModels, EngineOptions, SearchMode};
use rlrag_retriever::{DatasetFormat, Document, Query, Split};
use rlrag_retriever::{Fusion, Reranker};
use rlrag_reward::composite::{Correctness, RewardConfig};
use rlrag_reward::cost::CostWeights;
use rlrag_router::eval::{QuestionScore, score, summarize};
use rlrag_router::http::HttpSource;
use rlrag_router::llm::{LlmClient, LlmConfig};
use rlrag_router::memory::Confidence;
use rlrag_router::opensearch::Flavour;
use rlrag_router::policy::{LearnedDecider, LearnedPolicy, RouterConfig};
use rlrag_router::{Decider, LocalSource, Outcome, PipelineConfig, Router, Source, SystemClock};

use crate::EvalError;
use crate::augment::{AugmentSettings, CachedAugmenter, Hypotheticals, Sampling};
use crate::datasets::{self, Fold, Role, keep_local};
use crate::device::DeviceChoice;
use crate::error::setting;
use crate::models::{ModelDir, read_file};
use crate::opensearch::ClusterArgs;
use crate::progress::Progress;
use crate::rlag::{passage_text, preference_pair};
use crate::server::{self, Background};

/// The router's experiment: questions, sources, reward, generator.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct RouterSetupConfig {
    /// The QA set: a HotpotQA file or directory, or a `qa` directory.
    #[cfg_attr(feature = "clap", arg(long))]
    pub data: PathBuf,
    /// Dataset format; detected from the path when omitted.
    #[cfg_attr(feature = "clap", arg(long))]
    pub format: Option<DatasetFormat>,
    /// Questions: `train` or `test` (the fixed hash partition) or `all`.
    #[cfg_attr(feature = "clap", arg(long))]
    pub split: Option<Split>,
    /// Use only the first N questions of the split (before --fold cuts them).
    #[cfg_attr(feature = "clap", arg(long))]
    pub limit: Option<usize>,
    /// Cross-validation fold `I/K`: the split's questions are cut into K
    /// parts by a fixed hash of their ids (part 0 of 5 is the `test`
    /// split); `train-router` trains on every part but I and `eval-router`
    /// evaluates on part I (`trainer cv-router` runs every fold).
    #[cfg_attr(feature = "clap", arg(long))]
    pub fold: Option<Fold>,
    /// Share of the corpus in the local index (seeded by --seed).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.5))]
    pub local_fraction: f64,
    /// The network source (`http://host:port/search`); default: the whole
    /// corpus served in-process on 127.0.0.1.
    #[cfg_attr(feature = "clap", arg(long))]
    pub network: Option<String>,
    /// With --network naming an OpenSearch / Elasticsearch cluster
    /// (`http://host:9200`): the rlrag index there (`trainer
    /// index-opensearch`) is the network source.
    #[cfg_attr(feature = "clap", arg(long, requires = "network"))]
    pub network_index: Option<String>,
    /// How the network index is searched: bm25, sparse or hybrid.
    #[cfg_attr(feature = "clap", arg(long, default_value = "hybrid"))]
    pub network_mode: SearchMode,
    /// The network cluster's engine.
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value_t = Flavour::OpenSearch))]
    pub network_flavour: Flavour,
    /// The sparse model that encoded the network index (its queries are
    /// encoded by it; default the pretrained SPLADE-tiny).
    #[cfg_attr(feature = "clap", arg(long))]
    pub network_weights: Option<PathBuf>,
    /// Network time limit per request.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 5000))]
    pub timeout_ms: u64,
    /// How the local index is searched.
    #[cfg_attr(feature = "clap", arg(long, default_value = "bm25"))]
    pub local_mode: SearchMode,
    /// Sparse model of the local index (a trainer directory); default the
    /// pretrained SPLADE-tiny.
    #[cfg_attr(feature = "clap", arg(long))]
    pub local_weights: Option<PathBuf>,
    /// A cross-encoder directory (`trainer train-reranker`): the reader
    /// whose scores of the gathered evidence the policy sees.
    #[cfg_attr(feature = "clap", arg(long))]
    pub reranker: Option<PathBuf>,
    /// Seed of the local split and of every rollout.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 42))]
    pub seed: u64,
    /// λ of the reward: correctness − λ·cost.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.1))]
    pub lambda: f64,
    /// Cost of one network request (before λ).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = CostWeights::default().network_call))]
    pub network_cost: f64,
    /// Cost of one retrieval round (before λ).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = CostWeights::default().round))]
    pub round_cost: f64,
    /// Most hops per question.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 3))]
    pub max_hops: u32,
    /// Weight of a local list against a network list's 1 when the hops'
    /// lists are fused by reciprocal rank.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = PipelineConfig::default().local_weight))]
    pub local_weight: f32,
    /// Weight of the background-sensing passages in that fusion (0: they
    /// only align the query, the evidence leaves them out).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = PipelineConfig::default().sensing_weight))]
    pub sensing_weight: f32,
    /// The generator: an OpenAI-compatible server (`http://host:port/v1`,
    /// e.g. scripts/llm-server.sh) or a model in this process
    /// (`local:<file.gguf>`); it answers every question from the top
    /// evidence, and the answers are scored by EM and F1.
    #[cfg_attr(feature = "clap", arg(long))]
    pub generator: Option<String>,
    /// The `model` field of generator requests.
    #[cfg_attr(feature = "clap", arg(long, default_value = "smollm2-135m-instruct"))]
    pub generator_model: String,
    /// Generator time limit per request (each request is tried twice).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 30_000))]
    pub generator_timeout_ms: u64,
    /// Correctness term of the reward: `containment` (of the evidence), or
    /// `f1` / `exact_match` of the generator's answer (need --generator).
    #[cfg_attr(feature = "clap", arg(long, default_value = "containment"))]
    pub correctness: Correctness,
    /// `decompose` hops ask the generator for their sub-queries (RAG-R1).
    #[cfg_attr(feature = "clap", arg(long))]
    pub llm_sub_queries: bool,
    /// Local searches mix the generator's hypothetical document into each
    /// sub-query (Reinforced-IR's query augmentation).
    #[cfg_attr(feature = "clap", command(flatten))]
    pub augment: AugmentSettings,
}

impl RouterSetupConfig {
    /// The pipeline settings of these runs, stopping at `confidence_stop`.
    pub fn pipeline(&self, confidence_stop: f32) -> PipelineConfig {
        PipelineConfig {
            max_hops: self.max_hops,
            confidence_stop,
            local_weight: self.local_weight,
            sensing_weight: self.sensing_weight,
            ..PipelineConfig::default()
        }
    }
}

/// Passages of the evidence the generator reads.
const ANSWER_PASSAGES: usize = 3;

/// Pipeline settings for the fixed baselines: their schedules decide, the
/// confidence never stops them.
pub const NEVER: f32 = 2.0;

/// Sources and questions, ready to route.
pub struct RouterSetup<'p> {
    /// The dataset's name.
    pub name: String,
    /// The split (with its fold).
    pub split: String,
    /// The labelled questions of the split (and fold).
    pub questions: Vec<Query>,
    /// The local index.
    pub local: LocalSource<'static>,
    /// The network source: a search endpoint or a cluster's index.
    pub network: Box<dyn Source>,
    /// Where the network source is (its URL, and the index of a cluster).
    pub network_name: String,
    _server: Option<Background>,
    /// The reward.
    pub reward: RewardConfig,
    /// Passages in the local index.
    pub local_docs: usize,
    /// Passages in the corpus (the network's).
    pub corpus_docs: usize,
    generator: Option<LlmClient>,
    llm_sub_queries: bool,
    generator_failures: Cell<u32>,
    progress: &'p dyn Progress,
}

/// One routed question: its outcome, the generator's answer, its scores.
pub struct Run {
    /// What the router did and found.
    pub outcome: Outcome,
    /// The generator's answer (with a generator).
    pub prediction: Option<String>,
    /// The question's scores.
    pub score: QuestionScore,
}

impl<'p> RouterSetup<'p> {
    /// Load the questions and build both sources.
    pub fn new(
        config: &RouterSetupConfig,
        role: Role,
        progress: &'p dyn Progress,
    ) -> Result<Self, EvalError> {
        if !(config.local_fraction > 0.0 && config.local_fraction <= 1.0) {
            return Err(setting(
                "--local-fraction",
                format!(
                    "--local-fraction must be in (0, 1], got {}",
                    config.local_fraction
                ),
            ));
        }
        let split = config.split.clone().unwrap_or(match (role, config.fold) {
            (_, Some(_)) => Split::All,
            (Role::Train, None) => Split::Train,
            (Role::Eval, None) => Split::Test,
        });
        let ds = datasets::load(&config.data, config.format, Some(&split))?;
        let mut questions: Vec<Query> = ds
            .queries
            .iter()
            .filter(|q| !q.answers.is_empty() || !q.qrels.is_empty())
            .cloned()
            .collect();
        if let Some(n) = config.limit {
            questions.truncate(n);
        }
        if let Some(f) = config.fold {
            questions.retain(|q| f.holds(q, role));
        }
        let split = match config.fold {
            Some(f) if role == Role::Train => {
                format!("{split}, all folds but {}/{}", f.index, f.count)
            }
            Some(f) => format!("{split}, fold {}/{}", f.index, f.count),
            None => split.to_string(),
        };
        if questions.is_empty() {
            return Err(EvalError::NoQuestions {
                data: config.data.clone(),
                split,
            });
        }
        let local_docs: Vec<Document> = ds
            .corpus
            .iter()
            .filter(|d| keep_local(config.seed, &d.id, config.local_fraction))
            .cloned()
            .collect();
        config.augment.validate(config.generator.is_some())?;
        let generator = match &config.generator {
            Some(url) => Some(LlmClient::new(LlmConfig {
                base_url: url.clone(),
                model: config.generator_model.clone(),
                timeout_ms: config.generator_timeout_ms,
                ..LlmConfig::default()
            })?),
            None => None,
        };
        let mut local = local_source(config, &local_docs, progress)?;
        if config.augment.augment {
            let path = config
                .augment
                .cache_path(&ds.name, &config.generator_model, None);
            let hypotheticals = Hypotheticals::open(
                path,
                generator.clone(),
                Sampling::search(config.augment.augment_tokens),
            )?;
            local = local.with_augmenter(
                Box::new(CachedAugmenter::new(hypotheticals)),
                config.augment.augment_weight,
            )?;
        }
        let (url, server) = match &config.network {
            Some(url) => (url.clone(), None),
            None => {
                let corpus = server::Corpus::new(ds.corpus.clone(), Duration::ZERO)?;
                let bg = server::spawn(corpus, server::Limits::default())?;
                (bg.url.clone(), Some(bg))
            }
        };
        let timeout = Duration::from_millis(config.timeout_ms.max(1));
        let (network, network_name): (Box<dyn Source>, String) = match &config.network_index {
            Some(index) => {
                let cluster = ClusterArgs {
                    url: Some(url.clone()),
                    index: Some(index.clone()),
                    flavour: config.network_flavour,
                    cluster_timeout_ms: config.timeout_ms.max(1),
                    ..ClusterArgs::default()
                };
                let source = crate::opensearch::source(
                    &cluster,
                    config.network_mode,
                    config.network_weights.as_ref(),
                    Fusion::default(),
                    &DeviceChoice::Cpu,
                )?;
                (
                    Box::new(source),
                    format!("{url} index `{index}` ({})", config.network_mode),
                )
            }
            None => (Box::new(HttpSource::new(&url, timeout)?), url.clone()),
        };
        let reward = RewardConfig {
            lambda: config.lambda,
            cost: CostWeights {
                network_call: config.network_cost,
                round: config.round_cost,
                ..CostWeights::default()
            },
            correctness: config.correctness,
            ..RewardConfig::default()
        };
        reward.validate()?;
        if config.generator.is_none() && config.correctness != Correctness::Containment {
            return Err(setting(
                "--correctness",
                format!(
                    "--correctness {:?} scores the generator's answers: give --generator",
                    config.correctness
                ),
            ));
        }
        if config.generator.is_none() && config.llm_sub_queries {
            return Err(setting(
                "--llm-sub-queries",
                "--llm-sub-queries needs --generator",
            ));
        }
        Ok(Self {
            name: ds.name.clone(),
            split,
            questions,
            local,
            network,
            network_name,
            _server: server,
            reward,
            local_docs: local_docs.len(),
            corpus_docs: ds.corpus.len(),
            generator,
            llm_sub_queries: config.llm_sub_queries,
            generator_failures: Cell::new(0),
            progress,
        })
    }

    /// Where progress goes.
    pub fn progress(&self) -> &'p dyn Progress {
        self.progress
    }

    /// Times the generator failed so far (those answers scored 0).
    pub fn generator_failures(&self) -> u32 {
        self.generator_failures.get()
    }

    /// Local searches made without their hypothetical document because
    /// the generator failed.
    pub fn augment_failures(&self) -> u32 {
        self.local.augment_failures()
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

    fn failed(&self, e: &rlrag_router::RouterError) {
        let n = self.generator_failures.get() + 1;
        self.generator_failures.set(n);
        if n <= 3 {
            self.progress
                .note(&format!("generator failed ({n} so far): {e}"));
        }
    }

    /// A router over both sources (with the generator's sub-queries when asked).
    pub fn router(
        &self,
        pipeline: PipelineConfig,
        confidence: Confidence,
    ) -> Result<Router<'_>, EvalError> {
        let router = Router::new(
            &self.local,
            Some(self.network.as_ref()),
            pipeline,
            confidence,
        )?;
        Ok(match &self.generator {
            Some(g) if self.llm_sub_queries => router.with_writer(g),
            _ => router,
        })
    }

    /// Route, answer (with a generator) and score one question.
    pub fn route_one(
        &self,
        router: &Router<'_>,
        q: &Query,
        decider: &mut dyn Decider,
    ) -> Result<Run, EvalError> {
        let clock = SystemClock::default();
        let outcome = block_on(router.run(&q.text, decider, &clock))?;
        let prediction = self.predict(q, &outcome);
        let score = score(&outcome, q, &self.reward, prediction.as_deref())?;
        Ok(Run {
            outcome,
            prediction,
            score,
        })
    }

    /// Run every question with a fresh decider each.
    pub fn run_all<'d>(
        &self,
        router: &Router<'_>,
        label: &'static str,
        mut decider: impl FnMut(usize) -> Box<dyn Decider + 'd>,
    ) -> Result<Vec<Run>, EvalError> {
        let mut bar = self.progress.bar(self.questions.len() as u64, label);
        let mut runs = Vec::with_capacity(self.questions.len());
        for (i, q) in self.questions.iter().enumerate() {
            let mut d = decider(i);
            runs.push(self.route_one(router, q, d.as_mut())?);
            bar.inc(1);
        }
        bar.finish();
        Ok(runs)
    }

    /// The greedy policy's network calls per question.
    pub fn network_share(
        &self,
        router: &Router<'_>,
        policy: &LearnedPolicy,
    ) -> Result<f64, EvalError> {
        let runs = self.run_all(router, "network bar", |_| {
            Box::new(LearnedDecider::greedy(policy))
        })?;
        let scores: Vec<QuestionScore> = runs.into_iter().map(|r| r.score).collect();
        Ok(summarize(&scores).network_share)
    }

    /// With `judge`, the generator's verdict on every answer.
    pub(crate) fn judge_all(&self, runs: &mut [Run], judge: bool) {
        let Some(g) = self.generator.as_ref().filter(|_| judge) else {
            return;
        };
        let mut bar = self.progress.bar(runs.len() as u64, "judge");
        for (r, q) in runs.iter_mut().zip(&self.questions) {
            if let Some(p) = &r.prediction
                && !q.answers.is_empty()
            {
                match g.judge(&q.text, &q.answers, p) {
                    Ok(v) => r.score.judge = Some(v),
                    Err(e) => self.failed(&e),
                }
            }
            bar.inc(1);
        }
        bar.finish();
    }

    /// RLAG pairs: every question's answer with its evidence against a
    /// plain answer, as JSONL; returns the lines and how many.
    pub(crate) fn rlag_pairs(&self, runs: &[Run]) -> Result<(String, usize), EvalError> {
        let Some(g) = self.generator.as_ref() else {
            return Err(setting("--rlag-out", "--rlag-out needs --generator"));
        };
        let mut out = String::new();
        let mut written = 0;
        let mut bar = self.progress.bar(runs.len() as u64, "rlag");
        for (r, q) in runs.iter().zip(&self.questions) {
            bar.inc(1);
            let Some(augmented) = &r.prediction else {
                continue;
            };
            let plain = match g.answer_from(&q.text, &[]) {
                Ok(p) => p,
                Err(e) => {
                    self.failed(&e);
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
        Ok((out, written))
    }
}

/// The local source: a seeded share of the corpus in an engine searched by
/// `local_mode`.
fn local_source(
    config: &RouterSetupConfig,
    docs: &[Document],
    progress: &dyn Progress,
) -> Result<LocalSource<'static>, EvalError> {
    let model = config
        .local_weights
        .clone()
        .unwrap_or_else(|| pretrained("splade-tiny"));
    let files = ModelDir::read(&model)?;
    let sparse = Arc::new(files.load(&Device::flex())?);
    let options = EngineOptions {
        sparse_vectors: config.local_mode == SearchMode::Sparse,
        rerank_m: 0,
        ..EngineOptions::default()
    };
    let mut engine = Engine::new(
        EngineModels {
            sparse,
            sparse_fingerprint: files.fingerprint(),
            dense: None,
        },
        options,
    )?;
    if let Some(dir) = &config.reranker {
        let encoder = ModelDir::read(dir)?.load(&Device::flex())?;
        engine.set_reranker(Some(Reranker::new(Arc::new(encoder))?));
    }
    let mut bar = progress.bar(docs.len() as u64, "local index");
    block_on(engine.add_documents(docs, &mut |p| {
        bar.set_message(format!("local {}", p.stage));
        bar.set_position(p.done as u64);
    }))?;
    bar.finish();
    Ok(LocalSource::new(engine, config.local_mode)?)
}

/// The top evidence as (id, "title: text") for the generator.
fn evidence_texts(out: &Outcome) -> Vec<(String, String)> {
    out.evidence
        .iter()
        .take(ANSWER_PASSAGES)
        .map(|h| (h.id.clone(), passage_text(&h.title, &h.text)))
        .collect()
}

/// A router directory: the policy and its config.
pub fn load_router(dir: &Path) -> Result<(LearnedPolicy, RouterConfig), EvalError> {
    let config_path = dir.join(crate::models::CONFIG_FILE);
    let config =
        RouterConfig::from_json(&read_file(dir, crate::models::CONFIG_FILE)?).map_err(|e| {
            EvalError::Format {
                path: config_path,
                reason: format!("not a router config: {e}"),
            }
        })?;
    let weights = read_file(dir, crate::models::WEIGHTS_FILE)?;
    crate::models::verify_files(
        dir,
        &[
            (
                crate::models::CONFIG_FILE,
                &read_file(dir, crate::models::CONFIG_FILE)?,
            ),
            (crate::models::WEIGHTS_FILE, &weights),
        ],
    )?;
    let policy =
        LearnedPolicy::load(&config, &weights, &Device::flex()).map_err(|e| EvalError::Format {
            path: dir.to_path_buf(),
            reason: format!("cannot load the router: {e}"),
        })?;
    Ok((policy, config))
}
