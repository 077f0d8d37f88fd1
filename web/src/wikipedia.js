// A network source for `engine.route` over Wikipedia's public search API
// (MediaWiki `list=search`, CORS through `origin=*`): every sub-query of a
// round is sent at once (`Promise.all`), each hit is the article's title and
// search snippet. Anything but the API's JSON shape is refused with an error,
// which the router records as a fault and answers from the local index.

/**
 * @typedef {import('./index.js').NetworkSearch} NetworkSearch
 * @typedef {{
 *   lang?: string,
 *   fetch?: typeof globalThis.fetch,
 *   endpoint?: string,
 *   timeoutMs?: number,
 * }} WikipediaOptions
 */

/** Longest snippet kept, in characters. */
const MAX_SNIPPET = 2000;
/** Largest reply read, in bytes (50 results with snippets are ~30 kB). */
const MAX_REPLY_BYTES = 1 << 20;

/** The reply's body as text, refused past `limit` bytes (a stream is cut there). */
async function boundedText(response, limit) {
  const declared = Number(response.headers?.get?.('content-length'));
  if (Number.isFinite(declared) && declared > limit) {
    throw new Error(`Wikipedia search: a reply of ${declared} bytes (at most ${limit})`);
  }
  if (!response.body?.getReader) return (await response.text()).slice(0, limit + 1);
  const reader = response.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > limit) {
      await reader.cancel();
      throw new Error(`Wikipedia search: a reply of more than ${limit} bytes`);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  return new TextDecoder().decode(all);
}

const ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', '#039': "'", '#39': "'", nbsp: ' ' };

/** A search snippet as plain text: tags out, the common entities decoded. */
export function snippetText(html) {
  return String(html)
    .replace(/<[^>]*>/g, '')
    .replace(/&(amp|lt|gt|quot|#039|#39|nbsp);/g, (_, name) => ENTITIES[name])
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, MAX_SNIPPET);
}

/**
 * The network callback for `engine.route({network})` over Wikipedia.
 * @param {WikipediaOptions} [options]
 * @returns {NetworkSearch}
 */
export function wikipediaSource({ lang = 'en', fetch: fetchImpl, endpoint, timeoutMs = 8000 } = {}) {
  if (!/^[a-z][a-z-]{1,11}$/.test(lang)) throw new TypeError(`wikipediaSource: \`${lang}\` is not a Wikipedia language code`);
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new TypeError('wikipediaSource: timeoutMs must be a positive number');
  const base = endpoint ?? `https://${lang}.wikipedia.org/w/api.php`;
  let parsed;
  try {
    parsed = new URL(base);
  } catch {
    throw new TypeError(`wikipediaSource: endpoint \`${base}\` is not a URL`);
  }
  // https, or http to this machine (a test server): never plain http elsewhere.
  const local = parsed.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(parsed.hostname);
  if (parsed.protocol !== 'https:' && !local) {
    throw new TypeError(`wikipediaSource: endpoint \`${base}\` is not https`);
  }
  const get = fetchImpl ?? ((...args) => globalThis.fetch(...args));
  const one = async (query, k) => {
    const url = new URL(base);
    for (const [key, value] of Object.entries({
      action: 'query',
      list: 'search',
      srsearch: query,
      srlimit: String(Math.max(1, Math.min(k, 50))),
      srprop: 'snippet',
      format: 'json',
      origin: '*',
    })) {
      url.searchParams.set(key, value);
    }
    // A stalled server is a fault after `timeoutMs`; a redirect is one too.
    const response = await get(url.href, { signal: AbortSignal.timeout(timeoutMs), redirect: 'error' });
    if (!response.ok) throw new Error(`Wikipedia search: HTTP ${response.status}`);
    let body;
    try {
      body = JSON.parse(await boundedText(response, MAX_REPLY_BYTES));
    } catch (e) {
      throw new Error(`Wikipedia search: ${e instanceof SyntaxError ? 'the reply is not JSON' : e.message}`);
    }
    const results = body?.query?.search;
    if (!Array.isArray(results)) throw new Error('Wikipedia search: the reply has no query.search list');
    return results.slice(0, k).map((r, rank) => {
      if (typeof r?.title !== 'string' || !Number.isFinite(r?.pageid)) {
        throw new Error('Wikipedia search: a result without title or pageid');
      }
      return { id: `wikipedia:${lang}:${r.pageid}`, title: r.title, text: snippetText(r.snippet ?? ''), score: k - rank };
    });
  };
  return async ({ queries, k }) => ({ hits: await Promise.all(queries.map((q) => one(q, k))) });
}
