// The npm package in Node (the wasm module, CPU backend) on the real
// SPLADE-tiny model: the same top-10 as native (tests/golden/engine-search.json),
// explanations, removal, export/import, and every error path as a rejected
// Promise with a clear message. Models: scripts/fetch-models.sh.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

import { Rlrag } from '../src/index.js';
import { Engine, ModelBytes } from '../pkg/rlrag_wasm.js';

const root = new URL('../../', import.meta.url);
const wasm = readFileSync(new URL('web/pkg/rlrag_wasm_bg.wasm', root));
const golden = JSON.parse(readFileSync(new URL('tests/golden/engine-search.json', root), 'utf8'));
const modelsDir =
  process.env.RLRAG_MODELS ?? join(process.env.RLRAG_CACHE ?? join(homedir(), '.cache/rlrag'), 'models');

function model(name) {
  const read = (f) => new Uint8Array(readFileSync(join(modelsDir, name, f)));
  return { weights: read('model.safetensors'), config: read('config.json'), tokenizer: read('tokenizer.json') };
}

const splade = model('splade-tiny');
const docs = golden.documents.map(({ id, title, text }) => ({ id, title, text }));

/** Runs every golden query on `e` and asserts the top-10 ids; returns the
 * hits with the golden ones. */
async function assertGoldenTop10(e) {
  const out = [];
  for (const { query, mode, hits: want } of golden.results) {
    const hits = await e.search(query, { k: 10, mode });
    assert.deepEqual(
      hits.map((h) => h.id),
      want.map((h) => h.id),
      `${mode}: ${query}`,
    );
    out.push({ want, hits });
  }
  return out;
}

async function engine(options = {}) {
  return Rlrag.create({ model: splade, device: 'cpu', wasm, ...options });
}

test('size answers while documents are being added (as of the last finished call)', async () => {
  const seen = [];
  const e = await engine({
    sparseVectors: false,
    onProgress: ({ stage, done }) => {
      try {
        seen.push([stage, done, e.size]);
      } catch (err) {
        seen.push([stage, done, err.message]);
      }
    },
  });
  await e.addDocuments(docs.slice(0, 5));
  assert.deepEqual(seen, [['tokens', 5, 0]]);
  seen.length = 0;
  // 115 documents: tokenized in two chunks, the event loop runs in between.
  assert.equal(await e.addDocuments(docs.slice(5)), docs.length);
  assert.deepEqual(seen, [['tokens', 64, 5], ['tokens', 115, 5]]);
  assert.equal(e.size, docs.length);
  // The module's memory: whole wasm pages, at least the model's weights.
  assert.ok(e.wasmMemoryBytes > 4 * 2 ** 20 && e.wasmMemoryBytes % 65536 === 0, String(e.wasmMemoryBytes));
});

test('same top 10 as the native engine in every mode, with explanations', async () => {
  const progress = [];
  const e = await engine({ onProgress: (p) => progress.push(p) });
  assert.equal(e.backend, 'cpu');
  assert.equal(await e.addDocuments(docs), docs.length);
  assert.equal(e.size, docs.length);
  assert.deepEqual(e.modes, ['sparse', 'bot', 'bm25', 'hybrid']);
  assert.ok(progress.length >= 3);
  // Tokens first (no encoder), then the encoder's batches.
  assert.deepEqual(progress.filter((p) => p.stage === 'tokens').at(-1), { stage: 'tokens', done: docs.length, total: docs.length });
  assert.equal(progress[0].stage, 'tokens');
  assert.deepEqual(progress.at(-1), { stage: 'sparse', done: docs.length, total: docs.length });
  for (const { want, hits } of await assertGoldenTop10(e)) {
    hits.forEach((h, i) => assert.ok(Math.abs(h.score - want[i].score) < 1e-4, `${h.score} vs ${want[i].score}`));
  }
  const [top] = await e.search(golden.results[0].query, { k: 1, mode: 'sparse' });
  const doc = docs.find((d) => d.id === top.id);
  assert.equal(top.title, doc.title);
  assert.equal(top.text, doc.text);
  assert.ok(top.terms.length > 0);
  assert.ok(top.terms.every((t) => typeof t.term === 'string' && t.weight > 0));
  const sum = top.terms.reduce((s, t) => s + t.weight, 0);
  assert.ok(Math.abs(sum - top.score) < 1e-3, 'the terms add up to the score');
  e.free();
});

/** A `fetch` serving `files` by name; `delay(name)` ms before each reply
 * (`Infinity`: never), `status(name)` its HTTP status. */
function fakeFetch(files, { delay = () => 0, status = () => 200 } = {}) {
  return (url) => {
    const name = String(url).split('/').pop();
    const ms = delay(name);
    return new Promise((resolve) => {
      if (ms === Infinity) return;
      setTimeout(() => {
        const bytes = files[name];
        const code = bytes ? status(name) : 404;
        resolve({ ok: code === 200, status: code, arrayBuffer: async () => bytes.slice().buffer });
      }, ms);
    });
  };
}

const served = {
  'model.safetensors': splade.weights,
  'config.json': splade.config,
  'tokenizer.json': splade.tokenizer,
};

test('from a URL: config and tokenizer are read while the weights download', async () => {
  const requested = [];
  const slowWeights = (name) => (name === 'model.safetensors' ? 300 : 0);
  const fetch = fakeFetch(served, { delay: slowWeights });
  const e = await Rlrag.create({
    model: 'https://example.test/models/splade/',
    device: 'cpu',
    wasm,
    fetch: (url) => {
      requested.push(String(url));
      return fetch(url);
    },
  });
  assert.deepEqual(requested.sort(), [
    'https://example.test/models/splade/config.json',
    'https://example.test/models/splade/model.safetensors',
    'https://example.test/models/splade/tokenizer.json',
  ]);
  await e.addDocuments(docs);
  await assertGoldenTop10(e);
  e.free();
  // A bad tokenizer or config fails as soon as it arrives, not after the
  // weights (which never come here).
  const never = { delay: (n) => (n === 'model.safetensors' ? Infinity : 0) };
  const broken = (name, text) => fakeFetch({ ...served, [name]: new TextEncoder().encode(text) }, never);
  await assert.rejects(Rlrag.create({ model: 'm', wasm, fetch: broken('tokenizer.json', '{}') }), /tokenizer/i);
  await assert.rejects(Rlrag.create({ model: 'm', wasm, fetch: broken('config.json', '[1') }), /config/i);
  // Weights that fail after the tokenizer was read: the download's error.
  await assert.rejects(
    Rlrag.create({ model: 'm', wasm, fetch: fakeFetch(served, { delay: slowWeights, status: (n) => (n === 'model.safetensors' ? 503 : 200) }) }),
    /cannot fetch m\/model.safetensors: HTTP 503/,
  );
  // The wasm side refuses a prepared model whose weights never came, and
  // reads a broken tokenizer at once.
  const prepared = ModelBytes.prepare(splade.config, splade.tokenizer);
  await assert.rejects(Engine.create(prepared, undefined, { device: 'cpu' }), /weights were never given/);
  assert.throws(() => ModelBytes.prepare(splade.config, new TextEncoder().encode('{"model": 1}')), /tokenizer/i);
  // Weights that are not safetensors.
  await assert.rejects(
    Rlrag.create({ model: 'm', wasm, fetch: fakeFetch({ ...served, 'model.safetensors': new Uint8Array(16) }) }),
    /safetensors|weights|header/i,
  );
});

test('remove, replace, export and import', async () => {
  const e = await engine({ sparseVectors: false });
  await e.addDocuments(docs.slice(0, 30));
  const q = golden.results[0].query;
  const [first] = await e.search(q, { k: 1, mode: 'bot' });
  assert.equal(await e.removeDocuments([first.id, 'no-such-id']), 1);
  assert.ok(!(await e.search(q, { k: 30, mode: 'bot' })).some((h) => h.id === first.id));
  await e.addDocuments([{ id: first.id, title: 'Volcanoes', text: 'Magma erupts from volcanoes as lava.' }]);
  const [lava] = await e.search('lava from volcanoes', { k: 1, mode: 'bm25' });
  assert.equal(lava.id, first.id);
  assert.equal(lava.title, 'Volcanoes');

  const bytes = await e.exportIndex();
  assert.ok(bytes instanceof Uint8Array && bytes.length > 0);
  const again = await Rlrag.importIndex(bytes, { model: splade, device: 'cpu', wasm });
  assert.equal(again.size, 30);
  for (const mode of ['bot', 'bm25', 'hybrid']) {
    assert.deepEqual(await again.search(q, { mode }), await e.search(q, { mode }));
  }
  const corrupt = bytes.slice();
  corrupt[corrupt.length >> 1] ^= 0xff;
  await assert.rejects(Rlrag.importIndex(corrupt, { model: splade, device: 'cpu', wasm }), /checksum/);
  await assert.rejects(Rlrag.importIndex(bytes.slice(0, 100), { model: splade, device: 'cpu', wasm }), /truncated/);
  const otherTokenizer = { ...splade, config: new TextEncoder().encode(new TextDecoder().decode(splade.config) + ' ') };
  await assert.rejects(Rlrag.importIndex(bytes, { model: otherTokenizer, device: 'cpu', wasm }), /another sparse model/);
});

test('a hypothetical document mixed into the query lifts the passage it describes', async () => {
  const e = await engine();
  await e.addDocuments(docs.slice(0, 30));
  const q = golden.results[0].query;
  const rank = (hits, id) => {
    const i = hits.findIndex((h) => h.id === id);
    return i < 0 ? hits.length : i;
  };
  for (const mode of ['bm25', 'sparse', 'bot', 'hybrid']) {
    const plain = await e.search(q, { k: 10, mode });
    // A passage outside the plain top 3, described by the "generator".
    const target = docs.slice(0, 30).find((d) => rank(plain, d.id) >= 3);
    const augmented = await e.search(q, { k: 10, mode, augment: target.text });
    assert.ok(rank(augmented, target.id) < rank(plain, target.id), `${mode}: ${target.id}`);
    // Weight 0, or an empty document, is the plain search.
    for (const options of [{ augment: target.text, augmentWeight: 0 }, { augment: '' }]) {
      const same = await e.search(q, { k: 10, mode, ...options });
      assert.deepEqual(same.map((h) => h.id), plain.map((h) => h.id), mode);
    }
  }
  await assert.rejects(e.search(q, { augment: 42 }), /augment must be a string/);
  await assert.rejects(e.search(q, { augment: 'x', augmentWeight: 2 }), /augmentWeight must be a number from 0 to 1/);
  await assert.rejects(e.search(q, { augment: 'x'.repeat((1 << 16) + 1) }), /hypothetical document has/);
});

test('every bad input is a rejected Promise with a message', async () => {
  await assert.rejects(Rlrag.create({ wasm }), /a model is required/);
  await assert.rejects(Rlrag.create({ model: { ...splade, weights: 42 }, wasm }), /model.weights: expected bytes/);
  await assert.rejects(
    Rlrag.create({ model: { ...splade, weights: splade.weights.slice(0, 1000) }, device: 'cpu', wasm }),
    /safetensors|weights/i,
  );
  await assert.rejects(Rlrag.create({ model: { ...splade, config: '{' }, device: 'cpu', wasm }), /config/i);
  await assert.rejects(Rlrag.create({ model: { ...splade, tokenizer: 'nope' }, device: 'cpu', wasm }), /tokenizer/i);
  await assert.rejects(Rlrag.create({ model: splade, device: 'tpu', wasm }), /unknown device `tpu`/);
  await assert.rejects(Rlrag.create({ model: splade, device: 'webgpu', wasm }), /WebGPU/);
  await assert.rejects(Rlrag.create({ model: splade, device: 'cpu', rerankM: -1, wasm }), /options/);
  // A misspelt option is refused, not silently ignored.
  await assert.rejects(Rlrag.create({ model: splade, sparsevectors: false, wasm }), /unknown option `sparsevectors`/);
  await assert.rejects(Rlrag.importIndex(new Uint8Array(8), { model: splade, rerankM: 3, wasm }), /unknown option `rerankM`/);
  await assert.rejects(Rlrag.load('x', { dveice: 'cpu' }), /Rlrag.load: unknown option `dveice`/);
  await assert.rejects(Rlrag.create('model-url'), /the options must be an object/);
  await assert.rejects(
    Rlrag.create({ model: 'http://127.0.0.1:9/model', wasm, fetch: async () => ({ ok: false, status: 404 }) }),
    /HTTP 404/,
  );
  // No WebGPU in Node: auto falls back to the CPU.
  const e = await Rlrag.create({ model: splade, device: 'auto', sparseVectors: false, wasm });
  assert.equal(e.backend, 'cpu');
  await assert.rejects(e.addDocuments('nope'), /expected an array/);
  await assert.rejects(e.addDocuments([{ id: 'a' }]), /documents: missing field `text`/);
  await assert.rejects(e.addDocuments([{ id: '', text: 'x' }]), /empty id/);
  await assert.rejects(e.addDocuments([{ id: 'a', text: 'x' }, { id: 'a', text: 'y' }]), /`a`/);
  await assert.rejects(e.addDocuments([{ id: 'big', text: 'x'.repeat((1 << 22) + 1) }]), /at most/);
  assert.equal(e.size, 0, 'nothing was half-added');
  await e.addDocuments(docs.slice(0, 5));
  await assert.rejects(e.search('   '), /empty/);
  await assert.rejects(e.search(42), /must be a string/);
  await assert.rejects(e.search('capital', { k: -1 }), /non-negative/);
  await assert.rejects(e.search('capital', { k: 1e9 }), /at most 10000/);
  await assert.rejects(e.search('capital', { K: 3 }), /search: unknown option `K` \(k, mode, explain, rerank, augment, augmentWeight\)/);
  await assert.rejects(e.search('capital', { explain: 'no' }), /explain must be a boolean/);
  const plain = await e.search('capital', { mode: 'bm25', explain: false });
  const explained = await e.search('capital', { mode: 'bm25' });
  assert.deepEqual(plain.map((h) => [h.id, h.score]), explained.map((h) => [h.id, h.score]));
  assert.ok(plain.every((h) => h.terms.length === 0));
  await assert.rejects(e.search('capital', { mode: 'semantic' }), /unknown mode `semantic`/);
  await assert.rejects(e.search('capital', { mode: 'sparse' }), /sparseVectors/);
  await assert.rejects(e.search('capital', { mode: 'dense' }), /no dense model/);
  assert.deepEqual(await e.search('capital', { k: 0 }), []);
  // Saving needs a browser's Origin Private File System: a clear refusal in Node.
  await assert.rejects(e.save('x'), /Origin Private File System/);
  await assert.rejects(Rlrag.load('x', { wasm }), /Origin Private File System/);
  // The engine still works after every refusal.
  assert.equal((await e.search(golden.results[0].query, { k: 3, mode: 'bot' })).length, 3);
});

const rerankerDir = process.env.RLRAG_RERANKER_DIR;
test(
  'a trained cross-encoder reranks the first stage in the package',
  { skip: rerankerDir ? false : 'RLRAG_RERANKER_DIR is not set (the test command sets it)' },
  async () => {
    const e = await engine({ sparseVectors: false });
    await e.addDocuments(docs);
    const query = golden.results[0].query;
    await assert.rejects(e.search(query, { mode: 'bm25', rerank: 5 }), /no reranker is loaded/);
    await assert.rejects(e.search(query, { mode: 'bm25', rerank: -1 }), /rerank must be a non-negative integer/);
    await assert.rejects(e.loadReranker(splade), /not a cross-encoder/);
    assert.equal(e.hasReranker, false);
    const read = (f) => new Uint8Array(readFileSync(join(rerankerDir, f)));
    await e.loadReranker({ weights: read('model.safetensors'), config: read('config.json'), tokenizer: read('tokenizer.json') });
    assert.equal(e.hasReranker, true);
    const first = await e.search(query, { k: 10, mode: 'bm25', explain: false });
    const hits = await e.search(query, { k: 10, mode: 'bm25', explain: false, rerank: 5 });
    // The top 5 are the first stage's top 5 re-ordered by the logit; the rest keep their order.
    assert.deepEqual(hits.slice(0, 5).map((h) => h.id).sort(), first.slice(0, 5).map((h) => h.id).sort());
    for (let i = 1; i < 5; i++) assert.ok(hits[i - 1].score >= hits[i].score);
    assert.deepEqual(hits.slice(5).map((h) => h.id), first.slice(5).map((h) => h.id));
    await e.loadReranker(null);
    assert.equal(e.hasReranker, false);
    e.free();
  },
);
