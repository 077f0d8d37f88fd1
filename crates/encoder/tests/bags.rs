//! The bag of tokens, cached per space-separated chunk, is exactly the
//! tokenizer's token set of the whole text: on every passage of the vendored
//! HotpotQA-100 and SciFact corpora and on text made to break the chunking
//! (tabs, newlines, no-break and other Unicode spaces, control characters,
//! accents and combining marks after punctuation, CJK, special-token strings,
//! brackets, overlong words), for two tokenizers alive at once, and with an
//! added token that is not bracketed (`##s`). And on the
//! same texts the encoder's tokenizer (BERT's parts of the `tokenizers`
//! crate, assembled by rlrag) gives exactly the ids of `tokenizers::Tokenizer`
//! reading the same `tokenizer.json`, with and without special tokens and
//! truncation.
#![allow(missing_docs, clippy::expect_used)]

use std::path::Path;

use burn::tensor::Device;
use rlrag_encoder::Encoder;
use rlrag_encoder::models::pretrained;
use tokenizers::{Tokenizer, TruncationParams};

fn data(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(path);
    std::fs::read_to_string(&p).expect("vendored data")
}

fn texts() -> Vec<String> {
    let mut out = Vec::new();
    let hotpot: serde_json::Value =
        serde_json::from_str(&data("hotpotqa100/corpus.json")).expect("json");
    for (title, sentences) in hotpot.as_object().expect("title → sentences") {
        let text: String = sentences
            .as_array()
            .expect("sentences")
            .iter()
            .filter_map(|s| s.as_str())
            .collect();
        out.push(format!("{title} {text}"));
    }
    for line in data("scifact/corpus.jsonl").lines().take(1500) {
        let doc: serde_json::Value = serde_json::from_str(line).expect("jsonl");
        out.push(format!(
            "{} {}",
            doc["title"].as_str().unwrap_or_default(),
            doc["text"].as_str().unwrap_or_default()
        ));
    }
    let long = "x".repeat(150);
    out.extend(
        [
            "tab\tseparated\ttext and new\nlines\r\nhere",
            "no\u{a0}break\u{2003}em\u{3000}ideographic spaces",
            "control\u{0}chars\u{b}vertical\u{c}feed\u{85}next\u{200b}zero width",
            "Café naïve Ünïcödé façade résumé",
            "日本語のテキスト 中文文本 mixed中文words",
            "[MASK] [CLS]x [SEP] [PAD][UNK] a[MASK]b",
            "punctuation!!! (nested [brackets]) \"quotes\" e.g. U.S.A. 3.14 -- ... ",
            "  leading and trailing spaces  ",
            "don't e-mail C++ node.js 1,000.50 ##ing a'\u{301}b x.\u{300}y U.S. “smart” ‘quotes’",
            "[ ] a[b c]d [unused0] [mask] ]x[ \\back/slash| ~tilde` ^caret",
            "",
            &format!("{long} {long}x short"),
        ]
        .map(String::from),
    );
    out
}

#[test]
fn cached_bags_equal_the_tokenizers_token_sets() {
    let splade = Encoder::from_dir(&pretrained("splade-tiny"), &Device::flex())
        .expect("run scripts/fetch-models.sh");
    let minilm = Encoder::from_dir(&pretrained("minilm"), &Device::flex()).expect("loads");
    let texts = texts();
    assert!(texts.len() > 2000);
    for pass in 0..2 {
        for encoder in [&splade, &minilm] {
            for t in &texts {
                let mut expected = encoder.token_ids(t).expect("tokenizes");
                expected.sort_unstable();
                expected.dedup();
                let bag = encoder.bag_of_tokens(t).expect("bag");
                assert_eq!(bag, expected, "pass {pass}: {t:?}");
            }
        }
    }
}

#[test]
fn token_ids_and_model_inputs_equal_the_tokenizers_crate() {
    let texts = texts();
    for name in ["splade-tiny", "minilm"] {
        let encoder = Encoder::from_dir(&pretrained(name), &Device::flex())
            .expect("run scripts/fetch-models.sh");
        let file = pretrained(name).join("tokenizer.json");
        let mut whole = Tokenizer::from_file(&file).expect("tokenizer.json");
        whole.with_padding(None);
        whole.with_truncation(None).expect("no truncation");
        let mut model_input = whole.clone();
        model_input
            .with_truncation(Some(TruncationParams {
                max_length: encoder.config().rlrag.max_length,
                ..TruncationParams::default()
            }))
            .expect("truncation");
        let mut truncated = 0;
        for t in &texts {
            let expected = whole.encode(t.as_str(), false).expect("encodes");
            let ids = encoder.token_ids(t).expect("tokenizes");
            assert_eq!(ids, expected.get_ids(), "{name}: {t:?}");
            let expected = model_input.encode(t.as_str(), true).expect("encodes");
            truncated += usize::from(!expected.get_overflowing().is_empty());
            let input = encoder.tokenize(&[t]).expect("tokenizes");
            assert_eq!(input[0], expected.get_ids(), "{name} model input: {t:?}");
        }
        assert!(truncated > 0, "{name}: no text was cut");
    }
}

#[test]
fn bags_keep_added_tokens_that_are_not_bracketed_whole() {
    // "##s" as an added token: '#' is punctuation, where plain chunks split.
    let dir = pretrained("splade-tiny");
    let read = |f: &str| std::fs::read(dir.join(f)).expect("run scripts/fetch-models.sh");
    let mut tokenizer: serde_json::Value =
        serde_json::from_slice(&read("tokenizer.json")).expect("json");
    let added = tokenizer["added_tokens"]
        .as_array_mut()
        .expect("added tokens");
    let mut token = added[0].clone();
    token["content"] = "##s".into();
    token["id"] = 2015.into();
    added.push(token);
    let tokenizer = serde_json::to_vec(&tokenizer).expect("json");
    let (weights, config) = (read("model.safetensors"), read("config.json"));
    let files = rlrag_encoder::ModelFiles {
        weights: &weights,
        config: &config,
        tokenizer: &tokenizer,
    };
    let encoder = Encoder::load(files, &Device::flex()).expect("loads");
    for text in [
        "a##sb",
        "x ##s y",
        "##s##s",
        "cats##s.",
        "plain words, no added token",
    ] {
        let mut expected = encoder.token_ids(text).expect("tokenizes");
        if text != "plain words, no added token" {
            assert!(expected.contains(&2015), "{text:?}: {expected:?}");
        }
        expected.sort_unstable();
        expected.dedup();
        assert_eq!(
            encoder.bag_of_tokens(text).expect("bag"),
            expected,
            "{text:?}"
        );
    }
}
