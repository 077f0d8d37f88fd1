// Saved engines survive a dying worker, in Chromium (Debian's, headless,
// driven by playwright-core): an engine in a Web Worker (`RlragWorker`)
// gains a document and starts `save`, and the worker is terminated at a
// seeded random moment within twice a save's duration, 50 times; each time
// the next `load` must find a whole engine, the one before the save or the
// one after, never nothing or a damaged one. Then `load` is made to fail
// for reasons that are not the save's fault (the wasm module cannot be
// fetched, a device that is not there): each rejects, and the save is
// still there, whole, for the next try.
//
//   node web/e2e/durability.mjs   (after scripts/build-web.sh; models: scripts/fetch-models.sh)
import { homedir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { launchChromium, serveFiles } from './harness.mjs';

const RUNS = Number(process.env.RLRAG_DURABILITY_RUNS ?? 50);
const web = new URL('..', import.meta.url).pathname;
const models = process.env.RLRAG_MODELS ?? join(process.env.RLRAG_CACHE ?? join(homedir(), '.cache/rlrag'), 'models');
const server = await serveFiles((path) => {
  if (path === '/') return join(web, 'e2e/blank.html');
  if (path.startsWith('/models/')) return join(models, path.slice('/models/'.length));
  if (path.startsWith('/src/') || path.startsWith('/pkg/')) return join(web, path);
  return null;
});
const browser = await launchChromium(['--disable-gpu']);
try {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  const report = await page.evaluate(async (runs) => {
    const { RlragWorker } = await import('/src/worker-client.js');
    const key = 'durability';
    const options = { device: 'cpu' };
    await RlragWorker.removeSaved(key);
    const first = await RlragWorker.create({ model: '/models/splade-tiny', ...options });
    await first.addDocuments([
      { id: 'paris', title: 'Paris', text: 'Paris is the capital of France.' },
      { id: 'berlin', title: 'Berlin', text: 'Berlin is the capital of Germany.' },
    ]);
    let started = performance.now();
    await first.save(key);
    const saveMs = performance.now() - started;
    first.terminate();

    let seed = 2026;
    const random = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    let size = 2;
    let cut = 0;
    let completed = 0;
    for (let run = 0; run < runs; run++) {
      const engine = await RlragWorker.load(key, options);
      if (!engine) return { error: `run ${run}: the saved engine is gone` };
      if (engine.size === size + 1) completed++;
      else if (engine.size === size) cut++;
      else return { error: `run ${run}: ${engine.size} documents after a save of ${size + 1}` };
      size = engine.size;
      await engine.addDocuments([{ id: `doc-${run}`, title: `Doc ${run}`, text: `Document number ${run} about rivers.` }]);
      const saving = engine.save(key).catch(() => {});
      await new Promise((resolve) => setTimeout(resolve, random() * 2 * saveMs));
      engine.terminate();
      await saving;
    }
    const last = await RlragWorker.load(key, options);
    if (!last) return { error: 'the saved engine is gone after the last run' };
    if (last.size === size + 1) completed++;
    else if (last.size === size) cut++;
    size = last.size;
    last.terminate();

    // Loads that fail for reasons of their own keep the save.
    const transient = [];
    for (const [why, opts] of [
      ['the wasm module cannot be fetched', { ...options, wasm: '/pkg/missing.wasm' }],
      ['no WebGPU adapter', { device: 'webgpu' }],
    ]) {
      let outcome;
      try {
        const e = await RlragWorker.load(key, opts);
        outcome = e ? 'loaded' : 'null';
        e?.terminate();
      } catch (e) {
        outcome = `rejected: ${e.message}`;
      }
      const after = await RlragWorker.load(key, options);
      transient.push({ why, outcome, sizeAfter: after?.size ?? null });
      after?.terminate();
    }
    return { saveMs, cut, completed, size, transient };
  }, RUNS);
  assert.ok(!report.error, `${report.error} ${errors.join('; ')}`);
  assert.equal(report.cut + report.completed, RUNS + 1);
  // The terminations landed on both sides of a save's end.
  assert.ok(report.cut > 0 && report.completed > 0, JSON.stringify(report));
  const [missingWasm, webgpu] = report.transient;
  assert.match(missingWasm.outcome, /^rejected/, JSON.stringify(missingWasm));
  for (const t of report.transient) assert.equal(t.sizeAfter, report.size, JSON.stringify(t));
  console.log(
    `worker terminated mid-save ${RUNS} times (a save takes ${report.saveMs.toFixed(0)} ms): ` +
      `${report.completed} saves completed, ${report.cut} cut short, none lost or damaged; ` +
      `failed loads (${report.transient.map((t) => `${t.why}: ${t.outcome.slice(0, 60)}`).join('; ')}) kept the save ` +
      `(${webgpu.sizeAfter} documents)`,
  );
} finally {
  await browser.close();
  server.close();
}
