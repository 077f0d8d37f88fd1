//! BM25 on SciFact: indexing throughput (documents/s) and search throughput
//! (the 300 test queries, top 10). `scripts/bench-bm25s.sh` runs this and the
//! same workload through `bm25s` and prints the ratio.
#![allow(missing_docs, clippy::expect_used)]

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rlrag::retriever::{Bm25Index, Dataset, Split};

fn scifact() -> Dataset {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/scifact");
    Dataset::load(&path, None, Some(&Split::Test)).expect("vendored SciFact loads")
}

fn bm25(c: &mut Criterion) {
    let ds = scifact();
    let mut group = c.benchmark_group("bm25_scifact");
    group.sample_size(20);

    group.throughput(Throughput::Elements(ds.corpus.len() as u64));
    group.bench_function("index", |b| {
        b.iter(|| {
            let mut index = Bm25Index::default();
            index.add_documents(&ds.corpus).expect("indexes");
            index
        });
    });

    let mut index = Bm25Index::default();
    index.add_documents(&ds.corpus).expect("indexes");
    group.throughput(Throughput::Elements(ds.queries.len() as u64));
    group.bench_function("search", |b| {
        b.iter(|| {
            ds.queries
                .iter()
                .map(|q| index.search(&q.text, 10).expect("searches").len())
                .sum::<usize>()
        });
    });
    group.finish();
}

criterion_group!(benches, bm25);
criterion_main!(benches);
