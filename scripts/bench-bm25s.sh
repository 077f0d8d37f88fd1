#!/usr/bin/env bash
# BM25 throughput: rlrag (criterion, benches/bm25.rs) vs bm25s on SciFact, in one run.
# Installs bm25s at pinned versions into a venv under the cache directory.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${RLRAG_CACHE:-$HOME/.cache/rlrag}"
venv="$cache/bm25s-venv"
if ! "$venv/bin/python" -c "import bm25s, Stemmer" 2>/dev/null; then
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet bm25s==0.3.16 PyStemmer==3.1.0 numpy==2.4.6
fi
cargo bench --bench bm25
"$venv/bin/python" scripts/bench_bm25s.py --data data/scifact --criterion target/criterion
