"""Digests: once an hour or once a day, what a subscription's query found in the period just ended.
Pure: periods, the Elasticsearch search body and the digest itself; the shell runs the search.

A digest is built as an alert of kind `digest` (deterministic id from the subscription, mode and
period start), so it travels the notifier's one path: grouping, the hourly cap, the delivery log that
keeps it from being told twice across restarts, signing, retries. Periods are counted by when Pantau
first saw an article (`first_seen_at`), so an article published long ago but found now is in today's
digest, and each article is in exactly one period. Daily periods start at midnight in the configured
time zone (a Jakarta desk reads its day in WIB). An empty period sends nothing."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

MODES = {"digest_hourly": "hourly", "digest_daily": "daily"}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _period_end_at_or_before(moment: datetime, mode: str, tz: ZoneInfo) -> datetime:
    local = moment.astimezone(tz)
    if mode == "digest_hourly":
        return local.replace(minute=0, second=0, microsecond=0)
    return datetime.combine(local.date(), time(0), tzinfo=tz)


def _previous(end: datetime, mode: str, tz: ZoneInfo) -> datetime:
    if mode == "digest_hourly":
        return (end.astimezone(UTC) - timedelta(hours=1)).astimezone(tz)
    return datetime.combine(end.date() - timedelta(days=1), time(0), tzinfo=tz)  # 23 or 25 h across DST


def periods_due(mode: str, now: datetime, tz: ZoneInfo, grace_s: float, max_age_s: float,
                not_before: datetime | None = None) -> list[tuple[datetime, datetime]]:  # fmt: skip
    """Completed periods [start, end), oldest first, that may be told now: ended at least `grace_s`
    ago (the indexer has caught up), not longer ago than `max_age_s`, and after `not_before` (a new
    subscription is not sent the digests of days before it existed)."""
    end = _period_end_at_or_before(now - timedelta(seconds=grace_s), mode, tz)
    oldest = now - timedelta(seconds=max_age_s)
    if not_before is not None:
        oldest = max(oldest, not_before)
    out = []
    while end > oldest:
        start = _previous(end, mode, tz)
        out.append((start, end))
        end = start
    return out[::-1]


def digest_id(sub_id: str, mode: str, start: datetime) -> str:
    digest = hashlib.sha256(f"{sub_id}\n{mode}\n{_iso(start)}".encode()).hexdigest()[:40]
    return f"digest-{digest}"


def digest_search(es_query: dict[str, Any], start: datetime, end: datetime, top: int) -> dict[str, Any]:
    """The period's matching articles: totals (articles, stories, sources) and the newest article of
    each of the `top` newest stories (syndicated copies collapse into one line)."""
    return {
        "query": {"bool": {"filter": [es_query, {"range": {"first_seen_at": {"gte": _iso(start), "lt": _iso(end)}}}]}},
        "collapse": {"field": "story_id"},
        "sort": [{"first_seen_at": "desc"}],
        "size": top,
        "track_total_hits": True,
        "aggs": {"stories": {"cardinality": {"field": "story_id"}}, "sources": {"cardinality": {"field": "source_id"}}},
        "_source": ["id", "title", "url", "source_name", "source_id", "published_at"],
    }


def digest_alert(sub: dict[str, Any], mode: str, start: datetime, end: datetime,
                 result: dict[str, Any]) -> dict[str, Any] | None:  # fmt: skip
    """The digest as an alert (schemas/json/alert.v1), or None when the period found nothing."""
    articles = result["hits"]["total"]["value"]
    if not articles:
        return None
    incident = digest_id(sub["id"], mode, start)
    tops = []
    for hit in result["hits"]["hits"]:
        doc = hit["_source"]
        ref = {"id": doc["id"], "title": doc.get("title") or "", "url": doc.get("url") or ""}
        if doc.get("source_name") or doc.get("source_id"):
            ref["source"] = doc.get("source_name") or doc["source_id"]
        if doc.get("published_at"):
            ref["published_at"] = doc["published_at"]
        tops.append(ref)
    aggs = result.get("aggregations") or {}
    return {
        "id": f"{incident}:1",
        "incident_id": incident,
        "revision": 1,
        "kind": "digest",
        "state": "firing",
        "watch": {
            "type": "query",
            "key": f"digest:{sub['id']}",
            "query": sub["query"],
            "label": (sub.get("name") or sub["query"])[:500],
        },
        "subscription_ids": [sub["id"]],
        "detected_at": _iso(end),
        "window": {"start": _iso(start), "end": _iso(end), "seconds": int((end - start).total_seconds())},
        "observed": {
            "stories": int(aggs.get("stories", {}).get("value", len(tops))),
            "articles": articles,
            "sources": int(aggs.get("sources", {}).get("value", 0)),
        },
        "top_articles": tops,
    }
