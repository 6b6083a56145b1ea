#!/usr/bin/env python3
"""A stand-in for the shop API, CRM and Slack while trying the example: prints every request it
receives and answers 200 with a small JSON body. GET /api/legacy/bookings stands in for the old
booking system the `bookings` poller asks: two bookings at start, one more every two minutes, and
booking b-1 rescheduled after three. Usage: python3 receiver.py [port, default 9090]"""
import json, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer

STARTED = time.time()


def bookings():
    minutes = int((time.time() - STARTED) // 60)
    listed = [
        {"id": "b-1", "customer": "Jenny Rosen", "date": "2026-06-01 09:00" if minutes < 3 else "2026-06-02 10:00", "updated_at": "1" if minutes < 3 else "2"},
        {"id": "b-2", "customer": "Ada Lovelace", "date": "2026-06-01 11:30", "updated_at": "1"},
    ]
    for n in range(3, 3 + minutes // 2):
        listed.append({"id": f"b-{n}", "customer": f"Walk-in {n}", "date": "2026-06-03 08:00", "updated_at": "1"})
    return {"bookings": listed}


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

    def do_GET(self):
        if self.path.split("?")[0] != "/api/legacy/bookings":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        reply = json.dumps(bookings()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 9090), Handler).serve_forever()
