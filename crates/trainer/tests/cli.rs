//! The `trainer eval` command as a user runs it: the JSON contract on each
//! vendored dataset format, and clear errors (never a panic) on bad input.
#![allow(missing_docs, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Every metric of the report, sorted: what a set with answers and gold passages gets.
const ALL_METRICS: [&str; 6] = [
    "all_gold@10",
    "containment@10",
    "mrr@10",
    "ndcg@10",
    "recall@10",
    "recall@100",
];

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(name)
}

fn trainer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .output()
        .expect("runs the trainer binary")
}

fn eval_json(data_path: &Path, extra: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("report.json");
    let mut args = vec![
        "eval",
        "--data",
        data_path.to_str().expect("utf-8 path"),
        "--json",
        out.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    let o = trainer(&args);
    assert_ok(&o);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("| metric"), "table: {table}");
    serde_json::from_str(&std::fs::read_to_string(out).expect("json written")).expect("valid json")
}

fn metric_names(report: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> = report["metrics"]
        .as_object()
        .expect("metrics object")
        .keys()
        .cloned()
        .collect();
    names.sort();
    names
}

#[test]
fn hotpotqa_report_has_every_metric() {
    let r = eval_json(&data("hotpotqa100"), &["--retriever", "bm25"]);
    assert_eq!(r["dataset"], "hotpotqa100");
    assert_eq!(r["retriever"], "bm25");
    assert_eq!(r["queries"], 100);
    assert_eq!(metric_names(&r), ALL_METRICS);
    for (_, v) in r["metrics"].as_object().expect("metrics") {
        let v = v.as_f64().expect("number");
        assert!((0.0..=1.0).contains(&v));
    }
    let p50 = r["latency_ms"]["p50"].as_f64().expect("p50");
    let p95 = r["latency_ms"]["p95"].as_f64().expect("p95");
    assert!(p50 > 0.0 && p95 >= p50);
}

#[test]
fn answer_only_set_reports_containment_only_and_small_k_drops_recall_at_100() {
    let r = eval_json(
        &data("2wiki500"),
        &[
            "--retriever",
            "bm25",
            "--format",
            "qa",
            "--k",
            "10",
            "--split",
            "test",
        ],
    );
    assert_eq!(metric_names(&r), ["containment@10"]);
    assert_eq!(r["split"], "test");
    let q = r["queries"].as_u64().expect("count");
    assert!((60..=140).contains(&q), "{q} test questions of 500");

    let r = eval_json(
        &data("hotpotqa100/hotpotqa100.json"),
        &["--retriever", "bm25", "--k", "10"],
    );
    assert!(r["metrics"].get("recall@100").is_none());
    assert!(r["metrics"].get("ndcg@10").is_some());
}

fn assert_clean_failure(o: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "should fail");
    assert!(stderr.contains(needle), "stderr lacks {needle:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
}

#[test]
fn bad_input_fails_with_a_clear_message() {
    let o = trainer(&["eval", "--data", "/no/such/dir", "--retriever", "bm25"]);
    assert_clean_failure(&o, "/no/such/dir");

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("corpus.jsonl"),
        "{\"id\": 1, \"text\": \"a\"}\nnot json\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("qa.jsonl"),
        "{\"id\": 1, \"question\": \"q\", \"answers\": [\"a\"]}\n",
    )
    .expect("write");
    let path = dir.path().to_str().expect("utf-8");
    let o = trainer(&["eval", "--data", path, "--retriever", "bm25"]);
    assert_clean_failure(&o, "corpus.jsonl:2:");

    std::fs::write(dir.path().join("corpus.jsonl"), "").expect("write");
    let o = trainer(&["eval", "--data", path, "--retriever", "bm25"]);
    assert_clean_failure(&o, "corpus is empty");

    let scifact = data("scifact");
    let scifact = scifact.to_str().expect("utf-8");
    let o = trainer(&[
        "eval",
        "--data",
        scifact,
        "--retriever",
        "bm25",
        "--split",
        "dev",
    ]);
    assert_clean_failure(&o, "no split `dev` (available: test, train)");
    let o = trainer(&["eval", "--data", scifact, "--retriever", "bm25", "--k", "0"]);
    assert_clean_failure(&o, "--k must be at least 1");
    let o = trainer(&["eval", "--data", scifact, "--retriever", "bm25", "--b", "2"]);
    assert_clean_failure(&o, "invalid parameter `b`");
    let o = trainer(&[
        "eval",
        "--data",
        scifact,
        "--retriever",
        "bm25",
        "--format",
        "bier",
    ]);
    assert_clean_failure(&o, "unknown format `bier`");
    let o = trainer(&["eval", "--data", scifact, "--retriever", "nope"]);
    assert_clean_failure(&o, "invalid value 'nope'");
    let o = trainer(&[
        "eval",
        "--data",
        scifact,
        "--retriever",
        "bm25",
        "--json",
        "/no/such/dir/out.json",
    ]);
    assert_clean_failure(&o, "cannot write /no/such/dir/out.json");
}

/// A small real corpus (the first HotpotQA-100 questions and their context
/// paragraphs), so that every neural retriever runs in a test.
fn small_qa_set(dir: &Path, questions: usize) {
    let raw: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(data("hotpotqa100/hotpotqa100.json")).expect("hotpotqa"),
    )
    .expect("json");
    let mut corpus = String::new();
    let mut qa = String::new();
    let mut seen = std::collections::HashSet::new();
    for q in raw.as_array().expect("list").iter().take(questions) {
        for para in q["context"].as_array().expect("context") {
            let title = para[0].as_str().expect("title");
            let text: String = para[1]
                .as_array()
                .expect("sentences")
                .iter()
                .filter_map(|s| s.as_str())
                .collect();
            if seen.insert(title.to_string()) {
                corpus += &serde_json::json!({"id": title, "title": title, "text": text.trim()})
                    .to_string();
                corpus.push('\n');
            }
        }
        let gold: std::collections::BTreeSet<&str> = q["supporting_facts"]
            .as_array()
            .expect("facts")
            .iter()
            .filter_map(|f| f[0].as_str())
            .collect();
        qa += &serde_json::json!({"id": q["_id"], "question": q["question"], "answers": [q["answer"]], "gold_ids": gold})
            .to_string();
        qa.push('\n');
    }
    std::fs::write(dir.join("corpus.jsonl"), corpus).expect("write");
    std::fs::write(dir.join("qa.jsonl"), qa).expect("write");
}

#[test]
fn every_neural_retriever_runs_and_finds_gold_passages() {
    let dir = tempfile::tempdir().expect("tempdir");
    small_qa_set(dir.path(), 6);
    let cases: [&[&str]; 6] = [
        &["--retriever", "sparse"],
        &["--retriever", "bot"],
        &["--retriever", "bot", "--rerank-m", "20"],
        &["--retriever", "dense"],
        &["--retriever", "dense", "--dense-index", "hnsw"],
        &[
            "--retriever",
            "hybrid",
            "--hybrid",
            "bm25,sparse,dense",
            "--fusion",
            "weighted",
        ],
    ];
    for extra in cases {
        let r = eval_json(dir.path(), extra);
        assert_eq!(r["queries"], 6);
        assert_eq!(metric_names(&r), ALL_METRICS, "{extra:?}");
        // 60 passages, 6 questions: every pretrained retriever finds most gold passages.
        let recall = r["metrics"]["recall@10"].as_f64().expect("recall");
        assert!(recall >= 0.6, "{extra:?}: recall@10 {recall}");
        // Only the approximate index reports its recall against exact search.
        let hnsw = extra.contains(&"hnsw");
        assert_eq!(r.get("ann").is_some(), hnsw, "{extra:?}");
        if hnsw {
            let ann_recall = r["ann"]["recall@10_vs_exact"].as_f64().expect("ann recall");
            assert!(
                (0.9..=1.0).contains(&ann_recall),
                "HNSW recall {ann_recall}"
            );
            assert!(r["ann"]["queries_per_s"].as_f64().expect("q/s") > 0.0);
        }
    }
}

/// `eval --augment`: hypothetical documents from the cache (a generator
/// that wrote each question's first gold passage) lift the gold passages;
/// weight 0 is the plain search; a query without a document and no
/// generator is a clear failure.
#[test]
fn eval_augments_queries_with_cached_hypothetical_documents() {
    let dir = tempfile::tempdir().expect("tempdir");
    small_qa_set(dir.path(), 20);
    let corpus: std::collections::HashMap<String, String> =
        std::fs::read_to_string(dir.path().join("corpus.jsonl"))
            .expect("corpus")
            .lines()
            .map(|l| {
                let d: serde_json::Value = serde_json::from_str(l).expect("json");
                (
                    d["id"].as_str().expect("id").into(),
                    d["text"].as_str().expect("text").into(),
                )
            })
            .collect();
    let mut cache = String::new();
    for l in std::fs::read_to_string(dir.path().join("qa.jsonl"))
        .expect("qa")
        .lines()
    {
        let q: serde_json::Value = serde_json::from_str(l).expect("json");
        let gold = q["gold_ids"][0].as_str().expect("gold");
        // The record of a greedy document of at most 128 tokens (the default).
        let sampling = "temperature 0 top_p 1 max_tokens 128 seed 0";
        cache += &serde_json::json!({"query": q["question"], "sample": 0, "sampling": sampling, "text": corpus[gold]})
            .to_string();
        cache.push('\n');
    }
    let hyde = dir.path().join("hyde.jsonl");
    std::fs::write(&hyde, &cache).expect("write");
    let cache_arg = hyde.to_str().expect("utf-8");
    let plain = eval_json(dir.path(), &["--retriever", "bm25"]);
    let augmented = eval_json(
        dir.path(),
        &[
            "--retriever",
            "bm25",
            "--augment",
            "--augment-cache",
            cache_arg,
        ],
    );
    let metric = |r: &serde_json::Value, m: &str| r["metrics"][m].as_f64().expect("metric");
    assert!(metric(&augmented, "mrr@10") > metric(&plain, "mrr@10"));
    assert!(metric(&augmented, "all_gold@10") >= metric(&plain, "all_gold@10"));
    assert_eq!(augmented["augment"]["generated"], 0);
    assert_eq!(augmented["augment"]["empty"], 0);
    let none = eval_json(
        dir.path(),
        &[
            "--retriever",
            "bm25",
            "--augment",
            "--augment-cache",
            cache_arg,
            "--augment-weight",
            "0",
        ],
    );
    assert_eq!(none["metrics"], plain["metrics"]);
    // One question's document missing, no generator: a clear failure.
    let cut: String = cache.lines().skip(1).map(|l| format!("{l}\n")).collect();
    std::fs::write(&hyde, cut).expect("write");
    let data_arg = dir.path().to_str().expect("utf-8");
    let o = trainer(&[
        "eval",
        "--data",
        data_arg,
        "--retriever",
        "bm25",
        "--augment",
        "--augment-cache",
        cache_arg,
    ]);
    assert_clean_failure(&o, "no generator");
    let o = trainer(&[
        "eval",
        "--data",
        data_arg,
        "--retriever",
        "bm25",
        "--augment",
        "--augment-weight",
        "1.5",
    ]);
    assert_clean_failure(&o, "--augment-weight");
    let o = trainer(&[
        "eval",
        "--data",
        data_arg,
        "--retriever",
        "bm25",
        "--augment-cache",
        cache_arg,
    ]);
    assert_clean_failure(&o, "only with --augment");
}

#[test]
fn index_cache_is_reused_and_a_damaged_entry_is_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    small_qa_set(dir.path(), 2);
    let cache = dir.path().join("cache");
    let report = dir.path().join("r.json");
    let run = || {
        let o = trainer(&[
            "eval",
            "--data",
            dir.path().to_str().expect("utf-8"),
            "--retriever",
            "sparse",
            "--cache",
            cache.to_str().expect("utf-8"),
            "--json",
            report.to_str().expect("utf-8"),
        ]);
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "stderr: {stderr}");
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
        (r["metrics"].clone(), stderr)
    };
    let (built, stderr) = run();
    assert!(stderr.contains("cached index"), "{stderr}");
    let files: Vec<_> = std::fs::read_dir(&cache)
        .expect("cache dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let (reused, stderr) = run();
    assert!(stderr.contains("loaded cached index"), "{stderr}");
    assert_eq!(reused, built);
    // A truncated entry is refused, reported, rebuilt and replaced.
    let bytes = std::fs::read(&files[0]).expect("read");
    std::fs::write(&files[0], &bytes[..bytes.len() / 2]).expect("truncate");
    let (rebuilt, stderr) = run();
    assert!(stderr.contains("cached index refused"), "{stderr}");
    assert_eq!(rebuilt, built);
    assert_eq!(std::fs::read(&files[0]).expect("read"), bytes);
}

#[test]
fn neural_retriever_errors_are_clear() {
    let dir = tempfile::tempdir().expect("tempdir");
    small_qa_set(dir.path(), 1);
    let data_dir = dir.path().to_str().expect("utf-8");
    let o = trainer(&[
        "eval",
        "--data",
        data_dir,
        "--retriever",
        "sparse",
        "--weights",
        "/no/model",
    ]);
    assert_clean_failure(&o, "/no/model/model.safetensors");
    let o = trainer(&[
        "eval",
        "--data",
        data_dir,
        "--retriever",
        "sparse",
        "--activation",
        "elu1p",
    ]);
    assert_clean_failure(&o, "pass --top-k");
    let o = trainer(&[
        "eval",
        "--data",
        data_dir,
        "--retriever",
        "hybrid",
        "--hybrid",
        "hybrid,bm25",
    ]);
    assert_clean_failure(&o, "--hybrid lists the retrievers");
    // A dense model where a sparse one is needed.
    let minilm = rlrag_encoder::models::pretrained("minilm");
    let o = trainer(&[
        "eval",
        "--data",
        data_dir,
        "--retriever",
        "sparse",
        "--weights",
        minilm.to_str().expect("utf-8"),
    ]);
    assert_clean_failure(&o, "sparse head");
}

#[test]
fn train_retriever_writes_a_model_that_eval_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    small_qa_set(dir.path(), 10);
    let out = dir.path().join("model");
    let o = trainer(&[
        "train-retriever",
        "--data",
        dir.path().to_str().expect("utf-8"),
        "--split",
        "all",
        "--holdout",
        "0.3",
        "--env",
        "containment",
        "--out",
        out.to_str().expect("utf-8"),
        "--steps",
        "3",
        "--batch-size",
        "3",
        "--eval-every",
        "2",
        // Two CPU workers, data-parallel (the step of one device: tests/r3.rs).
        "--devices",
        "cpu:0,cpu:1",
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_ok(&o);
    assert!(
        stdout.contains("| ndcg@10") && stdout.contains("before"),
        "{stdout}"
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("device cpu,cpu (data-parallel)"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for f in [
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "manifest.json",
        "train.jsonl",
        "curve.svg",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    for step in ["step-2", "step-3"] {
        assert!(
            out.join("checkpoints")
                .join(step)
                .join("model.safetensors")
                .is_file()
        );
    }
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("manifest.json")).expect("manifest"),
    )
    .expect("json");
    assert_eq!(manifest["model_kind"], "sparse");
    assert_eq!(manifest["activation"], "log1p_relu");
    assert_eq!(manifest["reward"], "containment");
    assert_eq!(manifest["steps"], 3);
    assert_eq!(manifest["data"]["eval_questions"], 3);
    assert!(manifest["metrics"]["before"]["ndcg@10"].is_number());
    assert!(manifest["metrics"]["after"]["ndcg@10"].is_number());
    let log = std::fs::read_to_string(out.join("train.jsonl")).expect("log");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonl"))
        .collect();
    assert_eq!(lines.len(), 4, "step 0 evaluation + 3 steps");
    for l in &lines[1..] {
        assert!(
            l["mean_reward"].is_number()
                && l["learning_rate"].is_number()
                && l["positives"].is_number()
        );
    }
    assert!(
        std::fs::read_to_string(out.join("curve.svg"))
            .expect("svg")
            .starts_with("<svg")
    );
    // eval loads exactly what the trainer wrote.
    let r = eval_json(
        dir.path(),
        &[
            "--retriever",
            "sparse",
            "--weights",
            out.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(r["queries"], 10);
}

/// `train-retriever --model dense` trains MiniLM through its own index and
/// reports it fused with BM25; `eval --retriever dense` loads the result.
#[test]
fn train_retriever_trains_the_dense_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    small_qa_set(dir.path(), 6);
    let out = dir.path().join("dense");
    let base = [
        "train-retriever",
        "--model",
        "dense",
        "--data",
        dir.path().to_str().expect("utf-8"),
        "--split",
        "all",
        "--holdout",
        "0.5",
        "--env",
        "containment",
        "--out",
        out.to_str().expect("utf-8"),
    ];
    let with = |extra: &[&str]| {
        let mut a: Vec<&str> = base.to_vec();
        a.extend_from_slice(extra);
        trainer(&a)
    };
    let o = with(&["--steps", "2", "--batch-size", "3", "--eval-every", "2"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_ok(&o);
    assert!(
        stdout.contains("(dense index)") && stdout.contains("fused with BM25"),
        "{stdout}"
    );
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("manifest.json")).expect("manifest"),
    )
    .expect("json");
    assert_eq!(manifest["model_kind"], "dense");
    assert_eq!(manifest["config"]["search"], "index");
    assert!(manifest["metrics"]["after_fused_with_bm25"]["ndcg@10"].is_number());
    let r = eval_json(
        dir.path(),
        &[
            "--retriever",
            "dense",
            "--weights",
            out.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(r["queries"], 6);

    // A model of the other kind, or a bag of tokens for a dense model, is refused.
    let sparse = rlrag_encoder::models::pretrained("splade-tiny");
    assert_clean_failure(
        &with(&["--steps", "1", "--init", sparse.to_str().expect("utf-8")]),
        "is not a dense model",
    );
    assert_clean_failure(&with(&["--steps", "1", "--search", "bag"]), "its own index");
}

/// `self-boost` refuses what cannot run before it asks the generator.
#[test]
fn self_boost_errors_are_clear() {
    let dir = tempfile::tempdir().expect("tempdir");
    small_qa_set(dir.path(), 4);
    let out = dir.path().join("boost");
    let base = [
        "self-boost",
        "--data",
        dir.path().to_str().expect("utf-8"),
        "--eval-split",
        "all",
        "--out",
        out.to_str().expect("utf-8"),
    ];
    let with = |extra: &[&str]| {
        let mut a: Vec<&str> = base.to_vec();
        a.extend_from_slice(extra);
        trainer(&a)
    };
    assert_clean_failure(&with(&["--generator", "ftp://x"]), "not an http(s) URL");
    assert_clean_failure(
        &with(&[
            "--generator",
            "http://127.0.0.1:9/v1",
            "--teacher",
            "reranker",
        ]),
        "--teacher-reranker",
    );
    assert_clean_failure(
        &with(&[
            "--generator",
            "http://127.0.0.1:9/v1",
            "--negative-from",
            "9",
            "--negative-to",
            "3",
        ]),
        "are empty",
    );
    // The generator is unreachable: the first query fails with its URL.
    assert_clean_failure(
        &with(&[
            "--generator",
            "http://127.0.0.1:9/v1",
            "--generator-timeout-ms",
            "2000",
            "--retriever",
            "sparse",
        ]),
        "127.0.0.1:9",
    );
    // Query examples: a missing file and a malformed line, before any call.
    let examples = dir.path().join("examples.jsonl");
    let examples_arg = examples.to_str().expect("utf-8");
    let generator = ["--generator", "http://127.0.0.1:9/v1"];
    assert_clean_failure(
        &with(&[&generator[..], &["--query-examples", examples_arg]].concat()),
        "examples.jsonl",
    );
    std::fs::write(&examples, "{\"passage\": \"p\"}\n").expect("write");
    assert_clean_failure(
        &with(&[&generator[..], &["--query-examples", examples_arg]].concat()),
        "line 1",
    );
    // Caches written with the default examples are not reused with others.
    std::fs::write(
        out.join("queries.jsonl"),
        "{\"doc\": \"x\", \"query\": \"who is x\"}\n",
    )
    .expect("write");
    std::fs::remove_file(out.join("query-examples.json")).ok();
    std::fs::write(
        &examples,
        "{\"passage\": \"Statins lowered LDL.\", \"query\": \"Statins lower LDL.\"}\n",
    )
    .expect("write");
    assert_clean_failure(
        &with(&[&generator[..], &["--query-examples", examples_arg]].concat()),
        "other query examples",
    );
}

/// `train-reranker` writes a cross-encoder directory (checkpoints, log,
/// curve, manifest with the held-out first stage and reranked metrics)
/// that `eval --rerank` loads; the first stage's recall@100 is untouched
/// by reranking its top 5, and asking to rerank without a model is an
/// error that says what to pass.
#[test]
fn train_reranker_writes_a_cross_encoder_that_eval_reranks_with() {
    let dir = tempfile::tempdir().expect("tempdir");
    small_qa_set(dir.path(), 10);
    let out = dir.path().join("reranker");
    let o = trainer(&[
        "train-reranker",
        "--data",
        dir.path().to_str().expect("utf-8"),
        "--split",
        "all",
        "--holdout",
        "0.3",
        "--out",
        out.to_str().expect("utf-8"),
        "--layers",
        "1",
        "--max-length",
        "64",
        "--max-question-tokens",
        "24",
        "--candidates",
        "6",
        "--group",
        "3",
        "--batch-size",
        "2",
        "--steps",
        "2",
        "--eval-every",
        "1",
        "--rerank",
        "5",
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_ok(&o);
    assert!(
        stdout.contains("| containment@10") && stdout.contains("reranked"),
        "{stdout}"
    );
    for f in [
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "manifest.json",
        "train.jsonl",
        "curve.svg",
        "checkpoints/step-1/model.safetensors",
        "checkpoints/step-2/config.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let config = std::fs::read_to_string(out.join("config.json")).expect("config");
    assert!(
        config.contains("BertForSequenceClassification") && config.contains("cross_encoder"),
        "{config}"
    );
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("manifest.json")).expect("manifest"),
    )
    .expect("json");
    assert_eq!(manifest["model_kind"], "cross_encoder");
    assert_eq!(manifest["steps"], 2);
    assert_eq!(manifest["data"]["eval_questions"], 3);
    let metrics = &manifest["metrics"];
    assert!(metrics["reranked"]["containment@10"].is_number());
    assert_eq!(
        metrics["first_stage"]["recall@100"], metrics["reranked"]["recall@100"],
        "reranking the top 5 cannot change what the top 100 holds"
    );
    let log = std::fs::read_to_string(out.join("train.jsonl")).expect("log");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonl"))
        .collect();
    assert_eq!(lines.len(), 3, "step 0 + 2 steps");
    assert!(lines[1]["loss"].as_f64().is_some_and(f64::is_finite));
    assert!(lines[2]["eval"]["containment@10"].is_number());
    // eval loads exactly what the trainer wrote and reranks with it.
    let data = dir.path().to_str().expect("utf-8");
    let plain = eval_json(dir.path(), &["--retriever", "bm25"]);
    let r = eval_json(
        dir.path(),
        &[
            "--retriever",
            "bm25",
            "--rerank",
            "5",
            "--reranker",
            out.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(r["rerank"]["m"], 5);
    assert_eq!(r["metrics"]["recall@100"], plain["metrics"]["recall@100"]);
    let o = trainer(&[
        "eval",
        "--data",
        data,
        "--retriever",
        "bm25",
        "--rerank",
        "5",
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--reranker"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A fold and a holdout both choose the held-out questions.
    let o = trainer(&[
        "train-reranker",
        "--data",
        data,
        "--split",
        "all",
        "--fold",
        "0/5",
        "--holdout",
        "0.3",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--fold and --holdout"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A sentence encoder is not a reranker.
    let minilm = rlrag_encoder::models::pretrained("minilm");
    let o = trainer(&[
        "eval",
        "--data",
        data,
        "--retriever",
        "bm25",
        "--rerank",
        "5",
        "--reranker",
        minilm.to_str().expect("utf-8"),
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not a cross-encoder"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Training and evaluation on `--device wgpu` (lavapipe where no GPU is):
/// the run completes and evaluating its model gives the CPU's metrics.
#[test]
fn train_retriever_and_eval_run_on_wgpu() {
    if let Err(e) = rlrag_train::wgpu_device() {
        assert!(
            std::env::var_os("RLRAG_REQUIRE_WGPU").is_none(),
            "RLRAG_REQUIRE_WGPU is set but {e}"
        );
        eprintln!("skipped: {e}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    small_qa_set(dir.path(), 6);
    let out = dir.path().join("model");
    let o = trainer(&[
        "train-retriever",
        "--data",
        dir.path().to_str().expect("utf-8"),
        "--split",
        "all",
        "--holdout",
        "0.5",
        "--env",
        "containment",
        "--out",
        out.to_str().expect("utf-8"),
        "--steps",
        "2",
        "--batch-size",
        "3",
        "--device",
        "wgpu",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "stderr: {stderr}");
    assert!(stderr.contains("device wgpu"), "{stderr}");
    let on = |device: &str| {
        eval_json(
            dir.path(),
            &[
                "--retriever",
                "sparse",
                "--weights",
                out.to_str().expect("utf-8"),
                "--device",
                device,
            ],
        )["metrics"]["ndcg@10"]
            .as_f64()
            .expect("ndcg@10")
    };
    let (cpu, gpu) = (on("cpu"), on("wgpu"));
    assert!(
        (cpu - gpu).abs() < 1e-3,
        "nDCG@10 {cpu} (cpu) vs {gpu} (wgpu)"
    );
}

#[test]
fn train_retriever_errors_are_clear() {
    let dir = tempfile::tempdir().expect("tempdir");
    small_qa_set(dir.path(), 4);
    let data_dir = dir.path().to_str().expect("utf-8");
    let out = dir.path().join("out");
    let out = out.to_str().expect("utf-8");
    let base = [
        "train-retriever",
        "--data",
        data_dir,
        "--split",
        "all",
        "--out",
        out,
        "--steps",
        "1",
    ];
    let with = |extra: &[&str]| {
        let mut a: Vec<&str> = base.to_vec();
        a.extend_from_slice(extra);
        trainer(&a)
    };
    assert_clean_failure(
        &with(&["--env", "containment", "--device", "gpu"]),
        "expected cpu, wgpu, cuda or cuda:N",
    );
    assert_clean_failure(
        &with(&["--env", "containment", "--devices", "cpu:0,gpu"]),
        "expected cpu, wgpu, cuda or cuda:N",
    );
    assert_clean_failure(
        &with(&[
            "--env",
            "containment",
            "--device",
            "cpu",
            "--devices",
            "cpu:0,cpu:1",
        ]),
        "cannot be used with",
    );
    if !cfg!(feature = "cuda") {
        assert_clean_failure(
            &with(&[
                "--env",
                "containment",
                "--holdout",
                "0.5",
                "--device",
                "cuda:1",
            ]),
            "built without the `cuda` feature",
        );
    }
    assert_clean_failure(
        &with(&["--env", "containment", "--holdout", "1.5"]),
        "--holdout is a fraction",
    );
    assert_clean_failure(
        &with(&["--env", "containment", "--eval-split", "all"]),
        "pass --holdout",
    );
    // No relevance judgements for some questions of an answers-only set is an error, not reward 0.
    std::fs::write(
        dir.path().join("qa.jsonl"),
        "{\"id\":\"q1\",\"question\":\"who?\",\"answers\":[\"x\"]}\n{\"id\":\"q2\",\"question\":\"what?\",\"answers\":[\"y\"]}\n",
    )
    .expect("write");
    assert_clean_failure(
        &with(&["--env", "qrels", "--holdout", "0.5"]),
        "no relevance judgements",
    );
    assert_clean_failure(
        &with(&[
            "--env",
            "llm",
            "--holdout",
            "0.5",
            "--llm-url",
            "localhost:1",
        ]),
        "not an http(s) URL",
    );
}

/// A 12-question HotpotQA set and a directory for the router commands.
struct RouterCase {
    data_dir: tempfile::TempDir,
    out: tempfile::TempDir,
}

impl RouterCase {
    fn new() -> Self {
        let data_dir = tempfile::tempdir().expect("tempdir");
        small_qa_set(data_dir.path(), 12);
        Self {
            data_dir,
            out: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn data(&self) -> &str {
        self.data_dir.path().to_str().expect("utf-8")
    }

    fn model(&self) -> PathBuf {
        self.out.path().join("router")
    }

    /// `train-router` on every question, two rollouts, batches of six.
    fn train(&self, epochs: &str, extra: &[&str]) -> Output {
        let model = self.model();
        let mut args = vec![
            "train-router",
            "--data",
            self.data(),
            "--split",
            "all",
            "--out",
            model.to_str().expect("utf-8"),
            "--epochs",
            epochs,
            "--rollouts",
            "2",
            "--batch-size",
            "6",
        ];
        args.extend_from_slice(extra);
        trainer(&args)
    }

    /// `eval-router` on every question with the trained policy; the report's path.
    fn eval(&self, extra: &[&str]) -> (Output, PathBuf) {
        let (model, report) = (self.model(), self.out.path().join("eval.json"));
        let mut args = vec![
            "eval-router",
            "--data",
            self.data(),
            "--split",
            "all",
            "--weights",
            model.to_str().expect("utf-8"),
            "--json",
            report.to_str().expect("utf-8"),
        ];
        args.extend_from_slice(extra);
        (trainer(&args), report)
    }
}

fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn train_router_writes_a_policy_that_eval_router_compares_with_the_fixed_ones() {
    let case = RouterCase::new();
    let data = case.data();
    let model = case.model();
    let model_s = model.to_str().expect("utf-8");
    let o = case.train("2", &[]);
    assert_ok(&o);
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(log.contains("confidence fitted on 36 outcomes"), "{log}");
    assert!(log.contains("epoch  2: reward"), "{log}");
    for f in [
        "model.safetensors",
        "config.json",
        "manifest.json",
        "training.jsonl",
        "training.svg",
    ] {
        assert!(model.join(f).is_file(), "{f} written");
    }
    let lines = std::fs::read_to_string(model.join("training.jsonl")).expect("log");
    assert_eq!(lines.lines().count(), 2);
    assert!(
        std::fs::read_to_string(model.join("training.svg"))
            .expect("svg")
            .contains("<polyline")
    );

    let (o, report) = case.eval(&[]);
    assert_ok(&o);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("json")).expect("valid");
    let policies = r["policies"].as_object().expect("policies");
    let mut names: Vec<&str> = policies.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["both", "learned", "local", "multihop", "network"]);
    for (name, p) in policies {
        for key in ["containment@10", "all_gold@10", "network_share", "rounds"] {
            assert!(p[key].as_f64().is_some(), "{name} lacks {key}");
        }
        assert!(p["latency_ms"]["p50"].as_f64().is_some());
    }
    let share = |n: &str| policies[n]["network_share"].as_f64().expect("share");
    assert_eq!(share("local"), 0.0);
    assert_eq!(share("network"), 1.0);
    assert_eq!(share("multihop"), 2.0);
    let contain = |n: &str| policies[n]["containment@10"].as_f64().expect("containment");
    assert!(
        contain("network") >= contain("local"),
        "the network holds the whole corpus"
    );

    // --sense-baselines: every fixed schedule senses first, and its first
    // round sends the question with the aligned query and bridges.
    let traces = case.out.path().join("traces.jsonl");
    let traces_s = traces.to_str().expect("utf-8");
    for sense in [false, true] {
        let mut extra = vec!["--traces", traces_s];
        if sense {
            extra.push("--sense-baselines");
        }
        let (o, _) = case.eval(&extra);
        assert_ok(&o);
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&traces)
            .expect("traces")
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        let fixed: Vec<&serde_json::Value> =
            lines.iter().filter(|l| l["policy"] != "learned").collect();
        assert_eq!(fixed.len(), 4 * 12);
        assert!(
            fixed
                .iter()
                .all(|l| l["trace"]["sensing"]["ran"].as_bool() == Some(sense))
        );
        let most_queries = fixed
            .iter()
            .filter(|l| l["policy"] == "network")
            .filter_map(|l| {
                l["trace"]["decisions"][0]["queries"]
                    .as_array()
                    .map(Vec::len)
            })
            .max();
        assert_eq!(
            most_queries,
            Some(if sense { 3 } else { 1 }),
            "sense: {sense}"
        );
    }

    // Training is seeded: the same seeds give the same policy, another
    // --policy-seed another run over the same local/network split.
    let weights = || std::fs::read(model.join("model.safetensors")).expect("weights");
    let split = |o: &Output| {
        let log = String::from_utf8_lossy(&o.stderr).into_owned();
        log.lines()
            .find(|l| l.contains("local index"))
            .map(|l| l.split("; network").next().unwrap_or(l).to_owned())
            .expect("the split is logged")
    };
    let first = weights();
    let again = case.train("2", &[]);
    assert_ok(&again);
    assert_eq!(weights(), first, "the same seeds, the same policy");
    let other = case.train("2", &["--policy-seed", "7"]);
    assert_ok(&other);
    assert_ne!(weights(), first, "another policy seed, another run");
    assert_eq!(split(&other), split(&again));
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(model.join("manifest.json")).expect("manifest"),
    )
    .expect("json");
    assert_eq!(
        (manifest["seed"].as_u64(), manifest["policy_seed"].as_u64()),
        (Some(42), Some(7))
    );

    // Cross-validation folds: training takes every part but one, evaluation
    // that part, and together they are the split.
    let trained = |o: &Output| -> usize {
        let log = String::from_utf8_lossy(&o.stderr).into_owned();
        log.lines()
            .find_map(|l| {
                l.split(" training questions")
                    .next()?
                    .rsplit(' ')
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("the training questions are logged: {log}"))
    };
    let (mut train_total, mut eval_total) = (0, 0);
    for fold in ["0/3", "1/3", "2/3"] {
        let train = case.train("1", &["--fold", fold]);
        assert_ok(&train);
        let (o, report) = case.eval(&["--fold", fold]);
        assert_ok(&o);
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).expect("json")).expect("valid");
        assert_eq!(r["split"], format!("all, fold {fold}"));
        let held_out = r["questions"].as_u64().expect("questions") as usize;
        let trained_on = trained(&train);
        assert_eq!(trained_on + held_out, 12, "fold {fold}");
        train_total += trained_on;
        eval_total += held_out;
    }
    assert_eq!(
        (train_total, eval_total),
        (24, 12),
        "each question held out once"
    );
    for bad in ["3/3", "0/1", "1", "a/b"] {
        assert_clean_failure(&case.train("1", &["--fold", bad]), "is not a fold I/K");
    }

    // A router directory that does not fit is refused clearly: a config
    // edited by hand no longer matches the manifest's hash; without the
    // manifest, a policy of another width, and a confidence over other
    // evidence features.
    let eval_refuses = |config: &str, needle: &str| {
        std::fs::write(model.join("config.json"), config).expect("write");
        let o = trainer(&[
            "eval-router",
            "--data",
            data,
            "--split",
            "all",
            "--weights",
            model_s,
        ]);
        assert_clean_failure(&o, needle);
    };
    let other_width = r#"{"version": 1, "hidden": 8, "features": 16, "confidence": {"weights": [0,0,0,0,0,0,0], "bias": 0}}"#;
    eval_refuses(other_width, "does not match manifest.json");
    std::fs::remove_file(model.join("manifest.json")).expect("remove the manifest");
    eval_refuses(other_width, "cannot load the router");
    eval_refuses(
        r#"{"version": 1, "hidden": 8, "features": 19, "confidence": {"weights": [0,0,0,0,0,0], "bias": 0}}"#,
        "not a router config",
    );
    let o = trainer(&["eval-router", "--data", data, "--local-fraction", "0"]);
    assert_clean_failure(&o, "--local-fraction");
    let o = trainer(&["eval-router", "--data", data, "--network", "ftp://x"]);
    assert_clean_failure(&o, "not an http(s) URL");
    let rlag = |policy: &str| {
        trainer(&[
            "eval-router",
            "--data",
            data,
            "--generator",
            "http://127.0.0.1:9/v1",
            "--rlag-out",
            "pairs.jsonl",
            "--rlag-policy",
            policy,
        ])
    };
    assert_clean_failure(&rlag("learned"), "--rlag-policy learned needs --weights");
    assert_clean_failure(
        &rlag("oracle"),
        "is not one of local, network, both, multihop",
    );
    let o = trainer(&["eval-router", "--data", data, "--rlag-policy", "network"]);
    assert_clean_failure(&o, "--rlag-out");
}

#[test]
fn a_network_budget_is_kept_on_the_training_questions_and_saved_as_the_bar() {
    let case = RouterCase::new();
    // Network calls are free (λ = 0), so the policy has no reason to spare them.
    let free = ["--lambda", "0", "--seed", "3"];
    let share = |extra: &[&str]| -> f64 {
        let (o, report) = case.eval(extra);
        assert_ok(&o);
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).expect("json")).expect("valid");
        r["policies"]["learned"]["network_share"]
            .as_f64()
            .expect("share")
    };
    let bar_of = || -> f64 {
        let config: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(case.model().join("config.json")).expect("config"),
        )
        .expect("json");
        config["network_bar"].as_f64().expect("a bar")
    };
    assert_ok(&case.train("3", &free));
    assert_eq!(bar_of(), 0.0, "no budget, no bar");
    let unbounded = share(&["--seed", "3"]);
    assert!(unbounded > 0.25, "{unbounded}");

    let o = case.train("3", &[&free[..], &["--network-budget", "0.25"]].concat());
    assert_ok(&o);
    let log = String::from_utf8_lossy(&o.stderr);
    let bar = bar_of();
    assert!(bar > 0.0, "{log}");
    assert!(log.contains(&format!("network bar {bar:.4}")), "{log}");
    // The same questions, so the budget holds on evaluation too; without the
    // bar the same weights call as often as before.
    assert!(share(&["--seed", "3"]) <= 0.25);
    assert_eq!(share(&["--seed", "3", "--network-bar", "0"]), unbounded);

    let o = case.train("1", &["--network-budget", "nan"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("calls per question"));
    let (o, _) = case.eval(&["--network-bar", "2"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("outside [0, 1]"));
}

/// A fake OpenAI-compatible generator on 127.0.0.1 that records every prompt:
/// a judge prompt gets "yes", a sub-query prompt two queries, an answer
/// prompt the titles of its passages, a prompt without passages "unknown".
fn fake_generator() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/v1", listener.local_addr().expect("addr"));
    let prompts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = prompts.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            // Chat completions carry messages, plain completions a prompt.
            let prompt = request["messages"][0]["content"]
                .as_str()
                .or(request["prompt"].as_str())
                .unwrap_or_default()
                .to_owned();
            let reply = if prompt.ends_with("Correct:") {
                "yes".to_owned()
            } else if prompt.ends_with("Queries:") {
                "1. first written query\n2. second written query".to_owned()
            } else if prompt.ends_with("\nPassage:") {
                // A hypothetical document (query augmentation).
                "Kiss and Tell is a 1945 comedy film starring Shirley Temple.".to_owned()
            } else if prompt.contains("Passage") {
                prompt
                    .lines()
                    .filter_map(|l| l.strip_prefix("Passage"))
                    .filter_map(|l| l.split_once(": ").map(|(_, rest)| rest))
                    .filter_map(|rest| rest.split(": ").next())
                    .collect::<Vec<_>>()
                    .join(", ")
            } else {
                "unknown".to_owned()
            };
            let payload = if request["prompt"].is_string() {
                serde_json::json!({"choices": [{"text": format!(" {reply}")}]})
            } else {
                serde_json::json!({"choices": [{"message": {"role": "assistant", "content": reply}}]})
            }
            .to_string();
            seen.lock().expect("lock").push(prompt);
            let mut s = stream;
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{payload}",
                payload.len()
            );
        }
    });
    (url, prompts)
}

#[test]
fn the_router_with_a_generator_scores_answers_judges_them_and_exports_rlag_pairs() {
    let case = RouterCase::new();
    let data = case.data();
    let model = case.model();
    let (url, prompts) = fake_generator();
    let o = case.train(
        "1",
        &[
            "--generator",
            &url,
            "--correctness",
            "f1",
            "--llm-sub-queries",
        ],
    );
    assert_ok(&o);
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(model.join("manifest.json")).expect("manifest"),
    )
    .expect("json");
    assert_eq!(manifest["reward"]["correctness"], "f1");
    {
        let p = prompts.lock().expect("lock");
        assert!(
            p.iter().any(|x| x.ends_with("Queries:")),
            "decompose hops asked the generator for sub-queries"
        );
        assert!(
            p.iter()
                .any(|x| x.contains("Passage") && x.ends_with("Answer:"))
        );
    }

    let pairs = case.out.path().join("rlag.jsonl");
    let hyde = case.out.path().join("hyde.jsonl");
    let (o, report) = case.eval(&[
        "--generator",
        &url,
        "--augment",
        "--augment-cache",
        hyde.to_str().expect("utf-8"),
        "--judge",
        "--rlag-out",
        pairs.to_str().expect("utf-8"),
        // A one-epoch policy may well never retrieve: pair on the network's
        // evidence, which always holds passages.
        "--rlag-policy",
        "network",
    ]);
    assert_ok(&o);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("network's evidence"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("| EM | F1 | judge |"), "{table}");
    // Every local search was augmented: its sub-query's document cached.
    let documents = std::fs::read_to_string(&hyde).expect("hypothetical documents cached");
    assert!(
        documents.lines().count() >= 1
            && documents
                .lines()
                .all(|l| l.contains("Kiss and Tell is a 1945")),
        "{documents}"
    );
    assert!(
        prompts
            .lock()
            .expect("lock")
            .iter()
            .any(|p| p.starts_with("Write a short passage"))
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("json")).expect("valid");
    for (name, p) in r["policies"].as_object().expect("policies") {
        let f1 = p["f1"].as_f64().expect("f1");
        let em = p["em"].as_f64().expect("em");
        assert!(
            (0.0..=1.0).contains(&f1) && em <= f1 + 1e-9,
            "{name}: em {em}, f1 {f1}"
        );
        assert_eq!(
            p["judge"].as_f64(),
            Some(1.0),
            "{name}: the judge said yes to all"
        );
    }
    let lines = std::fs::read_to_string(&pairs).expect("pairs written");
    let pairs: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert!(
        !pairs.is_empty() && pairs.len() <= 12,
        "{} pairs",
        pairs.len()
    );
    for p in &pairs {
        // The plain answer is "unknown": only the augmented one can win.
        assert_eq!(p["chosen_from"], "augmented");
        assert_eq!(p["rejected"], "unknown");
        assert!(p["chosen_f1"].as_f64() > p["rejected_f1"].as_f64());
        assert!(!p["prompt"].as_str().expect("prompt").contains("Passage"));
        assert!(
            p["augmented_prompt"]
                .as_str()
                .expect("prompt")
                .contains("Passage")
        );
    }

    // A generator that is not there: every answer fails, is counted, and the
    // evaluation still completes.
    let o = trainer(&[
        "eval-router",
        "--data",
        data,
        "--split",
        "all",
        "--limit",
        "3",
        "--generator",
        "http://127.0.0.1:1/v1",
        "--generator-timeout-ms",
        "500",
    ]);
    assert_ok(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("the generator failed 12 times"));
    let o = trainer(&["eval-router", "--data", data, "--judge"]);
    assert_clean_failure(&o, "need --generator");
    let o = trainer(&["eval-router", "--data", data, "--correctness", "f1"]);
    assert_clean_failure(&o, "give --generator");
    let o = trainer(&["eval-router", "--data", data, "--correctness", "bleu"]);
    assert_clean_failure(&o, "not one of containment, f1, exact_match");
}

/// `bench-dense` encodes a corpus prefix once, keeps the vectors for the
/// other engines and resumes a file a stopped run cut short; its HNSW rows
/// carry recall against the exact flat index.
/// `bench-scale` times every index kind at each size; with `--learned` it
/// encodes the passages once (kept in `--data`, reused by the next run)
/// and adds the learned-sparse rows, whose exact block-max search must
/// equal the exhaustive one (the run fails otherwise).
#[test]
fn bench_scale_times_every_index_and_keeps_learned_vectors() {
    let dir = tempfile::tempdir().expect("tempdir");
    small_qa_set(dir.path(), 4);
    let data = dir.path().to_str().expect("utf-8");
    let json = dir.path().join("scale.json");
    let run = || -> (serde_json::Value, String) {
        let o = trainer(&[
            "bench-scale",
            "--data",
            data,
            "--sizes",
            "20,30",
            "--queries",
            "3",
            "--block-size",
            "4",
            "--learned",
            "25",
            "--json",
            json.to_str().expect("utf-8"),
        ]);
        assert_ok(&o);
        let report =
            serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("valid");
        (report, String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (report, log) = run();
    assert!(log.contains("encoding 20 passages"), "{log}");
    let sizes = report["sizes"].as_array().expect("sizes");
    assert_eq!(sizes.len(), 2);
    let names = |s: &serde_json::Value| -> Vec<String> {
        s["indexes"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| r["index"].as_str().expect("name").to_owned())
            .collect()
    };
    // 20 passages: BM25, the bags, and the learned index (at most 25 are
    // encoded), each exhaustive and block-max (two orders, three alphas).
    let small = names(&sizes[0]);
    assert_eq!(small.len(), 15, "{small:?}");
    assert!(small.contains(&"learned sparse, block-max exact (corpus order)".to_owned()));
    // 30 passages: past --learned, no learned rows.
    assert_eq!(names(&sizes[1]).len(), 8);
    for r in sizes[0]["indexes"].as_array().expect("rows") {
        let p50 = r["latency_ms"]["p50"].as_f64().expect("p50");
        assert!(p50 >= 0.0 && r["ndcg@10"].as_f64().is_some(), "{r}");
    }
    let cache: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with("sparse-passages-"))
        .collect();
    assert_eq!(cache.len(), 1, "{cache:?}");
    let lines = std::fs::read_to_string(dir.path().join(&cache[0])).expect("cache");
    assert_eq!(lines.lines().count(), 20);
    // Again: nothing encoded, the same learned rows.
    let (again, log) = run();
    assert!(!log.contains("encoding 20 passages"), "{log}");
    assert_eq!(names(&again["sizes"][0]), small);

    let o = trainer(&["bench-scale", "--data", data, "--sizes", "0"]);
    assert_clean_failure(&o, "sizes");
}

#[test]
fn bench_dense_keeps_and_resumes_its_vectors() {
    let dir = tempfile::tempdir().expect("tempdir");
    small_qa_set(dir.path(), 4);
    let data = dir.path().to_str().expect("utf-8");
    let vectors = dir.path().join("vectors");
    let json = dir.path().join("dense.json");
    let run = |size: &str| -> serde_json::Value {
        let o = trainer(&[
            "bench-dense",
            "--data",
            data,
            "--size",
            size,
            "--queries",
            "3",
            "--ef-search",
            "10,16",
            "--vectors",
            vectors.to_str().expect("utf-8"),
            "--json",
            json.to_str().expect("utf-8"),
        ]);
        assert_ok(&o);
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("valid")
    };
    let row_bytes = 384 * 4;
    let first = run("25");
    assert_eq!(first["documents"], 25);
    assert_eq!(first["dim"], 384);
    assert_eq!(first["encoded"], 25);
    let indexes = first["indexes"].as_array().expect("rows");
    assert_eq!(indexes.len(), 3, "flat and two HNSW settings");
    assert_eq!(indexes[0]["recall@10"], 1.0, "exact against itself");
    assert!(
        indexes[0].get("add_ms").is_none(),
        "the flat index adds nothing"
    );
    for r in &indexes[1..] {
        let recall = r["recall@10"].as_f64().expect("recall");
        assert!((0.5..=1.0).contains(&recall), "{r}");
        // The last 2 of 25 passages were added beside the graph.
        assert!(
            r["add_ms"]["p50"].as_f64().is_some_and(|ms| ms >= 0.0),
            "{r}"
        );
    }
    let exact = first["files"]["exact"].as_array().expect("exact");
    assert_eq!(exact.len(), 3);
    assert!(exact.iter().all(|e| e.as_array().is_some_and(
        |rows| rows.len() == 10 && rows.iter().all(|r| r.as_u64().is_some_and(|r| r < 25))
    )));
    let passages = vectors.join("dense-passages.f32");
    let written = std::fs::read(&passages).expect("vectors");
    assert_eq!(written.len(), 25 * row_bytes);

    // A run stopped in the middle of the last row: that row is encoded again.
    std::fs::write(&passages, &written[..24 * row_bytes + 7]).expect("cut");
    let resumed = run("25");
    assert_eq!(resumed["encoded"], 1);
    let again = std::fs::read(&passages).expect("vectors");
    assert_eq!(again.len(), written.len());
    let max_diff = again
        .chunks_exact(4)
        .zip(written.chunks_exact(4))
        .map(|(a, b)| {
            let f = |x: &[u8]| f32::from_le_bytes([x[0], x[1], x[2], x[3]]);
            (f(a) - f(b)).abs()
        })
        .fold(0.0f32, f32::max);
    assert!(max_diff < 1e-5, "re-encoded row differs by {max_diff}");
    // A longer prefix encodes only what it adds.
    assert_eq!(run("30")["encoded"], 5);

    let o = trainer(&["bench-dense", "--data", data, "--ef-search", "5"]);
    assert_clean_failure(&o, "ef-search");
}

/// `train-generator`: DPO of SmolLM2 on a few RLAG-style pairs from the
/// command line writes a generator model directory that loads and
/// differs from the start, a log per step with held-out stats, a curve
/// and a report; a malformed pairs line is refused with its number.
#[test]
fn train_generator_writes_a_model_directory_that_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gguf = rlrag_encoder::models::pretrained("smollm2").join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let pairs = dir.path().join("pairs.jsonl");
    let rows = [
        ("What is the capital of France?", "Paris", "London"),
        (
            "Who wrote Hamlet?",
            "William Shakespeare",
            "Charles Dickens",
        ),
        ("What colour is the sky on a clear day?", "Blue", "Green"),
    ];
    let text: String = rows
        .iter()
        .map(|(p, c, r)| {
            format!(
                "{}\n",
                serde_json::json!({"prompt": p, "chosen": c, "rejected": r})
            )
        })
        .collect();
    std::fs::write(&pairs, &text).expect("write");
    let out = dir.path().join("dpo");
    let run = |pairs: &Path| {
        trainer(&[
            "train-generator",
            "--pairs",
            pairs.to_str().expect("utf-8"),
            "--init",
            gguf.to_str().expect("utf-8"),
            "--out",
            out.to_str().expect("utf-8"),
            "--steps",
            "2",
            "--batch-size",
            "1",
            "--holdout",
            "0.34",
            "--eval-every",
            "1",
            "--learning-rate",
            "1e-4",
        ])
    };
    let o = run(&pairs);
    assert_ok(&o);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("3 read, 0 skipped, 2 trained on, 1 held out"),
        "{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).expect("report"))
            .expect("json");
    let before = report["before"]["loss"].as_f64().expect("before");
    assert!((before - std::f64::consts::LN_2).abs() < 1e-3, "{report}");
    assert!(report["after"]["loss"].as_f64().expect("after").is_finite());
    let log = std::fs::read_to_string(out.join("log.jsonl")).expect("log");
    assert_eq!(log.lines().count(), 2);
    assert!(log.lines().all(|l| l.contains("\"held_out\"")), "{log}");
    assert!(out.join("curve.svg").is_file());

    let device = burn::tensor::Device::flex();
    let trained = rlrag_generator::generate::Generator::load_dir(&out.join("model"), &device)
        .expect("the model directory loads");
    let start = rlrag_generator::generate::Generator::from_gguf(
        &std::fs::read(&gguf).expect("gguf"),
        &device,
    )
    .expect("loads");
    assert_eq!(trained.model().config, start.model().config);
    assert_eq!(trained.template(), start.template());
    let prompt = trained.template().prompt(&[("user", rows[0].0)]);
    let ids = trained.tokenizer().encode(&prompt).expect("encodes");
    assert_eq!(ids, start.tokenizer().encode(&prompt).expect("encodes"));
    let a = trained
        .model()
        .next_logits(&ids, &mut Default::default())
        .expect("runs");
    let b = start
        .model()
        .next_logits(&ids, &mut Default::default())
        .expect("runs");
    assert!(
        a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 1e-4),
        "training moved nothing"
    );

    std::fs::write(
        &pairs,
        format!("{text}{{\"prompt\": \"q\", \"chosen\": 3}}\n"),
    )
    .expect("write");
    assert_clean_failure(&run(&pairs), "line 4: no string `chosen`");
}

/// Made-up facts the model cannot know: only the passage answers them.
/// The last question's id, `q7`, falls in the hash split's `test` part,
/// `q0`–`q4` in `train`.
const INVENTED: [(&str, &str, &str); 6] = [
    (
        "Zorblat is the capital city of the planet Quendor.",
        "What is the capital city of Quendor?",
        "Zorblat",
    ),
    (
        "The Vellmar river is 812 kilometres long.",
        "How long is the Vellmar river?",
        "812 kilometres",
    ),
    (
        "Brindle Hoskett invented the glass harmonium in 1871.",
        "Who invented the glass harmonium?",
        "Brindle Hoskett",
    ),
    (
        "The national animal of Tarvessa is the silver lynx.",
        "What is the national animal of Tarvessa?",
        "silver lynx",
    ),
    (
        "Ormund Pell wrote the novel The Salt Orchard.",
        "Who wrote The Salt Orchard?",
        "Ormund Pell",
    ),
    (
        "The Kestrel Tower in Dunmere is 240 metres tall.",
        "How tall is the Kestrel Tower?",
        "240 metres",
    ),
];

/// `rlag`: a round of sampling with and without passages, DPO on the
/// pairs, and the held-out scores before and after, on SmolLM2.
#[test]
fn rlag_runs_a_round_and_scores_it_before_and_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut corpus, mut qa) = (String::new(), String::new());
    for (i, (passage, question, answer)) in INVENTED.iter().enumerate() {
        let n = if i + 1 == INVENTED.len() { 7 } else { i };
        corpus += &format!(
            "{}\n",
            serde_json::json!({"id": format!("p{n}"), "title": "", "text": passage})
        );
        qa += &format!(
            "{}\n",
            serde_json::json!({"id": format!("q{n}"), "question": question, "answers": [answer], "gold_ids": [format!("p{n}")]})
        );
    }
    std::fs::write(dir.path().join("corpus.jsonl"), corpus).expect("write");
    std::fs::write(dir.path().join("qa.jsonl"), qa).expect("write");
    let gguf = rlrag_encoder::models::pretrained("smollm2").join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let out = dir.path().join("rlag");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "rlag",
            "--data",
            dir.path().to_str().expect("utf-8"),
            "--init",
            gguf.to_str().expect("utf-8"),
            "--out",
            out.to_str().expect("utf-8"),
            "--passages",
            "1",
            "--limit",
            "2",
            "--samples",
            "1",
            "--max-answer-tokens",
            "16",
            "--batch-size",
            "2",
            "--epochs",
            "1",
            "--learning-rate",
            "1e-4",
        ];
        args.extend_from_slice(extra);
        trainer(&args)
    };
    let o = run(&[]);
    assert_ok(&o);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("2 training questions, 1 held out"),
        "{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).expect("report"))
            .expect("json");
    let rows = report["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{report}");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["round"], i);
        for part in ["held_out_augmented", "held_out_plain", "train_plain"] {
            let f1 = row[part]["f1"].as_f64().expect("f1");
            assert!((0.0..=1.0).contains(&f1), "{part}: {row}");
        }
        assert_eq!(row["train_plain"]["questions"], 2);
    }
    let pairs = rows[1]["pairs"].as_u64().expect("pairs");
    let lines = std::fs::read_to_string(out.join("pairs-round-1.jsonl")).expect("pairs");
    assert_eq!(lines.lines().count() as u64, pairs);
    // With the passage the model names the invented answer; without it,
    // it cannot.
    assert!(pairs > 0, "{report}");
    assert!(rows[1]["augmented_won"].as_u64() > Some(0), "{report}");
    assert!(
        rows[0]["held_out_augmented"]["f1"].as_f64() > rows[0]["held_out_plain"]["f1"].as_f64(),
        "{report}"
    );
    assert!(rows[1]["dpo"].is_array(), "{report}");
    assert!(rows[1]["steps"].as_u64() > Some(0), "{report}");
    assert_eq!(
        std::fs::read_to_string(out.join("rounds.jsonl"))
            .expect("log")
            .lines()
            .count(),
        2
    );
    let device = burn::tensor::Device::flex();
    rlrag_generator::generate::Generator::load_dir(&out.join("round-1"), &device)
        .expect("the round's model loads");

    assert_clean_failure(&run(&["--eval-split", "train"]), "another split");
    assert_clean_failure(&run(&["--rounds", "0"]), "at least 1");
}
