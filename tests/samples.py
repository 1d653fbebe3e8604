"""Sample messages for the real ring and the benchmarks, built from the contract examples."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime

from pantau.common.settings import TopicSettings


def enriched_articles(contracts, count: int, tag: str, seen_at: Callable[[int], str] | None = None) -> list[dict]:
    """`count` copies of the example enriched article, each with its own id (from `tag` and its
    number) and title, first seen (and crawled) at `seen_at(n)`, or now."""
    base = json.loads(next(iter(contracts.examples("article-enriched", 1))).read_text(encoding="utf-8"))
    out = []
    for i in range(count):
        article = copy.deepcopy(base)
        article["id"] = hashlib.sha256(f"{tag}-{i}".encode()).hexdigest()
        article["title"] = f"{base['title']} ({i})"
        article["first_seen_at"] = article["crawled_at"] = seen_at(i) if seen_at else datetime.now(UTC).isoformat()
        out.append(article)
    return out


def suffixed_topics(suffix: str) -> TopicSettings:
    """Every topic renamed with `suffix`, so runs never see each other's messages."""
    defaults = TopicSettings()
    return TopicSettings(**{field: f"{getattr(defaults, field)}.{suffix}" for field in topic_fields()})


def topic_fields() -> list[str]:
    return [field for field in TopicSettings.model_fields if field != "replication_factor"]


def topic_names(topics: TopicSettings) -> list[str]:
    return [getattr(topics, field) for field in topic_fields()]


def topic_env(topics: TopicSettings) -> dict[str, str]:
    """The PANTAU_TOPIC_* environment that makes a service process use `topics`."""
    return {f"PANTAU_TOPIC_{field.upper()}": getattr(topics, field) for field in topic_fields()}
