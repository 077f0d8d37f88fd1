//! RLAG (reinforcement learning from augmented generation) in rounds
//! (`trainer rlag`): for each training question the generator samples
//! answers with the retrieved passages (augmented) and without (plain);
//! the gold answers score them (token F1, exact match as the tie-break,
//! the project's one implementation in `rlrag-reward`); the best answer
//! against the worst, both as answers to the plain prompt, is a preference
//! pair ([`rlrag_eval::rlag::preference_from_samples`]); DPO
//! ([`crate::dpo`]) moves the model toward it, the round's starting model
//! the frozen reference; the next round samples from the trained model.
//!
//! Before the first round and after each, greedy answers are scored on the
//! held-out questions (another split) with and without the passages, and
//! on the training questions without them (what the rounds try to put into
//! the weights). Evidence is the top BM25 passages of the dataset's corpus,
//! in the prompt the router's generator adapter uses
//! ([`rlrag_router::llm::prompt`]).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::Device;
use rlrag_eval::datasets;
use rlrag_eval::progress::Progress;
use rlrag_eval::rlag::{PreferencePair, passage_text, preference_from_samples};
use rlrag_generator::generate::{GenerateOptions, Generator, Sampling};
use rlrag_retriever::hash::seed_from;
use rlrag_retriever::{Bm25Index, DatasetFormat, Document, Query, Split};
use rlrag_reward::answer::{exact_match_any, token_f1_max};
use rlrag_router::llm::prompt;
use serde::Serialize;
use serde_json::json;

use crate::TrainError;
use crate::dpo::{DpoConfig, DpoStats, DpoTrainer, evaluate};
use crate::generator_run::{PromptFormat, save_generator, token_pair};
use crate::reranker_run::setting as refused;
use crate::retriever_run::write_err;

/// An RLAG run.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct RlagConfig {
    /// A question-answering dataset with a corpus (HotpotQA, 2Wiki, `qa`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub data: PathBuf,
    /// The dataset's format (detected when left out).
    #[cfg_attr(feature = "clap", arg(long))]
    pub format: Option<DatasetFormat>,
    /// The questions trained on.
    #[cfg_attr(feature = "clap", arg(long, default_value = "train"))]
    pub split: Split,
    /// The held-out questions scored before and after each round.
    #[cfg_attr(feature = "clap", arg(long, default_value = "test"))]
    pub eval_split: Split,
    /// Use only the first N training questions.
    #[cfg_attr(feature = "clap", arg(long))]
    pub limit: Option<usize>,
    /// Score only the first N held-out questions.
    #[cfg_attr(feature = "clap", arg(long))]
    pub eval_limit: Option<usize>,
    /// The generator to start from: a GGUF file or a generator model
    /// directory.
    #[cfg_attr(feature = "clap", arg(long))]
    pub init: PathBuf,
    /// Output directory: each round's model and pairs, the log, the report.
    #[cfg_attr(feature = "clap", arg(long))]
    pub out: PathBuf,
    /// Rounds of sampling and optimisation.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1))]
    pub rounds: usize,
    /// Answers sampled per question with the passages, and as many without.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 2))]
    pub samples: usize,
    /// Sampling temperature of the training answers (scoring is greedy).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.7))]
    pub temperature: f32,
    /// Nucleus sampling of the training answers.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.95))]
    pub top_p: f32,
    /// BM25 passages in an augmented prompt.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 3))]
    pub passages: usize,
    /// Most tokens of an answer.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 24))]
    pub max_answer_tokens: usize,
    /// DPO's β.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.1))]
    pub beta: f64,
    /// AdamW's learning rate.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 5e-6))]
    pub learning_rate: f64,
    /// Passes over a round's pairs.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 2))]
    pub epochs: usize,
    /// Pairs per step.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 4))]
    pub batch_size: usize,
    /// Seed of the samples and the batch order.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0))]
    pub seed: u64,
}

/// Exact match and token F1 of greedy answers, averaged over questions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AnswerScores {
    /// Exact match.
    pub em: f64,
    /// Token F1.
    pub f1: f64,
    /// Questions scored.
    pub questions: usize,
}

/// The scores after one round (round 0: the starting model).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RlagRow {
    /// 0 before training.
    pub round: usize,
    /// Held-out questions, answered with the passages.
    pub held_out_augmented: AnswerScores,
    /// Held-out questions, answered without them.
    pub held_out_plain: AnswerScores,
    /// Training questions, answered without the passages.
    pub train_plain: AnswerScores,
    /// The round's preference pairs (questions whose answers all scored
    /// the same make none).
    pub pairs: usize,
    /// How many of them the augmented answer won.
    pub augmented_won: usize,
    /// DPO stats on the round's pairs before and after its steps.
    pub dpo: Option<(DpoStats, DpoStats)>,
    /// Optimizer steps.
    pub steps: usize,
    /// Seconds of the round: sampling, steps, scoring.
    pub seconds: f64,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct RlagReport {
    /// Training questions.
    pub train_questions: usize,
    /// Held-out questions.
    pub held_out_questions: usize,
    /// One row per round, round 0 first.
    pub rows: Vec<RlagRow>,
    /// The last round's model directory.
    pub model: PathBuf,
}

impl RlagReport {
    /// The before/after table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{} training questions, {} held out (EM / F1)\n\
             round | held out, with passages | held out, plain | train, plain | pairs (augmented won) | DPO margin | s\n",
            self.train_questions, self.held_out_questions
        );
        let s = |a: &AnswerScores| format!("{:.3} / {:.3}", a.em, a.f1);
        for r in &self.rows {
            let margin = r.dpo.map_or_else(
                || "-".to_owned(),
                |(b, a)| format!("{:+.3} -> {:+.3}", b.margin, a.margin),
            );
            let _ = writeln!(
                out,
                "{} | {} | {} | {} | {} ({}) | {margin} | {:.0}",
                r.round,
                s(&r.held_out_augmented),
                s(&r.held_out_plain),
                s(&r.train_plain),
                r.pairs,
                r.augmented_won,
                r.seconds
            );
        }
        out
    }
}

/// A question with its BM25 evidence as `(id, "title: text")`.
struct Asked<'a> {
    query: &'a Query,
    evidence: Vec<(String, String)>,
}

impl Asked<'_> {
    fn prompt(&self, augmented: bool) -> String {
        if augmented {
            let texts: Vec<&str> = self.evidence.iter().map(|(_, t)| t.as_str()).collect();
            prompt(&self.query.text, &texts)
        } else {
            prompt(&self.query.text, &[])
        }
    }
}

fn with_evidence<'a>(
    questions: &'a [Query],
    bm25: &Bm25Index,
    by_id: &HashMap<&str, &Document>,
    k: usize,
) -> Result<Vec<Asked<'a>>, TrainError> {
    questions
        .iter()
        .map(|query| {
            let hits = bm25
                .search(&query.text, k)
                .map_err(|e| refused("data", format!("BM25 search: {e}")))?;
            let evidence = hits
                .iter()
                .filter_map(|h| by_id.get(h.id.as_str()))
                .map(|d| (d.id.clone(), passage_text(&d.title, &d.text)))
                .collect();
            Ok(Asked { query, evidence })
        })
        .collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The generator's answer to a user turn.
fn answer(
    generator: &Generator,
    user: &str,
    max_tokens: usize,
    sampling: Sampling,
) -> Result<String, TrainError> {
    let text = generator.template().prompt(&[("user", user)]);
    let options = GenerateOptions {
        max_tokens,
        sampling,
        ..GenerateOptions::default()
    };
    let generation = generator
        .generate(&text, &options, &mut |_| true)
        .map_err(|e| refused("generator", e.to_string()))?;
    Ok(generation.text.trim().to_owned())
}

/// Greedy answers to `asked`, with or without the passages, scored.
fn score(
    generator: &Generator,
    asked: &[Asked<'_>],
    augmented: bool,
    max_tokens: usize,
    progress: &dyn Progress,
    what: &'static str,
) -> Result<AnswerScores, TrainError> {
    let mut bar = progress.bar(asked.len() as u64, what);
    let (mut em, mut f1) = (0.0, 0.0);
    for a in asked {
        let reply = answer(
            generator,
            &a.prompt(augmented),
            max_tokens,
            Sampling::greedy(),
        )?;
        em += f64::from(u8::from(exact_match_any(&reply, &a.query.answers)));
        f1 += token_f1_max(&reply, &a.query.answers);
        bar.inc(1);
    }
    bar.finish();
    let n = asked.len().max(1) as f64;
    Ok(AnswerScores {
        em: em / n,
        f1: f1 / n,
        questions: asked.len(),
    })
}

fn load_questions(
    config: &RlagConfig,
    split: &Split,
    limit: Option<usize>,
) -> Result<(Vec<Document>, Vec<Query>), TrainError> {
    let ds = datasets::load(&config.data, config.format, Some(split))?;
    let mut questions: Vec<Query> = ds
        .queries
        .into_iter()
        .filter(|q| !q.answers.is_empty())
        .collect();
    if let Some(n) = limit {
        questions.truncate(n);
    }
    if questions.is_empty() {
        return Err(refused(
            "data",
            format!(
                "{} has no question with an answer in split {split}",
                config.data.display()
            ),
        ));
    }
    Ok((ds.corpus, questions))
}

/// Run RLAG as the module documentation says.
pub fn run(config: &RlagConfig, progress: &dyn Progress) -> Result<RlagReport, TrainError> {
    if config.rounds == 0 || config.samples == 0 || config.epochs == 0 || config.batch_size == 0 {
        return Err(refused(
            "rounds",
            "--rounds, --samples, --epochs and --batch-size must be at least 1",
        ));
    }
    if config.passages == 0 || config.max_answer_tokens == 0 {
        return Err(refused(
            "passages",
            "--passages and --max-answer-tokens must be at least 1",
        ));
    }
    if config.split == config.eval_split {
        return Err(refused(
            "eval-split",
            "the held-out questions must come from another split than the training ones",
        ));
    }
    let (corpus, train_q) = load_questions(config, &config.split, config.limit)?;
    let (_, eval_q) = load_questions(config, &config.eval_split, config.eval_limit)?;
    let device = Device::flex();
    let init = Generator::open(&config.init, &device)
        .map_err(|e| refused("init", format!("{}: {e}", config.init.display())))?;
    let mut bm25 = Bm25Index::default();
    bm25.add_documents(&corpus)
        .map_err(|e| refused("data", format!("BM25 index: {e}")))?;
    let by_id: HashMap<&str, &Document> = corpus.iter().map(|d| (d.id.as_str(), d)).collect();
    let train = with_evidence(&train_q, &bm25, &by_id, config.passages)?;
    let held = with_evidence(&eval_q, &bm25, &by_id, config.passages)?;
    progress.note(&format!(
        "{} training questions, {} held out, {} passages",
        train.len(),
        held.len(),
        corpus.len()
    ));
    std::fs::create_dir_all(&config.out).map_err(write_err(&config.out))?;
    let log_path = config.out.join("rounds.jsonl");
    let mut log = std::fs::File::create(&log_path).map_err(write_err(&log_path))?;

    let scores = |g: &Generator| -> Result<[AnswerScores; 3], TrainError> {
        let n = config.max_answer_tokens;
        Ok([
            score(g, &held, true, n, progress, "held out, with passages")?,
            score(g, &held, false, n, progress, "held out, plain")?,
            score(g, &train, false, n, progress, "train, plain")?,
        ])
    };
    let started = Instant::now();
    let [held_out_augmented, held_out_plain, train_plain] = scores(&init)?;
    let mut rows = vec![RlagRow {
        round: 0,
        held_out_augmented,
        held_out_plain,
        train_plain,
        pairs: 0,
        augmented_won: 0,
        dpo: None,
        steps: 0,
        seconds: started.elapsed().as_secs_f64(),
    }];
    writeln!(log, "{}", serde_json::to_string(&rows[0])?).map_err(write_err(&log_path))?;

    let mut generator = init;
    for round in 1..=config.rounds {
        let round_started = Instant::now();
        // 1. Sample, score, pair.
        let mut pairs: Vec<PreferencePair> = Vec::new();
        progress.note(&format!("round {round}"));
        let mut bar = progress.bar(train.len() as u64, "sampling");
        for (qi, a) in train.iter().enumerate() {
            let mut sampled = [Vec::new(), Vec::new()];
            for (side, augmented) in [true, false].into_iter().enumerate() {
                let user = a.prompt(augmented);
                for s in 0..config.samples {
                    let sampling = Sampling {
                        temperature: config.temperature,
                        top_p: config.top_p,
                        seed: seed_from(&[
                            config.seed,
                            round as u64,
                            qi as u64,
                            side as u64,
                            s as u64,
                        ]),
                    };
                    sampled[side].push(answer(
                        &generator,
                        &user,
                        config.max_answer_tokens,
                        sampling,
                    )?);
                }
            }
            let evidence: Vec<(&str, &str)> = a
                .evidence
                .iter()
                .map(|(id, t)| (id.as_str(), t.as_str()))
                .collect();
            if let Some(pair) = preference_from_samples(
                &a.query.text,
                &a.query.answers,
                &evidence,
                &refs(&sampled[0]),
                &refs(&sampled[1]),
            ) {
                pairs.push(pair);
            }
            bar.inc(1);
        }
        bar.finish();
        let pairs_path = config.out.join(format!("pairs-round-{round}.jsonl"));
        let mut lines = String::new();
        for p in &pairs {
            lines.push_str(&serde_json::to_string(p)?);
            lines.push('\n');
        }
        std::fs::write(&pairs_path, lines).map_err(write_err(&pairs_path))?;
        let augmented_won = pairs
            .iter()
            .filter(|p| p.chosen_from == rlrag_eval::rlag::Winner::Augmented)
            .count();

        // 2. DPO against the round's starting model.
        let mut tokens = Vec::new();
        for p in &pairs {
            let pair = token_pair(
                &generator,
                PromptFormat::Chat,
                &p.prompt,
                &p.chosen,
                &p.rejected,
                usize::MAX,
            )
            .map_err(|e| refused("generator", e.to_string()))?;
            tokens.extend(pair);
        }
        let (dpo, steps) = if tokens.is_empty() {
            progress.note(&format!(
                "round {round}: every question's answers scored the same; no step"
            ));
            (None, 0)
        } else {
            let steps = config.epochs * tokens.len().div_ceil(config.batch_size);
            let mut trainer = DpoTrainer::new(
                generator.model(),
                tokens.clone(),
                DpoConfig {
                    beta: config.beta,
                    learning_rate: config.learning_rate,
                    batch_size: config.batch_size,
                    seed: seed_from(&[config.seed, round as u64]),
                    ..DpoConfig::default()
                },
                &device.clone().autodiff(),
            )?;
            let before = evaluate(generator.model(), &tokens, trainer.reference(), config.beta)?;
            let mut bar = progress.bar(steps as u64, "DPO steps");
            for _ in 0..steps {
                let stats = trainer.step()?;
                bar.set_message(format!("loss {:.4}", stats.loss));
                bar.inc(1);
            }
            bar.finish();
            let trained = trainer.policy().valid();
            let after = evaluate(&trained, &tokens, trainer.reference(), config.beta)?;
            generator = generator
                .with_model(trained)
                .map_err(|e| refused("model", e.to_string()))?;
            (Some((before, after)), steps)
        };

        // 3. Score, save.
        let [held_out_augmented, held_out_plain, train_plain] = scores(&generator)?;
        let row = RlagRow {
            round,
            held_out_augmented,
            held_out_plain,
            train_plain,
            pairs: pairs.len(),
            augmented_won,
            dpo,
            steps,
            seconds: round_started.elapsed().as_secs_f64(),
        };
        save_generator(
            &generator,
            &config.out.join(format!("round-{round}")),
            &json!({"kind": "rlrag-generator", "trained_by": "rlag", "init": config.init,
                    "data": config.data, "round": round, "beta": config.beta,
                    "seed": config.seed, "row": row}),
        )?;
        writeln!(log, "{}", serde_json::to_string(&row)?).map_err(write_err(&log_path))?;
        progress.note(&format!(
            "round {round}: {} pairs, held out plain F1 {:.3} -> {:.3}",
            row.pairs, rows[0].held_out_plain.f1, row.held_out_plain.f1
        ));
        rows.push(row);
    }
    let report = RlagReport {
        train_questions: train.len(),
        held_out_questions: held.len(),
        rows,
        model: config.out.join(format!("round-{}", config.rounds)),
    };
    let path = config.out.join("report.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?).map_err(write_err(&path))?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_a_line_per_round() {
        let s = AnswerScores {
            em: 0.25,
            f1: 0.5,
            questions: 4,
        };
        let row = |round| RlagRow {
            round,
            held_out_augmented: s,
            held_out_plain: s,
            train_plain: s,
            pairs: 3,
            augmented_won: 2,
            dpo: None,
            steps: 0,
            seconds: 1.0,
        };
        let report = RlagReport {
            train_questions: 4,
            held_out_questions: 4,
            rows: vec![row(0), row(1)],
            model: PathBuf::from("m"),
        };
        let table = report.table();
        assert_eq!(table.lines().count(), 4, "{table}");
        assert!(table.contains("0.250 / 0.500"));
    }
}
