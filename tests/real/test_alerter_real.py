"""Ring 3: alerter workers (real processes, `pantau alerter run`) through the real Kafka.

A stream of enriched articles with a backfilled history (which holds a surge of its own) and an
"amunisi" surge in live news: exactly one incident reaches `alerts`, through a kill -9 of the worker
mid-surge and through a rebalance between two workers; the history never alerts; a malformed
subscription and a malformed article go to the dead-letter topic while the valid subscription works."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pantau.alerter.detector import PRESETS
from pantau.alerter.publish import apply_subscriptions
from pantau.alerter.stream import partition_of
from pantau.common.codec import Codec
from pantau.common.dlq import read_provenance
from pantau.common.kafka_io import close_producer, make_producer, record_headers
from tests.samples import alerter_stream, read_records, stop, topic_env

START = 1_764_000_000.0  # publication times are in the past: detection runs on stream time
SURGE_HOUR = 54
SUB = {"id": "desk-amunisi", "owner": "defence-desk", "query": "amunisi", "modes": ["spike"], "channels": {}}


@pytest.fixture
def worker_env(kafka_settings, applied_topics, unique, tmp_path):
    env = dict(os.environ)
    env.update({
        "PANTAU_KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "PANTAU_ALERTER_GROUP": f"alerter-test-{unique}",
        "PANTAU_ALERTER_DATA_DIR": str(tmp_path / "faust"),
        "PANTAU_ALERTER_TABLE_PARTITIONS": "3",
        "PANTAU_LOG_FORMAT": "text",
    })  # fmt: skip
    env.update(topic_env(applied_topics))
    return env


def start_worker(env: dict, n: int, tmp_path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pantau.cli", "alerter", "run"],
        env={
            **env,
            "PANTAU_METRICS_PORT": "0",
            "PANTAU_ALERTER_WEB_PORT": str(6170 + n),
            "PANTAU_ALERTER_DATA_DIR": str(tmp_path / f"faust-{n}"),
        },
        stdout=(tmp_path / "workers.log").open("ab"),
        stderr=subprocess.STDOUT,
    )


def produce(kafka_settings, contracts, topic: str, articles: list[dict], extra: list[tuple[bytes, bytes]] = ()) -> None:
    codec = Codec.for_topic(contracts, "articles_enriched")
    producer = make_producer(kafka_settings, "tests")
    for article in articles:
        value, headers = codec.encode(article)
        producer.send(topic, key=article["id"].encode(), value=value, headers=headers)
    for key, value in extra:
        producer.send(topic, key=key, value=value)
    producer.flush()
    close_producer(producer)


def spike_alerts(kafka_settings, contracts, topic: str, until, timeout_s: float) -> list[dict]:
    codec = Codec.for_topic(contracts, "alerts")

    def spikes(records):
        return [a for a in (codec.decode(r.value, record_headers(r)) for r in records) if a["kind"] == "spike"]

    return spikes(read_records(kafka_settings, topic, lambda rs: until(spikes(rs)), timeout_s, drain_s=5.0))


def resolved(alerts: list[dict]) -> bool:
    return any(a["state"] == "resolved" and a["watch"]["type"] == "query" for a in alerts)


def split_at_surge(articles: list[dict], stories_before: int) -> tuple[list[dict], list[dict]]:
    """Everything up to the surge's `stories_before`-th story, and the rest."""
    seen = 0
    for i, article in enumerate(articles):
        if article["terms"] and not article["backfill"]:
            seen += 1
            if seen == stories_before:
                return articles[: i + 1], articles[i + 1 :]
    raise AssertionError("no surge")


def check_one_incident(alerts: list[dict], log: str) -> None:
    assert alerts, log[-3000:]
    assert len({a["incident_id"] for a in alerts}) == 1, [(a["id"], a["watch"]["key"]) for a in alerts]
    # At-least-once: a kill between the broker's acknowledgement of an alert and the changelog write
    # that records it can send that revision again — the very same message (the notifier's delivery
    # log drops it). Never two different messages under one id, never a revision missing.
    by_id: dict[str, dict] = {}
    for alert in alerts:
        assert by_id.setdefault(alert["id"], alert) == alert, f"two different alerts under {alert['id']}"
    alerts = list(by_id.values())
    query = [a for a in alerts if a["watch"]["type"] == "query"]
    seen = [(a["id"], a["watch"]["key"], a["state"]) for a in alerts]
    assert query[0]["state"] == "firing" and query[0]["revision"] == 1, seen
    assert query[0]["subscription_ids"] == ["desk-amunisi"] and query[0]["watch"]["query"] == "amunisi"
    assert [a["revision"] for a in query] == list(range(1, len(query) + 1))  # none lost
    assert query[-1]["state"] == "resolved"
    first = query[0]
    floors = PRESETS["normal"]
    assert first["observed"]["stories"] >= floors.min_stories and first["observed"]["sources"] >= floors.min_sources
    assert all(ref["url"].startswith("https://news") for ref in first["top_articles"])
    surge_start = START + SURGE_HOUR * 3600
    assert all(a["detected_at"] >= time.strftime("%Y-%m-%dT%H:%M", time.gmtime(surge_start)) for a in alerts), (
        "the backfilled history alerted"
    )


def test_surge_is_one_incident_through_a_kill_and_bad_input_is_dead_lettered(
    kafka_settings, contracts, applied_topics, worker_env, tmp_path
):
    bad_sub = {**SUB, "id": "desk-broken", "query": "amunisi AND (OR"}
    codec = Codec.for_topic(contracts, "subscriptions")
    apply_subscriptions([SUB], contracts, kafka_settings, applied_topics.subscriptions)
    producer = make_producer(kafka_settings, "tests")  # the broken one bypasses `apply`'s checks
    value, headers = codec.encode(bad_sub)
    producer.send(applied_topics.subscriptions, key=b"desk-broken", value=value, headers=headers).get(30)
    close_producer(producer)

    articles = alerter_stream(contracts, START, SURGE_HOUR + 6, 30, SURGE_HOUR, backfill_hours=36,
                              backfill_surge_at_hour=20)  # fmt: skip
    before, after = split_at_surge(articles, 10)
    produce(kafka_settings, contracts, applied_topics.articles_enriched, before, [(b"bad", b"{not json")])

    worker = start_worker(worker_env, 1, tmp_path)
    restarted = None
    try:
        fired = spike_alerts(kafka_settings, contracts, applied_topics.alerts, lambda a: len(a) >= 1, 240)
        assert fired, (tmp_path / "workers.log").read_text()[-3000:]
        worker.send_signal(signal.SIGKILL)  # mid-surge: five more stories are still to come
        worker.wait(10)
        produce(kafka_settings, contracts, applied_topics.articles_enriched, after)
        restarted = start_worker(worker_env, 2, tmp_path)
        alerts = spike_alerts(kafka_settings, contracts, applied_topics.alerts, resolved, 300)
        log = (tmp_path / "workers.log").read_text()
        check_one_incident(alerts, log)

        letters = read_records(kafka_settings, applied_topics.dlq_alerter, lambda r: len(r) >= 2, 60)
        by_topic = {read_provenance(record_headers(r))["topic"]: r for r in letters}
        assert by_topic[applied_topics.articles_enriched].value == b"{not json"
        sub_letter = by_topic[applied_topics.subscriptions]
        assert json.loads(sub_letter.value)["id"] == "desk-broken"
        provenance = read_provenance(record_headers(sub_letter))
        assert provenance["error-type"] == "InvalidSubscription" and "column" in provenance["reason"]
    finally:
        stop(worker, restarted)


def test_surge_is_one_incident_through_a_rebalance(kafka_settings, contracts, applied_topics, worker_env, tmp_path):
    apply_subscriptions([SUB], contracts, kafka_settings, applied_topics.subscriptions)
    articles = alerter_stream(contracts, START, SURGE_HOUR + 6, 30, SURGE_HOUR, backfill_hours=36)
    before, after = split_at_surge(articles, 4)
    produce(kafka_settings, contracts, applied_topics.articles_enriched, before)
    first = start_worker(worker_env, 1, tmp_path)
    second = None
    try:
        # The first worker has read up to the surge's fourth story (not yet a spike) ...
        read_records(kafka_settings, applied_topics.alerts, lambda r: False, 45)
        second = start_worker(worker_env, 2, tmp_path)  # ... a second joins: partitions move mid-surge
        time.sleep(5)
        produce(kafka_settings, contracts, applied_topics.articles_enriched, after)
        alerts = spike_alerts(kafka_settings, contracts, applied_topics.alerts, resolved, 300)
        check_one_incident(alerts, (tmp_path / "workers.log").read_text())

        # Idle watches are pruned per partition by recomputing where faust sent them: check it agrees.
        def keyed(records):  # watch hits (the volume messages have no key and go to every partition)
            return [r for r in records if r.key]

        hits = keyed(
            read_records(
                kafka_settings, worker_env["PANTAU_ALERTER_GROUP"] + "-hits", lambda r: len(keyed(r)) >= 20, 60
            )
        )
        assert len(hits) >= 20 and all(r.partition == partition_of(r.key.decode(), 3) for r in hits)
    finally:
        stop(first, second)


def test_a_worker_whose_messages_all_fail_exits_to_be_restarted(kafka_settings, contracts, applied_topics, worker_env,
                                                                tmp_path):  # fmt: skip
    produce(kafka_settings, contracts, applied_topics.articles_enriched, [],
            extra=[(b"junk-%d" % i, b"\xff not an article") for i in range(30)])  # fmt: skip
    worker = start_worker({**worker_env, "PANTAU_DLQ_WINDOW": "20", "PANTAU_DLQ_MIN_MESSAGES": "10"}, 3, tmp_path)
    try:
        assert worker.wait(120) == 70, (tmp_path / "workers.log").read_text()[-3000:]
    finally:
        worker.kill()
    assert "were dead-lettered" in (tmp_path / "workers.log").read_text()
