#!/usr/bin/env bash
# The browser at scale (issue 24): the first N passages of the scale corpus
# (scripts/build-scale-corpus.sh) indexed in headless Chromium by the
# CPU-only release package inside a Web Worker, as the demo does: indexing
# time, the longest hold-up of the page's own thread meanwhile, query
# latency per mode (SciFact's test queries), memory of page + worker, and
# the saved engine's size and load time. Writes target/bench/browser-scale.json.
#   scripts/bench-browser-scale.sh [--size 100000] [--queries 300] [--model DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
size=100000
queries=300
model="${RLRAG_MODELS:-${RLRAG_CACHE:-$HOME/.cache/rlrag}/models}/splade-tiny"
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size="$2"; shift 2 ;;
    --queries) queries="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    *) echo "usage: scripts/bench-browser-scale.sh [--size N] [--queries N] [--model DIR]" >&2; exit 2 ;;
  esac
done
scripts/setup-wasm.sh
scripts/setup-browser.sh
scripts/fetch-models.sh >/dev/null
[ -f target/scale/corpus.jsonl ] || scripts/build-scale-corpus.sh target/scale
out=target/bench
mkdir -p "$out"
scripts/build-web.sh --release --cpu-only --out "$out/pkg"
# The corpus prefix as the JSON array `addDocuments` takes, and the queries' texts.
python3 - "$size" "$queries" "$out" <<'PY'
import json, sys
size, nq, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
docs = []
with open("target/scale/corpus.jsonl") as f:
    for line in f:
        if len(docs) == size:
            break
        d = json.loads(line)
        docs.append({"id": str(d["_id"]), "title": d.get("title", ""), "text": d["text"]})
qs = []
with open("target/scale/queries.jsonl") as f:
    for line in f:
        if len(qs) == nq:
            break
        qs.append(json.loads(line)["text"])
json.dump(docs, open(f"{out}/scale-corpus.json", "w"))
json.dump(qs, open(f"{out}/scale-queries.json", "w"))
PY
node web/bench/scale.mjs --pkg "$out/pkg" --model "$model" --corpus "$out/scale-corpus.json" \
  --queries "$out/scale-queries.json" --out "$out/browser-scale.json"
