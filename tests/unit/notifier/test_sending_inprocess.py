"""Ring 2: the sender process (pantau.notifier.sending) with a webhook receiver on loopback, no
broker. Signed deliveries come back as outcomes; the child ends with its parent, and the parent
hears when the child ends."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import generate_latest
from standardwebhooks.webhooks import Webhook

from pantau.alerter.subscriptions import fresh_secret
from pantau.common.metrics import REGISTRY
from pantau.common.settings import NotifierSettings
from pantau.notifier.core import Notification, Outcome, Target
from pantau.notifier.sending import SenderProcess

SECRET = fresh_secret()


@pytest.fixture
def receiver():
    seen: list[tuple[str, dict[str, str], bytes]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.path, dict(self.headers), body))
            self.send_response(410 if self.path == "/gone" else 204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()


def notification(n: int, url: str) -> Notification:
    target = Target(f"sub-{n}", "desk", "webhook", url, SECRET)
    alert = {"id": "inc-1:1", "incident_id": "inc-1", "revision": 1, "kind": "spike", "state": "firing"}
    return Notification(f"msg_{n:032d}", target, [alert], time.time())


def outcomes(results: queue.Queue, count: int) -> dict[str, Outcome]:
    out = {}
    for _ in range(count):
        attempt = results.get(timeout=30)
        assert attempt is not None, "the sender process ended"
        out[attempt.notification.id] = attempt.outcome
    return out


def test_notifications_are_signed_sent_and_their_outcomes_come_back(receiver):
    url, seen = receiver
    results: queue.Queue = queue.Queue()
    sender = SenderProcess(NotifierSettings(allow_loopback=True), results)
    sender.start()
    try:
        batch = [notification(1, f"{url}/a"), notification(2, f"{url}/gone"),
                 notification(3, "http://169.254.169.254/latest/meta-data")]  # fmt: skip
        sender.submit_all(batch)
        got = outcomes(results, 3)
        assert got == {batch[0].id: Outcome.DELIVERED, batch[1].id: Outcome.DISABLED, batch[2].id: Outcome.REFUSED}
        assert sorted(path for path, _, _ in seen) == ["/a", "/gone"]  # the metadata address: no request
        _, headers, body = next(s for s in seen if s[0] == "/a")
        Webhook(SECRET).verify(body, {k.lower(): v for k, v in headers.items()})  # raises when the signature is wrong
        assert headers["webhook-id"] == batch[0].id
        exposed = generate_latest(REGISTRY).decode()
        assert "pantau_notifier_sender_process_resident_memory_bytes" in exposed  # the child's, by its pid
    finally:
        sender.close()
    assert sender.exit_code == 0


def test_the_parent_hears_when_the_child_dies():
    results: queue.Queue = queue.Queue()
    sender = SenderProcess(NotifierSettings(allow_loopback=True), results)
    sender.start()
    try:
        sender.process.kill()
        assert results.get(timeout=10) is None
        assert sender.exit_code == -signal.SIGKILL
    finally:
        sender.close()


PARENT = """
import queue, sys, time
from pantau.common.metrics import REGISTRY
from pantau.common.settings import NotifierSettings
from pantau.notifier.sending import SenderProcess
sender = SenderProcess(NotifierSettings(), queue.Queue())
sender.start()
print(sender.process.pid, flush=True)
time.sleep(600)
"""


def test_the_child_ends_when_its_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 15
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(child)
    finally:
        parent.kill()


def _alive(pid: int) -> bool:
    """Running, not a zombie (the orphan's new parent reaps it in its own time)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_pipes_are_closed_in_the_parent_after_close():
    before = set(os.listdir("/proc/self/fd"))
    results: queue.Queue = queue.Queue()
    sender = SenderProcess(NotifierSettings(), results)
    sender.start()
    sender.close()
    assert results.get(timeout=10) is None  # the outcomes pipe closed with the child
    time.sleep(0.2)
    assert set(os.listdir("/proc/self/fd")) - before == set()
