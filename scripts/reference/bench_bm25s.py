"""Run the SciFact BM25 workload through bm25s and compare with rlrag.

Reads rlrag's criterion estimates (written by `cargo bench --bench bm25`),
times bm25s on the same corpus and queries (title + " " + text, English
stopwords, Snowball stemmer, k1=1.5, b=0.75, top 10, one thread), checks both
engines' nDCG@10 with the same definition, and prints the ratios.
"""

import argparse
import json
import math
import os
import time

import bm25s
import numpy as np
import Stemmer


def load_beir(path, split):
    corpus = [json.loads(line) for line in open(os.path.join(path, "corpus.jsonl")) if line.strip()]
    queries = {}
    for line in open(os.path.join(path, "queries.jsonl")):
        if line.strip():
            q = json.loads(line)
            queries[str(q["_id"])] = q["text"]
    qrels = {}
    for i, line in enumerate(open(os.path.join(path, "qrels", f"{split}.tsv"))):
        f = line.split()
        if i == 0 and not f[2].lstrip("-").isdigit():
            continue
        qrels.setdefault(f[0], {})[f[1]] = int(f[2])
    # queries.jsonl order, as rlrag's loader
    qids = [q for q in queries if q in qrels]
    return corpus, [(q, queries[q]) for q in qids], qrels


def ndcg10(ranked, judged):
    dcg = sum(judged.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def criterion_mean_s(root, name):
    with open(os.path.join(root, "bm25_scifact", name, "new", "estimates.json")) as f:
        return json.load(f)["mean"]["point_estimate"] / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/scifact")
    ap.add_argument("--criterion", default="target/criterion")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()

    corpus, queries, qrels = load_beir(args.data, "test")
    stemmer = Stemmer.Stemmer("english")
    texts = [d.get("title", "") + " " + d["text"] for d in corpus]
    ids = [str(d["_id"]) for d in corpus]

    t0 = time.perf_counter()
    tokens = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)
    retriever = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
    retriever.index(tokens, show_progress=False)
    index_s = time.perf_counter() - t0

    qtexts = [t for _, t in queries]

    def search():
        qt = bm25s.tokenize(qtexts, stopwords="en", stemmer=stemmer, show_progress=False)
        return retriever.retrieve(qt, k=10, n_threads=1, show_progress=False)

    search()  # warm up
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        docs, _ = search()
        times.append(time.perf_counter() - t)
    bm25s_search_s = float(np.median(times))
    ndcg = np.mean([ndcg10([ids[j] for j in docs[i]], qrels[q]) for i, (q, _) in enumerate(queries)])

    rl_index_s = criterion_mean_s(args.criterion, "index")
    rl_search_s = criterion_mean_s(args.criterion, "search")
    n_docs, n_q = len(corpus), len(queries)
    print(f"SciFact test: {n_docs} documents, {n_q} queries, top 10, one thread")
    print(f"{'':10} {'index docs/s':>14} {'queries/s':>12}")
    print(f"{'bm25s':10} {n_docs / index_s:>14.0f} {n_q / bm25s_search_s:>12.0f}")
    print(f"{'rlrag':10} {n_docs / rl_index_s:>14.0f} {n_q / rl_search_s:>12.0f}")
    print(f"ratio rlrag/bm25s: indexing {index_s / rl_index_s:.2f}x, queries {bm25s_search_s / rl_search_s:.2f}x")
    print(f"bm25s nDCG@10 (same definition as rlrag's): {ndcg:.4f}")


if __name__ == "__main__":
    main()
