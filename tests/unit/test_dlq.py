"""Ring 1: dead letters carry their provenance; a stage whose messages mostly fail stops."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from pantau.common.dlq import (
    DeadLetterLimit,
    Provenance,
    dead_letter_headers,
    fit_dead_letter,
    original_headers,
    read_provenance,
)
from pantau.common.errors import DeadLetterLimitExceeded, InvalidMessage


def test_a_dead_letter_over_the_broker_limit_is_cut_and_says_what_it_was():
    headers = dead_letter_headers(Provenance("articles.raw", 0, 7, "enricher"), ValueError("x" * 5000))
    small = b"{}"
    assert fit_dead_letter(small, headers, 10_000) == (small, headers)
    big = bytes(range(256)) * 40_000  # 10 MB, which the broker took compressed
    value, letter = fit_dead_letter(big, headers, 1_000_000)
    assert len(value) + sum(len(k) + len(v) for k, v in letter) <= 1_000_000
    assert big.startswith(value) and len(value) > 990_000
    provenance = read_provenance(letter)
    assert provenance["truncated-from"] == str(len(big)) and provenance["offset"] == "7"
    assert provenance["sha256"] == hashlib.sha256(big).hexdigest()
    assert fit_dead_letter(None, headers, 100) == (None, headers)


def test_headers_keep_the_originals_and_add_provenance():
    error = InvalidMessage("article-raw", 1, "source.id", "must be string")
    headers = dead_letter_headers(
        Provenance("articles.raw", 4, 1234, "enricher"),
        error,
        [("pantau-schema", b"article-raw.v1")],
        now=datetime(2026, 11, 26, 12, 0, tzinfo=UTC),
    )
    assert original_headers(headers) == [("pantau-schema", b"article-raw.v1")]
    assert read_provenance(headers) == {
        "topic": "articles.raw",
        "partition": "4",
        "offset": "1234",
        "service": "enricher",
        "error-type": "InvalidMessage",
        "reason": "article-raw.v1: source.id: must be string",
        "time": "2026-11-26T12:00:00.000+00:00",
    }


def test_a_replayed_dead_letter_that_fails_again_gets_fresh_provenance_not_two_sets():
    first = dead_letter_headers(Provenance("a", 0, 1, "s"), ValueError("one"))
    second = dead_letter_headers(Provenance("a", 0, 9, "s"), ValueError("two"), first)
    assert read_provenance(second)["offset"] == "9"
    assert len([k for k, _ in second if k == "pantau-dlq-reason"]) == 1


def test_long_reasons_are_cut():
    headers = dead_letter_headers(Provenance("a", 0, 1, "s"), ValueError("x" * 10_000))
    assert len(read_provenance(headers)["reason"]) == 2000


def test_limit_tolerates_scattered_failures():
    limit = DeadLetterLimit(max_ratio=0.5, window=100, min_messages=10)
    for i in range(1000):
        limit.record(dead_lettered=i % 3 == 0)  # a third fail: bad, but not systematic


def test_limit_stops_a_stage_whose_messages_mostly_fail():
    limit = DeadLetterLimit(max_ratio=0.5, window=100, min_messages=10)
    for _ in range(50):
        limit.record(dead_lettered=False)
    with pytest.raises(DeadLetterLimitExceeded, match="of the last 100 messages"):
        for _ in range(100):
            limit.record(dead_lettered=True)


def test_limit_waits_for_enough_messages_before_judging():
    limit = DeadLetterLimit(max_ratio=0.5, window=100, min_messages=10)
    for _ in range(9):
        limit.record(dead_lettered=True)
    with pytest.raises(DeadLetterLimitExceeded):
        limit.record(dead_lettered=True)
