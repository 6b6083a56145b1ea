#!/usr/bin/env python3
"""A stand-in for the shop API, CRM and Slack while trying the example: prints every request it
receives and answers 200 with a small JSON body. Usage: python3 receiver.py [port, default 9090]"""
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8", "replace")
        print(f"{self.command} {self.path}  Idempotency-Key: {self.headers.get('Idempotency-Key')}\n  {body}", flush=True)
        reply = json.dumps({"ok": True, "id": "rec_" + str(abs(hash(body)) % 10**6)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 9090), Handler).serve_forever()
