"""From a Kafka message to the Elasticsearch document the templates in schemas/elasticsearch/ map.
Pure: no Kafka, no Elasticsearch.

Every document goes to the monthly index of a date that never changes for it (an article's first
sighting, an incident's first detection), so a later revision lands on the same document; its id is
the article id (the incident id for alerts) and its external version the revision, so a replay or an
older revision is refused by Elasticsearch as a conflict instead of doubling or overwriting."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pantau.common.indices import monthly_index
from pantau.common.times import parse_timestamp

ENTITY_FIELDS = {"PER": "people", "ORG": "organisations", "LOC": "places"}


@dataclass(frozen=True)
class IndexAction:
    index: str
    id: str
    version: int
    source: dict[str, Any]


def _month_of(value: str) -> datetime:
    return parse_timestamp(value)


def _entity_fields(entities: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Canonical names by type, and ids, in one pass (once per document: the indexer's hot path)."""
    names: dict[str, set[str]] = {kind: set() for kind in ENTITY_FIELDS}
    ids = set()
    for entity in entities:
        names[entity["type"]].add(entity["name"])
        ids.add(entity["id"])
    return {field: sorted(names[kind]) for kind, field in ENTITY_FIELDS.items()} | {"entity_ids": sorted(ids)}


def article_action(enriched: dict[str, Any], prefix: str, indexed_at: datetime) -> IndexAction:
    source = enriched["source"]
    first_seen = enriched.get("first_seen_at") or enriched["crawled_at"]
    entities = enriched.get("canonical_entities") or []
    doc: dict[str, Any] = {
        "id": enriched["id"],
        "url": enriched["url"],
        "canonical_url": enriched["canonical_url"],
        "source_id": source["id"],
        "source_name": source.get("name") or source["id"],
        "domain": source["domain"],
        "country": source.get("country"),
        "title": enriched["title"],
        "text": enriched["text"],
        "title_stems": enriched["stems"]["title"],
        "text_stems": enriched["stems"]["text"],
        "stemmer": enriched["stems"].get("stemmer"),
        "authors": enriched.get("authors") or [],
        "section": enriched.get("section"),
        "tags": enriched.get("tags") or [],
        "image_url": enriched.get("image_url"),
        "language": enriched["language"]["code"],
        "language_probability": enriched["language"]["probability"],
        "language_hint": enriched.get("language_hint"),
        **_entity_fields(entities),
        "mentions": sorted({m["text"] for m in enriched.get("entities") or []}),
        "terms": sorted({t["term"] for t in enriched.get("terms") or []}),
        "story_id": enriched["story"]["id"],
        "fingerprint": enriched["story"]["fingerprint"],
        "revision": enriched["revision"],
        "content_hash": enriched["content_hash"],
        "backfill": enriched["backfill"],
        "published_at": enriched.get("published_at"),
        "published_at_source": enriched.get("published_at_source"),
        "updated_at": enriched.get("updated_at"),
        "crawled_at": enriched["crawled_at"],
        "first_seen_at": first_seen,
        "enriched_at": enriched["enriched_at"],
        "indexed_at": indexed_at.isoformat(),
        # What Kibana's time picker filters on: when the news was published, else when first seen.
        "timestamp": enriched.get("published_at") or first_seen,
    }
    doc = {k: v for k, v in doc.items() if v is not None}
    return IndexAction(
        monthly_index(prefix, "articles", _month_of(first_seen)), enriched["id"], enriched["revision"], doc
    )


def alert_action(alert: dict[str, Any], prefix: str, indexed_at: datetime) -> IndexAction:
    """One document per alert revision (id `incident:revision`, as notified), in the month it was
    detected: the alerts table shows an incident's history; group by incident_id for its latest."""
    window = alert.get("window") or {}
    observed = alert["observed"]
    tops = alert.get("top_articles") or []
    doc: dict[str, Any] = {
        "id": alert["id"],
        "incident_id": alert["incident_id"],
        "revision": alert["revision"],
        "kind": alert["kind"],
        "state": alert["state"],
        "watch_type": alert["watch"]["type"],
        "watch_key": alert["watch"]["key"],
        "query": alert["watch"].get("query"),
        "label": alert["watch"].get("label"),
        "related": alert.get("related") or [],
        "subscription_ids": alert.get("subscription_ids") or [],
        "detected_at": alert["detected_at"],
        "window_start": window.get("start"),
        "window_end": window.get("end"),
        "window_seconds": window.get("seconds"),
        "observed_stories": observed["stories"],
        "observed_articles": observed.get("articles"),
        "observed_sources": observed.get("sources"),
        "expected": alert.get("expected"),
        "score": alert.get("score"),
        "sources": alert.get("sources") or [],
        "top_article_ids": [a["id"] for a in tops if a.get("id")],
        "top_article_titles": [a["title"] for a in tops if a.get("title")],
        "kibana_url": alert.get("kibana_url"),
        "indexed_at": indexed_at.isoformat(),
        "timestamp": alert["detected_at"],
    }
    doc = {k: v for k, v in doc.items() if v is not None}
    month = _month_of(alert["detected_at"])
    return IndexAction(monthly_index(prefix, "alerts", month), alert["id"], alert["revision"], doc)
