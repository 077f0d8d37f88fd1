//! Training the routing policy by reinforcement learning (KunLunBaizeRAG's
//! dual objective through the reward crate: correctness − λ·cost).
//!
//! REINFORCE over whole questions: several sampled rollouts per question
//! (GRPO-style group-relative advantages, `R − mean` within the group: not
//! divided by the group's spread, which would blow the tiny cost differences
//! of questions no rollout answers up to the size of a correct answer, as
//! Dr. GRPO observes), or with one rollout a learned baseline (the policy's
//! value head);
//! the value head is always fitted to the returns; an entropy bonus keeps
//! exploring. Every decision of a rollout was recorded with its features and
//! allowed actions in the trace, so the update recomputes the log-probabilities
//! exactly on the autodiff device.

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::{log_sigmoid, log_softmax, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rlrag_router::features::FEATURES;
use rlrag_router::pipeline::Trace;
use rlrag_router::policy::{LearnedPolicy, PolicyConfig, PolicyNet};

use crate::TrainError;

/// Settings of the policy update.
#[derive(Debug, Clone, PartialEq)]
pub struct RouterTrainConfig {
    /// Hidden units of the policy.
    pub hidden: usize,
    /// AdamW learning rate.
    pub learning_rate: f64,
    /// Weight of the entropy bonus.
    pub entropy: f32,
    /// Weight of the value (baseline) loss.
    pub value_weight: f32,
    /// Seed of the initial weights.
    pub seed: u64,
}

impl Default for RouterTrainConfig {
    fn default() -> Self {
        Self {
            hidden: 32,
            learning_rate: 3e-3,
            entropy: 0.01,
            value_weight: 0.5,
            seed: 42,
        }
    }
}

/// One rollout: its trace and its total reward.
#[derive(Debug, Clone)]
pub struct Rollout {
    /// The decisions.
    pub trace: Trace,
    /// The episode's reward.
    pub reward: f64,
}

/// What one update did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpdateLog {
    /// The policy-gradient loss.
    pub policy_loss: f32,
    /// The value loss.
    pub value_loss: f32,
    /// Mean entropy of the action distributions.
    pub entropy: f32,
    /// Decisions in the batch.
    pub decisions: usize,
}

/// The policy being trained, with its optimiser.
pub struct RouterTrainer {
    config: RouterTrainConfig,
    net: PolicyNet,
    device: Device,
    optim: ModuleOptimizer,
}

/// Advantages per rollout: group-relative for groups of two or more, else
/// `None` (the learned baseline is used).
pub fn group_advantages(groups: &[Vec<Rollout>]) -> Vec<Vec<Option<f32>>> {
    groups
        .iter()
        .map(|g| {
            if g.len() < 2 {
                return vec![None; g.len()];
            }
            let mean = g.iter().map(|r| r.reward).sum::<f64>() / g.len() as f64;
            g.iter().map(|r| Some((r.reward - mean) as f32)).collect()
        })
        .collect()
}

/// Held while a policy is seeded and initialised.
static SEEDED_INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl RouterTrainer {
    /// A fresh policy on `device` (an autodiff device), seeded.
    pub fn new(config: RouterTrainConfig, device: &Device) -> Result<Self, TrainError> {
        if !device.is_autodiff() {
            return Err(TrainError::Config {
                name: "device",
                reason: "training needs an autodiff device (Device::flex().autodiff())".into(),
            });
        }
        if !(config.learning_rate.is_finite() && config.learning_rate > 0.0) {
            return Err(TrainError::Config {
                name: "learning_rate",
                reason: format!("{} must be finite and > 0", config.learning_rate),
            });
        }
        // The device's RNG is shared by the process: seeding and drawing the
        // initial weights happen under one lock, so that policies built on
        // several threads at once (cross-validation folds) start exactly as
        // they would alone.
        let net = {
            let _alone = SEEDED_INIT.lock().unwrap_or_else(|e| e.into_inner());
            device.seed(config.seed);
            PolicyConfig::new().with_hidden(config.hidden).init(device)
        };
        let optim = AdamWConfig::new().with_weight_decay(1e-4).init();
        Ok(Self {
            config,
            net,
            device: device.clone(),
            optim,
        })
    }

    /// The current policy for rollouts (no autodiff).
    pub fn policy(&self) -> LearnedPolicy {
        let net = self.net.valid();
        LearnedPolicy::new(net, self.device.clone().without_autodiff())
    }

    /// One policy-gradient step over `groups` of rollouts (one group per question).
    pub fn update(&mut self, groups: &[Vec<Rollout>]) -> Result<UpdateLog, TrainError> {
        let advantages = group_advantages(groups);
        // Flatten every decision (and every sensing choice) of every rollout.
        let (mut feats, mut masks, mut chosen, mut adv_group, mut returns) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut s_feats, mut s_chosen, mut s_adv, mut s_returns) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (g, advs) in groups.iter().zip(&advantages) {
            for (r, a) in g.iter().zip(advs) {
                let ret = r.reward as f32;
                let s = &r.trace.sensing;
                if s.features.len() == FEATURES {
                    s_feats.extend_from_slice(&s.features);
                    s_chosen.push(if s.ran { 1.0_f32 } else { 0.0 });
                    s_adv.push(*a);
                    s_returns.push(ret);
                }
                for d in &r.trace.decisions {
                    if d.features.len() != FEATURES {
                        continue;
                    }
                    feats.extend_from_slice(&d.features);
                    masks.extend(d.allowed.iter().map(|&ok| if ok { 0.0_f32 } else { -1e9 }));
                    chosen.push(d.action.index() as i64);
                    adv_group.push(*a);
                    returns.push(ret);
                }
            }
        }
        let n = chosen.len();
        if n == 0 {
            return Ok(UpdateLog {
                policy_loss: 0.0,
                value_loss: 0.0,
                entropy: 0.0,
                decisions: 0,
            });
        }
        let dev = &self.device;
        let x = Tensor::<2>::from_data(TensorData::new(feats, [n, FEATURES]), dev);
        let mask = Tensor::<2>::from_data(TensorData::new(masks, [n, 5]), dev);
        let idx = Tensor::<2, Int>::from_data(TensorData::new(chosen, [n, 1]), dev);
        let ret = Tensor::<2>::from_data(TensorData::new(returns.clone(), [n, 1]), dev);
        let out = self.net.forward(x);
        let value = out.value;
        // Advantages: group-relative where there is a group, else R − V(s) (detached).
        let baseline: Vec<f32> = read(value.clone().detach())?;
        let adv: Vec<f32> = adv_group
            .iter()
            .zip(returns.iter().zip(&baseline))
            .map(|(a, (r, v))| a.unwrap_or(r - v))
            .collect();
        let adv = Tensor::<2>::from_data(TensorData::new(adv, [n, 1]), dev);
        let logits = out.logits + mask;
        let logp = log_softmax(logits.clone(), 1);
        let chosen_logp = logp.clone().gather(1, idx);
        let policy_loss = (chosen_logp * adv).mean().neg();
        let p = softmax(logits, 1);
        let entropy = (p * logp).sum_dim(1).mean().neg();
        let value_loss = (value - ret).powf_scalar(2.0).mean();
        let mut loss = policy_loss.clone()
            + value_loss.clone().mul_scalar(self.config.value_weight)
            - entropy.clone().mul_scalar(self.config.entropy);
        let m = s_chosen.len();
        if m > 0 {
            let sx = Tensor::<2>::from_data(TensorData::new(s_feats, [m, FEATURES]), dev);
            let so = self.net.forward(sx);
            let s_base: Vec<f32> = read(so.value.detach())?;
            let y = Tensor::<2>::from_data(TensorData::new(s_chosen.clone(), [m, 1]), dev);
            let sa: Vec<f32> = s_adv
                .iter()
                .zip(s_returns.iter().zip(&s_base))
                .map(|(a, (r, v))| a.unwrap_or(r - v))
                .collect();
            let sa = Tensor::<2>::from_data(TensorData::new(sa, [m, 1]), dev);
            // log p(choice) of a Bernoulli from its logit.
            let logit = so.sense;
            let lp = y.clone() * log_sigmoid(logit.clone())
                + (y.neg().add_scalar(1.0)) * log_sigmoid(logit.neg());
            loss = loss + (lp * sa).mean().neg();
        }
        let log = UpdateLog {
            policy_loss: scalar(policy_loss)?,
            value_loss: scalar(value_loss)?,
            entropy: scalar(entropy)?,
            decisions: n,
        };
        let grads = GradientsParams::from_grads(loss.backward(), &self.net);
        self.net = self
            .optim
            .step(self.config.learning_rate, self.net.clone(), grads);
        Ok(log)
    }
}

fn read(t: Tensor<2>) -> Result<Vec<f32>, TrainError> {
    t.try_into_data()
        .map_err(|e| TrainError::Config {
            name: "device",
            reason: format!("cannot read a tensor back: {e:?}"),
        })?
        .try_into_vec::<f32>()
        .map_err(|e| TrainError::Config {
            name: "device",
            reason: format!("unexpected tensor data: {e:?}"),
        })
}

fn scalar(t: Tensor<1>) -> Result<f32, TrainError> {
    Ok(read(t.reshape([1, 1]))?
        .first()
        .copied()
        .unwrap_or(f32::NAN))
}
