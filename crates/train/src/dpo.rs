//! Direct preference optimisation (DPO, Rafailov et al. 2023) of the
//! generator: for a prompt `x` with a chosen answer `y_w` and a rejected
//! one `y_l`,
//!
//! `loss = −log σ(β · ((log π(y_w|x) − log π_ref(y_w|x)) − (log π(y_l|x) − log π_ref(y_l|x))))`
//!
//! where `π` is the model being trained (every weight: full fine-tuning)
//! and `π_ref` the frozen starting model, whose sequence log-probabilities
//! are computed once, before the first step, and never again. The bracket
//! times β is the implicit reward margin; a pair is ranked right when it is
//! positive. Batches are drawn from a seeded stream.

use burn::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::log_sigmoid;
use burn::tensor::{Device, Tensor};
use rlrag_generator::llama::Llama;
use rlrag_reward::rng::SplitMix64;

use crate::TrainError;

/// One preference pair as token ids (the answers end with the model's
/// end-of-turn token where they were chat answers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPair {
    /// The prompt.
    pub prompt: Vec<u32>,
    /// The preferred continuation.
    pub chosen: Vec<u32>,
    /// The other one.
    pub rejected: Vec<u32>,
}

/// How DPO trains.
#[derive(Debug, Clone, PartialEq)]
pub struct DpoConfig {
    /// β: how far from the reference the reward lets the model move.
    pub beta: f64,
    /// AdamW's learning rate.
    pub learning_rate: f64,
    /// AdamW's weight decay.
    pub weight_decay: f32,
    /// Gradient norm clip.
    pub grad_clip: f32,
    /// Pairs per step.
    pub batch_size: usize,
    /// Seed of the batch order.
    pub seed: u64,
}

impl Default for DpoConfig {
    fn default() -> Self {
        Self {
            beta: 0.1,
            learning_rate: 5e-6,
            weight_decay: 0.0,
            grad_clip: 1.0,
            batch_size: 4,
            seed: 0,
        }
    }
}

/// Loss, reward margin and accuracy over some pairs.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct DpoStats {
    /// Mean DPO loss.
    pub loss: f64,
    /// Mean implicit reward margin, β · (chosen gain − rejected gain).
    pub margin: f64,
    /// Share of pairs with a positive margin (chosen ranked above rejected).
    pub accuracy: f64,
    /// Pairs.
    pub pairs: usize,
}

impl DpoStats {
    /// The stats of the reference itself on `pairs` pairs: every margin 0,
    /// so the loss is log 2 and no pair is ranked right (no forward pass).
    pub fn at_reference(pairs: usize) -> Self {
        Self {
            loss: std::f64::consts::LN_2,
            margin: 0.0,
            accuracy: 0.0,
            pairs,
        }
    }
}

/// The reference model's `(log π_ref(chosen|x), log π_ref(rejected|x))`.
pub type ReferenceScores = (f32, f32);

fn scalar(t: Tensor<1>) -> Result<f32, TrainError> {
    t.into_data()
        .try_into_vec::<f32>()
        .ok()
        .and_then(|v| v.first().copied())
        .ok_or_else(|| TrainError::Config {
            name: "dpo",
            reason: "a sequence score could not be read".into(),
        })
}

/// The sequence scores `(log π(chosen|x), log π(rejected|x))` of `pairs`
/// under `model` (no gradients kept): the reference's at the start, the
/// policy's when evaluating.
pub fn reference_scores(
    model: &Llama,
    pairs: &[TokenPair],
) -> Result<Vec<ReferenceScores>, TrainError> {
    let frozen = model.valid();
    pairs
        .iter()
        .map(|p| {
            Ok((
                scalar(frozen.continuation_logprob(&p.prompt, &p.chosen)?)?,
                scalar(frozen.continuation_logprob(&p.prompt, &p.rejected)?)?,
            ))
        })
        .collect()
}

/// DPO of one model against its frozen start.
pub struct DpoTrainer {
    policy: Llama,
    pairs: Vec<TokenPair>,
    reference: Vec<ReferenceScores>,
    optim: ModuleOptimizer,
    config: DpoConfig,
    rng: SplitMix64,
    order: Vec<usize>,
    cursor: usize,
}

impl std::fmt::Debug for DpoTrainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpoTrainer")
            .field("pairs", &self.pairs.len())
            .field("config", &self.config)
            .finish()
    }
}

impl DpoTrainer {
    /// A trainer of a copy of `init` on `device` (autodiff) over `pairs`;
    /// the reference scores come from `init` now.
    pub fn new(
        init: &Llama,
        pairs: Vec<TokenPair>,
        config: DpoConfig,
        device: &Device,
    ) -> Result<Self, TrainError> {
        if !device.is_autodiff() {
            return Err(TrainError::Config {
                name: "device",
                reason: "training needs an autodiff device (Device::flex().autodiff())".into(),
            });
        }
        if pairs.is_empty() || config.batch_size == 0 {
            return Err(TrainError::Config {
                name: "pairs",
                reason: "no preference pairs to train on (or a batch size of 0)".into(),
            });
        }
        if !(config.beta.is_finite() && config.beta > 0.0) {
            return Err(TrainError::Config {
                name: "beta",
                reason: format!("{} is not a positive number", config.beta),
            });
        }
        let reference = reference_scores(init, &pairs)?;
        let optim = AdamWConfig::new()
            .with_weight_decay(config.weight_decay)
            .with_grad_clipping(Some(GradientClippingConfig::Norm(config.grad_clip)))
            .init();
        Ok(Self {
            policy: init.trainable(device),
            rng: SplitMix64::new(config.seed),
            pairs,
            reference,
            optim,
            config,
            order: Vec::new(),
            cursor: 0,
        })
    }

    /// The model being trained.
    pub fn policy(&self) -> &Llama {
        &self.policy
    }

    /// The reference scores, per pair, fixed at the start.
    pub fn reference(&self) -> &[ReferenceScores] {
        &self.reference
    }

    /// The next batch of pair indices (a seeded shuffle per pass).
    fn next_batch(&mut self) -> Vec<usize> {
        let mut batch = Vec::with_capacity(self.config.batch_size);
        while batch.len() < self.config.batch_size.min(self.pairs.len()) {
            if self.cursor == self.order.len() {
                self.order = (0..self.pairs.len()).collect();
                self.rng.shuffle(&mut self.order);
                self.cursor = 0;
            }
            batch.push(self.order[self.cursor]);
            self.cursor += 1;
        }
        batch
    }

    /// The DPO loss of `batch` (pair indices) as a differentiable scalar,
    /// with its stats.
    fn batch_loss(&self, batch: &[usize]) -> Result<(Tensor<1>, DpoStats), TrainError> {
        let beta = self.config.beta;
        let mut total: Option<Tensor<1>> = None;
        let (mut loss_sum, mut margin_sum, mut right) = (0.0, 0.0, 0);
        for &i in batch {
            let p = &self.pairs[i];
            let (ref_w, ref_l) = self.reference[i];
            let w = self.policy.continuation_logprob(&p.prompt, &p.chosen)?;
            let l = self.policy.continuation_logprob(&p.prompt, &p.rejected)?;
            let margin = (w - l)
                .sub_scalar(f64::from(ref_w) - f64::from(ref_l))
                .mul_scalar(beta);
            let loss = log_sigmoid(margin.clone()).neg();
            let m = f64::from(scalar(margin.clone().detach())?);
            margin_sum += m;
            loss_sum += f64::from(scalar(loss.clone().detach())?);
            right += usize::from(m > 0.0);
            total = Some(match total {
                Some(t) => t + loss,
                None => loss,
            });
        }
        let n = batch.len();
        let total = total.ok_or_else(|| TrainError::Config {
            name: "batch",
            reason: "an empty batch".into(),
        })?;
        Ok((
            total.div_scalar(n as f64),
            DpoStats {
                loss: loss_sum / n as f64,
                margin: margin_sum / n as f64,
                accuracy: right as f64 / n as f64,
                pairs: n,
            },
        ))
    }

    /// One AdamW step on the next batch; the batch's stats before the step.
    pub fn step(&mut self) -> Result<DpoStats, TrainError> {
        let batch = self.next_batch();
        self.step_on(&batch)
    }

    /// One AdamW step on the pairs `batch` names.
    pub fn step_on(&mut self, batch: &[usize]) -> Result<DpoStats, TrainError> {
        if let Some(&bad) = batch.iter().find(|&&i| i >= self.pairs.len()) {
            return Err(TrainError::Config {
                name: "batch",
                reason: format!("pair {bad} of {}", self.pairs.len()),
            });
        }
        let (loss, stats) = self.batch_loss(batch)?;
        let grads = GradientsParams::from_grads(loss.backward(), &self.policy.weights);
        let weights = self.policy.weights.clone();
        self.policy.weights = self.optim.step(self.config.learning_rate, weights, grads);
        Ok(stats)
    }

    /// The stats of the pairs `batch` names under the current model (no step).
    pub fn stats_on(&self, batch: &[usize]) -> Result<DpoStats, TrainError> {
        self.batch_loss(batch).map(|(_, s)| s)
    }
}

/// DPO stats of `model` on `pairs` against `reference` scores (no
/// gradients): the held-out evaluation.
pub fn evaluate(
    model: &Llama,
    pairs: &[TokenPair],
    reference: &[ReferenceScores],
    beta: f64,
) -> Result<DpoStats, TrainError> {
    let (mut loss, mut margin, mut right) = (0.0, 0.0, 0);
    for ((w, l), &(ref_w, ref_l)) in reference_scores(model, pairs)?.into_iter().zip(reference) {
        let m = beta * (f64::from(w - l) - (f64::from(ref_w) - f64::from(ref_l)));
        // −log σ(m), stable for large |m|.
        loss += if m >= 0.0 {
            (-m).exp().ln_1p()
        } else {
            -m + m.exp().ln_1p()
        };
        margin += m;
        right += usize::from(m > 0.0);
    }
    let n = pairs.len().max(1) as f64;
    Ok(DpoStats {
        loss: loss / n,
        margin: margin / n,
        accuracy: right as f64 / n,
        pairs: pairs.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rlrag_generator::llama::{LlamaConfig, Rope};

    fn tiny() -> Llama {
        let config = LlamaConfig {
            architecture: "llama".into(),
            vocab_size: 40,
            hidden: 16,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            feed_forward: 24,
            rms_eps: 1e-5,
            rope_base: 10_000.0,
            rope: Rope::Adjacent,
            context: 64,
            tied: true,
            qkv_bias: false,
        };
        Llama::random(config, 11, &Device::flex()).expect("a model")
    }

    fn pairs() -> Vec<TokenPair> {
        (0..6u32)
            .map(|i| TokenPair {
                prompt: vec![1, 2 + i, 3 + i],
                chosen: vec![10 + i, 20, 2],
                rejected: vec![30 - i, 31, 2],
            })
            .collect()
    }

    fn config() -> DpoConfig {
        DpoConfig {
            learning_rate: 1e-2,
            batch_size: 3,
            seed: 5,
            ..DpoConfig::default()
        }
    }

    /// At the start the policy is the reference: every margin is 0 and the
    /// loss is log 2. A step on a fixed batch lowers that batch's loss.
    #[test]
    fn a_step_lowers_the_loss_on_its_batch() {
        let init = tiny();
        let mut t =
            DpoTrainer::new(&init, pairs(), config(), &Device::flex().autodiff()).expect("trainer");
        let batch = [0, 2, 4];
        let at_start = evaluate(&init, &pairs(), t.reference(), 0.1).expect("eval");
        let derived = DpoStats::at_reference(pairs().len());
        assert_eq!((at_start.margin, at_start.accuracy), (0.0, 0.0));
        assert!((at_start.loss - derived.loss).abs() < 1e-12, "{at_start:?}");
        let before = t.stats_on(&batch).expect("stats");
        assert!(
            (before.loss - std::f64::consts::LN_2).abs() < 1e-4,
            "{before:?}"
        );
        assert!(before.margin.abs() < 1e-4);
        let stepped = t.step_on(&batch).expect("step");
        assert!((stepped.loss - before.loss).abs() < 1e-6);
        let after = t.stats_on(&batch).expect("stats");
        assert!(after.loss < before.loss - 1e-4, "{before:?} → {after:?}");
        assert!(after.margin > 0.0 && after.accuracy > 0.5, "{after:?}");
        let held = evaluate(t.policy(), &pairs()[..3], &t.reference()[..3], 0.1).expect("eval");
        assert_eq!(held.pairs, 3);
        assert!(held.loss.is_finite());
    }

    /// Training moves the policy but never the reference: its scores stay
    /// what the starting model gives, and the starting model is untouched.
    #[test]
    fn the_reference_never_moves() {
        let init = tiny();
        let start = init.weights_safetensors().expect("bytes");
        let mut t =
            DpoTrainer::new(&init, pairs(), config(), &Device::flex().autodiff()).expect("trainer");
        let reference = t.reference().to_vec();
        for _ in 0..3 {
            t.step().expect("step");
        }
        assert_eq!(t.reference(), &reference[..]);
        assert_eq!(
            reference_scores(&init, &pairs()).expect("scores"),
            reference
        );
        assert_eq!(init.weights_safetensors().expect("bytes"), start);
        assert_ne!(t.policy().weights_safetensors().expect("bytes"), start);
        let moved = reference_scores(t.policy(), &pairs()).expect("scores");
        assert_ne!(moved, reference);
    }

    /// The same seed gives the same weights; another seed another order.
    #[test]
    fn the_same_seed_gives_the_same_weights() {
        let run = |seed| {
            let init = tiny();
            let mut t = DpoTrainer::new(
                &init,
                pairs(),
                DpoConfig { seed, ..config() },
                &Device::flex().autodiff(),
            )
            .expect("trainer");
            for _ in 0..3 {
                t.step().expect("step");
            }
            t.policy().weights_safetensors().expect("bytes")
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn bad_settings_are_refused() {
        let init = tiny();
        let e =
            DpoTrainer::new(&init, pairs(), config(), &Device::flex()).expect_err("no autodiff");
        assert!(e.to_string().contains("autodiff"), "{e}");
        let e = DpoTrainer::new(&init, vec![], config(), &Device::flex().autodiff())
            .expect_err("no pairs");
        assert!(e.to_string().contains("pairs"), "{e}");
        let e = DpoTrainer::new(
            &init,
            pairs(),
            DpoConfig {
                beta: 0.0,
                ..config()
            },
            &Device::flex().autodiff(),
        )
        .expect_err("beta");
        assert!(e.to_string().contains("beta"), "{e}");
    }
}
