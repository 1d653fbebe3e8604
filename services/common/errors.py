"""The three kinds of failure every stage distinguishes, and what each one means.

- `InvalidMessage`: this message can never be processed (bad bytes, schema violation, a document
  Elasticsearch refuses by mapping). Dead-letter it, count it, move on. Never retried.
- `TransientError`: the world is briefly broken (broker or Elasticsearch unreachable, 429, 503).
  Retry with capped exponential backoff and jitter; do not skip the message.
- `Overloaded`: a downstream asks us to slow down. Pause consumption (keep polling so the group
  keeps us), resume when it drains. Never drop.

Anything else is a bug: let it crash loudly so the supervisor restarts the process.
"""

from __future__ import annotations


class InvalidMessage(Exception):
    """A message that can never be processed; names schema, version and field."""

    def __init__(self, schema: str, version: int, field: str, reason: str):
        self.schema = schema
        self.version = version
        self.field = field
        self.reason = reason
        super().__init__(f"{schema}.v{version}: {field}: {reason}")


class TransientError(Exception):
    """A failure that goes away by itself; retry with backoff."""


class Overloaded(TransientError):
    """Downstream is saturated; pause input rather than drop."""


class DeadLetterLimitExceeded(RuntimeError):
    """Too many recent messages went to the dead-letter topic: stop instead of draining the topic."""
