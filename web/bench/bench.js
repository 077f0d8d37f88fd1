// The browser half of scripts/bench-browser.sh: the same steps as
// `trainer bench-engine` (see crates/trainer/src/bench.rs), timed with
// performance.now() on the main thread, the engine used directly (no worker).
// Parameters come in the query string; the result lands in
// `window.benchResult` (or `window.benchError`).
import { Rlrag } from './src/index.js';
import { json, percentiles, report, runtime } from './page.js';

const params = new URLSearchParams(location.search);
const device = params.get('device') ?? 'cpu';
const k = Number(params.get('k') ?? 10);
const encodeDocs = Number(params.get('encodeDocs') ?? 200);
// 0: time load, index and the first query only (the repeated runs).
const timeQueries = params.get('queries') !== '0';
// > 0: also time BM25 with its top `rerank` re-scored by the reranker
// served under reranker/ (as `trainer bench-engine --reranker`).
const rerank = Number(params.get('rerank') ?? 0);

async function latencies(engine, queries, mode, rerankM = 0) {
  const times = [];
  for (const q of queries) {
    const t = performance.now();
    const hits = await engine.search(q, { k, mode, rerank: rerankM });
    times.push(performance.now() - t);
    if (hits.length === 0) throw new Error(`${mode} found nothing for ${JSON.stringify(q)}`);
  }
  return percentiles(times);
}

async function bench() {
  // Inputs are fetched before the clock starts: the corpus stands for data
  // the page already has; the model fetch and the wasm compile are timed.
  const corpus = await json('corpus.json');
  const queries = await json('queries.json');
  const start = performance.now();
  const engine = await Rlrag.create({ model: 'model', device, sparseVectors: false });
  const loadMs = performance.now() - start;
  let t = performance.now();
  await engine.addDocuments(corpus);
  const indexMs = performance.now() - t;
  t = performance.now();
  await engine.search(queries[0], { k, mode: 'bot' });
  const firstQueryMs = performance.now() - t;
  const timeToFirstResultMs = performance.now() - start;
  // The same indexing once the page's code is warm (V8 starts WebAssembly
  // on a baseline compiler and optimises hot functions later; native code
  // is optimised from the start): a second engine, with its own cold
  // tokenizer cache, over the same corpus.
  const again = await Rlrag.create({ model: 'model', device, sparseVectors: false });
  t = performance.now();
  await again.addDocuments(corpus);
  const indexWarmMs = performance.now() - t;
  again.free();
  const queryMs = {};
  const modes = timeQueries ? ['bm25', 'bot', 'hybrid'] : [];
  for (const mode of modes) queryMs[mode] = await latencies(engine, queries, mode);
  if (timeQueries && rerank > 0) {
    await engine.loadReranker('reranker');
    queryMs[`bm25+rerank${rerank}`] = await latencies(engine, queries, 'bm25', rerank);
  }
  let encodeDocsPerS = null;
  const encoded = timeQueries ? Math.min(encodeDocs, corpus.length) : 0;
  if (encoded > 0) {
    const sparse = await Rlrag.create({ model: 'model', device, sparseVectors: true });
    t = performance.now();
    await sparse.addDocuments(corpus.slice(0, encoded));
    encodeDocsPerS = encoded / ((performance.now() - t) / 1000);
    queryMs.sparse = await latencies(sparse, queries, 'sparse');
  }
  return {
    runtime: runtime(),
    backend: engine.backend,
    threads: 1,
    documents: corpus.length,
    load_ms: loadMs,
    index_ms: indexMs,
    index_docs_per_s: corpus.length / (indexMs / 1000),
    index_warm_ms: indexWarmMs,
    first_query_ms: firstQueryMs,
    time_to_first_result_ms: timeToFirstResultMs,
    query_ms: queryMs,
    encode_docs: encoded,
    encode_docs_per_s: encodeDocsPerS,
  };
}

report(bench);
