"""Ring 2 (in-process): the indexer's loop with a scripted consumer and a scripted Elasticsearch:
transient failures pause the partitions while polling goes on, commits never pass an unconfirmed
record, a revocation mid-retry hands the records over, SIGTERM drains. The real ring runs the same
loop against the real servers."""

from __future__ import annotations

import json
from collections import namedtuple

from elastic_transport import ConnectionError as EsConnectionError
from kafka import TopicPartition

from pantau.common.codec import Codec
from pantau.common.settings import IndexerSettings, TopicSettings
from pantau.common.shutdown import ShutdownFlag
from pantau.indexer.service import Indexer

Record = namedtuple("Record", "topic partition offset key value headers")
TOPICS = TopicSettings()
TP0 = TopicPartition(TOPICS.articles_enriched, 0)


class Consumer:
    def __init__(self, records, shutdown, stop_after_polls=50):
        self.queue, self.shutdown, self.stop_after = list(records), shutdown, stop_after_polls
        self.listener, self.assigned, self.paused_set = None, set(), set()
        self.commits, self.polls, self.polls_while_paused = [], 0, 0
        self.on_poll = None

    def subscribe(self, topics, listener):
        self.listener = listener

    def poll(self, timeout_ms, max_records):
        self.polls += 1
        if not self.assigned:
            self.assigned = {TP0}
            self.listener.on_partitions_assigned([TP0])
        if self.on_poll:
            self.on_poll(self)
        if self.paused_set:
            self.polls_while_paused += 1
            return {}
        if self.polls >= self.stop_after:
            self.shutdown.request("test")
        batch, self.queue = self.queue[:max_records], self.queue[max_records:]
        return {TP0: batch} if batch else {}

    def pause(self, *tps):
        self.paused_set |= set(tps)

    def resume(self, *tps):
        self.paused_set -= set(tps)

    def paused(self):
        return set(self.paused_set)

    def assignment(self):
        return set(self.assigned)

    def commit(self, offsets):
        self.commits.append({tp.partition: meta.offset for tp, meta in offsets.items()})

    def end_offsets(self, tps):
        return {tp: 0 for tp in tps}

    def position(self, tp):
        return 0


class Elasticsearch:
    """Answers _bulk from a script: each entry is an exception to raise or a per-item status list."""

    def __init__(self, script):
        self.script, self.bulks = list(script), []

    def bulk(self, operations, filter_path):
        lines = operations.decode().splitlines()
        self.bulks.append(len(lines) // 2)
        step = self.script.pop(0) if self.script else None
        if isinstance(step, Exception):
            raise step
        statuses = step or [201] * (len(lines) // 2)
        items = []
        for status in statuses:
            error = None if status < 300 else {"type": {409: "version_conflict_engine_exception", 429:
                    "es_rejected_execution_exception"}.get(status, "strict_dynamic_mapping_exception")}  # fmt: skip
            items.append({"index": {"status": status, **({"error": error} if error else {})}})
        return {"errors": any(s >= 300 for s in statuses), "items": items}

    class cluster:
        @staticmethod
        def health(timeout):
            return {"status": "green"}


class DeadLetters:
    def __init__(self):
        self.sent = []

    def send(self, key, value, error, provenance, headers=None, source_topic_id=None):
        self.sent.append((provenance.offset, str(error)))

    def send_record(self, record, error, source_topic_id=None):
        self.sent.append((record.offset, str(error)))


def records(contracts, count):
    codec = Codec.for_topic(contracts, "articles_enriched")
    base = json.loads(next(iter(contracts.examples("article-enriched", 1))).read_text(encoding="utf-8"))
    out = []
    for i in range(count):
        value, headers = codec.encode({**base, "id": f"{i:064x}"})
        out.append(Record(TOPICS.articles_enriched, 0, i, f"{i:064x}".encode(), value, headers))
    return out


def run(contracts, recs, script, on_poll=None, **settings):
    shutdown = ShutdownFlag()
    consumer = Consumer(recs, shutdown)
    consumer.on_poll = on_poll
    es, letters = Elasticsearch(script), DeadLetters()
    conf = IndexerSettings(**{"batch_max_wait_s": 0.01, "retry_initial_s": 0.001, "retry_max_s": 0.002, **settings})
    Indexer(consumer, es, letters, contracts, TOPICS, conf, "pantau", shutdown).run()
    return consumer, es, letters


def test_transient_failures_pause_keep_polling_and_commit_only_when_confirmed(contracts):
    down = EsConnectionError("refused")
    consumer, es, letters = run(
        contracts, records(contracts, 10), [down, down, [201, 429, 201, 409, 400, 201, 201, 201, 201, 201]]
    )
    assert consumer.polls_while_paused >= 3  # backing off without leaving the group
    assert es.bulks == [10, 10, 10, 1]  # down, down, a partial answer, then the one 429 item again
    assert letters.sent and letters.sent[0][0] == 4 and "strict_dynamic_mapping_exception" in letters.sent[0][1]
    assert consumer.commits and consumer.commits[-1] == {0: 10}
    assert all(c[0] <= 10 for c in consumer.commits)
    assert not consumer.paused_set


def test_a_record_that_cannot_be_decoded_is_dead_lettered_and_the_rest_indexed(contracts):
    recs = records(contracts, 3)
    recs[1] = recs[1]._replace(value=b"\xff not json", headers=[])
    consumer, es, letters = run(contracts, recs, [])
    assert [offset for offset, _ in letters.sent] == [1]
    assert es.bulks == [2] and consumer.commits[-1] == {0: 3}


def test_a_partition_lost_during_retries_is_handed_over_uncommitted(contracts):
    down = EsConnectionError("refused")

    def lose_it(consumer):
        if consumer.paused_set and consumer.assigned:
            consumer.assigned = set()
            consumer.listener.on_partitions_revoked([TP0])
            consumer.listener.on_partitions_assigned([])  # the partition went to another worker
            consumer.shutdown.request("test")

    consumer, es, letters = run(contracts, records(contracts, 5), [down] * 100, on_poll=lose_it)
    assert all(c == {0: 0} for c in consumer.commits)  # never past an unconfirmed record
    assert not letters.sent and len(es.bulks) < 10  # the retries stopped: the records are the new owner's


def test_a_partition_revoked_and_given_back_keeps_its_records(contracts):
    """kafka-python's eager assignors revoke every partition and hand most straight back, keeping the
    read position: records in flight must not be dropped on revocation."""
    down = EsConnectionError("refused")
    state = {"done": False}

    def rebalance_back(consumer):
        if consumer.paused_set and not state["done"]:
            state["done"] = True
            consumer.listener.on_partitions_revoked([TP0])
            consumer.listener.on_partitions_assigned([TP0])

    consumer, es, letters = run(contracts, records(contracts, 5), [down, down, down], on_poll=rebalance_back)
    assert state["done"] and consumer.commits[-1] == {0: 5}  # every record indexed, then committed
    assert es.bulks[-1] == 5 and not letters.sent


def test_a_refused_commit_is_retried_not_fatal(contracts):
    from kafka.errors import CommitFailedError

    recs = records(contracts, 3)
    refusals = {"left": 1}

    class Refusing(Consumer):
        def commit(self, offsets):
            if refusals["left"]:
                refusals["left"] -= 1
                raise CommitFailedError("rebalance in progress")
            super().commit(offsets)

    shutdown = ShutdownFlag()
    consumer = Refusing(recs, shutdown)
    conf = IndexerSettings(batch_max_wait_s=0.01, retry_initial_s=0.001, retry_max_s=0.002)
    Indexer(consumer, Elasticsearch([]), DeadLetters(), contracts, TOPICS, conf, "pantau", shutdown).run()
    assert refusals["left"] == 0 and consumer.commits[-1] == {0: 3}


def test_shutdown_drains_the_batch_before_leaving(contracts):
    consumer, es, _ = run(contracts, records(contracts, 4), [], batch_max_wait_s=3600, batch_max_docs=100)
    assert es.bulks == [4] and consumer.commits[-1] == {0: 4}
