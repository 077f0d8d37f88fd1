//! BM25 against a brute-force scorer on random small corpora (seeded property
//! tests), including after random additions and removals and a save/load.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use rlrag::retriever::{Bm25Index, Bm25Params, Document, SavedIndex};

const WORDS: [&str; 12] = [
    "alpha", "beta", "gamma", "delta", "river", "rivers", "stone", "the", "of", "x", "light",
    "lights",
];

/// Reference BM25 over `docs` straight from the definition, in f64.
fn brute_force(index: &Bm25Index, docs: &[Document], query: &str) -> HashMap<String, f64> {
    let Bm25Params { k1, b } = index.params();
    let (k1, b) = (f64::from(k1), f64::from(b));
    let analyzer = index.analyzer();
    let doc_terms: Vec<Vec<String>> = docs
        .iter()
        .map(|d| {
            let mut t = analyzer.terms(&d.title);
            t.extend(analyzer.terms(&d.text));
            t
        })
        .collect();
    let n = docs.len() as f64;
    let avgdl = doc_terms.iter().map(Vec::len).sum::<usize>() as f64 / n;
    let avgdl = if avgdl == 0.0 { 1.0 } else { avgdl };
    let mut scores = HashMap::new();
    for (d, terms) in docs.iter().zip(&doc_terms) {
        let mut s = 0.0;
        for q in analyzer.terms(query) {
            let tf = terms.iter().filter(|t| **t == q).count() as f64;
            if tf == 0.0 {
                continue;
            }
            let df = doc_terms.iter().filter(|ts| ts.contains(&q)).count() as f64;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            s += idf * tf / (tf + k1 * (1.0 - b + b * terms.len() as f64 / avgdl));
        }
        if s > 0.0 {
            scores.insert(d.id.clone(), s);
        }
    }
    scores
}

/// The index's top `k` must be exactly the brute-force top `k` (up to float
/// ties), in descending order, with matching scores.
fn check(index: &Bm25Index, docs: &[Document], query: &str, k: usize) {
    let expected = brute_force(index, docs, query);
    let hits = index.search(query, k).expect("search");
    assert_eq!(hits.len(), expected.len().min(k), "hit count for {query:?}");
    for w in hits.windows(2) {
        assert!(w[0].score >= w[1].score, "not sorted: {hits:?}");
    }
    for h in &hits {
        let want = expected[&h.id];
        assert!(
            (f64::from(h.score) - want).abs() <= 1e-4 * want.max(1.0),
            "{}: {} vs {want}",
            h.id,
            h.score
        );
    }
    if let Some(last) = hits.last() {
        let returned: std::collections::HashSet<&str> =
            hits.iter().map(|h| h.id.as_str()).collect();
        for (id, s) in &expected {
            if !returned.contains(id.as_str()) {
                assert!(
                    *s <= f64::from(last.score) + 1e-4,
                    "{id} ({s}) missing from {hits:?}"
                );
            }
        }
    }
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(WORDS.to_vec()), 0..12).prop_map(|w| w.join(" "))
}

fn corpus() -> impl Strategy<Value = Vec<Document>> {
    prop::collection::vec((text(), text()), 1..25).prop_map(|pairs| {
        pairs
            .into_iter()
            .enumerate()
            .map(|(i, (title, body))| Document::new(format!("d{i}"), title, body))
            .collect()
    })
}

fn config() -> Config {
    Config {
        cases: 200,
        rng_seed: RngSeed::Fixed(0x05ee_db25),
        failure_persistence: None,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn search_equals_brute_force(docs in corpus(), query in text(), k in 1usize..30,
                                 k1 in 0.0f32..3.0, b in 0.0f32..=1.0) {
        let mut index = Bm25Index::new(Bm25Params { k1, b }, Default::default()).expect("valid");
        index.add_documents(&docs).expect("adds");
        check(&index, &docs, &query, k);
    }

    #[test]
    fn add_remove_and_reload_equal_a_fresh_index(
        docs in corpus(), more in corpus(), remove in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
        query in text(),
    ) {
        let more: Vec<Document> = more
            .into_iter()
            .map(|d| Document::new(format!("m{}", d.id), d.title, d.text))
            .collect();
        let mut index = Bm25Index::default();
        index.add_documents(&docs).expect("adds");
        index.add_documents(&more).expect("adds more");
        let all: Vec<Document> = docs.iter().chain(&more).cloned().collect();
        let gone: Vec<String> = remove.iter().map(|i| all[i.index(all.len())].id.clone()).collect();
        let removed = index.remove_documents(&gone);
        let gone: std::collections::HashSet<String> = gone.into_iter().collect();
        prop_assert_eq!(removed, gone.len());
        let live: Vec<Document> = all.into_iter().filter(|d| !gone.contains(&d.id)).collect();
        prop_assert_eq!(index.len(), live.len());

        let mut fresh = Bm25Index::default();
        fresh.add_documents(&live).expect("fresh");
        let reloaded = Bm25Index::from_bytes(&index.to_bytes().expect("saves")).expect("loads");
        prop_assert_eq!(reloaded.len(), live.len());
        if !live.is_empty() {
            check(&index, &live, &query, 10);
            let a = index.search(&query, 50).expect("search");
            prop_assert_eq!(&a, &fresh.search(&query, 50).expect("search"));
            prop_assert_eq!(&a, &reloaded.search(&query, 50).expect("search"));
        } else {
            prop_assert!(index.search(&query, 10).expect("search").is_empty());
        }
    }
}

#[test]
fn duplicates_are_refused_whole_and_removal_is_idempotent() {
    let mut index = Bm25Index::default();
    index
        .add_documents(&[Document::new("a", "", "river stone")])
        .expect("adds");
    let err = index
        .add_documents(&[
            Document::new("b", "", "light"),
            Document::new("a", "", "again"),
        ])
        .expect_err("duplicate");
    assert!(err.to_string().contains("`a`"), "{err}");
    assert_eq!(index.len(), 1, "nothing of the failed batch was added");
    assert!(!index.contains("b"));
    let err = index
        .add_documents(&[Document::new("c", "", "x"), Document::new("c", "", "y")])
        .expect_err("duplicate in batch");
    assert!(err.to_string().contains("`c`"));
    assert_eq!(index.remove_documents(&["a", "a", "zzz"]), 1);
    assert!(index.is_empty());
    assert!(index.search("river", 10).expect("search").is_empty());
    assert!(index.search("", 10).expect("search").is_empty());
}

#[test]
fn bad_parameters_are_refused() {
    for (k1, b) in [
        (-1.0, 0.5),
        (f32::NAN, 0.5),
        (1e38, 0.5),
        (1.0, 1.5),
        (1.0, -0.1),
    ] {
        assert!(Bm25Index::new(Bm25Params { k1, b }, Default::default()).is_err());
    }
}

#[test]
fn many_removals_compact_without_changing_results() {
    let docs: Vec<Document> = (0..300)
        .map(|i| {
            Document::new(
                format!("d{i}"),
                "",
                format!("{} {}", WORDS[i % 12], WORDS[(i * 7) % 12]),
            )
        })
        .collect();
    let mut index = Bm25Index::default();
    index.add_documents(&docs).expect("adds");
    let gone: Vec<String> = (0..250).map(|i| format!("d{i}")).collect();
    assert_eq!(index.remove_documents(&gone), 250);
    let live = &docs[250..];
    let mut fresh = Bm25Index::default();
    fresh.add_documents(live).expect("adds");
    for q in ["alpha river", "lights of stone", "gamma"] {
        assert_eq!(
            index.search(q, 100).expect("s"),
            fresh.search(q, 100).expect("s")
        );
        check(&index, live, q, 20);
    }
    // Slots freed by compaction are reusable: adding back works.
    index.add_documents(&docs[..5]).expect("re-adds");
    assert_eq!(index.len(), 55);
}
