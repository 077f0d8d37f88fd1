//! What the real-model tests share: golden files and the logits check
//! against the float64 reference (`scripts/reference/golden_llama.py`).
#![allow(dead_code, clippy::expect_used, clippy::panic)]

use rlrag_generator::llama::Llama;

/// A golden file of `tests/golden/gguf/`.
pub fn golden(name: &str) -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden/gguf")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("golden file")).expect("json")
}

/// A JSON array of token ids.
pub fn token_ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("ids")
        .iter()
        .map(|v| u32::try_from(v.as_u64().expect("id")).expect("a u32"))
        .collect()
}

/// `model`'s logits on the prompts of a `golden_llama.py` file: the same
/// top token at every position and every compared logit (the reference's
/// top 5 and its fixed ids) within 0.02. Returns the largest error.
pub fn check_logits(model: &Llama, golden: &serde_json::Value) -> f64 {
    let fixed = token_ids(&golden["fixed_ids"]);
    let mut worst = 0.0f64;
    for prompt in golden["prompts"].as_array().expect("prompts") {
        let ids = token_ids(&prompt["ids"]);
        let logits = model.logits(&ids).expect("runs");
        let [n, vocab] = logits.dims();
        assert_eq!((n, vocab), (ids.len(), model.config.vocab_size));
        let values: Vec<f32> = logits.into_data().try_to_vec::<f32>().expect("f32");
        for (pos, want) in prompt["positions"]
            .as_array()
            .expect("positions")
            .iter()
            .enumerate()
        {
            let row = &values[pos * vocab..(pos + 1) * vocab];
            let top = (0..vocab)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .expect("a top");
            assert_eq!(
                top as u64,
                want["top"][0][0].as_u64().expect("id"),
                "{ids:?} at {pos}"
            );
            let mut check = |id: usize, want: f64| {
                let err = (f64::from(row[id]) - want).abs();
                worst = worst.max(err);
                assert!(
                    err < 0.02,
                    "{ids:?} at {pos}, token {id}: {} against {want}",
                    row[id]
                );
            };
            for t in want["top"].as_array().expect("top") {
                check(
                    t[0].as_u64().expect("id") as usize,
                    t[1].as_f64().expect("logit"),
                );
            }
            for (&id, w) in fixed.iter().zip(want["fixed"].as_array().expect("fixed")) {
                check(id as usize, w.as_f64().expect("logit"));
            }
        }
    }
    worst
}
