// The static server of the browser benchmarks (run.mjs, scale.mjs): files
// by URL path from a `resolve` function, fixed bodies for a few paths, and
// extra headers on every answer (scale.mjs isolates the page across
// origins, which `performance.measureUserAgentSpecificMemory` needs).
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, normalize } from 'node:path';

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.json': 'application/json', '.wasm': 'application/wasm' };

/**
 * Serve on 127.0.0.1 (a free port).
 * @param {(path: string) => string | null} resolve URL path → file, or null (404)
 * @param {{ bodies?: Record<string, Buffer>, headers?: Record<string, string> }} [options]
 * @returns {Promise<{ url: string, close: () => void }>}
 */
export async function serve(resolve, { bodies = {}, headers = {} } = {}) {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname));
    try {
      if (path === '/favicon.ico') {
        res.writeHead(204).end();
        return;
      }
      if (bodies[path]) {
        res.writeHead(200, { ...headers, 'content-type': 'application/json' }).end(bodies[path]);
        return;
      }
      const file = resolve(path);
      if (!file || path.includes('..')) throw new Error('not found');
      const body = await readFile(file);
      res.writeHead(200, { ...headers, 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => server.close() };
}
