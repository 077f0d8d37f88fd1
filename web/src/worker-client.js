// `RlragWorker`: the `Rlrag` API with the engine in a Web Worker, so indexing
// and encoding never block the page. Same methods, all returning Promises;
// `backend`, `size`, `modes` and `wasmMemoryBytes` reflect the worker's
// engine after each call.
import { Rlrag } from './index.js';

/**
 * @typedef {import('./index.js').CreateOptions} CreateOptions
 * @typedef {import('./index.js').Bytes} Bytes
 * @typedef {import('./index.js').DocumentInput} DocumentInput
 * @typedef {import('./index.js').SearchHit} SearchHit
 * @typedef {import('./index.js').SearchMode} SearchMode
 */

/** A model given by URL, made absolute against the page (a worker resolves
 * relative URLs against its own script). */
function absolute(model) {
  if (typeof model === 'string') return new URL(model, globalThis.location?.href).href;
  if (model && typeof model === 'object' && model.baseUrl !== undefined) {
    return { ...model, baseUrl: new URL(String(model.baseUrl), globalThis.location?.href).href };
  }
  return model;
}

function plain(options) {
  // Functions cannot cross postMessage: progress comes back as messages.
  const { onProgress, fetch, ...rest } = options ?? {};
  if (fetch !== undefined) throw new TypeError('RlragWorker: a custom fetch cannot be passed to a worker');
  if (rest.model !== undefined) rest.model = absolute(rest.model);
  if (rest.dense !== undefined) rest.dense = absolute(rest.dense);
  return [rest, onProgress];
}

export class RlragWorker {
  #worker;
  #next = 0;
  #pending = new Map();
  #onProgress;
  backend = null;
  size = 0;
  modes = [];
  /** Bytes of WebAssembly memory in the worker (see `Rlrag.wasmMemoryBytes`). */
  wasmMemoryBytes = 0;

  constructor(worker) {
    this.#worker = worker;
    worker.onmessage = ({ data }) => this.#receive(data);
    worker.onerror = (event) => {
      const error = new Error(`the rlrag worker failed: ${event.message ?? 'unknown error'}`);
      for (const { reject } of this.#pending.values()) reject(error);
      this.#pending.clear();
    };
  }

  /**
   * Start a worker (`workerUrl`: where worker.js is served) and create its engine.
   * @param {CreateOptions} options
   * @param {{workerUrl?: string | URL}} [where]
   * @returns {Promise<RlragWorker>}
   */
  static async create(options, { workerUrl } = {}) {
    const client = new RlragWorker(new Worker(workerUrl ?? new URL('./worker.js', import.meta.url), { type: 'module' }));
    const [rest, onProgress] = plain(options);
    client.#onProgress = onProgress;
    await client.#call('create', [rest]);
    return client;
  }

  /**
   * Start a worker and import an index made by `exportIndex`.
   * @param {Bytes} index
   * @param {Omit<CreateOptions, 'sparseVectors' | 'rerankM'>} options
   * @param {{workerUrl?: string | URL}} [where]
   * @returns {Promise<RlragWorker>}
   */
  static async importIndex(index, options, { workerUrl } = {}) {
    const client = new RlragWorker(new Worker(workerUrl ?? new URL('./worker.js', import.meta.url), { type: 'module' }));
    const [rest, onProgress] = plain(options);
    client.#onProgress = onProgress;
    await client.#call('importIndex', [index, rest]);
    return client;
  }

  /**
   * Start a worker and load the engine saved under `key` (`Rlrag.load`);
   * `null` (and no worker) when there is none or it was discarded.
   * @param {string} [key]
   * @param {{device?: import('./index.js').DeviceChoice, onProgress?: (p: import('./index.js').Progress) => void}} [options]
   * @param {{workerUrl?: string | URL}} [where]
   * @returns {Promise<RlragWorker | null>}
   */
  static async load(key = 'default', options = {}, { workerUrl } = {}) {
    const client = new RlragWorker(new Worker(workerUrl ?? new URL('./worker.js', import.meta.url), { type: 'module' }));
    const [rest, onProgress] = plain(options);
    client.#onProgress = onProgress;
    try {
      if ((await client.#call('load', [key, rest])) === null) {
        client.terminate();
        return null;
      }
    } catch (e) {
      client.terminate();
      throw e;
    }
    return client;
  }

  /**
   * Delete a saved engine (`Rlrag.removeSaved`).
   * @param {string} [key]
   * @returns {Promise<void>}
   */
  static removeSaved(key = 'default') {
    return Rlrag.removeSaved(key);
  }

  /**
   * Save the worker's model files and index in this browser's storage (`Rlrag.save`).
   * @param {string} [key]
   * @returns {Promise<void>}
   */
  save(key = 'default') {
    return this.#call('save', [key]);
  }

  #receive({ id, result, state, error, progress }) {
    // The worker's engine reports progress under the id of the call that
    // created it (long answered by the time documents are added), so
    // progress is passed on whatever its id.
    if (progress !== undefined) {
      this.#onProgress?.(progress);
      return;
    }
    const pending = this.#pending.get(id);
    if (!pending) return;
    this.#pending.delete(id);
    if (error !== undefined) {
      pending.reject(new Error(error));
      return;
    }
    if (state) Object.assign(this, state);
    pending.resolve(result);
  }

  /**
   * @param {string} method
   * @param {unknown[]} args
   * @returns {Promise<any>}
   */
  #call(method, args) {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, method, args });
    });
  }

  /**
   * @param {DocumentInput[]} docs
   * @returns {Promise<number>} the number of documents held
   */
  addDocuments(docs) {
    return this.#call('addDocuments', [docs]);
  }

  /**
   * @param {string[]} ids
   * @returns {Promise<number>} how many were removed
   */
  removeDocuments(ids) {
    return this.#call('removeDocuments', [ids]);
  }

  /**
   * @param {string} query
   * @param {{k?: number, mode?: SearchMode, explain?: boolean, rerank?: number, augment?: string, augmentWeight?: number}} [options]
   * @returns {Promise<SearchHit[]>}
   */
  search(query, options = {}) {
    return this.#call('search', [query, options]);
  }

  /**
   * Load the reranker into the worker (`Rlrag.loadReranker`: a base URL,
   * made absolute against the page, or the files' bytes; `null` removes it).
   * @param {string | {baseUrl: string} | import('./index.js').ModelFiles | null} source
   * @returns {Promise<boolean>}
   */
  loadReranker(source) {
    return this.#call('loadReranker', [source === null ? null : absolute(source)]);
  }

  /**
   * Load a trained routing policy into the worker (`RouterModel.load`: a
   * base URL, made absolute against the page, or `{weights, config}` bytes).
   * @param {string | {baseUrl: string} | {weights: import('./index.js').Bytes, config: import('./index.js').Bytes}} source
   * @returns {Promise<boolean>}
   */
  loadRouter(source) {
    return this.#call('loadRouter', [absolute(source)]);
  }

  /**
   * `engine.route` in the worker. The network is named, not passed (a
   * function cannot cross into a worker): `'none'` or `{kind: 'wikipedia',
   * lang?}`; `policy: 'learned'` uses the model from `loadRouter`.
   * @param {string} question
   * @param {Omit<import('./index.js').RouteOptions, 'network' | 'model' | 'writeQueries' | 'augment'> & {network?: 'none' | {kind: 'wikipedia', lang?: string}}} [options]
   * @returns {Promise<import('./index.js').RouteOutcome>}
   */
  route(question, options = {}) {
    return this.#call('route', [question, options]);
  }

  /** @returns {Promise<Uint8Array>} */
  exportIndex() {
    return this.#call('exportIndex', []);
  }

  /** Stop the worker; pending calls are rejected. */
  terminate() {
    this.#worker.terminate();
    for (const { reject } of this.#pending.values()) reject(new Error('the rlrag worker was terminated'));
    this.#pending.clear();
  }
}
