#!/usr/bin/env python3
"""A subscriber for the delivery tests. Every request is verified with the official
`standardwebhooks` library (v1, each whsec_ secret given) and with the spec's algorithm on the
`cryptography` package's Ed25519 (v1a, each whpk_ public key given), then recorded.

The path says how to answer: /ok → 200; /status/500,500,200 → those statuses in turn (the last
repeats); /gone → 410; /redirect → 302 to /ok; /slow/<seconds> → sleep then 200;
/retry-after/<seconds> → 429 with Retry-After the first time, then 200.
GET /_log returns every record as JSON. Prints "READY <port>".
Usage: webhook_receiver.py KEYS_JSON   (a JSON list of whsec_/whpk_ strings)"""
import base64, json, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

keys = json.loads(sys.argv[1])
records, counters, lock = [], {}, threading.Lock()


def verify(headers, body):
    results = {}
    for key in keys:
        if key.startswith("whsec_"):
            try:
                Webhook(key).verify(body, headers)
                results[key] = True
            except WebhookVerificationError:
                results[key] = False
        elif key.startswith("whpk_"):
            public = Ed25519PublicKey.from_public_bytes(base64.b64decode(key[5:]))
            signed = f"{headers.get('webhook-id')}.{headers.get('webhook-timestamp')}.".encode() + body
            ok = False
            for entry in headers.get("webhook-signature", "").split(" "):
                version, _, signature = entry.partition(",")
                if version == "v1a":
                    try:
                        public.verify(base64.b64decode(signature), signed)
                        ok = True
                    except (InvalidSignature, ValueError):
                        pass
            timestamp = int(headers.get("webhook-timestamp", "0"))
            results[key] = ok and abs(time.time() - timestamp) <= 300
    return results


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, headers=(), body=b"ok"):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/_log":
            with lock:
                body = json.dumps(records).encode()
            return self.answer(200, [("Content-Type", "application/json")], body)
        self.answer(404)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {name.lower(): value for name, value in self.headers.items()}
        parts = self.path.strip("/").split("/")
        with lock:
            count = counters.get(self.path, 0)
            counters[self.path] = count + 1
        status, extra = 200, []
        if parts[0] == "status":
            plan = [int(s) for s in parts[1].split(",")]
            status = plan[min(count, len(plan) - 1)]
        elif parts[0] == "gone":
            status = 410
        elif parts[0] == "redirect":
            status, extra = 302, [("Location", "/ok")]
        elif parts[0] == "retry-after" and count == 0:
            status, extra = 429, [("Retry-After", parts[1])]
        record = {
            "path": self.path, "t": time.time(), "status": status, "id": headers.get("webhook-id"),
            "timestamp": headers.get("webhook-timestamp"), "signature": headers.get("webhook-signature"),
            "verified": verify(headers, body), "body": body.decode("utf-8", "replace"),
            "content_type": headers.get("content-type"), "headers": headers,
        }
        with lock:
            records.append(record)  # recorded on arrival, so a delivery cut short still shows
        if parts[0] == "slow":
            time.sleep(float(parts[1]))
        self.answer(status, extra)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"READY {server.server_address[1]}", flush=True)
server.serve_forever()
