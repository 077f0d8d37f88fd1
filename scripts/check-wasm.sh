#!/usr/bin/env bash
# Clippy (-D warnings) on the code only wasm32 compiles, in both browser
# configurations: the default package (WebGPU + CPU) and the CPU-only one
# (`--cfg rlrag_cpu_only`, scripts/build-web.sh --cpu-only). The workspace
# clippy of the test command is native; these are two more checks of burn for
# wasm32 (about 5 minutes each cold on 2 cores), so they run here, before a
# change to wasm32-only code lands, rather than in every CI run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_INCREMENTAL=0
echo "== clippy, wasm32, the default package (WebGPU + CPU)"
cargo clippy --locked --target wasm32-unknown-unknown -p rlrag-wasm -p rlrag-reward -- -D warnings
echo "== clippy, wasm32, the CPU-only package (--cfg rlrag_cpu_only)"
cargo clippy --locked --target wasm32-unknown-unknown -p rlrag-wasm \
  --config 'target.wasm32-unknown-unknown.rustflags=["--cfg", "rlrag_cpu_only"]' -- -D warnings
