//! The engine on the real models and HotpotQA-100 paragraphs: every mode
//! ranks exactly as its index does over the encoders' own vectors, hits explain
//! themselves with matched terms, removal and replacement reach every index,
//! an exported index imports to the same answers, bad input is refused
//! without changing anything, and indexing hands control back between
//! chunks. Needs `scripts/fetch-models.sh`.
#![allow(missing_docs, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use burn::tensor::{Device, try_read_sync};
use rlrag::encoder::Encoder;
use rlrag::encoder::models::pretrained;
use rlrag::retriever::engine::{
    Augmentation, Engine, EngineModels, EngineOptions, Progress, SearchMode,
};
use rlrag::retriever::hash::fingerprint;
use rlrag::retriever::{
    Bm25Index, BotRetriever, Dataset, DenseSearch, Document, FlatIndex, Hit, HnswParams,
    RetrieverError, SparseIndex, Weighting,
};

fn model(name: &str) -> (Arc<Encoder>, u64) {
    let dir = pretrained(name);
    let read = |f: &str| std::fs::read(dir.join(f)).expect("run scripts/fetch-models.sh");
    let (w, c, t) = (
        read("model.safetensors"),
        read("config.json"),
        read("tokenizer.json"),
    );
    let encoder = Encoder::load(
        rlrag::encoder::ModelFiles {
            weights: &w,
            config: &c,
            tokenizer: &t,
        },
        &Device::flex(),
    )
    .expect("loads");
    (Arc::new(encoder), fingerprint(&[&w, &c, &t]))
}

fn models(dense: bool) -> EngineModels {
    let (sparse, sparse_fingerprint) = model("splade-tiny");
    EngineModels {
        sparse,
        sparse_fingerprint,
        dense: dense.then(|| model("minilm")),
    }
}

fn corpus(n: usize) -> Vec<Document> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/hotpotqa100");
    let ds = Dataset::load(&path, None, None).expect("hotpotqa100");
    ds.corpus.into_iter().take(n).collect()
}

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    try_read_sync(f).expect("CPU futures complete at once")
}

fn add(engine: &mut Engine, docs: &[Document]) -> Vec<Progress> {
    let mut seen = Vec::new();
    run(engine.add_documents(docs, &mut |p| seen.push(p))).expect("indexes");
    seen
}

fn search(engine: &Engine, q: &str, k: usize, mode: SearchMode) -> Vec<Hit> {
    run(engine.search(q, k, mode)).expect("searches")
}

fn ids(hits: &[Hit]) -> Vec<&str> {
    hits.iter().map(|h| h.id.as_str()).collect()
}

const QUERIES: [&str; 3] = [
    "Which magazine was started first, Arthur's Magazine or First for Women?",
    "What government position was held by the woman who portrayed Corliss Archer?",
    "Who was born first, the director of Count Cohn or of Key House Mirror?",
];

#[test]
fn every_mode_ranks_as_its_retriever_and_explains_its_hits() {
    // Past one tokenizing chunk (64) and two encoding chunks (32 each).
    let docs = corpus(72);
    let mut engine = Engine::new(models(true), EngineOptions::default()).expect("engine");
    let progress = add(&mut engine, &docs);
    assert_eq!(engine.len(), 72);
    // Progress counts up to the total for tokenizing, then for each encoder.
    assert_eq!(progress.first().map(|p| p.stage), Some("tokens"));
    for stage in ["tokens", "sparse", "dense"] {
        let steps: Vec<&Progress> = progress.iter().filter(|p| p.stage == stage).collect();
        assert!(steps.len() >= 2, "{stage}: {progress:?}");
        assert!(steps.windows(2).all(|w| w[0].done < w[1].done));
        assert_eq!(steps.last().map(|p| (p.done, p.total)), Some((72, 72)));
    }
    assert_eq!(engine.modes(), SearchMode::ALL.to_vec());

    // The references: each index filled with the encoders' own vectors.
    let (sparse_model, _) = model("splade-tiny");
    let (dense_model, _) = model("minilm");
    let texts: Vec<String> = docs.iter().map(Document::full_text).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    // Each document's id beside its vector.
    fn by_id<V>(docs: &[Document], vectors: Vec<V>) -> Vec<(String, V)> {
        docs.iter().map(|d| d.id.clone()).zip(vectors).collect()
    }
    let mut bm25 = Bm25Index::default();
    bm25.add_documents(&docs).expect("bm25");
    let vocab = sparse_model.config().bert.vocab_size as u32;
    let mut sparse = SparseIndex::new(Weighting::Learned, vocab).expect("the model's vocabulary");
    let vectors = sparse_model.encode_sparse(&refs).expect("encodes");
    sparse.add(&by_id(&docs, vectors)).expect("sparse");
    let mut bot = BotRetriever::new(sparse_model.clone(), 0).expect("bot");
    bot.add_documents(&docs).expect("bot");
    let mut dense = FlatIndex::new(dense_model.config().bert.hidden_size);
    let vectors = dense_model.encode_dense(&refs).expect("encodes");
    dense.add(&by_id(&docs, vectors)).expect("dense");
    let reference_k = |mode: SearchMode, q: &str, k: usize| -> Vec<Hit> {
        match mode {
            SearchMode::Bm25 => bm25.search(q, k).expect("bm25"),
            SearchMode::Sparse => {
                let v = sparse_model.encode_sparse(&[q]).expect("query").remove(0);
                sparse.search(&v, k)
            }
            SearchMode::Bot => bot.search(q, k).expect("bot"),
            SearchMode::Dense => {
                let v = dense_model.encode_dense(&[q]).expect("query").remove(0);
                dense.search(&v, k).expect("dense")
            }
            SearchMode::Hybrid => unreachable!("not a reference"),
        }
    };
    let reference = |mode: SearchMode, q: &str| reference_k(mode, q, 10);
    for q in QUERIES {
        for mode in [
            SearchMode::Bm25,
            SearchMode::Sparse,
            SearchMode::Bot,
            SearchMode::Dense,
        ] {
            let hits = search(&engine, q, 10, mode);
            let want = reference(mode, q);
            assert_eq!(
                ids(&hits),
                want.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
                "{mode} for {q}"
            );
            for (h, w) in hits.iter().zip(&want) {
                assert!((h.score - w.score).abs() < 1e-4, "{mode}: {h:?} vs {w:?}");
            }
        }
        let hybrid = search(&engine, q, 10, SearchMode::Hybrid);
        assert_eq!(hybrid.len(), 10);
        // Without explanations: the same ranking and scores, no terms.
        for mode in SearchMode::ALL {
            let plain = run(engine.search_with(q, 10, mode, false)).expect("searches");
            let explained = search(&engine, q, 10, mode);
            assert_eq!(ids(&plain), ids(&explained), "{mode}");
            assert!(
                plain
                    .iter()
                    .zip(&explained)
                    .all(|(a, b)| a.score == b.score)
            );
            assert!(plain.iter().all(|h| h.terms.is_empty()));
            assert!(explained.iter().any(|h| !h.terms.is_empty()), "{mode}");
        }
        // Each hit is a document of the corpus and carries the terms it
        // matched, heaviest first.
        for h in search(&engine, q, 5, SearchMode::Sparse) {
            let doc = docs.iter().find(|d| d.id == h.id).expect("known id");
            assert_eq!(engine.document(&h.id), Some(doc));
            assert!(!h.terms.is_empty(), "{h:?}");
            assert!(h.terms.windows(2).all(|w| w[0].weight >= w[1].weight));
            let sum: f32 = h.terms.iter().map(|t| t.weight).sum();
            assert!(
                (sum - h.score).abs() < 1e-3 * h.score.max(1.0),
                "terms sum to the score"
            );
        }
    }

    // Augmented queries (a hypothetical document mixed in at weight w):
    // every hit scores (1 − w)·score(query) + w·score(document), in every
    // retriever; weight 0 or an empty document is the plain search.
    let q = QUERIES[1];
    let score_of =
        |hits: &[Hit], id: &str| hits.iter().find(|x| x.id == id).map_or(0.0, |x| x.score);
    for mode in [
        SearchMode::Bm25,
        SearchMode::Sparse,
        SearchMode::Bot,
        SearchMode::Dense,
    ] {
        // The document describes the plain search's sixth passage.
        let plain = search(&engine, q, 10, mode);
        let target = engine.document(&plain[5].id).expect("a hit's document");
        let h = target.text.as_str();
        let (by_q, by_h) = (reference_k(mode, q, 72), reference_k(mode, h, 72));
        let augmented =
            run(engine.search_augmented(q, Some(Augmentation::new(h)), 10, mode, false, 0))
                .expect("searches");
        assert_eq!(augmented.len(), 10, "{mode}");
        for hit in &augmented {
            let want = 0.8 * score_of(&by_q, &hit.id) + 0.2 * score_of(&by_h, &hit.id);
            assert!(
                (hit.score - want).abs() < 1e-3 * want.abs().max(1.0),
                "{mode}: {hit:?} vs {want}"
            );
        }
        // The passage the document was written from moves up.
        let rank = |hits: &[Hit]| {
            hits.iter()
                .position(|x| x.id == target.id)
                .unwrap_or(hits.len())
        };
        assert!(
            rank(&augmented) < rank(&plain),
            "{mode}: {} vs {}",
            rank(&augmented),
            rank(&plain)
        );
        for none in [
            Augmentation {
                document: h,
                weight: 0.0,
            },
            Augmentation::new(" "),
        ] {
            let same =
                run(engine.search_augmented(q, Some(none), 10, mode, false, 0)).expect("searches");
            assert_eq!(ids(&same), ids(&plain), "{mode}");
        }
    }
    let h = docs[7].text.as_str();
    let hybrid = run(engine.search_augmented(
        q,
        Some(Augmentation::new(h)),
        10,
        SearchMode::Hybrid,
        true,
        0,
    ))
    .expect("searches");
    assert_eq!(hybrid.len(), 10);
    for weight in [-0.1, 1.5, f32::NAN] {
        let bad = Augmentation {
            document: h,
            weight,
        };
        assert!(matches!(
            run(engine.search_augmented(q, Some(bad), 10, SearchMode::Dense, false, 0)),
            Err(RetrieverError::InvalidParameter { .. })
        ));
    }
    let huge = "x ".repeat(40_000);
    assert!(matches!(
        run(engine.search_augmented(
            q,
            Some(Augmentation::new(&huge)),
            10,
            SearchMode::Bm25,
            false,
            0
        )),
        Err(RetrieverError::InvalidParameter {
            name: "augment",
            ..
        })
    ));
}

#[test]
fn removal_replacement_and_export_reach_every_index() {
    let docs = corpus(40);
    let mut engine = Engine::new(models(false), EngineOptions::default()).expect("engine");
    add(&mut engine, &docs);
    let q = QUERIES[0];
    let top = search(&engine, q, 3, SearchMode::Sparse)[0].id.clone();

    // Removal reaches every mode; unknown ids are ignored.
    assert_eq!(engine.remove_documents(&[top.as_str(), "no-such-id"]), 1);
    assert_eq!(engine.len(), 39);
    for mode in engine.modes() {
        assert!(
            !ids(&search(&engine, q, 40, mode)).contains(&top.as_str()),
            "{mode} still finds {top}"
        );
    }

    // Re-adding an id replaces the document everywhere.
    let replaced = Document::new(
        top.clone(),
        "Volcanoes",
        "Magma erupts from volcanoes as lava.",
    );
    add(&mut engine, std::slice::from_ref(&replaced));
    assert_eq!(engine.len(), 40);
    let hits = search(&engine, "lava from volcanoes", 1, SearchMode::Bm25);
    assert_eq!(hits[0].id, top);
    assert_eq!(engine.document(&top), Some(&replaced));

    // Export, import with the same model files: identical answers.
    let bytes = engine.export().expect("exports");
    let again = Engine::import(models(false), &bytes).expect("imports");
    assert_eq!(again.len(), engine.len());
    for mode in engine.modes() {
        assert_eq!(
            search(&again, q, 10, mode),
            search(&engine, q, 10, mode),
            "{mode}"
        );
    }

    // Refused whole: other model files, a dense model the index lacks,
    // truncation, corruption.
    let mut other = models(false);
    other.sparse_fingerprint ^= 1;
    assert!(matches!(
        Engine::import(other, &bytes),
        Err(RetrieverError::ModelMismatch {
            model: "sparse",
            ..
        })
    ));
    let e = Engine::import(models(true), &bytes).expect_err("no dense vectors");
    assert!(e.to_string().contains("no dense vectors"), "{e}");
    assert!(Engine::import(models(false), &bytes[..bytes.len() - 9]).is_err());
    let mut corrupt = bytes.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0xff;
    let e = Engine::import(models(false), &corrupt).expect_err("corrupt");
    assert!(e.to_string().contains("checksum"), "{e}");
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let docs = corpus(10);
    let options = EngineOptions {
        sparse_vectors: false,
        rerank_m: 3,
        ..EngineOptions::default()
    };
    let mut engine = Engine::new(models(false), options).expect("engine");
    // Without sparse vectors nothing is encoded at indexing time.
    assert!(add(&mut engine, &docs).iter().all(|p| p.stage == "tokens"));
    assert_eq!(
        engine.modes(),
        vec![SearchMode::Bot, SearchMode::Bm25, SearchMode::Hybrid]
    );

    let refused = |engine: &mut Engine, batch: &[Document], needle: &str| {
        let e = run(engine.add_documents(batch, &mut |_| {})).expect_err("refused");
        assert!(e.to_string().contains(needle), "{e}");
        assert_eq!(engine.len(), 10, "nothing changed");
    };
    let fresh = Document::new("fresh", "", "a new paragraph");
    refused(
        &mut engine,
        &[fresh.clone(), Document::new("", "", "x")],
        "empty id",
    );
    refused(&mut engine, &[fresh.clone(), fresh.clone()], "fresh");
    let huge = Document::new(
        "huge",
        "",
        "x".repeat(rlrag::retriever::engine::MAX_DOCUMENT_BYTES + 1),
    );
    refused(&mut engine, &[fresh, huge], "at most");

    let err = |q: &str, mode: SearchMode| {
        run(engine.search(q, 5, mode))
            .expect_err("refused")
            .to_string()
    };
    assert!(err("   ", SearchMode::Bot).contains("empty"));
    assert!(err(&"q".repeat(70_000), SearchMode::Bot).contains("at most"));
    assert!(err("capital", SearchMode::Sparse).contains("sparseVectors"));
    assert!(err("capital", SearchMode::Dense).contains("no dense model"));
    let too_many = run(engine.search("capital", 10_001, SearchMode::Bm25)).expect_err("k");
    assert!(too_many.to_string().contains("at most 10000"), "{too_many}");
    assert_eq!(
        search(&engine, "capital", 10_000, SearchMode::Bm25).len(),
        search(&engine, "capital", 1_000, SearchMode::Bm25).len()
    );
    assert!("semantic".parse::<SearchMode>().is_err());
    assert!(search(&engine, "capital", 0, SearchMode::Bot).is_empty());
    // k beyond the corpus is no error; BoT re-ranks its top 3 as the
    // stand-alone retriever does.
    let (sparse_model, _) = model("splade-tiny");
    let mut bot = BotRetriever::new(sparse_model, 3).expect("bot");
    bot.add_documents(&docs).expect("bot");
    let hits = search(&engine, QUERIES[1], 50, SearchMode::Bot);
    let want = bot.search(QUERIES[1], 50).expect("reference");
    assert!(hits.len() <= 10 && hits.len() >= 3);
    assert_eq!(
        ids(&hits),
        want.iter().map(|h| h.id.as_str()).collect::<Vec<_>>()
    );
    for (h, w) in hits.iter().zip(&want) {
        assert!((h.score - w.score).abs() < 1e-4, "{h:?} vs {w:?}");
    }
}

/// The native answers the browser package must reproduce: the documents, and
/// the top 10 (ids, scores) of each query in each mode the CPU-only package
/// runs. `web/test/` and the Chromium test compare against this file;
/// `RLRAG_BLESS=1 cargo test --test engine` rewrites it.
#[test]
fn native_answers_match_the_golden_file() {
    let docs = corpus(120);
    let mut engine = Engine::new(models(false), EngineOptions::default()).expect("engine");
    add(&mut engine, &docs);
    let mut results = Vec::new();
    for q in QUERIES {
        for mode in [
            SearchMode::Bm25,
            SearchMode::Bot,
            SearchMode::Sparse,
            SearchMode::Hybrid,
        ] {
            let hits = search(&engine, q, 10, mode);
            results.push(serde_json::json!({
                "query": q,
                "mode": mode.name(),
                "hits": hits.iter().map(|h| serde_json::json!({"id": h.id, "score": h.score})).collect::<Vec<_>>(),
            }));
        }
    }
    let got = serde_json::json!({ "documents": docs, "results": results });
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/engine-search.json");
    if std::env::var_os("RLRAG_BLESS").is_some() {
        let text = serde_json::to_string_pretty(&got).expect("json") + "\n";
        std::fs::write(&path, text).expect("writes the golden file");
        return;
    }
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("golden file")).expect("json");
    assert_eq!(got["documents"], want["documents"]);
    let (got, want) = (
        got["results"].as_array().expect("results"),
        want["results"].as_array().expect("results"),
    );
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        let ids = |v: &serde_json::Value| -> Vec<String> {
            v["hits"]
                .as_array()
                .expect("hits")
                .iter()
                .map(|h| h["id"].to_string())
                .collect()
        };
        assert_eq!(ids(g), ids(w), "{} / {}", w["mode"], w["query"]);
        for (a, b) in g["hits"]
            .as_array()
            .expect("hits")
            .iter()
            .zip(w["hits"].as_array().expect("hits"))
        {
            let (a, b) = (
                a["score"].as_f64().expect("score"),
                b["score"].as_f64().expect("score"),
            );
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }
}

/// What the demo page must show for the whole HotpotQA-100 corpus with the
/// pretrained SPLADE-tiny (no document encoding, as the demo starts): the
/// top 10 ids per query and mode. The Chromium test (`web/e2e/`) compares
/// the page against `tests/golden/demo-search.json`; `RLRAG_BLESS=1`
/// rewrites it.
#[test]
fn demo_answers_match_the_golden_file() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/hotpotqa100");
    let docs = Dataset::load(&path, None, None)
        .expect("hotpotqa100")
        .corpus;
    let options = EngineOptions {
        sparse_vectors: false,
        rerank_m: 0,
        ..EngineOptions::default()
    };
    let mut engine = Engine::new(models(false), options).expect("engine");
    add(&mut engine, &docs);
    let mut results = Vec::new();
    for q in &QUERIES[..2] {
        for mode in [SearchMode::Bot, SearchMode::Bm25, SearchMode::Hybrid] {
            let hits = search(&engine, q, 10, mode);
            results.push(serde_json::json!({
                "query": q, "mode": mode.name(), "ids": ids(&hits),
            }));
        }
    }
    let got = serde_json::json!({ "documents": docs.len(), "results": results });
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/demo-search.json");
    if std::env::var_os("RLRAG_BLESS").is_some() {
        let text = serde_json::to_string_pretty(&got).expect("json") + "\n";
        std::fs::write(&golden, text).expect("writes the golden file");
        return;
    }
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&golden).expect("golden file"))
            .expect("json");
    assert_eq!(got, want);
}

/// Polls `f` to completion with a waker that does nothing, counting the
/// polls that returned `Pending` (the future must wake itself to go on).
fn pending_polls<T>(f: impl Future<Output = T>) -> (T, usize) {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    let mut pending = 0;
    loop {
        match f.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return (v, pending),
            Poll::Pending => {
                pending += 1;
                assert!(pending < 10_000, "the future never finishes");
            }
        }
    }
}

#[test]
fn indexing_hands_control_back_between_chunks_and_reports_each() {
    let docs = corpus(150);
    let options = EngineOptions {
        sparse_vectors: false,
        rerank_m: 0,
        ..EngineOptions::default()
    };
    let mut engine = Engine::new(models(false), options).expect("engine");
    let mut progress = Vec::new();
    let (result, pending) = pending_polls(engine.add_documents(&docs, &mut |p| {
        progress.push((p.stage, p.done, p.total));
    }));
    result.expect("indexes");
    assert_eq!(engine.len(), 150);
    assert_eq!(
        progress,
        [
            ("tokens", 64, 150),
            ("tokens", 128, 150),
            ("tokens", 150, 150)
        ]
    );
    // Once after each chunk: a browser's event loop runs in between.
    assert_eq!(pending, 3);
    let title = &docs[100].title;
    let hits = search(&engine, title, 3, SearchMode::Bm25);
    assert!(
        ids(&hits).contains(&docs[100].id.as_str()),
        "{title}: {hits:?}"
    );
}

/// Dense search by HNSW: the graph answers (the probe compares it with
/// exact search), it is rebuilt after changes and on import, and a flat
/// engine has no probe.
#[test]
fn hnsw_dense_search_is_approximate_and_rebuilt() {
    let docs = corpus(60);
    let flat_options = EngineOptions {
        sparse_vectors: false,
        ..EngineOptions::default()
    };
    let mut flat = Engine::new(models(true), flat_options.clone()).expect("engine");
    add(&mut flat, &docs);
    assert!(flat.ann().is_none());
    let options = EngineOptions {
        dense_search: DenseSearch::Hnsw(HnswParams::default()),
        ..flat_options
    };
    let mut engine = Engine::new(models(true), options).expect("engine");
    add(&mut engine, &docs);
    let probe = engine.ann().expect("HNSW is approximate");
    for q in QUERIES {
        let v = run(probe.embed(q)).expect("embeds");
        let approx = probe.search_approximate(&v, 5).expect("ann");
        assert_eq!(
            approx[0].id,
            probe.search_exact(&v, 5).expect("exact")[0].id
        );
        assert_eq!(
            ids(&search(&engine, q, 5, SearchMode::Dense)),
            ids(&approx),
            "{q}"
        );
        assert_eq!(
            search(&engine, q, 1, SearchMode::Dense)[0].id,
            search(&flat, q, 1, SearchMode::Dense)[0].id
        );
    }
    // Removing a document rebuilds the graph without it.
    let top = search(&engine, QUERIES[0], 1, SearchMode::Dense)[0]
        .id
        .clone();
    engine.remove_documents(&[top.as_str()]);
    assert!(!ids(&search(&engine, QUERIES[0], 59, SearchMode::Dense)).contains(&top.as_str()));
    // The graph is not saved: an import builds it again.
    let again = Engine::import(models(true), &engine.export().expect("exports")).expect("imports");
    assert!(again.ann().is_some());
    for q in QUERIES {
        assert_eq!(
            search(&again, q, 10, SearchMode::Dense),
            search(&engine, q, 10, SearchMode::Dense)
        );
    }
}

/// The hybrid fuses the modes its options list, by their fusion; lists that
/// name itself, repeat a mode, or a mode the engine lacks are refused.
#[test]
fn hybrid_parts_and_fusion_are_options() {
    let docs = corpus(60);
    let options = EngineOptions {
        sparse_vectors: false,
        hybrid: vec![SearchMode::Bm25, SearchMode::Bot],
        fusion: rlrag::retriever::Fusion::Weighted,
        ..EngineOptions::default()
    };
    let mut engine = Engine::new(models(false), options).expect("engine");
    add(&mut engine, &docs);
    for q in QUERIES {
        let lists = [
            search(&engine, q, 100, SearchMode::Bm25),
            search(&engine, q, 100, SearchMode::Bot),
        ];
        let want = rlrag::retriever::fusion::fuse(
            &lists,
            &[1.0, 1.0],
            rlrag::retriever::Fusion::Weighted,
            10,
        );
        let got = search(&engine, q, 10, SearchMode::Hybrid);
        assert_eq!(ids(&got), ids(&want), "{q}");
    }
    for (hybrid, why) in [
        (vec![SearchMode::Hybrid], "each once"),
        (vec![SearchMode::Bm25, SearchMode::Bm25], "each once"),
        (vec![SearchMode::Bm25, SearchMode::Sparse], "sparseVectors"),
        (vec![SearchMode::Dense], "no dense model"),
    ] {
        let options = EngineOptions {
            sparse_vectors: false,
            hybrid,
            ..EngineOptions::default()
        };
        let err = Engine::new(models(false), options).expect_err("refused");
        assert!(err.to_string().contains(why), "{err}");
    }
    // The main model needs a sparse head, a dense one none.
    let (minilm, print) = model("minilm");
    let err = Engine::new(
        EngineModels {
            sparse: minilm,
            sparse_fingerprint: print,
            dense: None,
        },
        EngineOptions::default(),
    )
    .expect_err("dense model as the sparse one");
    assert!(err.to_string().contains("sparse head"), "{err}");
    let err = Engine::new(
        EngineModels {
            dense: Some(model("splade-tiny")),
            ..models(false)
        },
        EngineOptions::default(),
    )
    .expect_err("sparse model as the dense one");
    assert!(err.to_string().contains("sparse head"), "{err}");
}
