#!/usr/bin/env python3
"""An HTTP proxy in front of Elasticsearch/OpenSearch that injects the failures a real cluster
produces under load, for Spate's ingest tests:

  * a fraction of bulk *items* is answered with 429 (es_rejected_execution_exception) without
    being forwarded — the rest of the bulk is forwarded and the answers spliced together;
  * a fraction of whole bulk requests is answered 503 without being forwarded;
  * refusals, switched by the test through --mode-file (one word, read on every bulk):
    "item-403" answers every bulk item 403 cluster_block_exception (an index write block),
    "401" answers whole bulks 401 security_exception, "413" answers bulks of more than 20
    documents 413 (request too large), "none" (or no file) forwards;
  * with --cat-indices FILE, GET /_cat/indices is answered with FILE's contents when it is not
    empty (a store answering sizes no store has).
  * with --search-total FILE, every _search answer's hits.total.value is replaced by the
    integer in FILE when it is not empty (a store claiming more hits than it returns).

Usage: fault-proxy.py --upstream http://127.0.0.1:9200 --port-file FILE
                      [--item-429 0.2] [--request-503 0.1] [--seed 1]
It listens on a free loopback port (written to --port-file) and keeps counts in
<port-file>.stats (JSON) after every injected failure.
"""
import argparse, json, random, sys, threading, time, urllib.request, urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

args = None
rng = None
lock = threading.Lock()
stats = {"requests": 0, "bulk_requests": 0, "searches": 0, "items_429": 0, "requests_503": 0, "items_forwarded": 0}


def save_stats():
    with open(args.port_file + ".stats", "w") as f:
        json.dump(stats, f)


def chance(p):
    with lock:
        return rng.random() < p


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, status, body, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def forward(self, method, body):
        started = time.time()
        try:
            return self._forward(method, body)
        finally:
            if args.log:
                print(f"{method} {self.path} {len(body)} bytes {time.time() - started:.3f}s", file=sys.stderr, flush=True)

    def _forward(self, method, body):
        req = urllib.request.Request(args.upstream + self.path, data=body if body else None, method=method)
        for k in ("Content-Type", "Authorization"):
            if self.headers.get(k):
                req.add_header(k, self.headers[k])
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, r.read(), r.headers.get("Content-Type", "application/json")
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers.get("Content-Type", "application/json")
        except Exception as e:  # upstream unreachable or timed out
            return 502, json.dumps({"error": {"type": "proxy_upstream_error", "reason": str(e)}}).encode(), "application/json"

    def handle_any(self, method):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        with lock:
            stats["requests"] += 1
        if method == "DELETE":
            with lock:
                stats.setdefault("deletes", {})
                name = self.path.split("?")[0].strip("/")
                stats["deletes"][name] = stats["deletes"].get(name, 0) + 1
                save_stats()
            if args.delete_delay > 0:
                time.sleep(args.delete_delay)
        if method == "POST" and self.path.split("?")[0].endswith("/_bulk"):
            return self.bulk(body)
        if method == "GET" and self.path.startswith("/_cat/indices") and args.cat_indices:
            try:
                with open(args.cat_indices, "rb") as f:
                    answer = f.read()
            except OSError:
                answer = b""
            if answer:
                return self.reply(200, answer)
        if self.path.split("?")[0].endswith("/_search"):
            with lock:
                stats["searches"] += 1
                save_stats()
        status, data, ctype = self.forward(method, body)
        if self.path.split("?")[0].endswith("/_search") and args.search_total and status == 200:
            try:
                with open(args.search_total) as f:
                    claim = f.read().strip()
            except OSError:
                claim = ""
            if claim:
                answer = json.loads(data)
                if isinstance(answer.get("hits", {}).get("total"), dict):
                    answer["hits"]["total"]["value"] = int(claim)
                    data = json.dumps(answer).encode()
        self.reply(status, data, ctype)

    def mode(self):
        if not args.mode_file:
            return "none"
        try:
            with open(args.mode_file) as f:
                return f.read().strip() or "none"
        except OSError:
            return "none"

    def refuse(self, body):
        """Answers a refusal for the current mode; False when the bulk is to be forwarded."""
        mode = self.mode()
        lines = [l for l in body.split(b"\n") if l]
        docs = len(lines) // 2
        if mode == "401":
            self.reply(401, b'{"error":{"type":"security_exception","reason":"injected: missing authentication credentials"},"status":401}')
        elif mode == "413" and docs > 20:
            self.reply(413, b'{"error":{"type":"content_too_long_exception","reason":"injected: request too large"},"status":413}')
        elif mode == "item-403":
            items = []
            for i in range(0, len(lines), 2):
                meta = json.loads(lines[i])["index"]
                items.append({"index": {"_index": meta.get("_index"), "_id": meta.get("_id"), "status": 403, "error": {
                    "type": "cluster_block_exception", "reason": "index [x] blocked by: [FORBIDDEN/8/index write (api)];"}}})
            self.reply(200, json.dumps({"took": 1, "errors": True, "items": items}).encode())
        else:
            return False
        with lock:
            stats.setdefault("refused", {})
            stats["refused"][mode] = stats["refused"].get(mode, 0) + 1
            save_stats()
        return True

    def bulk(self, body):
        if self.refuse(body):
            return
        with lock:
            stats["bulk_requests"] += 1
            if args.dump and len(body) > 100000 and stats["bulk_requests"] < 50:
                with open(f"{args.dump}/bulk-{stats['bulk_requests']}.ndjson", "wb") as f:
                    f.write(body)
        if chance(args.request_503):
            with lock:
                stats["requests_503"] += 1
                save_stats()
            return self.reply(503, b'{"error":{"type":"unavailable","reason":"injected 503"},"status":503}')
        lines = body.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        pairs = [(lines[i], lines[i + 1]) for i in range(0, len(lines), 2)]
        rejected = [chance(args.item_429) for _ in pairs]
        forward = [p for p, r in zip(pairs, rejected) if not r]
        answers = []
        if forward:
            payload = b"".join(a + b"\n" + s + b"\n" for a, s in forward)
            status, data, _ = self.forward("POST", payload)
            if status != 200:
                return self.reply(status, data)
            answers = json.loads(data)["items"]
        items, k = [], 0
        for (action, _), r in zip(pairs, rejected):
            if r:
                meta = json.loads(action)["index"]
                items.append({"index": {"_index": meta.get("_index"), "_id": meta.get("_id"), "status": 429,
                                        "error": {"type": "es_rejected_execution_exception", "reason": "injected 429"}}})
            else:
                items.append(answers[k])
                k += 1
        with lock:
            stats["items_429"] += sum(rejected)
            stats["items_forwarded"] += len(forward)
            save_stats()
        self.reply(200, json.dumps({"took": 1, "errors": any(rejected) or any(
            i.get("index", {}).get("status", 200) >= 300 for i in items), "items": items}).encode())

    def do_GET(self): self.handle_any("GET")
    def do_POST(self): self.handle_any("POST")
    def do_PUT(self): self.handle_any("PUT")
    def do_DELETE(self): self.handle_any("DELETE")
    def do_HEAD(self): self.handle_any("HEAD")


def main():
    global args, rng
    p = argparse.ArgumentParser()
    p.add_argument("--upstream", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--item-429", type=float, default=0.2)
    p.add_argument("--request-503", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--log", action="store_true", help="log every forwarded request with its duration")
    p.add_argument("--dump", help="write large bulk bodies to this folder (debugging)")
    p.add_argument("--mode-file", help="a file holding the refusal mode (none, item-403, 401, 413), read on every bulk")
    p.add_argument("--delete-delay", type=float, default=0, help="seconds to hold every DELETE before forwarding it")
    p.add_argument("--search-total", help="a file whose integer, when not empty, replaces hits.total.value in every _search answer")
    p.add_argument("--cat-indices", help="a file whose contents, when not empty, answer every GET /_cat/indices (a broken store's answer)")
    args = p.parse_args()
    rng = random.Random(args.seed)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    save_stats()
    with open(args.port_file, "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
