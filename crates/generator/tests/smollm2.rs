//! The real model file: SmolLM2-135M-Instruct's GGUF (Q4_1 and Q8_0
//! blocks, F32 norms), fetched by `scripts/fetch-models.sh`. Every one of
//! its 272 tensors dequantises to exactly what the `gguf` package gives
//! (sha256 of the values, `tests/golden/gguf/smollm2.json`, written by
//! `scripts/reference/gguf_golden.py --model smollm2=…`).
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use rlrag_generator::gguf::{Gguf, Value};
use sha2::{Digest, Sha256};

#[test]
fn every_tensor_of_smollm2_matches_gguf_py() {
    let path = rlrag_encoder::models::pretrained("smollm2").join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}: run scripts/fetch-models.sh", path.display()));
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/golden/gguf/smollm2.json"),
        )
        .expect("golden file"),
    )
    .expect("json");
    let file_sha = format!("{:x}", Sha256::digest(&bytes));
    assert_eq!(
        file_sha,
        golden["file_sha256"].as_str().expect("sha"),
        "another file"
    );

    let file = Gguf::parse(&bytes).expect("parses");
    let meta = |k: &str| file.metadata.get(k).unwrap_or_else(|| panic!("no {k}"));
    assert_eq!(meta("general.architecture").as_str(), Some("llama"));
    assert_eq!(meta("llama.block_count").as_u64(), Some(30));
    assert_eq!(meta("llama.embedding_length").as_u64(), Some(576));
    assert_eq!(meta("llama.attention.head_count_kv").as_u64(), Some(3));
    assert_eq!(meta("llama.rope.freq_base").as_f64(), Some(100_000.0));
    let tokens = meta("tokenizer.ggml.tokens").as_array().expect("tokens");
    assert_eq!(tokens.len(), 49_152);
    assert_eq!(tokens[1], Value::String("<|im_start|>".into()));
    assert_eq!(
        meta("tokenizer.ggml.merges").as_array().map(<[Value]>::len),
        Some(48_900)
    );

    let want = golden["tensors"].as_object().expect("tensors");
    assert_eq!(file.tensors.len(), want.len());
    for t in &file.tensors {
        let w = &want[&t.name];
        let dims: Vec<u64> = w["dims"]
            .as_array()
            .expect("dims")
            .iter()
            .map(|d| d.as_u64().expect("dim"))
            .collect();
        assert_eq!(t.dims, dims, "{}", t.name);
        assert_eq!(
            u64::from(t.ty.id()),
            w["type"].as_u64().expect("type"),
            "{}",
            t.name
        );
        let values = file.tensor(&bytes, &t.name).expect("dequantises");
        let mut h = Sha256::new();
        for v in &values {
            h.update(v.to_le_bytes());
        }
        assert_eq!(
            format!("{:x}", h.finalize()),
            w["sha256"].as_str().expect("sha"),
            "{}",
            t.name
        );
    }
}
