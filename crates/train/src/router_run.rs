//! A whole training run of the routing policy (`trainer train-router`):
//! the confidence fitted on the fixed policies' outcomes, REINFORCE over
//! seeded rollouts per question, optionally the network bar calibrated to
//! a budget of network calls, and the router directory written (weights,
//! config, manifest, per-epoch log and chart).

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::Device;
use rlrag_eval::chart::{LineChart, Series};
use rlrag_eval::datasets::Role;
use rlrag_eval::device::DeviceList;
use rlrag_eval::models::{CONFIG_FILE, WEIGHTS_FILE, write_dir};
use rlrag_eval::progress::Progress;
use rlrag_eval::router_setup::{NEVER, RouterSetup, RouterSetupConfig};
use rlrag_retriever::hash::seed_from;
use rlrag_retriever::rng::SplitMix64;
use rlrag_router::eval::{QuestionScore, summarize};
use rlrag_router::memory::{CONFIDENCE_FEATURES, Confidence};
use rlrag_router::policy::{LearnedDecider, LearnedPolicy, ROUTER_FORMAT_VERSION, RouterConfig};
use rlrag_router::{FixedPolicy, Router};
use serde::Serialize;

use crate::parallel::training_devices;
use crate::{Rollout, RouterTrainConfig, RouterTrainer, TrainError};

/// The per-epoch log of the run (`training.jsonl`).
pub const LOG_FILE: &str = "training.jsonl";
/// The chart of that log (`training.svg`).
pub const CHART_FILE: &str = "training.svg";

/// A training run of the router.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct RouterRunConfig {
    /// The experiment.
    #[cfg_attr(feature = "clap", command(flatten))]
    pub setup: RouterSetupConfig,
    /// Where to write the router directory.
    #[cfg_attr(feature = "clap", arg(long))]
    pub out: PathBuf,
    /// Passes over the training questions.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 60))]
    pub epochs: usize,
    /// Rollouts per question (a group; 1 uses the learned baseline alone).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 8))]
    pub rollouts: usize,
    /// Data-parallel updates across devices, comma-separated (`cpu:0,cpu:1`
    /// for two CPU workers): each update's decisions are split between them
    /// and the gradients summed on the first, which holds the policy (the
    /// update one device makes on the whole batch). Default: the CPU alone.
    #[cfg_attr(feature = "clap", arg(long))]
    pub devices: Option<DeviceList>,
    /// Questions per update.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 8))]
    pub batch_size: usize,
    /// AdamW learning rate.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.01))]
    pub lr: f64,
    /// Entropy bonus.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.03))]
    pub entropy: f32,
    /// Hidden units of the policy.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 32))]
    pub hidden: usize,
    /// Stop a question once the evidence confidence reaches this.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.9))]
    pub confidence_stop: f32,
    /// Seed of the policy's initialisation, shuffles and rollouts (default:
    /// --seed); varies the training run on the same local/network split.
    #[cfg_attr(feature = "clap", arg(long))]
    pub policy_seed: Option<u64>,
    /// Network calls per question the trained policy may make on the
    /// training questions: after training, the smallest network bar that
    /// keeps its greedy decisions within it is saved with the weights
    /// (`network_bar` in config.json). Without it the bar is 0.
    #[cfg_attr(feature = "clap", arg(long, value_parser = parse_budget))]
    pub network_budget: Option<f64>,
}

/// A budget of network calls per question: a number, 0 or more.
pub fn parse_budget(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(b) if b.is_finite() && b >= 0.0 => Ok(b),
        _ => Err(format!(
            "{s:?} is not a number of calls per question (0 or more)"
        )),
    }
}

/// One epoch of the run.
#[derive(Debug, Clone, Serialize)]
pub struct EpochLog {
    /// 1-based.
    pub epoch: usize,
    /// Mean reward of the epoch's rollouts.
    pub reward: f64,
    /// Network calls per rollout.
    pub network_share: f64,
    /// Containment@10 of the rollouts.
    pub containment: Option<f64>,
    /// All-gold@10 of the rollouts.
    pub all_gold: Option<f64>,
    /// Rounds per rollout.
    pub rounds: f64,
    /// Mean policy loss per update.
    pub policy_loss: f32,
    /// Mean value loss per update.
    pub value_loss: f32,
    /// Mean entropy per update.
    pub entropy: f32,
}

/// Bisection steps of the network bar (a bar within 1/2^12 of the smallest).
const BAR_STEPS: usize = 12;

/// `policy` held to the smallest network bar at which it makes at most
/// `budget` network calls per training question (greedy), and the calls it
/// makes there. Fewer calls as the bar rises is assumed, not guaranteed (a
/// question kept off the network at one hop may call it at the next), so
/// the bar returned is always one measured to keep the budget, or 1.
fn calibrate_bar(
    setup: &RouterSetup<'_>,
    router: &Router<'_>,
    policy: LearnedPolicy,
    budget: f64,
) -> Result<(LearnedPolicy, f64), TrainError> {
    let mut policy = policy.with_network_bar(0.0)?;
    let at_zero = setup.network_share(router, &policy)?;
    if at_zero <= budget {
        return Ok((policy, at_zero));
    }
    policy = policy.with_network_bar(1.0)?;
    let (mut lo, mut hi, mut at_hi) = (0.0_f32, 1.0_f32, setup.network_share(router, &policy)?);
    if at_hi > budget {
        setup.progress().note(&format!(
            "warning: even a network bar of 1 leaves {at_hi:.2} network calls/q (budget {budget})"
        ));
        return Ok((policy, at_hi));
    }
    for _ in 0..BAR_STEPS {
        let mid = 0.5 * (lo + hi);
        policy = policy.with_network_bar(mid)?;
        let at = setup.network_share(router, &policy)?;
        if at <= budget {
            (hi, at_hi) = (mid, at);
        } else {
            lo = mid;
        }
    }
    Ok((policy.with_network_bar(hi)?, at_hi))
}

/// The confidence fitted on the fixed policies' final evidence, its
/// calibration error and the outcomes it saw.
fn fit_confidence(
    setup: &RouterSetup<'_>,
    config: &RouterSetupConfig,
) -> Result<(Confidence, f32, usize), TrainError> {
    let mut samples: Vec<([f32; CONFIDENCE_FEATURES], bool)> = Vec::new();
    for fixed in [
        FixedPolicy::Local,
        FixedPolicy::Network,
        FixedPolicy::Multihop,
    ] {
        let router = setup.router(config.pipeline(NEVER), Confidence::default())?;
        let runs = setup.run_all(&router, "confidence", |_| Box::new(fixed))?;
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

/// What a run did.
#[derive(Debug, Clone)]
pub struct RouterRunReport {
    /// Every epoch.
    pub epochs: Vec<EpochLog>,
    /// The saved network bar.
    pub network_bar: f32,
    /// Network calls per training question at that bar (with a budget).
    pub calibrated_share: Option<f64>,
    /// Seconds in all.
    pub seconds: f64,
    /// The router directory written.
    pub out: PathBuf,
}

/// Train the routing policy as `config` says and write its directory.
///
/// Longer than the others on purpose: the run's stages in order (setup,
/// confidence, epochs of rollouts and updates, calibration, the directory),
/// which share the setup, the router and the trainer.
pub fn run(
    config: &RouterRunConfig,
    progress: &dyn Progress,
) -> Result<RouterRunReport, TrainError> {
    if config.rollouts == 0 || config.batch_size == 0 || config.epochs == 0 {
        return Err(TrainError::Config {
            name: "epochs",
            reason: "--epochs, --rollouts and --batch-size must be at least 1".into(),
        });
    }
    let started = Instant::now();
    let setup = RouterSetup::new(&config.setup, Role::Train, progress)?;
    progress.note(&format!(
        "{}: {} training questions; local index {} of {} passages; network {}",
        setup.name,
        setup.questions.len(),
        setup.local_docs,
        setup.corpus_docs,
        setup.network_name
    ));
    let (confidence, ece, samples) = fit_confidence(&setup, &config.setup)?;
    progress.note(&format!(
        "confidence fitted on {samples} outcomes: weights {:?}, bias {:.3}, calibration error {ece:.3}",
        confidence.weights, confidence.bias
    ));
    let pipe = config.setup.pipeline(config.confidence_stop);
    let router = setup.router(pipe.clone(), confidence.clone())?;
    let policy_seed = config.policy_seed.unwrap_or(config.setup.seed);
    let train_config = RouterTrainConfig {
        hidden: config.hidden,
        learning_rate: config.lr,
        entropy: config.entropy,
        seed: policy_seed,
        ..RouterTrainConfig::default()
    };
    let devices = training_devices(config.devices.as_ref(), Device::flex())?;
    let mut trainer = RouterTrainer::new(train_config, &devices[0])?;
    trainer.set_devices(devices.clone())?;
    let mut logs = Vec::new();
    let n = setup.questions.len();
    let mut order: Vec<usize> = (0..n).collect();
    let mut bar = progress.bar((config.epochs * n) as u64, "train");
    for epoch in 0..config.epochs {
        // A seeded shuffle per epoch.
        SplitMix64::new(seed_from(&[policy_seed, epoch as u64])).shuffle(&mut order);
        let mut all_scores: Vec<QuestionScore> = Vec::new();
        let (mut pl, mut vl, mut en, mut updates) = (0.0, 0.0, 0.0, 0);
        for chunk in order.chunks(config.batch_size) {
            let policy = trainer.policy();
            let mut groups = Vec::with_capacity(chunk.len());
            for &qi in chunk {
                let q = &setup.questions[qi];
                let mut group = Vec::with_capacity(config.rollouts);
                for g in 0..config.rollouts {
                    let seed = seed_from(&[policy_seed, epoch as u64, qi as u64, g as u64]);
                    let mut d = LearnedDecider::sampling(&policy, seed);
                    let run = setup.route_one(&router, q, &mut d)?;
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
        progress.note(&format!(
            "epoch {:>2}: reward {:.3}, network calls/q {:.2}, containment {}, all_gold {}, rounds {:.2}, entropy {:.3}",
            log.epoch,
            log.reward,
            log.network_share,
            log.containment.map_or("–".into(), |v| format!("{v:.3}")),
            log.all_gold.map_or("–".into(), |v| format!("{v:.3}")),
            log.rounds,
            log.entropy
        ));
        logs.push(log);
    }
    bar.finish();
    let mut policy = trainer.policy();
    let mut calibrated_share = None;
    if let Some(budget) = config.network_budget {
        let share;
        (policy, share) = calibrate_bar(&setup, &router, policy, budget)?;
        calibrated_share = Some(share);
        progress.note(&format!(
            "network bar {:.4}: {share:.2} network calls per training question (budget {budget})",
            policy.network_bar()
        ));
    }
    let network_bar = policy.network_bar();
    let router_config = RouterConfig {
        version: ROUTER_FORMAT_VERSION,
        hidden: config.hidden,
        features: rlrag_router::features::FEATURES,
        confidence,
        pipeline: pipe,
        network_bar,
    };
    let manifest = serde_json::json!({
        "model_kind": "router",
        "data": config.setup.data.display().to_string(),
        "split": setup.split,
        "questions": n,
        "local_fraction": config.setup.local_fraction,
        "reward": setup.reward,
        "epochs": config.epochs,
        "rollouts": config.rollouts,
        "seed": config.setup.seed,
        "policy_seed": policy_seed,
        "network_budget": config.network_budget,
        "seconds": started.elapsed().as_secs_f64(),
    });
    let mut jsonl = String::new();
    for l in &logs {
        jsonl.push_str(&serde_json::to_string(l)?);
        jsonl.push('\n');
    }
    write_dir(
        &config.out,
        &[
            (WEIGHTS_FILE, &policy.weights_safetensors()?),
            (CONFIG_FILE, &serde_json::to_vec_pretty(&router_config)?),
            (LOG_FILE, jsonl.as_bytes()),
            (CHART_FILE, chart(&logs).to_svg().as_bytes()),
        ],
        &manifest,
    )?;
    Ok(RouterRunReport {
        epochs: logs,
        network_bar,
        calibrated_share,
        seconds: started.elapsed().as_secs_f64(),
        out: config.out.clone(),
    })
}

/// Reward, network calls per question and accuracy per epoch.
pub fn chart(logs: &[EpochLog]) -> LineChart {
    type Pick = fn(&EpochLog) -> Option<f64>;
    let lines: [(&str, &'static str, Pick); 4] = [
        ("reward", "#1f77b4", |l| Some(l.reward)),
        ("network calls / question", "#d62728", |l| {
            Some(l.network_share)
        }),
        ("containment@10", "#2ca02c", |l| l.containment),
        ("all_gold@10", "#9467bd", |l| l.all_gold),
    ];
    LineChart {
        x_label: "epoch",
        series: lines
            .iter()
            .map(|(name, color, pick)| Series {
                name: (*name).to_owned(),
                color,
                points: logs
                    .iter()
                    .filter_map(|l| pick(l).map(|v| (l.epoch as f64, v)))
                    .collect(),
            })
            .collect(),
    }
}
