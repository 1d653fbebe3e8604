"""The demo newsroom behind `make run`: distinct stories (a spike counts stories, and near-duplicates
collapse into one), a surge from several outlets, a feed per outlet (a source each)."""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from pantau.demo import newsite
from pantau.demo.site import NewsSite
from pantau.enricher.fingerprint import MAX_DISTANCE, distance, simhash

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def test_surge_stories_are_distinct_stories_from_five_outlets():
    surge = [newsite.newsroom_article(100 + i, NOW, surge=True) for i in range(20)]
    hashes = [simhash(a.title + "\n" + "\n".join(a.paragraphs)) for a in surge]
    near = sum(1 for i in range(20) for j in range(i) if distance(hashes[i], hashes[j]) <= MAX_DISTANCE)
    assert near <= 5  # of 190 pairs: nearly every surge article is a story of its own
    assert len({a.outlet for a in surge}) == 5
    assert all("amunisi" in (a.title + " ".join(a.paragraphs)).lower() for a in surge)


def test_background_stories_never_mention_the_surge_term():
    background = [newsite.newsroom_article(i, NOW) for i in range(40)]
    assert not any("amunisi" in (a.title + " ".join(a.paragraphs)).lower() for a in background)
    assert len({a.path for a in background}) == 40


def test_the_background_has_stories_for_the_kim_jong_un_realtime_subscription():
    import yaml

    from pantau.alerter.query import ArticleView, parse_query
    from pantau.enricher.stems import stem_text

    subs = yaml.safe_load((Path(__file__).resolve().parents[2] / "deploy/subscriptions/demo.yaml").read_text())
    query = parse_query(next(s["query"] for s in subs if s["id"] == "demo-kim-realtime"))
    stories = [newsite.newsroom_article(i, NOW) for i in range(10)]
    matching = []
    for story in stories:
        text = "\n".join(story.paragraphs)
        stems = {"title": stem_text(story.title, "id"), "text": stem_text(text, "id")}
        view = ArticleView.of({"title": story.title, "text": text, "language": {"code": "id"}, "stems": stems})
        if query.matches(view):
            matching.append(story)
    assert 1 <= len(matching) <= 3  # a few of every ten: the demo shows real-time matches, not a flood


def test_each_outlet_has_its_own_feed():
    with NewsSite(0) as site:
        site.add(newsite.newsroom_article(0, NOW))  # outlet 0
        site.add(newsite.newsroom_article(1, NOW))  # outlet 1
        first = urllib.request.urlopen(f"{site.base}/outlet/{newsite.OUTLETS[0]}/feed", timeout=5).read().decode()
        second = urllib.request.urlopen(f"{site.base}/outlet/{newsite.OUTLETS[1]}/feed", timeout=5).read().decode()
    assert "berita-" in first and first.count("<item>") == 1
    assert second.count("<item>") == 1 and first != second
