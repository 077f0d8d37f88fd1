"""faiss-HNSW and hnswlib on rlrag's vectors (scripts/bench-dense.sh).

Reads the report of `trainer bench-dense` (the passage and query vectors it
encoded with all-MiniLM-L6-v2 and the exact top 10 of its flat index),
checks that numpy's exact inner-product top 10 agrees with it, then builds
faiss IndexHNSWFlat and hnswlib over the same vectors with the graph rlrag's
HNSW (instant-distance) uses: 32 links per node (64 on layer 0), inner
product, ef_construction as in the report. Each engine is timed one query
at a time on one thread (builds use every core, as instant-distance's does)
for each ef_search in the list; recall@10 is against the same exact top 10.
Prints every row and, per engine, the fastest setting with recall@10 >=
0.95, and writes the rows into the report under "others".
"""

import argparse
import json
import time

import faiss
import hnswlib
import numpy as np


def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def load(path, rows, dim):
    data = np.fromfile(path, dtype="<f4")
    return np.ascontiguousarray(data[: rows * dim].reshape(rows, dim))


def recall(found, exact):
    hits = sum(len(set(f[:10]) & set(e[:10])) for f, e in zip(found, exact))
    return hits / sum(min(10, len(e)) for e in exact)


def timed(queries, search):
    lat, found = [], []
    for q in queries:
        t = time.perf_counter()
        found.append(search(q))
        lat.append((time.perf_counter() - t) * 1e3)
    lat = np.array(lat)
    return {
        "p50_ms": float(np.percentile(lat, 50)),
        "p95_ms": float(np.percentile(lat, 95)),
        "queries_per_s": len(lat) / (lat.sum() / 1e3),
    }, found


def best(rows):
    """The fastest of `rows` with recall@10 >= 0.95, or None."""
    ok = [r for r in rows if r["recall@10"] >= 0.95]
    return max(ok, key=lambda r: r["queries_per_s"]) if ok else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--report", default="target/scale/dense.json")
    ap.add_argument("--ef-search", default="16,32,64,128,256")
    args = ap.parse_args()
    report = json.load(open(args.report))
    n, dim, nq = report["documents"], report["dim"], report["queries"]
    files = report["files"]
    xb = load(files["passages"], n, dim)
    xq = load(files["queries"], nq, dim)
    exact = files["exact"]
    truth = np.argsort(-(xq @ xb.T), axis=1, kind="stable")[:, :10]
    agree = recall([list(t) for t in truth], exact)
    print(f"numpy exact top 10 against rlrag's flat index: {agree:.4f}")
    efc = report["ef_construction"]
    efs = [int(e) for e in args.ef_search.split(",")]
    threads = faiss.omp_get_max_threads()
    rows = []

    before = rss_mib()
    t = time.perf_counter()
    index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = efc
    index.add(xb)
    build = time.perf_counter() - t
    memory = rss_mib() - before
    faiss.omp_set_num_threads(1)
    for ef in efs:
        index.hnsw.efSearch = ef
        stats, found = timed(xq, lambda q: index.search(q[None, :], 10)[1][0].tolist())
        rows.append({"engine": "faiss-hnsw", "ef_search": ef, "build_s": build, "memory_mib": memory,
                     "recall@10": recall(found, exact), **stats})
    faiss.omp_set_num_threads(threads)
    del index

    before = rss_mib()
    t = time.perf_counter()
    index = hnswlib.Index(space="ip", dim=dim)
    index.init_index(max_elements=n, ef_construction=efc, M=32, random_seed=42)
    index.add_items(xb, np.arange(n), num_threads=threads)
    build = time.perf_counter() - t
    memory = rss_mib() - before
    index.set_num_threads(1)
    for ef in efs:
        index.set_ef(max(ef, 10))
        stats, found = timed(xq, lambda q: index.knn_query(q[None, :], k=10)[0][0].tolist())
        rows.append({"engine": "hnswlib", "ef_search": ef, "build_s": build, "memory_mib": memory,
                     "recall@10": recall(found, exact), **stats})
    del index

    print(f"\n{n} x {dim}, {nq} queries, builds on {threads} threads, queries on one\n")
    print("| engine | ef_search | build s | memory MiB | p50 ms | p95 ms | q/s | recall@10 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in report["indexes"]:
        print(f"| {r['index']} | | {r['build_s']:.1f} | {r['memory_mib']:.0f} | {r['latency_ms']['p50']:.3f} | "
              f"{r['latency_ms']['p95']:.3f} | {r['queries_per_s']:.0f} | {r['recall@10']:.4f} |")
    for r in rows:
        print(f"| {r['engine']} | {r['ef_search']} | {r['build_s']:.1f} | {r['memory_mib']:.0f} | {r['p50_ms']:.3f} | "
              f"{r['p95_ms']:.3f} | {r['queries_per_s']:.0f} | {r['recall@10']:.4f} |")
    ours = best([r for r in report["indexes"] if r["index"].startswith("rlrag hnsw")])
    summary = {"numpy_exact_agreement": agree}
    for engine in ("faiss-hnsw", "hnswlib"):
        b = best([r for r in rows if r["engine"] == engine])
        summary[engine] = b
        if ours and b:
            summary[f"ratio_to_{engine}"] = ours["queries_per_s"] / b["queries_per_s"]
    print("\nfastest setting with recall@10 >= 0.95:")
    print(f"  rlrag: {ours['index'] + ', ' + format(ours['queries_per_s'], '.0f') + ' q/s' if ours else 'none'}")
    for engine in ("faiss-hnsw", "hnswlib"):
        b = summary[engine]
        print(f"  {engine}: " + (f"ef_search {b['ef_search']}, {b['queries_per_s']:.0f} q/s" if b else "none"))
        if f"ratio_to_{engine}" in summary:
            print(f"  rlrag / {engine}: {summary[f'ratio_to_{engine}']:.2f}x")
    report["others"] = rows
    report["summary"] = summary
    with open(args.report, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
