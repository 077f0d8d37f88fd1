//! Encoder throughput on real passages, for comparison with other runtimes
//! (`scripts/bench-encoder.sh` runs this and ONNX Runtime on the same inputs).
//!
//! ```text
//! cargo run --release --example encoder_throughput -- <minilm|splade-tiny|DIR>
//!     [--passages 1000] [--tokens 128] [--batch 32] [--out inputs.json]
//! ```
//!
//! Passages are SciFact abstracts cut to exactly `--tokens` model tokens (with
//! [CLS]/[SEP]). Prints one JSON line: passages/s over all passages encoded in
//! batches of `--batch` after one warm-up batch. `--out` also writes the token
//! ids and the first four output vectors (dense values, or the sparse top 20),
//! so another runtime can check it computed the same thing. Threads: set
//! `RAYON_NUM_THREADS` (the comparison uses 1).

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use rlrag::encoder::Encoder;
use rlrag::encoder::models::pretrained;
use rlrag::retriever::Dataset;
use serde_json::json;

// As in the trainer: mimalloc reuses the large per-op temporaries that glibc
// malloc would map and unmap (page faults) on every op.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    model: PathBuf,
    passages: usize,
    tokens: usize,
    batch: usize,
    out: Option<PathBuf>,
}

fn parse() -> Result<Args, Box<dyn Error>> {
    let mut it = std::env::args().skip(1);
    let mut args = Args {
        model: PathBuf::new(),
        passages: 1000,
        tokens: 128,
        batch: 32,
        out: None,
    };
    let mut model = None;
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--passages" => args.passages = value()?.parse()?,
            "--tokens" => args.tokens = value()?.parse()?,
            "--batch" => args.batch = value()?.parse()?,
            "--out" => args.out = Some(value()?.into()),
            _ if model.is_none() && !a.starts_with('-') => model = Some(a),
            _ => return Err(format!("unexpected argument {a}").into()),
        }
    }
    let model = model.ok_or("usage: encoder_throughput <minilm|splade-tiny|DIR> [options]")?;
    args.model = if Path::new(&model).is_dir() {
        model.into()
    } else {
        pretrained(&model)
    };
    if args.passages == 0 || args.batch == 0 || args.tokens < 3 {
        return Err("--passages and --batch must be positive, --tokens at least 3".into());
    }
    Ok(args)
}

/// `n` SciFact passages of exactly `tokens` model tokens.
fn passages(encoder: &Encoder, n: usize, tokens: usize) -> Result<Vec<String>, Box<dyn Error>> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/scifact");
    let ds = Dataset::load(&data, None, None)?;
    let mut out = Vec::with_capacity(n);
    for doc in &ds.corpus {
        let text = doc.full_text();
        let cut = encoder.truncate_to_tokens(&text, tokens)?;
        if encoder.tokenize(&[cut])?[0].len() == tokens {
            out.push(cut.to_string());
            if out.len() == n {
                return Ok(out);
            }
        }
    }
    Err(format!("SciFact has only {} passages of {tokens} tokens", out.len()).into())
}

/// Encode `texts`; returns one JSON value per text (dense values, or the
/// sparse top 20 as [id, weight] pairs).
fn encode(encoder: &Encoder, texts: &[&str]) -> Result<Vec<serde_json::Value>, Box<dyn Error>> {
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

fn main() -> Result<(), Box<dyn Error>> {
    let args = parse()?;
    let encoder = Encoder::from_dir(&args.model, &Device::flex())?;
    let texts = passages(&encoder, args.passages, args.tokens)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let warm = &refs[..args.batch.min(refs.len())];
    let first = encode(&encoder, warm)?;
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
        std::fs::write(out, serde_json::to_vec(&inputs)?)?;
    }
    Ok(())
}
