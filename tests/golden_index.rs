//! The saved BM25 format is stable: a fixed index saves to the exact bytes of
//! the checked-in golden file, and the golden file loads and searches.
//! Regenerate deliberately (after a format version bump) with
//! `RLRAG_BLESS=1 cargo test --test golden_index`.
#![allow(missing_docs, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use rlrag::retriever::{Bm25Index, Document, IndexFileError, RetrieverError, SavedIndex};

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/bm25-v1.idx")
}

fn fixture() -> Bm25Index {
    let mut index = Bm25Index::default();
    index
        .add_documents(&[
            Document::new(
                "eiffel",
                "Eiffel Tower",
                "A wrought-iron lattice tower in Paris.",
            ),
            Document::new(
                "ben",
                "Big Ben",
                "The clock tower at Westminster in London.",
            ),
            Document::new("gone", "Removed", "This one is removed before saving."),
            Document::new(
                "pisa",
                "Leaning Tower of Pisa",
                "A freestanding bell tower in Pisa.",
            ),
        ])
        .expect("adds");
    index.remove_documents(&["gone"]);
    index
}

#[test]
fn saved_bytes_equal_the_golden_file() {
    let bytes = fixture().to_bytes().expect("saves");
    if std::env::var_os("RLRAG_BLESS").is_some() {
        std::fs::write(golden_path(), &bytes).expect("blesses");
    }
    let golden = std::fs::read(golden_path()).expect("golden file exists");
    assert_eq!(
        bytes, golden,
        "the BM25 save format changed: bump PAYLOAD_VERSION and re-bless"
    );
}

#[test]
fn golden_file_loads_and_searches() {
    let index = Bm25Index::load(&golden_path()).expect("loads");
    assert_eq!(index.len(), 3);
    assert!(!index.contains("gone"));
    let hits = index.search("bell tower", 10).expect("search");
    assert_eq!(hits[0].id, "pisa");
    assert_eq!(hits, fixture().search("bell tower", 10).expect("search"));
}

#[test]
fn damaged_files_are_refused_with_the_reason() {
    let bytes = std::fs::read(golden_path()).expect("golden file exists");
    let refuse = |b: &[u8]| match Bm25Index::from_bytes(b) {
        Err(RetrieverError::IndexFile(e)) => e,
        other => panic!("expected an index-file error, got {other:?}"),
    };
    assert!(matches!(
        refuse(&bytes[..bytes.len() / 2]),
        IndexFileError::Truncated { .. }
    ));
    assert_eq!(refuse(b"{\"not\": \"an index\"}"), IndexFileError::BadMagic);
    let mut corrupt = bytes.clone();
    corrupt[40] ^= 1;
    assert!(matches!(refuse(&corrupt), IndexFileError::Checksum { .. }));
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.idx");
    let err = Bm25Index::load(&missing).expect_err("missing file");
    assert!(err.to_string().contains("nope.idx"), "{err}");
}
