"""Dead letters: what travels with a message that could not be processed, and when to give up.

Pure: builds the provenance headers and judges the dead-letter ratio. The Kafka adapter
(`pantau.common.kafka.DeadLetterProducer`) sends; faust agents use the same headers.
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

from pantau.common.errors import DeadLetterLimitExceeded

HEADER_PREFIX = "pantau-dlq-"
MAX_REASON_CHARS = 2000
ROOM_BYTES = 64 * 1024  # kept free below the broker's message limit for the key and the batch framing


@dataclass(frozen=True)
class Provenance:
    """Where a dead letter came from. `offset` and `partition` are -1 when not from Kafka."""

    topic: str
    partition: int
    offset: int
    service: str


def dead_letter_headers(
    provenance: Provenance,
    error: BaseException,
    original_headers: list[tuple[str, bytes]] | None = None,
    now: datetime | None = None,
) -> list[tuple[str, bytes]]:
    """The original headers (minus any earlier dead-letter provenance) plus ours."""
    reason = str(error) or type(error).__name__
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 1] + "…"
    kept = [(k, v) for k, v in (original_headers or []) if not k.startswith(HEADER_PREFIX)]
    ours = {
        "topic": provenance.topic,
        "partition": str(provenance.partition),
        "offset": str(provenance.offset),
        "service": provenance.service,
        "error-type": type(error).__name__,
        "reason": reason,
        "time": (now or datetime.now(UTC)).isoformat(timespec="milliseconds"),
    }
    return kept + [(HEADER_PREFIX + k, v.encode("utf-8")) for k, v in ours.items()]


def fit_dead_letter(
    value: bytes | None, headers: list[tuple[str, bytes]], max_bytes: int
) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    """A dead letter the broker takes. The original was within its limit compressed, and may not be
    with our headers: a letter the broker refuses would be retried forever and stop the stage. Past
    `max_bytes` the value is cut, and headers say its full size and SHA-256 (find it at its source
    offset while the topic keeps it)."""
    header_bytes = sum(len(k) + len(v) for k, v in headers)
    if value is None or len(value) + header_bytes <= max_bytes:
        return value, headers
    extra = [(HEADER_PREFIX + "truncated-from", str(len(value)).encode()),
             (HEADER_PREFIX + "sha256", hashlib.sha256(value).hexdigest().encode())]  # fmt: skip
    budget = max(0, max_bytes - header_bytes - sum(len(k) + len(v) for k, v in extra))
    return value[:budget], headers + extra


def read_provenance(headers: list[tuple[str, bytes]]) -> dict[str, str]:
    """The dead-letter headers of a message, without the prefix: {'topic': ..., 'reason': ...}."""
    return {
        k[len(HEADER_PREFIX) :]: v.decode("utf-8", "replace") for k, v in headers or [] if k.startswith(HEADER_PREFIX)
    }


def original_headers(headers: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The headers the message had before it was dead-lettered (for replay)."""
    return [(k, v) for k, v in headers or [] if not k.startswith(HEADER_PREFIX)]


class DeadLetterLimit:
    """Stops a consumer whose recent messages mostly fail: a bad release or a wrong schema should
    halt the stage (and page someone), not quietly move a whole topic into the dead-letter queue."""

    def __init__(self, max_ratio: float, window: int, min_messages: int):
        if not 0 < max_ratio <= 1:
            raise ValueError("max_ratio must be in (0, 1]")
        self.max_ratio = max_ratio
        self.min_messages = min(min_messages, window)
        self._recent: deque[bool] = deque(maxlen=window)
        self._dead = 0

    def record(self, dead_lettered: bool) -> None:
        """Record one message's fate; raises DeadLetterLimitExceeded when over the limit."""
        if len(self._recent) == self._recent.maxlen and self._recent[0]:
            self._dead -= 1
        self._recent.append(dead_lettered)
        self._dead += dead_lettered
        if len(self._recent) >= self.min_messages and self._dead / len(self._recent) > self.max_ratio:
            raise DeadLetterLimitExceeded(
                f"{self._dead} of the last {len(self._recent)} messages were dead-lettered "
                f"(limit {self.max_ratio:.0%}); stopping"
            )
