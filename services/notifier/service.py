"""The notifier's I/O shell: a kafka-python consumer on `alerts`, the delivery log on the compacted
`notifications` topic, webhooks over aiohttp (the crawler's egress guard on every address, no
redirects) and email over SMTP, sent from a process of its own (sending.py).

Order of events, and why nothing is told twice or lost:
1. At start the whole delivery log is read: what was told restores the grouper (a re-sent or re-read
   alert is a duplicate), pending notifications are queued again with their ids and attempt counts.
2. An alert is offered to every target of every subscription it names. Its offset is committed only
   once each of its groups became a notification written to the log (acknowledged by the broker).
3. A notification is sent only after it is in the log, and its outcome is written after the attempt.
   A kill between the two resends it after the restart under the same webhook-id / Message-ID, which
   is what Standard Webhooks receivers de-duplicate on.
4. Each target has at most one attempt in flight (order, and a slow receiver holds up only itself);
   `max_concurrent_sends` bounds them all."""

from __future__ import annotations

import heapq
import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from pantau.alerter.engine import muted
from pantau.alerter.query import parse_query
from pantau.common.codec import Codec
from pantau.common.contracts import Contracts
from pantau.common.dlq import Provenance
from pantau.common.errors import TransientError
from pantau.common.health import Health
from pantau.common.kafka_io import DeadLetterProducer, GroupWatch, make_consumer, record_headers
from pantau.common.ledger import OffsetLedger
from pantau.common.metrics import (
    MESSAGES_DECODED,
    NOTIFIER_ALERTS,
    NOTIFIER_ATTEMPT_SECONDS,
    NOTIFIER_DELIVERY_SECONDS,
    NOTIFIER_NOTIFICATIONS,
    NOTIFIER_OFFERS,
    NOTIFIER_PENDING,
    child,
)
from pantau.common.settings import KafkaSettings, NotifierSettings, TopicSettings
from pantau.common.shutdown import ShutdownFlag
from pantau.common.times import parse_timestamp
from pantau.notifier.core import (
    Grouper,
    Notification,
    Outcome,
    Policy,
    Target,
    after_failure,
    target_record,
    targets_of,
)
from pantau.notifier.digests import MODES as DIGEST_MODES
from pantau.notifier.digests import digest_alert, digest_search, periods_due
from pantau.notifier.sending import Attempt, SenderProcess

log = logging.getLogger(__name__)
SERVICE = "notifier"
TP = tuple[str, int]
BUSY_POLL_S = 0.05  # with deliveries in flight: how often Kafka is polled for new alerts
BUSY_WAIT_S = 0.005  # and how long one loop turn waits for delivery outcomes
# Due notifications written to the log per loop turn: the first of a thousand are acknowledged and
# sent while the rest are still being written.
COMPOSE_CHUNK = 100


def policy_of(settings: NotifierSettings) -> Policy:
    from pantau.common.backoff import Backoff

    return Policy(settings.group_wait_s, settings.group_interval_s, settings.repeat_interval_s,
                  settings.match_group_wait_s, settings.hourly_cap,
                  Backoff(settings.retry_initial_s, settings.retry_max_s), settings.give_up_after_s)  # fmt: skip


class DeliveryLog:
    """The compacted `notifications` topic: read whole at start; a notification's record is
    acknowledged before it is sent, its outcome written after each attempt."""

    def __init__(self, producer, topic: str, codec: Codec):
        self.producer, self.topic, self.codec = producer, topic, codec

    def send_all(self, items: list[tuple[str, dict[str, Any]]]) -> list:
        """Hand the records to the producer; the caller watches the futures (acknowledged or failed)."""
        futures = []
        for key, record in items:
            value, headers = self.codec.encode(record)
            futures.append(self.producer.send(self.topic, key=key.encode(), value=value, headers=headers))
        return futures

    @staticmethod
    def read_all(kafka: KafkaSettings, topic: str, codec: Codec) -> dict[str, dict[str, Any]]:
        """Every key's latest record, from the beginning to the end offsets taken at the start."""
        consumer = make_consumer(kafka, "notifier-log", group_id=None)
        try:
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [0])]
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            end = consumer.end_offsets(partitions)
            latest: dict[str, dict[str, Any]] = {}
            while any(consumer.position(p) < end[p] for p in partitions):
                for records in consumer.poll(timeout_ms=500).values():
                    for record in records:
                        key = (record.key or b"").decode("utf-8", "replace")
                        message = codec.decode(record.value, record_headers(record))  # ours: invalid is a bug
                        if message is None:
                            latest.pop(key, None)
                        else:
                            latest[key] = message
            return latest
        finally:
            consumer.close()


class DigestMaker:
    """Looks for due digests every `digest_check_s` in a thread of its own (a thousand searches at the
    top of the hour must not hold up spike alerts) and hands each non-empty one to the notifier's
    loop through `ready`. A period whose search failed is tried again at the next check; one told
    before a restart is a duplicate to the grouper (the delivery log knows its id)."""

    def __init__(self, search: Callable[[dict[str, Any]], dict[str, Any]],
                 subscriptions: Callable[[], dict[str, dict[str, Any]]], settings: NotifierSettings,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.search, self.subscriptions, self.settings, self.clock = search, subscriptions, settings, clock
        self.tz = ZoneInfo(settings.digest_timezone)
        self.ready: queue.Queue[dict[str, Any]] = queue.Queue()
        self.done: dict[tuple[str, str, datetime], datetime] = {}  # (subscription, mode, start) -> end
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="digests", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception:  # a bug here must not stop the notifier's alerts; logged loudly, tried again
                log.exception("digest check failed")
            self._stop.wait(self.settings.digest_check_s)

    def check(self) -> int:
        """Search every due period once; returns how many digests were handed over."""
        now = datetime.fromtimestamp(self.clock(), UTC)
        made = 0
        for sub in list(self.subscriptions().values()):
            if muted(sub, now.timestamp()):
                continue
            created = datetime.fromtimestamp(_epoch(sub["created_at"]), UTC) if sub.get("created_at") else None
            for mode in (m for m in sub["modes"] if m in DIGEST_MODES):
                # Back as far as alerts are told, and at least one period (a daily digest survives a night down).
                lookback = max(self.settings.max_alert_age_s, 86400.0 if mode == "digest_daily" else 3600.0)
                due = periods_due(mode, now, self.tz, self.settings.digest_grace_s, lookback, created)
                for start, end in due:
                    key = (sub["id"], mode, start)
                    if key in self.done:
                        continue
                    try:
                        query = parse_query(sub["query"]).to_elasticsearch()
                        result = self.search(digest_search(query, start, end, self.settings.digest_top_articles))
                    except TransientError as exc:
                        log.warning("digest search failed; tried again", extra={"subscription": sub["id"],
                                                                                "reason": str(exc)})  # fmt: skip
                        return made
                    self.done[key] = end
                    alert = digest_alert(sub, mode, start, end, result)
                    if alert is not None:
                        self.ready.put(alert)
                        made += 1
        oldest = now.timestamp() - self.settings.max_alert_age_s - 86400
        self.done = {k: end for k, end in self.done.items() if end.timestamp() > oldest}
        return made


class Notifier:
    def __init__(
        self,
        consumer,
        delivery_log: DeliveryLog,
        dead_letters: DeadLetterProducer,
        subscriptions: Callable[[], dict[str, dict[str, Any]]],
        contracts: Contracts,
        topics: TopicSettings,
        settings: NotifierSettings,
        shutdown: ShutdownFlag,
        health: Health | None = None,
        clock: Callable[[], float] = time.time,
        digests: DigestMaker | None = None,
    ):
        self.consumer, self.log, self.dead_letters = consumer, delivery_log, dead_letters
        self.subscriptions, self.topics, self.settings = subscriptions, topics, settings
        self.shutdown, self.health, self.clock = shutdown, health, clock
        self.codec = Codec.for_topic(contracts, "alerts")
        self.policy = policy_of(settings)
        self.grouper = Grouper(self.policy)
        self.ledger = OffsetLedger()
        self.group_offsets: dict[str, list[tuple[TP, int]]] = {}  # target key -> alert offsets in its group
        self.open_offsets: dict[tuple[TP, int], int] = {}  # alert offset -> groups it still waits in
        self.pending: dict[str, Notification] = {}  # logged, not yet final
        self.in_flight: set[str] = set()  # target keys with an attempt running
        self.disabled: set[str] = set()  # target keys a 410 disabled
        self.results: queue.Queue[Attempt | None] = queue.Queue()  # None: the sender process ended
        self.staged: list[tuple[str, dict[str, Any]]] = []  # log records of outcomes, written together
        # Notifications whose record is on its way to the log: sent only once the broker has it.
        self.logging: dict[str, tuple[Notification, Any, list[tuple[TP, int]]]] = {}
        # Due, with their alerts' offsets, not yet handed to the log (COMPOSE_CHUNK a turn).
        self.composing: list[tuple[Notification, list[tuple[TP, int]]]] = []
        self.unacked: list = []  # outcome records not yet acknowledged (a failure stops the worker)
        self.sender = SenderProcess(settings, self.results)
        self.digests = digests
        self.group = GroupWatch()
        self.listener = _Listener(self.group)

    # ---------------------------------------------------------------- start
    def restore(self, records: dict[str, dict[str, Any]]) -> None:
        for key, record in records.items():
            if record["kind"] == "endpoint":
                self.disabled.add(key.removeprefix("endpoint:"))
                continue
            notification = Notification.from_record(record)
            self.grouper.restore(notification)
            if notification.state == "pending":
                self.pending[notification.id] = notification
        log.info("delivery log read", extra={"records": len(records), "pending": len(self.pending),
                                             "disabled": len(self.disabled)})  # fmt: skip

    def run(self) -> None:
        self.sender.start()
        if self.digests is not None:
            self.digests.start()
        # The group's first assignment must know the topic's partitions: a join before the metadata
        # has them assigns nothing, and the next metadata refresh can be minutes away.
        while not self.consumer.partitions_for_topic(self.topics.alerts) and not self.shutdown.requested:
            log.warning("waiting for the metadata of %s", self.topics.alerts)
            time.sleep(1.0)
        self.consumer.subscribe([self.topics.alerts], listener=self.listener)
        last_poll = 0.0
        try:
            while not self.shutdown.requested:
                if self.health is not None:
                    self.health.beat()
                # While deliveries are in flight the loop waits on their outcomes, and polls Kafka
                # every BUSY_POLL_S only: kafka-python's poll(0) costs ~0.5 ms of CPU (GIL) each time,
                # which a thousand deliveries' loop turns spent instead of sending.
                busy = bool(self.in_flight or self.logging or self.composing) or not self.results.empty()
                if not self.group.stable:  # a join must not time out mid-way (see GroupWatch)
                    self.group.check(self.consumer, [self.topics.alerts], self.listener)
                    timeout_ms = self.group.timeout_ms(0)
                elif busy:
                    timeout_ms = 0 if time.monotonic() - last_poll >= BUSY_POLL_S else None
                else:
                    timeout_ms = self._poll_timeout_ms()
                if timeout_ms is not None:
                    polled = self.consumer.poll(timeout_ms=timeout_ms, max_records=500)
                    last_poll = time.monotonic()
                    now = self.clock()
                    for records in polled.values():
                        for record in records:
                            self.accept(record, now)
                self.take_digests(self.clock())
                self.compose(self.clock())
                self.logged()
                self.settle(block_s=BUSY_WAIT_S if busy else 0.0)
                self.dispatch(self.clock())
                self.commit()
                self._gauges()
            self.drain()
        finally:
            self.sender.close()
            if self.digests is not None:
                self.digests.stop()

    def _poll_timeout_ms(self) -> int:
        """Idle: until the next group falls due or retry is scheduled (at most 0.5 s)."""
        wait, now = 0.5, self.clock()
        due = self.grouper.next_due_at()
        if due is not None:
            wait = min(wait, due - now)
        if self.pending:
            wait = min(wait, min(n.next_at for n in self.pending.values()) - now)
        return max(0, int(wait * 1000))

    # ---------------------------------------------------------------- alerts in
    def accept(self, record, now: float) -> None:
        tp = (record.topic, record.partition)
        self.ledger.track(record.topic, record.partition, record.offset)
        try:
            alert = self.codec.decode(record.value, record_headers(record))
        except Exception as exc:  # one record: dead-letter it, go on
            MESSAGES_DECODED.labels(SERVICE, "alerts", "invalid").inc()
            provenance = Provenance(record.topic, record.partition, record.offset, SERVICE)
            self.dead_letters.send(record.key, record.value, exc, provenance, record_headers(record),
                                   source_topic_id="alerts")  # fmt: skip
            self.ledger.confirm(record.topic, record.partition, record.offset)
            return
        MESSAGES_DECODED.labels(SERVICE, "alerts", "ok").inc()
        NOTIFIER_ALERTS.labels(alert["kind"], alert["state"]).inc()
        if now - _epoch(alert["detected_at"]) > self.settings.max_alert_age_s:
            child(NOTIFIER_OFFERS, "stale").inc()
            self.ledger.confirm(record.topic, record.partition, record.offset)
            return
        queued = self.offer(alert, now)
        for key in queued:
            self.group_offsets.setdefault(key, []).append((tp, record.offset))
        waiting = len(queued)
        log.info("alert read", extra={"alert": alert["id"], "offset": record.offset, "queued": waiting,
                                      "subscriptions": len(alert.get("subscription_ids") or [])})  # fmt: skip
        if waiting:
            self.open_offsets[(tp, record.offset)] = waiting
        else:
            self.ledger.confirm(record.topic, record.partition, record.offset)

    def offer(self, alert: dict[str, Any], now: float) -> list[str]:
        """Offer an alert to every target of every subscription it names; the target keys it was
        queued for."""
        queued = []
        current = self.subscriptions()
        for sub_id in alert.get("subscription_ids") or []:
            sub = current.get(sub_id)
            if sub is None:  # deleted since it was named
                child(NOTIFIER_OFFERS, "unknown").inc()
                continue
            for target in targets_of(sub):
                outcome = "disabled" if target.key in self.disabled else self.grouper.offer(alert, target, now)
                child(NOTIFIER_OFFERS, outcome).inc()
                if outcome == "queued":
                    queued.append(target.key)
        return queued

    def take_digests(self, now: float) -> None:
        """Digests made since the last loop are offered like alerts (no offsets: a lost one is made
        again from Elasticsearch after a restart)."""
        if self.digests is None:
            return
        while True:
            try:
                alert = self.digests.ready.get_nowait()
            except queue.Empty:
                return
            NOTIFIER_ALERTS.labels(alert["kind"], alert["state"]).inc()
            self.offer(alert, now)

    def compose(self, now: float) -> None:
        """Groups that are due become notifications. Each is written to the log and sent once the
        broker has acknowledged it (`logged`): the loop goes on meanwhile, so the first of a thousand
        go out while the rest are on their way to the log."""
        due = self.grouper.due(now)
        if due:
            log.info("notifications composed", extra={"notifications": len(due)})
            # The offsets of a group go with the notification it became, now: an alert for the same
            # target read while this one waits in `composing` opens a new group with its own offsets.
            self.composing += [(n, self.group_offsets.pop(n.target.key, [])) for n in due]
        if not self.composing:
            return
        chunk = self.composing[:COMPOSE_CHUNK]
        del self.composing[:COMPOSE_CHUNK]
        futures = self.log.send_all([(n.id, n.to_record()) for n, _ in chunk])
        for (notification, offsets), future in zip(chunk, futures, strict=True):
            self.logging[notification.id] = (notification, future, offsets)

    def logged(self) -> None:
        """Notifications the log has acknowledged become sendable, and their alerts' offsets
        committable once every group an alert was in is logged."""
        if not self.logging:
            return
        for nid, (notification, future, offsets) in list(self.logging.items()):
            if not future.is_done:
                continue
            del self.logging[nid]
            if future.failed():  # the broker refused past the producer's retries: stop, restart, read the log
                raise future.exception
            self.pending[nid] = notification
            for tp, offset in offsets:
                left = self.open_offsets[(tp, offset)] - 1
                if left:
                    self.open_offsets[(tp, offset)] = left
                else:
                    del self.open_offsets[(tp, offset)]
                    self.ledger.confirm(tp[0], tp[1], offset)

    # ---------------------------------------------------------------- sending
    def dispatch(self, now: float) -> None:
        free = self.settings.max_concurrent_sends - len(self.in_flight)
        if free <= 0 or not self.pending:
            return
        ready = [n for n in self.pending.values() if n.next_at <= now and n.target.key not in self.in_flight]
        current = self.subscriptions()
        started: list[Notification] = []
        for notification in heapq.nsmallest(free, ready, key=lambda n: n.next_at):  # not a sort of all
            key = notification.target.key
            if key in self.in_flight:  # two notifications of one target: one at a time
                continue
            if key in self.disabled:  # a 410 came while this one was on its way to the log
                self._finish(notification, "disabled", "the endpoint answered 410 Gone")
                continue
            target = self._current_target(notification.target, current)
            if target is None:  # the subscription or this channel of it is gone: nobody to tell
                self._finish(notification, "cancelled", "the subscription no longer has this target")
                continue
            notification.target = target
            self.in_flight.add(key)
            started.append(notification)
        self.sender.submit_all(started)
        self.flush_log()  # the cancellations

    @staticmethod
    def _current_target(target: Target, current: dict[str, dict[str, Any]]) -> Target | None:
        sub = current.get(target.subscription_id)
        if sub is None:
            return None
        now = next((t for t in targets_of(sub) if t.channel == target.channel and t.address == target.address), None)
        return target if now == target else now  # the same: keep the object whose key is computed

    def settle(self, block_s: float = 0.0) -> None:
        """Outcomes of finished attempts, written to the log together."""
        deadline = time.monotonic() + block_s
        while True:
            try:
                attempt = self.results.get(timeout=max(0.0, deadline - time.monotonic())) if block_s else \
                    self.results.get_nowait()  # fmt: skip
            except queue.Empty:
                break
            if attempt is None:  # pending notifications are in the log: a restart sends them
                self.flush_log()  # the outcomes settled before it ended
                raise RuntimeError(f"the sender process ended (exit code {self.sender.exit_code})")
            self._settle(attempt)
        self.flush_log()

    def flush_log(self) -> None:
        """Outcomes go to the log without waiting: one lost to a crash leaves its notification pending,
        sent again after the restart under the same id (which receivers de-duplicate on)."""
        staged, self.staged = self.staged, []
        for future in self.unacked:
            if future.failed():  # past the producer's own retries: stop; the restart resends from the log
                raise future.exception
        self.unacked = [f for f in self.unacked if not f.is_done]
        self.unacked += self.log.send_all(staged)

    def _settle(self, attempt: Attempt) -> None:
        n, now = attempt.notification, self.clock()
        self.in_flight.discard(n.target.key)
        channel = n.target.channel
        child(NOTIFIER_ATTEMPT_SECONDS, channel).observe(attempt.seconds)
        child(NOTIFIER_NOTIFICATIONS, channel, attempt.outcome.value).inc()
        if attempt.outcome is Outcome.DELIVERED:
            n.delivered_at = now
            self._finish(n, "delivered", None)
            _observe_latency(n, now)
        elif attempt.outcome is Outcome.DISABLED:
            log.warning("endpoint answered 410 Gone: disabled", extra={"subscription": n.target.subscription_id})
            self.disabled.add(n.target.key)
            key = f"endpoint:{n.target.key}"
            endpoint = {"kind": "endpoint", "id": key, "target": target_record(n.target), "disabled_at": now,
                        "reason": attempt.error or "HTTP 410"}  # fmt: skip
            self.staged.append((key, endpoint))
            self._finish(n, "disabled", attempt.error)
            for other in [p for p in self.pending.values() if p.target.key == n.target.key]:
                self._finish(other, "disabled", "the endpoint answered 410 Gone")
        elif attempt.outcome is Outcome.REFUSED:
            log.warning("webhook refused by the egress guard", extra={"reason": attempt.error})
            self._finish(n, "refused", attempt.error)
        else:
            n.last_error = attempt.error
            if after_failure(n, self.policy, now) == "failed":
                child(NOTIFIER_NOTIFICATIONS, channel, "failed").inc()
                log.error("notification given up after retries", extra={"id": n.id, "attempts": n.attempts})
                self._finish(n, "failed", attempt.error)
            else:
                self.staged.append((n.id, n.to_record()))

    def _finish(self, notification: Notification, state: str, error: str | None) -> None:
        notification.state, notification.last_error = state, error
        self.staged.append((notification.id, notification.to_record()))
        self.pending.pop(notification.id, None)
        if state == "cancelled":
            child(NOTIFIER_NOTIFICATIONS, notification.target.channel, "cancelled").inc()

    # ---------------------------------------------------------------- commits, shutdown
    def commit(self) -> None:
        if not self.group.stable:  # commits wait for the assignment
            return
        points = self.ledger.committable()
        if not points:
            return
        try:
            self.consumer.commit({TopicPartition(t, p): OffsetAndMetadata(off, "", -1)
                                  for (t, p), off in points.items()})  # fmt: skip
        except KafkaError as exc:
            log.warning("commit refused, will commit again: %r", exc)
            return
        self.ledger.committed(points)

    def drain(self) -> None:
        """SIGTERM: no new attempts; those in flight finish (bounded) and are logged; commit what is
        logged. Alerts still waiting in groups stay uncommitted and are read again after the restart."""
        deadline = time.monotonic() + self.settings.webhook_timeout_s + 5
        while self.in_flight and time.monotonic() < deadline:
            self.settle(block_s=0.2)
        self.log.producer.flush(max(1.0, deadline - time.monotonic()))  # what is on its way to the log
        self.logged()
        self.flush_log()
        self.commit()

    def _gauges(self) -> None:
        NOTIFIER_PENDING.labels("notifications").set(len(self.pending))
        NOTIFIER_PENDING.labels("grouped_alerts").set(self.grouper.pending_alerts())


def _observe_latency(notification: Notification, now: float) -> None:
    channel = notification.target.channel
    for alert in notification.alerts:
        child(NOTIFIER_DELIVERY_SECONDS, channel, "alert").observe(max(0.0, now - _epoch(alert["detected_at"])))
        published = [_epoch(a["published_at"]) for a in alert.get("top_articles") or [] if a.get("published_at")]
        if published and alert["kind"] != "digest":  # a digest waits for its period to end on purpose
            child(NOTIFIER_DELIVERY_SECONDS, channel, "published").observe(max(0.0, now - min(published)))


@lru_cache(maxsize=4096)  # the same alert's times, once per subscriber told
def _epoch(value: str) -> float:
    return parse_timestamp(value).timestamp()


class _Listener(ConsumerRebalanceListener):
    """Logs the partitions this worker holds and tells the group watch (kafka-python's IO thread:
    nothing blocking here)."""

    def __init__(self, group: GroupWatch) -> None:
        self.group = group

    def on_partitions_revoked(self, revoked):
        self.group.revoked()
        log.info("partitions revoked", extra={"partitions": sorted(f"{tp.topic}-{tp.partition}" for tp in revoked)})

    def on_partitions_assigned(self, assigned):
        self.group.assigned()
        log.info("partitions assigned", extra={"partitions": sorted(f"{tp.topic}-{tp.partition}" for tp in assigned)})
