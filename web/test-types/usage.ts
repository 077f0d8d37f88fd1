// The README's example (README.md, web/README.md), type-checked against the generated declarations
// (`npm run typecheck`): a wrong option or a misuse of a result fails here.
import { Rlrag, RouterModel, wikipediaSource, type SearchHit } from 'rlrag';
import { RlragWorker } from 'rlrag/worker';

export async function example(corpus: { id: string; text: string; title?: string }[]): Promise<SearchHit[]> {
  const engine = await Rlrag.create({
    model: '/models/rlrag',
    device: 'auto',
    onProgress: ({ stage, done, total }) => console.log(stage, done, total),
  });
  const held: number = await engine.addDocuments(corpus);
  console.log(held, engine.backend, engine.size, engine.modes);
  const hits = await engine.search('who founded the company?', { k: 5, mode: 'bot' });
  for (const hit of hits) console.log(hit.id, hit.score, hit.terms.map((t) => `${t.term}:${t.weight}`));
  await engine.loadReranker('/models/reranker');
  const reranked: SearchHit[] = await engine.search('who founded the company?', { k: 10, rerank: 20 });
  console.log(engine.hasReranker, reranked[0]?.score);
  const bytes: Uint8Array = await engine.exportIndex();
  const again = await Rlrag.importIndex(bytes, { model: '/models/rlrag' });
  await again.removeDocuments(['a']);
  const router = await RouterModel.load('/models/router');
  const routed = await engine.route('who founded the company?', {
    model: router,
    network: wikipediaSource({ lang: 'en' }),
    timeoutMs: 3000,
  });
  console.log(routed.evidence.map((h) => h.title), routed.cost.network_calls);
  const worker = await RlragWorker.create({ model: '/models/rlrag', device: 'cpu' });
  await worker.addDocuments(corpus);
  await worker.loadRouter('/models/router');
  await worker.loadReranker('/models/reranker');
  console.log(await worker.search('who founded it?', { rerank: 20 }));
  const viaWorker = await worker.route('who founded it?', { policy: 'learned', network: { kind: 'wikipedia' } });
  console.log(viaWorker.trace);
  worker.terminate();
  return hits;
}
