//! The generator: the model that answers.
//!
//! - [`gguf`]: llama.cpp's GGUF files: the header, metadata and tensor
//!   table checked against the file's bytes, and every tensor dequantised
//!   to `f32` from the block formats the registry models use (F32, F16,
//!   BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K–Q6_K), bit for bit as the
//!   `gguf` Python package does.
//! - [`llama`]: the llama-family decoder in burn (SmolLM2, Llama, Qwen2)
//!   loaded from such a file: next-token logits, a key/value cache, greedy
//!   decoding.
//! - [`generate`]: text from the model: its chat template, greedy or
//!   seeded top-p decoding, stop strings, streaming, log-probabilities.
//! - [`openai`]: the OpenAI-compatible completions and chat API over it, in
//!   process (what the generator adapter speaks to a server).
//! - [`tokenizer`]: byte-level BPE from the file's vocabulary and merges,
//!   with llama.cpp's pre-tokenizer and special tokens (its ids, checked).

mod error;
pub mod generate;
pub mod gguf;
pub mod llama;
pub mod openai;
pub mod tokenizer;

pub use error::GeneratorError;
