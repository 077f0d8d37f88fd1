//! The router's evaluation: every question of a [`RouterSetup`] routed,
//! answered and scored by the fixed baselines and a learned policy, with
//! traces, LLM judging and RLAG pairs on request.

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::str::FromStr;

use rlrag_retriever::Query;
use rlrag_router::eval::{PolicyReport, QuestionScore, summarize};
use rlrag_router::memory::Confidence;
use rlrag_router::policy::LearnedDecider;
use rlrag_router::{Decider, FixedPolicy, Sensed};
use serde::Serialize;

use crate::EvalError;
use crate::datasets::Role;
use crate::error::{io, setting};
use crate::progress::Progress;
use crate::router_setup::{NEVER, RouterSetup, RouterSetupConfig, Run, load_router};

/// A policy of the evaluation: a fixed baseline or the learned one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyName {
    /// A fixed schedule.
    Fixed(FixedPolicy),
    /// The trained policy (`--weights`).
    Learned,
}

impl PolicyName {
    /// The name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fixed(p) => p.name(),
            Self::Learned => "learned",
        }
    }
}

impl fmt::Display for PolicyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PolicyName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "learned" {
            return Ok(Self::Learned);
        }
        FixedPolicy::BASELINES
            .into_iter()
            .find(|p| p.name() == s)
            .map(Self::Fixed)
            .ok_or_else(|| {
                let names: Vec<&str> = FixedPolicy::BASELINES.iter().map(|p| p.name()).collect();
                format!("{s:?} is not one of {}, learned", names.join(", "))
            })
    }
}

/// What `eval-router` runs and writes.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct RouterEvalConfig {
    /// The experiment.
    #[cfg_attr(feature = "clap", command(flatten))]
    pub setup: RouterSetupConfig,
    /// A router directory from `train-router` (adds the `learned` policy).
    #[cfg_attr(feature = "clap", arg(long))]
    pub weights: Option<PathBuf>,
    /// Hold the learned policy's network calls to this bar instead of the
    /// one saved with it (`network_bar`, see train-router --network-budget).
    #[cfg_attr(feature = "clap", arg(long, requires = "weights"))]
    pub network_bar: Option<f32>,
    /// Also ask the generator to judge every answer against the gold ones
    /// (LLM-as-judge; needs --generator).
    #[cfg_attr(feature = "clap", arg(long))]
    pub judge: bool,
    /// Write RLAG preference pairs (the answer with the evidence against the
    /// answer without it) as JSONL here (needs --generator).
    #[cfg_attr(feature = "clap", arg(long))]
    pub rlag_out: Option<PathBuf>,
    /// Whose evidence the RLAG pairs use: `local`, `network`, `both`,
    /// `multihop` or `learned` (the default with --weights; else `network`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub rlag_policy: Option<PolicyName>,
    /// Write every question's trace (each decision with its features,
    /// probability, queries, faults, cost) and scores, per policy, as JSONL here.
    #[cfg_attr(feature = "clap", arg(long))]
    pub traces: Option<PathBuf>,
    /// The fixed baselines run background sensing before their schedule
    /// (its passages align the first round's queries and seed its bridges).
    #[cfg_attr(feature = "clap", arg(long))]
    pub sense_baselines: bool,
}

impl RouterEvalConfig {
    /// The evaluation of `setup` with the fixed baselines only.
    pub fn baselines(setup: RouterSetupConfig) -> Self {
        Self {
            setup,
            weights: None,
            network_bar: None,
            judge: false,
            rlag_out: None,
            rlag_policy: None,
            traces: None,
            sense_baselines: false,
        }
    }

    /// The policy whose evidence feeds the RLAG pairs, checked before any work.
    fn rlag_policy(&self) -> Result<PolicyName, EvalError> {
        let Some(name) = self.rlag_policy else {
            return Ok(if self.weights.is_some() {
                PolicyName::Learned
            } else {
                PolicyName::Fixed(FixedPolicy::Network)
            });
        };
        if self.rlag_out.is_none() {
            return Err(setting("--rlag-policy", "--rlag-policy needs --rlag-out"));
        }
        if name == PolicyName::Learned && self.weights.is_none() {
            return Err(setting(
                "--rlag-policy",
                "--rlag-policy learned needs --weights",
            ));
        }
        Ok(name)
    }
}

/// One line of the traces JSONL.
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
) -> Result<(), EvalError> {
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

/// The `eval-router` report (its JSON is the `--json` contract).
#[derive(Debug, Clone, Serialize)]
pub struct RouterEvalReport {
    /// The dataset's name.
    pub dataset: String,
    /// The split (with its fold).
    pub split: String,
    /// Questions evaluated.
    pub questions: usize,
    /// Passages in the local index.
    pub local_documents: usize,
    /// Passages in the corpus.
    pub corpus_documents: usize,
    /// Each policy's summary, by name.
    pub policies: BTreeMap<String, PolicyReport>,
}

impl RouterEvalReport {
    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} ({} split, {} questions; local index {} of {} passages)",
            self.dataset, self.split, self.questions, self.local_documents, self.corpus_documents
        );
        let generated = self.policies.values().any(|p| p.f1.is_some());
        let judged = self.policies.values().any(|p| p.judge.is_some());
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
        for (name, p) in &self.policies {
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
        if let Some(verdict) = self.verdict() {
            let _ = writeln!(out, "{verdict}");
        }
        out
    }

    /// Whether the learned policy beats always-network on containment, in
    /// words (`None` without a learned policy or containment labels).
    pub fn verdict(&self) -> Option<String> {
        let learned = self.policies.get("learned")?;
        let network = self.policies.get(FixedPolicy::Network.name())?;
        let (l, n) = (learned.containment?, network.containment?);
        let calls = learned.network_share;
        Some(if l >= n {
            format!(
                "the learned policy matches or beats always-network: containment@10 {l:.3} against {n:.3}, with {calls:.2} network calls per question against 1"
            )
        } else {
            format!(
                "the learned policy does not beat always-network here: containment@10 {l:.3} against {n:.3}, with {calls:.2} network calls per question against 1"
            )
        })
    }
}

/// Evaluate the fixed baselines (and the learned policy with `weights`)
/// on the setup's questions; writes the traces and RLAG pairs asked for.
pub fn evaluate(
    config: &RouterEvalConfig,
    progress: &dyn Progress,
) -> Result<RouterEvalReport, EvalError> {
    if config.setup.generator.is_none() && (config.judge || config.rlag_out.is_some()) {
        return Err(setting(
            "--generator",
            "--judge and --rlag-out need --generator",
        ));
    }
    let rlag_policy = config.rlag_policy()?;
    let setup = RouterSetup::new(&config.setup, Role::Eval, progress)?;
    let mut policies = BTreeMap::new();
    let mut rlag_runs = None;
    // Only serialised when asked for.
    let mut traces = config.traces.as_ref().map(|_| String::new());
    // Judge (when asked), summarise and trace one policy's runs.
    let mut record = |name: PolicyName, runs: &mut [Run]| -> Result<(), EvalError> {
        setup.judge_all(runs, config.judge);
        let scores: Vec<QuestionScore> = runs.iter().map(|r| r.score.clone()).collect();
        policies.insert(name.to_string(), summarize(&scores));
        if let Some(out) = traces.as_mut() {
            trace_lines(name.as_str(), runs, &setup.questions, out)?;
        }
        Ok(())
    };
    for fixed in FixedPolicy::BASELINES {
        let router = setup.router(config.setup.pipeline(NEVER), Confidence::default())?;
        let sense = config.sense_baselines;
        let mut runs = setup.run_all(&router, fixed.name(), |_| -> Box<dyn Decider> {
            if sense {
                Box::new(Sensed(fixed))
            } else {
                Box::new(fixed)
            }
        })?;
        record(PolicyName::Fixed(fixed), &mut runs)?;
        if PolicyName::Fixed(fixed) == rlag_policy {
            rlag_runs = Some(runs);
        }
    }
    if let Some(dir) = &config.weights {
        let (policy, router_config) = load_router(dir)?;
        let policy = match config.network_bar {
            Some(bar) => policy.with_network_bar(bar)?,
            None => policy,
        };
        let router = setup.router(
            router_config.pipeline.clone(),
            router_config.confidence.clone(),
        )?;
        let mut runs = setup.run_all(&router, "learned", |_| {
            Box::new(LearnedDecider::greedy(&policy))
        })?;
        record(PolicyName::Learned, &mut runs)?;
        if rlag_policy == PolicyName::Learned {
            rlag_runs = Some(runs);
        }
    }
    if let (Some(path), Some(traces)) = (&config.traces, &traces) {
        std::fs::write(path, traces).map_err(io("write", path))?;
        progress.note(&format!("wrote the traces to {}", path.display()));
    }
    if let (Some(path), Some(runs)) = (&config.rlag_out, &rlag_runs) {
        let (lines, written) = setup.rlag_pairs(runs)?;
        std::fs::write(path, lines).map_err(io("write", path))?;
        progress.note(&format!(
            "wrote {written} RLAG preference pairs ({} questions, {rlag_policy}'s evidence) to {}",
            runs.len(),
            path.display()
        ));
    }
    if setup.generator_failures() > 0 {
        progress.note(&format!(
            "the generator failed {} times (those answers scored 0)",
            setup.generator_failures()
        ));
    }
    if setup.augment_failures() > 0 {
        progress.note(&format!(
            "{} local searches went without their hypothetical document (the generator failed)",
            setup.augment_failures()
        ));
    }
    Ok(RouterEvalReport {
        dataset: setup.name.clone(),
        split: setup.split.clone(),
        questions: setup.questions.len(),
        local_documents: setup.local_docs,
        corpus_documents: setup.corpus_docs,
        policies,
    })
}
