"""Kibana Discover links for an alert: the matching articles in the alert's window. Pure.

Discover takes its state as rison in the URL (`_g` time range, `_a` query and filters); the
compiled Elasticsearch query goes in as a custom filter, so the link selects exactly what the
alerter counted (minus story de-duplication, which Discover does not do)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import prison


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def discover_url(base: str, data_view: str, es_query: dict[str, Any] | None, start: float, end: float,
                 label: str = "") -> str:  # fmt: skip
    """`base` is Kibana's public URL; `data_view` the id of the articles data view
    (deploy/kibana/pantau.ndjson)."""
    g = {"time": {"from": _iso(start), "to": _iso(end)}}
    a: dict[str, Any] = {"dataSource": {"dataViewId": data_view, "type": "dataView"},
                         "query": {"language": "kuery", "query": ""}, "sort": [["published_at", "desc"]]}  # fmt: skip
    if es_query is not None:
        a["filters"] = [{"meta": {"alias": label[:200] or None, "type": "custom", "index": data_view},
                         "query": es_query}]  # fmt: skip
    return (
        f"{base.rstrip('/')}/app/discover#/?_g={quote(prison.dumps(g), safe='():,!*')}"
        f"&_a={quote(prison.dumps(a), safe='():,!*')}"
    )
