"""Ring 3: the indexer through the real Kafka into the real Elasticsearch (security on, the
pantau_indexer user): exact counts, revisions, replays, dead letters, a fault proxy, Elasticsearch
stopped mid-stream, and kill -9 between the bulk response and the commit."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from elasticsearch import Elasticsearch

from pantau.common.codec import Codec
from pantau.common.dlq import read_provenance
from pantau.common.es_io import apply_templates, make_client
from pantau.common.kafka_io import DeadLetterProducer, make_admin, make_consumer, make_producer, record_headers
from pantau.common.metrics import INDEXER_DOCUMENTS
from pantau.common.settings import ContractSettings, IndexerSettings
from pantau.common.shutdown import ShutdownFlag
from pantau.indexer.service import Indexer
from tests import samples
from tests.conftest import es_settings
from tests.faultproxy import FaultProxy
from tests.infra import ensure_up, stop_server
from tests.samples import free_port, wait_for

ES_DIR = ContractSettings().schemas_dir / "elasticsearch"


def enriched_articles(contracts, count: int, month: str = "2026-11") -> list[dict]:
    return samples.enriched_articles(contracts, count, "indexer-test",
                                     lambda i: f"{month}-0{1 + i % 9}T0{i % 10}:00:00+00:00")  # fmt: skip


def produce(kafka_settings, contracts, topic: str, articles: list[dict], junk: dict[bytes, bytes] | None = None):
    codec = Codec.for_topic(contracts, "articles_enriched")
    producer = make_producer(kafka_settings, "tests")
    for article in articles:
        value, headers = codec.encode(article)
        producer.send(topic, key=article["id"].encode(), value=value, headers=headers)
    for key, value in (junk or {}).items():
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def outcomes() -> dict[str, float]:
    return {o: INDEXER_DOCUMENTS.labels("articles", o)._value.get() for o in ("indexed", "duplicate", "dead_lettered")}


@pytest.fixture
def admin_es(infra, es_prefix) -> Elasticsearch:
    client = make_client(es_settings(infra, "pantau_admin", es_prefix))
    apply_templates(client, ES_DIR, es_prefix)
    return client


def count(admin_es: Elasticsearch, prefix: str) -> int:
    admin_es.indices.refresh(index=f"{prefix}-articles")
    return admin_es.count(index=f"{prefix}-articles")["count"]


@contextmanager
def running_indexer(
    infra, kafka_settings, contracts, topics, prefix, group, es_url=None, **overrides
) -> Iterator[Indexer]:
    settings = IndexerSettings(group=group, batch_max_wait_s=0.2, retry_initial_s=0.05, retry_max_s=0.5,
                               lag_interval_s=1.0, **overrides)  # fmt: skip
    es_conf = es_settings(infra, "pantau_indexer", prefix)
    if es_url:
        es_conf = es_conf.model_copy(update={"url": es_url})
    consumer = make_consumer(kafka_settings, "indexer", group_id=group, max_poll_records=settings.batch_max_docs)
    producer = make_producer(kafka_settings, "indexer")
    shutdown = ShutdownFlag()
    indexer = Indexer(consumer, make_client(es_conf), DeadLetterProducer(producer, topics.dlq_indexer, "indexer"),
                      contracts, topics, settings, prefix, shutdown)  # fmt: skip
    failure: list[BaseException] = []

    def run():
        try:
            indexer.run()
        except BaseException as exc:  # surfaced by the test below
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield indexer
    finally:
        shutdown.request("test over")
        thread.join(60)
        consumer.close()
        producer.close()
    assert not failure, failure


def dead_letters(kafka_settings, topic: str, expected: int) -> list:
    consumer = make_consumer(kafka_settings, "tests", group_id=None, topics=[topic])
    records, deadline = [], time.monotonic() + 60
    while len(records) < expected and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    consumer.close()
    return records


def test_exact_counts_revisions_dead_letters_and_a_replay_from_zero(
    infra, kafka_settings, contracts, applied_topics, es_prefix, admin_es, unique
):
    articles = enriched_articles(contracts, 60)
    newer = {**copy.deepcopy(articles[0]), "revision": 2, "title": "Revisi kedua"}
    stale = {**copy.deepcopy(articles[0]), "revision": 1, "title": "Revisi pertama, terlambat"}
    # Template drift: an index created while `section` was missing from the mapping refuses documents
    # that have one (strict), and only those.
    drifted = enriched_articles(contracts, 4, month="2023-09")
    for i, article in enumerate(drifted):
        article["id"] = hashlib.sha256(f"drifted-{i}".encode()).hexdigest()
        if i % 2:
            article.pop("section", None)
    mappings = admin_es.cluster.get_component_template(name=f"{es_prefix}-articles-mappings")
    template = mappings["component_templates"][0]["component_template"]
    del template["template"]["mappings"]["properties"]["section"]
    admin_es.cluster.put_component_template(name=f"{es_prefix}-articles-mappings", **template)
    admin_es.indices.create(index=f"{es_prefix}-articles-2023.09")
    apply_templates(admin_es, ES_DIR, es_prefix)  # the current template back for everything else

    junk = {b"not-json": b"{oops", b"not-schema": json.dumps({"id": "x"}).encode()}
    produce(kafka_settings, contracts, applied_topics.articles_enriched, [*articles, newer, stale, *drifted], junk)
    alert = json.loads(next(iter(contracts.examples("alert", 1))).read_text(encoding="utf-8"))
    alert_codec = Codec.for_topic(contracts, "alerts")
    alert_producer = make_producer(kafka_settings, "tests")
    alert_producer.send(applied_topics.alerts, key=alert["incident_id"].encode(), value=alert_codec.encode(alert)[0],
                        headers=alert_codec.encode(alert)[1])  # fmt: skip
    alert_producer.flush()
    alert_producer.close()
    before = outcomes()
    with running_indexer(infra, kafka_settings, contracts, applied_topics, es_prefix, f"idx-{unique}"):
        wait_for(lambda: outcomes()["indexed"] - before["indexed"] >= 63, 60, "63 documents indexed")
        wait_for(lambda: outcomes()["dead_lettered"] - before["dead_lettered"] >= 4, 30, "4 dead letters")
    after = outcomes()
    assert after["indexed"] - before["indexed"] == 63  # 60 + revision 2 + the two drifted ones without section
    assert after["duplicate"] - before["duplicate"] == 1  # the stale revision
    assert after["dead_lettered"] - before["dead_lettered"] == 4  # two junk, two strict-mapping refusals
    assert count(admin_es, es_prefix) == 62
    doc = admin_es.get(index=f"{es_prefix}-articles-2026.11", id=articles[0]["id"])
    assert doc["_version"] == 2 and doc["_source"]["title"] == "Revisi kedua"  # the older revision lost
    admin_es.indices.refresh(index=f"{es_prefix}-alerts")
    alerts = admin_es.search(index=f"{es_prefix}-alerts", query={"term": {"incident_id": alert["incident_id"]}})
    assert [hit["_source"]["watch_key"] for hit in alerts["hits"]["hits"]] == [alert["watch"]["key"]]

    letters = dead_letters(kafka_settings, applied_topics.dlq_indexer, 4)
    reasons = {r.key: read_provenance(record_headers(r))["reason"] for r in letters}
    assert set(reasons) == {b"not-json", b"not-schema", drifted[0]["id"].encode(), drifted[2]["id"].encode()}
    assert "strict_dynamic_mapping_exception" in reasons[drifted[0]["id"].encode()]
    assert "not JSON" in reasons[b"not-json"]

    # A second consumer group replays the topic from offset zero: nothing is doubled.
    with running_indexer(infra, kafka_settings, contracts, applied_topics, es_prefix, f"idx-replay-{unique}"):
        wait_for(lambda: outcomes()["duplicate"] - after["duplicate"] >= 64, 60, "the replay")
    assert count(admin_es, es_prefix) == 62
    assert outcomes()["indexed"] == after["indexed"]


def test_429s_and_partial_bulk_failures_lose_nothing_and_double_nothing(
    infra, kafka_settings, contracts, applied_topics, es_prefix, admin_es, unique
):
    articles = enriched_articles(contracts, 80)
    produce(kafka_settings, contracts, applied_topics.articles_enriched, articles)
    before = outcomes()
    with FaultProxy(infra.es_url) as proxy:
        proxy.refuse_bulks = 3
        proxy.reject_every = 4
        with running_indexer(infra, kafka_settings, contracts, applied_topics, es_prefix, f"idx-{unique}",
                             es_url=proxy.url, batch_max_docs=20):  # fmt: skip
            wait_for(lambda: count(admin_es, es_prefix) >= 80 and proxy.refused == 3, 60, "80 documents")
            proxy.reject_every = 0
            confirmed = lambda: sum(outcomes()[o] - before[o] for o in ("indexed", "duplicate"))  # noqa: E731
            wait_for(lambda: confirmed() >= 80, 60, "every document confirmed")
    assert proxy.refused == 3 and proxy.rejected_items > 0
    assert count(admin_es, es_prefix) == 80
    # Items reported as 429 were in fact indexed: their retry is a counted duplicate, not a second document.
    assert outcomes()["indexed"] - before["indexed"] + outcomes()["duplicate"] - before["duplicate"] == 80


def group_offsets(kafka_settings, group: str, topic: str) -> int:
    admin = make_admin(kafka_settings, "tests")
    try:
        offsets = admin.list_group_offsets(group)[group]
    finally:
        admin.close()
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic)


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return response.status == 200
    except urllib.error.HTTPError:
        return False


def start_indexer_process(infra, kafka_settings, topics, prefix, group, es_url, port_log, port=0) -> subprocess.Popen:
    env = dict(os.environ)
    env.update({
        "PANTAU_KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "PANTAU_ES_URL": es_url, "PANTAU_ES_USERNAME": "pantau_indexer",
        "PANTAU_ES_PASSWORD": infra.password("pantau_indexer"), "PANTAU_ES_INDEX_PREFIX": prefix,
        "PANTAU_INDEXER_GROUP": group, "PANTAU_INDEXER_BATCH_MAX_WAIT_S": "0.2", "PANTAU_METRICS_PORT": str(port),
        "PANTAU_INDEXER_RETRY_MAX_S": "1", "PANTAU_LOG_FORMAT": "text",
    })  # fmt: skip
    env.update(samples.topic_env(topics))
    return subprocess.Popen([sys.executable, "-m", "pantau.cli", "indexer", "run"], env=env,
                            stdout=port_log.open("ab"), stderr=subprocess.STDOUT)  # fmt: skip


def test_kill_9_between_the_bulk_response_and_the_commit(
    infra, kafka_settings, contracts, applied_topics, es_prefix, admin_es, unique, tmp_path
):
    articles = enriched_articles(contracts, 40)
    produce(kafka_settings, contracts, applied_topics.articles_enriched, articles)
    group, log = f"idx-{unique}", tmp_path / "indexer.log"
    with FaultProxy(infra.es_url) as proxy:
        proxy.hold_bulks = True  # Elasticsearch indexes the bulk; the answer never comes back
        worker = start_indexer_process(infra, kafka_settings, applied_topics, es_prefix, group, proxy.url, log)
        try:
            assert proxy.forwarded.wait(60), log.read_text()[-2000:]
            wait_for(lambda: count(admin_es, es_prefix) == 40, 30, "the held bulk to be indexed")
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
        finally:
            if worker.poll() is None:
                worker.kill()
    assert group_offsets(kafka_settings, group, applied_topics.articles_enriched) == 0  # nothing committed

    worker = start_indexer_process(infra, kafka_settings, applied_topics, es_prefix, group, infra.es_url, log)
    try:
        wait_for(lambda: group_offsets(kafka_settings, group, applied_topics.articles_enriched) == 40, 60,
                 "the restarted worker to commit everything")  # fmt: skip
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0, log.read_text()[-2000:]
    assert count(admin_es, es_prefix) == 40  # the replayed bulk doubled nothing


def test_elasticsearch_stopped_mid_stream_then_back(
    infra, kafka_settings, contracts, applied_topics, es_prefix, admin_es, unique, tmp_path
):
    first, second = enriched_articles(contracts, 30), enriched_articles(contracts, 60)[30:]
    produce(kafka_settings, contracts, applied_topics.articles_enriched, first)
    group, log, port = f"idx-{unique}", tmp_path / "indexer.log", free_port()
    worker = start_indexer_process(infra, kafka_settings, applied_topics, es_prefix, group, infra.es_url, log, port)
    try:
        wait_for(lambda: count(admin_es, es_prefix) == 30, 60, "the first 30 documents")
        assert ready(port)
        with log.open("a") as marker:
            marker.write("=== test: stopping Elasticsearch ===\n")
        stop_server("elasticsearch")
        produce(kafka_settings, contracts, applied_topics.articles_enriched, second)
        time.sleep(8)  # well past the poll interval and several retries: the worker must stay in its group
        assert worker.poll() is None, log.read_text()[-2000:]
        assert not ready(port)  # /readyz tells the orchestrator Elasticsearch is out of reach
        ensure_up()
        wait_for(lambda: group_offsets(kafka_settings, group, applied_topics.articles_enriched) == 60, 120,
                 "every record committed after Elasticsearch came back")  # fmt: skip
        wait_for(lambda: ready(port), 30, "/readyz to be true again")
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(60)
    text = log.read_text()
    assert code == 0, text[-2000:]
    assert count(admin_es, es_prefix) == 60
    outage = text.split("=== test: stopping Elasticsearch ===")[1].split("shutdown requested")[0]
    assert "partitions revoked" not in outage and "partitions assigned" not in outage, text[-3000:]  # stayed in
    assert "Elasticsearch unreachable" in outage


def test_retention_drops_old_months_as_admin_and_the_indexer_may_not(infra, es_prefix, admin_es):
    from elasticsearch import AuthorizationException

    from pantau.common.es_io import apply_retention

    for month in ("2024.01", "2025.10", "2026.11"):
        admin_es.indices.create(index=f"{es_prefix}-articles-{month}") if not admin_es.indices.exists(
            index=f"{es_prefix}-articles-{month}") else None  # fmt: skip
    now = datetime(2026, 11, 26, tzinfo=UTC)
    indexer_es = make_client(es_settings(infra, "pantau_indexer", es_prefix))
    with pytest.raises(AuthorizationException):
        apply_retention(indexer_es, es_prefix, keep_months=13, now=now)
    assert apply_retention(admin_es, es_prefix, keep_months=13, now=now, dry_run=True) == [
        f"{es_prefix}-articles-2024.01"
    ]
    assert admin_es.indices.exists(index=f"{es_prefix}-articles-2024.01")
    assert apply_retention(admin_es, es_prefix, keep_months=13, now=now) == [f"{es_prefix}-articles-2024.01"]
    assert not admin_es.indices.exists(index=f"{es_prefix}-articles-2024.01")
    assert admin_es.indices.exists(index=f"{es_prefix}-articles-2025.10")
    assert f"{es_prefix}-articles-2025.10" in admin_es.indices.get_alias(name=f"{es_prefix}-articles")


def test_two_workers_and_a_rebalance_mid_stream(
    infra, kafka_settings, contracts, applied_topics, es_prefix, admin_es, unique, tmp_path
):
    """kafka-python runs rebalance callbacks on its IO thread and hands most partitions straight back
    with their read position: a rebalance with records in flight must neither lose nor double any."""
    total = 4000
    produce(kafka_settings, contracts, applied_topics.articles_enriched, enriched_articles(contracts, total))
    group, log = f"idx-{unique}", tmp_path / "indexer.log"
    first = start_indexer_process(infra, kafka_settings, applied_topics, es_prefix, group, infra.es_url, log)
    second = None
    try:
        wait_for(lambda: count(admin_es, es_prefix) >= 100, 60, "the first worker to make progress")
        second = start_indexer_process(infra, kafka_settings, applied_topics, es_prefix, group, infra.es_url, log)
        wait_for(lambda: group_offsets(kafka_settings, group, applied_topics.articles_enriched) == total, 180,
                 "every record committed")  # fmt: skip
    finally:
        for worker in (first, second):
            if worker is not None:
                worker.send_signal(signal.SIGTERM)
        codes = [w.wait(60) for w in (first, second) if w is not None]
    text = log.read_text()
    assert codes == [0, 0], text[-3000:]
    assert count(admin_es, es_prefix) == total
