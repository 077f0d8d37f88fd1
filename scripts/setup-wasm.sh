#!/usr/bin/env bash
# Installs the wasm test prerequisites: the wasm32 target and wasm-bindgen-cli
# at the exact version of the `wasm-bindgen` crate in Cargo.lock (its
# `wasm-bindgen-test-runner` runs `cargo test --target wasm32-unknown-unknown`
# in Node, see .cargo/config.toml). Compiles the CLI once (~5-10 min), then
# quick. Node.js must be on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
version=0.2.130
if ! grep -q "name = \"wasm-bindgen\"" -A1 Cargo.lock || ! grep -A1 "name = \"wasm-bindgen\"" Cargo.lock | grep -q "\"$version\""; then
  echo "Cargo.lock does not pin wasm-bindgen $version; update scripts/setup-wasm.sh" >&2
  exit 1
fi
if [ "$(wasm-bindgen-test-runner --version 2>/dev/null || true)" != "wasm-bindgen-test-runner $version" ]; then
  # --locked fails for this crate at this version; the version itself is pinned.
  cargo install wasm-bindgen-cli --version "$version"
fi
command -v node >/dev/null || { echo "Node.js is needed for the wasm tests" >&2; exit 1; }
