//! Dense search at scale (`trainer bench-dense`): a prefix of a large corpus
//! (`scripts/build-scale-corpus.sh`) encoded by a real dense model, then the
//! exact flat index and the HNSW graph (`instant-distance`) built over it,
//! each HNSW setting's build time, memory, single-thread query latency and
//! recall@10 against exact. The vectors are written out (raw little-endian
//! `f32` rows beside a JSON description) so that faiss-HNSW and hnswlib run
//! on the very same vectors and queries (`scripts/bench-dense.sh`).
//!
//! Encoding is the slow part (all-MiniLM-L6-v2 on a CPU): passages are
//! appended to the vector file as they are encoded, so a stopped run resumes,
//! and a longer prefix of the same corpus reuses a shorter one's vectors.

use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rlrag_encoder::models::pretrained;
use rlrag_retriever::dense_index::recall_against_exact;
use rlrag_retriever::{DatasetFormat, FlatIndex, Hit, HnswParams, LiveHnsw};
use rlrag_reward::latency::{Latency, mib, resident_bytes};
use serde::{Deserialize, Serialize};

use crate::EvalError;
use crate::error::{io, setting};
use crate::models::{SparseOverrides, load_encoder};
use crate::progress::Progress;
use crate::scale::timed;

/// What `bench-dense` measures.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct DenseBenchConfig {
    /// The corpus and its queries (a BEIR directory: target/scale).
    #[cfg_attr(feature = "clap", arg(long))]
    pub data: PathBuf,
    /// Dataset format; detected from the path when omitted.
    #[cfg_attr(feature = "clap", arg(long))]
    pub format: Option<DatasetFormat>,
    /// Passages indexed (a prefix of the corpus; past its end, all of it).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 100_000))]
    pub size: usize,
    /// Queries timed (the dataset's first ones).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 300))]
    pub queries: usize,
    /// The dense model; default the pretrained all-MiniLM-L6-v2.
    #[cfg_attr(feature = "clap", arg(long))]
    pub model: Option<PathBuf>,
    /// Where the encoded vectors are kept (resumable; default: `--data`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub vectors: Option<PathBuf>,
    /// HNSW candidate list sizes searched (`instant-distance` fixes it at
    /// build time, so each is a build), comma-separated.
    #[cfg_attr(
        feature = "clap",
        arg(long, value_delimiter = ',', default_value = "16,32,64,128")
    )]
    pub ef_search: Vec<usize>,
    /// HNSW candidate list size while building.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 200))]
    pub ef_construction: usize,
    /// Passages handed to the encoder at once (it groups them into forward
    /// passes of similar length: more at once pads less) and appended to
    /// the vector file together.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 512))]
    pub batch: usize,
}

/// One index setting.
#[derive(Debug, Serialize)]
pub struct DenseRow {
    /// The engine and setting.
    pub index: String,
    /// Seconds to build it.
    pub build_s: f64,
    /// Growth of the process's resident memory while building it, MiB.
    pub memory_mib: f64,
    /// Single-thread query latency, top 10.
    pub latency_ms: Latency,
    /// Queries per second, one thread.
    pub queries_per_s: f64,
    /// Recall@10 against the exact top 10.
    #[serde(rename = "recall@10")]
    pub recall_at_10: f64,
    /// HNSW only: adding one passage beside the graph (the last
    /// [`HELD_BACK`] passages of the corpus, added one at a time after the
    /// graph was built over the others).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add_ms: Option<Latency>,
}

/// Passages added after the graph is built (at most a tenth of them).
pub const HELD_BACK: usize = 200;

/// Where the vectors are, for the other engines (`bench_hnsw.py`).
#[derive(Debug, Serialize)]
pub struct VectorFiles {
    /// Passage vectors: `documents × dim` little-endian `f32`, row-major
    /// (the file may hold more rows than `documents`: use the first).
    pub passages: PathBuf,
    /// Query vectors: `queries × dim`.
    pub queries: PathBuf,
    /// The exact top 10 of each query (row numbers), from the flat index.
    pub exact: Vec<Vec<usize>>,
}

/// The whole run.
#[derive(Debug, Serialize)]
pub struct DenseReport {
    /// Vectors indexed.
    pub documents: usize,
    /// Their dimension.
    pub dim: usize,
    /// Queries timed.
    pub queries: usize,
    /// HNSW candidate list size while building (every graph).
    pub ef_construction: usize,
    /// The model's directory.
    pub model: PathBuf,
    /// Passages encoded in this run (the rest came from the vector file),
    /// and passages per second while encoding them.
    pub encoded: usize,
    /// Passages per second (0 when nothing was encoded).
    pub encode_per_s: f64,
    /// One row per index setting, the exact flat index first.
    pub indexes: Vec<DenseRow>,
    /// The vectors, for the other engines.
    pub files: VectorFiles,
}

/// What the vector file holds: the model and corpus it came from.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct VectorMeta {
    model_fingerprint: u64,
    dim: usize,
    /// The first passage's id: a different corpus in the same place is not
    /// resumed.
    first_id: String,
}

/// Vectors already in `path` (whole rows only; a row cut short by a stopped
/// run is dropped and the file truncated to the rows it holds).
fn read_rows(path: &Path, dim: usize, want: usize) -> Result<Vec<f32>, EvalError> {
    let Ok(mut file) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    else {
        return Ok(Vec::new());
    };
    let len = file.metadata().map_err(io("read", path))?.len();
    let row = (dim * 4) as u64;
    let rows = len / row;
    if rows * row != len {
        file.set_len(rows * row).map_err(io("truncate", path))?;
    }
    let take = rows.min(want as u64);
    let mut bytes = vec![0u8; (take * row) as usize];
    file.seek(SeekFrom::Start(0)).map_err(io("read", path))?;
    file.read_exact(&mut bytes).map_err(io("read", path))?;
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

fn to_bytes(rows: &[Vec<f32>]) -> Vec<u8> {
    rows.iter()
        .flatten()
        .flat_map(|x| x.to_le_bytes())
        .collect()
}

/// Run the measurements.
pub fn run(config: &DenseBenchConfig, progress: &dyn Progress) -> Result<DenseReport, EvalError> {
    if config.size == 0 {
        return Err(setting("--size", "--size is at least 1 passage"));
    }
    if config.ef_search.is_empty() || config.ef_search.iter().any(|&e| e < 10) {
        return Err(setting(
            "--ef-search",
            "--ef-search values are at least 10 (the hits asked for)",
        ));
    }
    if config.batch == 0 {
        return Err(setting("--batch", "--batch is at least 1"));
    }
    let ds = crate::datasets::load(&config.data, config.format, None)?;
    let docs = &ds.corpus[..config.size.min(ds.corpus.len())];
    let Some(first) = docs.first() else {
        return Err(setting("--data", "--data has an empty corpus"));
    };
    let query_texts: Vec<&str> = ds
        .queries
        .iter()
        .take(config.queries)
        .map(|q| q.text.as_str())
        .collect();
    if query_texts.is_empty() {
        return Err(setting("--data", "--data has no queries"));
    }
    let model = config.model.clone().unwrap_or_else(|| pretrained("minilm"));
    let loaded = load_encoder(
        &model,
        SparseOverrides::default(),
        false,
        &burn::tensor::Device::flex(),
    )?;
    let encoder = loaded.encoder;
    let dim = encoder.config().bert.hidden_size;

    let dir = config
        .vectors
        .clone()
        .unwrap_or_else(|| config.data.clone());
    std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    let passages = dir.join("dense-passages.f32");
    let meta_path = dir.join("dense-passages.json");
    let meta = VectorMeta {
        model_fingerprint: loaded.fingerprint,
        dim,
        first_id: first.id.clone(),
    };
    let resumable = std::fs::read(&meta_path)
        .ok()
        .and_then(|b| serde_json::from_slice::<VectorMeta>(&b).ok())
        .is_some_and(|m| m == meta);
    if !resumable {
        // Another model or corpus: start the file again.
        std::fs::write(&passages, b"").map_err(io("write", &passages))?;
        let json = serde_json::to_vec_pretty(&meta)?;
        std::fs::write(&meta_path, json).map_err(io("write", &meta_path))?;
    }
    let mut data = read_rows(&passages, dim, docs.len())?;
    let have = data.len() / dim;
    let encoded = docs.len() - have;
    let t = Instant::now();
    if encoded > 0 {
        progress.note(&format!(
            "encoding {encoded} passages ({have} already in {})",
            passages.display()
        ));
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&passages)
            .map_err(io("append", &passages))?;
        let mut bar = progress.bar(encoded as u64, "encoding");
        for chunk in docs[have..].chunks(config.batch) {
            let texts: Vec<String> = chunk.iter().map(|d| d.full_text()).collect();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let rows = encoder.encode_dense(&refs)?;
            file.write_all(&to_bytes(&rows))
                .map_err(io("append", &passages))?;
            data.extend(rows.into_iter().flatten());
            bar.inc(chunk.len() as u64);
        }
        file.sync_all().map_err(io("sync", &passages))?;
        bar.finish();
    }
    let encode_per_s = if encoded > 0 {
        encoded as f64 / t.elapsed().as_secs_f64().max(1e-9)
    } else {
        0.0
    };
    let query_vectors = encoder.encode_dense(&query_texts)?;
    let query_file = dir.join("dense-queries.f32");
    std::fs::write(&query_file, to_bytes(&query_vectors)).map_err(io("write", &query_file))?;

    let row_of: std::collections::HashMap<&str, usize> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| (d.id.as_str(), i))
        .collect();
    let before = resident_bytes();
    let t = Instant::now();
    let mut flat = FlatIndex::new(dim);
    // In slices, so that the memory measured is the index's, not a second
    // copy of every vector on the way in.
    const ADD_AT_ONCE: usize = 4096;
    for (chunk, rows) in docs.chunks(ADD_AT_ONCE).zip(data.chunks(ADD_AT_ONCE * dim)) {
        let pairs: Vec<(String, Vec<f32>)> = chunk
            .iter()
            .zip(rows.chunks_exact(dim))
            .map(|(d, v)| (d.id.clone(), v.to_vec()))
            .collect();
        flat.add(&pairs)?;
    }
    drop(data);
    let build = t.elapsed().as_secs_f64();
    let memory = resident_bytes().saturating_sub(before);
    let (lat, exact) = timed(query_vectors.len(), |i| {
        Ok(flat.search(&query_vectors[i], 10)?)
    })?;
    let row = |index: String, build_s: f64, memory: u64, lat: Vec<f64>, hits: &[Vec<Hit>]| {
        let total: f64 = lat.iter().sum();
        DenseRow {
            index,
            build_s,
            memory_mib: mib(memory),
            queries_per_s: lat.len() as f64 / (total / 1e3).max(1e-9),
            latency_ms: Latency::of(lat),
            recall_at_10: recall_against_exact(&exact, hits, 10),
            add_ms: None,
        }
    };
    let mut indexes = vec![row("rlrag flat (exact)".into(), build, memory, lat, &exact)];
    // The graph is built over all but the last `held` passages; those are
    // then added one at a time, as a live corpus grows, into the exact
    // segment beside it (`LiveHnsw`), and the queries search both.
    let held = (docs.len() / 10).min(HELD_BACK);
    let mut graph_part = FlatIndex::new(dim);
    graph_part.add(&flat.rows(0..docs.len() - held))?;
    let added = flat.rows(docs.len() - held..docs.len());
    for &ef_search in &config.ef_search {
        progress.note(&format!(
            "building HNSW over {} × {dim} (ef_construction {}, ef_search {ef_search}), then adding {held}",
            docs.len() - held,
            config.ef_construction
        ));
        let params = HnswParams {
            ef_construction: config.ef_construction,
            ef_search,
            ..HnswParams::default()
        };
        let before = resident_bytes();
        let t = Instant::now();
        let mut live = LiveHnsw::build(&graph_part, params, usize::MAX);
        let build = t.elapsed().as_secs_f64();
        let memory = resident_bytes().saturating_sub(before);
        let mut adds = Vec::with_capacity(held);
        for doc in &added {
            let t = Instant::now();
            live.add(std::slice::from_ref(doc))?;
            adds.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let (lat, hits) = timed(query_vectors.len(), |i| {
            Ok(live.search(&query_vectors[i], 10)?)
        })?;
        let label = format!(
            "rlrag hnsw (instant-distance, M 32, ef_construction {}, ef_search {ef_search})",
            config.ef_construction
        );
        let mut r = row(label, build, memory, lat, &hits);
        r.add_ms = (!adds.is_empty()).then(|| Latency::of(adds));
        indexes.push(r);
    }
    let exact_rows = exact
        .iter()
        .map(|hits| {
            hits.iter()
                .filter_map(|h| row_of.get(h.id.as_str()).copied())
                .collect()
        })
        .collect();
    Ok(DenseReport {
        documents: docs.len(),
        dim,
        queries: query_vectors.len(),
        ef_construction: config.ef_construction,
        model,
        encoded,
        encode_per_s,
        indexes,
        files: VectorFiles {
            passages,
            queries: query_file,
            exact: exact_rows,
        },
    })
}

impl DenseReport {
    /// A Markdown table of every measurement.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{} × {} vectors ({}), {} queries, one thread\n\n| index | build s | memory MiB | p50 ms | p95 ms | q/s | recall@10 | add p50 ms |\n|---|---|---|---|---|---|---|---|\n",
            self.documents,
            self.dim,
            self.model.display(),
            self.queries
        );
        for r in &self.indexes {
            out += &format!(
                "| {} | {:.1} | {:.0} | {:.3} | {:.3} | {:.0} | {:.4} | {} |\n",
                r.index,
                r.build_s,
                r.memory_mib,
                r.latency_ms.p50,
                r.latency_ms.p95,
                r.queries_per_s,
                r.recall_at_10,
                r.add_ms
                    .as_ref()
                    .map_or(String::new(), |a| format!("{:.4}", a.p50))
            );
        }
        out
    }
}
