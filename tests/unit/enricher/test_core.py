"""Ring 1 (pure): `Enricher` one article at a time and many at once."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from pantau.enricher import core
from pantau.enricher.core import Enricher
from pantau.enricher.fingerprint import MemoryStoryIndex
from pantau.enricher.terms import TermMatcher, WatchedTerm

WHEN = datetime(2026, 11, 26, tzinfo=UTC)


def _enricher() -> Enricher:
    return Enricher(TermMatcher([WatchedTerm("amunisi")]), MemoryStoryIndex())


@pytest.fixture()
def articles(contracts) -> list[dict]:
    """The raw examples (Indonesian, English and others), each also cut to its first paragraphs and to its title
    alone, under ids of their own: a batch of long, short and empty Indonesian and other articles."""
    out = []
    for k, path in enumerate(contracts.examples("article-raw", 1)):
        article = json.loads(path.read_text(encoding="utf-8"))
        out.append(dict(article, id=f"{3 * k:064x}"))
        out.append(dict(article, id=f"{3 * k + 1:064x}", text=article.get("text", "")[:400]))
        out.append(dict(article, id=f"{3 * k + 2:064x}", text=""))
    languages = {_enricher().enrich(a, WHEN)["language"]["code"] for a in out}
    assert {"id", "en"} <= languages  # both the model and the English rules are in the batch
    return out


def test_many_at_once_give_what_each_gives_alone(articles):
    one_by_one = _enricher()
    alone = [one_by_one.enrich(a, WHEN) for a in articles]
    assert _enricher().enrich_many([(a, WHEN) for a in articles]) == alone
    assert sum(len(e["entities"]) for e in alone) > 20


def test_an_article_whose_entities_fail_fails_alone(articles, monkeypatch):
    find = core.find_entities_many

    def failing(items):
        if any(title == "BOOM" for title, _, _ in items):
            raise ValueError("the model choked")
        return find(items)

    monkeypatch.setattr(core, "find_entities_many", failing)
    batch = [*articles[:4], dict(articles[0], id="f" * 64, title="BOOM"), *articles[4:]]
    results = _enricher().enrich_many([(a, WHEN) for a in batch])
    assert [type(r).__name__ for r in results].count("ValueError") == 1 and isinstance(results[4], ValueError)
    alone = _enricher()
    assert [r for r in results if isinstance(r, dict)] == [alone.enrich(a, WHEN) for a in articles]
    with pytest.raises(ValueError, match="choked"):
        _enricher().enrich(batch[4], WHEN)


def test_complete_before_entities_is_a_bug_not_an_article(articles):
    enricher = _enricher()
    with pytest.raises(RuntimeError):
        enricher.complete(enricher.prepare(articles[0]), WHEN)
