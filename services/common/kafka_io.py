"""Kafka adapters (kafka-python): producers and consumers configured the one way Pantau uses them,
the dead-letter producer, and `apply_topics` for `pantau topics apply`.

Producers: idempotence on, acks=all, compression, bounded message size. Consumers: auto-commit off
(commit only what is done), earliest reset. Everything here blocks; nothing here retries by itself
beyond what kafka-python does — callers own their retry policy.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterable
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaTimeoutError

from pantau.common.contracts import Contracts
from pantau.common.dlq import ROOM_BYTES, Provenance, dead_letter_headers, fit_dead_letter
from pantau.common.metrics import DEAD_LETTERS
from pantau.common.settings import KafkaSettings, TopicSettings
from pantau.common.topics import TopicPlan, TopicState, desired_topics, plan_topics

log = logging.getLogger(__name__)


def make_producer(settings: KafkaSettings, service: str, **overrides: Any) -> KafkaProducer:
    config: dict[str, Any] = {
        "bootstrap_servers": settings.servers,
        "client_id": f"{settings.client_id_prefix}-{service}",
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": None if settings.compression_type == "none" else settings.compression_type,
        "linger_ms": 20,
        # Articles are ~10 KB: the 16 KB default put one per batch, so consumers paid a decompression
        # and a batch header per record, and gzip had nothing to share between records.
        "batch_size": 256 * 1024,
        "max_request_size": settings.max_message_bytes,
        "request_timeout_ms": settings.request_timeout_ms,
        # Never give up on a send while the broker is away; delivery_timeout_ms bounds the wait.
        "retries": 2**31 - 1,
        "delivery_timeout_ms": 120_000,
    }
    config.update(overrides)
    return KafkaProducer(**config)


def close_producer(producer: KafkaProducer, timeout_s: float = 10.0) -> bool:
    """Close within `timeout_s`; True when everything buffered was acknowledged.

    kafka-python's close() flushes first and raises when the flush times out, leaving its sender
    thread running: a producer stuck after a broker restart would then never close. Unacknowledged
    records are the caller's to keep (the crawler keeps them pending), so a timeout is logged and the
    sender is stopped without waiting."""
    try:
        producer.close(timeout=timeout_s)
        return True
    except KafkaTimeoutError:
        log.warning("producer flush timed out after %.1f s; closing without it", timeout_s)
    sender = getattr(producer, "_sender", None)  # no public way to stop a sender whose flush hangs
    if sender is not None and sender.is_alive():
        sender.force_close()
    producer._closed = True  # so its __del__ does not try (and fail) again
    return False


def make_consumer(
    settings: KafkaSettings, service: str, group_id: str, topics: Iterable[str] = (), **overrides: Any
) -> KafkaConsumer:
    config: dict[str, Any] = {
        "bootstrap_servers": settings.servers,
        "client_id": f"{settings.client_id_prefix}-{service}",
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_partition_fetch_bytes": settings.max_message_bytes,
        "request_timeout_ms": max(settings.request_timeout_ms, 40_000),
    }
    config.update(overrides)
    consumer = KafkaConsumer(**config)
    topics = list(topics)
    if topics:
        consumer.subscribe(topics)
    return consumer


def broker_reachable(servers: list[str], timeout_s: float = 1.0) -> bool:
    """True when a TCP connection to one of the bootstrap servers opens: what /readyz asks."""
    for server in servers:
        host, _, port = server.rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
            return True
        except (OSError, ValueError):
            continue
    return False


def record_headers(record: ConsumerRecord) -> list[tuple[str, bytes]]:
    return [(k, v) for k, v in (record.headers or [])]


class DeadLetterProducer:
    """Sends undecodable or unprocessable records, bytes untouched, to a dead-letter topic with
    provenance headers. `send` blocks until the broker acknowledged, so the caller may then commit
    the source offset: a dead letter is never lost between the two."""

    def __init__(self, producer: KafkaProducer, topic: str, service: str, timeout_s: float = 60.0):
        self.producer = producer
        self.topic = topic
        self.service = service
        self.timeout_s = timeout_s

    def send(
        self,
        key: bytes | None,
        value: bytes | None,
        error: BaseException,
        provenance: Provenance,
        headers: list[tuple[str, bytes]] | None = None,
        source_topic_id: str | None = None,
    ) -> None:
        max_bytes = self.producer.config["max_request_size"] - ROOM_BYTES
        kept, letter = fit_dead_letter(value, dead_letter_headers(provenance, error, headers), max_bytes)
        future = self.producer.send(self.topic, key=key, value=kept, headers=letter)
        future.get(timeout=self.timeout_s)
        DEAD_LETTERS.labels(self.service, source_topic_id or provenance.topic, type(error).__name__).inc()
        log.warning(
            "dead-lettered a message",
            extra={
                "dlq_topic": self.topic,
                "source_topic": provenance.topic,
                "partition": provenance.partition,
                "offset": provenance.offset,
                "error_type": type(error).__name__,
                "reason": str(error)[:500],
            },
        )

    def send_record(self, record: ConsumerRecord, error: BaseException, source_topic_id: str | None = None):
        self.send(
            record.key,
            record.value,
            error,
            Provenance(record.topic, record.partition, record.offset, self.service),
            record_headers(record),
            source_topic_id,
        )


def make_admin(settings: KafkaSettings, service: str = "admin") -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=settings.servers,
        client_id=f"{settings.client_id_prefix}-{service}",
        request_timeout_ms=settings.request_timeout_ms,
    )


def describe_existing(admin: KafkaAdminClient, names: Iterable[str]) -> dict[str, TopicState]:
    present = set(admin.list_topics())
    wanted = [n for n in names if n in present]
    if not wanted:
        return {}
    configs = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, n) for n in wanted], config_filter="all"
    )["topic"]
    states = {}
    for topic in admin.describe_topics(wanted):
        partitions = topic["partitions"]
        states[topic["name"]] = TopicState(
            name=topic["name"],
            partitions=len(partitions),
            replication_factor=len(partitions[0]["replica_nodes"]) if partitions else 0,
            config={k: v["value"] for k, v in configs[topic["name"]].items()},
        )
    return states


def apply_topics(
    admin: KafkaAdminClient,
    contracts: Contracts,
    names: TopicSettings,
    dry_run: bool = False,
    wait_s: float = 30.0,
) -> TopicPlan:
    """Make the cluster's topics match schemas/topics.yaml. Idempotent: a second run plans nothing.
    Returns once the cluster reports the changes (metadata propagates asynchronously), so what
    runs next sees the topics. Raises RuntimeError when the plan has problems a human must
    resolve (nothing is changed then)."""
    brokers = len(admin.describe_cluster()["brokers"])
    desired = desired_topics(contracts, names, brokers)
    plan = plan_topics(desired, describe_existing(admin, [t.name for t in desired]))
    if plan.problems:
        raise RuntimeError("topics need a human:\n  " + "\n  ".join(plan.problems))
    if dry_run or plan.empty:
        return plan
    if plan.create:
        admin.create_topics(
            [NewTopic(t.name, t.partitions, t.replication_factor, topic_configs=t.config) for t in plan.create]
        )
    if plan.add_partitions:
        admin.create_partitions(plan.add_partitions)
    if plan.alter_config:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, n, cfg) for n, cfg in plan.alter_config.items()])
    for line in plan.describe():
        log.info("topics apply: %s", line)
    deadline = time.monotonic() + wait_s
    while not plan_topics(desired, describe_existing(admin, [t.name for t in desired])).empty:
        if time.monotonic() > deadline:
            raise RuntimeError(f"topics apply: the cluster did not report the changes within {wait_s}s")
        time.sleep(0.2)
    return plan


class GroupWatch:
    """Whether a kafka-python consumer's group is mid-rebalance, and a way around a bug of 3.0.12:
    when `poll` times out while a join is in flight, the assignment that then arrives is never
    applied, and the consumer fetches nothing more, for good (seen in the notifier bench). So: polls
    during a rebalance get `poll_ms` to finish the join in; a rebalance still without an assignment
    after `rejoin_after_s` is started again (unsubscribe, subscribe); commits wait for the assignment;
    one longer than `limit_s` is a wedged worker (the caller stops; a restart rejoins)."""

    def __init__(self, poll_ms: int = 1000, rejoin_after_s: float = 2.0, limit_s: float = 120.0):
        self.poll_ms, self.rejoin_after_s, self.limit_s = poll_ms, rejoin_after_s, limit_s
        self.rebalancing_since: float | None = time.monotonic()  # until the first assignment
        self._unassigned_since: float | None = self.rebalancing_since  # not reset by our own rejoins
        self._rejoined_at: float | None = None

    def revoked(self) -> None:  # from the listener (kafka-python's IO thread): nothing blocking
        self.rebalancing_since = time.monotonic()
        if self._unassigned_since is None:
            self._unassigned_since = self.rebalancing_since

    def assigned(self) -> None:
        self.rebalancing_since = self._unassigned_since = self._rejoined_at = None

    @property
    def stable(self) -> bool:
        return self.rebalancing_since is None

    def timeout_ms(self, wanted_ms: int) -> int:
        return wanted_ms if self.stable else max(wanted_ms, self.poll_ms)

    def check(self, consumer, topics: list[str], listener) -> None:
        """Call before each poll: restarts a join that lost its assignment, raises when wedged."""
        since = self.rebalancing_since
        if since is None:
            return
        waited = time.monotonic() - (self._unassigned_since or since)
        if waited > self.limit_s:
            raise RuntimeError(f"the consumer group has not finished a rebalance in {self.limit_s:.0f} s")
        last = self._rejoined_at or since
        if time.monotonic() - last >= self.rejoin_after_s:
            log.warning("the group rebalance did not finish; leaving and joining again",
                        extra={"seconds": round(waited, 1), "topics": topics})  # fmt: skip
            consumer.unsubscribe()
            consumer.subscribe(topics, listener=listener)
            self._rejoined_at = time.monotonic()
