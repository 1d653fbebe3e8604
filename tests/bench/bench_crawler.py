"""Crawler throughput: extraction alone (pages per second per core, goal ≥ 40), and a whole crawl
of the demo site on loopback into the real Kafka (articles per second: politeness off, so this is
the pipeline's ceiling, not how fast a real site is crawled)."""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from pathlib import Path

from pantau.common.codec import Codec
from pantau.common.contracts import load_contracts
from pantau.common.kafka_io import apply_topics, make_admin, make_producer
from pantau.common.settings import ContractSettings, CrawlerSettings, KafkaSettings, TopicSettings
from pantau.common.shutdown import ShutdownFlag
from pantau.crawler.extract import extract
from pantau.crawler.service import run_service
from pantau.crawler.sources import parse_sources
from pantau.demo import newsite
from pantau.demo.site import NewsSite
from tests.bench.figures import Figure
from tests.infra import ensure_up


def _extraction() -> Figure:
    base = "https://news.example"
    pages = [(newsite.render(a, base).encode(), base + a.path) for a in newsite.articles(60)]
    # Real portal pages weigh ~100 KiB: pad each with the menus, related-article lists, inline
    # scripts and styles they carry.
    menu = "".join(f'<li><a href="/kanal/{i}/berita-{i}">Berita pilihan nomor {i}</a></li>' for i in range(400))
    script = "<script>window.dataLayer=" + "[" + ",".join(f'{{"k{i}":"v{i}"}}' for i in range(2500)) + "];</script>"
    style = "<style>" + "".join(f".c{i}{{margin:{i}px;color:#{i:06x}}}" for i in range(1000)) + "</style>"
    pad = f"{style}{script}<ul>{menu}</ul>".encode()
    pages = [(body.replace(b"<footer>", pad + b"<footer>"), url) for body, url in pages]
    for body, url in pages[:5]:
        extract(body, url)  # warm-up
    done, start = 0, time.process_time()
    while time.process_time() - start < 5:
        for body, url in pages:
            extract(body, url, default_tz="Asia/Jakarta")
            done += 1
    cpu = time.process_time() - start
    size = sum(len(b) for b, _ in pages) // len(pages)
    return Figure("crawler extraction", done / cpu, "pages/s/core", goal=40,
                  note=f"{len(pages)} outlet-shaped pages, ~{size // 1024} KiB each, CPU time")  # fmt: skip


def _crawl() -> Figure:
    infra = ensure_up()
    kafka = KafkaSettings(bootstrap_servers=infra.kafka_bootstrap)
    contracts = load_contracts(ContractSettings().schemas_dir)
    topic = f"bench.crawl.{uuid.uuid4().hex[:8]}"
    admin = make_admin(kafka, "bench")
    apply_topics(admin, contracts, TopicSettings(articles_raw=topic))
    try:
        with NewsSite(300) as site, tempfile.TemporaryDirectory() as tmp:
            sources = parse_sources(
                f"sources:\n  - {{id: demo, name: Demo, homepage: '{site.base}', timezone: Asia/Jakarta,"
                f" entry_points: [{{kind: sitemap, url: '{site.base}/sitemap-index.xml'}}]}}\n"
            )
            settings = CrawlerSettings(allow_loopback=True, per_host_delay_s=0, per_host_concurrency=16,
                                       state_file=Path(tmp) / "state.sqlite")  # fmt: skip
            producer = make_producer(kafka, "bench")
            codec = Codec.for_topic(contracts, "articles_raw")
            start = time.perf_counter()
            stats = asyncio.run(run_service(sources, settings, producer, topic, codec, ShutdownFlag(), until_idle=True))
            elapsed = time.perf_counter() - start
            producer.close()
    finally:
        admin.delete_topics([topic])
        admin.close()
    return Figure("crawler end to end (fetch, extract, publish)", stats.published / elapsed, "articles/s",
                  note=f"{stats.published} articles from the demo site on loopback into Kafka, acks=all")  # fmt: skip


def run() -> list[Figure]:
    return [_extraction(), _crawl()]
