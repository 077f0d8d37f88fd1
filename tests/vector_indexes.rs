//! Sparse and dense indexes against brute force on random data (seeded
//! property tests), HNSW recall against exact search, and the saved formats.
#![allow(missing_docs, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use rlrag::encoder::SparseVector;
use rlrag::retriever::block_max::{BlockMaxIndex, Ordering};
use rlrag::retriever::dense_index::recall_against_exact;
use rlrag::retriever::rng::SplitMix64;
use rlrag::retriever::{
    FlatIndex, Hit, HnswIndex, HnswParams, IndexFileError, LiveHnsw, RetrieverError, SavedIndex,
    SparseIndex, Weighting,
};

const VOCAB: u32 = 40;

fn config() -> Config {
    Config {
        cases: 150,
        rng_seed: RngSeed::Fixed(0x05ee_d5a5),
        failure_persistence: None,
        ..Config::default()
    }
}

fn sparse_vec() -> impl Strategy<Value = SparseVector> {
    prop::collection::btree_map(0..VOCAB, 0.01f32..5.0, 0..8).prop_map(|m| SparseVector {
        terms: m.into_iter().collect(),
    })
}

/// Brute-force top-k check: same scores per id, nothing better left out.
fn check(hits: &[Hit], expected: &HashMap<String, f32>, k: usize) {
    let positive: HashMap<&String, f32> = expected
        .iter()
        .filter(|(_, s)| **s > 0.0)
        .map(|(i, s)| (i, *s))
        .collect();
    assert_eq!(hits.len(), positive.len().min(k));
    for w in hits.windows(2) {
        assert!(w[0].score >= w[1].score);
    }
    for h in hits {
        assert!((h.score - expected[&h.id]).abs() <= 1e-4 * expected[&h.id].max(1.0));
    }
    if let Some(last) = hits.last() {
        let got: HashSet<&str> = hits.iter().map(|h| h.id.as_str()).collect();
        for (id, s) in &positive {
            if !got.contains(id.as_str()) {
                assert!(*s <= last.score + 1e-4);
            }
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sparse_index_equals_brute_force(
        docs in prop::collection::vec(sparse_vec(), 1..30),
        query in sparse_vec(),
        gone in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
        binary in any::<bool>(),
        k in 1usize..20,
    ) {
        let weighting = if binary { Weighting::Binary } else { Weighting::Learned };
        let mut index = SparseIndex::new(weighting, VOCAB).expect("a small vocabulary");
        let named: Vec<(String, SparseVector)> =
            docs.iter().enumerate().map(|(i, v)| (format!("d{i}"), v.clone())).collect();
        index.add(&named).expect("adds");
        let removed: HashSet<String> = gone.iter().map(|i| named[i.index(named.len())].0.clone()).collect();
        let ids: Vec<&String> = removed.iter().collect();
        prop_assert_eq!(index.remove(&ids), removed.len());
        let mut expected = HashMap::new();
        for (id, v) in &named {
            if removed.contains(id) {
                continue;
            }
            let d = if binary {
                SparseVector { terms: v.terms.iter().map(|&(t, _)| (t, 1.0)).collect() }
            } else {
                v.clone()
            };
            expected.insert(id.clone(), query.dot(&d));
        }
        let hits = index.search(&query, k);
        check(&hits, &expected, k);
        let reloaded = SparseIndex::from_bytes(&index.to_bytes().expect("saves")).expect("loads");
        prop_assert_eq!(reloaded.search(&query, k), hits);
        prop_assert_eq!(reloaded.weighting(), weighting);
    }

    #[test]
    fn flat_index_equals_brute_force(seed in any::<u64>(), n in 1usize..60, k in 1usize..20) {
        let mut rng = SplitMix64::new(seed);
        let dim = 8;
        let docs: Vec<(String, Vec<f32>)> = (0..n)
            .map(|i| (format!("d{i}"), (0..dim).map(|_| 2.0 * rng.next_f32() - 1.0).collect()))
            .collect();
        let q: Vec<f32> = (0..dim).map(|_| 2.0 * rng.next_f32() - 1.0).collect();
        let mut index = FlatIndex::new(dim);
        index.add(&docs).expect("adds");
        index.remove(&["d0"]);
        let expected: HashMap<String, f32> = docs[1..]
            .iter()
            .map(|(id, v)| (id.clone(), v.iter().zip(&q).map(|(a, b)| a * b).sum::<f32>()))
            .collect();
        let hits = index.search(&q, k).expect("search");
        prop_assert_eq!(hits.len(), expected.len().min(k));
        let mut sorted: Vec<f32> = expected.values().copied().collect();
        sorted.sort_by(|a, b| b.total_cmp(a));
        for (h, want) in hits.iter().zip(&sorted) {
            prop_assert!((h.score - want).abs() < 1e-5);
            prop_assert!((expected[&h.id] - h.score).abs() < 1e-5);
        }
        let reloaded = FlatIndex::from_bytes(&index.to_bytes().expect("saves")).expect("loads");
        prop_assert_eq!(reloaded.search(&q, k).expect("search"), hits);
    }
}

proptest! {
    #![proptest_config(Config { cases: 60, ..config() })]

    /// Adds, replacements and removals go to the exact segment and the
    /// tombstones beside the graph; every search equals a graph rebuilt
    /// over the live vectors (small sets: both searches are exhaustive).
    #[test]
    fn live_hnsw_equals_a_rebuild(
        seed in any::<u64>(),
        ops in prop::collection::vec((0u8..3, 0usize..30), 1..30),
        merge_at in 1usize..10,
        k in 1usize..12,
    ) {
        let mut rng = SplitMix64::new(seed);
        let dim = 8;
        let params = HnswParams::default();
        let mut flat = FlatIndex::new(dim);
        let initial: Vec<(String, Vec<f32>)> = unit_vectors(&mut rng, 15, dim)
            .into_iter()
            .enumerate()
            .map(|(i, v)| (format!("d{i}"), v))
            .collect();
        flat.add(&initial).expect("adds");
        let mut live = LiveHnsw::build(&flat, params, merge_at);
        for (op, n) in ops {
            let id = format!("d{n}");
            if op < 2 {
                let v = unit_vectors(&mut rng, 1, dim).remove(0);
                flat.remove(&[&id]);
                flat.add(&[(id.clone(), v.clone())]).expect("adds");
                live.add(&[(id, v)]).expect("adds");
            } else {
                flat.remove(&[&id]);
                live.remove(&[&id]);
            }
            if live.needs_merge() {
                live.merge(&flat);
            }
            let (fresh, tombstones) = live.pending();
            prop_assert!(fresh + tombstones <= merge_at);
            let q = unit_vectors(&mut rng, 1, dim).remove(0);
            let got = live.search(&q, k).expect("search");
            let rebuilt = if flat.is_empty() {
                Vec::new()
            } else {
                HnswIndex::build(&flat, params).search(&q, k).expect("search")
            };
            prop_assert_eq!(got.len(), rebuilt.len());
            for (g, r) in got.iter().zip(&rebuilt) {
                prop_assert_eq!(&g.id, &r.id);
                prop_assert!((g.score - r.score).abs() < 1e-5);
            }
        }
    }
}

/// Weights from a few values, so scores tie often.
fn tied_vec() -> impl Strategy<Value = SparseVector> {
    prop::collection::btree_map(0..VOCAB, prop::sample::select(vec![0.5f32, 1.0, 1.5]), 0..8)
        .prop_map(|m| SparseVector {
            terms: m.into_iter().collect(),
        })
}

proptest! {
    #![proptest_config(config())]

    /// Block-max pruning at alpha 1 returns exactly the exhaustive search's
    /// hits (ids, scores, order; ties on the earlier document), whatever the
    /// block size and layout; below 1 it returns true scores, best first.
    #[test]
    fn block_max_pruning_is_exact_at_alpha_one(
        docs in prop::collection::vec(prop_oneof![sparse_vec(), tied_vec()], 0..120),
        removed in prop::collection::vec(0usize..120, 0..10),
        queries in prop::collection::vec(prop_oneof![sparse_vec(), tied_vec()], 1..6),
        block_size in 1usize..12,
        k in 1usize..15,
        heaviest in any::<bool>(),
        weighting in prop_oneof![Just(Weighting::Learned), Just(Weighting::Binary)],
    ) {
        let mut index = SparseIndex::new(weighting, VOCAB).expect("index");
        let named: Vec<(String, SparseVector)> = docs
            .into_iter()
            .enumerate()
            .map(|(i, v)| (format!("d{i}"), v))
            .collect();
        index.add(&named).expect("adds");
        let gone: Vec<String> = removed.iter().map(|i| format!("d{i}")).collect();
        index.remove(&gone);
        let ordering = if heaviest { Ordering::HeaviestTerm } else { Ordering::Original };
        let bmp = BlockMaxIndex::build(index.documents(), VOCAB, block_size, ordering)
            .expect("builds");
        prop_assert_eq!(bmp.len(), index.len());
        for q in &queries {
            let exact = index.search(q, k);
            prop_assert_eq!(bmp.search(q, k, 1.0).expect("search"), exact.clone());
            let approx = bmp.search(q, k, 0.5).expect("search");
            prop_assert!(approx.len() <= k);
            for h in &approx {
                let d = index.vector(&h.id).expect("live");
                let truth: f32 = d.terms.iter().filter_map(|(t, w)| {
                    q.terms.iter().find(|(qt, _)| qt == t).map(|(_, qw)| qw * w)
                }).sum();
                prop_assert!((truth - h.score).abs() <= 1e-4 * truth.max(1.0));
            }
            for w in approx.windows(2) {
                prop_assert!(w[0].score >= w[1].score);
            }
        }
    }
}

#[test]
fn block_max_refuses_bad_settings_and_vectors() {
    let docs = [("a", &[(1u32, 0.5f32), (3, 1.0)][..])];
    assert!(BlockMaxIndex::build(docs, VOCAB, 0, Ordering::Original).is_err());
    let bmp = BlockMaxIndex::build(docs, VOCAB, 4, Ordering::Original).expect("builds");
    let q = SparseVector {
        terms: vec![(1, 1.0)],
    };
    for alpha in [0.0, -1.0, 1.5, f32::NAN] {
        assert!(bmp.search(&q, 3, alpha).is_err(), "alpha {alpha}");
    }
    let outside = SparseVector {
        terms: vec![(VOCAB, 1.0)],
    };
    assert!(bmp.search(&outside, 3, 1.0).is_err());
    for bad in [
        &[(3u32, 1.0f32), (1, 1.0)][..],
        &[(VOCAB, 1.0)],
        &[(2, f32::NAN)],
        &[(2, 0.0)],
    ] {
        assert!(
            BlockMaxIndex::build([("b", bad)], VOCAB, 4, Ordering::Original).is_err(),
            "{bad:?}"
        );
    }
}

fn unit_vectors(rng: &mut SplitMix64, n: usize, dim: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| {
            let v: Vec<f32> = (0..dim).map(|_| 2.0 * rng.next_f32() - 1.0).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / norm).collect()
        })
        .collect()
}

#[test]
fn hnsw_recall_is_high_and_builds_are_deterministic() {
    let mut rng = SplitMix64::new(7);
    let dim = 32;
    let docs: Vec<(String, Vec<f32>)> = unit_vectors(&mut rng, 2000, dim)
        .into_iter()
        .enumerate()
        .map(|(i, v)| (format!("d{i}"), v))
        .collect();
    let queries = unit_vectors(&mut rng, 100, dim);
    let mut flat = FlatIndex::new(dim);
    flat.add(&docs).expect("adds");
    let hnsw = HnswIndex::build(&flat, HnswParams::default());
    let exact: Vec<Vec<Hit>> = queries
        .iter()
        .map(|q| flat.search(q, 10).expect("search"))
        .collect();
    let approx: Vec<Vec<Hit>> = queries
        .iter()
        .map(|q| hnsw.search(q, 10).expect("search"))
        .collect();
    let recall = recall_against_exact(&exact, &approx, 10);
    assert!(recall >= 0.95, "HNSW recall@10 = {recall}");
    let again = HnswIndex::build(&flat, HnswParams::default());
    for q in &queries[..10] {
        assert_eq!(
            again.search(q, 10).expect("search"),
            hnsw.search(q, 10).expect("search")
        );
    }
    assert!(hnsw.search(&[0.0; 3], 10).is_err(), "wrong query dimension");
}

#[test]
fn bad_vectors_and_files_are_refused() {
    let mut flat = FlatIndex::new(3);
    let err = flat
        .add(&[("a".into(), vec![1.0, 2.0])])
        .expect_err("wrong dim");
    assert!(err.to_string().contains("expected 3"), "{err}");
    assert!(flat.add(&[("a".into(), vec![1.0, f32::NAN, 0.0])]).is_err());
    assert!(flat.is_empty());
    flat.add(&[("a".into(), vec![1.0, 0.0, 0.0])])
        .expect("adds");
    assert!(matches!(
        flat.add(&[("a".into(), vec![0.0; 3])]),
        Err(RetrieverError::DuplicateDocument { .. })
    ));
    assert!(flat.search(&[1.0], 3).is_err());

    let mut sparse = SparseIndex::new(Weighting::Learned, 10).expect("a small vocabulary");
    let bad = SparseVector {
        terms: vec![(10, 1.0)],
    };
    assert!(
        sparse.add(&[("x".into(), bad)]).is_err(),
        "term outside the vocabulary"
    );
    assert!(sparse.is_empty());

    // A dense file is not a sparse index, and vice versa.
    let bytes = flat.to_bytes().expect("saves");
    assert!(matches!(
        SparseIndex::from_bytes(&bytes),
        Err(RetrieverError::IndexFile(IndexFileError::WrongKind { .. }))
    ));
    assert!(matches!(
        FlatIndex::from_bytes(&bytes[..bytes.len() - 3]),
        Err(RetrieverError::IndexFile(IndexFileError::Truncated { .. }))
    ));
}
