//! R3 training on the real SPLADE-tiny checkpoint and real HotpotQA-100
//! questions: a step lowers the loss of its batch, frozen parameters stay
//! put, a seed fixes the result, and the reward environments judge as they
//! should. Needs `scripts/fetch-models.sh` (the test command runs it).
#![allow(missing_docs, clippy::expect_used, clippy::panic)]

mod common;

use common::{config, fixed_batch, hotpot, sparse_encoder};

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::Device;
use rlrag_encoder::Encoder;
use rlrag_encoder::models::pretrained;
use rlrag_retriever::{Dataset, Document, Query, Split};
use rlrag_train::{ContainmentEnv, PolicySearch, QrelsEnv, R3Config, R3Trainer, RewardEnv};

/// Tensors of a safetensors file by name: (dtype, shape, bytes).
fn tensors(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("header length")) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).expect("header");
    let data = &bytes[8 + n..];
    header
        .as_object()
        .expect("object")
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| {
            let a = v["data_offsets"][0].as_u64().expect("start") as usize;
            let b = v["data_offsets"][1].as_u64().expect("end") as usize;
            (k.clone(), data[a..b].to_vec())
        })
        .collect()
}

#[test]
fn a_step_lowers_the_loss_of_its_batch_and_exports_loadable_weights() {
    let ds = hotpot();
    let (queries, passages, roles) = fixed_batch(&ds);
    let q: Vec<&str> = queries.iter().map(String::as_str).collect();
    let p: Vec<&str> = passages.iter().map(String::as_str).collect();
    let mut trainer =
        R3Trainer::new(sparse_encoder(), &ds.corpus[..50], config()).expect("trainer");
    let before = trainer
        .loss_of(&q, &p, &roles)
        .expect("loss")
        .expect("positives");
    let at_step = trainer
        .update(&q, &p, &roles)
        .expect("step")
        .expect("positives");
    assert!(
        (before - at_step).abs() < 1e-3,
        "the step's loss is the batch loss: {before} vs {at_step}"
    );
    let after = trainer
        .loss_of(&q, &p, &roles)
        .expect("loss")
        .expect("positives");
    assert!(after < before, "loss {before} -> {after}");

    // The exported weights load back and encode exactly like the trained model.
    let bytes = trainer
        .inference_encoder()
        .weights_safetensors()
        .expect("exports");
    let dir = pretrained("splade-tiny");
    let config = std::fs::read(dir.join("config.json")).expect("config");
    let tokenizer = std::fs::read(dir.join("tokenizer.json")).expect("tokenizer");
    let reloaded = Encoder::load(
        rlrag_encoder::ModelFiles {
            weights: &bytes,
            config: &config,
            tokenizer: &tokenizer,
        },
        &Device::flex(),
    )
    .expect("reloads");
    let a = trainer
        .inference_encoder()
        .encode_sparse(&q)
        .expect("encodes");
    let b = reloaded.encode_sparse(&q).expect("encodes");
    assert_eq!(a, b);
}

/// Little-endian f32 values of a safetensors file's tensors, by name.
fn floats(bytes: &[u8]) -> BTreeMap<String, Vec<f32>> {
    tensors(bytes)
        .into_iter()
        .map(|(k, v)| {
            let f = v
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (k, f)
        })
        .collect()
}

/// Data-parallel steps on CPU workers (issue 24): two and three workers
/// (one shard then empty: the batch has two questions) take the step one
/// device takes on the same batch, contrastive and distilled terms alike:
/// the same loss, step after step, and the same weights, to float
/// summation order.
#[test]
fn several_devices_take_the_step_of_one_on_the_same_batch() {
    let ds = hotpot();
    let (queries, passages, roles) = fixed_batch(&ds);
    let q: Vec<&str> = queries.iter().map(String::as_str).collect();
    let p: Vec<&str> = passages.iter().map(String::as_str).collect();
    // A teacher order over every candidate (a second distillation term).
    let teacher: Vec<Vec<Option<f32>>> = roles
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (0..r.len())
                .map(|j| Some(((i + 2 * j) % 5) as f32 * 0.4))
                .collect()
        })
        .collect();
    let device = Device::flex().autodiff();
    let mut one = R3Trainer::new(sparse_encoder(), &ds.corpus[..20], config()).expect("trainer");
    let mut two = R3Trainer::new(sparse_encoder(), &ds.corpus[..20], config()).expect("trainer");
    let mut three = R3Trainer::new(sparse_encoder(), &ds.corpus[..20], config()).expect("trainer");
    two.set_devices(vec![device.clone(); 2])
        .expect("two workers");
    three
        .set_devices(vec![device.clone(); 3])
        .expect("three workers");
    for step in 0..3 {
        let want = one
            .update_distilled(&q, &p, &roles, &teacher, 0.5)
            .expect("step")
            .expect("loss");
        for (name, t) in [("two", &mut two), ("three", &mut three)] {
            let got = t
                .update_distilled(&q, &p, &roles, &teacher, 0.5)
                .expect("step")
                .expect("loss");
            assert!(
                (got - want).abs() < 1e-4 * want.abs().max(1.0),
                "{name} workers, step {step}: {got} vs {want}"
            );
        }
    }
    let weights = |t: &R3Trainer| {
        floats(
            &t.inference_encoder()
                .weights_safetensors()
                .expect("exports"),
        )
    };
    let (a, moved) = (
        weights(&one),
        floats(&sparse_encoder().weights_safetensors().expect("exports")),
    );
    assert_ne!(a, moved, "the steps moved the weights");
    for other in [weights(&two), weights(&three)] {
        assert_eq!(a.len(), other.len());
        for (name, x) in &a {
            let y = &other[name];
            let worst = x
                .iter()
                .zip(y)
                .map(|(u, v)| (u - v).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-4, "{name}: off by {worst}");
        }
    }
    // Every device autodiff, the first the model's.
    assert!(one.set_devices(Vec::new()).is_err());
    assert!(one.set_devices(vec![Device::flex()]).is_err());
}

#[test]
fn only_the_unfrozen_top_layer_and_head_move() {
    let ds = hotpot();
    let (queries, passages, roles) = fixed_batch(&ds);
    let q: Vec<&str> = queries.iter().map(String::as_str).collect();
    let p: Vec<&str> = passages.iter().map(String::as_str).collect();
    let cfg = R3Config {
        train_top_layers: Some(1),
        ..config()
    };
    let mut trainer = R3Trainer::new(sparse_encoder(), &ds.corpus[..50], cfg).expect("trainer");
    let before = tensors(
        &trainer
            .inference_encoder()
            .weights_safetensors()
            .expect("exports"),
    );
    trainer
        .update(&q, &p, &roles)
        .expect("step")
        .expect("positives");
    let after = tensors(
        &trainer
            .inference_encoder()
            .weights_safetensors()
            .expect("exports"),
    );
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    let last = trainer.encoder().model().num_layers() - 1;
    let top = format!("bert.encoder.layer.{last}.");
    let mut moved = 0;
    for (name, b) in &before {
        let should_move = name.starts_with(&top) || name.starts_with("cls.predictions");
        let did_move = after[name] != *b;
        if should_move {
            moved += usize::from(did_move);
        } else {
            assert!(!did_move, "{name} is frozen but moved");
        }
    }
    assert!(moved >= 10, "only {moved} trainable tensors moved");
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let ds = hotpot();
    let questions: Vec<Query> = ds.queries[..8].to_vec();
    let run = || {
        let mut env = ContainmentEnv::default();
        let mut t = R3Trainer::new(sparse_encoder(), &ds.corpus, config()).expect("trainer");
        let logs: Vec<_> = (0..2)
            .map(|_| {
                let mut l = t.step(&questions, &mut env).expect("step");
                l.seconds = 0.0;
                l
            })
            .collect();
        (
            logs,
            t.inference_encoder()
                .weights_safetensors()
                .expect("exports"),
        )
    };
    let (a, wa) = run();
    let (b, wb) = run();
    assert_eq!(a, b);
    let (ta, tb) = (tensors(&wa), tensors(&wb));
    let differ: Vec<&String> = ta.keys().filter(|k| ta[*k] != tb[*k]).collect();
    assert!(
        differ.is_empty(),
        "tensors differ between identical runs: {differ:?}"
    );
    assert!(a.iter().any(|l| l.loss.is_some()), "{a:?}");
}

#[test]
fn environments_judge_passages() {
    let ds = hotpot();
    let q = &ds.queries[0];
    let by_id: BTreeMap<&str, &Document> = ds.corpus.iter().map(|d| (d.id.as_str(), d)).collect();
    let gold: Vec<&Document> = q
        .qrels
        .keys()
        .filter_map(|id| by_id.get(id.as_str()).copied())
        .collect();
    let other: Vec<&Document> = ds
        .corpus
        .iter()
        .filter(|d| !q.qrels.contains_key(&d.id))
        .take(3)
        .collect();
    let mixed: Vec<&Document> = gold.iter().chain(&other).copied().collect();

    let mut qrels = QrelsEnv::default();
    let r = qrels.rewards(q, &mixed).expect("judged");
    assert_eq!(r, [vec![1.0; gold.len()], vec![0.0; other.len()]].concat());
    assert_eq!(qrels.stats().judged, mixed.len() as u64);

    let mut containment = ContainmentEnv::default();
    let r = containment.rewards(q, &mixed).expect("judged");
    for (d, x) in mixed.iter().zip(&r) {
        let has =
            rlrag_reward::answer::NormalizedText::new(&d.full_text()).contains_any(&q.answers);
        assert_eq!(*x, f32::from(u8::from(has)));
    }
    // Sets without the needed labels are refused, not scored 0.
    let unlabeled = Query {
        qrels: Default::default(),
        answers: vec![],
        ..q.clone()
    };
    assert!(qrels.rewards(&unlabeled, &mixed).is_err());
    assert!(containment.rewards(&unlabeled, &mixed).is_err());
}

/// Mean nDCG@10 of the trainer's current retriever over `questions`.
fn mean_ndcg(trainer: &R3Trainer, questions: &[Query]) -> f64 {
    let total: f64 = questions
        .iter()
        .map(|q| {
            let hits = trainer.search(&q.text, 10).expect("searches");
            let ranked: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
            rlrag_reward::retrieval::ndcg_at_k(&ranked, &q.qrels, 10)
        })
        .sum();
    total / questions.len() as f64
}

#[test]
fn a_short_run_on_a_small_subset_improves_its_metric() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/scifact");
    let ds = Dataset::load(&path, None, Some(&Split::Train)).expect("scifact train split");
    let questions: Vec<Query> = ds.queries[..48].to_vec();
    // Their relevant abstracts plus the first 400 others.
    let wanted: std::collections::BTreeSet<&str> = questions
        .iter()
        .flat_map(|q| q.qrels.keys().map(String::as_str))
        .collect();
    let corpus: Vec<Document> = ds
        .corpus
        .iter()
        .enumerate()
        .filter(|(i, d)| *i < 400 || wanted.contains(d.id.as_str()))
        .map(|(_, d)| d.clone())
        .collect();
    let cfg = R3Config {
        batch_size: 8,
        learning_rate: 5e-5,
        ..R3Config::default()
    };
    let mut trainer = R3Trainer::new(sparse_encoder(), &corpus, cfg).expect("trainer");
    let before = mean_ndcg(&trainer, &questions);
    let mut env = QrelsEnv::default();
    for _ in 0..24 {
        trainer.step(&questions, &mut env).expect("step");
    }
    let after = mean_ndcg(&trainer, &questions);
    println!("nDCG@10 on the training questions: {before:.4} -> {after:.4}");
    assert!(after > before + 0.01, "nDCG@10 {before:.4} -> {after:.4}");
}

/// Pretrained all-MiniLM-L6-v2 on the CPU autodiff device.
fn dense_encoder() -> Encoder {
    Encoder::from_dir(&pretrained("minilm"), &Device::flex().autodiff())
        .expect("run scripts/fetch-models.sh")
}

#[test]
fn a_dense_model_trains_by_the_same_loop_over_its_own_index() {
    let ds = hotpot();
    let corpus = &ds.corpus[..40];
    let cfg = R3Config {
        search: PolicySearch::Index,
        temperature: 0.05,
        ..config()
    };
    // A dense model has no bag of tokens to search.
    let bag = R3Config {
        search: PolicySearch::Bag,
        ..cfg.clone()
    };
    assert!(R3Trainer::new(dense_encoder(), corpus, bag).is_err());

    let mut trainer = R3Trainer::new(dense_encoder(), corpus, cfg).expect("trainer");
    // The differentiable embeddings are the ones search uses.
    let text = corpus[3].full_text();
    let searched = trainer
        .inference_encoder()
        .encode_dense(&[&text])
        .expect("encodes");
    let trained = trainer
        .inference_encoder()
        .dense_embeddings(&[&text], 512)
        .expect("embeds")
        .into_data()
        .try_to_vec::<f32>()
        .expect("floats");
    let err = searched[0]
        .iter()
        .zip(&trained)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(err < 1e-5, "max difference {err}");
    // The passage finds itself through the index.
    let top = trainer.search(&text, 1).expect("searches");
    assert_eq!(top[0].id, corpus[3].id);

    let (queries, passages, roles) = fixed_batch(&ds);
    let q: Vec<&str> = queries.iter().map(String::as_str).collect();
    let p: Vec<&str> = passages.iter().map(String::as_str).collect();
    let before = trainer
        .loss_of(&q, &p, &roles)
        .expect("loss")
        .expect("positives");
    trainer
        .update(&q, &p, &roles)
        .expect("step")
        .expect("positives");
    let after = trainer
        .loss_of(&q, &p, &roles)
        .expect("loss")
        .expect("positives");
    assert!(after < before, "loss {before} -> {after}");

    // Until a refresh the index holds the starting passage vectors (the
    // query side is already the new model's); a refresh re-embeds them.
    let stale = trainer.search(q[0], 5).expect("searches");
    assert!(trainer.needs_refresh());
    assert!(trainer.refresh_index().expect("re-embeds"));
    let fresh = trainer.search(q[0], 5).expect("searches");
    assert_ne!(
        stale.iter().map(|h| h.score).collect::<Vec<_>>(),
        fresh.iter().map(|h| h.score).collect::<Vec<_>>()
    );
}
