//! Shared fixtures of the training tests: HotpotQA-100, the SPLADE-tiny
//! checkpoint on a given device, a fixed batch with known positives.
#![allow(dead_code, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::Device;
use rlrag_encoder::Encoder;
use rlrag_encoder::models::pretrained;
use rlrag_retriever::{Dataset, Document, Query};
use rlrag_train::loss::Role;
use rlrag_train::{ContainmentEnv, R3Config, RewardEnv};

pub fn hotpot() -> Dataset {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/hotpotqa100");
    Dataset::load(&path, None, None).expect("hotpotqa100 loads")
}

/// Pretrained SPLADE-tiny on `device` (needs `scripts/fetch-models.sh`).
pub fn sparse_encoder_on(device: &Device) -> Encoder {
    Encoder::from_dir(&pretrained("splade-tiny"), device).expect("run scripts/fetch-models.sh")
}

/// Pretrained SPLADE-tiny on the CPU autodiff device.
pub fn sparse_encoder() -> Encoder {
    sparse_encoder_on(&Device::flex().autodiff())
}

/// Two questions, their gold passages that contain the answer (positives)
/// and passages of other questions (negatives).
pub fn fixed_batch(ds: &Dataset) -> (Vec<String>, Vec<String>, Vec<Vec<Role>>) {
    let by_id: BTreeMap<&str, &Document> = ds.corpus.iter().map(|d| (d.id.as_str(), d)).collect();
    let mut env = ContainmentEnv::default();
    let qs: Vec<&Query> = ds
        .queries
        .iter()
        .filter(|q| {
            let gold: Vec<&Document> = q
                .qrels
                .keys()
                .filter_map(|id| by_id.get(id.as_str()).copied())
                .collect();
            env.rewards(q, &gold)
                .expect("answers")
                .iter()
                .any(|&r| r > 0.5)
        })
        .take(2)
        .collect();
    assert_eq!(qs.len(), 2);
    let mut passages: Vec<&Document> = Vec::new();
    for q in &qs {
        passages.extend(
            q.qrels
                .keys()
                .filter_map(|id| by_id.get(id.as_str()).copied()),
        );
    }
    passages.extend(ds.corpus.iter().rev().take(4));
    let roles = qs
        .iter()
        .map(|q| {
            let r = env.rewards(q, &passages).expect("answers");
            r.iter()
                .zip(&passages)
                .map(|(&x, d)| {
                    if x > 0.5 && q.qrels.contains_key(&d.id) {
                        Role::Positive
                    } else {
                        Role::Negative
                    }
                })
                .collect()
        })
        .collect();
    (
        qs.iter().map(|q| q.text.clone()).collect(),
        passages.iter().map(|d| d.full_text()).collect(),
        roles,
    )
}

pub fn config() -> R3Config {
    R3Config {
        learning_rate: 1e-4,
        batch_size: 4,
        max_passage_tokens: 96,
        ..R3Config::default()
    }
}
