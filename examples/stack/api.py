"""A small HTTP API with a health endpoint (Python standard library only)."""
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

PORT = int(os.environ.get("API_PORT", "18081"))
STARTED = time.time()
# The version a deploy gave it (set_version.py writes the file), read once at start.
VERSION_FILE = os.environ.get("API_VERSION_FILE", "api.version")
try:
    with open(VERSION_FILE) as f:
        VERSION = f.read().strip() or "v1"
except OSError:
    VERSION = "v1"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            body = {"status": "ok", "uptime_s": round(time.time() - STARTED, 1)}
        elif self.path == "/version":
            body = {"version": VERSION}
        elif self.path == "/quote":
            body = {"symbol": "ES", "price": "5000.25"}
        else:
            self.send_response(404)
            self.end_headers()
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        sys.stdout.write("api: " + (fmt % args) + "\n")
        sys.stdout.flush()


print(f"api: listening on 127.0.0.1:{PORT}", flush=True)
HTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
