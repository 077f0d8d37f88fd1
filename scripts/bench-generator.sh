#!/usr/bin/env bash
# Generator tokens/s, rlrag's decoder in burn (release build) beside
# llama.cpp (llama-cpp-python, the venv of scripts/llm-server.sh) on the same
# machine, model file and prompts: prefill and greedy decoding, two threads
# each (RAYON_NUM_THREADS for burn, n_threads for llama.cpp).
# Writes target/bench-generator/{rlrag,llama-cpp}.json and prints both.
# Usage: scripts/bench-generator.sh [--prompts 8] [--tokens 32] [--threads 2]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
scripts/fetch-models.sh >/dev/null
scripts/llm-server.sh --install-only >/dev/null
cache="${RLRAG_CACHE:-$HOME/.cache/rlrag}"
model="$cache/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
out=target/bench-generator
mkdir -p "$out"
cargo build --release --locked -p trainer
RAYON_NUM_THREADS="$threads" target/release/trainer bench-generator --model "$model" \
  --out "$out/rows.json" --json "$out/rlrag.json" "${args[@]}"
"$cache/llm-venv/bin/python" scripts/reference/bench_generator_llama_cpp.py \
  --model "$model" --rows "$out/rows.json" --threads "$threads" >"$out/llama-cpp.json"
echo "rlrag (burn, flex):"; cat "$out/rlrag.json"
echo "llama.cpp:"; cat "$out/llama-cpp.json"
