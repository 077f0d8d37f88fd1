#!/usr/bin/env bash
# The native wgpu backend: a training step and an evaluation on wgpu against
# the CPU (crates/train/tests/wgpu.rs, the `train-retriever --device wgpu`
# CLI test), on a GPU or, where there is none, on Mesa's lavapipe (Vulkan on
# the CPU, installed by scripts/setup-vulkan.sh). The trainer's `wgpu`
# feature is a second build of burn's GPU stack (cubecl, wgpu, naga: about a
# third of the test build), so the test command leaves it to this script:
# run it before a change to device code lands, and on a GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_INCREMENTAL=0
scripts/setup-vulkan.sh
scripts/fetch-models.sh >/dev/null
# A missing adapter fails the tests instead of skipping them.
export RLRAG_REQUIRE_WGPU=1
cargo clippy --workspace --all-targets --locked --features trainer/wgpu -- -D warnings
cargo test --workspace --locked --features trainer/wgpu --test wgpu --test cli -- wgpu
