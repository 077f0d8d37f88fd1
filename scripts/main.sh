#!/usr/bin/env bash
# The main job on the bundled data: BM25 evaluated on the SciFact test split.
# Prints the table and writes target/eval/scifact-bm25.json.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
mkdir -p target/eval
cargo run --release --locked -p trainer -- eval --data data/scifact --retriever bm25 \
  --json target/eval/scifact-bm25.json
