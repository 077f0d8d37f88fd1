#!/usr/bin/env bash
# Serves www/dist (scripts/build-demo.sh) on http://127.0.0.1:PORT (default
# 8000): a secure context, so browsers offer WebGPU there.
set -euo pipefail
cd "$(dirname "$0")/../www/dist"
port="${1:-8000}"
echo "rlrag demo: http://127.0.0.1:$port/"
exec python3 -m http.server "$port" --bind 127.0.0.1
