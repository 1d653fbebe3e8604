"""Publishing articles to `articles.raw` (kafka-python; idempotent producer, acks=all, compression).

Contract: `publish` records the article as pending *before* sending and as published only after
Kafka acknowledged it; a failed or timed-out send leaves it pending, and `resend_pending` sends
it again later — so Kafka being down for minutes loses nothing. Sends run in a worker thread so
the crawler's event loop never blocks on the broker.

A producer whose sends keep failing although the broker answers again (after a broker restart an
idempotent kafka-python producer can stay stuck on batches of unknown outcome) is replaced by a new
one from `renew`: resending pending articles is at-least-once, and every consumer is idempotent by id."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from pantau.common.codec import Codec
from pantau.common.kafka_io import broker_reachable, close_producer
from pantau.common.metrics import CRAWLER_PENDING, CRAWLER_PRODUCE_ERRORS
from pantau.crawler.state import CrawlState

log = logging.getLogger(__name__)
RENEW_AFTER_FAILURES = 3  # consecutive failed sends, with the broker reachable, before a new producer


class Publisher:
    def __init__(
        self,
        producer: KafkaProducer,
        topic: str,
        codec: Codec,
        state: CrawlState,
        ack_timeout_s: float = 60,
        renew: Callable[[], KafkaProducer] | None = None,
    ):
        self.producer = producer
        self.topic = topic
        self.codec = codec
        self.state = state
        self.ack_timeout_s = ack_timeout_s
        self.renew = renew
        self.last_send_ok = True
        self.failures = 0
        # (id, revision) of the articles being sent now: pending, but not for `resend_pending` to send
        # again (the crawl loop's timer resent an article a fetch was still sending: two copies).
        self._sending: set[tuple[str, int]] = set()

    def _send_and_wait(self, message: dict[str, Any]) -> None:
        value, headers = self.codec.encode(message)
        future = self.producer.send(self.topic, key=message["id"].encode(), value=value, headers=headers)
        future.get(timeout=self.ack_timeout_s)

    async def publish(self, message: dict[str, Any], frontier_url: str | None) -> bool:
        """True once Kafka acknowledged; False when it stays pending. Raises InvalidMessage (a bug:
        the crawler built a message its own schema refuses) before anything is recorded."""
        self.codec.validate(message)
        self.state.add_pending(message, frontier_url)
        CRAWLER_PENDING.set(self.state.pending_count())
        sending = (message["id"], message["revision"])
        self._sending.add(sending)
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._send_and_wait, message)
        except KafkaError as exc:
            self.last_send_ok = False
            self.failures += 1
            CRAWLER_PRODUCE_ERRORS.inc()
            log.warning("send failed; the article stays pending", extra={"id": message["id"], "error": repr(exc)})
            if self.renew is not None and self.failures >= RENEW_AFTER_FAILURES and self._broker_answers():
                await asyncio.get_running_loop().run_in_executor(None, self._renew)
            return False
        finally:
            self._sending.discard(sending)
        self.last_send_ok = True
        self.failures = 0
        self.state.acknowledged(message, frontier_url)
        CRAWLER_PENDING.set(self.state.pending_count())
        return True

    async def resend_pending(self) -> int:
        """Send everything still pending (after a restart or an outage) that is not being sent right
        now. Returns how many got through."""
        sent = 0
        for message, frontier_url in self.state.pending():
            if (message["id"], message["revision"]) in self._sending:
                continue
            if await self.publish(message, frontier_url):
                sent += 1
            else:
                break  # the broker is still away; try again later
        return sent

    def _broker_answers(self) -> bool:
        servers = self.producer.config["bootstrap_servers"]
        return broker_reachable([servers] if isinstance(servers, str) else list(servers))

    def _renew(self) -> None:
        log.warning("the broker answers, sends keep failing: a new producer", extra={"failures": self.failures})
        old, self.producer, self.failures = self.producer, self.renew(), 0
        close_producer(old, timeout_s=0)

    def close_renewed(self, original: KafkaProducer, timeout_s: float = 10.0) -> None:
        """Flush what is in flight, within `timeout_s` (a producer stuck after a broker restart never
        completes a flush; what it holds stays pending and is sent again next run), and close the
        producer this publisher made to replace `original` (the caller closes its own)."""
        try:
            self.producer.flush(timeout=timeout_s)
        except KafkaError as exc:
            log.warning("flush incomplete; unacknowledged articles stay pending: %r", exc)
        if self.producer is not original:
            close_producer(self.producer, timeout_s)

    def ready(self) -> bool:
        """Kafka answers a connection and the last send was acknowledged."""
        return self.last_send_ok and self._broker_answers()
