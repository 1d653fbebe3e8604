"""A small HTTP proxy on loopback in front of the real Elasticsearch, for the indexer's real-ring
tests: it refuses whole _bulk requests with 429, marks items of forwarded _bulk answers as rejected
(429) after Elasticsearch did index them, or forwards a _bulk and then never answers (the client
is killed while it waits). Everything else passes through unchanged."""

from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class FaultProxy:
    def __init__(self, upstream: str):
        target = urlsplit(upstream)
        self.upstream = (target.hostname, target.port or 9200)
        self.refuse_bulks = 0  # the next N _bulk requests: 429, not forwarded
        self.reject_every = 0  # in forwarded _bulk answers, every Nth item becomes a 429 (it was indexed)
        self.hold_bulks = False  # forward each _bulk, then answer never
        self.forwarded = threading.Event()  # set when a held _bulk reached Elasticsearch
        self.bulks = 0
        self.refused = 0
        self.rejected_items = 0
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                is_bulk = urlsplit(self.path).path.endswith("/_bulk")
                if is_bulk:
                    with proxy._lock:
                        proxy.bulks += 1
                        refuse = proxy.refuse_bulks > 0
                        if refuse:
                            proxy.refuse_bulks -= 1
                            proxy.refused += 1
                    if refuse:
                        error = {"error": {"type": "es_rejected_execution_exception", "reason": "fault proxy: busy"},
                                 "status": 429}  # fmt: skip
                        return self._answer(429, json.dumps(error).encode(), "application/json")
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                conn.close()
                if is_bulk and proxy.hold_bulks:
                    proxy.forwarded.set()
                    proxy._release.wait()
                    return
                if is_bulk and proxy.reject_every and response.status == 200:
                    data = proxy._reject_items(data)
                self._answer(response.status, data, response.getheader("Content-Type") or "application/json")

            def _answer(self, status: int, data: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-Elastic-Product", "Elasticsearch")
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _relay

            def log_message(self, *_args) -> None:
                pass

        return Handler

    def _reject_items(self, data: bytes) -> bytes:
        answer = json.loads(data)
        for n, item in enumerate(answer.get("items") or [], 1):
            if n % self.reject_every == 0:
                result = next(iter(item.values()))
                result["status"] = 429
                result["error"] = {"type": "es_rejected_execution_exception", "reason": "fault proxy: queue full"}
                answer["errors"] = True
                with self._lock:
                    self.rejected_items += 1
        return json.dumps(answer).encode()
