//! Bad model files are refused with a clear error, never a panic.
#![allow(missing_docs, clippy::expect_used, clippy::panic)]

use burn::tensor::Device;
use rlrag_encoder::models::pretrained;
use rlrag_encoder::{Encoder, EncoderError, ModelConfig, ModelFiles, Prepared};

struct Files {
    weights: Vec<u8>,
    config: Vec<u8>,
    tokenizer: Vec<u8>,
}

fn files(name: &str) -> Files {
    let dir = pretrained(name);
    let read = |f: &str| {
        std::fs::read(dir.join(f)).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run scripts/fetch-models.sh",
                dir.join(f).display()
            )
        })
    };
    Files {
        weights: read("model.safetensors"),
        config: read("config.json"),
        tokenizer: read("tokenizer.json"),
    }
}

fn load(weights: &[u8], config: &[u8], tokenizer: &[u8]) -> Result<Encoder, EncoderError> {
    Encoder::load(
        ModelFiles {
            weights,
            config,
            tokenizer,
        },
        &Device::flex(),
    )
}

#[test]
fn wrong_or_damaged_files_are_errors() {
    let m = files("minilm");
    let s = files("splade-tiny");

    // MiniLM weights under a config that asks for an MLM head: the head is missing.
    let err = load(&m.weights, &s.config, &m.tokenizer).expect_err("shape/head mismatch");
    assert!(matches!(err, EncoderError::Weights(_)), "{err}");

    // Truncated weights.
    let err =
        load(&m.weights[..m.weights.len() / 3], &m.config, &m.tokenizer).expect_err("truncated");
    assert!(matches!(err, EncoderError::Weights(_)), "{err}");

    // A tokenizer that is not JSON.
    let err = load(&m.weights, &m.config, b"not a tokenizer").expect_err("bad tokenizer");
    assert!(matches!(err, EncoderError::Tokenizer(_)), "{err}");

    // A config that is not JSON, and one with an unsupported activation.
    assert!(matches!(
        load(&m.weights, b"{", &m.tokenizer),
        Err(EncoderError::Config(_))
    ));
    let mut cfg: serde_json::Value = serde_json::from_slice(&m.config).expect("json");
    cfg["hidden_act"] = "relu".into();
    let err = load(
        &m.weights,
        &serde_json::to_vec(&cfg).expect("json"),
        &m.tokenizer,
    )
    .expect_err("unsupported act");
    assert!(err.to_string().contains("hidden_act `relu`"), "{err}");
}

#[test]
fn config_and_tokenizer_are_checked_before_the_weights() {
    let m = files("minilm");
    let s = files("splade-tiny");
    // What the browser reads while the weights download: a bad config or
    // tokenizer, or a tokenizer larger than the model's vocabulary, is
    // refused without them.
    assert!(matches!(
        Prepared::parse(b"{", &s.tokenizer),
        Err(EncoderError::Config(_))
    ));
    assert!(matches!(
        Prepared::parse(&s.config, b"[]"),
        Err(EncoderError::Tokenizer(_))
    ));
    let mut cfg: serde_json::Value = serde_json::from_slice(&s.config).expect("json");
    cfg["vocab_size"] = 1000.into();
    let err = Prepared::parse(&serde_json::to_vec(&cfg).expect("json"), &s.tokenizer)
        .expect_err("vocabulary too small");
    assert!(err.to_string().contains("but the model only 1000"), "{err}");

    // Then the weights: the same encoder as loading all three at once.
    let prepared = Prepared::parse(&s.config, &s.tokenizer).expect("prepare");
    assert_eq!(prepared.config().bert.vocab_size, 30522);
    let staged = prepared
        .clone()
        .load(s.weights.clone(), &Device::flex())
        .expect("load");
    let whole = load(&s.weights, &s.config, &s.tokenizer).expect("load");
    let text = ["what is the capital of france?"];
    assert_eq!(
        staged.encode_sparse(&text).expect("encode"),
        whole.encode_sparse(&text).expect("encode")
    );
    // Weights of another architecture are still refused.
    let err = prepared
        .load(m.weights, &Device::flex())
        .expect_err("MiniLM weights under the SPLADE config");
    assert!(matches!(err, EncoderError::Weights(_)), "{err}");
}

/// Files that would make the loader allocate without bound, or read past
/// the embedding table, are refused before anything is built.
#[test]
fn hostile_configs_and_tokenizers_are_refused_before_allocating() {
    let s = files("splade-tiny");
    let config = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v: serde_json::Value = serde_json::from_slice(&s.config).expect("json");
        f(&mut v);
        serde_json::to_vec(&v).expect("json")
    };
    // Sizes no model has: refused by the config check.
    for (field, value) in [
        ("vocab_size", serde_json::json!(1_000_000_000_000u64)),
        ("num_hidden_layers", serde_json::json!(100_000_000)),
        ("hidden_size", serde_json::json!(1_048_576)),
        ("intermediate_size", serde_json::json!(1u64 << 40)),
        ("type_vocab_size", serde_json::json!(0)),
    ] {
        let bad = config(&|v| v[field] = value.clone());
        let err = ModelConfig::from_json(&bad).expect_err(field);
        assert!(err.to_string().contains(field), "{field}: {err}");
    }
    // Attention scores no memory holds, at no cost in weights (heads and
    // length add no parameters).
    for (what, bad, needle) in [
        (
            "long inputs",
            config(&|v| {
                v["max_position_embeddings"] = 65_536.into();
                v["rlrag"]["max_length"] = 65_536.into();
            }),
            "max_length 65536",
        ),
        (
            "many heads",
            config(&|v| {
                v["num_attention_heads"] = 128.into();
                v["max_position_embeddings"] = 8192.into();
                v["rlrag"]["max_length"] = 8192.into();
            }),
            "attention",
        ),
    ] {
        let err = ModelConfig::from_json(&bad).expect_err(what);
        assert!(err.to_string().contains(needle), "{what}: {err}");
    }
    // The same head count at BERT's length is fine (128 heads × 512²).
    let ok = config(&|v| v["num_attention_heads"] = 128.into());
    ModelConfig::from_json(&ok).expect("128 heads at 512 tokens");

    // Plausible sizes, but more parameters than the weights file holds:
    // refused before the model is allocated.
    let big = config(&|v| {
        v["hidden_size"] = 4096.into();
        v["num_attention_heads"] = 32.into();
        v["intermediate_size"] = 16384.into();
        v["num_hidden_layers"] = 48.into();
    });
    let prepared = Prepared::parse(&big, &s.tokenizer).expect("within bounds");
    let err = prepared
        .load(s.weights.clone(), &Device::flex())
        .expect_err("more parameters than bytes");
    assert!(err.to_string().contains("parameters"), "{err}");

    // A tokenizer that produces an id past the embedding table: in its
    // vocabulary, its added tokens or its template's special tokens.
    let tokenizer = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v: serde_json::Value = serde_json::from_slice(&s.tokenizer).expect("json");
        f(&mut v);
        serde_json::to_vec(&v).expect("json")
    };
    let in_vocab = tokenizer(&|v| v["model"]["vocab"]["zzzqx"] = 40_000.into());
    let added = tokenizer(&|v| {
        v["added_tokens"]
            .as_array_mut()
            .expect("added tokens")
            .push(
                serde_json::json!({"id": 99_999, "content": "[X]", "single_word": false,
                "lstrip": false, "rstrip": false, "normalized": false, "special": true}),
            );
    });
    let template = tokenizer(&|v| {
        v["post_processor"]["special_tokens"]["[CLS]"]["ids"] = serde_json::json!([65_000])
    });
    // WordPiece's cubic work on a long word, unbounded.
    let slow = tokenizer(&|v| v["model"]["max_input_chars_per_word"] = 1_000_000_000.into());
    let err = Prepared::parse(&s.config, &slow).expect_err("max_input_chars_per_word");
    assert!(
        err.to_string().contains("max_input_chars_per_word"),
        "{err}"
    );
    for (what, bytes) in [
        ("vocabulary", in_vocab),
        ("added token", added),
        ("template", template),
    ] {
        let err = Prepared::parse(&s.config, &bytes).expect_err(what);
        assert!(
            err.to_string().contains("outside the model's vocabulary"),
            "{what}: {err}"
        );
    }
}

#[test]
fn config_validation_names_the_problem() {
    let base = files("splade-tiny").config;
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v: serde_json::Value = serde_json::from_slice(&base).expect("json");
        f(&mut v);
        ModelConfig::from_json(&serde_json::to_vec(&v).expect("json"))
    };
    let err = edit(&|v| v["num_attention_heads"] = 3.into()).expect_err("heads");
    assert!(err.to_string().contains("not divisible"), "{err}");
    let err = edit(&|v| v["rlrag"]["max_length"] = 4096.into()).expect_err("too long");
    assert!(err.to_string().contains("max_length 4096"), "{err}");
    let err = edit(&|v| v["rlrag"]["head"]["top_k"] = 0.into()).expect_err("top_k 0");
    assert!(err.to_string().contains("top_k"), "{err}");
    let err =
        edit(&|v| v["rlrag"]["head"]["activation"] = "softplus".into()).expect_err("activation");
    assert!(err.to_string().contains("rlrag"), "{err}");
    // No rlrag section: the head follows the architecture.
    let cfg = edit(&|v| {
        v.as_object_mut().expect("object").remove("rlrag");
    })
    .expect("defaults");
    assert!(matches!(
        cfg.rlrag.head,
        rlrag_encoder::Head::Sparse { top_k: None, .. }
    ));
    // Round trip through to_json.
    let again = ModelConfig::from_json(&cfg.to_json().expect("json")).expect("parses");
    assert_eq!(again, cfg);
    // A cross-encoder: the question must leave room for a passage; a
    // Hugging Face sequence classifier without the rlrag section is one.
    let cross = |q: u64| {
        edit(&|v| {
            v["rlrag"]["head"] =
                serde_json::json!({"kind": "cross_encoder", "max_question_tokens": q});
            v["rlrag"]["max_length"] = 128.into();
        })
    };
    assert!(cross(124).is_ok());
    for bad in [0, 125, u64::MAX] {
        let err = cross(bad).expect_err("question too long");
        assert!(err.to_string().contains("max_question_tokens"), "{err}");
    }
    let cfg = edit(&|v| {
        v.as_object_mut().expect("object").remove("rlrag");
        v["architectures"] = serde_json::json!(["BertForSequenceClassification"]);
    })
    .expect("defaults");
    assert_eq!(
        cfg.rlrag.head,
        rlrag_encoder::Head::CrossEncoder {
            max_question_tokens: rlrag_encoder::DEFAULT_MAX_QUESTION_TOKENS
        }
    );
}

/// A cross-encoder directory without its classifier is refused by name; a
/// sentence encoder is not a cross-encoder; other heads cannot score pairs.
#[test]
fn cross_encoders_need_their_classifier_and_other_heads_refuse_pairs() {
    let base = files("minilm");
    let mut config: serde_json::Value = serde_json::from_slice(&base.config).expect("json");
    config["rlrag"]["head"] =
        serde_json::json!({"kind": "cross_encoder", "max_question_tokens": 32});
    let config = serde_json::to_vec(&config).expect("json");
    let err = load(&base.weights, &config, &base.tokenizer).expect_err("no classifier");
    assert!(err.to_string().contains("score.classifier"), "{err}");
    let dense = load(&base.weights, &base.config, &base.tokenizer).expect("dense");
    for err in [
        dense.score_pairs("q", &["p"]).expect_err("dense"),
        dense.pair_logits(&[("q", "p")]).expect_err("dense"),
    ] {
        assert!(err.to_string().contains("not a cross-encoder"), "{err}");
    }
    let init = rlrag_encoder::CrossEncoderInit {
        layers: Some(7),
        max_length: 128,
        max_question_tokens: 32,
        seed: 0,
    };
    let files = rlrag_encoder::ModelFiles {
        weights: &base.weights,
        config: &base.config,
        tokenizer: &base.tokenizer,
    };
    let err = Encoder::new_cross_encoder(files, init, &Device::flex()).expect_err("7 of 6 layers");
    assert!(err.to_string().contains("layers 7"), "{err}");
    let cross = Encoder::new_cross_encoder(
        files,
        rlrag_encoder::CrossEncoderInit {
            layers: None,
            ..init
        },
        &Device::flex(),
    )
    .expect("cross-encoder");
    assert!(cross.pair_logits(&[]).is_err());
    assert!(cross.score_pairs("q", &[]).expect("none").is_empty());
    let err = cross.encode_dense(&["x"]).expect_err("not dense");
    assert!(err.to_string().contains("cross-encoder head"), "{err}");
}

#[test]
fn heads_refuse_the_other_kind_and_edge_inputs_work() {
    let dir = pretrained("minilm");
    let dense = Encoder::from_dir(&dir, &Device::flex()).expect("loads");
    assert!(matches!(
        dense.encode_sparse(&["x"]),
        Err(EncoderError::Input(_))
    ));
    assert!(dense.encode_dense(&[]).expect("empty batch").is_empty());
    // Empty and very long texts: special tokens only, and truncation to max_length.
    let long = "word ".repeat(5000);
    let ids = dense.tokenize(&["", &long]).expect("tokenizes");
    assert_eq!(ids[0].len(), 2);
    assert_eq!(ids[1].len(), 256);
    let v = dense.encode_dense(&["", &long]).expect("encodes");
    for x in &v {
        let norm: f32 = x.iter().map(|a| a * a).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4 && x.iter().all(|a| a.is_finite()));
    }
    // A text alone and inside a padded batch gets the same vector.
    let alone = dense.encode_dense(&["short"]).expect("encodes");
    let batched = dense
        .encode_dense(&["short", "a much longer sentence that forces padding"])
        .expect("encodes");
    let diff = alone[0]
        .iter()
        .zip(&batched[0])
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff < 1e-5, "padding changed the vector by {diff}");
    // The bag of tokens needs no model run and is not truncated.
    let bag = dense.bag_of_tokens(&long).expect("bag");
    assert_eq!(bag, dense.bag_of_tokens("word").expect("bag"));
    assert_eq!(bag.len(), 1);
}

#[test]
fn truncation_to_a_token_count_is_a_prefix_that_fits() {
    let encoder = Encoder::from_dir(&pretrained("minilm"), &Device::flex()).expect("loads");
    let text = "Microstructural development of human newborn cerebral white matter assessed \
                in vivo by diffusion tensor magnetic resonance imaging, unaffably. "
        .repeat(20);
    for max in [3, 17, 64, 128, 256] {
        let cut = encoder.truncate_to_tokens(&text, max).expect("cuts");
        assert!(text.starts_with(cut));
        let len = encoder.tokenize(&[cut]).expect("tokenizes")[0].len();
        assert!(len <= max && len + 3 >= max, "max {max}: {len} tokens");
    }
    // Beyond max_length (256) the model reads no more, so neither does the cut.
    let cut = encoder.truncate_to_tokens(&text, 1000).expect("cuts");
    assert_eq!(encoder.tokenize(&[cut]).expect("tokenizes")[0].len(), 256);
    // Fitting texts come back whole; no room for content gives "".
    assert_eq!(
        encoder.truncate_to_tokens("short text", 128).expect("fits"),
        "short text"
    );
    assert_eq!(encoder.truncate_to_tokens(&text, 2).expect("cuts"), "");
    assert_eq!(encoder.truncate_to_tokens("", 10).expect("empty"), "");
}
