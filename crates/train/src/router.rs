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
use std::ops::Range;

use crate::TrainError;
use crate::parallel::{check_devices, gather_gradients, materialize, shard_ranges};

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
    /// Data-parallel devices (the first is `device`); empty or one: the plain path.
    devices: Vec<Device>,
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
            let net = PolicyConfig::new().with_hidden(config.hidden).init(device);
            materialize(&net);
            net
        };
        let optim = AdamWConfig::new().with_weight_decay(1e-4).init();
        Ok(Self {
            config,
            net,
            device: device.clone(),
            optim,
            devices: Vec::new(),
        })
    }

    /// The current policy for rollouts (no autodiff).
    pub fn policy(&self) -> LearnedPolicy {
        let net = self.net.valid();
        LearnedPolicy::new(net, self.device.clone().without_autodiff())
    }

    /// One policy-gradient step over `groups` of rollouts (one group per question).
    pub fn update(&mut self, groups: &[Vec<Rollout>]) -> Result<UpdateLog, TrainError> {
        let batch = Batch::of(groups);
        let (n, m) = (batch.chosen.len(), batch.s_chosen.len());
        if n == 0 {
            return Ok(UpdateLog {
                policy_loss: 0.0,
                value_loss: 0.0,
                entropy: 0.0,
                decisions: 0,
            });
        }
        if self.devices.len() <= 1 {
            let (loss, log) =
                shard_loss(&self.net, &self.device, &self.config, &batch, 0..n, 0..m)?;
            let grads = GradientsParams::from_grads(loss.backward(), &self.net);
            self.net = self
                .optim
                .step(self.config.learning_rate, self.net.clone(), grads);
            return Ok(log);
        }
        // Data-parallel: a contiguous shard of the decisions (and of the
        // sensing choices) per device, each term scaled by the shard's share.
        let k = self.devices.len();
        materialize(&self.net);
        let replicas: Vec<_> = self
            .devices
            .iter()
            .zip(shard_ranges(n, k).into_iter().zip(shard_ranges(m, k)))
            .map(|(d, rows)| (self.net.clone().fork(d), d.clone(), rows))
            .collect();
        let (config, batch) = (&self.config, &batch);
        let logs = std::sync::Mutex::new(Vec::new());
        let gathered =
            gather_gradients(&self.device, replicas, |_, (net, device, (rows, srows))| {
                if rows.is_empty() && srows.is_empty() {
                    return Ok(None);
                }
                let (loss, log) = shard_loss(&net, &device, config, batch, rows, srows)?;
                let value = scalar(loss.clone())?;
                let grads = GradientsParams::from_grads(loss.backward(), &net);
                logs.lock().unwrap_or_else(|e| e.into_inner()).push(log);
                Ok(Some((value, grads)))
            })?;
        let mut log = UpdateLog {
            policy_loss: 0.0,
            value_loss: 0.0,
            entropy: 0.0,
            decisions: n,
        };
        for l in logs.into_inner().unwrap_or_else(|e| e.into_inner()) {
            log.policy_loss += l.policy_loss;
            log.value_loss += l.value_loss;
            log.entropy += l.entropy;
        }
        if let Some((_, grads)) = gathered {
            self.net = self
                .optim
                .step_multi(self.config.learning_rate, self.net.clone(), grads);
        }
        Ok(log)
    }

    /// Train data-parallel across `devices` (autodiff; the first must be the
    /// policy's): each update's decisions are split into one shard per
    /// device and the gradients summed on the first ([`crate::parallel`]).
    pub fn set_devices(&mut self, devices: Vec<Device>) -> Result<(), TrainError> {
        check_devices(&devices)?;
        if devices.first() != Some(&self.device) {
            return Err(TrainError::Config {
                name: "devices",
                reason: "the first device must be the policy's".into(),
            });
        }
        self.devices = devices;
        Ok(())
    }
}

/// An update's training rows, flattened: every decision of every rollout
/// (features, action mask, chosen action, group advantage, return) and
/// every sensing choice.
struct Batch {
    feats: Vec<f32>,
    masks: Vec<f32>,
    chosen: Vec<i64>,
    adv_group: Vec<Option<f32>>,
    returns: Vec<f32>,
    s_feats: Vec<f32>,
    s_chosen: Vec<f32>,
    s_adv: Vec<Option<f32>>,
    s_returns: Vec<f32>,
}

impl Batch {
    fn of(groups: &[Vec<Rollout>]) -> Self {
        let advantages = group_advantages(groups);
        let mut b = Batch {
            feats: Vec::new(),
            masks: Vec::new(),
            chosen: Vec::new(),
            adv_group: Vec::new(),
            returns: Vec::new(),
            s_feats: Vec::new(),
            s_chosen: Vec::new(),
            s_adv: Vec::new(),
            s_returns: Vec::new(),
        };
        for (g, advs) in groups.iter().zip(&advantages) {
            for (r, a) in g.iter().zip(advs) {
                let ret = r.reward as f32;
                let s = &r.trace.sensing;
                if s.features.len() == FEATURES {
                    b.s_feats.extend_from_slice(&s.features);
                    b.s_chosen.push(if s.ran { 1.0_f32 } else { 0.0 });
                    b.s_adv.push(*a);
                    b.s_returns.push(ret);
                }
                for d in &r.trace.decisions {
                    if d.features.len() != FEATURES {
                        continue;
                    }
                    b.feats.extend_from_slice(&d.features);
                    b.masks
                        .extend(d.allowed.iter().map(|&ok| if ok { 0.0_f32 } else { -1e9 }));
                    b.chosen.push(d.action.index() as i64);
                    b.adv_group.push(*a);
                    b.returns.push(ret);
                }
            }
        }
        b
    }
}

/// The loss of decisions `rows` and sensing choices `srows` of `batch` on
/// `device`: each mean scaled by the shard's share of the batch's rows (1
/// for the whole batch), so the shards' losses add up to the batch's.
fn shard_loss(
    net: &PolicyNet,
    dev: &Device,
    config: &RouterTrainConfig,
    batch: &Batch,
    rows: Range<usize>,
    srows: Range<usize>,
) -> Result<(Tensor<1>, UpdateLog), TrainError> {
    let (n_all, m_all) = (batch.chosen.len(), batch.s_chosen.len());
    let share = |part: usize, whole: usize| part as f32 / whole.max(1) as f32;
    let mut loss: Option<Tensor<1>> = None;
    let add = |loss: Option<Tensor<1>>, t: Tensor<1>| {
        Some(match loss {
            Some(l) => l + t,
            None => t,
        })
    };
    let mut log = UpdateLog {
        policy_loss: 0.0,
        value_loss: 0.0,
        entropy: 0.0,
        decisions: rows.len(),
    };
    let n = rows.len();
    if n > 0 {
        let w = share(n, n_all);
        let x = Tensor::<2>::from_data(
            TensorData::new(
                batch.feats[rows.start * FEATURES..rows.end * FEATURES].to_vec(),
                [n, FEATURES],
            ),
            dev,
        );
        let mask = Tensor::<2>::from_data(
            TensorData::new(batch.masks[rows.start * 5..rows.end * 5].to_vec(), [n, 5]),
            dev,
        );
        let idx = Tensor::<2, Int>::from_data(
            TensorData::new(batch.chosen[rows.clone()].to_vec(), [n, 1]),
            dev,
        );
        let returns = &batch.returns[rows.clone()];
        let ret = Tensor::<2>::from_data(TensorData::new(returns.to_vec(), [n, 1]), dev);
        let out = net.forward(x);
        let value = out.value;
        // Advantages: group-relative where there is a group, else R − V(s) (detached).
        let baseline: Vec<f32> = read(value.clone().detach())?;
        let adv: Vec<f32> = batch.adv_group[rows.clone()]
            .iter()
            .zip(returns.iter().zip(&baseline))
            .map(|(a, (r, v))| a.unwrap_or(r - v))
            .collect();
        let adv = Tensor::<2>::from_data(TensorData::new(adv, [n, 1]), dev);
        let logits = out.logits + mask;
        let logp = log_softmax(logits.clone(), 1);
        let chosen_logp = logp.clone().gather(1, idx);
        let policy_loss = (chosen_logp * adv).mean().neg().mul_scalar(w);
        let p = softmax(logits, 1);
        let entropy = (p * logp).sum_dim(1).mean().neg().mul_scalar(w);
        let value_loss = (value - ret).powf_scalar(2.0).mean().mul_scalar(w);
        log.policy_loss = scalar(policy_loss.clone())?;
        log.value_loss = scalar(value_loss.clone())?;
        log.entropy = scalar(entropy.clone())?;
        loss = add(
            loss,
            policy_loss + value_loss.mul_scalar(config.value_weight)
                - entropy.mul_scalar(config.entropy),
        );
    }
    let m = srows.len();
    if m > 0 {
        let sx = Tensor::<2>::from_data(
            TensorData::new(
                batch.s_feats[srows.start * FEATURES..srows.end * FEATURES].to_vec(),
                [m, FEATURES],
            ),
            dev,
        );
        let so = net.forward(sx);
        let s_base: Vec<f32> = read(so.value.detach())?;
        let s_chosen = &batch.s_chosen[srows.clone()];
        let y = Tensor::<2>::from_data(TensorData::new(s_chosen.to_vec(), [m, 1]), dev);
        let sa: Vec<f32> = batch.s_adv[srows.clone()]
            .iter()
            .zip(batch.s_returns[srows.clone()].iter().zip(&s_base))
            .map(|(a, (r, v))| a.unwrap_or(r - v))
            .collect();
        let sa = Tensor::<2>::from_data(TensorData::new(sa, [m, 1]), dev);
        // log p(choice) of a Bernoulli from its logit.
        let logit = so.sense;
        let lp = y.clone() * log_sigmoid(logit.clone())
            + (y.neg().add_scalar(1.0)) * log_sigmoid(logit.neg());
        loss = add(loss, (lp * sa).mean().neg().mul_scalar(share(m, m_all)));
    }
    let loss = loss.ok_or(TrainError::Config {
        name: "batch",
        reason: "a shard with neither decisions nor sensing choices".into(),
    })?;
    Ok((loss, log))
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
