//! A whole DPO run of the generator (`trainer train-generator`): preference
//! pairs from JSONL (`prompt`, `chosen`, `rejected`: what `eval-router
//! --rlag-out` and `self-boost` write), tokenized as the generator adapter
//! sends them (a chat turn, or a raw completion prompt), a seeded held-out
//! share, [`crate::dpo`] steps with loss, reward margin and accuracy per
//! step and on the held-out pairs, a JSONL log, a curve, a report and the
//! generator's model directory (`<out>/model`, loadable as `local:<dir>`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use rlrag_eval::models::write_dir;
use rlrag_eval::progress::Progress;
use rlrag_generator::GeneratorError;
use rlrag_generator::generate::Generator;
use rlrag_reward::rng::SplitMix64;
use serde::Serialize;
use serde_json::json;

use crate::TrainError;
use crate::dpo::{DpoConfig, DpoStats, DpoTrainer, TokenPair, evaluate, reference_scores};
use crate::reranker_run::setting as refused;
use crate::retriever_run::{step_curve, write_err};

/// How a pair's prompt reaches the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum PromptFormat {
    /// A user turn through the chat template; answers end the turn (RLAG's
    /// answers, which the adapter asks for as chat).
    Chat,
    /// A plain completion prompt (RLRF's hypothetical documents).
    Raw,
}

/// A DPO run of the generator.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct GeneratorRunConfig {
    /// Preference pairs, JSONL with `prompt`, `chosen` and `rejected`.
    #[cfg_attr(feature = "clap", arg(long))]
    pub pairs: PathBuf,
    /// The model to start from (and the frozen reference): a GGUF file or a
    /// generator model directory.
    #[cfg_attr(feature = "clap", arg(long))]
    pub init: PathBuf,
    /// Output directory: the model (`model/`), log, curve and report.
    #[cfg_attr(feature = "clap", arg(long))]
    pub out: PathBuf,
    /// How prompts are sent to the model.
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value = "chat"))]
    pub prompt: PromptFormat,
    /// DPO's β.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.1))]
    pub beta: f64,
    /// AdamW's learning rate.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 5e-6))]
    pub learning_rate: f64,
    /// Optimizer steps.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 100))]
    pub steps: usize,
    /// Pairs per step.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 4))]
    pub batch_size: usize,
    /// Share of the pairs held out of training and evaluated (seeded).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.1))]
    pub holdout: f64,
    /// Evaluate the held-out pairs every N steps (and at the end).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 20))]
    pub eval_every: usize,
    /// Pairs whose prompt and longer answer pass this many tokens are left
    /// out (counted in the report).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 512))]
    pub max_tokens: usize,
    /// Seed of the held-out share and the batch order.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0))]
    pub seed: u64,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct GeneratorRunReport {
    /// Pairs read.
    pub pairs: usize,
    /// Left out: too long for --max-tokens, or chosen equal to rejected.
    pub skipped: usize,
    /// Trained on.
    pub train_pairs: usize,
    /// Held out.
    pub held_out_pairs: usize,
    /// Held-out stats before the first step.
    pub before: Option<DpoStats>,
    /// Held-out stats after the last.
    pub after: Option<DpoStats>,
    /// Training stats per step.
    pub steps: Vec<DpoStats>,
    /// Seconds of training.
    pub seconds: f64,
    /// The model directory.
    pub model: PathBuf,
}

impl GeneratorRunReport {
    /// A short table of the held-out stats.
    pub fn table(&self) -> String {
        let mut out = format!(
            "pairs: {} read, {} skipped, {} trained on, {} held out; {} steps in {:.0} s\n",
            self.pairs,
            self.skipped,
            self.train_pairs,
            self.held_out_pairs,
            self.steps.len(),
            self.seconds
        );
        for (name, s) in [("before", &self.before), ("after", &self.after)] {
            if let Some(s) = s {
                let _ = writeln!(
                    out,
                    "held out {name}: loss {:.4}, margin {:+.4}, accuracy {:.3}",
                    s.loss, s.margin, s.accuracy
                );
            }
        }
        out
    }
}

/// The pairs of a JSONL file, tokenized as `format` says; pairs past
/// `max_tokens` or with equal answers are counted, not kept.
pub fn read_pairs(
    path: &Path,
    generator: &Generator,
    format: PromptFormat,
    max_tokens: usize,
) -> Result<(Vec<TokenPair>, usize, usize), TrainError> {
    let text = std::fs::read_to_string(path).map_err(write_err(path))?;
    let (mut pairs, mut read, mut skipped) = (Vec::new(), 0, 0);
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| {
            refused(
                "pairs",
                format!("{} line {}: {reason}", path.display(), n + 1),
            )
        };
        let row: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let field = |k: &str| {
            row.get(k)
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| bad(format!("no string `{k}`")))
        };
        let (prompt, chosen, rejected) = (field("prompt")?, field("chosen")?, field("rejected")?);
        read += 1;
        match token_pair(generator, format, prompt, chosen, rejected, max_tokens)
            .map_err(|e| bad(e.to_string()))?
        {
            Some(pair) => pairs.push(pair),
            None => skipped += 1,
        }
    }
    Ok((pairs, read, skipped))
}

/// One pair as the model sees it (`format`); `None` when the answers are
/// equal or empty, the prompt empty, or prompt and the longer answer past
/// `max_tokens`.
pub fn token_pair(
    generator: &Generator,
    format: PromptFormat,
    prompt: &str,
    chosen: &str,
    rejected: &str,
    max_tokens: usize,
) -> Result<Option<TokenPair>, GeneratorError> {
    let encode = |t: &str| generator.tokenizer().encode(t);
    let (prompt, mut chosen, mut rejected) = match format {
        PromptFormat::Chat => (
            encode(&generator.template().prompt(&[("user", prompt)]))?,
            encode(chosen.trim())?,
            encode(rejected.trim())?,
        ),
        PromptFormat::Raw => (encode(prompt)?, encode(chosen)?, encode(rejected)?),
    };
    if format == PromptFormat::Chat {
        // A chat answer ends the turn: that is part of what is preferred.
        let end = generator.tokenizer().token_id("<|im_end|>");
        chosen.extend(end);
        rejected.extend(end);
    }
    let longest = prompt.len() + chosen.len().max(rejected.len());
    let usable = chosen != rejected
        && !chosen.is_empty()
        && !rejected.is_empty()
        && !prompt.is_empty()
        && longest <= max_tokens;
    Ok(usable.then_some(TokenPair {
        prompt,
        chosen,
        rejected,
    }))
}

/// Write `generator` as a model directory with `manifest`.
pub fn save_generator(
    generator: &Generator,
    dir: &Path,
    manifest: &serde_json::Value,
) -> Result<(), TrainError> {
    let files = generator
        .dir_files()
        .map_err(|e| refused("model", e.to_string()))?;
    let borrowed: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    write_dir(dir, &borrowed, manifest)?;
    Ok(())
}

/// Run DPO as the module documentation says.
pub fn run(
    config: &GeneratorRunConfig,
    progress: &dyn Progress,
) -> Result<GeneratorRunReport, TrainError> {
    if !(0.0..1.0).contains(&config.holdout) {
        return Err(refused("holdout", "must be in [0, 1)"));
    }
    if config.eval_every == 0 {
        return Err(refused("eval-every", "must be at least 1"));
    }
    let device = Device::flex();
    let init = Generator::open(&config.init, &device)
        .map_err(|e| refused("init", format!("{}: {e}", config.init.display())))?;
    let (mut pairs, read, skipped) =
        read_pairs(&config.pairs, &init, config.prompt, config.max_tokens)?;
    if pairs.is_empty() {
        return Err(refused(
            "pairs",
            format!(
                "{} has no usable pair ({read} read, {skipped} skipped)",
                config.pairs.display()
            ),
        ));
    }
    let mut rng = SplitMix64::new(config.seed);
    rng.shuffle(&mut pairs);
    let held = if config.holdout > 0.0 && pairs.len() >= 2 {
        ((pairs.len() as f64 * config.holdout).round() as usize).clamp(1, pairs.len() - 1)
    } else {
        0
    };
    let held_out: Vec<TokenPair> = pairs.drain(..held).collect();
    let train_pairs = pairs.len();
    progress.note(&format!(
        "{read} pairs read, {skipped} skipped, {train_pairs} to train on, {held} held out"
    ));
    let held_reference = reference_scores(init.model(), &held_out)?;
    let mut trainer = DpoTrainer::new(
        init.model(),
        pairs,
        DpoConfig {
            beta: config.beta,
            learning_rate: config.learning_rate,
            batch_size: config.batch_size,
            seed: config.seed,
            ..DpoConfig::default()
        },
        &device.clone().autodiff(),
    )?;
    std::fs::create_dir_all(&config.out).map_err(write_err(&config.out))?;
    let log_path = config.out.join("log.jsonl");
    let mut log = std::fs::File::create(&log_path).map_err(write_err(&log_path))?;
    let held_stats =
        |model: &rlrag_generator::llama::Llama| -> Result<Option<DpoStats>, TrainError> {
            if held_out.is_empty() {
                return Ok(None);
            }
            evaluate(model, &held_out, &held_reference, config.beta).map(Some)
        };
    let before = (!held_out.is_empty()).then(|| DpoStats::at_reference(held_out.len()));
    let mut held_curve: Vec<(usize, f64)> = before.iter().map(|s| (0, s.accuracy)).collect();
    let mut steps = Vec::with_capacity(config.steps);
    let started = Instant::now();
    let mut bar = progress.bar(config.steps as u64, "DPO steps");
    let mut after = before;
    for step in 1..=config.steps {
        let stats = trainer.step()?;
        let mut line = json!({"step": step, "train": stats});
        if step % config.eval_every == 0 || step == config.steps {
            after = held_stats(trainer.policy())?;
            if let Some(s) = after {
                held_curve.push((step, s.accuracy));
                line["held_out"] = json!(s);
            }
        }
        writeln!(log, "{line}").map_err(write_err(&log_path))?;
        bar.set_message(format!("loss {:.4}", stats.loss));
        bar.inc(1);
        steps.push(stats);
    }
    bar.finish();
    let seconds = started.elapsed().as_secs_f64();

    let model_dir = config.out.join("model");
    let trained = init
        .with_model(trainer.policy().valid())
        .map_err(|e| refused("model", e.to_string()))?;
    save_generator(
        &trained,
        &model_dir,
        &json!({"kind": "rlrag-generator", "init": config.init, "pairs": config.pairs,
                "beta": config.beta, "steps": config.steps, "seed": config.seed}),
    )?;

    let per_step: Vec<(usize, f64)> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (i + 1, s.accuracy))
        .collect();
    let chart = step_curve(
        ("train accuracy (batch)", &per_step),
        ("held-out accuracy", &held_curve),
    );
    let curve = config.out.join("curve.svg");
    std::fs::write(&curve, chart.to_svg()).map_err(write_err(&curve))?;
    let report = GeneratorRunReport {
        pairs: read,
        skipped,
        train_pairs,
        held_out_pairs: held_out.len(),
        before,
        after,
        steps,
        seconds,
        model: model_dir,
    };
    let path = config.out.join("report.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?).map_err(write_err(&path))?;
    Ok(report)
}
