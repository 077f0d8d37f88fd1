#!/usr/bin/env bash
# Builds the npm package's wasm module into web/pkg: the rlrag-wasm crate for
# wasm32-unknown-unknown, then wasm-bindgen (--target web, the pinned CLI from
# scripts/setup-wasm.sh). `--release` uses the size-tuned `web` profile and
# wasm-opt (npm binaryen, pinned) and prints the sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=dev
dir=debug
if [ "${1:-}" = "--release" ]; then
  profile=web
  dir=web
fi
cargo build --locked --target wasm32-unknown-unknown --profile "$profile" -p rlrag-wasm
rm -rf web/pkg
wasm-bindgen --target web --out-dir web/pkg "target/wasm32-unknown-unknown/$dir/rlrag_wasm.wasm"
if [ "$profile" = web ]; then
  (cd web && npm install --no-save --no-audit --no-fund --loglevel=error binaryen@132.0.0)
  web/node_modules/.bin/wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
    web/pkg/rlrag_wasm_bg.wasm -o web/pkg/rlrag_wasm_bg.wasm
fi
size=$(stat -c %s web/pkg/rlrag_wasm_bg.wasm)
gz=$(gzip -9 -c web/pkg/rlrag_wasm_bg.wasm | wc -c)
echo "web/pkg/rlrag_wasm_bg.wasm: $size bytes, $gz gzipped ($profile profile)"
