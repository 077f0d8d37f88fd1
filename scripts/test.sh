#!/usr/bin/env bash
# The test command (README, CI): sets up its prerequisites (wasm tools, a
# Vulkan driver, Chromium, the models, osmem-server), then formatting, every
# test of the workspace linted by clippy as it builds (the OpenSearch one
# against osmem-server), the fuzz smoke runs, the wasm32 builds (library
# crates, the npm package's module) with the package's Node and Chromium
# tests, and the native/wasm parity test in Node. The native wgpu backend
# (a second feature set of the whole build) is checked by
# scripts/check-wgpu.sh; wasm32 lints by scripts/check-wasm.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
# One build per profile and target: incremental caches only cost disk here.
export CARGO_INCREMENTAL=0
# The serve tests hold 2,000 slow connections open (two descriptors each).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true
# Each stage's wall time and the total so far, for CI's 60-minute budget.
stage_started=$SECONDS
stage() {
  echo "   (took $((SECONDS - stage_started)) s; $((SECONDS / 60)) min so far)"
  stage_started=$SECONDS
  echo "== $*"
}
echo "== setup: wasm tools, Vulkan driver, Chromium, models, osmem-server"
scripts/setup-wasm.sh
scripts/setup-vulkan.sh
scripts/setup-browser.sh
scripts/fetch-models.sh >/dev/null
# osmem-server (the OpenSearch 3.x API in memory) for the cluster test; never skip it here.
RLRAG_OSMEM_BIN="$(scripts/setup-opensearch.sh)"
export RLRAG_OSMEM_BIN RLRAG_REQUIRE_OPENSEARCH=1
stage "cargo fmt --check"
cargo fmt --all -- --check
(cd fuzz && cargo fmt -- --check)
stage "cargo test --workspace, every target linted by clippy as it compiles (-D warnings)"
# One native build: clippy-driver (rustc with clippy's lints, every warning
# an error: scripts/clippy-rustc.sh) compiles the workspace's own crates, so
# the lints run inside the test build instead of a second pass over every
# dependency (`cargo clippy` is that pass: 9 minutes cold). Dependencies
# build exactly as without it (RUSTFLAGS would have changed every one of
# them). The native wgpu backend's tests are scripts/check-wgpu.sh.
(
  export RUSTC_WORKSPACE_WRAPPER="$PWD/scripts/clippy-rustc.sh"
  cargo test --workspace --locked --all-targets
  cargo test --workspace --locked --doc
)
stage "fuzz smoke: every target 10 s from its seeds and past crashes (scripts/fuzz.sh)"
scripts/fuzz.sh --smoke
stage "wasm32 build of the library crates and the npm package's module"
cargo build --locked --target wasm32-unknown-unknown -p rlrag-reward
scripts/build-web.sh
stage "the npm package: generated declarations, type-checked usage, Node tests"
(cd web && npx tsc -p tsconfig.json && npx tsc -p test-types/tsconfig.json)
# A small trained router for the package's `learned` routing test (two CPU
# workers: the data-parallel update through the command line).
target/debug/trainer train-router --data data/hotpotqa100 --split train --limit 16 \
  --epochs 1 --rollouts 2 --batch-size 8 --devices cpu:0,cpu:1 --out target/test-router
# A small trained reranker for the package's reranking test.
target/debug/trainer train-reranker --data data/hotpotqa100 --split train --holdout 0.1 \
  --layers 1 --max-length 96 --candidates 6 --group 3 --batch-size 2 --steps 2 --rerank 5 \
  --out target/test-reranker
RLRAG_ROUTER_DIR=target/test-router RLRAG_RERANKER_DIR=target/test-reranker node --test web/test/
stage "the packed npm package in a fresh Vite app, in Chromium"
node web/e2e/consumer.mjs
stage "the demo page in headless Chromium: WebGPU and CPU give the native top 10"
TRAINER=target/debug/trainer scripts/build-demo.sh --router target/test-router --reranker target/test-reranker
node web/e2e/demo.mjs
stage "saved engines survive a worker terminated mid-save and failed loads, in Chromium"
node web/e2e/durability.mjs
stage "wasm32 in Node: same vectors and rankings as native"
cargo test --locked --target wasm32-unknown-unknown -p rlrag-wasm --test native_wasm_parity
echo "   (took $((SECONDS - stage_started)) s)"
echo "== all checks passed in $((SECONDS / 60)) min (target directory: $(du -sh target | cut -f1))"
