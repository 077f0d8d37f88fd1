use std::collections::HashSet;
use std::fs;
use std::path::Path;

use super::*;

fn write(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("mkdir");
    }
    fs::write(path, body).expect("write");
}

fn beir_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "corpus.jsonl",
        "{\"_id\": \"d1\", \"title\": \"T1\", \"text\": \"one\"}\n\n{\"_id\": 2, \"text\": \"two\", \"metadata\": {}}\n",
    );
    write(
        dir.path(),
        "queries.jsonl",
        "{\"_id\": \"q1\", \"text\": \"first\"}\n{\"_id\": \"q2\", \"text\": \"second\"}\n{\"_id\": \"q3\", \"text\": \"unjudged\"}\n",
    );
    write(
        dir.path(),
        "qrels/test.tsv",
        "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\tghost\t1\nq2\t2\t1\nq2\t2\t1\nq9\td1\t1\n",
    );
    dir
}

#[test]
fn beir_loads_judgements_and_reports_what_does_not_fit() {
    let dir = beir_dir();
    assert_eq!(
        DatasetFormat::detect(dir.path()).expect("detects"),
        DatasetFormat::Beir
    );
    let ds = Dataset::load(dir.path(), None, None).expect("loads");
    assert_eq!(ds.split, "test");
    assert_eq!(ds.corpus.len(), 2);
    assert_eq!(ds.corpus[1].id, "2");
    assert_eq!(ds.corpus[1].title, "");
    let ids: Vec<&str> = ds.queries.iter().map(|q| q.id.as_str()).collect();
    assert_eq!(ids, ["q1", "q2"]);
    assert_eq!(ds.queries[0].qrels.get("d1"), Some(&2));
    // The unknown document stays in the judgements and is reported.
    assert_eq!(ds.queries[0].qrels.get("ghost"), Some(&1));
    assert_eq!(ds.report.unknown_gold_docs, 1);
    assert_eq!(ds.report.unknown_gold_examples, ["ghost"]);
    assert_eq!(ds.report.judged_queries_without_text, 1);
    assert_eq!(ds.report.duplicate_judgements, 1);
    assert_eq!(ds.report.warnings().len(), 3);
    assert!(ds.has_judgements() && !ds.has_answers());
}

#[test]
fn beir_errors_name_file_and_line() {
    let dir = beir_dir();
    write(
        dir.path(),
        "corpus.jsonl",
        "{\"_id\": \"d1\", \"text\": \"ok\"}\n{\"_id\": \"d2\", \"text\": \n",
    );
    let err = Dataset::load(dir.path(), None, None).expect_err("malformed");
    let msg = err.to_string();
    assert!(
        matches!(err, RetrieverError::Malformed { line: 2, .. }),
        "{msg}"
    );
    assert!(msg.contains("corpus.jsonl:2:"), "{msg}");

    write(
        dir.path(),
        "corpus.jsonl",
        "{\"_id\": \"d1\", \"text\": \"a\"}\n{\"_id\": \"d1\", \"text\": \"b\"}\n",
    );
    let err = Dataset::load(dir.path(), None, None).expect_err("duplicate");
    assert!(
        matches!(err, RetrieverError::DuplicateId { line: Some(2), .. }),
        "{err}"
    );

    write(
        dir.path(),
        "corpus.jsonl",
        "{\"_id\": \"d1\", \"text\": \"a\"}\n",
    );
    write(dir.path(), "qrels/test.tsv", "q1\td1\t1\nq2 d1\n");
    let err = Dataset::load(dir.path(), None, None).expect_err("short qrels row");
    assert!(
        err.to_string().contains("test.tsv:2: expected 3 fields"),
        "{err}"
    );
    write(dir.path(), "qrels/test.tsv", "q1\td1\t1\nq2\td1\thigh\n");
    let err = Dataset::load(dir.path(), None, None).expect_err("bad score");
    assert!(
        err.to_string().contains("test.tsv:2: score `high`"),
        "{err}"
    );

    let err = Dataset::load(dir.path(), None, Some(&Split::Named("dev".into())))
        .expect_err("no such split");
    match err {
        RetrieverError::UnknownSplit { available, .. } => assert_eq!(available, ["test"]),
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn empty_corpus_and_empty_split_are_errors() {
    let dir = beir_dir();
    write(dir.path(), "corpus.jsonl", "\n");
    assert!(matches!(
        Dataset::load(dir.path(), None, None),
        Err(RetrieverError::EmptyCorpus { .. })
    ));
    let dir = beir_dir();
    write(dir.path(), "qrels/test.tsv", "query-id\tcorpus-id\tscore\n");
    assert!(matches!(
        Dataset::load(dir.path(), None, None),
        Err(RetrieverError::EmptyQueries { .. })
    ));
}

#[test]
fn qa_reads_answers_gold_and_ignores_unknown_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "corpus.jsonl",
        "{\"id\": 0, \"text\": \"Paris is in France\", \"extra\": 1}\n{\"id\": \"p1\", \"title\": \"T\", \"text\": \"x\"}\n",
    );
    write(
        dir.path(),
        "qa.jsonl",
        "{\"id\": 7, \"question\": \"Where is Paris?\", \"answers\": [\"France\"], \"gold_ids\": [0, \"nope\"], \"retrieved_doc_ids\": [1]}\n{\"id\": 8, \"question\": \"?\", \"answers\": []}\n",
    );
    assert_eq!(
        DatasetFormat::detect(dir.path()).expect("detects"),
        DatasetFormat::Qa
    );
    let ds = Dataset::load(dir.path(), None, None).expect("loads");
    assert_eq!(ds.split, "all");
    assert_eq!(ds.queries[0].id, "7");
    assert_eq!(ds.queries[0].answers, ["France"]);
    assert_eq!(ds.queries[0].qrels.len(), 2);
    assert_eq!(ds.report.unknown_gold_docs, 1);
    assert_eq!(ds.report.unlabelled_queries, 1);

    write(dir.path(), "qa.jsonl", "{\"id\": 7, \"question\": \"q\"}\n");
    let err = Dataset::load(dir.path(), None, None).expect_err("answers missing");
    assert!(
        err.to_string()
            .contains("qa.jsonl:1: missing field `answers`"),
        "{err}"
    );
}

#[test]
fn hotpotqa_union_of_contexts_or_corpus_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let questions = r#"[
      {"_id": "a", "question": "Q1?", "answer": "yes", "type": "comparison", "level": "easy",
       "supporting_facts": [["Alpha", 0], ["Beta", 1], ["Alpha", 1]],
       "context": [["Alpha", ["First.", " Second."]], ["Beta", ["B."]]]},
      {"_id": "b", "question": "Q2?", "answer": "no", "type": "bridge",
       "supporting_facts": [["Gamma", 0]],
       "context": [["Alpha", ["Different."]], ["Delta", ["D."]]]}
    ]"#;
    write(dir.path(), "dev.json", questions);
    assert_eq!(
        DatasetFormat::detect(dir.path()).expect("detects"),
        DatasetFormat::Hotpotqa
    );
    let ds = Dataset::load(dir.path(), None, None).expect("loads");
    assert_eq!(ds.name, "dev");
    let titles: Vec<&str> = ds.corpus.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(titles, ["Alpha", "Beta", "Delta"]);
    assert_eq!(ds.corpus[0].text, "First. Second.");
    assert_eq!(ds.report.conflicting_paragraphs, 1);
    assert_eq!(ds.queries[0].qrels.len(), 2);
    assert_eq!(ds.report.unknown_gold_docs, 1);
    assert_eq!(ds.queries[1].answers, ["no"]);

    write(
        dir.path(),
        "corpus.json",
        r#"{"Gamma": ["G."], "Alpha": ["A."]}"#,
    );
    let ds = Dataset::load(&dir.path().join("dev.json"), None, None).expect("loads");
    let titles: Vec<&str> = ds.corpus.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(titles, ["Alpha", "Gamma"]);
    assert_eq!(ds.report.unknown_gold_docs, 1, "Beta is not in corpus.json");

    write(
        dir.path(),
        "dev.json",
        "[{\"_id\": \"a\",\n \"question\": 3}]",
    );
    let err = Dataset::load(dir.path(), None, None).expect_err("malformed");
    assert!(
        matches!(err, RetrieverError::Malformed { line: 2, .. }),
        "{err}"
    );
}

#[test]
fn hash_split_is_stable_and_partitions() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "corpus.jsonl", "{\"id\": 0, \"text\": \"t\"}\n");
    let qa: String = (0..200)
        .map(|i| format!("{{\"id\": {i}, \"question\": \"q{i}\", \"answers\": [\"a\"]}}\n"))
        .collect();
    write(dir.path(), "qa.jsonl", &qa);
    let train = Dataset::load(dir.path(), None, Some(&Split::Train)).expect("train");
    let test = Dataset::load(dir.path(), None, Some(&Split::Test)).expect("test");
    assert_eq!(train.queries.len() + test.queries.len(), 200);
    assert!(
        (25..=55).contains(&test.queries.len()),
        "{}",
        test.queries.len()
    );
    let train_ids: HashSet<_> = train.queries.iter().map(|q| q.id.clone()).collect();
    assert!(test.queries.iter().all(|q| !train_ids.contains(&q.id)));
    // Fixed hash: these ids are in the test part on every platform.
    assert_eq!(
        in_test_split("0"),
        crate::hash::fnv1a_str("0").is_multiple_of(5)
    );
    // Folds: every id in exactly one; fold 0 of 5 is the test split.
    for i in 0..200 {
        let id = i.to_string();
        let fold = fold_of(&id, 5).expect("5 folds");
        assert!(fold < 5);
        assert_eq!(fold == 0, in_test_split(&id), "{id}");
        assert_eq!(fold_of(&id, 1), Some(0));
    }
    assert_eq!(fold_of("0", 0), None);
    assert!(matches!(
        Dataset::load(dir.path(), None, Some(&Split::Named("dev".into()))),
        Err(RetrieverError::UnknownSplit { .. })
    ));
}

#[test]
fn detection_explains_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = DatasetFormat::detect(dir.path()).expect_err("empty dir");
    assert!(err.to_string().contains("--format"), "{err}");
    let err = DatasetFormat::detect(&dir.path().join("missing")).expect_err("missing");
    assert!(matches!(err, RetrieverError::MissingFile { .. }));
    assert!("bier".parse::<DatasetFormat>().is_err());
    // A forced format with missing files names the file.
    let err = Dataset::load(dir.path(), Some(DatasetFormat::Qa), None).expect_err("no files");
    assert!(err.to_string().contains("corpus.jsonl"), "{err}");
}
