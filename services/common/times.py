"""RFC 3339 timestamps as the schemas accept them. Pure.

`datetime.fromisoformat` refuses two forms RFC 3339 (and so the schemas' `date-time`) allows: a
lowercase `t` or `z`, and a leap second (`23:59:60`). A message the schema accepted must not fail later
on its own timestamp, so every stage reads times through `parse_timestamp`."""

from __future__ import annotations

import re
from datetime import datetime

_LEAP_SECOND = re.compile(r"(?<=T\d\d:\d\d:)60")


def parse_timestamp(value: str) -> datetime:
    """The moment `value` names (a leap second is its last second before, :59). ValueError if it is none."""
    text = value.upper()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(_LEAP_SECOND.sub("59", text))
