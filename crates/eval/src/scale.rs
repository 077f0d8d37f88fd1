//! The indexes at scale (`trainer bench-scale`): for growing prefixes of a
//! large corpus (`scripts/build-scale-corpus.sh`), each index's build time,
//! memory and single-thread query latency — BM25, the bag-of-tokens index
//! searched exhaustively and by block-max pruning (exact, and approximate
//! at each alpha with its recall@10 against exact) — and, over random unit
//! vectors, what adding one document to the HNSW side costs with the exact
//! segment beside the graph against the rebuild it replaced.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rlrag_encoder::SparseVector;
use rlrag_encoder::models::pretrained;
use rlrag_retriever::block_max::{BlockMaxIndex, Ordering};
use rlrag_retriever::rng::SplitMix64;
use rlrag_retriever::{
    Bm25Index, DatasetFormat, FlatIndex, Hit, HnswParams, LiveHnsw, SparseIndex, Weighting,
};
use rlrag_reward::latency::{Latency, mib, resident_bytes};
use rlrag_reward::retrieval::ndcg_at_k;
use serde::Serialize;

use crate::EvalError;
use crate::cache::JsonlCache;
use crate::error::setting;
use crate::models::{SparseOverrides, load_encoder};
use crate::progress::Progress;

/// What `bench-scale` measures.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct ScaleBenchConfig {
    /// The corpus and its judged queries (a BEIR directory:
    /// scripts/build-scale-corpus.sh writes target/scale).
    #[cfg_attr(feature = "clap", arg(long))]
    pub data: PathBuf,
    /// Dataset format; detected from the path when omitted.
    #[cfg_attr(feature = "clap", arg(long))]
    pub format: Option<DatasetFormat>,
    /// Corpus sizes measured (prefixes of the corpus; a size past its end
    /// is the whole corpus), comma-separated.
    #[cfg_attr(
        feature = "clap",
        arg(long, value_delimiter = ',', default_value = "100000,1000000")
    )]
    pub sizes: Vec<usize>,
    /// Queries timed (the dataset's first ones).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 300))]
    pub queries: usize,
    /// Documents per block-max block.
    #[cfg_attr(
        feature = "clap",
        arg(long, default_value_t = rlrag_retriever::block_max::DEFAULT_BLOCK_SIZE)
    )]
    pub block_size: usize,
    /// Approximate block-max pruning at these alphas (below 1).
    #[cfg_attr(
        feature = "clap",
        arg(long, value_delimiter = ',', default_value = "0.9,0.7")
    )]
    pub alphas: Vec<f32>,
    /// The sparse model encoding the queries (its tokenizer makes the
    /// bags); default the pretrained SPLADE-tiny.
    #[cfg_attr(feature = "clap", arg(long))]
    pub model: Option<PathBuf>,
    /// Random unit vectors (384 dimensions) for the HNSW add latency (0: skip).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0))]
    pub dense: usize,
    /// Also the learned-sparse index (the model's own document weights,
    /// exhaustive and block-max) at every size up to this many passages,
    /// encoded once and kept in `--data` (resumable: encoding is the slow
    /// part; 0: skip).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0))]
    pub learned: usize,
}

/// A passage's learned-sparse vector, as the cache keeps it.
#[derive(Serialize, serde::Deserialize)]
struct EncodedPassage {
    id: String,
    terms: Vec<(u32, f32)>,
}

/// One index at one size.
#[derive(Debug, Serialize)]
pub struct IndexRow {
    /// What was built and searched.
    pub index: String,
    /// Seconds to build it (tokenisation included).
    pub build_s: f64,
    /// Growth of the process's resident memory while building it, MiB
    /// (what the index holds, plus what the allocator kept).
    pub memory_mib: f64,
    /// Single-thread query latency, top 10 (query encoding excluded).
    pub latency_ms: Latency,
    /// Queries per second, one thread.
    pub queries_per_s: f64,
    /// Mean nDCG@10 over the judged queries.
    #[serde(rename = "ndcg@10")]
    pub ndcg_at_10: f64,
    /// Block-max only: mean blocks scored and blocks with a positive bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocks: Option<(f64, f64)>,
    /// Approximate block-max only: recall@10 against the exact top 10.
    #[serde(rename = "recall@10_vs_exact", skip_serializing_if = "Option::is_none")]
    pub recall_at_10: Option<f64>,
}

/// Every index at one corpus size.
#[derive(Debug, Serialize)]
pub struct SizeReport {
    /// Documents indexed.
    pub documents: usize,
    /// The indexes.
    pub indexes: Vec<IndexRow>,
}

/// Adding to the HNSW side.
#[derive(Debug, Serialize)]
pub struct DenseAddReport {
    /// Vectors in the graph.
    pub vectors: usize,
    /// Dimensions.
    pub dim: usize,
    /// Seconds to build the graph (what every add cost before the segment).
    pub rebuild_s: f64,
    /// One add into the exact segment beside the graph.
    pub add_ms: Latency,
    /// A search with that segment (and its tombstones) beside the graph.
    pub search_ms: Latency,
}

/// The whole run.
#[derive(Debug, Serialize)]
pub struct ScaleReport {
    /// Passages in the corpus.
    pub corpus: usize,
    /// Queries timed.
    pub queries: usize,
    /// Documents per block-max block.
    pub block_size: usize,
    /// Per corpus size.
    pub sizes: Vec<SizeReport>,
    /// The HNSW add latency (with --dense).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dense: Option<DenseAddReport>,
}

/// Time `search` on every query (by number); latencies in ms and the hits.
pub(crate) fn timed(
    n: usize,
    mut search: impl FnMut(usize) -> Result<Vec<Hit>, EvalError>,
) -> Result<(Vec<f64>, Vec<Vec<Hit>>), EvalError> {
    let mut latencies = Vec::with_capacity(n);
    let mut hits = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        let h = search(i)?;
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
        hits.push(h);
    }
    Ok((latencies, hits))
}

/// Run the measurements.
pub fn run(config: &ScaleBenchConfig, progress: &dyn Progress) -> Result<ScaleReport, EvalError> {
    if config.sizes.is_empty() || config.sizes.contains(&0) {
        return Err(setting(
            "--sizes",
            "--sizes lists corpus sizes of at least 1",
        ));
    }
    if config.alphas.iter().any(|a| !(*a > 0.0 && *a < 1.0)) {
        return Err(setting("--alphas", "approximate alphas lie in (0, 1)"));
    }
    let ds = crate::datasets::load(&config.data, config.format, None)?;
    let dir = config
        .model
        .clone()
        .unwrap_or_else(|| pretrained("splade-tiny"));
    let loaded = load_encoder(
        &dir,
        SparseOverrides::default(),
        true,
        &burn::tensor::Device::flex(),
    )?;
    let encoder = loaded.encoder;
    let vocab = encoder.config().bert.vocab_size as u32;
    let queries: Vec<_> = ds.queries.iter().take(config.queries).collect();
    if queries.is_empty() {
        return Err(setting("--data", "the dataset has no queries"));
    }
    let texts: Vec<&str> = queries.iter().map(|q| q.text.as_str()).collect();
    progress.note(&format!("encoding {} queries", texts.len()));
    let vectors: Vec<SparseVector> = encoder.encode_sparse(&texts)?;
    let ndcg = |hits: &[Vec<Hit>]| -> f64 {
        let judged: Vec<f64> = queries
            .iter()
            .zip(hits)
            .filter(|(q, _)| !q.qrels.is_empty())
            .map(|(q, h)| {
                let ids: Vec<&str> = h.iter().map(|h| h.id.as_str()).collect();
                ndcg_at_k(&ids, &q.qrels, 10)
            })
            .collect();
        judged.iter().sum::<f64>() / judged.len().max(1) as f64
    };
    let row = |index: String, build_s: f64, memory: u64, latencies: Vec<f64>, hits: &[Vec<Hit>]| {
        let total: f64 = latencies.iter().sum();
        IndexRow {
            index,
            build_s,
            memory_mib: mib(memory),
            queries_per_s: latencies.len() as f64 / (total / 1e3).max(1e-9),
            latency_ms: Latency::of(latencies),
            ndcg_at_10: ndcg(hits),
            blocks: None,
            recall_at_10: None,
        }
    };
    let learned = if config.learned > 0 {
        let want = config
            .sizes
            .iter()
            .map(|&n| n.min(ds.corpus.len()))
            .filter(|&n| n <= config.learned)
            .max()
            .unwrap_or(0);
        encode_passages(
            &encoder,
            loaded.fingerprint,
            &ds.corpus[..want],
            &config.data,
            progress,
        )?
    } else {
        Vec::new()
    };
    let mut sizes = Vec::new();
    let mut done = std::collections::HashSet::new();
    for &size in &config.sizes {
        let n = size.min(ds.corpus.len());
        if !done.insert(n) {
            continue;
        }
        let docs = &ds.corpus[..n];
        progress.note(&format!("{n} documents"));
        let mut indexes = Vec::new();

        let before = resident_bytes();
        let t = Instant::now();
        let mut bm25 = Bm25Index::new(Default::default(), Default::default())?;
        bm25.add_documents(docs)?;
        let build = t.elapsed().as_secs_f64();
        let memory = resident_bytes().saturating_sub(before);
        let (lat, hits) = timed(queries.len(), |i| Ok(bm25.search(&queries[i].text, 10)?))?;
        indexes.push(row("bm25".into(), build, memory, lat, &hits));
        drop(bm25);

        let bags = || {
            let mut bags = SparseIndex::new(Weighting::Binary, vocab)?;
            for chunk in docs.chunks(4096) {
                let batch = chunk
                    .iter()
                    .map(|d| {
                        let terms = encoder
                            .bag_of_tokens(&d.full_text())?
                            .into_iter()
                            .map(|t| (t, 1.0))
                            .collect();
                        Ok((d.id.clone(), SparseVector { terms }))
                    })
                    .collect::<Result<Vec<_>, EvalError>>()?;
                bags.add(&batch)?;
            }
            Ok(bags)
        };
        sparse_rows("bag of tokens", bags, config, &vectors, &mut indexes, &row)?;
        if n <= learned.len() {
            let build = || {
                let mut index = SparseIndex::new(Weighting::Learned, vocab)?;
                for chunk in learned[..n].chunks(4096) {
                    index.add(chunk)?;
                }
                Ok(index)
            };
            sparse_rows(
                "learned sparse",
                build,
                config,
                &vectors,
                &mut indexes,
                &row,
            )?;
        }
        sizes.push(SizeReport {
            documents: n,
            indexes,
        });
    }
    let dense = (config.dense > 0)
        .then(|| dense_adds(config.dense, progress))
        .transpose()?;
    Ok(ScaleReport {
        corpus: ds.corpus.len(),
        queries: queries.len(),
        block_size: config.block_size,
        sizes,
        dense,
    })
}

/// A table row from an index's name, build seconds, memory growth, query
/// latencies (ms) and hits.
type MakeRow<'a> = dyn Fn(String, f64, u64, Vec<f64>, &[Vec<Hit>]) -> IndexRow + 'a;

/// A sparse index built by `build` (timed, with the memory it grew),
/// searched exhaustively, then by block-max pruning (exact, and at each
/// alpha) in corpus order and heaviest-term order; exact pruning must
/// return the exhaustive hits.
fn sparse_rows(
    what: &str,
    build: impl FnOnce() -> Result<SparseIndex, EvalError>,
    config: &ScaleBenchConfig,
    vectors: &[SparseVector],
    indexes: &mut Vec<IndexRow>,
    row: &MakeRow,
) -> Result<(), EvalError> {
    let before = resident_bytes();
    let t = Instant::now();
    let index = build()?;
    let (built, memory) = (
        t.elapsed().as_secs_f64(),
        resident_bytes().saturating_sub(before),
    );
    let (lat, exact) = timed(vectors.len(), |i| Ok(index.search(&vectors[i], 10)))?;
    indexes.push(row(
        format!("{what}, exhaustive"),
        built,
        memory,
        lat,
        &exact,
    ));
    for ordering in [Ordering::Original, Ordering::HeaviestTerm] {
        let before = resident_bytes();
        let t = Instant::now();
        let bmp = BlockMaxIndex::build(
            index.documents(),
            index.vocab_size(),
            config.block_size,
            ordering,
        )?;
        let build = t.elapsed().as_secs_f64();
        let memory = resident_bytes().saturating_sub(before);
        let name = match ordering {
            Ordering::Original => "corpus order",
            Ordering::HeaviestTerm => "heaviest-term order",
        };
        for alpha in std::iter::once(1.0).chain(config.alphas.iter().copied()) {
            let mut visited = (0.0, 0.0);
            let (lat, hits) = timed(vectors.len(), |i| {
                let (h, s) = bmp.search_with_stats(&vectors[i], 10, alpha)?;
                visited.0 += s.visited_blocks as f64;
                visited.1 += s.candidate_blocks as f64;
                Ok(h)
            })?;
            let q = vectors.len() as f64;
            let label = if alpha == 1.0 {
                format!("{what}, block-max exact ({name})")
            } else {
                format!("{what}, block-max alpha {alpha} ({name})")
            };
            let mut r = row(label, build, memory, lat, &hits);
            r.blocks = Some((visited.0 / q, visited.1 / q));
            if alpha < 1.0 {
                r.recall_at_10 = Some(rlrag_retriever::dense_index::recall_against_exact(
                    &exact, &hits, 10,
                ));
            } else if hits != exact {
                return Err(EvalError::Bench {
                    reason: format!(
                        "{what}: exact block-max pruning differs from the exhaustive search"
                    ),
                });
            }
            indexes.push(r);
        }
    }
    Ok(())
}

/// The learned-sparse vectors of `docs`, from the cache in `dir` (one per
/// model: `sparse-passages-<fingerprint>.jsonl`) and encoded for those it
/// lacks, appended as they are made, so a stopped run resumes.
fn encode_passages(
    encoder: &rlrag_encoder::Encoder,
    fingerprint: u64,
    docs: &[rlrag_retriever::Document],
    dir: &Path,
    progress: &dyn Progress,
) -> Result<Vec<(String, SparseVector)>, EvalError> {
    let path = dir.join(format!("sparse-passages-{fingerprint:016x}.jsonl"));
    let mut cache: JsonlCache<String, Vec<(u32, f32)>> =
        JsonlCache::open(path.clone(), |r: EncodedPassage| (r.id, r.terms))?;
    let missing: Vec<&rlrag_retriever::Document> =
        docs.iter().filter(|d| cache.get(&d.id).is_none()).collect();
    if !missing.is_empty() {
        progress.note(&format!(
            "encoding {} passages ({} already in {})",
            missing.len(),
            docs.len() - missing.len(),
            path.display()
        ));
        let mut bar = progress.bar(missing.len() as u64, "encoding");
        for chunk in missing.chunks(256) {
            let texts: Vec<String> = chunk.iter().map(|d| d.full_text()).collect();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            for (d, v) in chunk.iter().zip(encoder.encode_sparse(&refs)?) {
                let record = EncodedPassage {
                    id: d.id.clone(),
                    terms: v.terms,
                };
                cache.insert(d.id.clone(), record.terms.clone(), &record)?;
            }
            bar.inc(chunk.len() as u64);
        }
        bar.finish();
    }
    Ok(docs
        .iter()
        .map(|d| {
            let terms = cache.get(&d.id).unwrap_or_default();
            (d.id.clone(), SparseVector { terms })
        })
        .collect())
}

/// Adding documents one at a time beside a graph of `n` random unit vectors.
fn dense_adds(n: usize, progress: &dyn Progress) -> Result<DenseAddReport, EvalError> {
    let dim = 384;
    let mut rng = SplitMix64::new(24);
    let mut unit = || {
        let v: Vec<f32> = (0..dim).map(|_| 2.0 * rng.next_f32() - 1.0).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect::<Vec<f32>>()
    };
    let mut flat = FlatIndex::new(dim);
    let docs: Vec<(String, Vec<f32>)> = (0..n).map(|i| (format!("v{i}"), unit())).collect();
    flat.add(&docs)?;
    progress.note(&format!(
        "building HNSW over {n} × {dim} random unit vectors"
    ));
    let t = Instant::now();
    let mut live = LiveHnsw::build(&flat, HnswParams::default(), usize::MAX);
    let rebuild_s = t.elapsed().as_secs_f64();
    let (mut adds, mut searches) = (Vec::new(), Vec::new());
    for i in 0..200 {
        let doc = (format!("new{i}"), unit());
        let t = Instant::now();
        live.add(std::slice::from_ref(&doc))?;
        adds.push(t.elapsed().as_secs_f64() * 1e3);
        let q = unit();
        let t = Instant::now();
        live.search(&q, 10)?;
        searches.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(DenseAddReport {
        vectors: n,
        dim,
        rebuild_s,
        add_ms: Latency::of(adds),
        search_ms: Latency::of(searches),
    })
}

impl ScaleReport {
    /// A Markdown table of every measurement.
    pub fn table(&self) -> String {
        let mut out = format!(
            "corpus {} passages, {} queries, block size {}\n\n| documents | index | build s | memory MiB | p50 ms | p95 ms | q/s | nDCG@10 | blocks scored / candidates | recall@10 vs exact |\n|---|---|---|---|---|---|---|---|---|---|\n",
            self.corpus, self.queries, self.block_size
        );
        for s in &self.sizes {
            for r in &s.indexes {
                out += &format!(
                    "| {} | {} | {:.2} | {:.0} | {:.3} | {:.3} | {:.0} | {:.4} | {} | {} |\n",
                    s.documents,
                    r.index,
                    r.build_s,
                    r.memory_mib,
                    r.latency_ms.p50,
                    r.latency_ms.p95,
                    r.queries_per_s,
                    r.ndcg_at_10,
                    r.blocks
                        .map_or(String::new(), |(v, c)| format!("{v:.0} / {c:.0}")),
                    r.recall_at_10.map_or(String::new(), |x| format!("{x:.4}")),
                );
            }
        }
        if let Some(d) = &self.dense {
            out += &format!(
                "\nHNSW over {} × {} random unit vectors: a rebuild takes {:.1} s; an add beside the graph p50 {:.3} ms (p95 {:.3}); a search with the segment p50 {:.3} ms\n",
                d.vectors, d.dim, d.rebuild_s, d.add_ms.p50, d.add_ms.p95, d.search_ms.p50
            );
        }
        out
    }
}
