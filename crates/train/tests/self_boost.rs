//! Self-boosting on the paragraphs of HotpotQA-100's first 30 questions
//! (300) with the learned-sparse model, from a recorded run of the real SmolLM2-135M
//! generator: `tests/fixtures/self-boost-hotpotqa/` holds the caches it
//! wrote (queries, teacher scores, hypothetical documents), so the round
//! runs with the generator unreachable and makes no call: the resumable
//! cache at work. A round changes the model and fits its synthetic queries;
//! the same seed gives the same result. With a generator running
//! (`scripts/llm-server.sh`; `RLRAG_LLM_URL`), one more round writes new
//! queries live. Needs `scripts/fetch-models.sh` (the test command runs it).
#![allow(missing_docs, clippy::expect_used)]

use std::path::{Path, PathBuf};

use rlrag_eval::progress::Silent;
use rlrag_train::self_boost::{
    BoostTarget, HYDE_FILE, QUERIES_FILE, SelfBoostConfig, SelfBoostReport, TEACHER_FILE,
    TeacherKind, run,
};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/self-boost-hotpotqa")
}

/// HotpotQA-100's first 30 questions as a HotpotQA file in `dir`: its
/// corpus is their 300 context paragraphs (the fixture was recorded on the
/// same file: `scripts/record-self-boost-fixture.sh`).
fn subset(dir: &Path) -> PathBuf {
    let all: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/hotpotqa100/hotpotqa100.json"),
        )
        .expect("hotpotqa100"),
    )
    .expect("json");
    let path = dir.join("hotpotqa30.json");
    std::fs::write(&path, serde_json::to_string(&all[..30]).expect("json")).expect("write");
    path
}

/// The recorded run's settings (see the fixture's queries), into `out`.
fn config(out: &Path, generator: &str) -> SelfBoostConfig {
    std::fs::create_dir_all(out).expect("out");
    SelfBoostConfig {
        data: subset(out),
        format: None,
        eval_split: "test".parse().expect("split"),
        out: out.to_path_buf(),
        generator: generator.into(),
        generator_model: "smollm2-135m-instruct".into(),
        generator_timeout_ms: 60_000,
        retriever: BoostTarget::Sparse,
        sparse_init: None,
        dense_init: None,
        rounds: 1,
        queries: 40,
        probe_queries: 20,
        query_temperature: 0.5,
        query_examples: None,
        round_trip_k: 20,
        negatives: 3,
        negative_from: 30,
        negative_to: 200,
        teacher: TeacherKind::Likelihood,
        teacher_reranker: None,
        teacher_temperature: None,
        distill_weight: 1.0,
        epochs: 3,
        batch_size: 8,
        learning_rate: 1e-4,
        max_passage_tokens: 64,
        hyde_queries: 2,
        hypotheticals: 3,
        hyde_max_tokens: 48,
        gamma: 0.95,
        seed: 42,
        device: "cpu".parse().expect("device"),
    }
}

/// A run from the recorded caches, the generator unreachable.
fn cached_run(dir: &Path) -> SelfBoostReport {
    std::fs::create_dir_all(dir).expect("out");
    for f in [QUERIES_FILE, TEACHER_FILE, HYDE_FILE] {
        std::fs::copy(fixture().join(f), dir.join(f)).expect("fixture");
    }
    // Port 9 (discard) refuses: any call the caches miss fails the run.
    let mut cfg = config(dir, "http://127.0.0.1:9/v1");
    cfg.generator_timeout_ms = 2_000;
    run(&cfg, &Silent).expect("a round from the caches alone")
}

fn weights(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("model.safetensors")).expect("weights")
}

#[test]
fn a_round_from_recorded_generations_fits_its_queries_and_repeats_exactly() {
    let tmp = tempfile::tempdir().expect("tmp");
    // The same run twice, side by side (the second checks the seed).
    let (a, b) = std::thread::scope(|s| {
        let b = s.spawn(|| cached_run(&tmp.path().join("b")));
        let a = cached_run(&tmp.path().join("a"));
        (a, b.join().expect("second run"))
    });
    assert_eq!(
        a.teacher_calls, 0,
        "every teacher score came from the cache"
    );
    assert_eq!(a.queries_written, 60);
    assert!(a.queries_kept <= a.queries_written);
    let start = &a.rows[0];
    let round = &a.rows[1];
    assert_eq!((start.round, round.round), (0, 1));
    // The round-trip filter kept some of the round's queries, not all.
    assert!(
        round.trained_queries > 10 && round.trained_queries < 40,
        "{}",
        round.trained_queries
    );
    let (before, after) = round.train_mrr.expect("trained");
    assert!(
        after > before + 0.02,
        "MRR@10 on its synthetic queries {before:.3} -> {after:.3}"
    );
    assert!(round.mean_loss.is_some_and(f64::is_finite));
    for rows in [&start.alone, &round.alone, &round.with_bm25] {
        assert!(rows.get("ndcg@10").is_some_and(|v| (0.0..=1.0).contains(v)));
    }
    assert!(
        start.synthetic.contains_key("mrr@10"),
        "the probe is scored from round 0"
    );
    // The model moved and was written per round and at the end.
    let dir = tmp.path().join("a");
    let trained = weights(&dir.join("sparse"));
    assert_eq!(trained, weights(&dir.join("round-1").join("sparse")));
    assert_ne!(
        trained,
        weights(&rlrag_encoder::models::pretrained("splade-tiny"))
    );
    assert!(dir.join("report.json").exists());

    let metrics = |r: &SelfBoostReport| {
        serde_json::to_value(
            r.rows
                .iter()
                .map(|r| (&r.alone, &r.synthetic, r.train_mrr))
                .collect::<Vec<_>>(),
        )
        .expect("json")
    };
    assert_eq!(metrics(&a), metrics(&b));
    assert_eq!(
        trained,
        weights(&tmp.path().join("b").join("sparse")),
        "same seed, same weights"
    );
}

#[test]
fn a_cache_line_cut_short_is_made_again_and_bad_settings_are_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let queries = std::fs::read_to_string(fixture().join(QUERIES_FILE)).expect("fixture");
    // A killed run's last line, half written, in the probe (written
    // first): it is not a query, so the run asks the generator again, which
    // is unreachable here: a clear error, before any model is loaded.
    let lines: Vec<&str> = queries.lines().collect();
    let half: String = lines[9]
        .chars()
        .take(lines[9].chars().count() / 2)
        .collect();
    let cut = format!("{}\n{half}", lines[..9].join("\n"));
    std::fs::write(dir.join(QUERIES_FILE), cut).expect("write");
    let mut cfg = config(dir, "http://127.0.0.1:9/v1");
    cfg.generator_timeout_ms = 2_000;
    let err = run(&cfg, &Silent).expect_err("the cut query needs the generator");
    assert!(err.to_string().contains("127.0.0.1:9"), "{err}");

    for bad in [
        SelfBoostConfig {
            negative_from: 50,
            negative_to: 50,
            ..config(dir, "http://127.0.0.1:9/v1")
        },
        SelfBoostConfig {
            teacher: TeacherKind::Reranker,
            ..config(dir, "http://127.0.0.1:9/v1")
        },
        SelfBoostConfig {
            rounds: 0,
            ..config(dir, "http://127.0.0.1:9/v1")
        },
        SelfBoostConfig {
            generator: "ftp://x".into(),
            ..config(dir, "ftp://x")
        },
    ] {
        assert!(run(&bad, &Silent).is_err());
    }
}

#[test]
fn a_live_round_with_a_real_generator_writes_new_queries() {
    let url = std::env::var("RLRAG_LLM_URL").unwrap_or_else(|_| "http://127.0.0.1:8080/v1".into());
    let probe = rlrag_router::llm::LlmClient::new(rlrag_router::llm::LlmConfig {
        base_url: url.clone(),
        timeout_ms: 60_000,
        ..Default::default()
    })
    .expect("client");
    if probe
        .write_query(
            &rlrag_router::llm::QueryPrompt::default(),
            "Paris is the capital of France.",
            0.0,
            1,
        )
        .is_err()
    {
        println!("skipped: no generator at {url} (start one with scripts/llm-server.sh)");
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let mut cfg = config(tmp.path(), &url);
    cfg.probe_queries = 4;
    cfg.queries = 8;
    cfg.epochs = 1;
    cfg.hyde_queries = 1;
    let report = run(&cfg, &Silent).expect("a live round");
    assert_eq!(report.queries_written, 12);
    let lines = std::fs::read_to_string(tmp.path().join(QUERIES_FILE)).expect("cache");
    assert_eq!(lines.lines().count(), 12, "every query cached");
    assert!(report.teacher_calls > 0);
}
