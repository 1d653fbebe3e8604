"""Dates as news sites write them, made sane. Pure.

Every date we keep is timezone-aware: ISO 8601 and RFC 822 carry their offset; Indonesian zone
names (WIB +07, WITA +08, WIT +09) are understood; a date without a zone takes the source's zone
when the sources file gives one, and is refused otherwise (unknown, not guessed). Nothing before
1990 and nothing more than a small tolerance in the future is accepted: those are parsing errors or
placeholders, and an analyst's timeline must not show them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from dateutil import parser as dateutil_parser

EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
FUTURE_TOLERANCE = timedelta(minutes=15)

ZONE_ABBREVIATIONS = {
    "WIB": 7 * 3600,
    "WITA": 8 * 3600,
    "WIT": 9 * 3600,
    "UTC": 0,
    "GMT": 0,
    "Z": 0,
    "MYT": 8 * 3600,
    "SGT": 8 * 3600,
    "ICT": 7 * 3600,
    "JST": 9 * 3600,
    "KST": 9 * 3600,
    "EST": -5 * 3600,
    "EDT": -4 * 3600,
    "CET": 3600,
    "CEST": 2 * 3600,
    "BST": 3600,
}

_INDONESIAN_MONTHS = {
    "januari": "January", "februari": "February", "pebruari": "February", "maret": "March",
    "april": "April", "mei": "May", "juni": "June", "juli": "July", "agustus": "August",
    "september": "September", "oktober": "October", "nopember": "November", "november": "November",
    "desember": "December", "agu": "Aug", "okt": "Oct", "des": "Dec", "peb": "Feb",
}  # fmt: skip
_INDONESIAN_DAYS = re.compile(r"\b(senin|selasa|rabu|kamis|jumat|jum'at|sabtu|minggu|ahad)\b,?", re.I)
_MONTH_WORD = re.compile(r"\b(" + "|".join(_INDONESIAN_MONTHS) + r")\b", re.I)
_PUKUL = re.compile(r"\b(pukul|jam)\b", re.I)


def _translate(text: str) -> str:
    text = _INDONESIAN_DAYS.sub("", text)
    text = _PUKUL.sub("", text)
    return _MONTH_WORD.sub(lambda m: _INDONESIAN_MONTHS[m[1].lower()], text)


def sane(value: datetime | None, now: datetime | None = None) -> datetime | None:
    """The value if it is aware and plausible, else None."""
    if value is None or value.tzinfo is None:
        return None
    now = now or datetime.now(UTC)
    if value < EARLIEST or value > now + FUTURE_TOLERANCE:
        return None
    return value


def parse_datetime(text: str, default_tz: tzinfo | str | None = None, now: datetime | None = None) -> datetime | None:
    """Parse `text` into an aware, sane datetime, or None when unknown."""
    text = (text or "").strip()
    if not text or len(text) > 200:
        return None
    if isinstance(default_tz, str):
        default_tz = ZoneInfo(default_tz)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            value = dateutil_parser.parse(_translate(text), tzinfos=ZONE_ABBREVIATIONS, dayfirst=True, fuzzy=True)
        except (ValueError, OverflowError, TypeError):
            return None
    if value.tzinfo is None:
        if default_tz is None:
            return None
        value = value.replace(tzinfo=default_tz)
    return sane(value, now)
