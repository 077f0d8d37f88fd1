#!/usr/bin/env bash
# The test command's compiler for the workspace's own crates
# (RUSTC_WORKSPACE_WRAPPER): clippy-driver, which is rustc with clippy's
# lints, with every warning an error. Cargo calls it as `WRAPPER RUSTC ARGS…`;
# dependencies never come through here, so their builds stay the plain ones.
exec "$(rustc --print sysroot)/bin/clippy-driver" "$@" -D warnings
