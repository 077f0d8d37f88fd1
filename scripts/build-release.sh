#!/usr/bin/env bash
# The one native release build behind every release command (the main
# command, the demo build, the eval table, the benchmarks): the trainer alone,
# as `cargo run --release -p trainer` builds it, so one feature set, and
# switching between these commands never rebuilds burn (selecting the whole
# workspace or its examples unifies other features). Extra arguments go to
# cargo (e.g. --quiet).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p trainer "$@"
