//! Generator throughput (`trainer bench-generator`), for the comparison
//! with llama.cpp (`scripts/bench-generator.sh` runs this and
//! `scripts/reference/bench_generator_llama_cpp.py` on the same prompts).
//!
//! Prompts: the generator adapter's answer prompt (one passage) for a QA
//! set's first questions, through the model's chat template. Each is read
//! in one forward pass (prefill), then answered greedily for exactly
//! `--tokens` new tokens (end-of-turn tokens do not end it, so both sides
//! time the same number of steps). Reports prompt tokens/s and generated
//! tokens/s over all prompts after one warm-up prompt; `--out` writes the
//! prompts and the tokens generated, for the other side. Threads:
//! `RAYON_NUM_THREADS`.

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::Device;
use rlrag_generator::generate::Generator;
use rlrag_generator::llama::KvCache;
use serde::Serialize;

use crate::EvalError;
use crate::error::{io, setting};

/// What `bench-generator` times.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct GeneratorBenchConfig {
    /// A GGUF model file or a generator model directory.
    #[cfg_attr(feature = "clap", arg(long))]
    pub model: PathBuf,
    /// A QA set whose questions (with their first passage) make the prompts.
    #[cfg_attr(feature = "clap", arg(long, default_value = "data/hotpotqa100"))]
    pub data: PathBuf,
    /// How many prompts (after one warm-up prompt).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 8))]
    pub prompts: usize,
    /// New tokens per prompt.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 32))]
    pub tokens: usize,
    /// Also write the prompts and generated ids here (JSON).
    #[cfg_attr(feature = "clap", arg(long))]
    pub out: Option<PathBuf>,
}

/// The measurements.
#[derive(Debug, Clone, Serialize)]
pub struct GeneratorBench {
    /// Prompts timed.
    pub prompts: usize,
    /// Their tokens, all together.
    pub prompt_tokens: usize,
    /// New tokens, all together.
    pub generated_tokens: usize,
    /// Prompt tokens per second of prefill.
    pub prefill_tokens_per_s: f64,
    /// New tokens per second of decoding (one token per forward pass).
    pub decode_tokens_per_s: f64,
    /// Seconds to load the model file.
    pub load_s: f64,
}

/// One prompt's inputs and outputs, for the other runtime.
#[derive(Debug, Clone, Serialize)]
struct Row {
    text: String,
    ids: Vec<u32>,
    generated: Vec<u32>,
}

/// Time prefill and decoding as the module documentation says.
pub fn run(config: &GeneratorBenchConfig) -> Result<GeneratorBench, EvalError> {
    if config.prompts == 0 || config.tokens == 0 {
        return Err(setting(
            "prompts",
            "--prompts and --tokens must be at least 1",
        ));
    }
    let started = Instant::now();
    let generator = Generator::open(&config.model, &Device::flex())?;
    let load_s = started.elapsed().as_secs_f64();
    let ds = crate::datasets::load(&config.data, None, None)?;
    let questions: Vec<_> = ds
        .queries
        .iter()
        .filter_map(|q| {
            let gold = q.qrels.iter().find(|(_, grade)| **grade > 0)?.0;
            let doc = ds.corpus.iter().find(|d| &d.id == gold)?;
            Some((q.text.clone(), doc.full_text()))
        })
        .take(config.prompts + 1)
        .collect();
    if questions.len() <= config.prompts {
        return Err(setting(
            "prompts",
            format!(
                "{} has {} questions with a passage; {} are needed",
                config.data.display(),
                questions.len(),
                config.prompts + 1
            ),
        ));
    }
    let mut rows = Vec::new();
    let (mut prefill_s, mut decode_s) = (0.0, 0.0);
    let (mut prompt_tokens, mut generated_tokens) = (0, 0);
    for (i, (question, passage)) in questions.iter().enumerate() {
        let user = rlrag_router::llm::prompt(question, &[passage.as_str()]);
        let text = generator.template().prompt(&[("user", user.as_str())]);
        let ids = generator.tokenizer().encode(&text)?;
        let mut cache = KvCache::default();
        let t0 = Instant::now();
        let mut logits = generator.model().next_logits(&ids, &mut cache)?;
        let t1 = Instant::now();
        let mut generated = Vec::with_capacity(config.tokens);
        for _ in 0..config.tokens {
            let next = rlrag_generator::generate::top_k(&logits, 1)
                .first()
                .map_or(0, |t| t.0);
            generated.push(next);
            if generated.len() < config.tokens {
                logits = generator.model().next_logits(&[next], &mut cache)?;
            }
        }
        let t2 = Instant::now();
        // The first prompt warms caches and the allocator up.
        if i > 0 {
            prefill_s += (t1 - t0).as_secs_f64();
            decode_s += (t2 - t1).as_secs_f64();
            prompt_tokens += ids.len();
            // The first new token comes with the prefill's logits.
            generated_tokens += config.tokens - 1;
            rows.push(Row {
                text,
                ids,
                generated,
            });
        }
    }
    if let Some(path) = &config.out {
        let json = serde_json::to_string(&rows)?;
        std::fs::write(path, json + "\n").map_err(io("write", path))?;
    }
    Ok(GeneratorBench {
        prompts: rows.len(),
        prompt_tokens,
        generated_tokens,
        prefill_tokens_per_s: prompt_tokens as f64 / prefill_s.max(1e-9),
        decode_tokens_per_s: generated_tokens as f64 / decode_s.max(1e-9),
        load_s,
    })
}
