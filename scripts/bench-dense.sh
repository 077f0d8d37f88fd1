#!/usr/bin/env bash
# Dense search at scale (issue 24): rlrag's exact and HNSW indexes over a
# corpus prefix encoded by all-MiniLM-L6-v2 (`trainer bench-dense`; the
# vectors are kept in target/scale and resumed), then faiss-HNSW and hnswlib
# (pinned, scripts/pyenv.sh) on the very same vectors and queries.
# Builds the scale corpus first if missing (scripts/build-scale-corpus.sh).
# Writes target/scale/dense.json and prints the tables.
# Usage: scripts/bench-dense.sh [--size 100000] [--ef-search 16,32,64,128] [--queries 300]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f target/scale/corpus.jsonl ] || scripts/build-scale-corpus.sh target/scale
scripts/fetch-models.sh >/dev/null
cargo build --release --locked -p trainer
target/release/trainer bench-dense --data target/scale --json target/scale/dense.json "$@"
python="$(scripts/pyenv.sh)"
"$python" scripts/reference/bench_hnsw.py --report target/scale/dense.json
