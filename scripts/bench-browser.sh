#!/usr/bin/env bash
# The browser against native, in one run, on the HotpotQA-100 paragraphs:
# time to first result (model load + index + first query), documents indexed
# per second (BM25 + bags; and learned-sparse vectors, the encoder's speed),
# query latency p50 per mode. Native: `trainer bench-engine` (release); the
# browser: web/bench/ in headless Chromium on the size-tuned CPU-only wasm
# (SIMD128, one thread). Writes target/bench/browser-vs-native.json.
#   scripts/bench-browser.sh [--model DIR] [--encode-docs N] [--threads N] [--runs N] [--device cpu|webgpu] [--reranker DIR]
# --threads: native CPU threads (default 1, as the wasm build has one).
# --runs: how many cold starts (load + index + first query) each side times;
# medians are compared (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
model="${RLRAG_MODELS:-${RLRAG_CACHE:-$HOME/.cache/rlrag}/models}/splade-tiny"
encode=200
threads=1
runs=5
device=cpu
reranker=
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model="$2"; shift 2 ;;
    --encode-docs) encode="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --device) device="$2"; shift 2 ;;
    --reranker) reranker="$2"; shift 2 ;;
    *) echo "usage: scripts/bench-browser.sh [--model DIR] [--encode-docs N] [--threads N] [--runs N] [--device cpu|webgpu] [--reranker DIR]" >&2; exit 2 ;;
  esac
done
scripts/setup-wasm.sh
scripts/setup-browser.sh
scripts/fetch-models.sh
out=target/bench
mkdir -p "$out"
if [ "$device" = webgpu ]; then
  scripts/build-web.sh --release --out "$out/pkg"
else
  scripts/build-web.sh --release --cpu-only --out "$out/pkg"
fi
scripts/build-release.sh
target/release/trainer export-corpus --data data/hotpotqa100 --out "$out/corpus.json"
rerank_args=()
if [ -n "$reranker" ]; then rerank_args=(--reranker "$reranker"); fi
RAYON_NUM_THREADS="$threads" target/release/trainer bench-engine --model "$model" \
  --data data/hotpotqa100 --encode-docs "$encode" --runs "$runs" --json "$out/native.json" "${rerank_args[@]}"
node web/bench/run.mjs --native "$out/native.json" --pkg "$out/pkg" --model "$model" \
  --corpus "$out/corpus.json" --device "$device" --encode-docs "$encode" --runs "$runs" \
  --out "$out/browser-vs-native.json" "${rerank_args[@]}"
