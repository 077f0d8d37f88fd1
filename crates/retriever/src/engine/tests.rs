//! The engine's own tests: what needs its private parts (old snapshot
//! versions, failpoints). The behaviour over real corpora is in the
//! workspace's `tests/engine.rs`.

use std::sync::Arc;

use rlrag_encoder::Encoder;

use super::snapshot::{OptionsV2, SNAPSHOT_KIND, SNAPSHOT_VERSION, Snapshot, SnapshotV2};
use super::*;
use crate::Hit;
use crate::failpoint;
use crate::persist::{decode_snapshot, encode_snapshot};

fn models() -> EngineModels {
    let dir = rlrag_encoder::models::pretrained("splade-tiny");
    let sparse = Encoder::from_dir(&dir, &burn::tensor::Device::flex())
        .unwrap_or_else(|e| panic!("{e}: run scripts/fetch-models.sh"));
    EngineModels {
        sparse: Arc::new(sparse),
        sparse_fingerprint: 7,
        dense: None,
    }
}

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    burn::tensor::try_read_sync(f).unwrap_or_else(|| panic!("CPU futures complete at once"))
}

/// Engines saved before the options grew (version 2) still import, with
/// the new options at their defaults, and search as before.
#[test]
fn version_2_snapshots_import() {
    let options = EngineOptions {
        rerank_m: 2,
        ..EngineOptions::default()
    };
    let mut engine = Engine::new(models(), options.clone()).unwrap_or_else(|e| panic!("{e}"));
    let docs = [
        Document::new("a", "Paris", "Paris is the capital of France."),
        Document::new("b", "Nile", "The Nile flows north through Africa."),
        Document::new("c", "Insulin", "The pancreas makes insulin."),
    ];
    run(engine.add_documents(&docs, &mut |_| {})).unwrap_or_else(|e| panic!("{e}"));
    let v3: Snapshot = decode_snapshot(
        &engine.export().unwrap_or_else(|e| panic!("{e}")),
        SNAPSHOT_KIND,
        SNAPSHOT_VERSION,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let v2 = SnapshotV2 {
        sparse_fingerprint: v3.sparse_fingerprint,
        dense_fingerprint: v3.dense_fingerprint,
        options: OptionsV2 {
            sparse_vectors: v3.options.sparse_vectors,
            rerank_m: v3.options.rerank_m,
        },
        documents: v3.documents,
        bm25: v3.bm25,
        bags: v3.bags,
        learned: v3.learned,
        dense: v3.dense,
    };
    let bytes = encode_snapshot(SNAPSHOT_KIND, 2, &v2).unwrap_or_else(|e| panic!("{e}"));
    let old = Engine::import(models(), &bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(old.options(), &options);
    for mode in SearchMode::ALL
        .into_iter()
        .filter(|m| *m != SearchMode::Dense)
    {
        let q = "which organ makes insulin";
        assert_eq!(
            run(old.search(q, 3, mode)).unwrap_or_else(|e| panic!("{e}")),
            run(engine.search(q, 3, mode)).unwrap_or_else(|e| panic!("{e}")),
            "{mode}"
        );
    }
    // Version 1 (CRC-32 fingerprints) is refused whole.
    let v1 = encode_snapshot(SNAPSHOT_KIND, 1, &v2).unwrap_or_else(|e| panic!("{e}"));
    assert!(Engine::import(models(), &v1).is_err());
}

/// An imported file's options are checked as a caller's are: a file
/// asking to re-encode 2^31 candidates per query is refused.
#[test]
fn imported_options_are_bounded() {
    let mut engine =
        Engine::new(models(), EngineOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let docs = [Document::new(
        "a",
        "Paris",
        "Paris is the capital of France.",
    )];
    run(engine.add_documents(&docs, &mut |_| {})).unwrap_or_else(|e| panic!("{e}"));
    let mut snap: Snapshot = decode_snapshot(
        &engine.export().unwrap_or_else(|e| panic!("{e}")),
        SNAPSHOT_KIND,
        SNAPSHOT_VERSION,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    snap.options.rerank_m = 1 << 31;
    let bytes =
        encode_snapshot(SNAPSHOT_KIND, SNAPSHOT_VERSION, &snap).unwrap_or_else(|e| panic!("{e}"));
    let err = Engine::import(models(), &bytes)
        .map(|_| ())
        .expect_err("refused");
    assert!(err.to_string().contains("rerank_m"), "{err}");
    let options = EngineOptions {
        dense_search: DenseSearch::Hnsw(crate::HnswParams {
            ef_search: 1 << 40,
            ..crate::HnswParams::default()
        }),
        ..EngineOptions::default()
    };
    assert!(Engine::new(models(), options).is_err());
    // An RRF offset that would make every fused score NaN or flip ranks,
    // and a BM25 k1 whose length norm overflows (every score 0).
    for k in [f32::NAN, -1.0, f32::INFINITY] {
        let options = EngineOptions {
            fusion: Fusion::Rrf { k },
            ..EngineOptions::default()
        };
        let err = Engine::new(models(), options).map(|_| ()).expect_err("k");
        assert!(err.to_string().contains("RRF"), "{err}");
    }
    let options = EngineOptions {
        bm25: crate::Bm25Params { k1: 1e38, b: 0.75 },
        ..EngineOptions::default()
    };
    let err = Engine::new(models(), options).map(|_| ()).expect_err("k1");
    assert!(err.to_string().contains("k1"), "{err}");
}

fn docs() -> Vec<Document> {
    vec![
        Document::new("a", "Paris", "Paris is the capital of France."),
        Document::new("b", "Nile", "The Nile flows north through Africa."),
        Document::new("c", "Insulin", "The pancreas makes insulin."),
    ]
}

/// Every answer an engine gives to a few queries, and its export.
fn answers(engine: &Engine) -> Vec<Vec<Hit>> {
    let mut out = Vec::new();
    for q in [
        "capital of France",
        "which organ makes insulin",
        "river in Africa",
    ] {
        for mode in engine.modes() {
            out.push(run(engine.search(q, 3, mode)).unwrap_or_else(|e| panic!("{e}")));
        }
    }
    out
}

/// A replace that fails in an encoder, or part way through putting a
/// staged batch into the indexes, changes nothing: the old documents stay
/// searchable exactly as before, and the export imports (it left orphan
/// BM25 entries, and the old copy was gone).
#[test]
fn a_failed_replace_keeps_the_old_documents() {
    for point in ["engine.stage.sparse", "engine.commit"] {
        let mut engine =
            Engine::new(models(), EngineOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        run(engine.add_documents(&docs(), &mut |_| {})).unwrap_or_else(|e| panic!("{e}"));
        let before = answers(&engine);
        let replacement = [
            Document::new("a", "Lyon", "Lyon is a city on the Rhône."),
            Document::new("d", "Everest", "Everest is the highest mountain."),
        ];
        failpoint::arm(point);
        let err = run(engine.add_documents(&replacement, &mut |_| {})).expect_err(point);
        failpoint::disarm();
        assert!(err.to_string().contains(point), "{err}");
        assert_eq!(engine.len(), 3, "{point}");
        assert_eq!(engine.document("a"), Some(&docs()[0]), "{point}");
        assert!(engine.document("d").is_none(), "{point}");
        assert_eq!(answers(&engine), before, "{point}");
        let again = Engine::import(models(), &engine.export().unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{point}: {e}"));
        assert_eq!(answers(&again), before, "{point}");
        // And the same replace without the fault goes through.
        run(engine.add_documents(&replacement, &mut |_| {})).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(engine.len(), 4);
        assert_eq!(engine.document("a"), Some(&replacement[0]));
    }
}
