//! The R3 loop: on-policy retrieval with the current model, a reward per
//! retrieved passage from the environment, and a reinforced contrastive step
//! (rewarded passages are positives, unrewarded ones hard negatives, plus
//! in-batch negatives).
//!
//! Two model families train by the same loop and loss:
//! - the learned-sparse model (SiDR), searched on-policy over the
//!   bag-of-tokens index (never re-embedded), or over its own learned-sparse
//!   index re-embedded at [`R3Trainer::refresh_index`];
//! - the dense model (MiniLM), searched over a flat index of its passage
//!   embeddings, re-embedded at [`R3Trainer::refresh_index`] (between
//!   refreshes the queries are on-policy and the passages a step stale, as
//!   in ANCE); both sides learn.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use rlrag_encoder::bert::BertModel;
use rlrag_encoder::{Encoder, Head};
use rlrag_retriever::rng::SplitMix64;
use rlrag_retriever::{
    BotRetriever, Document, FlatIndex, Hit, Query, RetrieverError, SparseIndex, Weighting,
};
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::env::RewardEnv;
use crate::loss::{Role, distilled_questions, listwise_kl, positive_pairs, reinforced_infonce};
use crate::parallel::{check_devices, gather_gradients, materialize, shard_ranges};

/// How passages are represented in the training loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum DocSide {
    /// The passage's bag of tokens (weight 1 each), as the bag-of-tokens
    /// index scores it: only the query side learns, and the loss ranks the
    /// way retrieval does. The default, and the fast one (no passage pass).
    Bag,
    /// The model's learned-sparse passage vector (both sides learn), as the
    /// sparse index and the late re-rank score it.
    Model,
}

/// What the policy searches with during training (on-policy retrieval).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum PolicySearch {
    /// The bag-of-tokens index (learned-sparse models only; never re-embedded).
    Bag,
    /// The model's own index: learned-sparse or dense passage vectors,
    /// re-embedded with the current weights at each refresh.
    Index,
}

/// Settings of an R3 run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct R3Config {
    /// Passages retrieved (and judged) per question.
    pub k: usize,
    /// Bag-of-tokens candidates re-scored with the current model (0 = off).
    pub rerank_m: usize,
    /// InfoNCE temperature (scores are divided by it).
    pub temperature: f32,
    /// AdamW learning rate.
    pub learning_rate: f64,
    /// AdamW weight decay.
    pub weight_decay: f32,
    /// Gradient clipping by global norm.
    pub grad_clip: f32,
    /// Questions per step.
    pub batch_size: usize,
    /// Optimizer steps.
    pub steps: usize,
    /// Query tokens kept in the training forward pass.
    pub max_query_tokens: usize,
    /// Passage tokens kept in the training forward pass.
    pub max_passage_tokens: usize,
    /// Rewarded passages per question used as positives.
    pub max_positives: usize,
    /// Unrewarded retrieved passages per question used as hard negatives.
    pub max_hard_negatives: usize,
    /// Train only the top N transformer layers (and the MLM transform);
    /// `None` trains everything.
    pub train_top_layers: Option<usize>,
    /// Seed of the question order.
    pub seed: u64,
    /// Passage representation in the loss (learned-sparse models; a dense
    /// model always scores its own passage embeddings).
    pub doc_side: DocSide,
    /// What on-policy retrieval searches.
    pub search: PolicySearch,
}

impl Default for R3Config {
    fn default() -> Self {
        Self {
            k: 10,
            rerank_m: 0,
            temperature: 1.0,
            learning_rate: 5e-5,
            weight_decay: 0.01,
            grad_clip: 1.0,
            batch_size: 8,
            steps: 100,
            max_query_tokens: 64,
            max_passage_tokens: 128,
            max_positives: 2,
            max_hard_negatives: 4,
            train_top_layers: None,
            seed: 42,
            doc_side: DocSide::Bag,
            search: PolicySearch::Bag,
        }
    }
}

impl R3Config {
    /// Refuse settings that cannot train.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |name, reason: &str| {
            Err(TrainError::Config {
                name,
                reason: reason.into(),
            })
        };
        if self.k == 0 {
            return bad("k", "must be at least 1");
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return bad("temperature", "must be finite and > 0");
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad("learning-rate", "must be finite and > 0");
        }
        if self.batch_size == 0 || self.max_positives == 0 {
            return bad(
                "batch-size",
                "batch size and positives per question must be >= 1",
            );
        }
        if self.max_query_tokens < 2 || self.max_passage_tokens < 2 {
            return bad(
                "max-tokens",
                "query and passage lengths must be >= 2 tokens",
            );
        }
        if !(self.grad_clip.is_finite() && self.grad_clip > 0.0) {
            return bad("grad-clip", "must be finite and > 0");
        }
        Ok(())
    }
}

/// One step's record (a line of the training log).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepLog {
    /// 1-based step number.
    pub step: usize,
    /// The contrastive loss (absent when no question of the batch had a positive).
    pub loss: Option<f32>,
    /// Mean reward over every judged passage of the batch.
    pub mean_reward: f32,
    /// Rewarded passages found in the batch.
    pub positives: usize,
    /// Questions that contributed to the loss.
    pub questions_used: usize,
    /// Questions skipped because their top-k held no positive.
    pub skipped: usize,
    /// Learning rate of the step.
    pub learning_rate: f64,
    /// Wall time of the step.
    pub seconds: f64,
}

/// The index on-policy retrieval searches.
enum PolicyIndex {
    /// Bag-of-tokens (a learned-sparse model; follows every step).
    Bag(BotRetriever),
    /// The learned-sparse model's passage vectors (as of the last refresh).
    Sparse(SparseIndex),
    /// The dense model's passage embeddings (as of the last refresh).
    Dense(FlatIndex),
}

/// The R3 trainer of a learned-sparse or dense encoder.
pub struct R3Trainer {
    encoder: Encoder,
    inference: Arc<Encoder>,
    optim: ModuleOptimizer,
    index: PolicyIndex,
    /// The corpus, in order (the index is rebuilt in it).
    corpus: Vec<Document>,
    /// A passage's place in `corpus`, by id.
    docs: HashMap<String, usize>,
    config: R3Config,
    rng: SplitMix64,
    order: Vec<usize>,
    cursor: usize,
    step: usize,
    /// Data-parallel devices (the first is the encoder's); empty: one device.
    devices: Vec<Device>,
}

impl std::fmt::Debug for R3Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("R3Trainer")
            .field("config", &self.config)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

impl R3Trainer {
    /// A trainer of `encoder` (a learned-sparse or dense model on an
    /// autodiff device) over `corpus`. The search index is built here once:
    /// a bag of tokens (tokenizer only), or every passage embedded with the
    /// starting weights (an encoder pass over the corpus).
    pub fn new(
        encoder: Encoder,
        corpus: &[Document],
        config: R3Config,
    ) -> Result<Self, TrainError> {
        config.validate()?;
        let dense = encoder.sparse_settings().is_none();
        if dense && !matches!(encoder.config().rlrag.head, Head::Dense { .. }) {
            return Err(TrainError::Config {
                name: "init",
                reason: "R3 trains a learned-sparse (MLM head) or dense model; this one is neither"
                    .into(),
            });
        }
        if dense && config.search == PolicySearch::Bag {
            return Err(TrainError::Config {
                name: "search",
                reason:
                    "a dense model searches its own index (--search index), not a bag of tokens"
                        .into(),
            });
        }
        if !encoder.device().is_autodiff() {
            return Err(TrainError::Config {
                name: "device",
                reason: "training needs an autodiff device (Device::flex().autodiff())".into(),
            });
        }
        let model = encoder
            .model()
            .clone()
            .freeze_below(config.train_top_layers);
        let encoder = encoder.with_model(model);
        let inference = Arc::new(encoder.valid());
        let index = if config.search == PolicySearch::Bag {
            let mut bot = BotRetriever::new(inference.clone(), config.rerank_m)?;
            bot.add_documents(corpus)?;
            PolicyIndex::Bag(bot)
        } else {
            build_index(&inference, corpus)?
        };
        let optim = AdamWConfig::new()
            .with_weight_decay(config.weight_decay)
            .with_grad_clipping(Some(GradientClippingConfig::Norm(config.grad_clip)))
            .init();
        Ok(Self {
            inference,
            encoder,
            optim,
            index,
            corpus: corpus.to_vec(),
            docs: corpus
                .iter()
                .enumerate()
                .map(|(i, d)| (d.id.clone(), i))
                .collect(),
            rng: SplitMix64::new(config.seed),
            config,
            order: Vec::new(),
            cursor: 0,
            step: 0,
            devices: Vec::new(),
        })
    }

    /// Train data-parallel across `devices` (autodiff; the first must be the
    /// encoder's): each step's questions are split into one shard per
    /// device, each device runs its shard's forward and backward pass on a
    /// replica against all of the batch's passages, and the gradients are
    /// summed on the first device before the one optimizer step: the step a
    /// single device takes on the whole batch ([`crate::parallel`]). One
    /// device is the plain path.
    pub fn set_devices(&mut self, devices: Vec<Device>) -> Result<(), TrainError> {
        check_devices(&devices)?;
        if devices.first() != Some(self.encoder.device()) {
            return Err(TrainError::Config {
                name: "devices",
                reason: "the first device must be the one the model was loaded on".into(),
            });
        }
        self.devices = if devices.len() > 1 {
            devices
        } else {
            Vec::new()
        };
        Ok(())
    }

    /// A corpus passage by id.
    fn document(&self, id: &str) -> Option<&Document> {
        self.docs.get(id).and_then(|&i| self.corpus.get(i))
    }

    /// The model being trained (autodiff device).
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// The current weights for inference (plain device).
    pub fn inference_encoder(&self) -> &Arc<Encoder> {
        &self.inference
    }

    /// On-policy retrieval: the best `k` passages for `query` under the
    /// current weights (the bag of tokens, re-ranking the top `rerank_m`, or
    /// the model's index as of the last refresh).
    pub fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>, RetrieverError> {
        Ok(match &self.index {
            PolicyIndex::Bag(bot) => bot.search(query, k)?,
            PolicyIndex::Sparse(index) => {
                let q = self
                    .inference
                    .encode_sparse(&[query])?
                    .pop()
                    .unwrap_or_default();
                index.search(&q, k)
            }
            PolicyIndex::Dense(index) => {
                let q = self
                    .inference
                    .encode_dense(&[query])?
                    .pop()
                    .unwrap_or_default();
                index.search(&q, k)?
            }
        })
    }

    /// Re-embed every passage with the current weights (the model's own
    /// index; a bag of tokens needs nothing). Returns whether anything was
    /// re-embedded.
    pub fn refresh_index(&mut self) -> Result<bool, TrainError> {
        if matches!(self.index, PolicyIndex::Bag(_)) {
            return Ok(false);
        }
        self.index = build_index(&self.inference, &self.corpus)?;
        Ok(true)
    }

    /// Whether on-policy retrieval reads an index that only a refresh updates.
    pub fn needs_refresh(&self) -> bool {
        !matches!(self.index, PolicyIndex::Bag(_))
    }

    /// The next `batch_size` question indices of a seeded, reshuffled-per-epoch order.
    fn next_batch(&mut self, n: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.config.batch_size);
        while out.len() < self.config.batch_size.min(n) {
            if self.cursor >= self.order.len() {
                self.order = (0..n).collect();
                self.rng.shuffle(&mut self.order);
                self.cursor = 0;
            }
            out.push(self.order[self.cursor]);
            self.cursor += 1;
        }
        out
    }

    /// One R3 step on the next batch of `questions`.
    pub fn step(
        &mut self,
        questions: &[Query],
        env: &mut dyn RewardEnv,
    ) -> Result<StepLog, TrainError> {
        if questions.is_empty() {
            return Err(TrainError::Config {
                name: "data",
                reason: "no training questions".into(),
            });
        }
        let started = Instant::now();
        let batch = self.next_batch(questions.len());
        self.step += 1;
        let cfg = self.config.clone();

        // 1. On-policy retrieval and rewards.
        let mut judged = 0usize;
        let mut reward_sum = 0.0f32;
        let mut found = 0usize;
        let mut skipped = 0usize;
        let mut used: Vec<(&Query, Vec<String>, Vec<String>)> = Vec::new();
        for &qi in &batch {
            let q = &questions[qi];
            let hits = self.search(&q.text, cfg.k)?;
            let passages: Vec<&Document> =
                hits.iter().filter_map(|h| self.document(&h.id)).collect();
            let rewards = env.rewards(q, &passages)?;
            judged += rewards.len();
            reward_sum += rewards.iter().sum::<f32>();
            let (mut pos, mut neg) = (Vec::new(), Vec::new());
            for (d, r) in passages.iter().zip(&rewards) {
                if *r > 0.5 {
                    pos.push(d.id.clone());
                } else {
                    neg.push(d.id.clone());
                }
            }
            found += pos.len();
            if pos.is_empty() {
                skipped += 1;
                continue;
            }
            pos.truncate(cfg.max_positives);
            neg.truncate(cfg.max_hard_negatives);
            used.push((q, pos, neg));
        }
        let mean_reward = if judged == 0 {
            0.0
        } else {
            reward_sum / judged as f32
        };
        let mut log = StepLog {
            step: self.step,
            loss: None,
            mean_reward,
            positives: found,
            questions_used: used.len(),
            skipped,
            learning_rate: cfg.learning_rate,
            seconds: 0.0,
        };
        if used.is_empty() {
            log.seconds = started.elapsed().as_secs_f64();
            return Ok(log);
        }

        // 2. Reinforced contrastive step over the batch's passages.
        let mut columns: Vec<String> = Vec::new();
        let mut col_of: HashMap<String, usize> = HashMap::new();
        for (_, pos, neg) in &used {
            for id in pos.iter().chain(neg) {
                if !col_of.contains_key(id) {
                    col_of.insert(id.clone(), columns.len());
                    columns.push(id.clone());
                }
            }
        }
        let roles: Vec<Vec<Role>> = used
            .iter()
            .map(|(_, pos, _)| {
                let mut r = vec![Role::Negative; columns.len()];
                for id in pos {
                    if let Some(&c) = col_of.get(id) {
                        r[c] = Role::Positive;
                    }
                }
                r
            })
            .collect();
        let query_texts: Vec<&str> = used.iter().map(|(q, _, _)| q.text.as_str()).collect();
        let passage_texts: Vec<String> = columns
            .iter()
            .map(|id| {
                self.document(id)
                    .map(Document::full_text)
                    .unwrap_or_default()
            })
            .collect();
        let passage_refs: Vec<&str> = passage_texts.iter().map(String::as_str).collect();
        log.loss = self.update(&query_texts, &passage_refs, &roles)?;
        log.seconds = started.elapsed().as_secs_f64();
        Ok(log)
    }

    /// Scores `[queries, passages]` divided by the temperature, on `encoder`'s device.
    fn scores(
        &self,
        encoder: &Encoder,
        queries: &[&str],
        passages: &[&str],
    ) -> Result<Tensor<2>, TrainError> {
        batch_scores(&self.config, encoder, queries, passages)
    }

    /// One optimizer step on a given batch (`roles[i][j]`: passage `j` for
    /// query `i`); returns the loss before the step, `None` (and no step)
    /// without positives.
    pub fn update(
        &mut self,
        queries: &[&str],
        passages: &[&str],
        roles: &[Vec<Role>],
    ) -> Result<Option<f32>, TrainError> {
        self.update_distilled(queries, passages, roles, &[], 0.0)
    }

    /// One optimizer step on the contrastive loss plus `weight` times the
    /// listwise distillation to `teacher` (RLGF: `teacher[i][j]` is the
    /// teacher's logit for passage `j` of query `i`, divided by its
    /// temperature; `None` off its candidates). Returns the loss before the
    /// step; `None` (and no step) when neither term has anything to learn.
    pub fn update_distilled(
        &mut self,
        queries: &[&str],
        passages: &[&str],
        roles: &[Vec<Role>],
        teacher: &[Vec<Option<f32>>],
        weight: f32,
    ) -> Result<Option<f32>, TrainError> {
        if !self.devices.is_empty() {
            return self.update_sharded(queries, passages, roles, teacher, weight);
        }
        let scores = self.scores(&self.encoder, queries, passages)?;
        let Some(loss) = batch_loss(scores, roles, teacher, weight, 1.0, 1.0) else {
            return Ok(None);
        };
        let value = read_scalar(loss.clone())?;
        let grads = loss.backward();
        let model = self.encoder.model().clone();
        let grads = GradientsParams::from_grads(grads, &model);
        let model = self.optim.step(self.config.learning_rate, model, grads);
        self.adopt(model)?;
        Ok(Some(value))
    }

    /// Takes the stepped weights: the training encoder, its inference copy
    /// and the bag-of-tokens index that follows every step.
    fn adopt(&mut self, model: BertModel) -> Result<(), TrainError> {
        self.encoder = self.encoder.with_model(model);
        self.inference = Arc::new(self.encoder.valid());
        if let PolicyIndex::Bag(bot) = &mut self.index {
            bot.set_encoder(self.inference.clone())?;
        }
        Ok(())
    }

    /// [`Self::update_distilled`] across [`Self::set_devices`]'s devices:
    /// shard `s` takes a contiguous run of the questions against every
    /// passage, its contrastive term scaled by its share of the batch's
    /// (question, positive) pairs and its distillation term by its share of
    /// the distilled questions, so the gathered gradients are the batch's.
    fn update_sharded(
        &mut self,
        queries: &[&str],
        passages: &[&str],
        roles: &[Vec<Role>],
        teacher: &[Vec<Option<f32>>],
        weight: f32,
    ) -> Result<Option<f32>, TrainError> {
        let (b, m) = (queries.len(), passages.len());
        let pairs = positive_pairs(roles, b, m);
        let distilled = if weight > 0.0 {
            distilled_questions(teacher, b, m)
        } else {
            0
        };
        if pairs == 0 && distilled == 0 {
            return Ok(None);
        }
        let model = self.encoder.model().clone();
        materialize(&model);
        let shards = shard_ranges(b, self.devices.len());
        let replicas: Vec<(Encoder, std::ops::Range<usize>)> = self
            .devices
            .iter()
            .zip(shards)
            .map(|(d, r)| (self.encoder.with_model(model.clone().fork(d)), r))
            .collect();
        let config = &self.config;
        let primary = self.encoder.device().clone();
        let gathered = gather_gradients(&primary, replicas, |_, (encoder, rows)| {
            if rows.is_empty() {
                return Ok(None);
            }
            let bounded = |n: usize| rows.start.min(n)..rows.end.min(n);
            let (roles, teacher) = (
                &roles[bounded(roles.len())],
                &teacher[bounded(teacher.len())],
            );
            let scores = batch_scores(config, &encoder, &queries[rows.clone()], passages)?;
            let share = |part: usize, whole: usize| part as f32 / whole.max(1) as f32;
            let Some(loss) = batch_loss(
                scores,
                roles,
                teacher,
                weight,
                share(positive_pairs(roles, rows.len(), m), pairs),
                share(distilled_questions(teacher, rows.len(), m), distilled),
            ) else {
                return Ok(None);
            };
            let value = read_scalar(loss.clone())?;
            let grads = GradientsParams::from_grads(loss.backward(), encoder.model());
            Ok(Some((value, grads)))
        })?;
        let Some((value, grads)) = gathered else {
            return Ok(None);
        };
        // Every gradient was gathered on the first device, so the stepped
        // weights are there too.
        let model = self
            .optim
            .step_multi(self.config.learning_rate, model, grads);
        self.adopt(model)?;
        Ok(Some(value))
    }

    /// The contrastive loss of a fixed batch under the current weights,
    /// without updating them (for checks).
    pub fn loss_of(
        &self,
        queries: &[&str],
        passages: &[&str],
        roles: &[Vec<Role>],
    ) -> Result<Option<f32>, TrainError> {
        let scores = self.scores(&self.inference, queries, passages)?;
        reinforced_infonce(scores, roles)
            .map(read_scalar)
            .transpose()
    }
}

/// Every passage of `corpus` embedded by `encoder` into its own index
/// (learned-sparse or dense), in batches.
fn build_index(encoder: &Encoder, corpus: &[Document]) -> Result<PolicyIndex, TrainError> {
    const BATCH: usize = 64;
    let texts: Vec<String> = corpus.iter().map(Document::full_text).collect();
    if encoder.sparse_settings().is_some() {
        let vocab = u32::try_from(encoder.config().bert.vocab_size).map_err(|_| {
            RetrieverError::InvalidParameter {
                name: "vocab_size",
                reason: "does not fit 32 bits".into(),
            }
        })?;
        let mut index = SparseIndex::new(Weighting::Learned, vocab)?;
        for (docs, chunk) in corpus.chunks(BATCH).zip(texts.chunks(BATCH)) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let vectors = encoder.encode_sparse(&refs)?;
            let rows: Vec<(String, _)> = docs.iter().map(|d| d.id.clone()).zip(vectors).collect();
            index.add(&rows)?;
        }
        return Ok(PolicyIndex::Sparse(index));
    }
    let mut index = FlatIndex::new(encoder.config().bert.hidden_size);
    for (docs, chunk) in corpus.chunks(BATCH).zip(texts.chunks(BATCH)) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let vectors = encoder.encode_dense(&refs)?;
        let rows: Vec<(String, Vec<f32>)> =
            docs.iter().map(|d| d.id.clone()).zip(vectors).collect();
        index.add(&rows)?;
    }
    Ok(PolicyIndex::Dense(index))
}

/// A scalar read back from the device; a failed device computation (out of
/// memory on a GPU, say) is an error, not a panic.
fn read_scalar(t: burn::tensor::Tensor<1>) -> Result<f32, TrainError> {
    t.try_into_scalar::<f32>()
        .map_err(|e| TrainError::Encoder(rlrag_encoder::EncoderError::Backend(format!("{e:?}"))))
}

/// The loss of a step: the reinforced contrastive term times
/// `contrastive_share` plus `weight` times the listwise distillation times
/// `distill_share` (the shares are a data-parallel shard's part of the
/// batch, 1 for the whole batch); `None` when neither term has anything to
/// learn.
fn batch_loss(
    scores: Tensor<2>,
    roles: &[Vec<Role>],
    teacher: &[Vec<Option<f32>>],
    weight: f32,
    contrastive_share: f32,
    distill_share: f32,
) -> Option<Tensor<1>> {
    let contrastive =
        reinforced_infonce(scores.clone(), roles).map(|l| l.mul_scalar(contrastive_share));
    let distill = if weight > 0.0 {
        listwise_kl(scores, teacher).map(|kl| kl.mul_scalar(weight * distill_share))
    } else {
        None
    };
    match (contrastive, distill) {
        (Some(c), Some(d)) => Some(c + d),
        (Some(l), None) | (None, Some(l)) => Some(l),
        (None, None) => None,
    }
}

/// Scores `[queries, passages]` divided by the temperature, on `encoder`'s
/// device (a free function, so that data-parallel workers can run it).
fn batch_scores(
    config: &R3Config,
    encoder: &Encoder,
    queries: &[&str],
    passages: &[&str],
) -> Result<Tensor<2>, TrainError> {
    if encoder.sparse_settings().is_none() {
        let q = encoder.dense_embeddings(queries, config.max_query_tokens)?;
        let p = encoder.dense_embeddings(passages, config.max_passage_tokens)?;
        return Ok(q.matmul(p.transpose()).div_scalar(config.temperature));
    }
    let q = encoder.sparse_activations(queries, config.max_query_tokens)?;
    let p = match config.doc_side {
        DocSide::Model => encoder.sparse_activations(passages, config.max_passage_tokens)?,
        DocSide::Bag => {
            // Exactly what the bag-of-tokens index scores against: 1 per
            // distinct token of the whole passage.
            let vocab = encoder.config().bert.vocab_size;
            let mut dense = vec![0f32; passages.len() * vocab];
            for (row, text) in passages.iter().enumerate() {
                for t in encoder.bag_of_tokens(text)? {
                    if let Some(x) = dense.get_mut(row * vocab + t as usize) {
                        *x = 1.0;
                    }
                }
            }
            Tensor::<2>::from_data(TensorData::new(dense, [passages.len(), vocab]), &q.device())
        }
    };
    Ok(q.matmul(p.transpose()).div_scalar(config.temperature))
}
