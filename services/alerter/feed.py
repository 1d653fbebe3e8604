"""The current subscriptions, read from the compacted `subscriptions` topic in a thread of its own.
No faust: the alerter's workers and the notifier both keep one."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from pantau.alerter.engine import Subscriptions
from pantau.alerter.subscriptions import check
from pantau.common.codec import Codec
from pantau.common.errors import InvalidMessage
from pantau.common.metrics import ALERTER_SUBSCRIPTIONS
from pantau.common.settings import KafkaSettings

log = logging.getLogger(__name__)


class InvalidSubscription(ValueError):
    """A record on the subscriptions topic that is not a valid subscription."""


class SubscriptionFeed:
    """Reads the compacted subscriptions topic from the start, forever, in a thread of its own;
    `current` (compiled for matching) and `by_id` are swapped whole on every change (readers never
    see a half-applied update). `wait_for` lets a writer read its own write."""

    def __init__(self, kafka: KafkaSettings, topic: str, codec: Codec, dead_letter,
                 client: str = "alerter-subscriptions",
                 compile: Callable[[Iterable[dict[str, Any]]], Any] | None = Subscriptions.of) -> None:  # fmt: skip
        self.kafka, self.topic, self.codec, self.client = kafka, topic, codec, client
        self.dead_letter = dead_letter  # (record, exc) -> None, called on this thread
        self.compile = compile
        self.current = Subscriptions()
        self.by_id: dict[str, dict[str, Any]] = {}
        self.caught_up = threading.Event()
        self._read_to: dict[int, int] = {}  # partition -> next offset to read
        self._progress = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="subscriptions", daemon=True)
        self._by_id: dict[str, dict[str, Any]] = {}
        self._invalid: set[str] = set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def apply(self, key: bytes | None, value: bytes | None, headers, origin: str) -> str | None:
        """One record; returns a reason when it is invalid (the caller dead-letters it)."""
        sub_id = key.decode("utf-8", "replace") if key else None
        try:
            sub = self.codec.decode(value, headers)
        except InvalidMessage as exc:
            return str(exc)
        if sub is None:  # tombstone
            if sub_id:
                self._by_id.pop(sub_id, None)
                self._invalid.discard(sub_id)
            return None
        problems = check(sub, self.codec, origin)
        if problems:
            self._invalid.add(sub["id"])
            return "; ".join(problems)
        if sub_id and sub_id != sub["id"]:
            return f"key {sub_id!r} is not the subscription id {sub['id']!r}"
        self._invalid.discard(sub["id"])
        self._by_id[sub["id"]] = sub
        return None

    def wait_for(self, partition: int, offset: int, timeout_s: float) -> bool:
        """True once the record at (partition, offset) has been applied (False after the timeout)."""
        with self._progress:
            return self._progress.wait_for(lambda: self._read_to.get(partition, 0) > offset, timeout_s)

    def _publish(self) -> None:
        self.by_id = dict(self._by_id)
        if self.compile is not None:
            self.current = self.compile(self._by_id[k] for k in sorted(self._by_id))
        ALERTER_SUBSCRIPTIONS.labels("valid").set(len(self._by_id))
        ALERTER_SUBSCRIPTIONS.labels("invalid").set(len(self._invalid))

    def _run(self) -> None:
        from kafka import TopicPartition

        from pantau.common.kafka_io import make_consumer, record_headers

        consumer = make_consumer(self.kafka, self.client, group_id=None)
        try:
            partitions = [
                TopicPartition(self.topic, p) for p in sorted(consumer.partitions_for_topic(self.topic) or [0])
            ]
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            end = consumer.end_offsets(partitions)
            while not self._stop.is_set():
                batches = consumer.poll(timeout_ms=500)
                changed = False
                for records in batches.values():
                    for record in records:
                        headers = record_headers(record)
                        reason = self.apply(record.key, record.value, headers,
                                            f"{record.topic}@{record.partition}:{record.offset}")  # fmt: skip
                        changed = True
                        if reason is not None:
                            log.warning("invalid subscription", extra={"offset": record.offset, "reason": reason})
                            self.dead_letter(record, InvalidSubscription(reason))
                if changed and self.caught_up.is_set():
                    self._publish()
                if not self.caught_up.is_set() and all(consumer.position(p) >= end[p] for p in partitions):
                    self._publish()  # once for the whole backlog, not once per poll
                    self.caught_up.set()
                if changed:
                    with self._progress:
                        self._read_to.update({tp.partition: records[-1].offset + 1 for tp, records in batches.items()
                                              if records})  # fmt: skip
                        self._progress.notify_all()
        except Exception:
            log.exception("subscription feed failed")
            raise
        finally:
            consumer.close()
