// rlrag: the retriever the trainer produced, running in the page (or in
// Node). JavaScript fetches; the wasm engine indexes and searches.
import init, { Engine, ModelBytes, RouterModel as WasmRouterModel } from '../pkg/rlrag_wasm.js';
import { decodeRecord, encodeRecord } from './record.js';

/**
 * @typedef {Uint8Array | ArrayBuffer | ArrayBufferView | string} Bytes
 * @typedef {{weights: Bytes, config: Bytes, tokenizer: Bytes}} ModelFiles
 *   The three files of a model directory (as the trainer writes them).
 * @typedef {string | {baseUrl: string} | ModelFiles} ModelSource
 *   Files, or a base URL under which they are fetched.
 * @typedef {'auto' | 'webgpu' | 'cpu'} DeviceChoice
 * @typedef {'sparse' | 'bot' | 'dense' | 'bm25' | 'hybrid'} SearchMode
 * @typedef {{stage: 'tokens' | 'sparse' | 'dense', done: number, total: number}} Progress
 * @typedef {{
 *   model: ModelSource,
 *   dense?: ModelSource,
 *   device?: DeviceChoice,
 *   sparseVectors?: boolean,
 *   rerankM?: number,
 *   onProgress?: (progress: Progress) => void,
 *   wasm?: any,
 *   fetch?: typeof globalThis.fetch,
 * }} CreateOptions
 * @typedef {{id: string, text: string, title?: string}} DocumentInput
 * @typedef {{term: string, weight: number}} TermWeight
 * @typedef {{id: string, score: number, title: string, text: string, terms: TermWeight[]}} SearchHit
 * @typedef {{id: string, title?: string, text: string, score: number}} NetworkHit
 * @typedef {(request: {queries: string[], k: number}) => Promise<{hits: NetworkHit[][]}> | {hits: NetworkHit[][]}} NetworkSearch
 *   The network source: answers up to three queries at once, one hit list per query.
 * @typedef {(request: {question: string, evidence: NetworkHit[]}) => Promise<string[] | string> | string[] | string} QueryWriter
 *   Writes up to three sub-queries for a `decompose` hop (an LLM in the page):
 *   a list, or one text with a query per line.
 * @typedef {(request: {query: string}) => Promise<string> | string} Augmenter
 *   Writes a hypothetical document for a local query (an LLM in the page),
 *   mixed into the query at `augmentWeight` (Reinforced-IR's augmentation).
 * @typedef {'learned' | 'local' | 'network' | 'both' | 'multihop' | 'decompose'} RoutePolicy
 * @typedef {{
 *   policy?: RoutePolicy,
 *   network?: NetworkSearch,
 *   writeQueries?: QueryWriter,
 *   augment?: Augmenter,
 *   augmentWeight?: number,
 *   model?: RouterModel,
 *   timeoutMs?: number,
 *   k?: number,
 *   maxHops?: number,
 *   localMode?: SearchMode,
 * }} RouteOptions
 * @typedef {{local_calls: number, network_calls: number, rounds: number, latency_ms: number}} RouteCost
 * @typedef {{evidence: NetworkHit[], trace: any, cost: RouteCost}} RouteOutcome
 *   The gathered passages (best first), every decision of the router, and what it spent.
 */

const MODEL_FILES = ['model.safetensors', 'config.json', 'tokenizer.json'];
const ROUTE_OPTIONS = [
  'network',
  'writeQueries',
  'augment',
  'augmentWeight',
  'model',
  'policy',
  'timeoutMs',
  'k',
  'maxHops',
  'localMode',
];
const CREATE_OPTIONS = ['model', 'dense', 'device', 'sparseVectors', 'rerankM', 'onProgress', 'wasm', 'fetch'];
const IMPORT_OPTIONS = ['model', 'dense', 'device', 'onProgress', 'wasm', 'fetch'];
const LOAD_OPTIONS = ['device', 'onProgress', 'wasm'];
const SEARCH_OPTIONS = ['k', 'mode', 'explain', 'rerank', 'augment', 'augmentWeight'];
/** The hypothetical document's share of an augmented query (Reinforced-IR). */
const AUGMENT_WEIGHT = 0.2;
const RERANKER_OPTIONS = ['fetch'];

/** A TypeError naming the first key of `options` not in `allowed` (a typo
 * would otherwise be ignored silently), or `null`. */
function unknownOption(options, allowed, what) {
  if (options === undefined || options === null) return null;
  if (typeof options !== 'object') return new TypeError(`${what}: the options must be an object`);
  const unknown = Object.keys(options).find((key) => !allowed.includes(key));
  return unknown === undefined ? null : new TypeError(`${what}: unknown option \`${unknown}\` (${allowed.join(', ')})`);
}
let ready = null;
/** The module's linear memory, once initialised. */
let wasmMemory = null;

/** Initialise the wasm module once (`wasm`: URL, Response, bytes or module). */
function initWasm(wasm) {
  if (!ready) {
    ready = init(wasm === undefined ? undefined : { module_or_path: wasm }).then(
      (exports) => {
        wasmMemory = exports.memory;
        return exports;
      },
      (e) => {
        ready = null;
        throw e;
      },
    );
  }
  return ready;
}

function bytes(value, what) {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (typeof value === 'string') return new TextEncoder().encode(value);
  throw new TypeError(`${what}: expected bytes (Uint8Array or ArrayBuffer) or a string`);
}

async function fetchBytes(url, fetchImpl) {
  let response;
  try {
    response = await fetchImpl(url);
  } catch (e) {
    throw new Error(`cannot fetch ${url}: ${e.message}`);
  }
  if (!response.ok) throw new Error(`cannot fetch ${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/**
 * A model directory as the trainer writes it: either the files' bytes
 * `{weights, config, tokenizer}` or a base URL (string or `{baseUrl}`) under
 * which `model.safetensors`, `config.json` and `tokenizer.json` are fetched.
 * Fetched, the config and tokenizer are read and checked as soon as they
 * arrive, while the weights still download.
 * @returns {Promise<{files: {weights: Uint8Array, config: Uint8Array, tokenizer: Uint8Array}, wasm: ModelBytes}>}
 *   the files, and the wasm side's model (copied into wasm memory)
 */
async function modelFiles(model, what, fetchImpl, wasmReady) {
  if (model === undefined || model === null) throw new TypeError(`${what}: a model is required`);
  const baseUrl = typeof model === 'string' ? model : model.baseUrl;
  if (baseUrl === undefined) {
    const files = {
      weights: bytes(model.weights, `${what}.weights`),
      config: bytes(model.config, `${what}.config`),
      tokenizer: bytes(model.tokenizer, `${what}.tokenizer`),
    };
    await wasmReady;
    return { files, wasm: new ModelBytes(files.weights, files.config, files.tokenizer) };
  }
  const base = String(baseUrl).replace(/\/+$/, '');
  const [weightsFetch, configFetch, tokenizerFetch] = MODEL_FILES.map((f) => fetchBytes(`${base}/${f}`, fetchImpl));
  // Awaited below; until then a failure must not count as unhandled.
  weightsFetch.catch(() => {});
  const [, config, tokenizer] = await Promise.all([wasmReady, configFetch, tokenizerFetch]);
  const prepared = ModelBytes.prepare(config, tokenizer);
  try {
    const weights = await weightsFetch;
    prepared.setWeights(weights);
    return { files: { weights, config, tokenizer }, wasm: prepared };
  } catch (e) {
    prepared.free();
    throw e;
  }
}

/**
 * The models of `options`, fetched (both at once) or taken as bytes, once
 * the wasm module (`wasmReady`) is there: their files (kept for `save`) and
 * the wasm side's models.
 */
async function loadModels(options, wasmReady) {
  const fetchImpl = options.fetch ?? globalThis.fetch;
  // Awaited in modelFiles, unless a model option is refused first.
  wasmReady.catch(() => {});
  const [model, dense] = await Promise.allSettled([
    modelFiles(options.model, 'model', fetchImpl, wasmReady),
    options.dense === undefined ? undefined : modelFiles(options.dense, 'dense', fetchImpl, wasmReady),
  ]);
  if (model.status === 'rejected' || dense.status === 'rejected') {
    // One failed: free what the other copied into wasm memory.
    for (const r of [model, dense]) if (r.status === 'fulfilled') r.value?.wasm.free();
    throw model.status === 'rejected' ? model.reason : dense.reason;
  }
  return {
    files: { model: model.value.files, dense: dense.value?.files },
    wasm: { model: model.value.wasm, dense: dense.value?.wasm },
  };
}

// Persistence in the Origin Private File System (OPFS): one file per key
// holding the model files and the exported index. A file is replaced
// atomically (createWritable commits on close), so it is never half-saved;
// on load it is checked whole: its frame here, the index's own checksum and
// the models' fingerprints in Rust. (IndexedDB was tried first: Chromium
// stores large values as side files and intermittently fails to read them
// back, "Failed to read large IndexedDB value".)
async function storageDir() {
  const storage = globalThis.navigator?.storage;
  if (!storage?.getDirectory) throw new Error('no Origin Private File System here (navigator.storage.getDirectory)');
  const root = await storage.getDirectory();
  return root.getDirectoryHandle('rlrag', { create: true });
}

const recordName = (key) => `${encodeURIComponent(String(key))}.rlrag`;

function engineOptions({ device = 'auto', sparseVectors, rerankM } = {}) {
  const options = { device };
  if (sparseVectors !== undefined) options.sparseVectors = sparseVectors;
  if (rerankM !== undefined) options.rerankM = rerankM;
  return options;
}

export class Rlrag {
  #engine;
  #onProgress;
  #files;
  #queue = Promise.resolve();

  /** @private use `Rlrag.create`, `Rlrag.importIndex` or `Rlrag.load` */
  constructor(engine, onProgress, files) {
    this.#engine = engine;
    this.#onProgress = onProgress;
    this.#files = files;
  }

  /**
   * Load the models and make an empty engine.
   * @param {CreateOptions} options
   * @returns {Promise<Rlrag>}
   */
  static async create(options) {
    const bad = unknownOption(options, CREATE_OPTIONS, 'Rlrag.create');
    if (bad) throw bad;
    // The wasm compiles while the model downloads.
    const { files, wasm } = await loadModels(options ?? {}, initWasm(options?.wasm));
    const engine = await Engine.create(wasm.model, wasm.dense, engineOptions(options));
    return new Rlrag(engine, options.onProgress, files);
  }

  /**
   * An engine from `exportIndex()` bytes and the same model files.
   * @param {Bytes} index
   * @param {Omit<CreateOptions, 'sparseVectors' | 'rerankM'>} options
   * @returns {Promise<Rlrag>}
   */
  static async importIndex(index, options) {
    const bad = unknownOption(options, IMPORT_OPTIONS, 'Rlrag.importIndex');
    if (bad) throw bad;
    // The wasm compiles while the model downloads.
    const { files, wasm } = await loadModels(options ?? {}, initWasm(options?.wasm));
    const device = options.device ?? 'auto';
    const engine = await Engine.importIndex(wasm.model, wasm.dense, bytes(index, 'index'), { device });
    return new Rlrag(engine, options.onProgress, files);
  }

  /**
   * Save the model files and the index under `key` in the Origin Private
   * File System (browsers and workers; not Node), replacing any earlier save
   * atomically.
   * @param {string} [key]
   * @returns {Promise<void>}
   */
  async save(key = 'default') {
    const index = await this.exportIndex();
    const { model, dense } = this.#files;
    const parts = [model.weights, model.config, model.tokenizer];
    if (dense) parts.push(dense.weights, dense.config, dense.tokenizer);
    parts.push(index);
    const file = await (await storageDir()).getFileHandle(recordName(key), { create: true });
    const writable = await file.createWritable();
    try {
      await writable.write(encodeRecord(parts));
      await writable.close();
    } catch (e) {
      await writable.abort().catch(() => {});
      throw e;
    }
  }

  /**
   * The engine saved under `key`, or `null` when there is none. A save the
   * checks refuse (another format version, truncated, corrupt, other
   * models) is deleted with a console warning and `null` is returned: never
   * a half-loaded engine. Any other failure (the wasm module, the device,
   * memory) rejects and keeps the save for the next try.
   * @param {string} [key]
   * @param {{device?: DeviceChoice, onProgress?: (progress: Progress) => void, wasm?: any}} [options]
   * @returns {Promise<Rlrag | null>}
   */
  static async load(key = 'default', options = {}) {
    const bad = unknownOption(options, LOAD_OPTIONS, 'Rlrag.load');
    if (bad) throw bad;
    let handle;
    try {
      handle = await (await storageDir()).getFileHandle(recordName(key));
    } catch (e) {
      if (e?.name === 'NotFoundError') return null;
      throw e;
    }
    const bytes = new Uint8Array(await (await handle.getFile()).arrayBuffer());
    const discard = async (why) => {
      console.warn(`rlrag: discarding the saved engine "${key}": ${why}`);
      await Rlrag.removeSaved(key);
      return null;
    };
    const { parts, why } = decodeRecord(bytes);
    if (!parts) return discard(why);
    const files = (p) => ({ weights: p[0], config: p[1], tokenizer: p[2] });
    try {
      return await Rlrag.importIndex(parts[parts.length - 1], {
        model: files(parts),
        dense: parts.length === 7 ? files(parts.slice(3)) : undefined,
        device: options.device,
        onProgress: options.onProgress,
        wasm: options.wasm,
      });
    } catch (e) {
      if (e?.name === 'RlragIndexError') return discard(e.message);
      throw e;
    }
  }

  /**
   * Delete what `save` stored under `key` (nothing if absent).
   * @param {string} [key]
   * @returns {Promise<void>}
   */
  static async removeSaved(key = 'default') {
    try {
      await (await storageDir()).removeEntry(recordName(key));
    } catch (e) {
      if (e?.name !== 'NotFoundError') throw e;
    }
  }

  /** Calls run one at a time, in order. */
  #run(call) {
    const result = this.#queue.then(call);
    this.#queue = result.catch(() => {});
    return result;
  }

  /** @returns {'webgpu' | 'cpu'} where the encoders run */
  get backend() {
    return this.#engine.backend;
  }

  /** @returns {number} documents held */
  get size() {
    return this.#engine.size;
  }

  /**
   * Bytes of WebAssembly memory the module holds: every engine of this page
   * (or worker) together, models and indexes included. It grows as
   * documents arrive and never shrinks; a JS-side heap measurement
   * (`performance.measureUserAgentSpecificMemory`) leaves it out.
   * @returns {number}
   */
  get wasmMemoryBytes() {
    return wasmMemory?.buffer.byteLength ?? 0;
  }

  /** @returns {SearchMode[]} the modes this engine answers */
  get modes() {
    return this.#engine.modes;
  }

  /**
   * Index documents (replacing any with the same id).
   * @param {DocumentInput[]} docs
   * @returns {Promise<number>} the number of documents held
   */
  addDocuments(docs) {
    if (!Array.isArray(docs)) return Promise.reject(new TypeError('addDocuments: expected an array of {id, text, title?}'));
    const progress = this.#onProgress;
    return this.#run(() =>
      this.#engine.addDocuments(docs, progress ? (stage, done, total) => progress({ stage, done, total }) : undefined),
    );
  }

  /**
   * Remove documents by id.
   * @param {string[]} ids
   * @returns {Promise<number>} how many were removed
   */
  removeDocuments(ids) {
    if (!Array.isArray(ids)) return Promise.reject(new TypeError('removeDocuments: expected an array of ids'));
    return this.#run(() => this.#engine.removeDocuments(ids.map(String)));
  }

  /**
   * The best `k` documents, best first, each with the learned-sparse terms it
   * matched (`explain: false`: no terms, and BM25 runs without the encoder).
   * `rerank: M` re-scores the first stage's top M with the reranker
   * (`loadReranker`): each passage is read together with the query, and
   * their score becomes the cross-encoder's logit. `augment`: a
   * hypothetical document written for the query (by an LLM: HyDE,
   * Reinforced-IR), mixed into the first stage's query as
   * `(1 - augmentWeight)·query + augmentWeight·document` (default 0.2)
   * in every retriever; the reranker reads the query alone.
   * @param {string} query
   * @param {{k?: number, mode?: SearchMode, explain?: boolean, rerank?: number, augment?: string, augmentWeight?: number}} [options]
   * @returns {Promise<SearchHit[]>}
   */
  search(query, options = {}) {
    const bad = unknownOption(options, SEARCH_OPTIONS, 'search');
    if (bad) return Promise.reject(bad);
    const { k = 10, mode = 'hybrid', explain = true, rerank = 0, augment, augmentWeight = AUGMENT_WEIGHT } = options;
    if (typeof query !== 'string') return Promise.reject(new TypeError('search: the query must be a string'));
    if (!Number.isInteger(k) || k < 0) return Promise.reject(new RangeError('search: k must be a non-negative integer'));
    if (typeof explain !== 'boolean') return Promise.reject(new TypeError('search: explain must be a boolean'));
    if (!Number.isInteger(rerank) || rerank < 0) {
      return Promise.reject(new RangeError('search: rerank must be a non-negative integer'));
    }
    if (augment !== undefined && typeof augment !== 'string') {
      return Promise.reject(new TypeError('search: augment must be a string (a hypothetical document)'));
    }
    if (typeof augmentWeight !== 'number' || !(augmentWeight >= 0 && augmentWeight <= 1)) {
      return Promise.reject(new RangeError('search: augmentWeight must be a number from 0 to 1'));
    }
    return this.#run(() => this.#engine.search(query, k, mode, explain, rerank, augment, augmentWeight));
  }

  /**
   * Load the cross-encoder that `search({rerank})` re-scores with: the
   * directory `trainer train-reranker` writes, as bytes or a base URL
   * (`null` removes it). It runs on the engine's device. Not part of
   * `save`/`exportIndex`: load it again after `Rlrag.load`.
   * @param {ModelSource | null} source
   * @param {{fetch?: typeof globalThis.fetch}} [options]
   * @returns {Promise<void>}
   */
  async loadReranker(source, options = {}) {
    const bad = unknownOption(options, RERANKER_OPTIONS, 'loadReranker');
    if (bad) throw bad;
    if (source === null) return this.#run(() => this.#engine.setReranker(undefined));
    const { wasm } = await modelFiles(source, 'reranker', options.fetch ?? globalThis.fetch, initWasm());
    return this.#run(() => this.#engine.setReranker(wasm));
  }

  /** @returns {boolean} whether a reranker is loaded (`loadReranker`) */
  get hasReranker() {
    return this.#engine.hasReranker;
  }

  /**
   * The corpus and every index as bytes, for `Rlrag.importIndex`.
   * @returns {Promise<Uint8Array>}
   */
  exportIndex() {
    return this.#run(() => this.#engine.exportIndex());
  }

  /**
   * Answer-side retrieval for `question` through the router: this engine is
   * the local source, `network` (optional) the network source; a fixed
   * policy or a trained `RouterModel` decides hop by hop. The network
   * callback must not call this same engine (calls run one at a time).
   * @param {string} question
   * @param {RouteOptions} [options]
   * @returns {Promise<RouteOutcome>}
   */
  route(question, routeOptions = {}) {
    const bad = unknownOption(routeOptions, ROUTE_OPTIONS, 'route');
    if (bad) return Promise.reject(bad);
    const { network, writeQueries, augment, model, ...options } = routeOptions;
    if (typeof question !== 'string') return Promise.reject(new TypeError('route: the question must be a string'));
    if (network !== undefined && typeof network !== 'function') {
      return Promise.reject(new TypeError('route: network must be an async function ({queries, k}) => ({hits})'));
    }
    if (writeQueries !== undefined && typeof writeQueries !== 'function') {
      return Promise.reject(new TypeError('route: writeQueries must be an async function ({question, evidence}) => string[]'));
    }
    if (augment !== undefined && typeof augment !== 'function') {
      return Promise.reject(new TypeError('route: augment must be an async function ({query}) => string'));
    }
    const { augmentWeight } = options;
    if (augmentWeight !== undefined && (typeof augmentWeight !== 'number' || !(augmentWeight >= 0 && augmentWeight <= 1))) {
      return Promise.reject(new RangeError('route: augmentWeight must be a number from 0 to 1'));
    }
    if (model !== undefined && !(model instanceof RouterModel)) {
      return Promise.reject(new TypeError('route: model must be a RouterModel'));
    }
    return this.#run(() =>
      model
        ? this.#engine.routeLearned(question, model.wasm, network, writeQueries, augment, options)
        : this.#engine.route(question, network, writeQueries, augment, options),
    );
  }

  /** Free the wasm memory; the engine is unusable afterwards. */
  free() {
    this.#engine.free();
  }
}

/** A trained routing policy: the directory `trainer train-router` writes. */
export class RouterModel {
  /** @private use `RouterModel.load` */
  constructor(wasm) {
    /** @private */
    this.wasm = wasm;
  }

  /**
   * Load `{weights, config}` bytes or a base URL with `model.safetensors` and `config.json`.
   * @param {string | {baseUrl: string} | {weights: Bytes, config: Bytes}} source
   * @param {{wasm?: any, fetch?: typeof globalThis.fetch}} [options]
   * @returns {Promise<RouterModel>}
   */
  static async load(source, options = {}) {
    await initWasm(options.wasm);
    const baseUrl = typeof source === 'string' ? source : source?.baseUrl;
    let weights;
    let config;
    if (baseUrl !== undefined) {
      const base = String(baseUrl).replace(/\/+$/, '');
      const fetchImpl = options.fetch ?? globalThis.fetch;
      [weights, config] = await Promise.all([
        fetchBytes(`${base}/model.safetensors`, fetchImpl),
        fetchBytes(`${base}/config.json`, fetchImpl),
      ]);
    } else {
      weights = bytes(source?.weights, 'router.weights');
      config = bytes(source?.config, 'router.config');
    }
    return new RouterModel(WasmRouterModel.load(weights, config));
  }
}
export { wikipediaSource } from './wikipedia.js';
