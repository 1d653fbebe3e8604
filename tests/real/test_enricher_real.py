"""Ring 3: enricher workers (real processes, `pantau enricher run`) through the real Kafka: two
workers share the stream, one is killed mid-stream, nothing is lost, bad messages land in the
dead-letter topic with their provenance; copies of a story get its id whichever worker sees them."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime

import pytest

from pantau.common.codec import Codec
from pantau.common.dlq import read_provenance
from pantau.common.kafka_io import make_producer, record_headers
from pantau.crawler.article import build_article
from pantau.crawler.extract import extract
from pantau.crawler.sources import Source
from pantau.demo import newsite
from pantau.enricher.fingerprint import distance, simhash
from tests.samples import free_port, metric_value, read_records, send_articles, stop, topic_env, wait_for

BASE = "https://www.kompas.tv"
SOURCE = Source(id="kompastv", name="Kompas TV", homepage=BASE, country="ID", languages=["id"],
                timezone="Asia/Jakarta", entry_points=[{"kind": "feed", "url": BASE + "/feed"}])  # fmt: skip


def raw_articles(count: int) -> list[dict]:
    out = []
    for article in newsite.articles(count):
        page = extract(newsite.render(article, BASE).encode(), BASE + article.path, default_tz="Asia/Jakarta")
        out.append(build_article(page, SOURCE, datetime(2026, 11, 26, tzinfo=UTC)))
    return out


def start_worker(env: dict, port: int, log_path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pantau.cli", "enricher", "run"],
        env={**env, "PANTAU_METRICS_PORT": str(port)},
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
    )


@pytest.fixture
def worker_env(kafka_settings, applied_topics, unique, tmp_path):
    env = dict(os.environ)
    env.update({
        "PANTAU_KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "PANTAU_ENRICHER_GROUP": f"enricher-test-{unique}",
        "PANTAU_ENRICHER_DATA_DIR": str(tmp_path / "faust"),
        "PANTAU_LOG_FORMAT": "text",
    })  # fmt: skip
    env.update(topic_env(applied_topics))
    return env


def test_two_workers_a_kill_and_dead_letters(kafka_settings, contracts, applied_topics, worker_env, tmp_path):
    articles = raw_articles(120)
    codec = Codec.for_topic(contracts, "articles_raw")
    producer = make_producer(kafka_settings, "tests")
    bad = {b"bad-json": b"{not json", b"bad-schema": json.dumps({**articles[0], "revision": 0}).encode()}
    for i, article in enumerate(articles):
        value, headers = codec.encode(article)
        producer.send(applied_topics.articles_raw, key=article["id"].encode(), value=value, headers=headers)
        if i == 30:
            for key, value in bad.items():
                producer.send(applied_topics.articles_raw, key=key, value=value)
    producer.flush()
    producer.close()

    logs = tmp_path / "workers.log"
    first = start_worker(worker_env, 0, logs)
    second = None
    try:
        enriched_codec = Codec.for_topic(contracts, "articles_enriched")
        wanted = {a["id"] for a in articles}

        # Let the first worker make progress, then a second joins (rebalance), then the first dies.
        read_records(kafka_settings, applied_topics.articles_enriched, lambda r: len(r) >= 20, 120)
        second = start_worker(worker_env, 0, logs)
        read_records(kafka_settings, applied_topics.articles_enriched, lambda r: len(r) >= 50, 120)
        first.send_signal(signal.SIGKILL)
        first.wait(10)

        records = read_records(
            kafka_settings,
            applied_topics.articles_enriched,
            lambda r: {rec.key.decode() for rec in r} >= wanted,
            300,  # the killed worker's session timeout, a rebalance and the table's recovery first
        )
        by_id = defaultdict(list)
        for record in records:
            message = enriched_codec.decode(record.value, record_headers(record))
            by_id[message["id"]].append(message)
        assert set(by_id) == wanted, logs.read_text()[-3000:]  # nothing lost
        for copies in by_id.values():  # at-least-once: a replayed article comes out identical
            assert all(c == copies[0] for c in copies)
        sample = by_id[articles[0]["id"]][0]
        assert sample["language"]["code"] in ("id", "en")
        assert sample["stems"]["stemmer"] in ("sastrawi", "snowball-english")

        letters = read_records(kafka_settings, applied_topics.dlq_enricher, lambda r: len(r) >= 2, 60)
        assert {r.key for r in letters} == set(bad)
        for letter in letters:
            assert letter.value == bad[letter.key]  # original bytes
            provenance = read_provenance(record_headers(letter))
            assert provenance["topic"] == applied_topics.articles_raw
            assert provenance["service"] == "enricher" and provenance["error-type"] == "InvalidMessage"
            assert provenance["offset"].isdigit()
    finally:
        stop(first, second)


def copies_of(article: dict, tag: str, count: int) -> list[dict]:
    """The same story republished by other portals: the same text under other ids and URLs."""
    out = []
    for i in range(count):
        url = f"https://portal-{i}.example/{tag}/{article['id'][:12]}"
        out.append({**article, "id": hashlib.sha256(url.encode()).hexdigest(), "url": url, "canonical_url": url})
    return out


def fingerprint(article: dict) -> int:
    return simhash(f"{article['title']}\n{article['text']}")


def _metric(port: int, name: str) -> float:
    try:
        return metric_value(port, name)
    except OSError:  # not serving yet
        return 0.0


def test_copies_get_one_story_whichever_worker_sees_them(kafka_settings, contracts, applied_topics, worker_env,
                                                         tmp_path, unique):  # fmt: skip
    codec, enriched_codec = Codec.for_topic(contracts, "articles_raw"), Codec.for_topic(contracts, "articles_enriched")
    producer = make_producer(kafka_settings, "tests")

    def send(batch: list[dict]) -> None:
        send_articles(producer, codec, applied_topics.articles_raw, batch)

    def enriched(ids: set[str]) -> dict[str, dict]:
        records = read_records(kafka_settings, applied_topics.articles_enriched,
                               lambda r: {rec.key.decode() for rec in r} >= ids, 180)  # fmt: skip
        out = {}
        for record in records:
            message = enriched_codec.decode(record.value, record_headers(record))
            out[message["id"]] = message
        assert set(out) >= ids, logs.read_text()[-3000:]
        return out

    earlier, later = raw_articles(2)
    logs = tmp_path / "workers.log"
    ports = (free_port(), free_port())
    first = start_worker(worker_env, ports[0], logs)
    second = None
    try:
        # The first worker decides `earlier`'s story alone; the second restores it from the changelog.
        send([earlier])
        story = enriched({earlier["id"]})[earlier["id"]]["story"]["id"]
        second = start_worker(worker_env, ports[1], logs)
        # Both take part before the copies go out: articles of other stories keep coming until each
        # worker has enriched some (the second joins a rebalance a few seconds after it starts).
        others = [a for a in raw_articles(40)[2:]
                  if min(distance(fingerprint(a), fingerprint(b)) for b in (earlier, later)) > 8]  # fmt: skip
        spread: list[dict] = []
        deadline = time.monotonic() + 180
        while not all(_metric(p, "pantau_enricher_articles_total") > 0 for p in ports):
            assert time.monotonic() < deadline, "the second worker never took part: " + logs.read_text()[-3000:]
            batch = copies_of(others[len(spread) % len(others)], f"s{len(spread)}-{unique}", 6)
            send(batch)
            spread += batch
            time.sleep(1.0)
        enriched({a["id"] for a in spread})
        # Six partitions, twelve copies of each story: both workers get some.
        copies = copies_of(earlier, f"a-{unique}", 12)
        send([later])  # decided live by one worker; the other learns it from the changelog as it runs
        story_later = enriched({later["id"]})[later["id"]]["story"]["id"]
        # A decision reaches the other worker a fetch later: wait until each has indexed every one so far.
        known = 2 + len(spread)
        wait_for(lambda: all(_metric(p, "pantau_enricher_story_entries") >= known for p in ports), 60,
                 f"both workers indexing {known} story decisions")  # fmt: skip
        before = [_metric(p, "pantau_enricher_articles_total") for p in ports]
        copies_later = copies_of(later, f"b-{unique}", 12)
        send([*copies, *copies_later])
        out = enriched({a["id"] for a in copies + copies_later})
        # Both enriched copies (a worker counts a batch once the broker has its outputs: wait a moment).
        counted = "pantau_enricher_articles_total"
        wait_for(lambda: all(_metric(p, counted) > b for p, b in zip(ports, before, strict=True)), 30,
                 f"both workers enriching copies (before: {before})")  # fmt: skip
        assert {out[a["id"]]["story"]["id"] for a in copies} == {story}
        assert {out[a["id"]]["story"]["id"] for a in copies_later} == {story_later}
        assert story_later != story
    finally:
        producer.close()
        stop(first, second)


def test_a_worker_whose_messages_all_fail_exits_to_be_restarted(kafka_settings, applied_topics, worker_env, tmp_path):
    # Raising in the agent did not stop it: faust's supervisor restarted the agent, which then held its
    # unacknowledged batch forever (blocking rebalances and shutdown) while /healthz said healthy.
    producer = make_producer(kafka_settings, "tests")
    for i in range(30):
        producer.send(applied_topics.articles_raw, key=b"junk-%d" % i, value=b"\xff not an article")
    producer.flush()
    producer.close()
    env = {**worker_env, "PANTAU_DLQ_WINDOW": "20", "PANTAU_DLQ_MIN_MESSAGES": "10"}
    worker = start_worker(env, free_port(), tmp_path / "worker.log")
    try:
        assert worker.wait(120) == 70, (tmp_path / "worker.log").read_text()[-3000:]
    finally:
        stop(worker)
    assert "were dead-lettered" in (tmp_path / "worker.log").read_text()
