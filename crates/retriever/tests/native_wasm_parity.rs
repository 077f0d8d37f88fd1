//! The encoders and indexes give the same vectors and rankings natively and in
//! wasm32 (Node, CPU backend).
//!
//! One computation, compiled for both targets: the real MiniLM and SPLADE-tiny
//! models encode fixed sentences, and every retriever (BM25, learned sparse,
//! bag of tokens with re-rank, dense flat and HNSW, hybrid, and a sparse index
//! saved and reloaded) ranks a small corpus. The native run is checked
//! against `tests/golden/native-outputs.json` (regenerate it with
//! `RLRAG_BLESS=1 cargo test --test native_wasm_parity`); the wasm run
//! (`cargo test --target wasm32-unknown-unknown -p rlrag-retriever --test
//! native_wasm_parity`, runner `wasm-bindgen-test-runner`) against the same
//! file. Models come from `scripts/fetch-models.sh`.
#![allow(missing_docs, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use burn::tensor::Device;
use rlrag_encoder::{Encoder, ModelFiles};
use rlrag_retriever::{
    AnalyzerConfig, Bm25Index, Bm25Params, BotRetriever, DenseRetriever, DenseSearch, Document,
    Fusion, HnswParams, HybridRetriever, Retriever, SavedIndex, SparseIndex, SparseRetriever,
};
use serde_json::{Value, json};

const GOLDEN: &str = include_str!("../../../tests/golden/native-outputs.json");
/// Vectors and scores may differ by float summation order between targets.
const TOL: f64 = 1e-5;

const SENTENCES: [&str; 4] = [
    "The quick brown fox jumps over the lazy dog.",
    "Which film whose director is younger, Count Cohn or Key House Mirror?",
    "Microstructural development of human newborn cerebral white matter.",
    "",
];

const CORPUS: [(&str, &str, &str); 8] = [
    (
        "paris",
        "Paris",
        "Paris is the capital and most populous city of France.",
    ),
    (
        "berlin",
        "Berlin",
        "Berlin is the capital and largest city of Germany by population.",
    ),
    (
        "photosynthesis",
        "Photosynthesis",
        "Photosynthesis turns light energy into chemical energy in plants.",
    ),
    (
        "insulin",
        "Insulin",
        "Insulin is a peptide hormone produced by beta cells of the pancreas.",
    ),
    (
        "everest",
        "Mount Everest",
        "Mount Everest is Earth's highest mountain above sea level.",
    ),
    (
        "nile",
        "Nile",
        "The Nile is a major north-flowing river in northeastern Africa.",
    ),
    (
        "jupiter",
        "Jupiter",
        "Jupiter is the fifth planet from the Sun and the largest in the Solar System.",
    ),
    (
        "tcell",
        "T cell",
        "T cells are lymphocytes that mature in the thymus and drive adaptive immunity.",
    ),
];

const QUERIES: [&str; 4] = [
    "What is the capital of France?",
    "which gland makes the hormone insulin",
    "largest planet in the solar system",
    "longest river in Africa",
];

/// The three files of a model, read by the target's own means.
pub struct ModelBytes {
    pub weights: Vec<u8>,
    pub config: Vec<u8>,
    pub tokenizer: Vec<u8>,
}

fn encoder(m: &ModelBytes) -> Arc<Encoder> {
    let files = ModelFiles {
        weights: &m.weights,
        config: &m.config,
        tokenizer: &m.tokenizer,
    };
    Arc::new(Encoder::load(files, &Device::flex()).expect("model loads"))
}

fn ranking(r: &dyn Retriever) -> Value {
    let lists: Vec<Value> = QUERIES
        .iter()
        .map(|q| {
            let hits = r.search(q, 5).expect("searches");
            json!(
                hits.iter()
                    .map(|h| json!([h.id, h.score]))
                    .collect::<Vec<_>>()
            )
        })
        .collect();
    json!(lists)
}

/// Everything compared across targets.
pub fn outputs(minilm: &ModelBytes, splade: &ModelBytes) -> Value {
    let dense = encoder(minilm);
    let sparse = encoder(splade);
    let docs: Vec<Document> = CORPUS
        .iter()
        .map(|&(id, title, text)| Document {
            id: id.into(),
            title: title.into(),
            text: text.into(),
        })
        .collect();

    let dense_vectors = dense.encode_dense(&SENTENCES).expect("dense");
    let sparse_vectors: Vec<Value> = sparse
        .encode_sparse(&SENTENCES)
        .expect("sparse")
        .iter()
        .map(|v| json!(v.top(30)))
        .collect();

    let mut bm25 = Bm25Index::new(Bm25Params::default(), AnalyzerConfig::default()).expect("bm25");
    bm25.add_documents(&docs).expect("bm25 indexes");
    let mut sp = SparseRetriever::new(sparse.clone()).expect("sparse");
    sp.add_documents(&docs, &mut |_| {})
        .expect("sparse indexes");
    let reloaded = SparseRetriever::with_index(
        sparse.clone(),
        SparseIndex::from_bytes(&sp.index().to_bytes().expect("saves")).expect("loads"),
    )
    .expect("reloads");
    let mut bot = BotRetriever::new(sparse.clone(), 0).expect("bot");
    bot.add_documents(&docs).expect("bot indexes");
    let mut bot_rerank = BotRetriever::new(sparse, 4).expect("bot");
    bot_rerank.add_documents(&docs).expect("bot indexes");
    let mut flat = DenseRetriever::new(dense.clone(), DenseSearch::Flat).expect("dense");
    flat.add_documents(&docs, &mut |_| {})
        .expect("dense indexes");
    let mut hnsw =
        DenseRetriever::new(dense, DenseSearch::Hnsw(HnswParams::default())).expect("hnsw");
    hnsw.add_documents(&docs, &mut |_| {})
        .expect("hnsw indexes");
    let rankings = json!({
        "bm25": ranking(&bm25),
        "sparse": ranking(&sp),
        "sparse_reloaded": ranking(&reloaded),
        "bot": ranking(&bot),
        "bot_rerank4": ranking(&bot_rerank),
        "dense_flat": ranking(&flat),
        "dense_hnsw": ranking(&hnsw),
    });
    let hybrid = HybridRetriever::new(
        vec![
            (Box::new(bm25), 1.0),
            (Box::new(sp), 1.0),
            (Box::new(flat), 1.0),
        ],
        Fusion::Weighted,
        8,
    )
    .expect("hybrid");
    json!({
        "dense": dense_vectors,
        "sparse_top30": sparse_vectors,
        "rankings": rankings,
        "hybrid_weighted": ranking(&hybrid),
    })
}

/// Where `got` differs from `want`: numbers beyond [`TOL`] (absolute, or
/// relative for large values), anything else not equal.
pub fn differences(got: &Value, want: &Value, path: &str, out: &mut Vec<String>) {
    match (got, want) {
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (
                a.as_f64().unwrap_or(f64::NAN),
                b.as_f64().unwrap_or(f64::NAN),
            );
            if (a - b).abs() > TOL * b.abs().max(1.0) {
                out.push(format!("{path}: {a} vs {b}"));
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                differences(x, y, &format!("{path}[{i}]"), out);
            }
        }
        (Value::Object(a), Value::Object(b)) if a.len() == b.len() => {
            for (k, y) in b {
                match a.get(k) {
                    Some(x) => differences(x, y, &format!("{path}.{k}"), out),
                    None => out.push(format!("{path}.{k}: missing")),
                }
            }
        }
        _ if got == want => {}
        _ => out.push(format!("{path}: {got} vs {want}")),
    }
}

fn check(got: &Value) {
    let want: Value = serde_json::from_str(GOLDEN).expect("golden json");
    let mut diffs = Vec::new();
    differences(got, &want, "", &mut diffs);
    assert!(
        diffs.is_empty(),
        "{} differences from the native golden outputs, first: {:?}",
        diffs.len(),
        &diffs[..diffs.len().min(8)]
    );
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use super::*;

    fn read(name: &str) -> ModelBytes {
        let dir = rlrag_encoder::models::pretrained(name);
        let f = |n: &str| {
            std::fs::read(dir.join(n)).unwrap_or_else(|e| {
                panic!(
                    "{}: {e}; run scripts/fetch-models.sh",
                    dir.join(n).display()
                )
            })
        };
        ModelBytes {
            weights: f("model.safetensors"),
            config: f("config.json"),
            tokenizer: f("tokenizer.json"),
        }
    }

    #[test]
    fn native_outputs_match_the_golden_file() {
        let got = outputs(&read("minilm"), &read("splade-tiny"));
        if std::env::var_os("RLRAG_BLESS").is_some() {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/golden/native-outputs.json");
            let text = serde_json::to_string_pretty(&got).expect("json") + "\n";
            std::fs::write(&path, text).expect("writes the golden file");
            return;
        }
        check(&got);
    }
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    use super::*;
    use wasm_bindgen::prelude::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen(inline_js = "
        import { readFileSync } from 'node:fs';
        export function models_dir() {
            const env = process.env;
            return env.RLRAG_MODELS || ((env.RLRAG_CACHE || (env.HOME + '/.cache/rlrag')) + '/models');
        }
        export function read_file(path) { return new Uint8Array(readFileSync(path)); }
    ")]
    extern "C" {
        fn models_dir() -> String;
        #[wasm_bindgen(catch)]
        fn read_file(path: &str) -> Result<Vec<u8>, JsValue>;
    }

    fn read(name: &str) -> ModelBytes {
        let dir = format!("{}/{name}", models_dir());
        let f = |n: &str| {
            read_file(&format!("{dir}/{n}"))
                .unwrap_or_else(|e| panic!("{dir}/{n}: {e:?}; run scripts/fetch-models.sh"))
        };
        ModelBytes {
            weights: f("model.safetensors"),
            config: f("config.json"),
            tokenizer: f("tokenizer.json"),
        }
    }

    #[wasm_bindgen_test]
    fn wasm_outputs_match_native() {
        check(&outputs(&read("minilm"), &read("splade-tiny")));
    }
}
