//! BERT-family encoders in burn for rlrag.
//!
//! One implementation ([`bert`]) serves three heads: a dense sentence
//! embedding (all-MiniLM-L6-v2: mean pooling + L2 normalisation), a
//! learned-sparse vocabulary vector as in SPLADE / SiDR (MLM logits →
//! activation → max-pool over tokens → top-k), and a cross-encoder that
//! scores a (question, passage) pair (`[CLS]` → pooler → one logit). Weights load from Hugging Face `model.safetensors` +
//! `config.json`; `tokenizer.json` is read into BERT's tokenizer parts from
//! the `tokenizers` crate (see `tokenizer.rs`). The backend is chosen by the
//! burn [`Device`](burn::tensor::Device) at run time, so the same code runs
//! on the CPU (flex) and, where enabled, on GPUs.

pub mod bert;
pub mod config;
mod encoder;
mod error;
pub mod fasthash;
mod kernels;
pub mod models;
mod safetensors;
mod sparse;
mod tokenizer;

pub use config::{
    BertConfig, Calibration, DEFAULT_MAX_QUESTION_TOKENS, Head, MAX_VOCAB_SIZE, ModelConfig,
    Pooling, RlragSettings, SparseActivation,
};
pub use encoder::{CrossEncoderInit, Encoder, ModelFiles, Prepared};
pub use error::EncoderError;
pub use safetensors::canonical_safetensors;

/// Entry points of crate-private decoders for the fuzz targets (`fuzz/`),
/// compiled only with `--cfg fuzzing`.
#[cfg(fuzzing)]
pub mod fuzzing {
    use crate::EncoderError;

    /// What [`crate::Prepared::load`] does to `model.safetensors` before
    /// burn reads it: Hugging Face names renamed in place.
    pub fn rename_in_place(weights: Vec<u8>) -> Result<Vec<u8>, EncoderError> {
        crate::safetensors::renamed_in_place(weights, crate::bert::hf_to_module_key)
    }
}
pub use sparse::SparseVector;
