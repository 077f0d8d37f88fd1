//! The encoder-backed retrievers on the real pretrained models: rebuilt from a
//! saved index they search exactly as before, and an index of the wrong kind
//! or shape is refused. Needs `scripts/fetch-models.sh` (the test command runs it).
#![allow(missing_docs, clippy::expect_used)]

use std::sync::Arc;

use burn::tensor::Device;
use rlrag::encoder::Encoder;
use rlrag::encoder::models::pretrained;
use rlrag::retriever::{
    DenseRetriever, DenseSearch, Document, FlatIndex, HnswParams, Retriever, RetrieverError,
    SavedIndex, SparseIndex, SparseRetriever, Weighting,
};

fn encoder(name: &str) -> Arc<Encoder> {
    Arc::new(
        Encoder::from_dir(&pretrained(name), &Device::flex()).expect("run scripts/fetch-models.sh"),
    )
}

fn docs() -> Vec<Document> {
    [
        (
            "paris",
            "Paris",
            "Paris is the capital and largest city of France.",
        ),
        (
            "berlin",
            "Berlin",
            "Berlin is the capital of Germany, on the Spree.",
        ),
        (
            "photosynthesis",
            "Photosynthesis",
            "Plants turn light, water and carbon dioxide into sugar.",
        ),
        (
            "insulin",
            "Insulin",
            "Insulin is a hormone made by the pancreas that lowers blood glucose.",
        ),
        (
            "everest",
            "Mount Everest",
            "Everest is Earth's highest mountain above sea level, in the Himalayas.",
        ),
    ]
    .into_iter()
    .map(|(id, title, text)| Document {
        id: id.into(),
        title: title.into(),
        text: text.into(),
    })
    .collect()
}

fn ids(r: &dyn Retriever, q: &str) -> Vec<String> {
    r.search(q, 5)
        .expect("searches")
        .into_iter()
        .map(|h| h.id)
        .collect()
}

#[test]
fn sparse_retriever_round_trips_through_its_saved_index() {
    let enc = encoder("splade-tiny");
    let mut built = SparseRetriever::new(enc.clone()).expect("sparse head");
    built.add_documents(&docs(), &mut |_| {}).expect("indexes");
    assert_eq!(ids(&built, "which organ makes insulin")[0], "insulin");
    let bytes = built.index().to_bytes().expect("saves");
    let loaded =
        SparseRetriever::with_index(enc.clone(), SparseIndex::from_bytes(&bytes).expect("loads"))
            .expect("compatible");
    for q in [
        "capital of France",
        "tallest mountain",
        "how do plants make sugar",
    ] {
        assert_eq!(
            built.search(q, 5).expect("a"),
            loaded.search(q, 5).expect("b"),
            "{q}"
        );
    }
    // A bag-of-tokens index or another vocabulary is not a learned-sparse index of this model.
    let bot = SparseIndex::new(Weighting::Binary, 30522);
    assert!(matches!(
        SparseRetriever::with_index(enc.clone(), bot),
        Err(RetrieverError::InvalidParameter { name: "index", .. })
    ));
    let other = SparseIndex::new(Weighting::Learned, 50000);
    assert!(SparseRetriever::with_index(enc, other).is_err());
    // A dense model is refused whatever the index.
    assert!(
        SparseRetriever::with_index(
            encoder("minilm"),
            SparseIndex::new(Weighting::Learned, 30522)
        )
        .is_err()
    );
}

#[test]
fn dense_retriever_round_trips_and_only_hnsw_is_approximate() {
    let enc = encoder("minilm");
    let mut flat = DenseRetriever::new(enc.clone(), DenseSearch::Flat).expect("dense head");
    flat.add_documents(&docs(), &mut |_| {}).expect("indexes");
    assert_eq!(ids(&flat, "capital of Germany")[0], "berlin");
    assert!(flat.ann().is_none());
    let saved = FlatIndex::from_bytes(&flat.flat().to_bytes().expect("saves")).expect("loads");
    let hnsw =
        DenseRetriever::with_index(enc.clone(), saved, DenseSearch::Hnsw(HnswParams::default()))
            .expect("compatible");
    let probe = hnsw.ann().expect("HNSW is approximate");
    let q = probe.embed("highest mountain").expect("embeds");
    assert_eq!(
        probe.search_approximate(&q, 5).expect("ann")[0].id,
        probe.search_exact(&q, 5).expect("exact")[0].id
    );
    assert_eq!(ids(&hnsw, "highest mountain")[0], "everest");
    // Vectors of another width are refused with both sizes named.
    let err = DenseRetriever::with_index(enc, FlatIndex::new(768), DenseSearch::Flat)
        .expect_err("wrong dim");
    let msg = err.to_string();
    assert!(msg.contains("768") && msg.contains("384"), "{msg}");
}
