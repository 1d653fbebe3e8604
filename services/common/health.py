"""Each service's small HTTP server: /metrics (Prometheus), /healthz (liveness) and /readyz
(readiness), on its own port, in a daemon thread so it answers even while the main loop blocks.

- /healthz is 200 while the main loop beats (`Health.beat()`) at least every `stall_after_s`;
  a stuck loop turns it 503 so the supervisor restarts the process.
- /readyz is 200 while every registered check passes (e.g. Kafka reachable, Elasticsearch
  reachable); the body names the failing ones. Checks must be quick and must not raise.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pantau.common.metrics import READY, REGISTRY

log = logging.getLogger(__name__)


class Health:
    def __init__(self, service: str, stall_after_s: float = 120.0):
        self.service = service
        self.stall_after_s = stall_after_s
        self._last_beat = time.monotonic()
        self._checks: dict[str, Callable[[], bool]] = {}

    def beat(self) -> None:
        self._last_beat = time.monotonic()

    def add_check(self, name: str, check: Callable[[], bool]) -> None:
        self._checks[name] = check

    def live(self) -> tuple[bool, dict]:
        age = time.monotonic() - self._last_beat
        return age <= self.stall_after_s, {"last_beat_seconds_ago": round(age, 3)}

    def ready(self) -> tuple[bool, dict]:
        results = {}
        for name, check in self._checks.items():
            try:
                results[name] = bool(check())
            except Exception as exc:  # a check that raises is a failing check, not a crash
                log.debug("readiness check %s raised %r", name, exc)
                results[name] = False
        ok = all(results.values())
        READY.labels(self.service).set(1 if ok else 0)
        return ok, {"checks": results}


class HealthServer:
    """Serves Health and the registry. `port=0` picks a free port (see `.port`)."""

    def __init__(self, health: Health, host: str = "127.0.0.1", port: int = 9400):
        handler = _handler_for(health)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="health-http", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> HealthServer:
        self._thread.start()
        log.info("serving /metrics /healthz /readyz", extra={"port": self.port})
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler_for(health: Health) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/readyz"):
                ok, detail = health.live() if path == "/healthz" else health.ready()
                body = json.dumps({"status": "ok" if ok else "fail", "service": health.service, **detail})
                self._send(200 if ok else 503, body.encode(), "application/json")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args) -> None:  # probes every few seconds would flood the log
            pass

    return Handler
