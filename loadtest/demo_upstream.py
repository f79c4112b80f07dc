#!/usr/bin/env python3
"""A small JSON API to put the gateway in front of until the full demo stack exists.

GET /api/health/ -> {"status": "healthy", ...}; any other path echoes the request as JSON.
Usage: demo_upstream.py PORT NAME
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_name = "demo"

    def respond(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.startswith("/api/health"):
            payload = {"status": "healthy", "service": self.server_name}
        else:
            payload = {
                "service": self.server_name,
                "method": self.command,
                "path": self.path,
                "headers": {k: v for k, v in self.headers.items()},
                "body_bytes": len(body),
            }
        data = (json.dumps(payload, indent=2) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = respond

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    Handler.server_name = sys.argv[2] if len(sys.argv) > 2 else "demo-api"
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
