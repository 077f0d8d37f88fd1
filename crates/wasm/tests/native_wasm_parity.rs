//! The encoders and indexes give the same vectors and rankings natively and in
//! wasm32 (Node, CPU backend).
//!
//! One computation, compiled for both targets: the real MiniLM and SPLADE-tiny
//! models encode fixed sentences, and the engine ranks a small corpus in
//! every mode (BM25, learned sparse, bag of tokens with re-rank, dense flat
//! and HNSW, a weighted hybrid, learned sparse after an export and import,
//! and BM25 reranked by a cross-encoder made from MiniLM). The native run is checked
//! against `tests/golden/native-outputs.json` (regenerate it with
//! `RLRAG_BLESS=1 cargo test --test native_wasm_parity`); the wasm run
//! (`cargo test --target wasm32-unknown-unknown -p rlrag-wasm --test
//! native_wasm_parity`, runner `wasm-bindgen-test-runner`) against the same
//! file. Models come from `scripts/fetch-models.sh`.
#![allow(missing_docs, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use burn::tensor::Device;
use rlrag_encoder::{CrossEncoderInit, Encoder, ModelFiles};
use rlrag_retriever::{
    DenseSearch, Document, Engine, EngineModels, EngineOptions, Fusion, HnswParams, Reranker,
    SearchMode,
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

async fn ranking(engine: &Engine, mode: SearchMode) -> Value {
    reranked(engine, mode, 0).await
}

/// The top 5 of each query, the first stage's top `rerank` re-scored by the
/// engine's reranker.
async fn reranked(engine: &Engine, mode: SearchMode, rerank: usize) -> Value {
    let mut lists = Vec::new();
    for q in QUERIES {
        let hits = engine
            .search_reranked(q, 5, mode, false, rerank)
            .await
            .expect("searches");
        lists.push(json!(
            hits.iter()
                .map(|h| json!([h.id, h.score]))
                .collect::<Vec<_>>()
        ));
    }
    json!(lists)
}

/// Everything compared across targets (the engine hands control back
/// between indexing chunks, so this is a future: `block_on` natively, an
/// async test in wasm).
pub async fn outputs(minilm: &ModelBytes, splade: &ModelBytes) -> Value {
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

    let models = || EngineModels {
        sparse: sparse.clone(),
        sparse_fingerprint: 1,
        dense: Some((dense.clone(), 2)),
    };
    let engine = async |options: EngineOptions| {
        let mut e = Engine::new(models(), options).expect("engine");
        e.add_documents(&docs, &mut |_| {}).await.expect("indexes");
        e
    };
    let mut plain = engine(EngineOptions::default()).await;
    let base = ModelFiles {
        weights: &minilm.weights,
        config: &minilm.config,
        tokenizer: &minilm.tokenizer,
    };
    let init = CrossEncoderInit {
        layers: Some(2),
        max_length: 128,
        max_question_tokens: 32,
        seed: 7,
    };
    let cross = Encoder::new_cross_encoder(base, init, &Device::flex()).expect("cross-encoder");
    plain.set_reranker(Some(Reranker::new(Arc::new(cross)).expect("reranker")));
    let reloaded = Engine::import(models(), &plain.export().expect("exports")).expect("imports");
    let rerank = engine(EngineOptions {
        rerank_m: 4,
        ..EngineOptions::default()
    })
    .await;
    let hnsw = engine(EngineOptions {
        dense_search: DenseSearch::Hnsw(HnswParams::default()),
        ..EngineOptions::default()
    })
    .await;
    let weighted = engine(EngineOptions {
        hybrid: vec![SearchMode::Bm25, SearchMode::Sparse, SearchMode::Dense],
        fusion: Fusion::Weighted,
        ..EngineOptions::default()
    })
    .await;
    let rankings = json!({
        "bm25": ranking(&plain, SearchMode::Bm25).await,
        "sparse": ranking(&plain, SearchMode::Sparse).await,
        "sparse_reloaded": ranking(&reloaded, SearchMode::Sparse).await,
        "bot": ranking(&plain, SearchMode::Bot).await,
        "bot_rerank4": ranking(&rerank, SearchMode::Bot).await,
        "bm25_cross_encoder5": reranked(&plain, SearchMode::Bm25, 5).await,
        "dense_flat": ranking(&plain, SearchMode::Dense).await,
        "dense_hnsw": ranking(&hnsw, SearchMode::Dense).await,
    });
    json!({
        "dense": dense_vectors,
        "sparse_top30": sparse_vectors,
        "rankings": rankings,
        "hybrid_weighted": ranking(&weighted, SearchMode::Hybrid).await,
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
        let got = futures_lite::future::block_on(outputs(&read("minilm"), &read("splade-tiny")));
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
    async fn wasm_outputs_match_native() {
        check(&outputs(&read("minilm"), &read("splade-tiny")).await);
    }
}
