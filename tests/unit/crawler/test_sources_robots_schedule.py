from __future__ import annotations

from pathlib import Path

import pytest

from pantau.crawler.robots import MAX_ROBOTS_BYTES, rules_from_response
from pantau.crawler.schedule import error_interval, next_interval
from pantau.crawler.sources import SourcesError, load_sources, parse_sources
from pantau.crawler.urls import BadUrl, article_id, normalise

REPO = Path(__file__).resolve().parents[3]


def test_shipped_sources_files_load():
    sample = load_sources(REPO / "deploy/sources/sources.yaml")
    ids = {s.id for s in sample.sources}
    assert {"kompas", "kompastv", "detik", "antara", "tempo", "cnnindonesia"} <= ids
    assert any(s.country != "ID" for s in sample.sources)
    load_sources(REPO / "deploy/sources/demo.yaml")


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("sources: []", "sources: List should have at least 1 item"),
        ("sources:\n  - {id: Bad, name: x, homepage: 'https://x', entry_points: [{kind: feed, url: 'https://x/f'}]}",
         "sources[0] (Bad).id"),
        ("sources:\n  - {id: a, name: x, homepage: 'https://x', entry_points: [{kind: feed}]}",
         "sources[0] (a).entry_points[0]: Value error, a feed entry point needs an http(s) `url`"),
        ("sources:\n  - {id: a, name: x, homepage: 'https://x', timezone: Mars/Base,"
         " entry_points: [{kind: warc, path: a.warc}]}",
         "unknown time zone 'Mars/Base'"),
        ("sources:\n  - {id: a, name: x, homepage: 'https://x', entry_points: [{kind: rss, url: 'https://x'}]}",
         "sources[0] (a).entry_points[0].kind"),
        ("sources:\n  - {id: a, name: x, homepage: 'https://x', colour: red, entry_points: [{kind: jsonl, path: a}]}",
         "colour: Extra inputs are not permitted"),
        ("sources: [\n", "not valid YAML"),
    ],
)  # fmt: skip
def test_invalid_sources_name_file_entry_and_field(yaml_text, message):
    with pytest.raises(SourcesError) as caught:
        parse_sources(yaml_text, "sources.yaml")
    assert str(caught.value).startswith("sources.yaml")
    assert message in str(caught.value)


def test_robots_per_rfc_9309():
    parsed = rules_from_response(200, b"User-agent: *\nDisallow: /private/\nAllow: /private/ok\n", 0, 600)
    assert parsed.allows("https://x/news/a", "PantauBot")
    assert not parsed.allows("https://x/private/a", "PantauBot")
    assert parsed.allows("https://x/private/ok", "PantauBot")  # longest match wins
    assert rules_from_response(404, b"", 0, 600).allows("https://x/private/a", "PantauBot")
    unreachable = rules_from_response(503, b"", 0, 600)
    assert not unreachable.allows("https://x/news/a", "PantauBot") and unreachable.ttl_s == 600
    assert not rules_from_response(None, b"", 0, 600).allows("https://x/", "PantauBot")
    assert rules_from_response(200, b"", 0, 600).ttl_s <= 24 * 3600


def test_robots_beyond_the_size_cap_is_cut_not_read_whole():
    body = b"User-agent: *\nDisallow: /a\n" + b"#" * (MAX_ROBOTS_BYTES * 2) + b"\nDisallow: /b\n"
    rules = rules_from_response(200, body, 0, 600)
    assert not rules.allows("https://x/a", "PantauBot") and rules.allows("https://x/b", "PantauBot")


def test_crawl_delay_is_capped():
    rules = rules_from_response(200, b"User-agent: *\nCrawl-delay: 5000\n", 0, 600)
    assert rules.crawl_delay("PantauBot") == 60.0


def test_adaptive_interval_stays_in_bounds():
    assert next_interval(100, 3, 60, 3600) == 60
    assert next_interval(100, 0, 60, 3600) == 150
    assert next_interval(3000, 0, 60, 3600) == 3600
    assert [error_interval(n, 60, 600) for n in range(6)] == [60, 120, 240, 480, 600, 600]


def test_urls_normalise_to_one_id():
    a = "HTTPS://www.Kompas.tv/a/b?utm_source=rss&fbclid=1#top"
    assert normalise(a) == "https://www.kompas.tv/a/b"
    assert article_id(a) == article_id("https://www.kompas.tv/a/b?utm_medium=social")
    with pytest.raises(BadUrl):
        normalise("javascript:alert(1)")
