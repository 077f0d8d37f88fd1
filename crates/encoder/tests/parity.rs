//! Parity with an independent reference: the burn encoders reproduce the
//! golden values of `scripts/reference/golden_encoders.py` (a float64 numpy BERT over
//! the same weights, ids from Python `tokenizers`) on the real models.
//! Models come from `scripts/fetch-models.sh` (the test command runs it).
#![allow(missing_docs, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use rlrag_encoder::models::pretrained;
use rlrag_encoder::{Encoder, SparseActivation};
use serde_json::Value;

const TOL: f64 = 1e-4;

fn golden() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/encoders.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("golden file")).expect("json")
}

fn model_dir(name: &str) -> PathBuf {
    let dir = pretrained(name);
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} is missing: run scripts/fetch-models.sh first",
        dir.display()
    );
    dir
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("ids")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

fn f(v: &Value) -> f64 {
    v.as_f64().expect("number")
}

#[test]
fn minilm_matches_the_reference() {
    let encoder = Encoder::from_dir(&model_dir("minilm"), &Device::flex()).expect("loads");
    let g = golden();
    let cases = g["cases"].as_array().expect("cases");
    let texts: Vec<&str> = cases
        .iter()
        .map(|c| c["text"].as_str().expect("text"))
        .collect();
    let tokens = encoder.tokenize(&texts).expect("tokenizes");
    let vectors = encoder.encode_dense(&texts).expect("encodes");
    let mut worst: f64 = 0.0;
    for ((case, toks), v) in cases.iter().zip(&tokens).zip(&vectors) {
        assert_eq!(toks, &ids(&case["minilm_ids"]), "{}", case["text"]);
        let want: Vec<f64> = case["dense"]
            .as_array()
            .expect("dense")
            .iter()
            .map(f)
            .collect();
        assert_eq!(v.len(), want.len());
        for (a, b) in v.iter().zip(&want) {
            worst = worst.max((f64::from(*a) - b).abs());
        }
    }
    println!("minilm max |burn - reference| = {worst:e}");
    assert!(worst < TOL, "max abs error {worst}");
}

#[test]
fn splade_tiny_matches_the_reference_for_both_activations() {
    let dir = model_dir("splade-tiny");
    let g = golden();
    let cases = g["cases"].as_array().expect("cases");
    let texts: Vec<&str> = cases
        .iter()
        .map(|c| c["text"].as_str().expect("text"))
        .collect();
    for (name, activation) in [
        ("log1p_relu", SparseActivation::Log1pRelu),
        ("elu1p", SparseActivation::Elu1p),
    ] {
        let mut config: Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).expect("config"))
                .expect("json");
        config["rlrag"]["head"]["activation"] = Value::from(name);
        let config = serde_json::to_vec(&config).expect("json");
        let weights = std::fs::read(dir.join("model.safetensors")).expect("weights");
        let tokenizer = std::fs::read(dir.join("tokenizer.json")).expect("tokenizer");
        let encoder = Encoder::load(
            rlrag_encoder::ModelFiles {
                weights: &weights,
                config: &config,
                tokenizer: &tokenizer,
            },
            &Device::flex(),
        )
        .expect("loads");
        assert_eq!(encoder.sparse_settings(), Some((activation, None)));
        let tokens = encoder.tokenize(&texts).expect("tokenizes");
        let vectors = encoder.encode_sparse(&texts).expect("encodes");
        let mut worst: f64 = 0.0;
        for ((case, toks), v) in cases.iter().zip(&tokens).zip(&vectors) {
            assert_eq!(toks, &ids(&case["splade_ids"]));
            let want = &case["sparse"][name];
            assert_eq!(
                v.terms.len() as u64,
                want["nonzero"].as_u64().expect("n"),
                "{name}: {}",
                case["text"]
            );
            let l1 = f(&want["l1"]);
            assert!(
                (f64::from(v.l1()) - l1).abs() <= 1e-4 * l1.max(1.0),
                "{name} l1 {} vs {l1}",
                v.l1()
            );
            let weight = |id: u32| {
                v.terms
                    .iter()
                    .find(|t| t.0 == id)
                    .map_or(0.0, |t| f64::from(t.1))
            };
            for t in want["top"].as_array().expect("top") {
                let id = t[0].as_u64().expect("id") as u32;
                worst = worst.max((weight(id) - f(&t[2])).abs());
            }
            // The heaviest term is the reference's, readable as a word.
            let top = v.top(1)[0].0;
            assert_eq!(u64::from(top), want["top"][0][0].as_u64().expect("id"));
            assert_eq!(encoder.token(top).as_deref(), want["top"][0][1].as_str());
        }
        println!("splade-tiny {name} max |burn - reference| over top-20 terms = {worst:e}");
        assert!(worst < TOL, "{name}: max abs error {worst}");
    }
}

fn cross_golden() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/cross-encoder.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("golden file")).expect("json")
}

/// The cross-encoder `train-reranker` starts from (all-MiniLM-L6-v2's body
/// and pooler, a seeded classifier) reproduces the reference's ids, token
/// types and logits, with all six layers and with the first two; the
/// differentiable path gives the same logits, and a save loads back equal.
#[test]
fn cross_encoder_matches_the_reference() {
    use rlrag_encoder::{CrossEncoderInit, ModelFiles};
    let dir = model_dir("minilm");
    let read = |name: &str| std::fs::read(dir.join(name)).expect("model file");
    let (weights, config, tokenizer) = (
        read("model.safetensors"),
        read("config.json"),
        read("tokenizer.json"),
    );
    let base = ModelFiles {
        weights: &weights,
        config: &config,
        tokenizer: &tokenizer,
    };
    let g = cross_golden();
    let device = Device::flex();
    let mut worst: f64 = 0.0;
    for model in g["models"].as_array().expect("models") {
        let layers = model["layers"].as_u64().expect("layers") as usize;
        let init = CrossEncoderInit {
            layers: Some(layers),
            max_length: g["max_length"].as_u64().expect("max_length") as usize,
            max_question_tokens: 64,
            seed: g["seed"].as_u64().expect("seed"),
        };
        let encoder = Encoder::new_cross_encoder(base, init, &device).expect("cross-encoder");
        let cases = model["cases"].as_array().expect("cases");
        let question = |c: &Value| c["question"].as_str().expect("question").to_owned();
        let passage = |c: &Value| c["passage"].as_str().expect("passage").to_owned();
        let mut logits = Vec::new();
        for case in cases {
            let (ids_got, first) = encoder
                .tokenize_pair(&question(case), &passage(case))
                .expect("pair");
            assert_eq!(ids_got, ids(&case["ids"]), "{}", case["passage"]);
            assert_eq!(first as u64, case["first_len"].as_u64().expect("first"));
            // One question per call: score each pair on its own and all of
            // one question's passages together (padding in the batch).
            let got = encoder
                .score_pairs(&question(case), &[&passage(case)])
                .expect("scores")[0];
            worst = worst.max((f64::from(got) - f(&case["logit"])).abs());
            logits.push(got);
        }
        let pairs: Vec<(String, String)> =
            cases.iter().map(|c| (question(c), passage(c))).collect();
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(q, p)| (q.as_str(), p.as_str()))
            .collect();
        let tensor = encoder
            .pair_logits(&refs)
            .expect("logits")
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        for (a, b) in tensor.iter().zip(&logits) {
            assert!((a - b).abs() < 1e-5, "batched {a} vs one at a time {b}");
        }
        // A long question is cut to max_question_tokens; the passage keeps
        // the rest of the model's length.
        let long = "why ".repeat(200);
        let (cut, first) = encoder
            .tokenize_pair(&long, &"word ".repeat(400))
            .expect("pair");
        assert_eq!((first, cut.len()), (64 + 2, 256));
        let france = [&pairs[0].1 as &str, &pairs[1].1];
        let together = encoder.score_pairs(&pairs[0].0, &france).expect("scores");
        assert!((together[0] - logits[0]).abs() < 1e-5 && (together[1] - logits[1]).abs() < 1e-5);
        // Saved with Hugging Face names and read back: the same logits.
        let saved = encoder.weights_safetensors().expect("saves");
        let config = encoder.config().to_json().expect("config");
        let text = String::from_utf8(config.clone()).expect("utf-8");
        assert!(text.contains("BertForSequenceClassification"), "{text}");
        let loaded = Encoder::load(
            ModelFiles {
                weights: &saved,
                config: &config,
                tokenizer: &tokenizer,
            },
            &device,
        )
        .expect("loads back");
        let again = loaded.score_pairs(&pairs[0].0, &france).expect("scores");
        assert_eq!(again, together);
    }
    println!("cross-encoder max |burn - reference| = {worst:e}");
    assert!(worst < 1e-5, "max abs error {worst}");
}
