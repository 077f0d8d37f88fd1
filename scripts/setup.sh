#!/usr/bin/env bash
# Installs what the project's commands need on a fresh machine that has rustup:
# the lint components and the wasm32 target. Idempotent and quick when present.
set -euo pipefail
rustup component add rustfmt clippy >/dev/null
rustup target add wasm32-unknown-unknown >/dev/null
