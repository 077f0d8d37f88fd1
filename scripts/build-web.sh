#!/usr/bin/env bash
# Builds the npm package's wasm module into web/pkg: the rlrag-wasm crate for
# wasm32-unknown-unknown, then wasm-bindgen (--target web, the pinned CLI from
# scripts/setup-wasm.sh).
#   scripts/build-web.sh [--release [--converge]] [--cpu-only] [--out DIR]
# --release: the size-tuned `web` profile and one wasm-opt -Oz pass (npm
# binaryen, pinned); --converge repeats the passes until nothing shrinks
# (0.6 % smaller gzipped for about three more minutes on 2 cores:
# results/performance.md).
# --cpu-only: without burn's WebGPU backend (the smaller package; `auto` then
# always runs on the CPU). --out: where the package goes (default web/pkg).
# Prints the wasm size, raw and gzipped.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=dev
dir=debug
extra=()
out=web/pkg
converge=()
while [ $# -gt 0 ]; do
  case "$1" in
    --release) profile=web; dir=web; shift ;;
    --converge) converge=(--converge); shift ;;
    --cpu-only) extra=(--config 'target.wasm32-unknown-unknown.rustflags=["--cfg", "rlrag_cpu_only"]'); shift ;;
    --out) out="$2"; shift 2 ;;
    *) echo "usage: scripts/build-web.sh [--release [--converge]] [--cpu-only] [--out DIR]" >&2; exit 2 ;;
  esac
done
cargo build --locked --target wasm32-unknown-unknown --profile "$profile" -p rlrag-wasm "${extra[@]}"
rm -rf "$out"
wasm-bindgen --target web --out-dir "$out" "target/wasm32-unknown-unknown/$dir/rlrag_wasm.wasm"
if [ "$profile" = web ]; then
  (cd web && npm install --no-save --no-audit --no-fund --loglevel=error binaryen@132.0.0)
  opt_started=$SECONDS
  web/node_modules/.bin/wasm-opt -Oz "${converge[@]}" --strip-producers --enable-bulk-memory --enable-nontrapping-float-to-int \
    "$out/rlrag_wasm_bg.wasm" -o "$out/rlrag_wasm_bg.wasm"
  echo "wasm-opt took $((SECONDS - opt_started)) s"
fi
size=$(stat -c %s "$out/rlrag_wasm_bg.wasm")
gz=$(gzip -9 -c "$out/rlrag_wasm_bg.wasm" | wc -c)
kind=$([ ${#extra[@]} -eq 0 ] && echo "WebGPU + CPU" || echo "CPU only")
echo "$out/rlrag_wasm_bg.wasm: $size bytes, $gz gzipped ($profile profile, $kind)"
