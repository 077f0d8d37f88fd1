//! The fuzz targets' seed corpus (`fuzz/seeds/<target>/`, run by
//! `scripts/fuzz.sh`): small, valid inputs in each target's layout, so the
//! fuzzer starts past every check. This test keeps them valid (each one
//! decodes as its target reads it);
//! `RLRAG_WRITE_SEEDS=1 cargo test --test fuzz_seeds` writes them anew.

#![allow(missing_docs, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::Device;
use futures_lite::future::block_on;
use rlrag_encoder::{Encoder, Prepared, SparseVector};
use rlrag_retriever::{
    Bm25Index, Bm25Params, Dataset, DatasetFormat, Document, Engine, EngineModels, EngineOptions,
    FlatIndex, SavedIndex, SearchMode, SparseIndex, Split, Weighting,
};
use rlrag_router::policy::PolicyConfig;
use rlrag_router::{LearnedPolicy, RouterConfig};
use serde_json::{Value, json};

/// The fingerprint the fuzz harness imports engines with
/// (`fuzz/src/lib.rs`, `SEED_FINGERPRINT`).
const SEED_FINGERPRINT: u64 = 7;

fn seeds() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds")
}

fn models() -> EngineModels {
    let dir = rlrag_encoder::models::pretrained("splade-tiny");
    let sparse = Encoder::from_dir(&dir, &Device::flex())
        .unwrap_or_else(|e| panic!("{e}: run scripts/fetch-models.sh"));
    EngineModels {
        sparse: Arc::new(sparse),
        sparse_fingerprint: SEED_FINGERPRINT,
        dense: None,
    }
}

fn write(target: &str, name: &str, sel: Option<u8>, bytes: &[u8]) {
    let dir = seeds().join(target);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut seed: Vec<u8> = sel.into_iter().collect();
    seed.extend_from_slice(bytes);
    std::fs::write(dir.join(name), seed).unwrap_or_else(|e| panic!("{name}: {e}"));
}

/// Two files as one input: the first one's length (two little-endian
/// bytes), then both.
fn pair(first: &[u8], second: &[u8]) -> Vec<u8> {
    let len = u16::try_from(first.len()).unwrap_or_else(|_| panic!("first file too long"));
    let mut out = len.to_le_bytes().to_vec();
    out.extend_from_slice(first);
    out.extend_from_slice(second);
    out
}

fn docs() -> Vec<Document> {
    vec![
        Document::new("a", "Paris", "Paris is the capital of France."),
        Document::new("b", "Berlin", "Berlin is the capital of Germany."),
        Document::new("c", "Rhine", "The Rhine flows through Germany and France."),
    ]
}

/// SPLADE-tiny's `config.json` and `tokenizer.json` cut down to a
/// 24-token vocabulary (same structure, small enough to mutate quickly).
fn small_model_files() -> (Vec<u8>, Vec<u8>) {
    let dir = rlrag_encoder::models::pretrained("splade-tiny");
    let read = |name: &str| -> Value {
        let bytes = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let words = [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "paris", "is", "the", "capital", "of",
        "france", ".", "berlin", "germany", "rhine", "flows", "through", "and", "##s", "##e", "a",
        "b", "c", ",",
    ];
    let id = |w: &str| words.iter().position(|x| *x == w).unwrap_or(0);
    let mut tok = read("tokenizer.json");
    tok["model"]["vocab"] = words
        .iter()
        .enumerate()
        .map(|(i, w)| ((*w).to_owned(), json!(i)))
        .collect();
    if let Some(added) = tok["added_tokens"].as_array_mut() {
        for t in added {
            let w = t["content"].as_str().unwrap_or("").to_owned();
            t["id"] = json!(id(&w));
        }
    }
    for special in ["[CLS]", "[SEP]"] {
        tok["post_processor"]["special_tokens"][special]["ids"] = json!([id(special)]);
    }
    let mut config = read("config.json");
    config["vocab_size"] = json!(words.len());
    let bytes = |v: &Value| serde_json::to_vec(v).unwrap_or_else(|e| panic!("{e}"));
    (bytes(&config), bytes(&tok))
}

fn router_files() -> (Vec<u8>, Vec<u8>) {
    let device = Device::flex();
    device.seed(8);
    let net = PolicyConfig::new().with_hidden(8).init(&device);
    let weights = LearnedPolicy::new(net, device)
        .weights_safetensors()
        .unwrap_or_else(|e| panic!("{e}"));
    let config = json!({
        "version": 2, "hidden": 8, "features": rlrag_router::features::FEATURES,
        "confidence": {"weights": [-3.7, 2.5, -1.9, -0.5, 0.6, -1.4, 1.5], "bias": 3.2},
        "pipeline": {"k": 10, "max_hops": 3, "confidence_stop": 0.9, "memory_threshold": 0.9,
                     "near_duplicate": 0.8, "sensing_k": 3, "sensing_titles": 2,
                     "sensing_terms": 3, "local_weight": 0.5, "sensing_weight": 0.0},
        "network_bar": 0.0
    });
    (
        serde_json::to_vec(&config).unwrap_or_else(|e| panic!("{e}")),
        weights,
    )
}

fn write_all() {
    let mut bm25 = Bm25Index::new(Bm25Params::default(), Default::default()).expect("bm25");
    bm25.add_documents(&docs()).expect("indexed");
    let bytes = bm25.to_bytes().expect("bm25 bytes");
    write("index_file", "bm25", Some(0), &bytes);
    write("index_file", "bm25-raw", Some(0x80), &bytes);

    let mut sparse = SparseIndex::new(Weighting::Learned, 64).expect("sparse");
    let vectors = ["a", "b", "c"].iter().enumerate().map(|(i, id)| {
        let i = i as u32;
        let terms = vec![(i, 1.0), (10 + i, 0.5), (63, 0.25)];
        ((*id).to_owned(), SparseVector { terms })
    });
    sparse
        .add(&vectors.collect::<Vec<_>>())
        .expect("sparse added");
    let bytes = sparse.to_bytes().expect("sparse bytes");
    write("index_file", "sparse", Some(1), &bytes);
    write("index_file", "sparse-raw", Some(0x81), &bytes);

    let mut flat = FlatIndex::new(4);
    let rows = [
        ("a", [1.0, 0.0, 0.0, 0.0]),
        ("b", [0.0, 1.0, 0.0, 0.0]),
        ("c", [0.6, 0.8, 0.0, 0.0]),
    ];
    flat.add(&rows.map(|(id, v)| (id.to_owned(), v.to_vec())))
        .expect("dense added");
    let bytes = flat.to_bytes().expect("dense bytes");
    write("index_file", "dense", Some(2), &bytes);
    write("index_file", "dense-raw", Some(0x82), &bytes);

    for (name, options) in [
        ("default", EngineOptions::default()),
        (
            "hybrid",
            EngineOptions {
                sparse_vectors: true,
                rerank_m: 2,
                hybrid: vec![SearchMode::Bm25, SearchMode::Sparse],
                ..EngineOptions::default()
            },
        ),
    ] {
        let mut engine = Engine::new(models(), options).expect("engine");
        block_on(engine.add_documents(&docs(), &mut |_| {})).expect("added");
        let bytes = engine.export().expect("exported");
        write("engine_import", name, Some(0), &bytes);
    }

    let (config, tokenizer) = small_model_files();
    write("model_files", "small", None, &pair(&config, &tokenizer));
    let (config, weights) = router_files();
    write("router_files", "hidden8", None, &pair(&config, &weights));
    write("safetensors", "policy", None, &weights);
    let search = json!({"hits": [[{"id": "a", "title": "Paris", "text": "Paris is the capital.", "score": 1.5}]]});
    write(
        "router_replies",
        "search",
        Some(0),
        &serde_json::to_vec(&search).unwrap_or_default(),
    );
    let chat = json!({"choices": [{"message": {"role": "assistant", "content": "Paris"}}]});
    write(
        "router_replies",
        "chat",
        Some(0),
        &serde_json::to_vec(&chat).unwrap_or_default(),
    );
    let logprobs = json!({"choices": [{"text": "Q: capital? A: Paris", "logprobs": {
        "tokens": ["Q", ":", " capital", "?", " A", ":", " Paris"],
        "token_logprobs": [null, -0.5, -2.0, -0.1, -0.3, -0.01, -0.7],
        "text_offset": [0, 1, 2, 10, 11, 13, 14]}}]});
    write(
        "router_replies",
        "logprobs",
        Some(20),
        &serde_json::to_vec(&logprobs).unwrap_or_default(),
    );
    let beir = [
        "{\"_id\": \"d1\", \"title\": \"Paris\", \"text\": \"Paris is the capital of France.\"}\n{\"_id\": 2, \"text\": \"Berlin.\", \"metadata\": {}}\n",
        "{\"_id\": \"q1\", \"text\": \"capital of France\"}\n{\"_id\": \"q2\", \"text\": \"Berlin\"}\n",
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\t2\t1\n",
    ];
    let files = |parts: &[&str]| {
        parts
            .iter()
            .map(|p| p.as_bytes())
            .collect::<Vec<_>>()
            .join(&0xffu8)
    };
    write("datasets", "beir", Some(0), &files(&beir));
    let qa = [
        "{\"_id\": \"0\", \"title\": \"Paris\", \"text\": \"Paris is the capital of France.\"}\n",
        "{\"id\": 0, \"question\": \"What is the capital of France?\", \"answers\": [\"Paris\"], \"retrieved_doc_ids\": [0]}\n",
    ];
    write("datasets", "qa", Some(1), &files(&qa));
    let hotpot = [
        r#"[{"question": "Which city is the capital of France?", "answer": "Paris", "_id": "h1", "supporting_facts": [["Paris", 0]], "context": [["Paris", ["Paris is the capital of France.", " It is on the Seine."]], ["Berlin", ["Berlin is in Germany."]]]}]"#,
        r#"{"Paris": ["Paris is the capital of France."], "Berlin": ["Berlin is in Germany."]}"#,
    ];
    write("datasets", "hotpotqa", Some(2), &files(&hotpot));
    let cluster = json!({"hits": {"hits": [{"_id": "a", "_score": 1.5,
        "_source": {"title": "Paris", "text": "Paris is the capital."}}]}});
    write(
        "router_replies",
        "cluster-search",
        Some(4),
        &serde_json::to_vec(&cluster).unwrap_or_default(),
    );
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/gguf/tiny.gguf");
    write(
        "gguf",
        "tiny.gguf",
        None,
        &std::fs::read(&tiny).unwrap_or_else(|e| panic!("{}: {e}", tiny.display())),
    );
    write("generator_dir", "tiny", None, &tiny_generator_dir());
    write("router_replies", "sub-queries", Some(0),
        b"Here are the queries:\n1. Who directed Jaws?\n2) \"Spielberg birthplace\"\n- Query: Jaws year\nyes");
}

/// A tiny generator's model directory as the `generator_dir` target reads
/// it: a seeded random two-layer decoder over a byte-level vocabulary (the
/// 256 bytes in GPT-2's alphabet, then the ChatML control tokens), no
/// merges.
fn tiny_generator_dir() -> Vec<u8> {
    use rlrag::generator::generate::{ChatTemplate, Generator};
    use rlrag::generator::llama::{Llama, LlamaConfig, Rope};
    use rlrag::generator::tokenizer::GgufTokenizer;
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut next = 256u32;
    let mut vocab = serde_json::Map::new();
    for b in 0..=255u8 {
        let c = if printable(b) {
            char::from(b)
        } else {
            next += 1;
            char::from_u32(next - 1).expect("a char")
        };
        vocab.insert(c.to_string(), json!(b));
    }
    let control = ["<|im_start|>", "<|im_end|>"];
    let mut added = Vec::new();
    for (i, name) in control.iter().enumerate() {
        vocab.insert((*name).to_owned(), json!(256 + i));
        added.push(
            json!({"id": 256 + i, "content": name, "single_word": false, "lstrip": false,
                          "rstrip": false, "normalized": false, "special": true}),
        );
    }
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true});
    let tokenizer = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null, "pre_tokenizer": byte_level, "post_processor": null, "decoder": byte_level,
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": vocab, "merges": []},
    });
    let tokenizer = GgufTokenizer::from_json(&tokenizer.to_string()).expect("a tokenizer");
    let config = LlamaConfig {
        architecture: "llama".into(),
        vocab_size: 258,
        hidden: 8,
        layers: 2,
        heads: 2,
        kv_heads: 1,
        feed_forward: 12,
        rms_eps: 1e-5,
        rope_base: 10_000.0,
        rope: Rope::Adjacent,
        context: 32,
        tied: true,
        qkv_bias: false,
    };
    let model = Llama::random(config, 3, &Device::flex()).expect("a model");
    let template = ChatTemplate {
        default_system: Some("Be brief.".into()),
    };
    let generator = Generator::new(model, tokenizer, template, vec![257]).expect("a generator");
    let files = generator.dir_files().expect("files");
    let get = |name: &str| {
        files
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, b)| b.clone())
            .expect("written")
    };
    let mut out = get("config.json");
    out.push(0xff);
    out.extend(get("tokenizer.json"));
    out.push(0xff);
    out.extend(get("model.safetensors"));
    out
}

fn files(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = seeds().join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.unwrap_or_else(|e| panic!("{e}")).path();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path.display().to_string(), bytes)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

fn unpair(input: &[u8]) -> (&[u8], &[u8]) {
    let len = usize::from(u16::from_le_bytes([input[0], input[1]]));
    input[2..].split_at(len)
}

/// Every seed is a valid input of its target: it decodes, so the fuzzer
/// starts from inputs that reach the code behind the checks.
#[test]
fn every_seed_decodes() {
    if std::env::var_os("RLRAG_WRITE_SEEDS").is_some() {
        write_all();
    }
    for (name, seed) in files("index_file") {
        let (sel, bytes) = (seed[0] & 0x7f, &seed[1..]);
        let ok = match sel % 3 {
            0 => Bm25Index::from_bytes(bytes).map(|_| ()),
            1 => SparseIndex::from_bytes(bytes).map(|_| ()),
            _ => FlatIndex::from_bytes(bytes).map(|_| ()),
        };
        ok.unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for (name, seed) in files("engine_import") {
        let engine = Engine::import(models(), &seed[1..]).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(engine.len(), 3, "{name}");
    }
    for (name, seed) in files("model_files") {
        let (config, tokenizer) = unpair(&seed);
        let prepared = Prepared::parse(config, tokenizer).unwrap_or_else(|e| panic!("{name}: {e}"));
        let ids = prepared
            .input_ids("Paris is the capital of France.")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ids.len(), 9, "{name}: {ids:?}");
    }
    for (name, seed) in files("router_files") {
        let (config, weights) = unpair(&seed);
        let config = RouterConfig::from_json(config).unwrap_or_else(|e| panic!("{name}: {e}"));
        LearnedPolicy::load(&config, weights, &Device::flex())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for (name, seed) in files("gguf") {
        let file =
            rlrag::generator::gguf::Gguf::parse(&seed).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!file.tensors.is_empty(), "{name}");
        for t in &file.tensors {
            file.tensor(&seed, &t.name)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
    for (name, seed) in files("generator_dir") {
        let mut parts = seed.splitn(3, |&b| b == 0xff);
        let (config, tokenizer, weights) = (
            parts.next().expect("config"),
            parts.next().expect("tokenizer"),
            parts.next().expect("weights"),
        );
        let generator = rlrag::generator::generate::Generator::from_dir_files(
            config,
            weights.to_vec(),
            tokenizer,
            &Device::flex(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let out = generator
            .generate("Paris is", &Default::default(), &mut |_| true)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!out.tokens.is_empty(), "{name}");
    }
    for (name, seed) in files("safetensors") {
        rlrag_encoder::canonical_safetensors(&seed).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for (name, seed) in files("datasets") {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let parts: Vec<&[u8]> = seed[1..].splitn(3, |&b| b == 0xff).collect();
        let put = |file: &str, bytes: &[u8]| {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap_or(dir.path()))
                .unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{e}"));
        };
        let loaded = match seed[0] % 3 {
            0 => {
                put("corpus.jsonl", parts[0]);
                put("queries.jsonl", parts[1]);
                put("qrels/test.tsv", parts[2]);
                Dataset::load(dir.path(), Some(DatasetFormat::Beir), Some(&Split::Test))
            }
            1 => {
                put("corpus.jsonl", parts[0]);
                put("qa.jsonl", parts[1]);
                Dataset::load(dir.path(), Some(DatasetFormat::Qa), None)
            }
            _ => {
                put("questions.json", parts[0]);
                put("corpus.json", parts[1]);
                Dataset::load(
                    &dir.path().join("questions.json"),
                    Some(DatasetFormat::Hotpotqa),
                    None,
                )
            }
        };
        let ds = loaded.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!ds.queries.is_empty() && !ds.corpus.is_empty(), "{name}");
    }
    for (name, seed) in files("router_replies") {
        if name.ends_with("cluster-search") {
            let hits = rlrag_router::opensearch::parse_search(&seed[1..], 10)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(hits.len(), 1, "{name}");
        } else if name.ends_with("search") {
            rlrag_router::source::parse_reply(&seed[1..], 1, 10)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
