"""Ring 3: the crawler against the demo site on loopback, publishing into the real Kafka."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest
from click.testing import CliRunner

from pantau.cli import main
from pantau.common.codec import Codec
from pantau.common.kafka_io import close_producer, make_consumer, make_producer, record_headers
from pantau.common.settings import CrawlerSettings
from pantau.common.shutdown import ShutdownFlag
from pantau.crawler.service import run_service
from pantau.crawler.sources import parse_sources
from pantau.crawler.urls import article_id
from pantau.demo.site import NewsSite


@pytest.fixture
def site():
    with NewsSite(12) as running:
        yield running


def sources_for(site: NewsSite):
    return parse_sources(
        f"""
sources:
  - id: demo
    name: Demo
    homepage: {site.base}
    country: ID
    languages: [id, en]
    timezone: Asia/Jakarta
    entry_points:
      - {{kind: feed, url: "{site.base}/feed", min_interval_s: 5}}
      - {{kind: sitemap, url: "{site.base}/sitemap-index.xml", min_interval_s: 5}}
      - {{kind: section, url: "{site.base}/internasional", min_interval_s: 5}}
"""
    )


def settings_for(tmp_path, **extra) -> CrawlerSettings:
    defaults = {"allow_loopback": True, "per_host_delay_s": 0, "state_file": tmp_path / "state.sqlite"}
    return CrawlerSettings(**{**defaults, "total_timeout_s": 5, **extra})


def crawl(site, settings, kafka_settings, topic, contracts, stop_after_published=None, producer=None, renew=None):
    producer = producer or make_producer(kafka_settings, "crawler-test")
    shutdown = ShutdownFlag()

    async def go():
        if stop_after_published is None:
            return await run_service(sources_for(site), settings, producer, topic, codec, shutdown, until_idle=True,
                                     renew_producer=renew)  # fmt: skip

        async def watch():
            import sqlite3

            while True:
                await asyncio.sleep(0.05)
                db = sqlite3.connect(settings.state_file)
                done = db.execute("SELECT count(*) FROM published").fetchone()[0]
                db.close()
                if done >= stop_after_published:
                    shutdown.request("test")
                    return

        watcher = asyncio.create_task(watch())
        stats = await run_service(sources_for(site), settings, producer, topic, codec, shutdown, until_idle=True)
        watcher.cancel()
        return stats

    codec = Codec.for_topic(contracts, "articles_raw")
    try:
        return asyncio.run(go())
    finally:
        close_producer(producer, timeout_s=10)


def published(kafka_settings, contracts, topic: str, expected: int, timeout_s: float = 30) -> list[dict]:
    import time

    codec = Codec.for_topic(contracts, "articles_raw")
    consumer = make_consumer(kafka_settings, "tests", group_id=None, topics=[topic])
    messages, deadline = [], time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                for record in batch:
                    message = codec.decode(record.value, record_headers(record))
                    assert record.key.decode() == message["id"]
                    messages.append(message)
            if len(messages) >= expected:
                # read a little longer: a duplicate would show up now
                for batch in consumer.poll(timeout_ms=1500).values():
                    messages += [codec.decode(r.value, record_headers(r)) for r in batch]
                break
    finally:
        consumer.close()
    return messages


def expected_ids(site: NewsSite) -> set[str]:
    return {article_id(site.base + path) for path in site.articles}


def test_crawl_publishes_exactly_the_sites_articles_once(site, tmp_path, kafka_settings, contracts, applied_topics):
    stats = crawl(site, settings_for(tmp_path), kafka_settings, applied_topics.articles_raw, contracts)
    assert stats.published == len(site.articles)
    messages = published(kafka_settings, contracts, applied_topics.articles_raw, len(site.articles))
    assert Counter(m["id"] for m in messages) == Counter(expected_ids(site))
    assert all(m["revision"] == 1 and not m["backfill"] for m in messages)
    assert all(m["published_at"] and m["source"]["id"] == "demo" for m in messages)
    assert site.hits["/private/secret-article-that-robots-forbid"] == 0

    again = crawl(site, settings_for(tmp_path), kafka_settings, applied_topics.articles_raw, contracts)
    assert again.published == 0  # nothing new, nothing republished
    assert len(published(kafka_settings, contracts, applied_topics.articles_raw, len(site.articles))) == len(
        site.articles
    )


def test_restart_mid_crawl_loses_nothing_and_republishes_nothing(
    site, tmp_path, kafka_settings, contracts, applied_topics
):
    # Paced (one request to the host at a time, 0.2 s apart) so the stop lands mid-crawl.
    settings = settings_for(tmp_path, per_host_delay_s=0.2, per_host_concurrency=1)
    first = crawl(site, settings, kafka_settings, applied_topics.articles_raw, contracts, stop_after_published=4)
    assert 4 <= first.published < len(site.articles)
    crawl(site, settings, kafka_settings, applied_topics.articles_raw, contracts)
    messages = published(kafka_settings, contracts, applied_topics.articles_raw, len(site.articles))
    assert Counter(m["id"] for m in messages) == Counter(expected_ids(site))


def test_an_edited_article_is_republished_as_the_next_revision(
    site, tmp_path, kafka_settings, contracts, applied_topics
):
    settings = settings_for(tmp_path)
    crawl(site, settings, kafka_settings, applied_topics.articles_raw, contracts)
    path = sorted(site.articles)[3]
    site.edit(path, "Koreksi: angka ekspor yang benar adalah dua kali lipat dari laporan sebelumnya.")
    crawl(site, settings, kafka_settings, applied_topics.articles_raw, contracts)
    messages = published(kafka_settings, contracts, applied_topics.articles_raw, len(site.articles) + 1)
    edited = [m for m in messages if m["id"] == article_id(site.base + path)]
    assert [m["revision"] for m in edited] == [1, 2]
    assert "Koreksi" in edited[1]["text"] and edited[1]["first_seen_at"] == edited[0]["first_seen_at"]
    assert len(messages) == len(site.articles) + 1


def test_kafka_down_mid_crawl_loses_nothing(site, tmp_path, kafka_settings, contracts, applied_topics):
    """The real broker is stopped mid-crawl and started again: articles wait as pending, then all arrive."""
    import sqlite3
    import threading
    import time

    from tests.infra import ensure_up, stop_server

    settings = settings_for(tmp_path, per_host_delay_s=0.3, per_host_concurrency=1)
    pending_seen = []

    def outage():
        while _count(settings.state_file, "published") < 3:
            time.sleep(0.05)
        stop_server("kafka")
        deadline = time.monotonic() + 60
        while _count(settings.state_file, "pending") == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        pending_seen.append(_count(settings.state_file, "pending"))
        ensure_up()

    def _count(path, table):
        try:
            db = sqlite3.connect(path)
            try:
                return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            finally:
                db.close()
        except sqlite3.OperationalError:
            return 0

    saboteur = threading.Thread(target=outage, daemon=True)
    saboteur.start()

    def new_producer():
        return make_producer(kafka_settings, "crawler-test", delivery_timeout_ms=5000, request_timeout_ms=3000,
                             max_block_ms=3000)  # fmt: skip

    crawl(site, settings, kafka_settings, applied_topics.articles_raw, contracts, producer=new_producer(),
          renew=new_producer)  # fmt: skip
    saboteur.join(120)
    assert pending_seen and pending_seen[0] > 0  # the outage really held articles back
    messages = published(kafka_settings, contracts, applied_topics.articles_raw, len(site.articles))
    assert set(m["id"] for m in messages) == expected_ids(site)


def test_warc_output_replays_as_backfill(site, tmp_path, kafka_settings, contracts, applied_topics, monkeypatch):
    warc_dir = tmp_path / "warc"
    crawl(site, settings_for(tmp_path, warc_dir=warc_dir), kafka_settings, applied_topics.articles_raw, contracts)
    warcs = sorted(warc_dir.glob("*.warc.gz"))
    assert warcs

    monkeypatch.setenv("PANTAU_KAFKA_BOOTSTRAP_SERVERS", kafka_settings.bootstrap_servers)
    monkeypatch.setenv("PANTAU_TOPIC_ARTICLES_RAW", applied_topics.dlq_alerter)  # a fresh, empty topic
    monkeypatch.setenv("PANTAU_CRAWLER_STATE_FILE", str(tmp_path / "replay.sqlite"))
    monkeypatch.setenv("PANTAU_METRICS_PORT", "0")
    result = CliRunner().invoke(main, ["crawl", "replay", *map(str, warcs), "--source", "demo",
                                       "--sources", str(tmp_path / "none.yaml")])  # fmt: skip
    assert result.exit_code == 0, result.output
    replayed = published(kafka_settings, contracts, applied_topics.dlq_alerter, len(site.articles))
    assert {m["id"] for m in replayed} == expected_ids(site)
    assert all(m["backfill"] and m["fetch"]["warc_record_id"] for m in replayed)


def test_cli_links_and_extract(site, tmp_path):
    runner = CliRunner()
    env = {"PANTAU_CRAWLER_ALLOW_LOOPBACK": "true", "PANTAU_CRAWLER_PER_HOST_DELAY_S": "0"}
    links = runner.invoke(main, ["crawl", "links", site.base + "/feed", site.base + "/sitemap-index.xml"], env=env)
    assert links.exit_code == 0, links.output
    rows = [json.loads(line) for line in links.stdout.splitlines()]
    assert {r["url"] for r in rows if "kind" not in r} == {site.base + p for p in site.articles}
    assert all(set(r) >= {"url", "title", "published"} for r in rows)

    refused = runner.invoke(main, ["crawl", "links", site.base + "/feed"])  # no loopback allowance
    assert refused.exit_code == 1 and "loopback" in refused.stderr

    path = sorted(site.articles)[0]
    saved = tmp_path / "page.html"
    from pantau.demo import newsite

    saved.write_text(newsite.render(site.articles[path], site.base))
    extracted = runner.invoke(main, ["extract", str(saved), "--url", site.base + path], env=env)
    assert extracted.exit_code == 0, extracted.output
    article = json.loads(extracted.stdout)
    assert article["id"] == article_id(site.base + path)
    fetched = runner.invoke(main, ["extract", site.base + path], env=env)
    assert json.loads(fetched.stdout)["text"] == article["text"]


def test_replay_of_the_sources_files_jsonl_entry_points(
    tmp_path, kafka_settings, contracts, applied_topics, monkeypatch
):
    from pantau.demo import newsite

    article = newsite.articles(1)[0]
    base = "https://www.kompas.tv"
    rows = [
        {"url": base + article.path, "html": newsite.render(article, base), "fetched_at": "2026-11-20T02:00:00Z"},
        {"url": base + "/internasional/2023/09/06/arsip-lama", "title": "Arsip lama",
         "published_at": "2023-09-06T07:05:00+07:00",
         "text": "Teks arsip yang sudah diekstrak sebelumnya tentang amunisi dan Korea Utara. " * 5},
        "not json",
    ]  # fmt: skip
    archive = tmp_path / "archives" / "kompastv.jsonl"
    archive.parent.mkdir()
    archive.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        "sources:\n  - {id: kompastv, name: Kompas TV, homepage: 'https://www.kompas.tv', timezone: Asia/Jakarta,"
        " entry_points: [{kind: jsonl, path: archives/kompastv.jsonl}]}\n"
    )
    monkeypatch.setenv("PANTAU_KAFKA_BOOTSTRAP_SERVERS", kafka_settings.bootstrap_servers)
    monkeypatch.setenv("PANTAU_TOPIC_ARTICLES_RAW", applied_topics.articles_raw)
    monkeypatch.setenv("PANTAU_CRAWLER_STATE_FILE", str(tmp_path / "replay.sqlite"))
    result = CliRunner().invoke(main, ["crawl", "replay", "--sources", str(sources)])
    assert result.exit_code == 0, result.output
    assert "invalid 1" in result.stderr and "published 2" in result.stderr
    messages = published(kafka_settings, contracts, applied_topics.articles_raw, 2)
    assert len(messages) == 2
    assert all(m["backfill"] and m["source"]["id"] == "kompastv" for m in messages)
    archived = next(m for m in messages if m["title"] == "Arsip lama")
    assert (archived["published_at"], archived["published_at_source"]) == ("2023-09-06T07:05:00+07:00", "backfill")

    again = CliRunner().invoke(main, ["crawl", "replay", "--sources", str(sources)])
    assert "duplicate 2" in again.stderr  # replaying twice publishes nothing new
