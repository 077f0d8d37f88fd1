// The rlrag demo: load the model the trainer wrote and the HotpotQA-100
// paragraphs, index them in a Web Worker (the page never blocks), and search.
// Corpus text is only ever set with textContent (no innerHTML), so the page
// runs under a strict CSP.
import { RlragWorker } from './rlrag/src/worker-client.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const device = params.get('device') ?? 'auto';
const encode = params.get('encode') === '1';
const CHUNK = 100;
/** Candidates the reranker re-reads when "rerank" is ticked. */
const RERANK = 20;

function showError(e) {
  const box = $('error');
  box.hidden = false;
  box.textContent = e instanceof Error ? e.message : String(e);
}

function stage(text, done = 0, total = 1) {
  $('stage').textContent = text;
  $('progress').max = total;
  $('progress').value = done;
}

async function json(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`cannot load ${url}: HTTP ${response.status}`);
  return response.json();
}

/** A word of the text matches a term when it equals the term or, for a word
 * piece ("##ing"), ends with it; terms are lowercase vocabulary tokens. */
function highlighted(text, terms) {
  const words = new Set(terms.filter((t) => !t.startsWith('##')).map((t) => t.toLowerCase()));
  const pieces = terms.filter((t) => t.startsWith('##') && t.length > 3).map((t) => t.slice(2).toLowerCase());
  const out = document.createElement('p');
  out.className = 'hit-text';
  for (const part of text.split(/(\p{L}[\p{L}\p{N}]*|\p{N}+)/u)) {
    const lower = part.toLowerCase();
    if (part && (words.has(lower) || pieces.some((p) => lower.endsWith(p)))) {
      const mark = document.createElement('mark');
      mark.textContent = part;
      out.append(mark);
    } else if (part) {
      out.append(document.createTextNode(part));
    }
  }
  return out;
}

function render(hits) {
  const list = $('results');
  list.replaceChildren();
  for (const hit of hits) {
    const li = document.createElement('li');
    li.dataset.id = hit.id;
    const head = document.createElement('div');
    head.className = 'hit-head';
    const title = document.createElement('span');
    title.className = 'hit-title';
    title.textContent = hit.title || hit.id;
    const score = document.createElement('span');
    score.className = 'hit-score';
    score.textContent = hit.score.toFixed(3);
    head.append(title, score);
    const matched = hit.terms ?? [];
    const terms = document.createElement('ul');
    terms.className = 'terms';
    terms.setAttribute('aria-label', 'matched terms');
    for (const t of matched.slice(0, 12)) {
      const chip = document.createElement('li');
      chip.textContent = `${t.term} ${t.weight.toFixed(2)}`;
      terms.append(chip);
    }
    li.append(head, highlighted(hit.text, matched.map((t) => t.term)), terms);
    list.append(li);
  }
}

/** One line per routing decision: what the policy chose, how sure it was,
 * the sub-queries (and those the memory suppressed), what came back. */
function renderTrace(outcome) {
  const list = $('trace');
  list.replaceChildren();
  const line = (text, className) => {
    const li = document.createElement('li');
    if (className) li.className = className;
    li.textContent = text;
    list.append(li);
  };
  const { sensing, decisions, stop } = outcome.trace;
  if (sensing.ran) {
    line(`sensing (p=${sensing.probability.toFixed(2)}): ${sensing.alignment?.query ?? ''}`, 'sensing');
  }
  for (const d of decisions) {
    const asked = d.queries.filter((q) => q.admission.verdict === 'admitted').map((q) => q.text);
    const suppressed = d.queries.filter((q) => q.admission.verdict !== 'admitted').length;
    let text = `hop ${d.hop + 1}: ${d.action} (p=${d.probability.toFixed(2)})`;
    if (asked.length) text += ` · asked ${asked.map((q) => `“${q}”`).join(', ')}`;
    if (suppressed) text += ` · ${suppressed} repeated quer${suppressed === 1 ? 'y' : 'ies'} suppressed`;
    if (d.action !== 'answer') text += ` · +${d.new_passages} passages · confidence ${d.confidence.toFixed(2)}`;
    for (const f of d.faults) text += ` · ${f.source} failed (${f.fault.kind})${f.fell_back_to_local ? ', answered locally' : ''}`;
    line(text, d.faults.length ? 'fault' : undefined);
  }
  line(`stopped: ${stop}`, 'stop');
}

async function text(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`cannot load ${url}: HTTP ${response.status}`);
  return response.text();
}

/** The storage key of this model + corpus + settings: a new model (a new
 * manifest) never loads an index saved for an old one. */
async function storageKey(parts) {
  const data = new TextEncoder().encode(parts.join('\n'));
  const hash = new Uint8Array(await crypto.subtle.digest('SHA-256', data));
  return `demo:${Array.from(hash.slice(0, 8), (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

async function main() {
  const manifestText = await text('model/manifest.json').catch(() => '{}');
  const manifest = JSON.parse(manifestText);
  $('model').textContent = manifest.reward
    ? `${manifest.model_kind ?? 'sparse'} · trained by reward (${manifest.reward}, ${manifest.steps} steps)`
    : `${manifest.base_model ?? 'splade-tiny'} · pretrained`;
  const corpus = await json('corpus.json');
  const key = await storageKey([manifestText, await text('model/config.json'), String(corpus.length), String(encode)]);
  // The page indexes in chunks and reports them itself; within a chunk only
  // the encoder's progress is worth showing.
  const onProgress = ({ stage: step, done, total }) => {
    if (step !== 'tokens') stage(`Encoding passages… ${done}/${total}`, done, total);
  };
  const t0 = performance.now();
  stage('Looking for a saved index…');
  let engine = params.get('fresh') === '1' ? null : await RlragWorker.load(key, { device, onProgress });
  const restored = engine !== null && engine.size === corpus.length;
  if (!restored) {
    engine?.terminate();
    stage('Loading the model…');
    engine = await RlragWorker.create({ model: 'model', device, sparseVectors: encode, onProgress });
    for (let i = 0; i < corpus.length; i += CHUNK) {
      stage(`Indexing… ${i}/${corpus.length}`, i, corpus.length);
      await engine.addDocuments(corpus.slice(i, i + CHUNK));
    }
    stage('Saving the index in this browser…');
    await engine.save(key).catch((e) => console.warn(`rlrag demo: the index was not saved: ${e.message}`));
  }
  $('backend').textContent = engine.backend;
  if (!encode) $('mode').querySelector('option[value="sparse"]').disabled = true;
  const seconds = (performance.now() - t0) / 1000;
  stage('Ready.', 1, 1);
  $('docs').textContent = String(engine.size);
  $('index-time').textContent = restored
    ? `${seconds.toFixed(1)} s (restored from this browser's storage)`
    : `${seconds.toFixed(1)} s (load + index)`;
  for (const id of ['query', 'mode', 'go', 'question', 'policy', 'wikipedia', 'ask']) $(id).disabled = false;
  const learned = await engine.loadRouter('router').then(
    () => true,
    () => false,
  );
  if (!learned) {
    $('policy').querySelector('option[value="learned"]').disabled = true;
    $('policy').value = 'multihop';
  }
  // A reranker served with the page (scripts/build-demo.sh --reranker).
  $('rerank').disabled = !(await engine.loadReranker('reranker').then(
    () => true,
    () => false,
  ));
  document.body.dataset.restored = String(restored);
  document.body.dataset.ready = 'true';

  $('search').addEventListener('submit', async (event) => {
    event.preventDefault();
    $('error').hidden = true;
    const query = $('query').value;
    const mode = $('mode').value;
    const rerank = $('rerank').checked && !$('rerank').disabled ? RERANK : 0;
    try {
      const start = performance.now();
      const hits = await engine.search(query, { k: 10, mode, rerank });
      const ms = performance.now() - start;
      render(hits);
      const reranked = rerank ? ` · top ${rerank} reranked` : '';
      $('timing').textContent = `${hits.length} results in ${ms.toFixed(1)} ms · ${mode}${reranked} · ${engine.backend}`;
      $('trace').replaceChildren();
      document.body.dataset.searched = String(Number(document.body.dataset.searched ?? 0) + 1);
    } catch (e) {
      showError(e);
    }
  });

  $('route').addEventListener('submit', async (event) => {
    event.preventDefault();
    $('error').hidden = true;
    const policy = $('policy').value;
    const network = $('wikipedia').checked ? { kind: 'wikipedia' } : 'none';
    try {
      const start = performance.now();
      const outcome = await engine.route($('question').value, { policy, network, timeoutMs: 4000 });
      const ms = performance.now() - start;
      render(outcome.evidence);
      renderTrace(outcome);
      const { network_calls: calls, rounds } = outcome.cost;
      $('timing').textContent = `${outcome.evidence.length} passages in ${ms.toFixed(0)} ms · ${policy} · ${rounds} round${rounds === 1 ? '' : 's'} · ${calls} network call${calls === 1 ? '' : 's'}`;
      document.body.dataset.routed = String(Number(document.body.dataset.routed ?? 0) + 1);
    } catch (e) {
      showError(e);
    }
  });
}

main().catch((e) => {
  stage('Failed.');
  showError(e);
  document.body.dataset.ready = 'error';
});
