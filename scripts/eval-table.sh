#!/usr/bin/env bash
# Every retriever on every bundled dataset, with the pretrained models:
# one JSON report per run under target/eval/table/ and a Markdown table in
# target/eval/table.md. Encoded document indexes are cached in
# target/index-cache, so a second run only re-encodes queries.
#
# Usage: scripts/eval-table.sh [dataset ...]   (default: scifact hotpotqa100 2wiki500)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-models.sh
scripts/build-release.sh
out=target/eval/table
mkdir -p "$out"
datasets=("$@")
[ ${#datasets[@]} -gt 0 ] || datasets=(scifact hotpotqa100 2wiki500)

run() { # dataset label args...
  local ds=$1 label=$2
  shift 2
  echo "== $ds / $label" >&2
  target/release/trainer eval --data "data/$ds" --cache target/index-cache \
    --json "$out/$ds--$label.json" "$@"
}

for ds in "${datasets[@]}"; do
  run "$ds" bm25 --retriever bm25
  run "$ds" sparse --retriever sparse
  run "$ds" bot --retriever bot
  run "$ds" bot-rerank20 --retriever bot --rerank-m 20
  run "$ds" dense --retriever dense
  run "$ds" dense-hnsw --retriever dense --dense-index hnsw
  run "$ds" hybrid-bm25-dense --retriever hybrid --hybrid bm25,dense
  run "$ds" hybrid-bm25-sparse-dense --retriever hybrid --hybrid bm25,sparse,dense
  if [ "$ds" = scifact ]; then
    run "$ds" sparse-elu1p-top768 --retriever sparse --activation elu1p --top-k 768
  fi
done

python3 - "$out" > target/eval/table.md <<'PY'
import json, pathlib, sys
rows = []
for p in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    ds, label = p.stem.split("--", 1)
    r = json.loads(p.read_text())
    m = r["metrics"]
    f = lambda k: f"{m[k]:.4f}" if k in m else "–"
    ann = r.get("ann")
    rows.append(f"| {ds} | {label} | {f('ndcg@10')} | {f('recall@100')} | {f('containment@10')} | "
                f"{f('all_gold@10')} | {r['latency_ms']['p50']:.2f} | {r['latency_ms']['p95']:.2f} | "
                + (f"{ann['recall@10_vs_exact']:.4f} / {ann['queries_per_s']:.0f} vs {ann['exact_queries_per_s']:.0f}" if ann else "") + " |")
print("| dataset | retriever | nDCG@10 | recall@100 | containment@10 | all_gold@10 | p50 ms | p95 ms | HNSW recall@10 / q/s vs exact |")
print("|---|---|---|---|---|---|---|---|---|")
print("\n".join(rows))
PY
cat target/eval/table.md
