#!/usr/bin/env bash
# Builds the static demo page into www/dist: the page, the npm package (its
# JS and wasm), a model directory, and the HotpotQA-100 paragraphs.
#   [TRAINER=path/to/trainer] scripts/build-demo.sh [--model DIR] [--router DIR] [--reranker DIR] [--release | --prebuilt]
# --model: a directory the trainer wrote (default: the pretrained SPLADE-tiny
# from scripts/fetch-models.sh). --router: a `trainer train-router` directory
# (the page's `learned` routing policy; without it the page offers the fixed
# ones). --reranker: a `trainer train-reranker` directory (the page's
# "rerank top 20" switch; without it the switch stays off). --release: the size-tuned wasm build. --prebuilt: take web/pkg as
# it is (scripts/main.sh builds it beside the training).
set -euo pipefail
cd "$(dirname "$0")/.."
model="${RLRAG_MODELS:-${RLRAG_CACHE:-$HOME/.cache/rlrag}/models}/splade-tiny"
release=""
router=""
reranker=""
prebuilt=0
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model="$2"; shift 2 ;;
    --router) router="$2"; shift 2 ;;
    --reranker) reranker="$2"; shift 2 ;;
    --release) release="--release"; shift ;;
    --prebuilt) prebuilt=1; shift ;;
    *) echo "usage: scripts/build-demo.sh [--model DIR] [--router DIR] [--reranker DIR] [--release | --prebuilt]" >&2; exit 2 ;;
  esac
done
for f in model.safetensors config.json tokenizer.json; do
  [ -f "$model/$f" ] || { echo "build-demo: $model/$f is missing (scripts/fetch-models.sh, or a trainer --out directory)" >&2; exit 1; }
done
if [ -n "$router" ]; then
  for f in model.safetensors config.json; do
    [ -f "$router/$f" ] || { echo "build-demo: $router/$f is missing (a trainer train-router --out directory)" >&2; exit 1; }
  done
fi
if [ -n "$reranker" ]; then
  for f in model.safetensors config.json tokenizer.json; do
    [ -f "$reranker/$f" ] || { echo "build-demo: $reranker/$f is missing (a trainer train-reranker --out directory)" >&2; exit 1; }
  done
fi
if [ "$prebuilt" = 1 ]; then
  [ -f web/pkg/rlrag_wasm_bg.wasm ] || { echo "build-demo: --prebuilt, but web/pkg holds no build (scripts/build-web.sh)" >&2; exit 1; }
else
  scripts/build-web.sh $release
fi
dist=www/dist
rm -rf "$dist"
mkdir -p "$dist/rlrag/src" "$dist/rlrag/pkg" "$dist/model"
cp www/index.html www/app.js www/style.css www/headers.json "$dist/"
cp web/src/*.js "$dist/rlrag/src/"
cp web/pkg/rlrag_wasm.js web/pkg/rlrag_wasm_bg.wasm "$dist/rlrag/pkg/"
cp "$model/model.safetensors" "$model/config.json" "$model/tokenizer.json" "$dist/model/"
if [ -n "$router" ]; then
  mkdir -p "$dist/router"
  cp "$router/model.safetensors" "$router/config.json" "$dist/router/"
fi
if [ -n "$reranker" ]; then
  mkdir -p "$dist/reranker"
  cp "$reranker/model.safetensors" "$reranker/config.json" "$reranker/tokenizer.json" "$dist/reranker/"
fi
if [ -f "$model/manifest.json" ]; then
  cp "$model/manifest.json" "$dist/model/"
else
  printf '{"model_kind": "sparse", "base_model": "%s", "steps": 0}\n' "$(basename "$model")" > "$dist/model/manifest.json"
fi
# The corpus as the native loader reads it (`trainer export-corpus`). $TRAINER
# names a trainer binary already built (the test command's); else the release one.
trainer="${TRAINER:-}"
if [ -z "$trainer" ]; then
  scripts/build-release.sh --quiet
  trainer=target/release/trainer
fi
"$trainer" export-corpus --data data/hotpotqa100 --out "$dist/corpus.json"
echo "demo built in $dist (model: $model; router: ${router:-none, fixed policies only})"
