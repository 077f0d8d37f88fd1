// rlrag: the retriever the trainer produced, running in the page (or in
// Node). JavaScript fetches; the wasm engine indexes and searches.
import init, { Engine, ModelBytes } from '../pkg/rlrag_wasm.js';

/**
 * @typedef {Uint8Array | ArrayBuffer | ArrayBufferView | string} Bytes
 * @typedef {{weights: Bytes, config: Bytes, tokenizer: Bytes}} ModelFiles
 *   The three files of a model directory (as the trainer writes them).
 * @typedef {string | {baseUrl: string} | ModelFiles} ModelSource
 *   Files, or a base URL under which they are fetched.
 * @typedef {'auto' | 'webgpu' | 'cpu'} DeviceChoice
 * @typedef {'sparse' | 'bot' | 'dense' | 'bm25' | 'hybrid'} SearchMode
 * @typedef {{stage: string, done: number, total: number}} Progress
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
 */

const MODEL_FILES = ['model.safetensors', 'config.json', 'tokenizer.json'];
let ready = null;

/** Initialise the wasm module once (`wasm`: URL, Response, bytes or module). */
function initWasm(wasm) {
  if (!ready) {
    ready = init(wasm === undefined ? undefined : { module_or_path: wasm }).catch((e) => {
      ready = null;
      throw e;
    });
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
 */
async function modelBytes(model, what, fetchImpl) {
  if (model === undefined || model === null) throw new TypeError(`${what}: a model is required`);
  const baseUrl = typeof model === 'string' ? model : model.baseUrl;
  if (baseUrl !== undefined) {
    const base = String(baseUrl).replace(/\/+$/, '');
    const [weights, config, tokenizer] = await Promise.all(
      MODEL_FILES.map((f) => fetchBytes(`${base}/${f}`, fetchImpl)),
    );
    return new ModelBytes(weights, config, tokenizer);
  }
  return new ModelBytes(
    bytes(model.weights, `${what}.weights`),
    bytes(model.config, `${what}.config`),
    bytes(model.tokenizer, `${what}.tokenizer`),
  );
}

function engineOptions({ device = 'auto', sparseVectors, rerankM } = {}) {
  const options = { device };
  if (sparseVectors !== undefined) options.sparseVectors = sparseVectors;
  if (rerankM !== undefined) options.rerankM = rerankM;
  return options;
}

export class Rlrag {
  #engine;
  #onProgress;
  #queue = Promise.resolve();

  constructor(engine, onProgress) {
    this.#engine = engine;
    this.#onProgress = onProgress;
  }

  /**
   * Load the models and make an empty engine.
   * @param {CreateOptions} options
   * @returns {Promise<Rlrag>}
   */
  static async create(options) {
    const { model, dense, onProgress, wasm } = options;
    const fetchImpl = options.fetch ?? globalThis.fetch;
    await initWasm(wasm);
    const sparse = await modelBytes(model, 'model', fetchImpl);
    const denseModel = dense === undefined ? undefined : await modelBytes(dense, 'dense', fetchImpl);
    const engine = await Engine.create(sparse, denseModel, engineOptions(options));
    return new Rlrag(engine, onProgress);
  }

  /**
   * An engine from `exportIndex()` bytes and the same model files.
   * @param {Bytes} index
   * @param {Omit<CreateOptions, 'sparseVectors' | 'rerankM'>} options
   * @returns {Promise<Rlrag>}
   */
  static async importIndex(index, options) {
    const { model, dense, onProgress, wasm, device = 'auto' } = options;
    const fetchImpl = options.fetch ?? globalThis.fetch;
    await initWasm(wasm);
    const sparse = await modelBytes(model, 'model', fetchImpl);
    const denseModel = dense === undefined ? undefined : await modelBytes(dense, 'dense', fetchImpl);
    const engine = await Engine.importIndex(sparse, denseModel, bytes(index, 'index'), { device });
    return new Rlrag(engine, onProgress);
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
   * The best `k` documents, best first, each with the learned-sparse terms it matched.
   * @param {string} query
   * @param {{k?: number, mode?: SearchMode}} [options]
   * @returns {Promise<SearchHit[]>}
   */
  search(query, { k = 10, mode = 'hybrid' } = {}) {
    if (typeof query !== 'string') return Promise.reject(new TypeError('search: the query must be a string'));
    if (!Number.isInteger(k) || k < 0) return Promise.reject(new RangeError('search: k must be a non-negative integer'));
    return this.#run(() => this.#engine.search(query, k, mode));
  }

  /**
   * The corpus and every index as bytes, for `Rlrag.importIndex`.
   * @returns {Promise<Uint8Array>}
   */
  exportIndex() {
    return this.#run(() => this.#engine.exportIndex());
  }

  /** Free the wasm memory; the engine is unusable afterwards. */
  free() {
    this.#engine.free();
  }
}
