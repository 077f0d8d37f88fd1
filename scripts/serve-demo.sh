#!/usr/bin/env bash
# Serves www/dist (scripts/build-demo.sh) on http://127.0.0.1:PORT (default
# 8000): a secure context, so browsers offer WebGPU there. Every response
# carries the headers of www/headers.json (the Content-Security-Policy that
# also governs the page's Web Worker, frame-ancestors 'none', nosniff); the
# demo's Chromium test serves the same headers and checks them.
set -euo pipefail
cd "$(dirname "$0")/../www/dist"
port="${1:-8000}"
[ -f headers.json ] || { echo "serve-demo: www/dist/headers.json is missing (scripts/build-demo.sh)" >&2; exit 1; }
echo "rlrag demo: http://127.0.0.1:$port/"
exec python3 -c '
import http.server, json, sys
HEADERS = json.load(open("headers.json"))
class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".wasm": "application/wasm", ".js": "text/javascript"}
    def end_headers(self):
        for name, value in HEADERS.items():
            self.send_header(name, value)
        super().end_headers()
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
' "$port"
