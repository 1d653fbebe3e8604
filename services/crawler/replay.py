"""Backfill: articles from WARC files or JSON lines, published as `backfill: true` through the same
extraction, revision rule and publisher as the live crawl (so a replay twice publishes nothing new).

JSON lines take either a saved page `{"url", "html", "fetched_at"?}` or an already extracted
article `{"url", "title", "text", "published_at"?, "authors"?, ...}`."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import click

from pantau.common.settings import CrawlerSettings
from pantau.crawler.article import build_article
from pantau.crawler.dates import parse_datetime
from pantau.crawler.extract import ExtractedPage, ExtractFailed, extract
from pantau.crawler.publisher import Publisher
from pantau.crawler.sources import Source
from pantau.crawler.state import CrawlState
from pantau.crawler.urls import BadUrl, article_id
from pantau.crawler.warc import read_warc


class ReplayItem:
    def __init__(self, url: str, page: ExtractedPage | None = None, body: bytes | None = None,
                 content_type: str | None = None, fetched_at: datetime | None = None,
                 record_id: str | None = None, status: int = 200):  # fmt: skip
        self.url, self.page, self.body, self.content_type = url, page, body, content_type
        self.fetched_at, self.record_id, self.status = fetched_at, record_id, status


def _jsonl_items(path: Path) -> Iterator[ReplayItem | str]:
    with path.open(encoding="utf-8") as lines:
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                url = row["url"]
            except (json.JSONDecodeError, KeyError, TypeError):
                yield f"{path}:{n}: not a JSON object with a url"
                continue
            fetched = parse_datetime(row.get("fetched_at") or row.get("crawled_at") or "")
            if "html" in row:
                yield ReplayItem(url, body=row["html"].encode("utf-8"), content_type="text/html; charset=utf-8",
                                 fetched_at=fetched)  # fmt: skip
            elif row.get("text"):
                published = parse_datetime(row.get("published_at") or "")
                page = ExtractedPage(
                    url=url,
                    canonical_url=row.get("canonical_url") or url,
                    title=row.get("title") or "",
                    text=row["text"],
                    authors=row.get("authors") or [],
                    published_at=published,
                    published_at_source="backfill" if published else None,
                    section=row.get("section"),
                    tags=row.get("tags") or [],
                )
                yield ReplayItem(url, page=page, fetched_at=fetched)
            else:
                yield f"{path}:{n}: needs `html` or `text`"


def items(path: Path) -> Iterator[ReplayItem | str]:
    if path.name.endswith((".warc", ".warc.gz", ".arc.gz")):
        for archived in read_warc(path):
            yield ReplayItem(
                archived.url,
                body=archived.body,
                content_type=archived.content_type,
                fetched_at=archived.fetched_at,
                record_id=archived.record_id,
                status=archived.status,
            )
    else:
        yield from _jsonl_items(path)


async def replay(
    files: list[Path],
    source_for: Callable[[str, Path], Source],
    settings: CrawlerSettings,
    producer,
    topic: str,
    codec,
) -> Counter:
    state = CrawlState(settings.state_file)
    publisher = Publisher(producer, topic, codec, state)
    counts: Counter = Counter()
    try:
        everything = [(path, item) for path in files for item in items(path)]
        with click.progressbar(everything, label="replaying", file=click.get_text_stream("stderr")) as bar:
            for path, item in bar:
                if isinstance(item, str):
                    click.echo(item, err=True)
                    counts["invalid"] += 1
                    continue
                counts[await _replay_one(item, lambda url, p=path: source_for(url, p), state, publisher)] += 1
        await publisher.resend_pending()
    finally:
        state.close()
    return counts


async def _replay_one(item: ReplayItem, source_for, state: CrawlState, publisher: Publisher) -> str:
    try:
        source = source_for(item.url)
        page = item.page or extract(item.body, item.url, item.content_type, source.timezone)
        known = state.known(article_id(page.canonical_url))
        crawled = item.fetched_at or datetime.now(UTC)
        message = build_article(page, source, crawled, known, backfill=True, status=item.status,
                                content_type=item.content_type, warc_record_id=item.record_id)  # fmt: skip
    except ExtractFailed:
        return "extract_failed"
    except BadUrl:
        return "invalid"
    if message is None:
        return "duplicate"
    return "published" if await publisher.publish(message, None) else "pending"
