// Runs web/bench/scale.html in headless Chromium (Debian's, via
// playwright-core): the driver of scripts/bench-browser-scale.sh.
//   node web/bench/scale.mjs --pkg DIR --model DIR --corpus F.json --queries F.json [--out F.json]
// The page is served isolated across origins (COOP + COEP), so that it can
// measure its own and its worker's memory.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { serve } from './server.mjs';

const { values: opts } = parseArgs({
  options: {
    pkg: { type: 'string' },
    model: { type: 'string' },
    corpus: { type: 'string' },
    queries: { type: 'string' },
    out: { type: 'string' },
  },
});
for (const required of ['pkg', 'model', 'corpus', 'queries']) {
  if (!opts[required]) {
    console.error(`usage: node web/bench/scale.mjs --pkg DIR --model DIR --corpus F.json --queries F.json [--out F.json] (missing --${required})`);
    process.exit(2);
  }
}

const web = new URL('../', import.meta.url).pathname;

/** URL path → file: the page, the package's JS and wasm, the model, the data. */
function resolve(path) {
  if (path === '/' || path === '/index.html') return join(web, 'bench/scale.html');
  if (path === '/scale.js' || path === '/page.js') return join(web, `bench${path}`);
  if (path === '/corpus.json') return opts.corpus;
  if (path === '/queries.json') return opts.queries;
  for (const [prefix, dir] of [['/src/', join(web, 'src')], ['/pkg/', opts.pkg], ['/model/', opts.model]]) {
    if (path.startsWith(prefix)) return join(dir, path.slice(prefix.length));
  }
  return null;
}

const server = await serve(resolve, {
  headers: { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' },
});
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--no-first-run', '--disable-background-networking', '--disable-component-update'],
});
let result;
try {
  const page = await (await browser.newContext()).newPage();
  page.on('console', (m) => m.type() === 'error' && console.error(`page: ${m.text()}`));
  let failed;
  const failure = new Promise((_, reject) => {
    failed = reject;
  });
  page.on('crash', () => failed(new Error('the renderer crashed')));
  page.on('pageerror', (e) => failed(new Error(`page error: ${e.message}`)));
  await page.goto(server.url);
  await Promise.race([
    page.waitForFunction(() => window.benchResult || window.benchError, null, { timeout: 3_600_000, polling: 1000 }),
    failure,
  ]);
  const error = await page.evaluate(() => window.benchError);
  if (error) throw new Error(`the browser bench failed: ${error}`);
  result = await page.evaluate(() => window.benchResult);
} finally {
  await browser.close();
  server.close();
}
const mib = (b) => (b === null || b === undefined ? '–' : (b / 2 ** 20).toFixed(0));
console.log(`| ${result.documents} passages, ${result.queries} queries | ${result.runtime}, one worker |`);
console.log('|---|---:|');
console.log(`| model load (ms) | ${result.load_ms.toFixed(0)} |`);
console.log(`| index BM25 + bags in the worker (s) | ${(result.index_ms / 1000).toFixed(1)} |`);
console.log(`| index rate (passages/s) | ${result.index_docs_per_s.toFixed(0)} |`);
console.log(`| longest hold-up of the page's thread while indexing (ms) | ${result.longest_main_thread_stall_ms.toFixed(0)} |`);
console.log(`| progress reports while indexing | ${result.progress_events} |`);
for (const [mode, q] of Object.entries(result.query_ms)) console.log(`| query p50 / p95, ${mode} (ms) | ${q.p50.toFixed(2)} / ${q.p95.toFixed(2)} |`);
console.log(`| JS heaps, page + worker, before / indexed (MiB) | ${mib(result.memory_before?.bytes)} / ${mib(result.memory_indexed?.bytes)} |`);
console.log(`| wasm memory in the worker, indexed (MiB) | ${mib(result.wasm_memory_bytes)} |`);
console.log(`| saved engine (exportIndex, MiB) | ${mib(result.saved_bytes)} |`);
console.log(`| export / import (ms) | ${result.export_ms.toFixed(0)} / ${result.import_ms.toFixed(0)} |`);
if (opts.out) {
  await writeFile(opts.out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`wrote ${opts.out}`);
}
