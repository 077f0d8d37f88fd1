//! OpenSearch as the network source, as a user runs it: `trainer
//! index-opensearch` loads a bundled set into a real implementation of the
//! OpenSearch 3.x API (osmem-server, fetched by scripts/setup-opensearch.sh;
//! `RLRAG_OSMEM_BIN` names the binary), `eval --retriever opensearch` ranks
//! like the local BM25 and sparse indexes, and the router routes to it.
//! Without the binary the test says so and passes, unless
//! `RLRAG_REQUIRE_OPENSEARCH=1` (the test command sets both).
#![allow(missing_docs, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

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

fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "trainer failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
}

fn assert_clean_failure(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "expected a failure mentioning {needle}"
    );
    assert!(err.contains(needle), "stderr lacks `{needle}`: {err}");
    assert!(!err.contains("panicked"), "panicked: {err}");
}

/// A running osmem-server on a free port; stopped on drop (it also exits
/// when its stdin closes, so a killed test leaves nothing behind).
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start() -> Option<Self> {
        let Some(bin) = std::env::var_os("RLRAG_OSMEM_BIN") else {
            assert!(
                std::env::var("RLRAG_REQUIRE_OPENSEARCH").as_deref() != Ok("1"),
                "RLRAG_REQUIRE_OPENSEARCH=1 but RLRAG_OSMEM_BIN is not set \
                 (RLRAG_OSMEM_BIN=$(scripts/setup-opensearch.sh))"
            );
            eprintln!("skipped: set RLRAG_OSMEM_BIN=$(scripts/setup-opensearch.sh) to run");
            return None;
        };
        let mut child = Command::new(bin)
            .args(["-addr", "127.0.0.1:0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("osmem-server starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("osmem-server prints its address");
        let started: serde_json::Value = serde_json::from_str(&line).expect("a JSON status line");
        let url = started["url"].as_str().expect("url").to_owned();
        Some(Self { child, url })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn json_of(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report written")).expect("JSON")
}

fn index(url: &str, index: &str, data: &Path, extra: &[&str], out: &Path) -> Output {
    let mut args = vec![
        "index-opensearch",
        "--data",
        data.to_str().expect("utf-8"),
        "--url",
        url,
        "--index",
        index,
        "--json",
        out.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    trainer(&args)
}

/// HotpotQA-100's first 30 questions as a HotpotQA file in `dir` (its
/// corpus: their 300 context paragraphs).
fn hotpot_subset(dir: &Path) -> PathBuf {
    let all: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(data("hotpotqa100").join("hotpotqa100.json"))
            .expect("hotpotqa100"),
    )
    .expect("json");
    let path = dir.join("hotpotqa30.json");
    std::fs::write(&path, serde_json::to_string(&all[..30]).expect("json")).expect("write");
    path
}

/// A `qa` set of the first `n` passages of a small corpus.
fn qa_set(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join(format!("qa{n}"));
    std::fs::create_dir_all(&path).expect("mkdir");
    let corpus: String = (0..n)
        .map(|i| {
            format!(
                "{{\"id\": {i}, \"title\": \"Passage {i}\", \"text\": \"river number {i} flows into lake {}\"}}\n",
                i % 3
            )
        })
        .collect();
    std::fs::write(path.join("corpus.jsonl"), corpus).expect("write");
    std::fs::write(
        path.join("qa.jsonl"),
        "{\"id\": 0, \"question\": \"Which lake?\", \"answers\": [\"lake 1\"]}\n",
    )
    .expect("write");
    path
}

#[test]
fn a_cluster_index_is_resumable_ranks_like_the_local_indexes_and_serves_the_router() {
    let Some(server) = Server::start() else {
        return;
    };
    let url = server.url.as_str();
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("report.json");

    // Resumable and idempotent: a second run over a larger corpus sends
    // only the new passages; a run over the same corpus sends nothing.
    let small = qa_set(dir.path(), 5);
    let large = qa_set(dir.path(), 8);
    assert_ok(&index(url, "tiny", &small, &["--batch-size", "2"], &report));
    let r = json_of(&report);
    assert_eq!(
        (r["created"].as_bool(), r["indexed"].as_u64()),
        (Some(true), Some(5))
    );
    assert_ok(&index(url, "tiny", &large, &["--batch-size", "3"], &report));
    let r = json_of(&report);
    assert_eq!(
        (
            r["created"].as_bool(),
            r["indexed"].as_u64(),
            r["skipped"].as_u64(),
            r["in_index"].as_u64()
        ),
        (Some(false), Some(3), Some(5), Some(8)),
        "{r}"
    );
    assert_ok(&index(url, "tiny", &large, &[], &report));
    let r = json_of(&report);
    assert_eq!(
        (r["indexed"].as_u64(), r["in_index"].as_u64()),
        (Some(0), Some(8))
    );
    // Vectors of another kind are refused until the index is rebuilt.
    assert_clean_failure(
        &index(url, "tiny", &large, &["--bm25-only"], &report),
        "pass --recreate",
    );
    assert_ok(&index(
        url,
        "tiny",
        &large,
        &["--bm25-only", "--recreate"],
        &report,
    ));
    let r = json_of(&report);
    assert_eq!(
        (
            r["created"].as_bool(),
            r["indexed"].as_u64(),
            r["sparse_model"].is_null()
        ),
        (Some(true), Some(8), true)
    );
    // Bad settings fail before any work, naming what is wrong.
    assert_clean_failure(
        &index(url, "Bad Name", &small, &[], &report),
        "not an index name",
    );
    assert_clean_failure(
        &index(url, "tiny", &small, &["--batch-size", "0"], &report),
        "--batch-size",
    );
    assert_clean_failure(
        &index(
            "http://127.0.0.1:9",
            "tiny",
            &small,
            &["--cluster-retries", "0"],
            &report,
        ),
        "transport error",
    );

    // HotpotQA-100's first 30 questions (their 300 paragraphs), with
    // SPLADE-tiny's vectors.
    let hotpot = hotpot_subset(dir.path());
    assert_ok(&index(url, "hotpot", &hotpot, &[], &report));
    let r = json_of(&report);
    let documents = r["documents"].as_u64().expect("documents");
    assert_eq!(r["in_index"].as_u64(), Some(documents));

    let cache = dir.path().join("engines");
    let mut agreement = Vec::new();
    for mode in ["bm25", "sparse", "hybrid"] {
        let out = dir.path().join("eval.json");
        let mut args = vec![
            "eval",
            "--data",
            hotpot.to_str().expect("utf-8"),
            "--k",
            "10",
            "--retriever",
            "opensearch",
            "--url",
            url,
            "--index",
            "hotpot",
            "--opensearch-mode",
            mode,
            "--cache",
            cache.to_str().expect("utf-8"),
            "--json",
            out.to_str().expect("utf-8"),
        ];
        if mode != "hybrid" {
            args.push("--agreement");
        }
        assert_ok(&trainer(&args));
        let remote = json_of(&out);
        assert_eq!(remote["retriever"], format!("opensearch-{mode}"));
        assert!(
            remote["metrics"]["containment@10"].as_f64().is_some(),
            "{remote}"
        );
        if mode == "hybrid" {
            // The fusion of the two lists checked here (`fuse`, as the local
            // hybrid fuses them), searched without the local side.
            assert!(remote.get("agreement").is_none(), "{remote}");
            continue;
        }
        let a = &remote["agreement"];
        let overlap = a["overlap@10"].as_f64().expect("overlap");
        let same_first = a["same_first"].as_f64().expect("same first");
        eprintln!("{mode}: overlap@10 {overlap:.4}, same first hit {same_first:.4}");
        agreement.push((mode, overlap, same_first));
    }
    for (mode, overlap, same_first) in agreement {
        // Sparse scores are the same dot products up to Lucene's 9-bit
        // term-weight quantisation; BM25 differs in tokenisation (Lucene's
        // standard tokenizer keeps one-letter tokens and splits on other
        // characters than \w\w+) and in the quantised document lengths.
        let (min_overlap, min_first) = match mode {
            "sparse" => (0.95, 0.9),
            _ => (0.8, 0.6),
        };
        assert!(overlap >= min_overlap, "{mode}: overlap@10 {overlap}");
        assert!(
            same_first >= min_first,
            "{mode}: same first hit {same_first}"
        );
    }

    // The router with the cluster as its network source.
    let routed = dir.path().join("router.json");
    let o = trainer(&[
        "eval-router",
        "--data",
        hotpot.to_str().expect("utf-8"),
        "--split",
        "all",
        "--limit",
        "8",
        "--network",
        url,
        "--network-index",
        "hotpot",
        "--network-mode",
        "bm25",
        "--json",
        routed.to_str().expect("utf-8"),
    ]);
    assert_ok(&o);
    let r = json_of(&routed);
    let network = &r["policies"]["network"];
    assert_eq!(network["network_share"].as_f64(), Some(1.0), "{r}");
    assert!(
        network["containment@10"].as_f64().expect("containment") > 0.0,
        "the cluster's passages reached the evidence: {r}"
    );

    // Clear refusals: an index that is not there, a mode a cluster has no
    // index for, a BM25-only index searched by vectors, no cluster named.
    let refused = |data: &Path, extra: &[&str], needle: &str| {
        let mut args = vec![
            "eval",
            "--data",
            data.to_str().expect("utf-8"),
            "--retriever",
            "opensearch",
        ];
        args.extend_from_slice(extra);
        assert_clean_failure(&trainer(&args), needle);
    };
    refused(
        &hotpot,
        &["--url", url, "--index", "nope"],
        "has no index `nope`",
    );
    refused(
        &hotpot,
        &[
            "--url",
            url,
            "--index",
            "hotpot",
            "--opensearch-mode",
            "dense",
        ],
        "bm25, sparse or hybrid",
    );
    refused(
        &large,
        &[
            "--url",
            url,
            "--index",
            "tiny",
            "--opensearch-mode",
            "sparse",
        ],
        "holds no sparse vectors",
    );
    refused(&large, &[], "--url");
}
