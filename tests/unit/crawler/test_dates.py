from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from pantau.crawler.dates import parse_datetime

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
WIB, WITA, WIT = (timezone(timedelta(hours=h)) for h in (7, 8, 9))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-09-06T07:05:00+07:00", datetime(2023, 9, 6, 7, 5, tzinfo=WIB)),
        ("2023-09-06T00:05:00Z", datetime(2023, 9, 6, 0, 5, tzinfo=UTC)),
        ("Wed, 06 Sep 2023 00:05:00 GMT", datetime(2023, 9, 6, 0, 5, tzinfo=UTC)),
        ("Wed, 06 Sep 2023 07:05:00 +0700", datetime(2023, 9, 6, 7, 5, tzinfo=WIB)),
        ("6 September 2023, 07:05 WIB", datetime(2023, 9, 6, 7, 5, tzinfo=WIB)),
        ("Rabu, 6 September 2023 pukul 07:05 WITA", datetime(2023, 9, 6, 7, 5, tzinfo=WITA)),
        ("06/09/2023 07:05 WIT", datetime(2023, 9, 6, 7, 5, tzinfo=WIT)),
        ("Kamis, 12 Desember 2024 | 19:30 WIB", datetime(2024, 12, 12, 19, 30, tzinfo=WIB)),
        ("17 Agustus 2025 10:00 WIB", datetime(2025, 8, 17, 10, 0, tzinfo=WIB)),
    ],
)
def test_zoned_dates(text, expected):
    assert parse_datetime(text, now=NOW) == expected


def test_a_date_without_a_zone_takes_the_source_zone_or_is_unknown():
    assert parse_datetime("2023-09-06 07:05:00", now=NOW) is None
    assert parse_datetime("2023-09-06 07:05:00", "Asia/Jakarta", now=NOW) == datetime(2023, 9, 6, 7, 5, tzinfo=WIB)


@pytest.mark.parametrize(
    "text", ["2026-11-27T12:00:00Z", "1989-12-31T23:00:00Z", "0000-00-00", "garbage", "", "x" * 500]
)
def test_implausible_or_unreadable_dates_are_unknown(text):
    assert parse_datetime(text, "Asia/Jakarta", now=NOW) is None


def test_a_few_minutes_in_the_future_is_tolerated():
    assert parse_datetime("2026-11-26T12:10:00Z", now=NOW) is not None
