// The npm package as a user gets it: `npm pack` the built package (web/pkg
// from scripts/build-web.sh, web/types from tsc), install the tarball into
// a fresh Vite app in a temporary directory, `vite build` it, serve the
// build on 127.0.0.1 and run it in headless Chromium (Debian's, driven by
// playwright-core): index three documents with the pretrained SPLADE-tiny,
// search, and route a question with a fixed policy through a network
// callback. Catches files missing from the package, wrong `exports`, and a
// wasm module that only loads from this repository's layout.
//
//   node web/e2e/consumer.mjs   (after scripts/build-web.sh and tsc; needs the npm registry for Vite)
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, homedir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { launchChromium, serveFiles } from './harness.mjs';

const VITE = '7.3.8';
const web = new URL('..', import.meta.url).pathname;
const models = process.env.RLRAG_MODELS ?? join(process.env.RLRAG_CACHE ?? join(homedir(), '.cache/rlrag'), 'models');
const model = join(models, 'splade-tiny');
const app = mkdtempSync(join(tmpdir(), 'rlrag-consumer-'));
const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'inherit'] }).toString();

try {
  const tarball = run('npm', ['pack', '--silent', '--pack-destination', app], web).trim().split('\n').pop();
  const files = run('tar', ['-tzf', join(app, tarball)], app).split('\n');
  for (const f of ['package/src/index.js', 'package/pkg/rlrag_wasm_bg.wasm', 'package/types/index.d.ts', 'package/README.md', 'package/LICENSE']) {
    assert.ok(files.includes(f), `the packed package lacks ${f}`);
  }
  writeFileSync(join(app, 'package.json'), JSON.stringify({
    name: 'rlrag-consumer', private: true, type: 'module',
    dependencies: { rlrag: `file:./${tarball}` },
    devDependencies: { vite: VITE },
  }, null, 2));
  writeFileSync(join(app, 'index.html'), '<!doctype html><meta charset="utf-8"><pre id="out">loading</pre><script type="module" src="/main.js"></script>\n');
  writeFileSync(join(app, 'main.js'), `import { Rlrag } from 'rlrag';

const docs = [
  { id: 'paris', title: 'Paris', text: 'Paris is the capital and largest city of France.' },
  { id: 'berlin', title: 'Berlin', text: 'Berlin is the capital of Germany.' },
  { id: 'banana', title: 'Banana', text: 'A banana is an elongated, edible fruit.' },
];
const network = async ({ queries }) => ({
  hits: queries.map(() => [{ id: 'net-lyon', title: 'Lyon', text: 'Lyon is a city in France.', score: 1 }]),
});

async function main() {
  const engine = await Rlrag.create({ model: '/models/splade-tiny', device: 'cpu' });
  await engine.addDocuments(docs);
  const hits = await engine.search('capital of France', { k: 3, mode: 'sparse' });
  const routed = await engine.route('What is the capital of France?', { policy: 'both', network });
  return {
    backend: engine.backend,
    top: hits.map((h) => h.id),
    terms: hits[0].terms.length,
    evidence: routed.evidence.map((e) => e.id),
    networkCalls: routed.cost.network_calls,
  };
}

main().then(
  (r) => { document.getElementById('out').textContent = JSON.stringify(r); },
  (e) => { document.getElementById('out').textContent = 'error: ' + (e?.message ?? e); },
);
`);
  mkdirSync(join(app, 'public/models/splade-tiny'), { recursive: true });
  for (const f of ['model.safetensors', 'config.json', 'tokenizer.json']) {
    cpSync(join(model, f), join(app, 'public/models/splade-tiny', f));
  }
  run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], app);
  run('npx', ['vite', 'build', '--logLevel', 'warn'], app);
  const dist = join(app, 'dist');
  assert.ok(readdirSync(join(dist, 'assets')).some((f) => f.endsWith('.wasm')), 'vite build emitted no .wasm asset');

  const server = await serveFiles((path) => join(dist, path.endsWith('/') ? `${path}index.html` : path));
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${server.address().port}/`);
    await page.waitForFunction(() => document.getElementById('out').textContent !== 'loading', null, { timeout: 120_000 });
    const text = await page.textContent('#out');
    assert.ok(!text.startsWith('error'), `${text} ${errors.join('; ')}`);
    const r = JSON.parse(text);
    assert.equal(r.backend, 'cpu');
    assert.equal(r.top[0], 'paris', text);
    assert.ok(r.terms > 0, text);
    assert.equal(r.networkCalls, 1, text);
    assert.ok(r.evidence.includes('paris') && r.evidence.includes('net-lyon'), text);
    console.log(`packed rlrag in a fresh Vite ${VITE} app, in Chromium: ${text}`);
  } finally {
    await browser.close();
    server.close();
  }
} finally {
  rmSync(app, { recursive: true, force: true });
}
