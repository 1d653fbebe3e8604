"""From an extracted page to an `article-raw` message, and the revision rule. Pure.

A URL already published with the same content is a duplicate and is not republished; changed
content (title or text) is republished as the next revision under the same id."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pantau.crawler.dates import sane
from pantau.crawler.extract import ExtractedPage
from pantau.crawler.links import Link
from pantau.crawler.sources import Source
from pantau.crawler.urls import article_id, normalise, registered_domain


@dataclass(frozen=True)
class Known:
    """What the crawler already published for an article id."""

    content_hash: str
    revision: int
    first_seen_at: str


def content_hash(title: str, text: str) -> str:
    return hashlib.sha256(f"{title}\n{text}".encode()).hexdigest()


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def build_article(
    page: ExtractedPage,
    source: Source,
    crawled_at: datetime,
    known: Known | None = None,
    link: Link | None = None,
    entry_point: str | None = None,
    backfill: bool = False,
    status: int = 200,
    content_type: str | None = None,
    warc_record_id: str | None = None,
) -> dict[str, Any] | None:
    """The message to publish, or None when it would repeat what was already published."""
    digest = content_hash(page.title, page.text)
    if known is not None and known.content_hash == digest:
        return None
    published, published_source = page.published_at, page.published_at_source
    if published is None and link is not None and link.published is not None:
        published = sane(link.published, crawled_at)
        published_source = (
            ("sitemap" if entry_point and entry_point.startswith("sitemap") else "feed") if published else None
        )
    canonical = normalise(page.canonical_url)
    return {
        "id": article_id(canonical),
        "url": page.url,
        "canonical_url": canonical,
        "source": {
            "id": source.id,
            "name": source.name,
            "domain": registered_domain(canonical),
            "country": source.country,
            "languages": list(source.languages),
        },
        "title": page.title or (link.title if link and link.title else ""),
        "text": page.text,
        "authors": page.authors,
        "published_at": iso(published),
        "published_at_source": published_source,
        "updated_at": iso(page.updated_at),
        "crawled_at": iso(crawled_at),
        "first_seen_at": known.first_seen_at if known else iso(crawled_at),
        "language_hint": page.language_hint,
        "section": page.section,
        "tags": page.tags,
        "image_url": page.image_url,
        "revision": known.revision + 1 if known else 1,
        "content_hash": digest,
        "backfill": backfill,
        "fetch": {
            "status": status,
            "content_type": content_type,
            "entry_point": entry_point,
            "warc_record_id": warc_record_id,
        },
    }
