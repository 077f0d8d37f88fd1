#!/usr/bin/env bash
# Fetches osmem-server (an in-memory implementation of the OpenSearch 3.x API:
# _bulk, BM25, rank_features / rank_feature; a Go binary in a PyPI wheel) at a
# pinned version, checks the wheel's sha256 and unpacks the binary into a
# cache outside git. Prints the binary's path. The OpenSearch tests start it
# themselves (RLRAG_OSMEM_BIN names it):
#   RLRAG_OSMEM_BIN=$(scripts/setup-opensearch.sh) cargo test -p trainer --test opensearch
# By hand: "$(scripts/setup-opensearch.sh)" -addr 127.0.0.1:9200 -no-stdin-watch
set -euo pipefail
cache="${RLRAG_CACHE:-$HOME/.cache/rlrag}"
version=0.1.6
wheel="osmem_server-$version-py3-none-manylinux_2_17_x86_64.whl"
sha=24c862de01ab1c6dd1564284933fdc4f774494a41e071676914f86d82fdbef40
dest="$cache/osmem-server-$version"
bin="$dest/osmem-server"
if [ -x "$bin" ] && [ "$(cat "$dest/.sha256" 2>/dev/null)" = "$sha" ]; then
  echo "$bin"
  exit 0
fi
if [ "$(uname -sm)" != "Linux x86_64" ]; then
  echo "setup-opensearch: the pinned wheel is for Linux x86_64, this is $(uname -sm)" >&2
  exit 1
fi
mkdir -p "$cache/wheels"
if [ ! -f "$cache/wheels/$wheel" ] || ! echo "$sha  $cache/wheels/$wheel" | sha256sum -c --status; then
  rm -f "$cache/wheels/$wheel"
  python3 -m pip download --quiet --no-deps --disable-pip-version-check \
    --only-binary=:all: --platform manylinux_2_17_x86_64 -d "$cache/wheels" "osmem-server==$version"
fi
if ! echo "$sha  $cache/wheels/$wheel" | sha256sum -c --status; then
  echo "setup-opensearch: sha256 mismatch for $wheel (expected $sha)" >&2
  exit 1
fi
tmp="$(mktemp -d)"
python3 -m zipfile -e "$cache/wheels/$wheel" "$tmp"
rm -rf "$dest"
mkdir -p "$dest"
cp "$tmp/osmem_server/bin/osmem-server" "$bin"
chmod +x "$bin"
rm -rf "$tmp"
echo "$sha" > "$dest/.sha256"
echo "$bin"
