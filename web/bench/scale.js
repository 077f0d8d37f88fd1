// The browser half of scripts/bench-browser-scale.sh: a large corpus
// indexed the way the demo does it, in a Web Worker (`RlragWorker`), while
// the page measures how long its own thread is ever held up (the longest
// gap between 10 ms ticks: what a visitor would feel as a freeze). Then
// query latency per mode (round trips through the worker), the memory of
// the page and its worker (their JS heaps by
// `performance.measureUserAgentSpecificMemory`, which needs the page
// isolated across origins, and the worker's wasm memory), the saved engine's size (`exportIndex`) and
// the time to bring it back (`RlragWorker.importIndex`). The result lands in
// `window.benchResult` (or `window.benchError`).
import { RlragWorker } from './src/worker-client.js';
import { json, percentiles, report, runtime } from './page.js';

const params = new URLSearchParams(location.search);
const k = Number(params.get('k') ?? 10);
const chunk = Number(params.get('chunk') ?? 100);

/** The longest gap between ticks of this thread while `work` runs, ms. */
async function longestStall(work) {
  let last = performance.now();
  let longest = 0;
  const tick = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 10);
  try {
    const result = await work();
    longest = Math.max(longest, performance.now() - last);
    return { result, longest };
  } finally {
    clearInterval(tick);
  }
}

async function memory() {
  if (!self.crossOriginIsolated || !performance.measureUserAgentSpecificMemory) return null;
  const m = await performance.measureUserAgentSpecificMemory();
  const by = {};
  for (const entry of m.breakdown) {
    for (const a of entry.attribution) {
      const scope = a.scope ?? 'other';
      by[scope] = (by[scope] ?? 0) + entry.bytes;
    }
  }
  return { bytes: m.bytes, by_scope: by };
}

async function bench() {
  const corpus = await json('corpus.json');
  const queries = await json('queries.json');
  const memoryBefore = await memory();
  const progress = [];
  const start = performance.now();
  const engine = await RlragWorker.create(
    { model: 'model', device: 'cpu', sparseVectors: false, onProgress: (p) => progress.push({ ...p, ms: performance.now() - start }) },
    { workerUrl: new URL('./src/worker.js', location.href) },
  );
  const loadMs = performance.now() - start;
  const t = performance.now();
  // As the demo (www/app.js) does: chunks of 100 passages, one message each.
  const { longest } = await longestStall(async () => {
    for (let i = 0; i < corpus.length; i += chunk) await engine.addDocuments(corpus.slice(i, i + chunk));
  });
  const indexMs = performance.now() - t;
  const queryMs = {};
  for (const mode of ['bm25', 'bot', 'hybrid']) {
    const times = [];
    for (const q of queries) {
      const t0 = performance.now();
      const hits = await engine.search(q, { k, mode });
      times.push(performance.now() - t0);
      if (hits.length === 0 && mode === 'bm25') throw new Error(`bm25 found nothing for ${JSON.stringify(q)}`);
    }
    queryMs[mode] = percentiles(times);
  }
  const memoryIndexed = await memory();
  const wasmMemoryBytes = engine.wasmMemoryBytes;
  let t1 = performance.now();
  const saved = await engine.exportIndex();
  const exportMs = performance.now() - t1;
  engine.terminate();
  t1 = performance.now();
  const again = await RlragWorker.importIndex(saved, { model: 'model', device: 'cpu' }, { workerUrl: new URL('./src/worker.js', location.href) });
  const importMs = performance.now() - t1;
  const check = await again.search(queries[0], { k, mode: 'bm25' });
  again.terminate();
  if (check.length === 0) throw new Error('the imported engine found nothing');
  return {
    runtime: runtime(),
    documents: corpus.length,
    chunk,
    queries: queries.length,
    load_ms: loadMs,
    index_ms: indexMs,
    index_docs_per_s: corpus.length / (indexMs / 1000),
    longest_main_thread_stall_ms: longest,
    progress_events: progress.length,
    query_ms: queryMs,
    memory_before: memoryBefore,
    memory_indexed: memoryIndexed,
    wasm_memory_bytes: wasmMemoryBytes,
    saved_bytes: saved.byteLength,
    export_ms: exportMs,
    import_ms: importMs,
  };
}

report(bench);
