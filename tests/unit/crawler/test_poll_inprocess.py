"""Ring 2 (in-process): polling entry points against the demo site — conditional GET, the adaptive
interval, and per-entry-point state that survives a restart. No Kafka is involved in polling."""

from __future__ import annotations

import asyncio

import pytest

from pantau.common.metrics import REGISTRY
from pantau.common.settings import CrawlerSettings
from pantau.crawler.fetch import GuardedClient
from pantau.crawler.service import Crawler, fetch_settings
from pantau.crawler.sources import parse_sources
from pantau.crawler.state import CrawlState
from pantau.demo.site import NewsSite


@pytest.fixture
def site():
    with NewsSite(12) as running:
        yield running


def not_modified_count() -> float:
    return REGISTRY.get_sample_value("pantau_crawler_urls_total", {"outcome": "not_modified"}) or 0


def poll_feed(site, state_file, times: int) -> list[int]:
    sources = parse_sources(
        f"sources:\n  - {{id: demo, name: Demo, homepage: '{site.base}', entry_points:"
        f" [{{kind: feed, url: '{site.base}/atom', min_interval_s: 10, max_interval_s: 100}}]}}\n"
    )
    settings = CrawlerSettings(allow_loopback=True, per_host_delay_s=0, state_file=state_file)

    async def go():
        state = CrawlState(state_file)
        try:
            async with GuardedClient(fetch_settings(settings)) as client:
                crawler = Crawler(sources, settings, client, state, publisher=None)
                source, ep = crawler.entry_points[0]
                return [await crawler.poll(source, ep) for _ in range(times)]
        finally:
            state.close()

    return asyncio.run(go())


def test_conditional_get_and_adaptive_interval_survive_a_restart(site, tmp_path):
    state_file = tmp_path / "state.sqlite"
    before = not_modified_count()
    assert poll_feed(site, state_file, 2) == [12, 0]  # the second poll: 304 Not Modified
    assert not_modified_count() == before + 1

    state = CrawlState(state_file)
    entry = state.entry(f"feed:{site.base}/atom", "demo", 10)
    assert entry.etag == f'"v{site.etag_version}"'
    assert entry.interval_s == 15  # 10 after new items (the minimum), then x1.5 after none
    assert state.open_count() == 12
    for item in state.due(100):
        state.finish(item.url, "published")  # as if all were fetched
    state.close()

    # A restart: the stored ETag is sent again, so the site answers 304 once more.
    assert poll_feed(site, state_file, 1) == [0]
    assert not_modified_count() == before + 2

    site.edit(sorted(site.articles)[0], "Paragraf baru.")  # the feed changes: a new ETag
    assert poll_feed(site, state_file, 1) == [1]  # the edited article is due again (newer <updated>)
    state = CrawlState(state_file)
    assert [item.url for item in state.due(100)] == [site.base + sorted(site.articles)[0]]
    state.close()
