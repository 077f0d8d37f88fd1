#!/usr/bin/env bash
# Re-record the self-boost test's fixture (crates/train/tests/fixtures/
# self-boost-hotpotqa/: the generator's queries, teacher scores and
# hypothetical documents) from a live generator, on the test's corpus: the
# 300 paragraphs of HotpotQA-100's first 30 questions, with the test's
# settings (crates/train/tests/self_boost.rs, `config`). Run it after
# changing anything that changes which calls a round makes.
#   scripts/llm-server.sh 8080 &   # SmolLM2-135M-Instruct
#   scripts/record-self-boost-fixture.sh [generator URL]
set -euo pipefail
cd "$(dirname "$0")/.."
url=${1:-${RLRAG_LLM_URL:-http://127.0.0.1:8080/v1}}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -c 'import json, sys; json.dump(json.load(open("data/hotpotqa100/hotpotqa100.json"))[:30], open(sys.argv[1], "w"))' \
  "$tmp/hotpotqa30.json"
cargo run --locked --release -p trainer -- self-boost --data "$tmp/hotpotqa30.json" \
  --eval-split test --generator "$url" --retriever sparse --rounds 1 --queries 40 \
  --probe-queries 20 --query-temperature 0.5 --round-trip-k 20 --negatives 3 \
  --negative-from 30 --negative-to 200 --teacher likelihood --epochs 3 --batch-size 8 \
  --learning-rate 1e-4 --max-passage-tokens 64 --hyde-queries 2 --hypotheticals 3 \
  --hyde-max-tokens 48 --seed 42 --out "$tmp/out"
for f in queries.jsonl teacher.jsonl hyde.jsonl; do
  cp "$tmp/out/$f" crates/train/tests/fixtures/self-boost-hotpotqa/
done
echo "recorded into crates/train/tests/fixtures/self-boost-hotpotqa/"
