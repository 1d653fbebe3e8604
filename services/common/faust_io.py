"""What every faust worker of Pantau shares: the app's settings, raw-bytes topics, event headers,
waiting for table changelog deliveries, and running a worker. The I/O shell of the enricher and
the alerter; their cores never import it."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from pantau.common.settings import KafkaSettings

log = logging.getLogger(__name__)
EXIT_STOPPED = 70  # EX_SOFTWARE: the worker stopped itself; its supervisor restarts it (and someone is paged)

# Topics whose messages the agents decode themselves, inside their per-event error handling (faust's
# own decoding would crash the agent in a loop on one bad message).
RAW_BYTES = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}


class _RewindingConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust rewinds to the committed offsets after a rebalance, and drops what it fetched while the
    flow was suspended. aiokafka's seek_to_committed only moves partitions with a commit above 0, so a
    partition never committed stayed past the dropped records: a survivor of a kill -9 fetched its new
    partitions during recovery, dropped them and waited forever (seen in the enricher's kill test).
    Such a source partition goes back to where the reset policy starts it."""

    async def seek_to_committed(self) -> Mapping[Any, int]:
        return await self.call_thread(self._seek_to_committed)

    async def _seek_to_committed(self) -> Mapping[Any, int]:
        consumer = self._ensure_consumer()
        committed = await consumer.seek_to_committed()
        # Not moved by aiokafka: never committed (None) or committed at 0. Changelogs are never
        # committed either, but recovery reads them: those stay where they are.
        unmoved = [tp for tp, offset in committed.items() if not offset and self.app.topics.acks_enabled_for(tp.topic)]
        if unmoved:
            # An explicit offset, not seek_to_beginning: that leaves the position unset until the
            # next fetch, and faust's livelock check then fails an assertion and crashes the worker.
            starts = await consumer.beginning_offsets(unmoved)
            ends = await consumer.end_offsets(unmoved)
            from_start = self.app.conf.consumer_auto_offset_reset == "earliest"
            for tp in unmoved:
                consumer.seek(tp, starts[tp] if from_start or committed[tp] == 0 else ends[tp])
        return committed


class _RewindingConsumer(faust_aiokafka.Consumer):
    """faust ends a rebalance by resuming the stream partitions, then seeking them to the committed
    offsets, then resuming its flow control, which empties the streams' queues. Whatever was fetched
    between the first and the last step was delivered, then thrown away, and its offsets counted as
    read: faust dropped the re-fetched copies as already seen and later committed past them (the
    enricher's kill test lost 50 of 120 articles this way). So stream partitions stay paused until
    the rebalance has ended, and are fetched from the committed offsets only then."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._held_partitions: set = set()

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _RewindingConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def resume_partitions(self, tps) -> None:
        tps = set(tps)
        if self.app.rebalancing:
            held = {tp for tp in tps if not self._is_changelog_tp(tp)}  # changelogs: recovery reads them now
            self._held_partitions |= held
            self.pause_partitions(held)
            tps -= held
        super().resume_partitions(tps)

    def release_held_partitions(self) -> None:
        held, self._held_partitions = self._held_partitions, set()
        if held:
            self.add_future(self._release(held))

    async def _release(self, held: set) -> None:
        # faust drops what it fetches for a paused partition, and the fetch position moves on all the
        # same: seek again, now that nothing is delivered any more, then resume.
        try:
            await self.perform_seek()
        except Exception as exc:
            if not self.app.rebalancing:
                await self.crash(exc)  # a worker that silently never resumes would be worse
                return
        if self.app.rebalancing:  # a new rebalance began meanwhile: its end releases them
            self._held_partitions |= held
            return
        super().resume_partitions(held & set(self.assignment()))


class _Transport(faust_aiokafka.Transport):
    Consumer = _RewindingConsumer


class _App(faust.App):
    def on_rebalance_end(self) -> None:
        super().on_rebalance_end()
        consumer = self.consumer
        if isinstance(consumer, _RewindingConsumer):
            consumer.release_held_partitions()


def make_app(app_id: str, kafka: KafkaSettings, data_dir: Path, partitions: int, replication_factor: int,
             **overrides: Any) -> faust.App:  # fmt: skip
    """A faust app with Pantau's delivery settings: acks from all replicas, at-least-once commits,
    json for the tables' changelogs, its web server off (/metrics, /healthz and /readyz are Pantau's)."""
    config: dict[str, Any] = {
        "broker": [f"kafka://{server}" for server in kafka.servers],
        "value_serializer": "json",
        "key_serializer": "json",
        "web_enabled": False,
        "consumer_auto_offset_reset": "earliest",
        "topic_partitions": partitions,
        "topic_replication_factor": replication_factor,
        "producer_acks": -1,
        "producer_max_request_size": kafka.max_message_bytes,
        "producer_max_batch_size": 256 * 1024,  # ~10 KB articles: many per batch, not one (16 KB default)
        "consumer_max_fetch_size": kafka.max_message_bytes,
        "broker_commit_every": 100,
        "broker_commit_interval": 2.0,
        # A worker killed without leaving keeps its partitions until the session times out (faust's
        # default is 60 s): 20 s replaces it sooner, heartbeats every 3 s keep a busy one in.
        "broker_session_timeout": 20.0,
        "broker_heartbeat_interval": 3.0,
        "datadir": str(data_dir),
        "table_standby_replicas": 0,
    }
    config.update(overrides)
    app = _App(app_id, **config)
    app.transport = _Transport(app.conf.broker_consumer, app)
    return app


def stop_worker(reason: str, exc: BaseException | bool | None = None) -> NoReturn:
    """Leave now, the way a kill -9 does: the events this worker has not acknowledged are read again by
    the worker that takes its partitions. Raising in an agent would not stop it: faust's supervisor
    restarts the agent, and the events it held stay unacknowledged, which blocks every later rebalance
    and a clean shutdown while /healthz still says healthy."""
    log.critical(reason, exc_info=exc)
    os._exit(EXIT_STOPPED)


def event_headers(event) -> list[tuple[str, bytes]]:
    raw = event.headers or {}
    items = raw.items() if isinstance(raw, dict) else raw
    return [(k, v if isinstance(v, bytes) else str(v).encode()) for k, v in items]


class ChangelogWaits:
    """Remembers the changelog deliveries of table writes, so an agent can await them before it
    sends what depends on them (faust drops the delivery future of `table[key] = value`)."""

    def __init__(self, *tables) -> None:
        self.pending: list = []
        for table in tables:
            send_changelog = table.send_changelog

            def recorded(*args, _send=send_changelog, **kwargs):
                fut = _send(*args, **kwargs)
                self.pending.append(fut)
                return fut

            table.send_changelog = recorded

    async def stored(self) -> None:
        """Wait until every table write so far is in its changelog topic."""
        await self.pending_stores()

    def pending_stores(self) -> asyncio.Future:
        """Done once every table write so far is in its changelog topic (not the writes after this call)."""
        pending, self.pending = self.pending, []
        return asyncio.gather(*pending)


def run_worker(app: faust.App, loglevel: str = "info") -> None:
    """Run one worker until SIGTERM/SIGINT (faust's worker handles them: it stops consuming,
    flushes, commits, leaves the group)."""
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, override_logging=False)
    worker.execute_from_commandline()


def changelog_topics(app: faust.App) -> dict[str, tuple[int, dict[str, str]]]:
    """The changelog topics of an app's tables, as faust would create them: name → (partitions, topic
    configs). For `ensure_topics` before the worker starts."""
    from mode.utils.times import want_seconds

    out = {}
    for table in app.tables.values():
        topic = table.changelog_topic
        policy = [flag for flag, on in (("compact", topic.compacting), ("delete", topic.deleting)) if on]
        configs = {"cleanup.policy": ",".join(policy)} if policy else {}
        if topic.retention:
            configs["retention.ms"] = str(int(want_seconds(topic.retention) * 1000))
        configs.update({key: str(value) for key, value in (topic.config or {}).items()})
        out[topic.get_topic_name()] = (topic.partitions or app.conf.topic_partitions, configs)
    return out


def ensure_changelogs(kafka: KafkaSettings, app: faust.App, replication_factor: int,
                      others: dict[str, int] | None = None) -> None:  # fmt: skip
    """`ensure_topics` for the changelog topics of the app's tables, and its `others` (name → partitions)."""
    topics = changelog_topics(app)
    partitions = {**(others or {}), **{name: count for name, (count, _) in topics.items()}}
    ensure_topics(kafka, partitions, replication_factor,
                  configs={name: configs for name, (_, configs) in topics.items()})  # fmt: skip


def ensure_topics(kafka: KafkaSettings, partitions: dict[str, int], replication_factor: int,
                  timeout_s: float = 60.0, configs: dict[str, dict[str, str]] | None = None) -> None:  # fmt: skip
    """Create a worker's internal topics (with their `configs`) before faust starts, and wait until the
    broker's metadata shows them. faust creates them itself, but its first group assignment can run
    before the new topic is in the metadata: it then ignores the topic ("Ignoring missing topic"), and
    an agent on it receives nothing, and a global table on it never recovers (the worker then processes
    nothing), until the next rebalance."""
    import contextlib
    import time

    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    from pantau.common.kafka_io import make_admin, make_consumer

    admin = make_admin(kafka, "faust-topics")
    try:
        missing = [name for name in partitions if name not in set(admin.list_topics())]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker made them first
                admin.create_topics([
                    NewTopic(name, partitions[name], replication_factor, topic_configs=(configs or {}).get(name, {}))
                    for name in missing
                ])  # fmt: skip
    finally:
        admin.close()
    consumer = make_consumer(kafka, "faust-topics", group_id=None)
    try:
        deadline = time.monotonic() + timeout_s
        while any(len(consumer.partitions_for_topic(n) or ()) < p for n, p in partitions.items()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"internal topics not in the metadata after {timeout_s:.0f} s: {sorted(partitions)}")
            consumer.topics()  # refreshes the metadata
            time.sleep(0.2)
    finally:
        consumer.close()
