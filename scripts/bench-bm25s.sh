#!/usr/bin/env bash
# BM25 throughput: rlrag (criterion, benches/bm25.rs) vs bm25s on SciFact, in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
python="$(scripts/pyenv.sh)"
cargo bench --bench bm25
"$python" scripts/reference/bench_bm25s.py --data data/scifact --criterion target/criterion
