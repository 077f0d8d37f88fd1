#!/usr/bin/env bash
# Encoder throughput, burn vs ONNX Runtime, in one run: passages/s at 128
# tokens, batch 32, one thread, on the same weights and token ids.
# Writes target/bench/encoder-<model>.json (both runtimes and the ratio).
#
# Usage: scripts/bench-encoder.sh [model ...]   (default: minilm splade-tiny)
set -euo pipefail
cd "$(dirname "$0")/.."
py="$(scripts/pyenv.sh)"
models="$(scripts/fetch-models.sh)"
scripts/build-release.sh
mkdir -p target/bench
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(minilm splade-tiny)
for m in "${names[@]}"; do
  RAYON_NUM_THREADS=1 target/release/trainer bench-encoder --model "$models/$m" \
    --passages "${PASSAGES:-1000}" --tokens 128 --batch 32 --out "target/bench/$m-inputs.json"
  OMP_NUM_THREADS=1 "$py" scripts/reference/bench_encoder_ort.py "$models/$m" "target/bench/$m-inputs.json" \
    | tee "target/bench/encoder-$m.json"
done
