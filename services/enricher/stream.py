"""The enricher as a faust-streaming app: `articles.raw` → `enrich` → `articles.enriched`.

Scaling: one consumer group (PANTAU_ENRICHER_GROUP); two or three workers share the partitions,
and a worker that dies has its partitions reassigned. Processing is at-least-once: the agent runs
with concurrency 1 and takes events in small batches; it acknowledges a batch's events only after
their story decisions and outputs are acknowledged by the broker, so no offset is committed past
an article that did not come out.

Per event, in order: decode and validate (raw bytes: a message faust's serializer cannot decode
would crash the agent in a loop, so decoding happens here, inside the per-event error handling);
enrich (the entity model runs once for up to ENTITY_BATCH events: its cost is mostly per call);
encode and validate. Anything that fails for this one event — invalid bytes, a schema
violation, an enrichment bug on a strange article, an output too large for the broker — sends the
original bytes to `dlq.enricher` with provenance headers, is counted, and the stream goes on; a
stage whose recent events mostly fail stops (DeadLetterLimit) instead of draining the topic into
the dead-letter queue. Then, per batch and while the next batch is enriched: await the story
decisions, send the outputs and letters (retried while the broker is away), await their
acknowledgements, acknowledge the events.

Story decisions live in a faust GlobalTable (every worker reads all of it), one record per batch,
and each worker indexes them by SimHash band, so near-duplicates get one story id whichever worker
sees them.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import faust

from pantau.common.backoff import Backoff
from pantau.common.codec import Codec
from pantau.common.contracts import Contracts
from pantau.common.dlq import ROOM_BYTES, DeadLetterLimit, Provenance, dead_letter_headers, fit_dead_letter
from pantau.common.errors import DeadLetterLimitExceeded, InvalidMessage
from pantau.common.faust_io import RAW_BYTES, ChangelogWaits, event_headers, make_app, stop_worker
from pantau.common.health import Health
from pantau.common.metrics import (
    DEAD_LETTERS,
    ENRICHER_ARTICLES,
    ENRICHER_ENRICH_CPU_SECONDS,
    ENRICHER_ENTITIES,
    ENRICHER_LANGUAGES,
    ENRICHER_SECONDS,
    ENRICHER_STORY_ENTRIES,
    MESSAGES_DECODED,
    child,
)
from pantau.common.settings import DeadLetterSettings, EnricherSettings, KafkaSettings, TopicSettings
from pantau.enricher.core import ENTITY_BATCH, Enricher, Prepared
from pantau.enricher.fingerprint import WINDOW_S, StoryEntry, band_after_put, bands
from pantau.enricher.terms import TermMatcher

log = logging.getLogger(__name__)
SERVICE = "enricher"
SEND_BACKOFF = Backoff(initial_s=0.5, maximum_s=30.0)
BAND_ENTRIES = 32  # entries kept per SimHash band, within the story window (4 x 65,536 bands at most)
PRUNE_INTERVAL_S = 600.0  # a sweep of the story index (~0.1 s at 300,000 articles) this often
DRAIN_S = 10.0  # how long a stopping worker waits for its last batch's round trip
TURN_EVERY_S = 0.02  # enrichment time after which a batch lets the event loop turn


class _Outgoing(NamedTuple):
    """What one event of a batch sends: its enriched article, or its dead letter (then `error`)."""

    event: Any
    topic: str
    value: bytes
    headers: list
    enriched: dict | None
    error: Exception | None


@dataclass
class _Staged:
    """One event of a batch between its steps: its prepared article, or already its dead letter."""

    event: Any
    headers: list
    prepared: Prepared | None = None
    outgoing: _Outgoing | None = None
    seconds: float = 0.0  # its processing time so far (its share of a shared entity call included)


class _Turns:
    """Lets the event loop turn every TURN_EVERY_S of enrichment: the previous batch's round trip goes on
    meanwhile, and /healthz's heartbeat and the table's I/O are served."""

    def __init__(self) -> None:
        self.turned = time.perf_counter()

    async def maybe(self) -> None:
        if time.perf_counter() - self.turned > TURN_EVERY_S:
            await self.now()

    async def now(self) -> None:
        await asyncio.sleep(0)
        self.turned = time.perf_counter()


class TableStoryIndex:
    """The StoryIndex port on a faust GlobalTable. A record holds one batch's story decisions, keyed by a hash of
    its article ids: {"decisions": [[article id, fingerprint, story_id, seen_at], ...]}. One record a batch, not
    one an article: every worker reads every record back (its own too), and per-record work in faust and the
    Kafka client was a tenth of the worker's time. A record from before batching holds one article's decision,
    keyed by its id: [fingerprint, story_id, seen_at]; both are read.

    Each worker keeps its own band → entries map over the table: `put` records there at once (so the next
    article of the same batch sees it), and every record the table reads from its changelog (other workers'
    decisions, and the whole window when a worker starts) is recorded there as it arrives. The table is the
    changelog's writer and reader; `pending` writes the batch's record.

    `prune` (on a timer) forgets, in the map and in the table's memory, entries and records this worker has held
    for longer than the story window, by its own clock: not by the articles' times, which a backfill sets in the
    past and a wrong clock in the future. The changelog topic drops them by retention.

    Every write's changelog delivery is remembered: the agent awaits `pending()` before it sends the enriched
    articles, so a story decision that reached downstream is always restorable (a replay then finds it and
    repeats it; see fingerprint.assign_story)."""

    def __init__(self, clock=time.monotonic) -> None:
        self.table = None
        self.waits: ChangelogWaits | None = None
        self.bands: dict[str, list[StoryEntry]] = {}
        self.held: dict[str, tuple[StoryEntry, float]] = {}  # article id → its entry, when recorded here
        self.records: dict[str, float] = {}  # the table's record keys → when written or read here
        self.unwritten: list[list] = []  # decisions of the batch in progress
        self.clock = clock

    def attach(self, table) -> None:
        self.table = table
        self.waits = ChangelogWaits(table)

    def candidates(self, band: str) -> Iterable[StoryEntry]:
        return self.bands.get(band, ())

    def put(self, entry: StoryEntry, keys: list[str]) -> None:
        self.unwritten.append([entry.article_id, f"{entry.fingerprint:016x}", entry.story_id, entry.seen_at])
        self._record(entry, keys)

    async def on_changelog_event(self, event) -> None:
        """A record of the table's changelog, as the table reads it (faust calls this)."""
        if event.value is None:  # no tombstones are written; one from elsewhere removes nothing here
            return
        value = event.value
        # a list: one article's decision, written before decisions were batched
        decisions = (value.get("decisions") or []) if isinstance(value, dict) else [[event.key, *value]]
        self.records[event.key] = self.clock()
        for article_id, fingerprint, story_id, seen_at in decisions:
            entry = StoryEntry(article_id, int(fingerprint, 16), story_id, seen_at)
            known = self.held.get(article_id)
            # Its own decision read back, or an older revision's: records of one article can sit in two
            # partitions, which a restore reads in no set order; the revision crawled last wins.
            if known is not None and (known[0] == entry or known[0].seen_at > seen_at):
                continue
            self._record(entry, bands(entry.fingerprint))

    def prune(self) -> None:
        """Forget entries and records held for longer than the story window, in the map and in the table's
        local store (no tombstones: every worker prunes its own copy)."""
        horizon = self.clock() - WINDOW_S
        gone = {article for article, (_, at) in self.held.items() if at < horizon}
        old_records = [key for key, at in self.records.items() if at < horizon]
        for article in gone:
            del self.held[article]
        for key in old_records:
            del self.records[key]
        if gone:
            for band, entries in list(self.bands.items()):
                kept = [e for e in entries if e.article_id not in gone]
                if not kept:
                    del self.bands[band]
                elif len(kept) < len(entries):
                    self.bands[band] = kept
        if self.table is not None:
            store = self.table.data
            # The in-memory store also maps each key it restored to its partition: forget that too.
            restored_partitions = getattr(store, "_key_partition", {})
            for key in [*old_records, *gone]:  # article ids: records from before batching
                store.pop(key, None)
                restored_partitions.pop(key, None)
        ENRICHER_STORY_ENTRIES.set(len(self.held))

    def pending(self) -> Awaitable:
        """Writes the decisions made since the last call as one record; done once every story decision so far
        is in the changelog topic."""
        if self.unwritten:
            decisions, self.unwritten = self.unwritten, []
            # The same batch replayed writes the same key: compaction keeps one.
            key = hashlib.sha256("\n".join(d[0] for d in decisions).encode()).hexdigest()[:32]
            self.table[key] = {"decisions": decisions}
            self.records[key] = self.clock()
        return self.waits.pending_stores()

    def _record(self, entry: StoryEntry, keys: list[str]) -> None:
        self.held[entry.article_id] = (entry, self.clock())
        for key in keys:
            self.bands[key] = band_after_put(self.bands.get(key, ()), entry, BAND_ENTRIES)
        ENRICHER_STORY_ENTRIES.set(len(self.held))


def build_app(
    contracts: Contracts,
    terms: TermMatcher,
    kafka: KafkaSettings | None = None,
    topics: TopicSettings | None = None,
    settings: EnricherSettings | None = None,
    dlq_settings: DeadLetterSettings | None = None,
    health: Health | None = None,
) -> faust.App:
    kafka, topics = kafka or KafkaSettings(), topics or TopicSettings()
    settings, dlq_settings = settings or EnricherSettings(), dlq_settings or DeadLetterSettings()
    app = make_app(settings.group, kafka, settings.data_dir, settings.table_partitions,
                   settings.table_replication_factor)  # fmt: skip
    raw_topic = app.topic(topics.articles_raw, **RAW_BYTES)
    story_index = TableStoryIndex()
    # No value_type: faust would treat it as a Record model and fail to restore the changelog.
    # use_partitioner: a record goes to the changelog partition of its key, not of the event that
    # wrote it, so a restore ends on its last value; it also lets a batch write outside faust's
    # per-event context. Compacted (a replayed batch's last record) and deleted by age: decisions past
    # the story window are of no use, and a retention of twice the window keeps the topic bounded.
    stories = app.GlobalTable(
        "story-entries", default=None, key_type=str, use_partitioner=True,
        on_changelog_event=story_index.on_changelog_event,
        extra_topic_configs={"cleanup.policy": "compact,delete", "retention.ms": str(int(2 * WINDOW_S * 1000))},
    )  # fmt: skip
    story_index.attach(stories)
    raw_codec = Codec.for_topic(contracts, "articles_raw")
    enriched_codec = Codec.for_topic(contracts, "articles_enriched")
    enricher = Enricher(terms, story_index)
    limit = DeadLetterLimit(dlq_settings.max_ratio, dlq_settings.window, dlq_settings.min_messages)
    app.pantau_processed = 0  # for tests and the bench: events handled by this worker

    max_value_bytes = kafka.max_message_bytes - ROOM_BYTES  # room for the key, headers and batch framing

    async def send_all(results: list[_Outgoing]) -> None:
        """Send a batch's outputs and await every acknowledgement. A failed send is retried (transient),
        never given up: the batch's events are acknowledged only after this returns, and the next batch
        waits; duplicates of a retry are what at-least-once allows."""
        for attempt in itertools.count():
            try:
                # faust's producer, not Topic.send: that one waits a turn of the loop on some sends, and
                # the loop turns only every TURN_EVERY_S while the next batch is enriched
                send = app.producer.send
                delivered = [await send(o.topic, o.event.key, o.value, None, None, o.headers) for o in results]
                await asyncio.gather(*delivered)
                return
            except Exception:
                delay = SEND_BACKOFF.delay(attempt)
                log.exception("sending a batch of %d failed; retrying in %.1f s", len(results), delay)
                await asyncio.sleep(delay)

    async def finish(stream, events: list, results: list[_Outgoing], decided: Awaitable) -> None:
        """A batch's second half, while the next batch is enriched: its story decisions stored, then its
        outputs sent and acknowledged by the broker, then its events acknowledged to faust, in order."""
        try:
            await decided  # the decisions first: never an output a replay could contradict
        except Exception:
            # A story decision the broker never took: leave the way a kill -9 does, so the batch (its
            # events are not acknowledged) is read again.
            stop_worker("the story table's changelog refused a write; stopping", True)
        # faust's send returns before the broker has it: every ack is awaited before the events are
        # acknowledged, or a kill -9 could lose articles whose offsets faust had committed (seen in CI).
        await send_all(results)
        for o in results:
            if o.error is None:
                child(ENRICHER_ARTICLES, "enriched").inc()
                child(ENRICHER_LANGUAGES, o.enriched["language"]["code"]).inc()
                # Per type, not per mention: an article has dozens of mentions and three types.
                for entity_type, mentions in Counter(m["type"] for m in o.enriched["entities"]).items():
                    child(ENRICHER_ENTITIES, entity_type).inc(mentions)
            else:
                child(DEAD_LETTERS, SERVICE, "articles_raw", type(o.error).__name__).inc()
                child(ENRICHER_ARTICLES, "dead_lettered").inc()
        for event in events:
            await stream.ack(event)
        app.pantau_processed += len(events)

    def stop_on_failure(task: asyncio.Task) -> None:
        failure = None if task.cancelled() else task.exception()
        if isinstance(failure, Exception):  # a bug: nothing in finish raises by design
            stop_worker("finishing a batch failed; stopping", failure)

    @app.agent(raw_topic, concurrency=1)
    async def enrich_articles(stream):
        # Events come in small batches: each is enriched on its own, but the entities of up to ENTITY_BATCH
        # are found in one call (a failure dead-letters only its event); then the batch's story decisions
        # are awaited once and its outputs sent together: one broker round trip per batch, not two per
        # article. The events are acknowledged by hand (noack_take) once their outputs are acknowledged,
        # by a task that runs while the next batch is enriched: the worker does not sit idle through the
        # round trip. One batch finishes at a time and in order, so outputs and acknowledgements keep the
        # input's order.
        finishing: asyncio.Task | None = None
        try:
            async for events in stream.noack_take(settings.batch_max, within=settings.batch_wait_s):
                turns = _Turns()
                staged: list[_Staged] = []
                for event in events:
                    staged.append(begin(event))
                    await turns.maybe()
                ready = [s for s in staged if s.outgoing is None]
                for first in range(0, len(ready), ENTITY_BATCH):
                    add_entities(ready[first : first + ENTITY_BATCH])
                    await turns.now()
                results: list[_Outgoing] = []  # per event, in order: its article or its dead letter
                for s in staged:
                    results.append(s.outgoing or end(s))
                    await turns.maybe()
                try:
                    for o in results:
                        limit.record(o.error is not None)
                except DeadLetterLimitExceeded as exc:  # a bad release or schema: stop, page someone
                    stop_worker(str(exc))
                decided = story_index.pending()  # this batch's decisions (and any before it)
                if finishing is not None:
                    await asyncio.shield(finishing)  # a stopping agent drains it (finally), never cancels it
                finishing = asyncio.ensure_future(finish(stream, events, results, decided))
                finishing.add_done_callback(stop_on_failure)
                yield None
        finally:
            # Stopping: the batch on its way finishes its round trip, so its offsets are committed with the
            # others (drain, then commit); past DRAIN_S (a broker away) it is cancelled and read again.
            if finishing is not None and not finishing.done():
                await drain(finishing)

    async def drain(finishing: asyncio.Task) -> None:
        """Wait for the last batch's round trip, DRAIN_S at most. faust cancels a stopping agent's task
        (more than once): the wait goes on through that, up to the deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_S
        while not finishing.done() and loop.time() < deadline:
            try:
                await asyncio.wait_for(asyncio.shield(finishing), deadline - loop.time())
            except asyncio.CancelledError:
                continue
            except Exception:  # timed out (a broker away), or finish failed (stop_on_failure reports it)
                break
        if not finishing.done():  # at least once: its events are read again
            finishing.remove_done_callback(stop_on_failure)
            finishing.cancel()

    # Per event: decode and prepare (`begin`), then the entities of up to ENTITY_BATCH events at once
    # (`add_entities`), then complete and encode (`end`). Anything that fails makes that event a dead
    # letter; the others go on.
    def begin(event) -> _Staged:
        started = time.perf_counter()
        staged = _Staged(event, event_headers(event))
        try:
            raw = raw_codec.decode(event.value, staged.headers)
            child(MESSAGES_DECODED, SERVICE, "articles_raw", "ok").inc()
            cpu_started = time.thread_time()
            staged.prepared = enricher.prepare(raw)
            ENRICHER_ENRICH_CPU_SECONDS.inc(time.thread_time() - cpu_started)
        except Exception as exc:
            staged.outgoing = dead_letter(staged, exc)
            ENRICHER_SECONDS.observe(time.perf_counter() - started)
        staged.seconds += time.perf_counter() - started
        return staged

    def add_entities(staged: list[_Staged]) -> None:
        started, cpu_started = time.perf_counter(), time.thread_time()
        enricher.add_entities([s.prepared for s in staged])  # never raises: a failure stays with its article
        ENRICHER_ENRICH_CPU_SECONDS.inc(time.thread_time() - cpu_started)
        share = (time.perf_counter() - started) / len(staged)
        for s in staged:
            s.seconds += share

    def end(staged: _Staged) -> _Outgoing:
        started = time.perf_counter()
        event = staged.event
        try:
            cpu_started = time.thread_time()
            enriched = enricher.complete(staged.prepared, datetime.fromtimestamp(event.message.timestamp, UTC))
            ENRICHER_ENRICH_CPU_SECONDS.inc(time.thread_time() - cpu_started)
            value, out_headers = enriched_codec.encode(enriched)
            if len(value) > max_value_bytes:  # the broker would refuse it, whatever the retries
                raise InvalidMessage("article-enriched", 1, "(message)", f"{len(value)} bytes, over the limit")
            return _Outgoing(event, topics.articles_enriched, value, out_headers, enriched, None)
        except Exception as exc:
            return dead_letter(staged, exc)
        finally:
            ENRICHER_SECONDS.observe(staged.seconds + time.perf_counter() - started)

    def dead_letter(staged: _Staged, exc: Exception) -> _Outgoing:
        """The event's original bytes for the dead-letter topic, with its provenance and the reason."""
        if isinstance(exc, InvalidMessage) and exc.schema == "article-raw":
            MESSAGES_DECODED.labels(SERVICE, "articles_raw", "invalid").inc()
        else:
            log.exception("enrichment failed", extra={"offset": staged.event.message.offset}, exc_info=exc)
        m = staged.event.message
        letter = dead_letter_headers(Provenance(m.topic, m.partition, m.offset, SERVICE), exc, staged.headers)
        kept, letter = fit_dead_letter(staged.event.value, letter, max_value_bytes)
        return _Outgoing(staged.event, topics.dlq_enricher, kept, letter, None, exc)

    @app.timer(interval=PRUNE_INTERVAL_S)
    async def prune_story_index() -> None:
        story_index.prune()

    if health is not None:

        @app.timer(interval=5.0)
        async def heartbeat() -> None:
            # The event loop is turning: what /healthz asks (a blocked loop stops this timer).
            health.beat()

    app.pantau_agent = enrich_articles
    app.pantau_topics = {"enriched": topics.articles_enriched, "dlq": topics.dlq_enricher}  # for in-process tests
    return app
