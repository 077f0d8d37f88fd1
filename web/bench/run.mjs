// Runs web/bench/ in headless Chromium (Debian's, via playwright-core) and
// compares it with `trainer bench-engine`'s native report: the driver of
// scripts/bench-browser.sh.
//   node web/bench/run.mjs --native N.json --pkg DIR --model DIR --corpus F.json
//        [--device cpu|webgpu] [--encode-docs N] [--runs N] [--out F.json] [--profile F.cpuprofile [--focus NAME]]
//        [--reranker DIR [--rerank M]]
// --reranker: also time BM25 with its top M (default 20) re-scored by this cross-encoder.
// --runs: load + index + first query this many times, each in a fresh
// browser context (cold caches, the wasm compiled anew), medians reported;
// query latencies and encoding are timed in the first run. Each run also
// indexes the corpus a second time on a fresh engine in the same page: the
// rate once V8 has optimised the hot code.
// --profile: Chromium's sampling profile of the whole run (open it in the
// DevTools Performance panel), and the top functions by self time printed;
// wasm functions have names when the package was built without wasm-opt.
// --focus: count only samples with a function containing NAME on the stack
// (e.g. `addDocuments`: indexing alone).
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { serve } from './server.mjs';

const { values: opts } = parseArgs({
  options: {
    native: { type: 'string' },
    pkg: { type: 'string' },
    model: { type: 'string' },
    corpus: { type: 'string' },
    device: { type: 'string', default: 'cpu' },
    'encode-docs': { type: 'string', default: '200' },
    runs: { type: 'string', default: '5' },
    out: { type: 'string' },
    profile: { type: 'string' },
    focus: { type: 'string' },
    reranker: { type: 'string' },
    rerank: { type: 'string', default: '20' },
  },
});
for (const required of ['native', 'pkg', 'model', 'corpus']) {
  if (!opts[required]) {
    console.error(`usage: node web/bench/run.mjs --native N.json --pkg DIR --model DIR --corpus F.json [--device cpu|webgpu] [--encode-docs N] [--out F.json] (missing --${required})`);
    process.exit(2);
  }
}

const web = new URL('../', import.meta.url).pathname;
const native = JSON.parse(await readFile(opts.native, 'utf8'));
const queries = Buffer.from(JSON.stringify(native.queries));

/** URL path → file: the page, the package's JS and wasm, the model, the data. */
function resolve(path) {
  if (path === '/' || path === '/index.html') return join(web, 'bench/index.html');
  if (path === '/bench.js' || path === '/page.js') return join(web, `bench${path}`);
  if (path === '/corpus.json') return opts.corpus;
  const dirs = [['/src/', join(web, 'src')], ['/pkg/', opts.pkg], ['/model/', opts.model]];
  if (opts.reranker) dirs.push(['/reranker/', opts.reranker]);
  for (const [prefix, dir] of dirs) {
    if (path.startsWith(prefix)) return join(dir, path.slice(prefix.length));
  }
  return null;
}

const server = await serve(resolve, { bodies: { '/queries.json': queries } });
const { url } = server;

const args = ['--headless', '--no-sandbox', '--no-first-run', '--disable-background-networking', '--disable-component-update'];
if (opts.device === 'webgpu') args.push('--enable-unsafe-webgpu');
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args });
const runs = Math.max(1, Number(opts.runs) || 1);
const results = [];
try {
  for (let run = 0; run < runs; run += 1) results.push(await benchOnce(run));
} finally {
  await browser.close();
  server.close();
}
const median = (key) => {
  const v = results.map((r) => r[key]).sort((a, b) => a - b);
  return v[Math.floor(v.length / 2)];
};
const result = { ...results[0], startups: [] };
for (const key of ['load_ms', 'index_ms', 'index_warm_ms', 'first_query_ms', 'time_to_first_result_ms']) result[key] = median(key);
result.index_docs_per_s = result.documents / (result.index_ms / 1000);
result.index_warm_docs_per_s = result.documents / (result.index_warm_ms / 1000);
result.startups = results.map(({ load_ms, index_ms, index_warm_ms, first_query_ms, time_to_first_result_ms }) => ({
  load_ms,
  index_ms,
  index_warm_ms,
  first_query_ms,
  time_to_first_result_ms,
}));

/** One page load in a fresh context; the first also times queries and encoding. */
async function benchOnce(run) {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    page.on('console', (m) => m.type() === 'error' && console.error(`page: ${m.text()}`));
    let failed;
    const failure = new Promise((_, reject) => {
      failed = reject;
    });
    page.on('crash', () => failed(new Error('the renderer crashed')));
    const cdp = opts.profile && run === 0 ? await context.newCDPSession(page) : null;
    if (cdp) {
      await cdp.send('Profiler.enable');
      await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
      await cdp.send('Profiler.start');
    }
    page.on('pageerror', (e) => failed(new Error(`page error: ${e.message}`)));
    const rerank = opts.reranker ? `&rerank=${Number(opts.rerank)}` : '';
    const query = run === 0 ? `encodeDocs=${opts['encode-docs']}${rerank}` : 'encodeDocs=0&queries=0';
    await page.goto(`${url}?device=${opts.device}&${query}`);
    await Promise.race([
      page.waitForFunction(() => window.benchResult || window.benchError, null, { timeout: 1_800_000, polling: 500 }),
      failure,
    ]);
    const error = await page.evaluate(() => window.benchError);
    if (error) throw new Error(`the browser bench failed: ${error}`);
    const result = await page.evaluate(() => window.benchResult);
    if (cdp) {
      const { profile } = await cdp.send('Profiler.stop');
      await writeFile(opts.profile, JSON.stringify(profile));
      topFunctions(profile);
    }
    return result;
  } finally {
    await context.close();
  }
}

/** The 25 functions with the most self time in a CPU profile (within
 * `--focus` when given). */
function topFunctions(profile) {
  const self = new Map();
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const inFocus = (id) => {
    for (let at = id; at !== undefined; at = parent.get(at)) {
      if (byId.get(at)?.callFrame.functionName.includes(opts.focus)) return true;
    }
    return false;
  };
  const counts = new Map();
  for (const id of profile.samples) {
    if (!opts.focus || inFocus(id)) counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  let total = 0;
  for (const [id, n] of counts) {
    const name = byId.get(id)?.callFrame.functionName || '(anonymous)';
    self.set(name, (self.get(name) ?? 0) + n);
    total += n;
  }
  console.log(`profile: ${total} samples, top self time:`);
  for (const [name, n] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
    console.log(`  ${((100 * n) / total).toFixed(1).padStart(5)} %  ${name.slice(0, 140)}`);
  }
}

// Ratios: browser speed / native speed (≥ 0.5 is the goal for the CPU build).
const speed = (b, n) => (b && n ? n / b : null); // for times: native time / browser time
const rows = [
  ['time to first result (ms)', native.time_to_first_result_ms, result.time_to_first_result_ms, speed(result.time_to_first_result_ms, native.time_to_first_result_ms)],
  ['  model load (ms)', native.load_ms, result.load_ms, speed(result.load_ms, native.load_ms)],
  ['index BM25 + bags (docs/s)', native.index_docs_per_s, result.index_docs_per_s, result.index_docs_per_s / native.index_docs_per_s],
  ['  again, code warm (docs/s)', native.index_docs_per_s, result.index_warm_docs_per_s, result.index_warm_docs_per_s / native.index_docs_per_s],
  [`encode sparse vectors (docs/s, ${result.encode_docs} docs)`, native.encode_docs_per_s, result.encode_docs_per_s, result.encode_docs_per_s && native.encode_docs_per_s ? result.encode_docs_per_s / native.encode_docs_per_s : null],
];
for (const mode of Object.keys(result.query_ms)) {
  const n = native.query_ms[mode]?.p50;
  rows.push([`query p50, ${mode} (ms)`, n, result.query_ms[mode].p50, speed(result.query_ms[mode].p50, n)]);
}
const fmt = (v) => (v === null || v === undefined ? '–' : v >= 100 ? v.toFixed(0) : v.toFixed(2));
console.log(`load + index + first query: medians of ${native.startups?.length ?? 1} native and ${runs} browser runs`);
console.log(`| ${native.documents} HotpotQA-100 paragraphs, ${native.queries.length} queries | native (${native.threads} threads) | ${result.runtime}, ${result.backend} | browser/native |`);
console.log('|---|---:|---:|---:|');
for (const [name, n, b, r] of rows) console.log(`| ${name} | ${fmt(n)} | ${fmt(b)} | ${r === null ? '–' : `${r.toFixed(2)}x`} |`);
if (opts.out) {
  await writeFile(opts.out, `${JSON.stringify({ native, browser: result, ratios: Object.fromEntries(rows.map(([n, , , r]) => [n.trim(), r])) }, null, 2)}\n`);
  console.log(`wrote ${opts.out}`);
}
