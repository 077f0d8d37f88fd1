//! Training in rlrag: the learned-sparse and dense retrievers by reward (R3)
//! and by self-boosting, the reranker, and the
//! routing policy by REINFORCE, each as a learner and as a whole run.
//!
//! - [`env`]: reward environments: relevance judgements, answer containment,
//!   or an OpenAI-compatible generator (`rlrag_router::llm`);
//! - [`loss`]: the reinforced contrastive (InfoNCE) loss and the listwise
//!   distillation (KL to a teacher's order);
//! - [`router`]: REINFORCE for the routing policy (group-relative
//!   advantages or a learned baseline, entropy bonus);
//! - [`r3`]: the loop: on-policy retrieval (a bag-of-tokens index, or the
//!   model's own learned-sparse or dense index) with the current model, a
//!   reward per passage, an AdamW step;
//! - [`retriever_run`]: a whole R3 run (held-out evaluation, checkpoints,
//!   log, curve, the exported model directory);
//! - [`router_run`]: a whole router run (confidence fit, rollouts, the
//!   network bar calibrated to a budget, the router directory);
//! - [`reranker_run`]: a whole run of the cross-encoder reranker (mined
//!   hard negatives, labels and an optional generator teacher, listwise +
//!   pointwise loss, held-out reranked evaluation, the model directory);
//! - [`self_boost`]: Reinforced-IR self-boosting on an unlabeled corpus
//!   (synthetic queries, RLGF distillation into the retrievers, RLRF
//!   preference pairs for the generator), in rounds;
//! - [`dpo`], [`generator_run`]: the generator trained by preference
//!   (DPO against its frozen start) and a whole run of it (pairs, held-out
//!   share, log, curve, the generator's model directory);
//! - [`cv`]: K-fold cross-validation of the router, pooled;
//! - [`parallel`]: data-parallel steps across devices (shards of the batch,
//!   gradients gathered on the first device).
//!
//! Training runs on any burn autodiff device (`Device::flex().autodiff()` on
//! the CPU); the same code serves GPUs ([`DeviceChoice`]: wgpu, CUDA).

pub mod cv;
pub mod dpo;
pub mod env;
mod error;
pub mod generator_run;
pub mod loss;
pub mod parallel;
pub mod r3;
pub mod reranker_run;
pub mod retriever_run;
pub mod rlag;
pub mod router;
pub mod router_run;
pub mod self_boost;

pub use env::{ContainmentEnv, EnvStats, LlmEnv, LlmScoring, QrelsEnv, RewardEnv};
pub use error::TrainError;
pub use r3::{DocSide, PolicySearch, R3Config, R3Trainer, StepLog};
pub use rlrag_eval::device::{DeviceChoice, wgpu_device};
pub use router::{Rollout, RouterTrainConfig, RouterTrainer, UpdateLog};
