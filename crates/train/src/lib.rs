//! Training the rlrag learned-sparse retriever by reward (R3).
//!
//! - [`env`]: reward environments: relevance judgements, answer containment,
//!   or an OpenAI-compatible generator ([`llm`]);
//! - [`loss`]: the reinforced contrastive (InfoNCE) loss;
//! - [`router`]: REINFORCE for the routing policy (group-relative
//!   advantages or a learned baseline, entropy bonus);
//! - [`rlag`]: RLAG preference pairs (augmented vs plain generation);
//! - [`r3`]: the loop: on-policy retrieval over a bag-of-tokens index with
//!   the current model, a reward per passage, an AdamW step.
//!
//! Training runs on any burn autodiff device (`Device::flex().autodiff()` on
//! the CPU); the same code serves GPUs ([`device`]: wgpu, CUDA).

pub mod device;
pub mod env;
mod error;
pub mod llm;
pub mod loss;
pub mod r3;
pub mod rlag;
pub mod router;

pub use device::{DeviceChoice, wgpu_device};
pub use env::{ContainmentEnv, EnvStats, LlmEnv, LlmScoring, QrelsEnv, RewardEnv};
pub use error::TrainError;
pub use llm::{LlmClient, LlmConfig};
pub use r3::{DocSide, R3Config, R3Trainer, StepLog};
pub use rlag::{PreferencePair, Winner, preference_pair};
pub use router::{Rollout, RouterTrainConfig, RouterTrainer, UpdateLog};
