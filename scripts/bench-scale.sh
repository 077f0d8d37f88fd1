#!/usr/bin/env bash
# The indexes at scale (issue 24): builds the scale corpus
# (scripts/build-scale-corpus.sh, outside git in target/scale), then times
# BM25 and the bag-of-tokens index (exhaustive, block-max pruned exact and
# approximate) at each size, and the HNSW add latency beside a graph of
# random vectors. Writes target/scale/report.json and prints the table.
# Usage: scripts/bench-scale.sh [--sizes 100000,1000000] [--dense 100000] [...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-models.sh >/dev/null
[ -f target/scale/corpus.jsonl ] || scripts/build-scale-corpus.sh target/scale
cargo build --release --locked -p trainer
target/release/trainer bench-scale --data target/scale --json target/scale/report.json "$@"
