// The Web Worker side of `RlragWorker` (worker-client.js): one engine per
// worker, driven by messages `{id, method, args}`; answers `{id, result}`,
// `{id, error}` or, while indexing, `{id, progress}`.
import { Rlrag, RouterModel } from './index.js';
import { wikipediaSource } from './wikipedia.js';

let engine = null;
let router = null;

/** Network sources a worker can build itself (functions cannot be posted). */
function networkSource(network) {
  if (network === undefined || network === null || network === 'none') return undefined;
  if (network?.kind === 'wikipedia') return wikipediaSource({ lang: network.lang });
  throw new Error(`route: unknown network ${JSON.stringify(network)} (the worker builds 'none' or {kind: 'wikipedia', lang?})`);
}

function info() {
  return { backend: engine.backend, size: engine.size, modes: engine.modes, wasmMemoryBytes: engine.wasmMemoryBytes };
}

async function call(id, method, args) {
  const onProgress = (progress) => self.postMessage({ id, progress });
  if (method === 'create' || method === 'importIndex') {
    if (engine) engine.free();
    engine = null;
    const options = { ...args[args.length - 1], onProgress };
    engine = method === 'create' ? await Rlrag.create(options) : await Rlrag.importIndex(args[0], options);
    return [info(), info()];
  }
  if (method === 'load') {
    if (engine) engine.free();
    engine = await Rlrag.load(args[0], { ...args[1], onProgress });
    return engine ? [info(), info()] : [null];
  }
  if (!engine) throw new Error('the worker has no engine yet: call create, importIndex or load first');
  switch (method) {
    case 'save':
      return [await engine.save(args[0])];
    case 'addDocuments':
      return [await engine.addDocuments(args[0]), info()];
    case 'removeDocuments':
      return [await engine.removeDocuments(args[0]), info()];
    case 'search':
      return [await engine.search(args[0], args[1])];
    case 'loadReranker':
      await engine.loadReranker(args[0]);
      return [true];
    case 'loadRouter':
      router = await RouterModel.load(args[0]);
      return [true];
    case 'route': {
      const { network, policy, ...options } = args[1] ?? {};
      if (policy === 'learned' && !router) throw new Error('route: the learned policy needs loadRouter first');
      const model = policy === 'learned' ? router : undefined;
      return [
        await engine.route(args[0], {
          ...options,
          ...(model ? { model } : { policy }),
          network: networkSource(network),
        }),
      ];
    }
    case 'exportIndex': {
      const bytes = await engine.exportIndex();
      return [bytes, null, [bytes.buffer]];
    }
    default:
      throw new Error(`unknown method ${method}`);
  }
}

self.onmessage = async ({ data }) => {
  const { id, method, args } = data ?? {};
  try {
    const [result, state, transfer] = await call(id, method, Array.isArray(args) ? args : []);
    self.postMessage({ id, result, state }, transfer ?? []);
  } catch (e) {
    self.postMessage({ id, error: e instanceof Error ? e.message : String(e) });
  }
};
