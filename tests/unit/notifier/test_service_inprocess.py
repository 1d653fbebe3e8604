"""Ring 2: the notifier's loop steps (accept, compose, logged) with a delivery log that acknowledges
at once, no broker: an alert's offset becomes committable only when every group it is in has been
written to the log."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from pantau.common.settings import NotifierSettings, TopicSettings
from pantau.notifier.service import COMPOSE_CHUNK, Notifier


class Acknowledged:
    is_done = True

    def failed(self) -> bool:
        return False


class InstantLog:
    producer = None

    def __init__(self) -> None:
        self.written: list[str] = []

    def send_all(self, items):
        self.written += [key for key, _ in items]
        return [Acknowledged() for _ in items]


TARGETS = COMPOSE_CHUNK + 50  # more due at once than one loop turn writes


@pytest.fixture
def notifier(contracts):
    hooks = [{"webhooks": [{"url": f"https://h.example/{i}"}]} for i in range(TARGETS)]
    subs = {f"s{i}": {"id": f"s{i}", "owner": f"o{i}", "query": "x", "modes": ["spike"], "channels": hooks[i]}
            for i in range(TARGETS)}  # fmt: skip
    settings = NotifierSettings(group_wait_s=0.0, group_interval_s=60.0)
    return Notifier(None, InstantLog(), None, lambda: subs, contracts, TopicSettings(), settings, None)


def accept(notifier: Notifier, incident: str, subscription_ids: list[str], offset: int, now: float) -> None:
    alert = {"id": f"{incident}:1", "incident_id": incident, "revision": 1, "kind": "spike", "state": "firing",
             "detected_at": datetime.fromtimestamp(now, UTC).isoformat(),
             "subscription_ids": subscription_ids}  # fmt: skip
    notifier.codec = SimpleNamespace(decode=lambda value, headers: alert)
    record = SimpleNamespace(topic="alerts", partition=0, offset=offset, value=b"", key=b"", headers=[])
    notifier.accept(record, now)


def test_an_alert_read_while_notifications_wait_to_be_logged_keeps_its_offset_uncommitted(notifier):
    now = datetime.now(UTC).timestamp()
    accept(notifier, "A", [f"s{i}" for i in range(TARGETS)], 10, now)
    notifier.compose(now)  # all due; the first COMPOSE_CHUNK written
    notifier.logged()
    assert len(notifier.composing) == TARGETS - COMPOSE_CHUNK
    assert notifier.ledger.committable() == {("alerts", 0): 10}  # the commit point stays before A
    # B for the last target (still waiting to be written for A) opens a new group: it waits the
    # group interval, so only the grouper holds it.
    accept(notifier, "B", [f"s{TARGETS - 1}"], 11, now)
    notifier.compose(now)
    notifier.logged()
    assert notifier.composing == [] and len(notifier.log.written) == TARGETS
    assert notifier.grouper.pending_alerts() == 1
    assert notifier.ledger.committable() == {("alerts", 0): 11}  # past A, not past B


def test_a_notification_logged_after_its_endpoint_answered_410_is_not_sent(notifier):
    now = datetime.now(UTC).timestamp()
    accept(notifier, "A", ["s0", "s1"], 10, now)
    notifier.compose(now)
    notifier.logged()
    gone = next(n for n in notifier.pending.values() if n.target.subscription_id == "s0")
    notifier.disabled.add(gone.target.key)  # as a 410 to an earlier notification does
    submitted = []
    notifier.sender.submit_all = submitted.extend
    notifier.dispatch(now)
    assert [n.target.subscription_id for n in submitted] == ["s1"]
    assert gone.state == "disabled" and gone.id not in notifier.pending
