//! Encoder throughput on real passages (`trainer bench-encoder`), for the
//! comparison with ONNX Runtime (`scripts/bench-encoder.sh` runs this and
//! `scripts/reference/bench_encoder_ort.py` on the same inputs).
//!
//! Passages are SciFact abstracts cut to exactly `--tokens` model tokens
//! (with [CLS]/[SEP]). Prints one JSON line: passages/s over all passages,
//! encoded in batches of `--batch` after one warm-up batch. `--out` also
//! writes the token ids and the first four output vectors (dense values, or
//! the sparse top 20), so the other runtime can check that it computed the
//! same thing. Threads: `RAYON_NUM_THREADS` (the comparison uses 1).

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::Device;
use rlrag_encoder::Encoder;
use serde_json::json;

use crate::EvalError;
use crate::error::{io, setting};
use crate::models::ModelDir;

/// What `bench-encoder` times.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct EncoderBenchConfig {
    /// A model directory (dense or sparse head).
    #[cfg_attr(feature = "clap", arg(long))]
    pub model: PathBuf,
    /// A BEIR directory whose corpus supplies the passages.
    #[cfg_attr(feature = "clap", arg(long, default_value = "data/scifact"))]
    pub data: PathBuf,
    /// How many passages to encode.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1000))]
    pub passages: usize,
    /// Model tokens per passage, [CLS] and [SEP] included.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 128))]
    pub tokens: usize,
    /// Passages per forward pass.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 32))]
    pub batch: usize,
    /// Also write the inputs and first outputs here (for the other runtime).
    #[cfg_attr(feature = "clap", arg(long))]
    pub out: Option<PathBuf>,
}

/// `n` corpus passages of exactly `tokens` model tokens.
fn passages(encoder: &Encoder, args: &EncoderBenchConfig) -> Result<Vec<String>, EvalError> {
    let ds = crate::datasets::load(&args.data, None, None)?;
    let mut out = Vec::with_capacity(args.passages);
    for doc in &ds.corpus {
        let text = doc.full_text();
        let cut = encoder.truncate_to_tokens(&text, args.tokens)?;
        if encoder.tokenize(&[cut])?[0].len() == args.tokens {
            out.push(cut.to_string());
            if out.len() == args.passages {
                return Ok(out);
            }
        }
    }
    Err(EvalError::Bench {
        reason: format!(
            "{} has only {} passages of {} tokens",
            args.data.display(),
            out.len(),
            args.tokens
        ),
    })
}

/// Encode `texts`; one JSON value per text (dense values, or the sparse top
/// 20 as [id, weight] pairs).
fn encode(encoder: &Encoder, texts: &[&str]) -> Result<Vec<serde_json::Value>, EvalError> {
    Ok(if encoder.sparse_settings().is_some() {
        encoder
            .encode_sparse(texts)?
            .into_iter()
            .map(|v| json!(v.top(20)))
            .collect()
    } else {
        encoder
            .encode_dense(texts)?
            .into_iter()
            .map(|v| json!(v))
            .collect()
    })
}

/// Time the encoder as `args` says; returns the report (one JSON object).
pub fn run(args: &EncoderBenchConfig) -> Result<serde_json::Value, EvalError> {
    if args.passages == 0 || args.batch == 0 || args.tokens < 3 {
        return Err(setting(
            "--passages",
            "--passages and --batch must be positive, --tokens at least 3",
        ));
    }
    let encoder = ModelDir::read(&args.model)?.load(&Device::flex())?;
    let texts = passages(&encoder, args)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let first = encode(&encoder, &refs[..args.batch.min(refs.len())])?;
    let started = Instant::now();
    for batch in refs.chunks(args.batch) {
        encode(&encoder, batch)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let report = json!({
        "runtime": "burn 0.22 flex",
        "model": args.model.display().to_string(),
        "passages": refs.len(),
        "tokens": args.tokens,
        "batch": args.batch,
        "seconds": seconds,
        "passages_per_s": refs.len() as f64 / seconds,
    });
    if let Some(out) = &args.out {
        let inputs = json!({
            "ids": encoder.tokenize(&refs)?,
            "batch": args.batch,
            "sparse": encoder.sparse_settings().is_some(),
            "first_outputs": first.into_iter().take(4).collect::<Vec<_>>(),
            "burn": report,
        });
        std::fs::write(out, serde_json::to_vec(&inputs)?).map_err(io("write", out))?;
    }
    Ok(report)
}
