#!/usr/bin/env bash
# Creates (once) the project's Python reference environment with pinned packages
# and prints its python path. Used by the reference scripts (bm25s, faiss and hnswlib comparisons,
# GGUF golden values,
# encoder golden values); never by the Rust build or tests.
set -euo pipefail
cache="${RLRAG_CACHE:-$HOME/.cache/rlrag}"
venv="$cache/pyref-venv"
pins=(numpy==2.4.6 tokenizers==0.22.1 bm25s==0.3.16 PyStemmer==3.1.0 onnx==1.23.2 onnxruntime==1.31.1 faiss-cpu==1.13.2 hnswlib==0.8.0 numba==0.68.1 gguf==0.19.0)
stamp="$venv/.pins"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${pins[*]}" ]; then
  mkdir -p "$cache"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}" >&2
  echo "${pins[*]}" >"$stamp"
fi
echo "$venv/bin/python"
