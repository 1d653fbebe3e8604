"""Batches, bulk-item outcomes and the commit ledger of the indexer. Pure: no Kafka, no Elasticsearch.

The guarantees are those of Confluent's Elasticsearch sink connector: per-item outcomes (not per
request), transient errors retried without limit, permanent ones dead-lettered, and offsets committed
only below the first record not yet confirmed in Elasticsearch or in the dead-letter topic (see
pantau.common.ledger)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import orjson

from pantau.indexer.documents import IndexAction


class Outcome(Enum):
    INDEXED = "indexed"
    DUPLICATE = "duplicate"  # Elasticsearch already has this revision or a newer one
    TRANSIENT = "transient"  # retry: overloaded, unavailable, blocked
    PERMANENT = "permanent"  # dead-letter: the document itself is wrong (mapping, parsing, too large)


# 429 too many requests; 5xx unavailable or timed out. A cluster block (read-only after a flood-stage
# disk watermark, no master) is lifted by ops, not by changing the document: transient too.
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
_TRANSIENT_TYPES = {"cluster_block_exception", "es_rejected_execution_exception", "unavailable_shards_exception",
                    "no_shard_available_action_exception", "node_not_connected_exception",
                    "circuit_breaking_exception", "process_cluster_event_timeout_exception"}  # fmt: skip


def classify(status: int, error: dict[str, Any] | None) -> Outcome:
    """Outcome of one bulk item from its status and error object."""
    if 200 <= status < 300:
        return Outcome.INDEXED
    kind = (error or {}).get("type", "")
    if status == 409 and kind == "version_conflict_engine_exception":
        return Outcome.DUPLICATE
    if status in _TRANSIENT_STATUS or kind in _TRANSIENT_TYPES:
        return Outcome.TRANSIENT
    return Outcome.PERMANENT


def describe_error(error: dict[str, Any] | None) -> str:
    """A one-line reason from an item's error object (type, reason, and the root cause's)."""
    if not error:
        return "no error object"
    text = f"{error.get('type', 'error')}: {error.get('reason', '')}"
    cause = error.get("caused_by")
    if isinstance(cause, dict):
        text += f" (caused by {cause.get('type', '')}: {cause.get('reason', '')})"
    return text[:2000]


@dataclass
class Item:
    """One consumed record on its way into Elasticsearch."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    action: IndexAction
    lines: bytes = b""  # the two NDJSON lines of this item in a _bulk body

    def __post_init__(self) -> None:
        if not self.lines:
            self.lines = bulk_lines(self.action)

    @property
    def size(self) -> int:
        return len(self.lines)


def bulk_lines(action: IndexAction) -> bytes:
    meta = {"index": {"_index": action.index, "_id": action.id, "version": action.version, "version_type": "external"}}
    return orjson.dumps(meta) + b"\n" + orjson.dumps(action.source) + b"\n"


@dataclass
class Batch:
    """Items collected until a count, a byte size or an age is reached."""

    max_items: int
    max_bytes: int
    max_wait_s: float
    items: list[Item] = field(default_factory=list)
    size: int = 0
    started_at: float | None = None

    def add(self, item: Item, now: float) -> None:
        if self.started_at is None:
            self.started_at = now
        self.items.append(item)
        self.size += item.size

    def due(self, now: float) -> bool:
        if not self.items or self.started_at is None:
            return False
        return (
            len(self.items) >= self.max_items or self.size >= self.max_bytes or now - self.started_at >= self.max_wait_s
        )

    def keep(self, wanted) -> None:
        """Drop the items `wanted(item)` rejects (those of partitions revoked from this consumer)."""
        self.items = [i for i in self.items if wanted(i)]
        self.size = sum(i.size for i in self.items)
        if not self.items:
            self.started_at = None

    def take(self) -> list[Item]:
        items, self.items, self.size, self.started_at = self.items, [], 0, None
        return items


def chunks(items: list[Item], max_bytes: int) -> list[list[Item]]:
    """Split items into request bodies of at most `max_bytes` each (an item larger than that alone)."""
    out: list[list[Item]] = []
    current: list[Item] = []
    size = 0
    for item in items:
        if current and size + item.size > max_bytes:
            out.append(current)
            current, size = [], 0
        current.append(item)
        size += item.size
    if current:
        out.append(current)
    return out
