"""The subscriber API's I/O: subscriptions on the compacted Kafka topic and the keys file (searches:
`pantau.common.es_io.ElasticsearchSearch`, as Elasticsearch's read-only user)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from pantau.alerter.feed import SubscriptionFeed
from pantau.api.core import KeyRing, KeysFileError
from pantau.common.codec import Codec
from pantau.common.errors import TransientError

log = logging.getLogger(__name__)


class KafkaSubscriptionStore:
    """Writes go to the topic (key = id, a tombstone deletes) and return once the broker has
    acknowledged them and this process's feed has read them back: the caller's next read sees its
    write. Reads are the feed's current snapshot."""

    def __init__(self, feed: SubscriptionFeed, producer, topic: str, codec: Codec, timeout_s: float):
        self.feed, self.producer, self.topic, self.codec, self.timeout_s = feed, producer, topic, codec, timeout_s

    def get(self, sub_id: str) -> dict[str, Any] | None:
        return self.feed.by_id.get(sub_id)

    def all(self):
        return self.feed.by_id.values()

    def put(self, sub: dict[str, Any]) -> None:
        value, headers = self.codec.encode(sub)
        self._send(sub["id"], value, headers)

    def delete(self, sub_id: str) -> None:
        self._send(sub_id, None, [])

    def _send(self, key: str, value: bytes | None, headers) -> None:
        from kafka.errors import KafkaError

        try:
            meta = self.producer.send(self.topic, key=key.encode(), value=value, headers=headers).get(self.timeout_s)
        except KafkaError as exc:
            raise TransientError(f"the broker did not take the write: {exc}") from exc
        if not self.feed.wait_for(meta.partition, meta.offset, self.timeout_s):
            raise TransientError("the write is on the broker but not read back yet; read again shortly")


class KeysFile:
    """The keys file, re-read when its modification time changes (checked at most every 2 s). A file
    that turns unreadable keeps the last good keys and logs why."""

    def __init__(self, path: Path):
        self.path = path
        self._ring = self._read()
        self._stamp = self._mtime()
        self._checked = time.monotonic()
        self._lock = threading.Lock()

    def _mtime(self) -> float | None:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return None

    def _read(self) -> KeyRing:
        if not self.path.exists():
            log.warning("no API keys file: every request is refused", extra={"path": str(self.path)})
            return KeyRing([])
        try:
            return KeyRing.from_records(yaml.safe_load(self.path.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError, KeysFileError) as exc:
            raise KeysFileError(f"{self.path}: {exc}") from exc

    def __call__(self) -> KeyRing:
        if time.monotonic() - self._checked < 2.0:
            return self._ring
        with self._lock:
            self._checked = time.monotonic()
            stamp = self._mtime()
            if stamp != self._stamp:
                try:
                    self._ring = self._read()
                    log.info("API keys reloaded", extra={"keys": len(self._ring.by_id)})
                except KeysFileError as exc:
                    log.error("API keys file unusable; keeping the previous keys", extra={"reason": str(exc)})
                self._stamp = stamp
        return self._ring
