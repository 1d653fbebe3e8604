"""Ring 2 (in-process): the metrics/health server over real HTTP, and shutdown by a real signal."""

from __future__ import annotations

import json
import os
import signal
import urllib.error
import urllib.request

import pytest

from pantau.common.health import Health, HealthServer
from pantau.common.metrics import DEAD_LETTERS
from pantau.common.shutdown import ShutdownFlag


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.fixture
def served():
    health = Health("test-service", stall_after_s=60)
    server = HealthServer(health, port=0).start()
    yield health, server.port
    server.stop()


def test_metrics_are_served_from_the_one_registry(served):
    _, port = served
    DEAD_LETTERS.labels("test-service", "articles_raw", "InvalidMessage").inc()
    status, body = get(port, "/metrics")
    assert status == 200
    assert (
        b'pantau_dead_letters_total{error_type="InvalidMessage",service="test-service",source_topic="articles_raw"}'
        in body
    )
    assert b"process_resident_memory_bytes" in body


def test_readyz_follows_the_checks_and_names_the_failing_one(served):
    health, port = served
    state = {"kafka": True}
    health.add_check("kafka", lambda: state["kafka"])
    health.add_check("broken", lambda: 1 / 0 == 0)  # a raising check counts as failing
    status, body = get(port, "/readyz")
    assert status == 503
    assert json.loads(body)["checks"] == {"kafka": True, "broken": False}
    health._checks.pop("broken")
    assert get(port, "/readyz")[0] == 200
    state["kafka"] = False
    assert get(port, "/readyz")[0] == 503
    assert b'pantau_ready{service="test-service"} 0.0' in get(port, "/metrics")[1]


def test_healthz_turns_503_when_the_loop_stops_beating(served):
    health, port = served
    assert get(port, "/healthz")[0] == 200
    health.stall_after_s = 0.0
    health._last_beat -= 1
    assert get(port, "/healthz")[0] == 503
    health.stall_after_s = 60
    health.beat()
    assert get(port, "/healthz")[0] == 200


def test_sigterm_only_sets_the_flag():
    flag = ShutdownFlag().install()
    try:
        assert not flag.requested
        os.kill(os.getpid(), signal.SIGTERM)
        assert flag.wait(5)
        assert flag.requested
    finally:
        flag.uninstall()
