//! `trainer cv-router` as a user runs it: every question scored once by a
//! policy that never saw it, the frontier at network bars, reuse of fold
//! policies, and clear refusals.
#![allow(missing_docs, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn trainer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .output()
        .expect("runs the trainer binary")
}

fn hotpot() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/hotpotqa100")
}

fn cv_router(out: &Path, folds: &str, extra: &[&str]) -> Output {
    let data = hotpot();
    let mut args = vec![
        "cv-router",
        "--data",
        data.to_str().expect("utf-8"),
        "--limit",
        "20",
        "--folds",
        folds,
        "--jobs",
        "2",
        "--out",
        out.to_str().expect("utf-8"),
        "--epochs",
        "1",
        "--rollouts",
        "2",
        "--batch-size",
        "8",
        "--bars",
        "0,1",
    ];
    args.extend_from_slice(extra);
    trainer(&args)
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json")
}

#[test]
fn every_question_is_scored_once_and_bar_zero_is_the_plain_evaluation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = cv_router(dir.path(), "2", &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("2-fold cross-validation, 20 questions"),
        "{stdout}"
    );
    let cv = read_json(&dir.path().join("cv.json"));
    assert_eq!(cv["questions"], 20, "{cv}");
    let per_fold = cv["learned_per_fold"].as_array().expect("folds");
    let held: u64 = per_fold
        .iter()
        .map(|f| f["questions"].as_u64().expect("n"))
        .sum();
    assert_eq!(held, 20, "{cv}");
    for policy in ["local", "network", "both", "multihop", "learned"] {
        assert!(
            cv["policies"][policy]["containment@10"].is_number(),
            "{policy}: {cv}"
        );
    }
    let bars = cv["learned_at_bars"].as_array().expect("bars");
    assert_eq!(bars.len(), 2);
    assert_eq!(bars[0]["network_bar"], 0.0);
    assert_eq!(bars[1]["network_bar"], 1.0);
    assert_eq!(
        bars[0]["network_share"], cv["policies"]["learned"]["network_share"],
        "{cv}"
    );
    let share = |v: &serde_json::Value| v["network_share"].as_f64().expect("share");
    assert!(share(&bars[1]) <= share(&bars[0]), "{cv}");
    // The pooled share is the question-weighted mean of the folds'.
    let pooled: f64 = (0..2)
        .map(|i| {
            let r = read_json(&dir.path().join(format!("fold-{i}of2.json")));
            r["policies"]["network"]["network_share"]
                .as_f64()
                .expect("share")
                * r["questions"].as_f64().expect("n")
        })
        .sum::<f64>()
        / 20.0;
    let network = share(&cv["policies"]["network"]);
    assert!((network - pooled).abs() < 1e-12, "{network} vs {pooled}");

    // --reuse keeps the fold policies and reproduces the result.
    let weights = dir.path().join("fold-0of2/model.safetensors");
    let before = std::fs::metadata(&weights)
        .expect("weights")
        .modified()
        .expect("mtime");
    let o = cv_router(dir.path(), "2", &["--reuse"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let after = std::fs::metadata(&weights)
        .expect("weights")
        .modified()
        .expect("mtime");
    assert_eq!(before, after, "--reuse trained fold 0 again");
    let again = read_json(&dir.path().join("cv.json"));
    assert_eq!(again["policies"]["learned"], cv["policies"]["learned"]);
}

#[test]
fn bad_cross_validations_are_refused_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (folds, extra, needle) in [
        ("1", &[][..], "--folds must be at least 2"),
        ("2", &["--fold", "0/2"][..], "--fold is set per fold"),
        ("2", &["--bars", "0,1.5"][..], "is not a network bar"),
    ] {
        let o = cv_router(dir.path(), folds, extra);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{extra:?} succeeded");
        assert!(stderr.contains(needle), "{extra:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
