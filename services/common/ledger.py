"""Which consumed offsets may be committed. Pure.

A consumer that finishes records out of order (the indexer's bulk items, the notifier's grouped
alerts) commits, per partition, only up to the first record not yet finished: a crash then re-reads
what was unfinished, never skips it."""

from __future__ import annotations

from collections.abc import Iterable


class OffsetLedger:
    """Per partition, the offsets handed to the sink and those confirmed (in Elasticsearch, the delivery log or
    a dead-letter topic). `committable` gives, per partition, the offset to commit: one past the
    highest offset below which everything is confirmed."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, int], set[int]] = {}
        self._high: dict[tuple[str, int], int] = {}  # one past the highest offset seen
        self._committed: dict[tuple[str, int], int] = {}

    def track(self, topic: str, partition: int, offset: int) -> None:
        tp = (topic, partition)
        self._open.setdefault(tp, set()).add(offset)
        self._high[tp] = max(self._high.get(tp, 0), offset + 1)

    def confirm(self, topic: str, partition: int, offset: int) -> None:
        self._open.get((topic, partition), set()).discard(offset)

    def committable(self) -> dict[tuple[str, int], int]:
        """Partitions whose commit point moved since the last `committed` call."""
        out = {}
        for tp, high in self._high.items():
            pending = self._open.get(tp)
            point = min(pending) if pending else high
            if point > self._committed.get(tp, -1):
                out[tp] = point
        return out

    def committed(self, points: dict[tuple[str, int], int]) -> None:
        self._committed.update(points)

    def forget(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Partitions this consumer no longer owns (revoked): their open offsets are someone else's now."""
        for tp in partitions:
            self._open.pop(tp, None)
            self._high.pop(tp, None)
            self._committed.pop(tp, None)

    def open_count(self) -> int:
        return sum(len(s) for s in self._open.values())
