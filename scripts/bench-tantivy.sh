#!/usr/bin/env bash
# BM25 at scale (issue 24): rlrag's index beside the `tantivy` crate in one
# process (benches/tantivy: same terms, same queries, one thread), then bm25s
# (pinned, scripts/pyenv.sh) on the same corpus prefixes and queries.
# Builds the scale corpus first if missing (scripts/build-scale-corpus.sh).
# Writes target/scale/bm25-tantivy.json and prints the tables.
# Usage: scripts/bench-tantivy.sh [--sizes 100000,1000000] [--queries 300] [--repeats 5]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f target/scale/corpus.jsonl ] || scripts/build-scale-corpus.sh target/scale
# Its own workspace, lock file and target directory (tantivy never enters
# the main build).
(cd benches/tantivy && CARGO_TARGET_DIR="$PWD/../../target/bench-tantivy" cargo build --release --locked)
target/bench-tantivy/release/bench-tantivy --data target/scale --json target/scale/bm25-tantivy.json "$@"
python="$(scripts/pyenv.sh)"
"$python" scripts/reference/bench_bm25s_scale.py --data target/scale --report target/scale/bm25-tantivy.json
