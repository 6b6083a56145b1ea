#!/usr/bin/env python3
"""A small JSON API for the poller tests (stdlib only), whose items the test changes between polls.

Items: {"id": "...", "name": "...", "updated_at": "v1"}, kept in insertion order. `noetag=1` on a
listing leaves the ETag out (every poll then reads every page: the benchmark's unchanged poll).
Listing routes (GET), each with an ETag over the whole list (If-None-Match → 304, counted; on /items
`etag=page` makes it cover the asked page only; `next_base=<origin>` makes the next link absolute):
  /items?page=N&per_page=K   {"items": [...], "next": "/items?page=N+1&per_page=K" | null}   (next link)
  /link-items?page=N&per_page=K   {"items": [...]} with Link: <...>; rel="next"               (RFC 8288)
  /cursor-items?after=C&per_page=K   {"data": [...], "next_cursor": C' | ""}                    (cursor)
  /list   the items themselves as a JSON list
  /empty   {"items": []}, always the same ETag
  /offset-items?offset=O&limit=K   {"items": [...]}                                             (offsets)
Faults: the next `count` listing requests answer `status` (with Retry-After when given); a listing
request for page `hang_page` sleeps `hang_seconds` first (or until /_control/release).
Control (POST, JSON): /_control/add {"items": [...]} (or {"count": N, "prefix": "p", "start": S});
/_control/change {"id", "updated_at"?, "name"?}; /_control/delete {"id"}; /_control/fail
{"count", "status", "retry_after"?}; /_control/hang {"page", "seconds"}; /_control/release;
GET /_control/stats → {"requests", "not_modified", "failed", "pages": {path: n}, "auth": [...]}.
Prints "READY <port>"."""
import hashlib, json, socket, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

lock = threading.Lock()
items = []  # list of dicts, insertion order
state = {"requests": 0, "not_modified": 0, "failed": 0, "pages": {}, "auth": [], "fail": None, "hang": None}
release = threading.Event()


cache = {"tag": None}


def etag():
    # Cached until the items change (every control call clears it): computing it over 100,000 items
    # for every page request would make the API, not the poller, what the benchmark measures.
    if cache["tag"] is None:
        digest = hashlib.sha256(json.dumps(items, sort_keys=True).encode()).hexdigest()[:16]
        cache["tag"] = f'"{digest}"'
    return cache["tag"]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        # Headers and body go out in two writes; without this the body waits for the client's
        # delayed ACK (40 ms a page), and the benchmark would measure that.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def answer(self, status, body=None, headers=()):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if status != 304:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_json(self):
        length = int(self.headers.get("Content-Length", "0"))
        return json.loads(self.rfile.read(length) or b"{}")

    def do_POST(self):
        path = urlparse(self.path).path
        body = self.read_json()
        with lock:
            cache["tag"] = None
            if path == "/_control/add":
                if "count" in body:
                    start = body.get("start", 0)
                    for n in range(start, start + body["count"]):
                        items.append({"id": f"{body.get('prefix', 'item')}-{n:06d}", "name": f"item {n}", "updated_at": "v1"})
                for item in body.get("items", []):
                    items.append(item)
            elif path == "/_control/change":
                for item in items:
                    if item["id"] == body["id"]:
                        item.update({k: v for k, v in body.items() if k != "id"})
            elif path == "/_control/delete":
                items[:] = [item for item in items if item["id"] != body["id"]]
            elif path == "/_control/fail":
                state["fail"] = body if body.get("count", 0) > 0 else None
            elif path == "/_control/hang":
                release.clear()
                state["hang"] = body
            elif path == "/_control/release":
                state["hang"] = None
                release.set()
            else:
                return self.answer(404, {"error": "unknown control"})
        self.answer(200, {"ok": True})

    def do_GET(self):
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if url.path == "/_control/stats":
            with lock:
                return self.answer(200, {k: state[k] for k in ("requests", "not_modified", "failed", "pages", "auth")})
        page = int(query.get("page", "1"))
        with lock:
            state["requests"] += 1
            if "page" in query:
                key = f"{url.path}?page={page}"
            elif "offset" in query:
                key = f"{url.path}?offset={query['offset']}"
            else:
                key = f"{url.path}?after={query.get('after', '')}"
            state["pages"][key] = state["pages"].get(key, 0) + 1
            auth = self.headers.get("Authorization")
            if auth and auth not in state["auth"]:
                state["auth"].append(auth)
            fail = state["fail"]
            if fail:
                fail["count"] -= 1
                if fail["count"] <= 0:
                    state["fail"] = None
                state["failed"] += 1
            hang = state["hang"]
        if fail:
            headers = [("Retry-After", str(fail["retry_after"]))] if "retry_after" in fail else []
            return self.answer(fail["status"], {"error": "failing on purpose"}, headers)
        if hang and hang.get("page") == page:
            release.wait(hang.get("seconds", 30))
        if url.path == "/empty":
            if self.headers.get("If-None-Match") == '"empty"':
                return self.answer(304, None, [("ETag", '"empty"')])
            return self.answer(200, {"items": [], "next": None}, [("ETag", '"empty"')])
        with lock:
            tag = etag()
            if query.get("etag") == "page" and url.path == "/items":
                # An ETag over this page's items only (as many real APIs): page 1 unchanged answers
                # 304 even when a later page changed.
                size = int(query.get("per_page", "100"))
                digest = hashlib.sha256(json.dumps(items[(page - 1) * size:page * size], sort_keys=True).encode()).hexdigest()[:16]
                tag = f'"p{digest}"'
            if self.headers.get("If-None-Match") == tag:
                state["not_modified"] += 1
                return self.answer(304, None, [("ETag", tag)])
            per_page = int(query.get("per_page", "100"))
            if url.path in ("/items", "/link-items"):
                # Only this page is copied (and the total, for "more"): pages of a large list stay cheap.
                total = len(items)
                snapshot = [dict(item) for item in items[(page - 1) * per_page:page * per_page]]
            else:
                total = len(items)
                snapshot = [dict(item) for item in items]
        headers = [] if query.get("noetag") == "1" else [("ETag", tag)]
        if url.path == "/list":
            return self.answer(200, snapshot, headers)
        if url.path == "/offset-items":
            offset, limit = int(query.get("offset", "0")), int(query.get("limit", "100"))
            return self.answer(200, {"items": snapshot[offset:offset + limit]}, headers)
        if url.path == "/cursor-items":
            after = query.get("after", "")
            start = 0
            if after:
                ids = [item["id"] for item in snapshot]
                start = ids.index(after) + 1 if after in ids else len(snapshot)
            chunk = snapshot[start:start + per_page]
            cursor = chunk[-1]["id"] if chunk else after
            return self.answer(200, {"data": chunk, "next_cursor": cursor}, headers)
        chunk = snapshot
        more = page * per_page < total
        if url.path == "/items":
            # next_base=http://host:port makes the next link absolute, to that origin.
            return self.answer(200, {"items": chunk, "next": f"{query.get('next_base', '')}/items?page={page + 1}&per_page={per_page}" if more else None}, headers)
        if url.path == "/link-items":
            if more:
                headers.append(("Link", f'</link-items?page={page + 1}&per_page={per_page}>; rel="next", </link-items?page=1&per_page={per_page}>; rel="first"'))
            return self.answer(200, {"items": chunk}, headers)
        self.answer(404, {"error": "not found"})


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(f"READY {server.server_address[1]}", flush=True)
server.serve_forever()
