//! BM25 at scale, rlrag's `Bm25Index` beside the `tantivy` crate, in one
//! process, on the same documents and queries (issue 24).
//!
//! Both engines index the same terms: rlrag's analyzer (word tokens of two
//! characters or more, lower-cased, Lucene's English stopwords, Snowball
//! English) runs once per text, and tantivy indexes its output through a
//! whitespace tokenizer (term frequencies, no positions), so what differs is
//! the index and the scoring, not the analysis. The analysis is counted in
//! both engines' build time and in every query of both. BM25 with k1 = 1.2,
//! b = 0.75 in both (tantivy's constants). tantivy's index is built with one
//! writer thread and merged into one segment, and searched with its default
//! single-thread executor (block-max WAND over the query's terms); rlrag's is
//! searched term at a time, exhaustively.
//!
//! For each corpus size (a prefix of the corpus): build time and resident
//! memory of each index, then `--repeats` passes over the queries, the two
//! engines alternating per pass; latency percentiles over every query of
//! every pass, queries per second, nDCG@10 against the judged queries and the
//! two engines' overlap@10 (tantivy rounds document lengths to one byte, so
//! scores and a few ranks differ).
//!
//! `scripts/bench-tantivy.sh` builds the corpus and runs this.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use rlrag_retriever::{Analyzer, AnalyzerConfig, Bm25Index, Bm25Params, Dataset, Document};
use rlrag_reward::latency::{Latency, mib, resident_bytes};
use rlrag_reward::retrieval::ndcg_at_k;
use serde::Serialize;
use tantivy::collector::TopDocs;
use tantivy::columnar::Column;
use tantivy::query::BooleanQuery;
use tantivy::schema::{FAST, Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions};
use tantivy::tokenizer::{TextAnalyzer, WhitespaceTokenizer};
use tantivy::{Index, IndexWriter, Searcher, Term, doc};

/// tantivy's BM25 constants, used for rlrag too.
const K1: f32 = 1.2;
const B: f32 = 0.75;
const TOP_K: usize = 10;

#[derive(Parser, Debug)]
#[command(about = "BM25 at scale: rlrag beside tantivy on the same corpus and queries")]
struct Args {
    /// A BEIR directory (scripts/build-scale-corpus.sh writes target/scale).
    #[arg(long, default_value = "target/scale")]
    data: PathBuf,
    /// Corpus sizes (prefixes; a size past the end is the whole corpus).
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    sizes: Vec<usize>,
    /// Queries timed (the dataset's first ones).
    #[arg(long, default_value_t = 300)]
    queries: usize,
    /// Timed passes over the queries per engine (after one warm-up pass).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Write the report here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct EngineRow {
    engine: &'static str,
    build_s: f64,
    memory_mib: f64,
    queries_per_s: f64,
    latency_ms: Latency,
    ndcg_at_10: f64,
}

#[derive(Debug, Serialize)]
struct SizeRow {
    documents: usize,
    queries: usize,
    repeats: usize,
    engines: Vec<EngineRow>,
    /// rlrag's queries per second over tantivy's.
    ratio_to_tantivy: f64,
    /// Mean share of tantivy's top 10 in rlrag's.
    overlap_at_10: f64,
    /// Queries whose first hit is the same document.
    same_first_hit: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    data: PathBuf,
    k1: f32,
    b: f32,
    tantivy: &'static str,
    sizes: Vec<SizeRow>,
}

/// tantivy's side: the index, its searcher, each segment's ordinal column
/// (document position in the corpus) and the analyzer that makes the terms.
struct Tantivy {
    body: Field,
    searcher: Searcher,
    ordinals: Vec<Column<u64>>,
    analyzer: Analyzer,
}

impl Tantivy {
    fn build(docs: &[Document], analyzer: Analyzer) -> Result<Self> {
        let mut schema = Schema::builder();
        let indexing = TextFieldIndexing::default()
            .set_tokenizer("terms")
            .set_index_option(IndexRecordOption::WithFreqs);
        let body = schema.add_text_field(
            "body",
            TextOptions::default().set_indexing_options(indexing),
        );
        let ord = schema.add_u64_field("ord", FAST);
        let index = Index::create_in_ram(schema.build());
        index
            .tokenizers()
            .register("terms", TextAnalyzer::from(WhitespaceTokenizer::default()));
        let mut writer: IndexWriter = index.writer_with_num_threads(1, 1 << 30)?;
        for (i, d) in docs.iter().enumerate() {
            let terms = analyzer.terms(&d.full_text()).join(" ");
            writer.add_document(doc!(body => terms, ord => i as u64))?;
        }
        writer.commit()?;
        let segments = index.searchable_segment_ids()?;
        if segments.len() > 1 {
            writer.merge(&segments).wait()?;
        }
        writer.wait_merging_threads()?;
        let searcher = index.reader()?.searcher();
        if searcher.segment_readers().len() != 1 {
            bail!(
                "tantivy left {} segments after the merge",
                searcher.segment_readers().len()
            );
        }
        let ordinals = searcher
            .segment_readers()
            .iter()
            .map(|s| s.fast_fields().u64("ord"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            body,
            searcher,
            ordinals,
            analyzer,
        })
    }

    /// The top 10 as corpus positions.
    fn search(&self, query: &str) -> Result<Vec<usize>> {
        let terms: Vec<Term> = self
            .analyzer
            .terms(query)
            .iter()
            .map(|t| Term::from_field_text(self.body, t))
            .collect();
        let query = BooleanQuery::new_multiterms_query(terms);
        let top = self
            .searcher
            .search(&query, &TopDocs::with_limit(TOP_K).order_by_score())?;
        top.into_iter()
            .map(|(_, a)| {
                self.ordinals
                    .get(a.segment_ord as usize)
                    .and_then(|c| c.first(a.doc_id))
                    .map(|o| o as usize)
                    .context("a hit without its ordinal")
            })
            .collect()
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.sizes.is_empty() || args.sizes.contains(&0) || args.repeats == 0 || args.queries == 0 {
        bail!("--sizes, --queries and --repeats must be at least 1");
    }
    let ds = Dataset::load(&args.data, None, None)
        .with_context(|| format!("loading {}", args.data.display()))?;
    let queries: Vec<_> = ds.queries.iter().take(args.queries).collect();
    if queries.is_empty() {
        bail!("{} has no queries", args.data.display());
    }
    let params = Bm25Params { k1: K1, b: B };
    let mut report = Report {
        data: args.data.clone(),
        k1: K1,
        b: B,
        tantivy: "0.26.0",
        sizes: Vec::new(),
    };
    let mut done = HashSet::new();
    for &size in &args.sizes {
        let n = size.min(ds.corpus.len());
        if !done.insert(n) {
            continue;
        }
        let docs = &ds.corpus[..n];
        eprintln!("{n} documents: building");
        let ndcg = |hits: &[Vec<usize>]| -> f64 {
            let judged: Vec<f64> = queries
                .iter()
                .zip(hits)
                .filter(|(q, _)| !q.qrels.is_empty())
                .map(|(q, h)| {
                    let ids: Vec<&str> = h.iter().map(|&i| docs[i].id.as_str()).collect();
                    ndcg_at_k(&ids, &q.qrels, TOP_K)
                })
                .collect();
            judged.iter().sum::<f64>() / judged.len().max(1) as f64
        };

        let before = resident_bytes();
        let t = Instant::now();
        let mut rlrag = Bm25Index::new(params, AnalyzerConfig::default())?;
        rlrag.add_documents(docs)?;
        let rlrag_build = t.elapsed().as_secs_f64();
        let rlrag_memory = resident_bytes().saturating_sub(before);
        let position: std::collections::HashMap<&str, usize> = docs
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id.as_str(), i))
            .collect();

        let before = resident_bytes();
        let t = Instant::now();
        let tantivy = Tantivy::build(docs, Analyzer::new(AnalyzerConfig::default()))?;
        let tantivy_build = t.elapsed().as_secs_f64();
        let tantivy_memory = resident_bytes().saturating_sub(before);

        let run_rlrag = |i: usize| -> Result<Vec<usize>> {
            rlrag
                .search(&queries[i].text, TOP_K)?
                .iter()
                .map(|h| position.get(h.id.as_str()).copied().context("unknown id"))
                .collect()
        };
        let run_tantivy = |i: usize| tantivy.search(&queries[i].text);
        // One warm-up pass each, whose hits are the ones compared.
        let hits_rlrag = (0..queries.len())
            .map(run_rlrag)
            .collect::<Result<Vec<_>>>()?;
        let hits_tantivy = (0..queries.len())
            .map(run_tantivy)
            .collect::<Result<Vec<_>>>()?;
        let (mut lat_rlrag, mut lat_tantivy) = (Vec::new(), Vec::new());
        for pass in 0..args.repeats {
            eprintln!("{n} documents: pass {} of {}", pass + 1, args.repeats);
            for (run, lat) in [
                (
                    &run_rlrag as &dyn Fn(usize) -> Result<Vec<usize>>,
                    &mut lat_rlrag,
                ),
                (&run_tantivy, &mut lat_tantivy),
            ] {
                for i in 0..queries.len() {
                    let t = Instant::now();
                    let hits = run(i)?;
                    lat.push(t.elapsed().as_secs_f64() * 1e3);
                    std::hint::black_box(hits);
                }
            }
        }
        let row = |engine, build_s, memory: u64, lat: Vec<f64>, hits: &[Vec<usize>]| {
            let total: f64 = lat.iter().sum();
            EngineRow {
                engine,
                build_s,
                memory_mib: mib(memory),
                queries_per_s: lat.len() as f64 / (total / 1e3).max(1e-9),
                latency_ms: Latency::of(lat),
                ndcg_at_10: ndcg(hits),
            }
        };
        let overlap = hits_rlrag
            .iter()
            .zip(&hits_tantivy)
            .map(|(a, b)| {
                let b: HashSet<_> = b.iter().collect();
                if b.is_empty() {
                    1.0
                } else {
                    a.iter().filter(|x| b.contains(x)).count() as f64 / b.len() as f64
                }
            })
            .sum::<f64>()
            / queries.len() as f64;
        let same_first = hits_rlrag
            .iter()
            .zip(&hits_tantivy)
            .filter(|(a, b)| a.first() == b.first())
            .count() as f64
            / queries.len() as f64;
        let engines = vec![
            row("rlrag", rlrag_build, rlrag_memory, lat_rlrag, &hits_rlrag),
            row(
                "tantivy",
                tantivy_build,
                tantivy_memory,
                lat_tantivy,
                &hits_tantivy,
            ),
        ];
        let ratio = engines[0].queries_per_s / engines[1].queries_per_s.max(1e-9);
        report.sizes.push(SizeRow {
            documents: n,
            queries: queries.len(),
            repeats: args.repeats,
            engines,
            ratio_to_tantivy: ratio,
            overlap_at_10: overlap,
            same_first_hit: same_first,
        });
    }
    println!(
        "| documents | engine | build s | memory MiB | p50 ms | p95 ms | queries/s | nDCG@10 |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    for s in &report.sizes {
        for e in &s.engines {
            println!(
                "| {} | {} | {:.1} | {:.0} | {:.3} | {:.3} | {:.0} | {:.4} |",
                s.documents,
                e.engine,
                e.build_s,
                e.memory_mib,
                e.latency_ms.p50,
                e.latency_ms.p95,
                e.queries_per_s,
                e.ndcg_at_10
            );
        }
        println!(
            "| {} | rlrag / tantivy | | | | | {:.2}x | overlap@10 {:.3}, same first hit {:.3} |",
            s.documents, s.ratio_to_tantivy, s.overlap_at_10, s.same_first_hit
        );
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
