"""Ring 1: GroupWatch, the work-around for kafka-python 3.0.12 losing an assignment that arrives after
a poll timed out mid-join (time is moved by hand; the consumer records what it is asked)."""

from __future__ import annotations

import pytest

from pantau.common import kafka_io
from pantau.common.kafka_io import GroupWatch


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Consumer:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def unsubscribe(self) -> None:
        self.calls.append("unsubscribe")

    def subscribe(self, topics, listener=None) -> None:
        self.calls.append(f"subscribe {','.join(topics)}")


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(kafka_io.time, "monotonic", c)
    return c


def test_a_stable_group_polls_as_asked_and_is_left_alone(clock):
    watch, consumer = GroupWatch(), Consumer()
    watch.assigned()
    assert watch.stable and watch.timeout_ms(0) == 0 and watch.timeout_ms(500) == 500
    clock.now += 600
    watch.check(consumer, ["alerts"], None)
    assert consumer.calls == []


def test_a_join_gets_long_polls_and_is_started_again_when_its_assignment_never_comes(clock):
    watch, consumer = GroupWatch(poll_ms=1000, rejoin_after_s=2.0, limit_s=120.0), Consumer()
    watch.assigned()
    watch.revoked()
    assert not watch.stable and watch.timeout_ms(0) == 1000
    clock.now += 1.0
    watch.check(consumer, ["alerts"], None)
    assert consumer.calls == []  # a healthy join finishes well within this
    clock.now += 1.5
    watch.check(consumer, ["alerts"], None)
    assert consumer.calls == ["unsubscribe", "subscribe alerts"]
    watch.revoked()  # our own rejoin revokes again: the limit still counts from the first
    clock.now += 1.0
    watch.check(consumer, ["alerts"], None)
    assert len(consumer.calls) == 2  # not again before rejoin_after_s
    clock.now += 120
    with pytest.raises(RuntimeError, match="has not finished a rebalance in 120 s"):
        watch.check(consumer, ["alerts"], None)


def test_an_assignment_ends_the_rebalance(clock):
    watch, consumer = GroupWatch(), Consumer()
    watch.revoked()
    clock.now += 1.0
    watch.assigned()
    clock.now += 300
    watch.check(consumer, ["alerts"], None)
    assert watch.stable and consumer.calls == []
