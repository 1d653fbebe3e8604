"""Operator tools for dead-letter topics: read them, and replay them to where they came from.

Both read up to the end offsets as they were when the tool started (messages that arrive while
it runs wait for the next run), so they always finish.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from pantau.common.dlq import original_headers, read_provenance
from pantau.common.kafka_io import make_consumer, make_producer, record_headers
from pantau.common.settings import KafkaSettings


def _records_until_end(consumer, partitions: list[TopicPartition], limit: int | None) -> Iterator[Any]:
    end = consumer.end_offsets(partitions)
    remaining = {tp for tp in partitions if consumer.position(tp) < end[tp]}
    seen = 0
    while remaining and (limit is None or seen < limit):
        for tp, records in consumer.poll(timeout_ms=1000).items():
            for record in records:
                if record.offset >= end[tp] or (limit is not None and seen >= limit):
                    break
                seen += 1
                yield record
            if consumer.position(tp) >= end[tp]:
                remaining.discard(tp)


def _partitions(consumer, topic: str) -> list[TopicPartition]:
    ids = consumer.partitions_for_topic(topic)
    if not ids:
        raise SystemExit(f"no such topic: {topic}")
    return [TopicPartition(topic, p) for p in sorted(ids)]


def _text_or_base64(value: bytes | None) -> Any:
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(value).decode()}


def read_dead_letters(settings: KafkaSettings, topic: str, limit: int) -> Iterator[dict[str, Any]]:
    consumer = make_consumer(settings, "dlq-show", group_id=None)
    try:
        partitions = _partitions(consumer, topic)
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        for record in _records_until_end(consumer, partitions, limit):
            yield {
                "dlq_partition": record.partition,
                "dlq_offset": record.offset,
                "provenance": read_provenance(record_headers(record)),
                "key": _text_or_base64(record.key),
                "value": _text_or_base64(record.value),
            }
    finally:
        consumer.close()


def replay_dead_letters(settings: KafkaSettings, topic: str, group: str, limit: int | None) -> int:
    """Send each dead letter back to its source topic with its original headers; commit after
    each flushed batch so an interrupted replay resumes where it stopped. Returns the count."""
    consumer = make_consumer(settings, "dlq-replay", group_id=group)
    producer = make_producer(settings, "dlq-replay")
    count = 0
    done: dict[TopicPartition, int] = {}

    def commit() -> None:
        # Explicit offsets: the consumer's position may be past what --limit let us send.
        producer.flush()
        if done:
            consumer.commit({tp: OffsetAndMetadata(off + 1, "", -1) for tp, off in done.items()})

    try:
        partitions = _partitions(consumer, topic)
        consumer.assign(partitions)
        for record in _records_until_end(consumer, partitions, limit):
            source = read_provenance(record_headers(record)).get("topic")
            if not source:
                raise SystemExit(f"{topic}@{record.partition}:{record.offset} has no pantau-dlq-topic header")
            producer.send(source, key=record.key, value=record.value, headers=original_headers(record_headers(record)))
            count += 1
            done[TopicPartition(record.topic, record.partition)] = record.offset
            if count % 500 == 0:
                commit()
        commit()
    finally:
        producer.close()
        consumer.close()
    return count
