"""The alerter as a faust-streaming app. Three agents, one consumer group (PANTAU_ALERTER_GROUP):

1. `route` (articles.enriched, keyed by article): decode and validate the raw bytes (inside the
   per-event error handling: faust's own decoding would crash the agent on one bad message), find the
   article's watches (`Engine.watches_of`), send one hit per watch to the internal `hits` topic keyed
   by watch — so each watch is counted in one place, once, whoever subscribes to it — and the
   article's time to every `hits` partition (the overall volume each partition scales by). Real-time
   subscriptions get their `match` alert here.
2. `detect` (hits, keyed by watch): the detector per watch; watch states and the partition's volume
   live in tables backed by changelog topics (plain tables: faust's windowed tables expire on wall
   clock, and restored windows never do). A firing is first recorded as pending in the watch's state
   (and the changelog write awaited), then sent to `firings`, then cleared: a crash in between sends
   it again on replay, with the same incident id and revision, never a new incident, never none.
3. `render` (firings, one partition): merges watches firing on the same stories, renders the alert,
   skips alert ids it already published, and sends to `alerts` keyed by incident.

Subscriptions: every worker reads the whole compacted `subscriptions` topic in a background thread
(`SubscriptionFeed`); articles wait until it has read to the end once. An invalid subscription goes
to `dlq.alerter` with provenance and is counted; the others keep working."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import faust

from pantau.alerter.detector import QUIET, Firing, Hit, Volume, WatchState, bucket_of
from pantau.alerter.engine import Engine, EngineConfig, Renderer, Subscriptions, Watch, article_ref, event_time
from pantau.alerter.feed import SubscriptionFeed
from pantau.common.codec import Codec
from pantau.common.contracts import Contracts
from pantau.common.dlq import ROOM_BYTES, DeadLetterLimit, Provenance, dead_letter_headers, fit_dead_letter
from pantau.common.errors import DeadLetterLimitExceeded, InvalidMessage
from pantau.common.faust_io import RAW_BYTES, ChangelogWaits, event_headers, make_app, stop_worker
from pantau.common.health import Health
from pantau.common.metrics import (
    ALERTER_ALERTS,
    ALERTER_ARTICLES,
    ALERTER_STREAM_LAG_SECONDS,
    ALERTER_WATCHES,
    DEAD_LETTERS,
    MESSAGES_DECODED,
)
from pantau.common.settings import AlerterSettings, DeadLetterSettings, KafkaSettings, TopicSettings

log = logging.getLogger(__name__)
SERVICE = "alerter"
EMITTED_KEPT = 5000  # alert ids remembered by `render` to skip re-sends after a replay


def internal_topics(settings: AlerterSettings) -> list[tuple[str, int]]:
    """The alerter's own topics (name, partitions): hits keyed by watch, firings on one partition."""
    return [(f"{settings.group}-hits", settings.table_partitions), (f"{settings.group}-firings", 1)]


def build_app(
    contracts: Contracts,
    kafka: KafkaSettings | None = None,
    topics: TopicSettings | None = None,
    settings: AlerterSettings | None = None,
    dlq_settings: DeadLetterSettings | None = None,
    health: Health | None = None,
    feed: SubscriptionFeed | None = None,
) -> faust.App:
    kafka, topics = kafka or KafkaSettings(), topics or TopicSettings()
    settings, dlq_settings = settings or AlerterSettings(), dlq_settings or DeadLetterSettings()
    app = make_app(settings.group, kafka, settings.data_dir, settings.table_partitions,
                   settings.table_replication_factor, web_port=settings.web_port)  # fmt: skip
    articles_topic = app.topic(topics.articles_enriched, **RAW_BYTES)
    alerts_topic = app.topic(topics.alerts, **RAW_BYTES)
    dlq_topic = app.topic(topics.dlq_alerter, **RAW_BYTES)
    keyed_bytes = {"key_type": str, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    (hits_name, hits_partitions), (firings_name, _) = internal_topics(settings)
    hits_topic = app.topic(hits_name, partitions=hits_partitions, internal=True, **keyed_bytes)
    firings_topic = app.topic(firings_name, partitions=1, internal=True, **keyed_bytes)
    # No value_type: faust would treat it as a Record model (see the enricher's story table).
    watches = app.Table("watches", default=None, key_type=str, partitions=settings.table_partitions)
    volumes = app.Table("volumes", default=None, key_type=str, partitions=settings.table_partitions)
    merger_table = app.Table("merger", default=None, key_type=str, partitions=1)
    waits = ChangelogWaits(watches, volumes, merger_table)
    articles_codec = Codec.for_topic(contracts, "articles_enriched")
    alerts_codec = Codec.for_topic(contracts, "alerts")
    cfg = EngineConfig(
        entity_watches=settings.entity_watches, term_watches=settings.term_watches, kibana_base=settings.kibana_url
    )
    cfg.detector = type(cfg.detector)(
        bucket_s=settings.bucket_s, lateness_s=settings.lateness_s, min_history_s=settings.min_history_s
    )
    limit = DeadLetterLimit(dlq_settings.max_ratio, dlq_settings.window, dlq_settings.min_messages)
    app.pantau_processed = 0

    if feed is None:
        from pantau.common.kafka_io import DeadLetterProducer, make_producer

        dlq_producer = DeadLetterProducer(make_producer(kafka, "alerter-dlq"), topics.dlq_alerter, SERVICE)

        def subscription_dead_letter(record, exc) -> None:
            # Every worker reads the whole topic at every start, so an invalid subscription still on
            # the compacted topic is dead-lettered again then; the gauge says how many there are.
            dlq_producer.send_record(record, exc, "subscriptions")

        feed = SubscriptionFeed(kafka, topics.subscriptions, Codec.for_topic(contracts, "subscriptions"),
                                subscription_dead_letter)  # fmt: skip
    app.pantau_feed = feed

    @app.task
    async def start_feed() -> None:
        feed.start()

    async def subscriptions_ready() -> Subscriptions:
        # Articles wait until the subscriptions were read to the end once: counted without them, a
        # query's watch would silently miss stories (readiness says why meanwhile).
        waited = time.monotonic()
        while not feed.caught_up.is_set():
            if time.monotonic() - waited > settings.subscriptions_wait_s:
                log.warning("still reading the subscriptions topic; articles wait")
                waited = time.monotonic()
            await asyncio.sleep(0.1)
        return feed.current

    async def dead_letter(event, exc: Exception, headers, topic_id: str) -> None:
        provenance = Provenance(event.message.topic, event.message.partition, event.message.offset, SERVICE)
        value, letter = fit_dead_letter(event.value, dead_letter_headers(provenance, exc, headers),
                                        kafka.max_message_bytes - ROOM_BYTES)  # fmt: skip
        await dlq_topic.send(key=event.key if isinstance(event.key, bytes) else str(event.key).encode(),
                             value=value, headers=letter)  # fmt: skip
        DEAD_LETTERS.labels(SERVICE, topic_id, type(exc).__name__).inc()

    # ---- 1. route ------------------------------------------------------------------------------
    @app.agent(articles_topic, concurrency=1)
    async def route(stream):
        async for event in stream.events():
            headers = event_headers(event)
            dead = False
            try:
                subs = await subscriptions_ready()
                article = articles_codec.decode(event.value, headers)
                MESSAGES_DECODED.labels(SERVICE, "articles_enriched", "ok").inc()
                engine = Engine(subs, cfg)
                t = event_time(article)
                ref = article_ref(article)
                hit = {"t": t, "story": (article.get("story") or {}).get("id") or article["id"],
                       "source": (article.get("source") or {}).get("id", "?"), "ref": ref,
                       "backfill": bool(article.get("backfill"))}  # fmt: skip
                volume = json.dumps({"volume": t}).encode()
                for partition in range(settings.table_partitions):
                    await hits_topic.send(key="", value=volume, partition=partition)
                for watch in engine.watches_of(article):
                    value = {"watch": [watch.key, watch.type, watch.label, watch.query], **hit}
                    await hits_topic.send(key=watch.key, value=json.dumps(value).encode())
                if not hit["backfill"] and subs.queries:
                    from pantau.alerter.query import ArticleView

                    # Muted or not now, and told now: not as of the article's publication (a replay,
                    # which has no clock, uses its stream time).
                    now = max(t, time.time())
                    matched = subs.realtime(ArticleView.of(article), now)
                    if matched:
                        alert = engine.match_alert(article, matched, now)
                        value, out_headers = alerts_codec.encode(alert)
                        await alerts_topic.send(key=alert["incident_id"].encode(), value=value, headers=out_headers)
                        ALERTER_ALERTS.labels("match", "firing").inc()
                ALERTER_ARTICLES.labels("baseline" if hit["backfill"] else "counted").inc()
            except Exception as exc:  # per-event: to the DLQ, the stream goes on
                dead = True
                if not (isinstance(exc, InvalidMessage) and exc.schema == "article-enriched"):
                    log.exception("routing failed", extra={"offset": event.message.offset})
                else:
                    MESSAGES_DECODED.labels(SERVICE, "articles_enriched", "invalid").inc()
                await dead_letter(event, exc, headers, "articles_enriched")
                ALERTER_ARTICLES.labels("dead_lettered").inc()
            finally:
                app.pantau_processed += 1
            try:
                limit.record(dead)
            except DeadLetterLimitExceeded as exc:  # a bad release or schema: stop, page someone
                stop_worker(str(exc))
            yield None

    # ---- 2. detect -----------------------------------------------------------------------------
    @app.agent(hits_topic, concurrency=1)
    async def detect(stream):
        async for event in stream.events():
            try:
                await detect_one(event)
            except Exception as exc:  # a bug on one hit must not stop every watch: dead-letter it
                log.exception("detection failed", extra={"offset": event.message.offset})
                await dead_letter(event, exc, event_headers(event), "hits")
            yield None

    async def detect_one(event) -> None:
        partition = event.message.partition
        subs = await subscriptions_ready()  # thresholds are the subscribers'; a restart must not guess them
        engine = Engine(subs, cfg)
        vkey = f"volume:{partition}"
        akey = f"active:{partition}"
        message = json.loads(event.value)
        engine.detector.volume = Volume.from_dict(volumes.get(vkey))
        det = engine.detector
        firings: list[tuple[Firing, Watch]] = []
        if "volume" in message:
            closed = det.volume.closed
            det.count_article(message["volume"])
            volumes[vkey] = det.volume.to_dict()
            ALERTER_STREAM_LAG_SECONDS.labels(str(partition)).set(time.time() - det.volume.now)
            if det.volume.closed != closed:  # a bucket closed: open incidents may resolve
                active = list(volumes.get(akey) or [])
                still = []
                for key in active:
                    stored = watches.get(key) or {}
                    ws = WatchState.from_dict(stored.get("state"))
                    watch = Watch(*ws_watch(watches, key))
                    pending = _pending(stored)
                    firing = det.evaluate(key, ws, engine.thresholds(key), fire=False, levels=engine.subs.levels(key))
                    if firing is not None:
                        pending.append(firing)
                    firings.extend((f, watch) for f in pending)
                    if ws.state != QUIET:
                        still.append(key)
                    _put_watch(watches, key, ws, watch, pending)
                if still != active:
                    volumes[akey] = still
                _count_states(watches, still)
                if det.volume.closed % 4 == 0:  # hourly: forget watches idle for weeks (bounded tables)
                    pruned = _prune(watches, partition, settings.table_partitions,
                                    det.volume.now - cfg.max_idle_watch_s)  # fmt: skip
                    if pruned:
                        log.info("forgot idle watches", extra={"partition": partition, "count": pruned})
        else:
            key, wtype, label, query = message["watch"]
            watch = Watch(key, wtype, label, query)
            stored = watches.get(key) or {}
            ws = WatchState.from_dict(stored.get("state"))
            pending = _pending(stored)  # unconfirmed before a crash: sent (again), same ids
            hit = Hit(message["t"], message["story"], message["source"], message["ref"], message["backfill"])
            counted = det.add(ws, hit)
            firing = det.evaluate(key, ws, engine.thresholds(key), fire=counted and not _late(det, hit),
                                  levels=engine.subs.levels(key))  # fmt: skip
            if firing is not None:
                pending.append(firing)
            firings.extend((f, watch) for f in pending)
            _put_watch(watches, key, ws, watch, pending)
            if ws.state != QUIET:
                active = list(volumes.get(akey) or [])
                if key not in active:
                    volumes[akey] = [*active, key]
        if firings:
            await waits.stored()  # pending firings are restorable before anyone hears of them
            for firing, watch in firings:
                body = {"firing": firing.to_dict(), "watch": [watch.key, watch.type, watch.label, watch.query]}
                delivered = await firings_topic.send(key="firings", value=json.dumps(body).encode())
                await delivered  # acknowledged by the broker: only then is it no longer pending
            for key in {watch.key for _, watch in firings}:
                stored = watches.get(key) or {}
                if stored.get("pending"):
                    watches[key] = {**stored, "pending": []}

    # ---- 3. render -----------------------------------------------------------------------------
    @app.agent(firings_topic, concurrency=1)
    async def render(stream):
        async for event in stream.events():
            try:
                await render_one(event)
            except Exception as exc:
                log.exception("rendering failed", extra={"offset": event.message.offset})
                await dead_letter(event, exc, event_headers(event), "firings")
            yield None

    async def render_one(event) -> None:
        subs = await subscriptions_ready()  # after a restart, a replayed firing names its subscribers too
        body = json.loads(event.value)
        firing = Firing.from_dict(body["firing"])
        watch = Watch(*body["watch"])
        from pantau.alerter.detector import Merger

        state = merger_table.get("state") or {}
        renderer = Renderer(subs, cfg, Merger.from_dict(state.get("merger")))
        alert = renderer.render(firing, watch)
        emitted = list(state.get("emitted") or [])
        if alert["id"] not in emitted:
            value, out_headers = alerts_codec.encode(alert)
            delivered = await alerts_topic.send(key=alert["incident_id"].encode(), value=value, headers=out_headers)
            await delivered  # acknowledged before the merger records it as emitted
            ALERTER_ALERTS.labels("spike", alert["state"]).inc()
            emitted = [*emitted, alert["id"]][-EMITTED_KEPT:]
        merger_table["state"] = {"merger": renderer.merger.to_dict(), "emitted": emitted}

    if health is not None:

        @app.timer(interval=5.0)
        async def heartbeat() -> None:
            health.beat()

    app.pantau_agents = {"route": route, "detect": detect, "render": render}
    app.pantau_topics = {"alerts": alerts_topic, "dlq": dlq_topic, "hits": hits_topic, "firings": firings_topic}
    return app


def ws_watch(watches, key: str) -> list[Any]:
    stored = watches.get(key) or {}
    return stored.get("watch") or [key, key.partition(":")[0], key.partition(":")[2], None]


def _pending(stored: dict[str, Any]) -> list[Firing]:
    return [Firing.from_dict(f) for f in stored.get("pending") or []]


def _put_watch(watches, key: str, ws: WatchState, watch: Watch, pending: list[Firing]) -> None:
    watches[key] = {"state": ws.to_dict(), "watch": [watch.key, watch.type, watch.label, watch.query],
                    "pending": [f.to_dict() for f in pending]}  # fmt: skip


def partition_of(key: str, partitions: int) -> int:
    """The `hits` partition of a watch key (the producer's default partitioner)."""
    from aiokafka.partitioner import murmur2

    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def _prune(watches, partition: int, partitions: int, idle_before: float) -> int:
    """Delete this partition's quiet watches last hit before `idle_before` (a watch of another
    partition must not be touched here: its tombstone would land in this partition's changelog)."""
    doomed = []
    for key, stored in list(watches.items()):
        state = (stored or {}).get("state") or {}
        if (state.get("state") == QUIET and state.get("ls", 0.0) < idle_before and not (stored or {}).get("pending")
                and partition_of(key, partitions) == partition):  # fmt: skip
            doomed.append(key)
    for key in doomed:
        del watches[key]
    return len(doomed)


def _late(det, hit: Hit) -> bool:
    closed = det.volume.closed
    return closed is not None and bucket_of(hit.time, det.cfg.bucket_s) <= closed


def _count_states(watches, active: list[str]) -> None:
    firing = sum(1 for k in active if ((watches.get(k) or {}).get("state") or {}).get("state") == "firing")
    ALERTER_WATCHES.labels("firing").set(firing)
    ALERTER_WATCHES.labels("cooldown").set(len(active) - firing)
