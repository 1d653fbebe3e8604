"""Sample messages for the real ring and the benchmarks, built from the contract examples."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime


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
