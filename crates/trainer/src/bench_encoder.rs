//! `trainer bench-encoder`: encoder throughput on real passages, for the
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

use anyhow::{Context, bail};
use burn::tensor::Device;
use rlrag_encoder::Encoder;
use rlrag_retriever::Dataset;
use serde_json::json;

#[derive(clap::Args, Debug)]
pub struct BenchEncoderArgs {
    /// A model directory (dense or sparse head).
    #[arg(long)]
    model: PathBuf,
    /// A BEIR directory whose corpus supplies the passages.
    #[arg(long, default_value = "data/scifact")]
    data: PathBuf,
    /// How many passages to encode.
    #[arg(long, default_value_t = 1000)]
    passages: usize,
    /// Model tokens per passage, [CLS] and [SEP] included.
    #[arg(long, default_value_t = 128)]
    tokens: usize,
    /// Passages per forward pass.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Also write the inputs and first outputs here (for the other runtime).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `n` corpus passages of exactly `tokens` model tokens.
fn passages(encoder: &Encoder, args: &BenchEncoderArgs) -> anyhow::Result<Vec<String>> {
    let ds = Dataset::load(&args.data, None, None)?;
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
    bail!(
        "{} has only {} passages of {} tokens",
        args.data.display(),
        out.len(),
        args.tokens
    )
}

/// Encode `texts`; one JSON value per text (dense values, or the sparse top
/// 20 as [id, weight] pairs).
fn encode(encoder: &Encoder, texts: &[&str]) -> anyhow::Result<Vec<serde_json::Value>> {
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

pub fn run(args: &BenchEncoderArgs) -> anyhow::Result<()> {
    if args.passages == 0 || args.batch == 0 || args.tokens < 3 {
        bail!("--passages and --batch must be positive, --tokens at least 3");
    }
    let encoder = Encoder::from_dir(&args.model, &Device::flex())
        .with_context(|| format!("cannot load {}", args.model.display()))?;
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
    println!("{report}");
    if let Some(out) = &args.out {
        let inputs = json!({
            "ids": encoder.tokenize(&refs)?,
            "batch": args.batch,
            "sparse": encoder.sparse_settings().is_some(),
            "first_outputs": first.into_iter().take(4).collect::<Vec<_>>(),
            "burn": report,
        });
        std::fs::write(out, serde_json::to_vec(&inputs)?)
            .with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok(())
}
