"""Ring 1: timestamps the schemas accept are read by every stage."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from pantau.common.codec import Codec
from pantau.common.times import parse_timestamp
from pantau.enricher.core import Enricher
from pantau.enricher.fingerprint import MemoryStoryIndex
from pantau.enricher.terms import TermMatcher, WatchedTerm


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2024-01-01T00:00:00Z", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-01-01t00:00:00z", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("2024-06-01T07:00:00.250+07:00", datetime(2024, 6, 1, 0, 0, 0, 250_000, tzinfo=UTC)),
    ],
)
def test_rfc3339_forms_the_schema_accepts(text, moment):
    assert parse_timestamp(text) == moment


def test_an_article_with_such_a_time_is_valid_and_enriched_not_dead_lettered(contracts):
    codec = Codec.for_topic(contracts, "articles_raw")
    article = json.loads(next(iter(contracts.examples("article-raw", 1))).read_text(encoding="utf-8"))
    for crawled_at in ("2024-01-01t00:00:00z", "2016-12-31T23:59:60Z"):
        raw = {**article, "crawled_at": crawled_at}
        codec.validate(raw)  # the contract takes it ...
        enricher = Enricher(TermMatcher([WatchedTerm("amunisi")]), MemoryStoryIndex())
        assert enricher.enrich(raw, datetime(2026, 1, 1, tzinfo=UTC))["id"] == article["id"]  # ... and so do we


def test_not_a_time_is_a_value_error():
    with pytest.raises(ValueError):
        parse_timestamp("yesterday")
