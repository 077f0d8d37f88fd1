#!/usr/bin/env bash
# The browser test prerequisites: Debian's Chromium (never a downloaded
# browser) and the npm package's dev tools pinned by web/package-lock.json
# (playwright-core to drive Chromium, TypeScript for the declarations).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
command -v npm >/dev/null || { echo "setup-browser: Node.js and npm are needed" >&2; exit 1; }
(cd web && npm ci --no-audit --no-fund --loglevel=error)
