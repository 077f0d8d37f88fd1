"""bm25s at scale, beside rlrag and tantivy (scripts/bench-tantivy.sh).

Reads the report of `bench-tantivy` (benches/tantivy), then, for each of its
corpus sizes, indexes the same corpus prefix with bm25s (title + " " + text,
English stopwords, Snowball stemmer, method "lucene", k1=1.2, b=0.75, as
the other two engines; its numba backend, the fastest it has) and times the same queries (the first N judged
queries, queries.jsonl order, as rlrag's loader) in one batch per pass on
one thread (bm25s is batch-oriented: one call per query costs far more),
the same number of passes after one warm-up. Prints the three engines side
by side with nDCG@10 (the definition rlrag uses) and writes the rows into
the report as "bm25s".
"""

import argparse
import json
import math
import os
import resource
import time

import bm25s
import numpy as np
import Stemmer


def load_beir(path):
    corpus = [json.loads(line) for line in open(os.path.join(path, "corpus.jsonl")) if line.strip()]
    texts = {}
    order = []
    for line in open(os.path.join(path, "queries.jsonl")):
        if line.strip():
            q = json.loads(line)
            texts[str(q["_id"])] = q["text"]
            order.append(str(q["_id"]))
    qrels = {}
    for i, line in enumerate(open(os.path.join(path, "qrels", "test.tsv"))):
        f = line.split()
        if i == 0 and not f[2].lstrip("-").isdigit():
            continue
        qrels.setdefault(f[0], {})[f[1]] = int(f[2])
    return corpus, [(q, texts[q]) for q in order if q in qrels], qrels


def ndcg10(ranked, judged):
    dcg = sum(judged.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="target/scale")
    ap.add_argument("--report", default="target/scale/bm25-tantivy.json")
    args = ap.parse_args()
    report = json.load(open(args.report))
    corpus, queries, qrels = load_beir(args.data)
    stemmer = Stemmer.Stemmer("english")
    print("| documents | engine | build s | memory MiB | queries/s | nDCG@10 |")
    print("|---:|---|---:|---:|---:|---:|")
    for size in report["sizes"]:
        n, nq, repeats = size["documents"], size["queries"], size["repeats"]
        docs = corpus[:n]
        qs = queries[:nq]
        ids = [str(d["_id"]) for d in docs]
        before = rss_mib()
        t0 = time.perf_counter()
        tokens = bm25s.tokenize(
            [d.get("title", "") + " " + d["text"] for d in docs],
            stopwords="en", stemmer=stemmer, show_progress=False,
        )
        retriever = bm25s.BM25(method="lucene", k1=1.2, b=0.75, backend="numba")
        retriever.index(tokens, show_progress=False)
        build_s = time.perf_counter() - t0
        del tokens
        memory = rss_mib() - before
        qtexts = [t for _, t in qs]

        def search():
            qt = bm25s.tokenize(qtexts, stopwords="en", stemmer=stemmer, show_progress=False)
            return retriever.retrieve(qt, k=10, n_threads=1, show_progress=False)

        found, _ = search()  # warm-up (and numba's compilation); its hits are scored
        total = 0.0
        for _ in range(repeats):
            t = time.perf_counter()
            search()
            total += time.perf_counter() - t
        qps = nq * repeats / total
        ndcg = float(np.mean([ndcg10([ids[j] for j in found[i]], qrels[q]) for i, (q, _) in enumerate(qs)]))
        row = {"engine": "bm25s", "build_s": build_s, "memory_mib": memory, "queries_per_s": qps, "ndcg_at_10": ndcg}
        size["engines"] = [e for e in size["engines"] if e["engine"] != "bm25s"] + [row]
        for e in size["engines"]:
            print(f"| {n} | {e['engine']} | {e['build_s']:.1f} | {e['memory_mib']:.0f} | {e['queries_per_s']:.0f} | {e['ndcg_at_10']:.4f} |")
        rl = next(e for e in size["engines"] if e["engine"] == "rlrag")
        size["ratio_to_bm25s"] = rl["queries_per_s"] / qps
        print(f"| {n} | rlrag / tantivy, rlrag / bm25s | | | {size['ratio_to_tantivy']:.2f}x, {size['ratio_to_bm25s']:.2f}x | |")
        del retriever
    with open(args.report, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
