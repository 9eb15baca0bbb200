#!/usr/bin/env python3
"""A stand-in region for the deploy tests.

`region.py deploy|rollback DIR TARGET VERSION PORT` (re)starts a small HTTP server on
127.0.0.1:PORT that serves the version it was deployed with, then appends what it did to
DIR/commands.log. `region.py serve TARGET VERSION PORT` is that server: `/version` answers the
version; `/health` answers 500 when the version holds `TARGET-bad`; `/metrics` reports an error
rate of 0.2 when it holds `TARGET-slow` (0.001 otherwise). A version holding `TARGET-fail` makes
the deploy command itself exit 1, `TARGET-hang` makes it hang. The server stops by itself after
two minutes.
"""
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import time


def serve(target, version, port):
    bad, slow = f"{target}-bad" in version, f"{target}-slow" in version

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/version":
                code, body = 200, {"version": version}
            elif self.path == "/health":
                code, body = (500, {"ok": False}) if bad else (200, {"ok": True})
            elif self.path == "/metrics":
                code, body = 200, {"error_rate": 0.2 if slow else 0.001}
            else:
                code, body = 404, {}
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    deadline = time.time() + 2
    while True:
        try:
            server = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.02)
    server.timeout = 0.25
    stop_at = time.time() + 120
    while time.time() < stop_at:
        server.handle_request()


def listening(port):
    try:
        with socket.create_connection(("127.0.0.1", int(port)), timeout=0.2):
            return True
    except OSError:
        return False


def deploy(action, folder, target, version, port):
    if f"{target}-fail" in version:
        print(f"cannot deploy {version} to {target}", file=sys.stderr)
        sys.exit(1)
    if f"{target}-hang" in version:
        time.sleep(3600)
    pidfile = os.path.join(folder, f"{target}.pid")
    if os.path.exists(pidfile):
        try:
            os.kill(int(open(pidfile).read()), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
        for _ in range(100):
            if not listening(port):
                break
            time.sleep(0.02)
    child = subprocess.Popen(
        [sys.executable, __file__, "serve", target, version, port],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with open(pidfile, "w") as f:
        f.write(str(child.pid))
    for _ in range(250):
        if listening(port):
            break
        time.sleep(0.02)
    with open(os.path.join(folder, "commands.log"), "a") as f:
        f.write(f"{action} {target} {version}\n")
    print(f"{action} {target} {version} on {port}")


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(*sys.argv[2:5])
    else:
        deploy(*sys.argv[1:6])
