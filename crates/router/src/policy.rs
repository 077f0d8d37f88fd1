//! The routing policy (KunLunBaizeRAG's NLR): a small burn MLP over the
//! state features choosing `answer`, `local`, `network`, `both` or
//! `decompose` at each hop, with a second head that decides, before the first
//! hop, whether to run background sensing, and a value head (the learned
//! baseline of REINFORCE). Fixed policies (single-shot local, always network,
//! always both, fixed multi-hop) are the baselines it is compared with.
//!
//! Saved as a model directory like the retriever's: `model.safetensors`
//! (burn names), `config.json` ([`RouterConfig`]), `manifest.json`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::activation::{relu, sigmoid, softmax};
use burn::tensor::{Device, Tensor, TensorData};
use rlrag_retriever::rng::SplitMix64;
use serde::{Deserialize, Serialize};

use crate::Action;
use crate::SourceKind;
use crate::error::RouterError;
use crate::features::FEATURES;
use crate::memory::Confidence;
use crate::pipeline::{Decider, PipelineConfig};

/// The network's shape.
#[derive(Config, Debug, PartialEq)]
pub struct PolicyConfig {
    /// State features in.
    #[config(default = "FEATURES")]
    pub features: usize,
    /// Hidden units.
    #[config(default = 32)]
    pub hidden: usize,
}

impl PolicyConfig {
    /// A freshly initialised network on `device` (burn's seeded init: call
    /// `device.seed(..)` first for a reproducible start).
    pub fn init(&self, device: &Device) -> PolicyNet {
        PolicyNet {
            hidden: LinearConfig::new(self.features, self.hidden).init(device),
            hidden2: LinearConfig::new(self.hidden, self.hidden).init(device),
            actions: LinearConfig::new(self.hidden, Action::ALL.len()).init(device),
            sense: LinearConfig::new(self.hidden, 1).init(device),
            value: LinearConfig::new(self.hidden, 1).init(device),
        }
    }
}

/// The policy network: two hidden layers, then action logits, the sensing
/// logit and the value.
#[derive(Module, Debug)]
pub struct PolicyNet {
    hidden: Linear,
    hidden2: Linear,
    actions: Linear,
    sense: Linear,
    value: Linear,
}

/// The heads' outputs for a batch of states.
pub struct PolicyOutput {
    /// `[n, 5]` action logits (order of [`Action::ALL`]).
    pub logits: Tensor<2>,
    /// `[n, 1]` logit of "run background sensing".
    pub sense: Tensor<2>,
    /// `[n, 1]` expected return from the state.
    pub value: Tensor<2>,
}

impl PolicyNet {
    /// The heads for `[n, features]` states.
    pub fn forward(&self, x: Tensor<2>) -> PolicyOutput {
        let h = relu(self.hidden.forward(x));
        let h = relu(self.hidden2.forward(h));
        PolicyOutput {
            logits: self.actions.forward(h.clone()),
            sense: self.sense.forward(h.clone()),
            value: self.value.forward(h),
        }
    }
}

/// Everything the router saves besides the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// Format version of the directory.
    pub version: u32,
    /// Hidden units of the policy.
    pub hidden: usize,
    /// State features (must equal this build's [`FEATURES`]).
    pub features: usize,
    /// The fitted evidence confidence.
    pub confidence: Confidence,
    /// The pipeline settings the policy was trained with.
    #[serde(default)]
    pub pipeline: PipelineConfig,
    /// Greedy decisions take an action that calls the network only when the
    /// policy puts at least this probability on such actions together
    /// ([`LearnedDecider::greedy`]); 0, the default, is the plain most
    /// probable action. `train-router --network-budget` calibrates it on the
    /// training questions.
    #[serde(default)]
    pub network_bar: f32,
}

/// The current router directory version.
pub const ROUTER_FORMAT_VERSION: u32 = 2;

impl RouterConfig {
    /// A router directory's `config.json`, checked against the format
    /// (unknown fields refused; the weights are checked by
    /// [`LearnedPolicy::load`]).
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// A policy ready to decide: probabilities for a state.
pub struct LearnedPolicy {
    net: PolicyNet,
    device: Device,
    network_bar: f32,
}

/// Action probabilities, the sensing probability and the value of a state.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyScores {
    /// Probabilities in [`Action::ALL`] order (disallowed actions at 0).
    pub actions: [f32; 5],
    /// Probability of running background sensing.
    pub sense: f32,
    /// The value head.
    pub value: f32,
}

impl LearnedPolicy {
    /// Wrap a network (any device; inference reads results back at once).
    pub fn new(net: PolicyNet, device: Device) -> Self {
        Self {
            net,
            device,
            network_bar: 0.0,
        }
    }

    /// The same policy with [`RouterConfig::network_bar`] set; a bar outside
    /// `[0, 1]` is refused.
    pub fn with_network_bar(mut self, bar: f32) -> Result<Self, RouterError> {
        if !(0.0..=1.0).contains(&bar) {
            return Err(RouterError::Policy {
                reason: format!("network bar {bar} is outside [0, 1]"),
            });
        }
        self.network_bar = bar;
        Ok(self)
    }

    /// The bar greedy decisions hold network-calling actions to.
    pub fn network_bar(&self) -> f32 {
        self.network_bar
    }

    /// The network.
    pub fn net(&self) -> &PolicyNet {
        &self.net
    }

    /// Scores of one state; `allowed[i]` false masks action `i` out.
    pub fn scores(
        &self,
        features: &[f32],
        allowed: &[bool; 5],
    ) -> Result<PolicyScores, RouterError> {
        if features.len() != FEATURES {
            return Err(RouterError::Policy {
                reason: format!("{} features, the policy takes {FEATURES}", features.len()),
            });
        }
        let x = Tensor::<2>::from_data(
            TensorData::new(features.to_vec(), [1, FEATURES]),
            &self.device,
        );
        let out = self.net.forward(x);
        let mask: Vec<f32> = allowed
            .iter()
            .map(|&a| if a { 0.0 } else { -1e9 })
            .collect();
        let mask = Tensor::<2>::from_data(TensorData::new(mask, [1, 5]), &self.device);
        let probs = softmax(out.logits + mask, 1);
        let read = |t: Tensor<2>| -> Result<Vec<f32>, RouterError> {
            t.try_into_data()
                .map_err(|e| RouterError::Policy {
                    reason: format!("cannot read the policy's output: {e:?}"),
                })?
                .try_into_vec::<f32>()
                .map_err(|e| RouterError::Policy {
                    reason: format!("policy output: {e:?}"),
                })
        };
        // One read-back for all three heads: [p(action) × 5, p(sense), value].
        let all = read(Tensor::cat(vec![probs, sigmoid(out.sense), out.value], 1))?;
        let at = |i: usize| all.get(i).copied().unwrap_or(0.0);
        Ok(PolicyScores {
            actions: std::array::from_fn(at),
            sense: at(5),
            value: at(6),
        })
    }

    /// The weights as safetensors bytes, canonical: equal weights, equal bytes.
    pub fn weights_safetensors(&self) -> Result<Vec<u8>, RouterError> {
        let mut store = SafetensorsStore::from_bytes(None);
        self.net
            .clone()
            .save_into(&mut store)
            .map_err(|e| RouterError::Policy {
                reason: e.to_string(),
            })?;
        let bytes = store.get_bytes().map_err(|e| RouterError::Policy {
            reason: e.to_string(),
        })?;
        rlrag_encoder::canonical_safetensors(&bytes).map_err(|e| RouterError::Policy {
            reason: e.to_string(),
        })
    }

    /// Load weights saved by [`LearnedPolicy::weights_safetensors`] into a
    /// network of `config`'s shape; every tensor must be there and fit.
    pub fn load(
        config: &RouterConfig,
        weights: &[u8],
        device: &Device,
    ) -> Result<Self, RouterError> {
        if config.version != ROUTER_FORMAT_VERSION {
            return Err(RouterError::Policy {
                reason: format!(
                    "router format version {} (this build reads {ROUTER_FORMAT_VERSION})",
                    config.version
                ),
            });
        }
        if config.features != FEATURES {
            return Err(RouterError::Policy {
                reason: format!("{} features, this build has {FEATURES}", config.features),
            });
        }
        if config.hidden == 0 || config.hidden > 4096 {
            return Err(RouterError::Policy {
                reason: format!("hidden size {} is out of range (1..=4096)", config.hidden),
            });
        }
        let mut net = PolicyConfig::new().with_hidden(config.hidden).init(device);
        let mut store = SafetensorsStore::from_bytes(Some(weights.to_vec()));
        let result = net.load_from(&mut store).map_err(|e| RouterError::Policy {
            reason: e.to_string(),
        })?;
        if !result.errors.is_empty() || !result.missing.is_empty() {
            return Err(RouterError::Policy {
                reason: format!(
                    "weights do not fit (errors: {:?}, missing: {:?})",
                    result.errors, result.missing
                ),
            });
        }
        Self::new(net, device.clone()).with_network_bar(config.network_bar)
    }
}

/// The fixed baselines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FixedPolicy {
    /// One hop on the local index.
    Local,
    /// One hop on the network.
    Network,
    /// One hop on both at once.
    Both,
    /// Two hops on both: the question, then bridge queries.
    Multihop,
    /// One `decompose` hop on the local index: sub-queries (a writer's when
    /// there is one, the question's halves, bridges).
    Decompose,
}

impl FixedPolicy {
    /// The baselines `eval-router` compares the learned policy with.
    pub const BASELINES: [FixedPolicy; 4] = [
        FixedPolicy::Local,
        FixedPolicy::Network,
        FixedPolicy::Both,
        FixedPolicy::Multihop,
    ];

    /// The name in reports (`local`, `network`, `both`, `multihop`, `decompose`).
    pub fn name(self) -> &'static str {
        match self {
            FixedPolicy::Local => "local",
            FixedPolicy::Network => "network",
            FixedPolicy::Both => "both",
            FixedPolicy::Multihop => "multihop",
            FixedPolicy::Decompose => "decompose",
        }
    }

    /// The policy called `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            FixedPolicy::Local,
            FixedPolicy::Network,
            FixedPolicy::Both,
            FixedPolicy::Multihop,
            FixedPolicy::Decompose,
        ]
        .into_iter()
        .find(|p| p.name() == name)
    }

    fn schedule(self) -> &'static [Action] {
        match self {
            FixedPolicy::Local => &[Action::Local],
            FixedPolicy::Network => &[Action::Network],
            FixedPolicy::Both => &[Action::Both],
            FixedPolicy::Multihop => &[Action::Both, Action::Both],
            FixedPolicy::Decompose => &[Action::Decompose],
        }
    }
}

impl Decider for FixedPolicy {
    fn sense(&mut self, _features: &[f32]) -> Result<(bool, f32), RouterError> {
        Ok((false, 1.0))
    }

    fn act(
        &mut self,
        hop: u32,
        _features: &[f32],
        allowed: &[bool; 5],
    ) -> Result<(Action, f32), RouterError> {
        let planned = usize::try_from(hop)
            .ok()
            .and_then(|h| self.schedule().get(h).copied())
            .unwrap_or(Action::Answer);
        // Without a network source the network steps run locally.
        let action = if allowed[planned.index()] {
            planned
        } else {
            Action::Local
        };
        Ok((action, 1.0))
    }
}

/// A fixed schedule that runs background sensing first (the baselines of
/// `eval-router --sense-baselines`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sensed(pub FixedPolicy);

impl Decider for Sensed {
    fn sense(&mut self, _features: &[f32]) -> Result<(bool, f32), RouterError> {
        Ok((true, 1.0))
    }

    fn act(
        &mut self,
        hop: u32,
        features: &[f32],
        allowed: &[bool; 5],
    ) -> Result<(Action, f32), RouterError> {
        self.0.act(hop, features, allowed)
    }
}

/// The learned policy deciding: sampling from its probabilities (training
/// rollouts) or taking the most probable choice (evaluation, serving).
pub struct LearnedDecider<'p> {
    policy: &'p LearnedPolicy,
    sampler: Option<SplitMix64>,
}

impl<'p> LearnedDecider<'p> {
    /// Greedy decisions: the most probable allowed action, except that an
    /// action calling the network needs the policy's probabilities of such
    /// actions to reach its [`LearnedPolicy::network_bar`] together; below
    /// it the most probable action that stays off the network is taken.
    pub fn greedy(policy: &'p LearnedPolicy) -> Self {
        Self {
            policy,
            sampler: None,
        }
    }

    /// Sampled decisions from a seeded stream.
    pub fn sampling(policy: &'p LearnedPolicy, seed: u64) -> Self {
        Self {
            policy,
            sampler: Some(SplitMix64::new(seed)),
        }
    }
}

impl Decider for LearnedDecider<'_> {
    fn sense(&mut self, features: &[f32]) -> Result<(bool, f32), RouterError> {
        let s = self.policy.scores(features, &[true; 5])?;
        let yes = match &mut self.sampler {
            Some(r) => r.next_f32() < s.sense,
            None => s.sense >= 0.5,
        };
        Ok((yes, if yes { s.sense } else { 1.0 - s.sense }))
    }

    fn act(
        &mut self,
        _hop: u32,
        features: &[f32],
        allowed: &[bool; 5],
    ) -> Result<(Action, f32), RouterError> {
        let s = self.policy.scores(features, allowed)?;
        let pick = match &mut self.sampler {
            Some(r) => {
                let u = r.next_f32();
                let mut acc = 0.0;
                let mut chosen = None;
                for (i, p) in s.actions.iter().enumerate() {
                    acc += p;
                    if allowed[i] && u < acc {
                        chosen = Some(i);
                        break;
                    }
                }
                chosen.unwrap_or_else(|| most_probable(&s.actions, allowed))
            }
            None => greedy(&s.actions, allowed, self.policy.network_bar),
        };
        Ok((Action::ALL[pick], s.actions[pick]))
    }
}

/// The greedy choice under a network bar (see [`LearnedDecider::greedy`]).
fn greedy(p: &[f32; 5], allowed: &[bool; 5], bar: f32) -> usize {
    let best = most_probable(p, allowed);
    let calls = |i: usize| Action::ALL[i].sources().contains(&SourceKind::Network);
    if !calls(best) {
        return best;
    }
    let network: f32 = (0..5)
        .filter(|&i| allowed[i] && calls(i))
        .map(|i| p[i])
        .sum();
    if network >= bar {
        return best;
    }
    let off: [bool; 5] = std::array::from_fn(|i| allowed[i] && !calls(i));
    if off.iter().any(|&a| a) {
        most_probable(p, &off)
    } else {
        best
    }
}

fn most_probable(p: &[f32; 5], allowed: &[bool; 5]) -> usize {
    (0..5)
        .filter(|&i| allowed[i])
        .max_by(|&a, &b| p[a].total_cmp(&p[b]).then(b.cmp(&a)))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_network_bar_turns_a_narrow_network_choice_into_the_best_local_one() {
        // answer, local, network, both, decompose
        let p = [0.1, 0.25, 0.4, 0.05, 0.2];
        let all = [true; 5];
        assert_eq!(greedy(&p, &all, 0.0), 2, "no bar: the most probable");
        assert_eq!(greedy(&p, &all, 0.45), 2, "network + both = 0.45 reach it");
        assert_eq!(greedy(&p, &all, 0.5), 1, "below the bar: local");
        // Only network-calling actions allowed: the bar cannot refuse them all.
        let only = [false, false, true, true, false];
        assert_eq!(greedy(&p, &only, 0.9), 2);
        // A choice that stays off the network is never changed.
        let q = [0.1, 0.5, 0.3, 0.05, 0.05];
        assert_eq!(greedy(&q, &all, 1.0), 1);
    }

    #[test]
    fn a_policy_takes_its_bar_from_the_config_and_refuses_one_out_of_range() {
        let device = Device::flex();
        let net = PolicyConfig::new().with_hidden(4).init(&device);
        let policy = LearnedPolicy::new(net, device.clone());
        let bytes = policy.weights_safetensors().expect("saved");
        let mut config = RouterConfig {
            version: ROUTER_FORMAT_VERSION,
            hidden: 4,
            features: FEATURES,
            confidence: Confidence::default(),
            pipeline: PipelineConfig::default(),
            network_bar: 0.7,
        };
        let loaded = LearnedPolicy::load(&config, &bytes, &device).expect("loaded");
        assert_eq!(loaded.network_bar(), 0.7);
        for bad in [-0.1, 1.5, f32::NAN] {
            config.network_bar = bad;
            let err = LearnedPolicy::load(&config, &bytes, &device)
                .err()
                .expect("refused");
            assert!(err.to_string().contains("network bar"), "{err}");
        }
        // A config saved before the bar existed reads as 0.
        let mut json = serde_json::to_value(&config).expect("json");
        json.as_object_mut().expect("object").remove("network_bar");
        let old: RouterConfig = serde_json::from_value(json).expect("read");
        assert_eq!(old.network_bar, 0.0);
    }
}
