from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pantau.common.codec import Codec
from pantau.crawler.article import Known, build_article
from pantau.crawler.extract import extract
from pantau.crawler.links import Link
from pantau.crawler.sources import Source
from pantau.crawler.urls import article_id
from pantau.demo import newsite

BASE = "https://www.kompas.tv"
SOURCE = Source(id="kompastv", name="Kompas TV", homepage=BASE, country="ID", languages=["id"],
                timezone="Asia/Jakarta", entry_points=[{"kind": "feed", "url": BASE + "/feed"}])  # fmt: skip
NOW = datetime(2026, 11, 26, tzinfo=UTC)


@pytest.fixture
def page():
    article = newsite.articles(1)[0]
    return extract(newsite.render(article, BASE).encode(), BASE + article.path + "?utm_source=x")


def test_first_sight_is_revision_one_with_the_canonical_id_and_validates(page, contracts):
    message = build_article(page, SOURCE, NOW)
    assert message["id"] == article_id(page.canonical_url)
    assert (message["revision"], message["backfill"]) == (1, False)
    assert message["source"]["domain"] == "kompas.tv"
    assert message["first_seen_at"] == message["crawled_at"] == NOW.isoformat()
    Codec.for_topic(contracts, "articles_raw").validate(message)


def test_same_content_again_is_a_duplicate_changed_content_the_next_revision(page):
    first = build_article(page, SOURCE, NOW)
    known = Known(first["content_hash"], 1, first["first_seen_at"])
    assert build_article(page, SOURCE, NOW, known) is None
    page.text += "\nParagraf tambahan setelah koreksi."
    second = build_article(page, SOURCE, NOW, known)
    assert (second["id"], second["revision"]) == (first["id"], 2)
    assert second["first_seen_at"] == first["first_seen_at"]


def test_feed_date_is_the_fallback_when_the_page_has_none(page):
    page.published_at = None
    page.published_at_source = None
    link = Link(page.url, None, datetime(2026, 11, 25, tzinfo=UTC))
    message = build_article(page, SOURCE, NOW, link=link, entry_point="feed:" + BASE + "/feed")
    assert (message["published_at"], message["published_at_source"]) == ("2026-11-25T00:00:00+00:00", "feed")
