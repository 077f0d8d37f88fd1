//! Encoder throughput: passages/s at 128 tokens, batch 32, flex backend (CPU,
//! one thread), for the dense (all-MiniLM-L6-v2) and learned-sparse
//! (SPLADE-tiny) heads on the real weights. Needs `scripts/fetch-models.sh`.
#![allow(missing_docs, clippy::expect_used)]

use std::path::Path;

use burn::tensor::Device;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rlrag::encoder::Encoder;
use rlrag::encoder::models::pretrained;
use rlrag::retriever::Dataset;

// As in the trainer: mimalloc reuses the large per-op temporaries.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// 32 SciFact abstracts, each cut to exactly 128 tokens by the model's tokenizer.
fn passages(encoder: &Encoder) -> Vec<String> {
    let ds = Dataset::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("data/scifact"),
        None,
        None,
    )
    .expect("SciFact loads");
    ds.corpus
        .iter()
        .filter_map(|d| {
            let text = d.full_text();
            let cut = encoder.truncate_to_tokens(&text, 128).expect("cuts");
            let len = encoder.tokenize(&[cut]).expect("tokenizes")[0].len();
            (len == 128).then(|| cut.to_string())
        })
        .take(32)
        .collect()
}

fn encoders(c: &mut Criterion) {
    let mut group = c.benchmark_group("encoder_128tok_batch32");
    group.sample_size(10);
    for name in ["minilm", "splade-tiny"] {
        let encoder = Encoder::from_dir(&pretrained(name), &Device::flex())
            .expect("model present (scripts/fetch-models.sh)");
        let texts = passages(&encoder);
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        group.throughput(Throughput::Elements(refs.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                if encoder.sparse_settings().is_some() {
                    encoder.encode_sparse(&refs).expect("encodes").len()
                } else {
                    encoder.encode_dense(&refs).expect("encodes").len()
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, encoders);
criterion_main!(benches);
