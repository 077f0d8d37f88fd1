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

target/release/trainer report-table --reports "$out" > target/eval/table.md
cat target/eval/table.md
