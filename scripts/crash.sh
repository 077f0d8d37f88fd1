#!/usr/bin/env bash
# Crash consistency, long form: a saving process (a file, a model
# directory) killed with SIGKILL at random moments, RUNS times each (default
# 1,000; the test command runs 60), and two processes saving one directory.
# After every kill the target must hold one whole version that loads
# (crates/retriever/tests/crash.rs). Prints kills, versions found whole and
# saves cut short.
#
#   scripts/crash.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_INCREMENTAL=0
RLRAG_CRASH_RUNS="${1:-1000}" cargo test --locked -p rlrag-retriever --test crash -- --nocapture
