// The router in wasm under Node: the engine is the local source (half the
// corpus), a JS async callback is the network (a second engine over all of
// it); fixed policies route as natively, every network fault (throw, reject,
// time-out, garbage) leaves the question answered locally with the fault in
// the trace, and a trained router (RLRAG_ROUTER_DIR, written by the test
// command's `trainer train-router`) decides in `learned` mode.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

import { Rlrag, RouterModel } from '../src/index.js';

const root = new URL('../../', import.meta.url);
const wasm = readFileSync(new URL('web/pkg/rlrag_wasm_bg.wasm', root));
const golden = JSON.parse(readFileSync(new URL('tests/golden/engine-search.json', root), 'utf8'));
const modelsDir =
  process.env.RLRAG_MODELS ?? join(process.env.RLRAG_CACHE ?? join(homedir(), '.cache/rlrag'), 'models');
const read = (dir, f) => new Uint8Array(readFileSync(join(dir, f)));
const splade = {
  weights: read(join(modelsDir, 'splade-tiny'), 'model.safetensors'),
  config: read(join(modelsDir, 'splade-tiny'), 'config.json'),
  tokenizer: read(join(modelsDir, 'splade-tiny'), 'tokenizer.json'),
};
const docs = golden.documents.map(({ id, title, text }) => ({ id, title, text }));
const localDocs = docs.filter((_, i) => i % 2 === 0);
const question = golden.results[0].query;

async function engines() {
  const local = await Rlrag.create({ model: splade, device: 'cpu', wasm, sparseVectors: false });
  await local.addDocuments(localDocs);
  const web = await Rlrag.create({ model: splade, device: 'cpu', wasm, sparseVectors: false });
  await web.addDocuments(docs);
  const calls = [];
  const network = async ({ queries, k }) => {
    calls.push(queries);
    const hits = [];
    for (const q of queries) {
      hits.push((await web.search(q, { k, mode: 'bm25' })).map(({ id, title, text, score }) => ({ id, title, text, score })));
    }
    return { hits };
  };
  return { local, web, network, calls };
}

test('fixed policies route between the engine and a JS network callback', async () => {
  const { local, web, network, calls } = await engines();
  const localIds = new Set(localDocs.map((d) => d.id));
  const viaLocal = await local.route(question, { policy: 'local', network });
  assert.equal(viaLocal.cost.network_calls, 0);
  assert.equal(calls.length, 0);
  assert.ok(viaLocal.evidence.length > 0 && viaLocal.evidence.every((h) => localIds.has(h.id)));
  const viaNetwork = await local.route(question, { policy: 'network', network });
  assert.equal(viaNetwork.cost.network_calls, 1);
  assert.equal(calls.length, 1);
  assert.ok(calls[0].length >= 1 && calls[0].length <= 3);
  assert.ok(viaNetwork.evidence.some((h) => !localIds.has(h.id)), 'the network holds the other half');
  const both = await local.route(question, { policy: 'multihop', network });
  assert.equal(both.trace.decisions[0].action, 'both');
  assert.equal(both.cost.rounds, 2);
  assert.ok(both.trace.dropped_seen + both.trace.suppressed_queries > 0);
  local.free();
  web.free();
});

test('network faults are recorded and the question completes locally', async () => {
  const { local, web } = await engines();
  const faults = {
    transport: () => {
      throw new Error('offline');
    },
    rejected: async () => Promise.reject(new Error('503')),
    timeout: () => new Promise(() => {}),
    malformed: async () => ({ hits: 'nope' }),
    lie: async () => ({ hits: [] }),
  };
  for (const [name, network] of Object.entries(faults)) {
    const out = await local.route(question, { policy: 'network', network, timeoutMs: 200 });
    const [hop] = out.trace.decisions;
    assert.equal(hop.faults.length, 1, name);
    const kind = hop.faults[0].fault.kind;
    const want = { transport: 'transport', rejected: 'transport', timeout: 'timeout', malformed: 'malformed', lie: 'malformed' }[name];
    assert.equal(kind, want, `${name}: ${JSON.stringify(hop.faults[0])}`);
    assert.equal(hop.faults[0].fell_back_to_local, true);
    assert.ok(out.evidence.length > 0, `${name}: answered from the local index`);
  }
  await assert.rejects(local.route('', { policy: 'local' }), /question is empty/);
  await assert.rejects(local.route(question, { policy: 'sometimes' }), /unknown policy/);
  await assert.rejects(local.route(question, { policy: 'learned' }), /router model/);
  await assert.rejects(local.route(question, { network: 'http://x' }), /network must be an async function/);
  await assert.rejects(local.route(question, { policy: 'local', bogus: 1 }), /unknown option `bogus`/);
  local.free();
  web.free();
});

const routerDir = process.env.RLRAG_ROUTER_DIR;
test('a trained router decides in the browser build', { skip: routerDir && existsSync(routerDir) ? false : 'RLRAG_ROUTER_DIR is not set (the test command sets it)' }, async () => {
  const { local, web, network } = await engines();
  const model = await RouterModel.load({ weights: read(routerDir, 'model.safetensors'), config: read(routerDir, 'config.json') }, { wasm });
  const out = await local.route(question, { model, network });
  assert.ok(out.trace.decisions.length >= 1);
  for (const d of out.trace.decisions) {
    assert.ok(d.probability > 0 && d.probability <= 1);
    assert.equal(d.features.length, 16);
  }
  await assert.rejects(RouterModel.load({ weights: new Uint8Array([1, 2, 3]), config: read(routerDir, 'config.json') }, { wasm }), /policy weights/);
  await assert.rejects(RouterModel.load({ weights: read(routerDir, 'model.safetensors'), config: '{}' }, { wasm }), /router config.json/);
  local.free();
  web.free();
});
