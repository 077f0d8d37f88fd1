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
 * }} WikipediaOptions
 */

/** Longest snippet kept, in characters. */
const MAX_SNIPPET = 2000;

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
export function wikipediaSource({ lang = 'en', fetch: fetchImpl, endpoint } = {}) {
  if (!/^[a-z][a-z-]{1,11}$/.test(lang)) throw new TypeError(`wikipediaSource: \`${lang}\` is not a Wikipedia language code`);
  const base = endpoint ?? `https://${lang}.wikipedia.org/w/api.php`;
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
    const response = await get(url.href);
    if (!response.ok) throw new Error(`Wikipedia search: HTTP ${response.status}`);
    const body = await response.json();
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
