#!/usr/bin/env bash
# The main job on the bundled data, end to end:
#  1. train the learned-sparse retriever by reward (R3) on HotpotQA-100
#     (80 % of the questions; nDCG@10 of the held-out 20 % before → after),
#     writing the model directory target/main/model;
#  2. train the routing policy by REINFORCE on HotpotQA-100 (half the
#     paragraphs local, all of them behind an HTTP search endpoint), writing
#     target/main/router, and compare it with the fixed policies on the
#     held-out test split;
#  3. build the demo page on both (size-tuned wasm, WebGPU with a CPU
#     fallback) over the HotpotQA-100 paragraphs into www/dist; its routed
#     questions can use Wikipedia as the network source when ticked;
#  4. serve it on http://127.0.0.1:${PORT:-8000}/ until interrupted.
# The browser build needs no trained weights, so it runs beside the
# training (its log: target/main/build-web.log). Each step prints how long
# it took. Set SERVE=0 to stop after building.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
took() { echo "main: $1 took $((SECONDS - $2)) s"; }
t=$SECONDS
scripts/setup.sh
scripts/setup-wasm.sh
scripts/fetch-models.sh
command -v npm >/dev/null || { echo "main: Node.js and npm are needed (the wasm build's wasm-opt comes from npm)" >&2; exit 1; }
took "setup" "$t"
t=$SECONDS
scripts/build-release.sh
took "the release build" "$t"
mkdir -p target/main
# Its own process group, so that a failing step stops it with everything it started.
setsid bash -c 'started=$SECONDS; scripts/build-web.sh --release &&
  echo "main: the browser build (beside the training) took $((SECONDS - started)) s"' \
  > target/main/build-web.log 2>&1 &
web=$!
trap 'kill -- -"$web" 2>/dev/null || true' EXIT
t=$SECONDS
model=target/main/model
target/release/trainer train-retriever --data data/hotpotqa100 --split all --holdout 0.2 \
  --env qrels --steps 100 --seed 42 --out "$model"
took "R3 training" "$t"
t=$SECONDS
router=target/main/router
# One rayon thread: the router's small network trains as fast on one (and to
# the same weights), and spinning threads would fight the browser build for
# the two cores (596 s instead of about 300: results/performance.md).
RAYON_NUM_THREADS=1 target/release/trainer train-router --data data/hotpotqa100 --split train --epochs 300 \
  --rollouts 8 --batch-size 8 --lr 0.01 --entropy 0.03 --lambda 0.265 --round-cost 0.3 --out "$router"
target/release/trainer eval-router --data data/hotpotqa100 --split test --weights "$router" \
  --lambda 0.265 --round-cost 0.3
took "router training and evaluation" "$t"
if ! wait "$web"; then
  cat target/main/build-web.log >&2
  echo "main: the browser build failed" >&2
  exit 1
fi
trap - EXIT
tail -n 3 target/main/build-web.log
TRAINER=target/release/trainer scripts/build-demo.sh --model "$model" --router "$router" --prebuilt
took "the main job" "$started"
if [ "${SERVE:-1}" != 0 ]; then
  exec scripts/serve-demo.sh "${PORT:-8000}"
fi
