"""The indexer's I/O shell: a kafka-python consumer group reads `articles.enriched` and `alerts`,
and writes them to Elasticsearch with the _bulk API.

Loop: poll → decode and validate each record (invalid: dead-letter at once) → add to the batch →
when the batch is due (count, bytes, age), send it in request bodies of bounded size → per item:
indexed or duplicate (confirmed), transient (retried), permanent (dead-lettered, confirmed) → commit
what the ledger allows. While transient failures are retried (with capped, jittered, unlimited
backoff) the consumer's partitions are paused and it keeps polling, so it stays in its group.
A rebalance or SIGTERM flushes, commits and lets go."""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

from elastic_transport import ConnectionError as EsConnectionError
from elastic_transport import ConnectionTimeout, TransportError
from elasticsearch import ApiError
from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import KafkaError, MessageSizeTooLargeError
from kafka.structs import OffsetAndMetadata

from pantau.common.backoff import Backoff
from pantau.common.codec import Codec
from pantau.common.contracts import Contracts
from pantau.common.dlq import Provenance
from pantau.common.es_io import reachable
from pantau.common.health import Health
from pantau.common.kafka_io import DeadLetterProducer, GroupWatch, record_headers
from pantau.common.ledger import OffsetLedger
from pantau.common.metrics import (
    INDEXER_BATCH_DOCUMENTS,
    INDEXER_BULK_SECONDS,
    INDEXER_DOCUMENTS,
    INDEXER_FRESHNESS_SECONDS,
    INDEXER_LAG,
    INDEXER_RETRIES,
    MESSAGES_DECODED,
)
from pantau.common.settings import IndexerSettings, TopicSettings
from pantau.common.shutdown import ShutdownFlag
from pantau.common.times import parse_timestamp
from pantau.indexer.bulk import Batch, Item, Outcome, chunks, classify, describe_error
from pantau.indexer.documents import alert_action, article_action

log = logging.getLogger(__name__)
SERVICE = "indexer"


class Rejected(Exception):
    """Elasticsearch refused this document for good (mapping, parsing, size): the reason is its error."""


class Indexer:
    def __init__(
        self,
        consumer,
        es,
        dead_letters: DeadLetterProducer,
        contracts: Contracts,
        topics: TopicSettings,
        settings: IndexerSettings,
        prefix: str,
        shutdown: ShutdownFlag,
        health: Health | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.consumer, self.es, self.dead_letters = consumer, es, dead_letters
        self.settings, self.prefix, self.shutdown, self.health, self.clock = settings, prefix, shutdown, health, clock
        enriched_codec, alerts_codec = (
            Codec.for_topic(contracts, "articles_enriched"),
            Codec.for_topic(contracts, "alerts"),
        )
        self.routes = {
            topics.articles_enriched: ("articles_enriched", enriched_codec, article_action),
            topics.alerts: ("alerts", alerts_codec, alert_action),
        }
        # Metric children bound once: labels() costs more than the rest of counting, per document.
        self._decoded_ok = {topic: MESSAGES_DECODED.labels(SERVICE, topic_id, "ok")
                            for topic, (topic_id, _, _) in self.routes.items()}  # fmt: skip
        confirmed = (Outcome.INDEXED, Outcome.DUPLICATE)
        self._documents = {(kind, outcome): INDEXER_DOCUMENTS.labels(kind, outcome.value)
                           for kind in ("articles", "alerts") for outcome in confirmed}  # fmt: skip
        self.batch = Batch(settings.batch_max_docs, settings.batch_max_bytes, settings.batch_max_wait_s)
        self.ledger = OffsetLedger()
        self.backoff = Backoff(settings.retry_initial_s, settings.retry_max_s)
        self.owned: set[tuple[str, int]] = set()
        self.revoked_pending: set[tuple[str, int]] = set()
        self.paused = False
        # Bulks sent, oldest first, each [(chunk, answer), ...] once done: the sender thread starts the
        # next one the moment Elasticsearch answers the previous, while this thread settles that answer.
        self.inflight: deque[Future] = deque()
        self.sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="indexer-bulk")
        self.es_ok = True
        self._lag_due = 0.0
        self.group = GroupWatch()  # kafka-python 3.0.12's lost assignment (see GroupWatch)
        if health is not None:
            health.add_check("elasticsearch", lambda: self.es_ok)

    @property
    def topics(self) -> list[str]:
        return list(self.routes)

    # ---------------------------------------------------------------- main loop
    def run(self) -> None:
        self.listener = _Listener(self)
        self.consumer.subscribe(self.topics, listener=self.listener)
        log.info("indexing", extra={"topics": self.topics})
        self._es_state(reachable(self.es))
        while not self.shutdown.requested:
            self.group.check(self.consumer, self.topics, self.listener)
            self._poll_once(self.group.timeout_ms(10 if self.inflight else self.settings.poll_timeout_ms))
            while self.inflight and self.inflight[0].done():
                self._settle_oldest()
            if self.batch.due(self.clock()):
                self.dispatch()
            self.commit()
            self._measure_lag()
        deadline = self.clock() + self.settings.shutdown_flush_s
        self.flush(deadline=deadline)
        self.commit()
        self.sender.shutdown()
        log.info("drained, committed; leaving the group")

    def _poll_once(self, timeout_ms: int) -> None:
        if self.health is not None:
            self.health.beat()
        polled = self.consumer.poll(timeout_ms=timeout_ms, max_records=self.settings.batch_max_docs)
        for records in polled.values():
            for record in records:
                self.accept(record)

    def accept(self, record) -> None:
        """Decode, validate and turn into an index action; anything wrong: dead-letter now."""
        self.ledger.track(record.topic, record.partition, record.offset)
        topic_id, codec, to_action = self.routes[record.topic]
        headers = record_headers(record)
        try:
            message = codec.decode(record.value, headers)
            self._decoded_ok[record.topic].inc()
            item = Item(record.topic, record.partition, record.offset, record.key, record.value, headers,
                        to_action(message, self.prefix, datetime.now(UTC)))  # fmt: skip
            if item.size > self.settings.max_request_bytes:
                raise Rejected(
                    f"document of {item.size} bytes exceeds the largest request ({self.settings.max_request_bytes})"
                )
        except Exception as exc:  # one record: dead-letter it, go on
            if not isinstance(exc, Rejected):
                MESSAGES_DECODED.labels(SERVICE, topic_id, "invalid").inc()
            self._dead_letter_record(record, exc, topic_id)
            return
        self.batch.add(item, self.clock())

    # ---------------------------------------------------------------- flushing
    def dispatch(self) -> None:
        """Send the due batch in the background (at most `max_inflight_bulks` sent and unsettled, like
        the Connect sink's max.in.flight.requests) while the next batch is polled and decoded. One
        thread sends them in consumed order. A retried document may reach Elasticsearch after a later
        revision of itself: external versioning refuses the older one (a counted duplicate)."""
        while len(self.inflight) >= self.settings.max_inflight_bulks:
            self._settle_oldest()
        items = self.batch.take()
        if items:
            INDEXER_BATCH_DOCUMENTS.observe(len(items))
            self.inflight.append(self.sender.submit(self._request_all, items))

    def settle_inflight(self, deadline: float | None = None) -> None:
        while self.inflight:
            self._settle_oldest(deadline)

    def _settle_oldest(self, deadline: float | None = None) -> None:
        future = self.inflight.popleft()
        pending: list[Item] = []
        for chunk, answer in future.result():
            pending += self._apply(chunk, answer)
        if pending:
            self._settle(pending, deadline)

    def flush(self, deadline: float | None = None) -> None:
        """Settle the bulks in flight, then send the batch and settle it: retry transient failures
        (paused, polling) until every item is confirmed, or until `deadline`."""
        self.settle_inflight(deadline)
        items = self.batch.take()
        if items:
            INDEXER_BATCH_DOCUMENTS.observe(len(items))
            self._settle(items, deadline)

    def _settle(self, items: list[Item], deadline: float | None) -> None:
        attempt = 0
        try:
            while items:
                pending: list[Item] = []
                for chunk in chunks(items, self.settings.max_request_bytes):
                    pending += self._send(chunk)
                items = [i for i in pending if (i.topic, i.partition) in self.owned]  # lost: the new owner's now
                if self.shutdown.requested and deadline is None:  # SIGTERM during an outage: a bounded drain
                    deadline = self.clock() + self.settings.shutdown_flush_s
                if not items or (deadline is not None and self.clock() >= deadline):
                    break
                if attempt & (attempt - 1) == 0:  # 0, 1, 2, 4, 8, ...: an outage does not flood the log
                    log.warning("%d document(s) to retry (attempt %d)", len(items), attempt + 1)
                self._wait_paused(self.backoff.delay(attempt), deadline)
                attempt += 1
        finally:
            if self.paused:
                self.consumer.resume(*self.consumer.paused())
                self.paused = False
        if items:  # not confirmed by the shutdown deadline: uncommitted, read again after the restart
            log.warning("%d document(s) not confirmed yet; their offsets stay uncommitted", len(items))
            for item in items:
                self.batch.add(item, self.clock())

    def _request(self, chunk: list[Item]):
        """One _bulk request: (seconds, answer or exception). Touches no state: safe off the main thread."""
        started = time.perf_counter()
        try:
            answer = self.es.bulk(
                operations=b"".join(i.lines for i in chunk),
                filter_path="errors,items.*.status,items.*.error",
            )
        except Exception as exc:
            return time.perf_counter() - started, exc
        return time.perf_counter() - started, answer

    def _request_all(self, items: list[Item]):
        return [(chunk, self._request(chunk)) for chunk in chunks(items, self.settings.max_request_bytes)]

    def _send(self, chunk: list[Item]) -> list[Item]:
        """One _bulk request, settled here; returns the items to retry."""
        return self._apply(chunk, self._request(chunk))

    def _apply(self, chunk: list[Item], answer) -> list[Item]:
        """Per-item outcomes of one _bulk (main thread): confirm, count, dead-letter; returns the items to retry."""
        seconds, response = answer
        if isinstance(response, ApiError):
            exc = response
            if exc.meta.status == 413:  # too large for the server: halve; one document alone is rejected
                if len(chunk) == 1:
                    self._dead_letter(
                        chunk[0], Rejected(f"request too large for Elasticsearch (413): {chunk[0].size} bytes")
                    )
                    return []
                half = len(chunk) // 2
                return self._send(chunk[:half]) + self._send(chunk[half:])
            if classify(exc.meta.status, _error_of(exc)) is Outcome.TRANSIENT:
                INDEXER_RETRIES.labels(str(exc.meta.status)).inc(len(chunk))
                log.info("bulk request refused (%s), will retry: %s", exc.meta.status, str(exc)[:300])
                return chunk
            raise exc  # 401/403: credentials or roles are wrong; a worker that cannot write must stop loudly
        if isinstance(response, (EsConnectionError, ConnectionTimeout, TransportError)):
            if self.es_ok:
                log.warning("Elasticsearch unreachable, will retry: %s", str(response)[:300])
            self._es_state(False)
            INDEXER_RETRIES.labels("unreachable").inc(len(chunk))
            return chunk
        if isinstance(response, BaseException):
            raise response
        INDEXER_BULK_SECONDS.observe(seconds)
        self._es_state(True)
        results = response.get("items") or []
        if len(results) != len(chunk):
            raise RuntimeError(f"_bulk answered {len(results)} items for {len(chunk)}")
        retry: list[Item] = []
        now = datetime.now(UTC)
        for item, result in zip(chunk, results, strict=True):
            result = next(iter(result.values()))
            outcome = classify(result.get("status", 0), result.get("error"))
            index_kind = item.action.index.split("-")[-2]
            if outcome is Outcome.TRANSIENT:
                INDEXER_RETRIES.labels("item").inc()
                retry.append(item)
            elif outcome is Outcome.PERMANENT:
                self._dead_letter(item, Rejected(describe_error(result.get("error"))))
            else:
                self._documents[index_kind, outcome].inc()
                self.ledger.confirm(item.topic, item.partition, item.offset)
                if outcome is Outcome.INDEXED and index_kind == "articles":
                    _observe_freshness(item.action.source, now)
        return retry

    def _wait_paused(self, delay: float, deadline: float | None) -> None:
        """Back off without leaving the group: partitions paused, polling on."""
        if not self.paused:
            self.consumer.pause(*self.consumer.assignment())
            self.paused = True
        until = self.clock() + delay
        if deadline is not None:
            until = min(until, deadline)
        while self.clock() < until:
            remaining_ms = int((until - self.clock()) * 1000)
            self._poll_once(max(1, min(remaining_ms, 500)))  # returns nothing: every partition is paused

    # ---------------------------------------------------------------- commits and dead letters
    def commit(self, only: set[tuple[str, int]] | None = None) -> None:
        points = {tp: off for tp, off in self.ledger.committable().items() if only is None or tp in only}
        points = {tp: off for tp, off in points.items() if tp in self.owned}
        if not points:
            return
        try:
            self.consumer.commit(
                {TopicPartition(t, p): OffsetAndMetadata(off, "", -1) for (t, p), off in points.items()}
            )
        except KafkaError as exc:  # a rebalance in progress, a stale generation, no coordinator: next time
            log.warning("commit refused, will commit again after the next poll: %r", exc)
            return
        self.ledger.committed(points)

    def _dead_letter(self, item: Item, error: Exception) -> None:
        self._send_dead_letter(item.topic, item.partition, item.offset, item.key, item.value, item.headers, error)
        INDEXER_DOCUMENTS.labels(item.action.index.split("-")[-2], "dead_lettered").inc()
        self.ledger.confirm(item.topic, item.partition, item.offset)

    def _dead_letter_record(self, record, error: Exception, topic_id: str) -> None:
        self._send_dead_letter(record.topic, record.partition, record.offset, record.key, record.value,
                               record_headers(record), error)  # fmt: skip
        INDEXER_DOCUMENTS.labels(topic_id.split("_")[0], "dead_lettered").inc()
        self.ledger.confirm(record.topic, record.partition, record.offset)

    def _send_dead_letter(self, topic, partition, offset, key, value, headers, error: Exception) -> None:
        """Until the dead-letter topic has it: a record is confirmed only then. Kafka away: retry while
        paused (as for Elasticsearch). A value the topic cannot take whole: its head, and the reason says so."""
        provenance = Provenance(topic, partition, offset, SERVICE)
        topic_id = self.routes[topic][0]
        attempt = 0
        while True:
            try:
                self.dead_letters.send(key, value, error, provenance, headers, source_topic_id=topic_id)
                return
            except MessageSizeTooLargeError:
                size = len(value or b"")
                value = (value or b"")[: size // 2]
                error = Rejected(f"{error} (dead-letter value truncated from {size} bytes)")
            except KafkaError as exc:
                if self.shutdown.requested:
                    raise  # unconfirmed, so uncommitted: read again after the restart
                log.warning("dead-letter topic unavailable, will retry: %r", exc)
                self._wait_paused(self.backoff.delay(attempt), None)
                attempt += 1

    # ---------------------------------------------------------------- rebalances, health, lag
    def on_revoked(self, partitions: list[TopicPartition]) -> None:
        """Runs on kafka-python's IO thread, inside the main thread's poll(): nothing that blocks (no
        commit, no bulk), or the worker fails or misses heartbeats. Nothing is dropped yet either: with
        the eager assignors every partition is revoked and most come straight back, their read position
        kept, so dropping their uncommitted records here would lose them. `on_assigned` decides."""
        self.revoked_pending |= {(tp.topic, tp.partition) for tp in partitions}
        log.info("partitions revoked", extra={"partitions": sorted(f"{tp.topic}-{tp.partition}" for tp in partitions)})

    def on_assigned(self, partitions: list[TopicPartition]) -> None:
        """IO thread too. Partitions revoked and not given back are someone else's now: their records
        are dropped uncommitted (the new owner reads them again from the last commit; a document
        indexed twice is a counted duplicate, never a second copy)."""
        assigned = {(tp.topic, tp.partition) for tp in partitions}
        lost, self.revoked_pending = self.revoked_pending - assigned, set()
        if lost:
            self.owned -= lost
            self.ledger.forget(lost)
            self.batch.keep(lambda item: (item.topic, item.partition) not in lost)
            for topic, partition in lost:
                with contextlib.suppress(KeyError):  # never measured
                    INDEXER_LAG.remove(topic, str(partition))
        self.owned |= assigned
        if self.paused and partitions:
            self.consumer.pause(*partitions)  # local state only: safe on the IO thread
        log.info("partitions assigned", extra={"partitions": sorted(f"{t}-{p}" for t, p in assigned),
                                               "lost": sorted(f"{t}-{p}" for t, p in lost)})  # fmt: skip

    def _es_state(self, ok: bool) -> None:
        if ok and not self.es_ok:
            log.info("Elasticsearch reachable again")
        self.es_ok = ok

    def _measure_lag(self) -> None:
        now = self.clock()
        if now < self._lag_due:
            return
        self._lag_due = now + self.settings.lag_interval_s
        if not self.es_ok or not self.batch.items:  # no bulk to tell us lately: ask (for /readyz)
            self._es_state(reachable(self.es))
        assigned = list(self.consumer.assignment())
        if not assigned:
            return
        try:
            ends = self.consumer.end_offsets(assigned)
            for tp in assigned:
                INDEXER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, ends[tp] - self.consumer.position(tp)))
        except Exception as exc:  # a metric must never stop indexing
            log.debug("lag not measured: %s", exc)


def _error_of(exc: ApiError) -> dict | None:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error")
    return error if isinstance(error, dict) else None


_FRESHNESS = (("published_at", INDEXER_FRESHNESS_SECONDS.labels("published")),
              ("crawled_at", INDEXER_FRESHNESS_SECONDS.labels("crawled")))  # fmt: skip


def _observe_freshness(doc: dict, now: datetime) -> None:
    for field, histogram in _FRESHNESS:
        if doc.get(field):
            age = (now - parse_timestamp(doc[field])).total_seconds()
            histogram.observe(max(0.0, age))


class _Listener(ConsumerRebalanceListener):
    def __init__(self, indexer: Indexer):
        self.indexer = indexer

    def on_partitions_revoked(self, revoked):
        self.indexer.group.revoked()
        self.indexer.on_revoked(list(revoked))

    def on_partitions_assigned(self, assigned):
        self.indexer.group.assigned()
        self.indexer.on_assigned(list(assigned))
