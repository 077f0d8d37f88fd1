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

import { Rlrag, RouterModel, wikipediaSource } from '../src/index.js';
import { snippetText } from '../src/wikipedia.js';

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

test('an augment callback mixes a hypothetical document into local queries', async () => {
  const { local, web } = await engines();
  const plain = await local.route(question, { policy: 'local' });
  const plainIds = plain.evidence.map((h) => h.id);
  // A local passage the plain route did not rank first, "written" by the callback.
  const target = localDocs.find((d) => d.id !== plainIds[0]);
  const asked = [];
  const augment = async ({ query }) => {
    asked.push(query);
    return `${target.title} ${target.text}`;
  };
  const augmented = await local.route(question, { policy: 'local', augment, augmentWeight: 0.5 });
  assert.ok(asked.length >= 1 && asked.every((q) => typeof q === 'string' && q.length > 0));
  assert.equal(augmented.evidence[0].id, target.id);
  // A failing callback costs the augmentation, not the search.
  const failing = await local.route(question, {
    policy: 'local',
    augment: () => {
      throw new Error('generator down');
    },
  });
  assert.deepEqual(failing.evidence.map((h) => h.id), plainIds);
  await assert.rejects(local.route(question, { augment: 'text' }), /augment must be an async function/);
  await assert.rejects(local.route(question, { augment, augmentWeight: 2 }), /augmentWeight must be a number from 0 to 1/);
  await assert.rejects(local.route(question, { augmentWeight: Number.NaN }), /augmentWeight must be a number from 0 to 1/);
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
    assert.equal(d.features.length, JSON.parse(readFileSync(join(routerDir, 'config.json'), 'utf8')).features);
  }
  await assert.rejects(RouterModel.load({ weights: new Uint8Array([1, 2, 3]), config: read(routerDir, 'config.json') }, { wasm }), /policy weights/);
  await assert.rejects(RouterModel.load({ weights: read(routerDir, 'model.safetensors'), config: '{}' }, { wasm }), /router config.json/);
  local.free();
  web.free();
});

/** A fetch that answers like MediaWiki's search API (`pages`, the query's
 * words first), recording URLs. */
function fakeWikipedia(pages, urls = []) {
  return async (url) => {
    urls.push(url);
    const q = new URL(url).searchParams;
    const words = q.get('srsearch').toLowerCase();
    const named = (p) => p.title.toLowerCase().split(' ').some((w) => words.includes(w));
    const search = [...pages.filter(named), ...pages.filter((p) => !named(p))];
    return new Response(JSON.stringify({ query: { search: search.slice(0, Number(q.get('srlimit'))) } }), {
      headers: { 'content-type': 'application/json' },
    });
  };
}

test('the Wikipedia source asks every sub-query at once and maps the API reply to hits', async () => {
  assert.equal(snippetText('<span class="searchmatch">Shirley</span> Temple &amp; co &quot;x&quot;'), 'Shirley Temple & co "x"');
  const urls = [];
  const pages = [
    { pageid: 7, title: 'Shirley Temple', snippet: 'American <span class="searchmatch">actress</span> and diplomat' },
    { pageid: 9, title: 'Kiss and Tell', snippet: '1945 film' },
  ];
  const source = wikipediaSource({ lang: 'en', fetch: fakeWikipedia(pages, urls) });
  const { hits } = await source({ queries: ['shirley temple', 'kiss film'], k: 2 });
  assert.equal(urls.length, 2);
  const first = new URL(urls[0]);
  assert.equal(first.origin + first.pathname, 'https://en.wikipedia.org/w/api.php');
  assert.equal(first.searchParams.get('origin'), '*', 'CORS for browsers');
  assert.deepEqual(hits[0][0], { id: 'wikipedia:en:7', title: 'Shirley Temple', text: 'American actress and diplomat', score: 2 });
  assert.equal(hits[1][0].title, 'Kiss and Tell');
  assert.throws(() => wikipediaSource({ lang: 'en.evil.com/' }), /not a Wikipedia language code/);
  assert.throws(() => wikipediaSource({ endpoint: 'http://evil.example/w/api.php' }), /not https/);
  assert.throws(() => wikipediaSource({ endpoint: 'not a url' }), /not a URL/);
  assert.throws(() => wikipediaSource({ timeoutMs: 0 }), /timeoutMs/);
  // Each request carries an abort signal and refuses redirects.
  let init;
  await wikipediaSource({ fetch: async (_, i) => { init = i; return new Response(JSON.stringify({ query: { search: [] } })); } })({ queries: ['x'], k: 1 });
  assert.ok(init.signal instanceof AbortSignal && init.redirect === 'error', JSON.stringify(init));

  // Routed: the Wikipedia hits join the evidence; a reply of the wrong shape
  // or an HTTP error is a fault and the question completes locally.
  const { local } = await engines();
  const routed = await local.route(question, { policy: 'network', network: source });
  assert.equal(routed.cost.network_calls, 1);
  assert.ok(routed.evidence.some((h) => h.id.startsWith('wikipedia:en:')), JSON.stringify(routed.evidence));
  const huge = JSON.stringify({ query: { search: [] }, pad: 'x'.repeat(2 << 20) });
  for (const [reply, status, needle] of [
    [{ error: { code: 'maxlag' } }, 200, 'no query.search'],
    [{}, 503, 'HTTP 503'],
    [{ query: { search: [{ title: 'x' }] } }, 200, 'without title or pageid'],
    ['{"query": ', 200, 'not JSON'],
    [huge, 200, 'more than 1048576 bytes'],
  ]) {
    const body = typeof reply === 'string' ? reply : JSON.stringify(reply);
    const lying = wikipediaSource({ fetch: async () => new Response(body, { status }) });
    const out = await local.route(question, { policy: 'network', network: lying });
    const faults = out.trace.decisions[0].faults;
    assert.equal(faults.length, 1);
    assert.ok(JSON.stringify(faults[0]).includes(needle), JSON.stringify(faults[0]));
    assert.ok(out.evidence.length > 0, 'answered from the local index');
  }
  // A server that accepts and never answers: a fault once the timeout fires.
  const stalled = wikipediaSource({
    timeoutMs: 200,
    fetch: (_, { signal }) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
  });
  const t0 = Date.now();
  const out = await local.route(question, { policy: 'network', network: stalled });
  assert.ok(Date.now() - t0 < 5000, `the stall ended in ${Date.now() - t0} ms`);
  assert.equal(out.trace.decisions[0].faults.length, 1, JSON.stringify(out.trace.decisions[0]));
  assert.ok(out.evidence.length > 0, 'answered from the local index');
});

test('an LLM in the page can write the decompose sub-queries; a failing writer is a traced fault', async () => {
  const { local } = await engines();
  const seen = [];
  const writeQueries = async ({ question: q, evidence }) => {
    seen.push([q, evidence.length]);
    return ['  first written query ', '', 'second written query'];
  };
  const out = await local.route(question, { policy: 'decompose', writeQueries });
  const d = out.trace.decisions[0];
  assert.equal(d.action, 'decompose');
  assert.deepEqual(d.queries.slice(0, 2).map((q) => q.text), ['first written query', 'second written query']);
  assert.equal(d.writer_fault, undefined);
  assert.deepEqual(seen, [[question, 0]]);
  // One text with a query per line works too.
  const lines = await local.route(question, { policy: 'decompose', writeQueries: () => '1. alpha query\n2. beta query' });
  assert.deepEqual(lines.trace.decisions[0].queries.slice(0, 2).map((q) => q.text), ['alpha query', 'beta query']);
  for (const [writer, kind] of [
    [() => { throw new Error('no model loaded'); }, 'transport'],
    [async () => 42, 'malformed'],
    [() => new Promise(() => {}), 'timeout'],
  ]) {
    const failed = await local.route(question, { policy: 'decompose', writeQueries: writer, timeoutMs: 200 });
    const decision = failed.trace.decisions[0];
    assert.equal(decision.writer_fault?.kind, kind, JSON.stringify(decision.writer_fault));
    assert.ok(decision.new_passages > 0, 'the heuristic sub-queries still ran');
  }
  await assert.rejects(local.route(question, { writeQueries: 'nope' }), /writeQueries must be an async function/);
});
