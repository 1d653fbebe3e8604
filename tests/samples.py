"""Sample messages for the real ring and the benchmarks, built from the contract examples."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime

from pantau.common.settings import TopicSettings


def enriched_articles(contracts, count: int, tag: str, seen_at: Callable[[int], str] | None = None) -> list[dict]:
    """`count` copies of the example enriched article, each with its own id (from `tag` and its
    number) and title, first seen (and crawled) at `seen_at(n)`, or now."""
    base = json.loads(next(iter(contracts.examples("article-enriched", 1))).read_text(encoding="utf-8"))
    out = []
    for i in range(count):
        article = copy.deepcopy(base)
        article["id"] = hashlib.sha256(f"{tag}-{i}".encode()).hexdigest()
        article["title"] = f"{base['title']} ({i})"
        article["first_seen_at"] = article["crawled_at"] = seen_at(i) if seen_at else datetime.now(UTC).isoformat()
        out.append(article)
    return out


def suffixed_topics(suffix: str) -> TopicSettings:
    """Every topic renamed with `suffix`, so runs never see each other's messages."""
    defaults = TopicSettings()
    return TopicSettings(**{field: f"{getattr(defaults, field)}.{suffix}" for field in topic_fields()})


def topic_fields() -> list[str]:
    return [field for field in TopicSettings.model_fields if field != "replication_factor"]


def topic_names(topics: TopicSettings) -> list[str]:
    return [getattr(topics, field) for field in topic_fields()]


def topic_env(topics: TopicSettings) -> dict[str, str]:
    """The PANTAU_TOPIC_* environment that makes a service process use `topics`."""
    return {f"PANTAU_TOPIC_{field.upper()}": getattr(topics, field) for field in topic_fields()}


BACKGROUND_TITLES = [
    "Harga beras di pasar tradisional naik dalam dua pekan terakhir",
    "Hujan lebat diperkirakan masih terjadi di Jawa Barat",
    "Pemerintah daerah memperbaiki jalan menjelang musim mudik",
    "Tim nasional bersiap menghadapi laga persahabatan",
]


def alerter_stream(contracts, start: float, hours: int, per_hour: int, surge_at_hour: int | None,
                   surge_stories: int = 15, surge_sources: int = 8, backfill_hours: int = 0,
                   backfill_surge_at_hour: int | None = None) -> list[dict]:  # fmt: skip
    """Enriched articles for the alerter, in publication order: background news (no watched term,
    no entities) at `per_hour`, and an "amunisi" surge of `surge_stories` stories from
    `surge_sources` outlets within the hour `surge_at_hour`. The first `backfill_hours` are marked
    backfill (history), with an optional surge inside them that must never alert."""
    from pantau.enricher.stems import stem_text

    base = json.loads(next(iter(contracts.examples("article-enriched", 1))).read_text(encoding="utf-8"))
    out = []

    def article(n: int, t: float, title: str, text: str, source: str, terms: list, backfill: bool) -> dict:
        a = copy.deepcopy(base)
        a["id"] = hashlib.sha256(f"alerter-{n}-{title}".encode()).hexdigest()
        a["url"] = a["canonical_url"] = f"https://{source}.example/berita/{n}"
        a["source"] = {
            "id": source,
            "name": source,
            "domain": f"{source}.example",
            "country": "ID",
            "languages": ["id"],
        }
        a["title"], a["text"] = title, text
        moment = datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")
        a["published_at"] = a["first_seen_at"] = a["crawled_at"] = a["enriched_at"] = moment
        a["entities"], a["canonical_entities"], a["terms"] = [], [], terms
        a["stems"] = {"title": stem_text(title, "id"), "text": stem_text(text, "id"), "stemmer": "sastrawi"}
        a["story"] = {"id": a["id"][:16], "fingerprint": a["id"][16:32]}
        a["backfill"] = backfill
        return a

    n = 0
    for hour in range(hours):
        backfill = hour < backfill_hours
        for k in range(per_hour):
            n += 1
            title = f"{BACKGROUND_TITLES[n % len(BACKGROUND_TITLES)]} ({n})"
            t = start + hour * 3600 + (k + 0.5) * 3600 / per_hour
            out.append(article(n, t, title, title + ". Warga diminta tetap waspada.", f"outlet{n % 40}", [], backfill))
        if hour in (surge_at_hour, backfill_surge_at_hour):
            for k in range(surge_stories):
                n += 1
                title = f"Pengiriman amunisinya ke wilayah konflik dilaporkan, kabar {n}"
                t = start + hour * 3600 + (k + 0.25) * 3600 / surge_stories
                text = title + ". Pemerintah memperketat pengawasan ekspor amunisi."
                terms = [{"term": "amunisi", "count": 2}]
                out.append(article(n, t, title, text, f"news{k % surge_sources}", terms, backfill))
    out.sort(key=lambda a: a["published_at"])
    return out


def read_records(kafka_settings, topic: str, until, timeout_s: float, drain_s: float = 0.0) -> list:
    """Records until `until(records)` holds (or the timeout), then `drain_s` more of whatever else is
    there: a poll returns some partitions before others, and a later revision may be read first."""
    import time

    from pantau.common.kafka_io import make_consumer

    consumer = make_consumer(kafka_settings, "tests", group_id=None, topics=[topic])
    records, deadline = [], time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not until(records):
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        drained = time.monotonic() + drain_s
        while time.monotonic() < drained:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records


def wait_for(condition, timeout_s: float, what: str) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout_s`."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def free_port() -> int:
    """A loopback port nothing listens on now, for a process the test starts."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(*procs) -> None:
    """SIGTERM each process the test started (a worker drains and commits), SIGKILL one that hangs."""
    import signal
    import subprocess

    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def send_articles(producer, codec, topic: str, articles: list[dict]) -> None:
    """Encode (validating) and send each article keyed by its id; returns once the broker has them."""
    for article in articles:
        value, headers = codec.encode(article)
        producer.send(topic, key=article["id"].encode(), value=value, headers=headers)
    producer.flush()


def metric_value(port: int, name: str) -> float:
    """The sum of a metric's samples (lines starting with `name`) on a process's /metrics."""
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))
