"""`pantau subscriptions apply`: the I/O shell that publishes subscription files to the compacted
`subscriptions` topic. Reads the topic to its end first, so unchanged subscriptions are not re-sent
and `--prune` knows what the files no longer hold."""

from __future__ import annotations

import json
from typing import Any

from kafka import TopicPartition

from pantau.common.codec import Codec
from pantau.common.contracts import Contracts
from pantau.common.kafka_io import close_producer, make_consumer, make_producer, record_headers
from pantau.common.settings import KafkaSettings


def read_current(kafka: KafkaSettings, topic: str, codec: Codec) -> dict[str, Any]:
    """The latest value per key on the topic (undecodable values count as present, to be replaced)."""
    consumer = make_consumer(kafka, "subscriptions-apply", group_id=None)
    current: dict[str, Any] = {}
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [0])]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        while any(consumer.position(p) < end[p] for p in partitions):
            for records in consumer.poll(timeout_ms=1000).values():
                for record in records:
                    key = record.key.decode("utf-8", "replace") if record.key else ""
                    if record.value is None:
                        current.pop(key, None)
                        continue
                    try:
                        current[key] = codec.decode(record.value, record_headers(record))
                    except Exception:  # an invalid record on the topic: replaced by a valid one if we have it
                        current[key] = {"__invalid__": True}
    finally:
        consumer.close()
    return current


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def apply_subscriptions(subs: list[dict[str, Any]], contracts: Contracts, kafka: KafkaSettings, topic: str,
                        prune: bool = False, dry_run: bool = False) -> list[tuple[str, str]]:  # fmt: skip
    """Returns the plan as (action, id) with action in create, update, same, delete."""
    codec = Codec.for_topic(contracts, "subscriptions")
    current = read_current(kafka, topic, codec)
    plan: list[tuple[str, str]] = []
    sends: list[tuple[str, dict[str, Any] | None]] = []
    for sub in subs:
        old = current.get(sub["id"])
        if old is None:
            plan.append(("create", sub["id"]))
            sends.append((sub["id"], sub))
        elif _same(old, sub):
            plan.append(("same", sub["id"]))
        else:
            plan.append(("update", sub["id"]))
            sends.append((sub["id"], sub))
    if prune:
        wanted = {sub["id"] for sub in subs}
        for sub_id in sorted(set(current) - wanted):
            plan.append(("delete", sub_id))
            sends.append((sub_id, None))
    if dry_run or not sends:
        return plan
    producer = make_producer(kafka, "subscriptions-apply")
    try:
        futures = []
        for sub_id, sub in sends:
            value, headers = codec.encode(sub)
            futures.append(producer.send(topic, key=sub_id.encode(), value=value, headers=headers))
        for future in futures:
            future.get(timeout=30)
    finally:
        close_producer(producer)
    return plan
