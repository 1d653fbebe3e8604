"""Ring 2 (in-process): the guarded client against the demo site on loopback, hostile endpoints
included. Nothing here leaves loopback, even if the guard were broken: every URL names a loopback
spelling, and refused private or metadata addresses are only ever the *targets of redirects*, which
the guard checks before connecting (the literal check needs no socket)."""

from __future__ import annotations

import asyncio
import time
import tracemalloc

import pytest

from pantau.crawler.fetch import FetchRefused, FetchSettings, GuardedClient, HostBackoff
from pantau.crawler.robots import RobotsCache
from pantau.demo.site import NewsSite, bomb


@pytest.fixture(scope="module")
def site():
    with NewsSite(12) as running:
        yield running


def fetch(url: str, **settings):
    async def go():
        async with GuardedClient(FetchSettings(**{"allow_loopback": True, "per_host_delay_s": 0, **settings})) as c:
            return await c.fetch(url)

    return asyncio.run(go())


def refused(url: str, **settings) -> FetchRefused:
    with pytest.raises(FetchRefused) as caught:
        fetch(url, **settings)
    return caught.value


LOOPBACK_SPELLINGS = ["127.0.0.1", "127.1", "2130706433", "0177.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "localhost"]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
def test_without_the_allowance_no_loopback_spelling_reaches_the_server(site, host):
    before = site.total_hits
    error = refused(f"http://{host}:{site.port}/feed", allow_loopback=False)
    assert error.outcome == "egress_blocked"
    assert "loopback" in str(error)
    assert site.total_hits == before  # the server received nothing


def test_with_the_allowance_the_same_server_is_reached(site):
    before = site.hits["/feed"]
    assert fetch(f"{site.base}/feed").status == 200
    assert site.hits["/feed"] == before + 1  # so the counter above can see a request


@pytest.mark.parametrize("path", ["/redirect/private", "/redirect/metadata"])
def test_redirects_to_private_or_metadata_addresses_are_refused(site, path):
    error = refused(site.base + path)
    assert error.outcome == "egress_blocked"


def test_a_redirect_to_a_loopback_name_is_checked_again_at_resolution(site):
    assert fetch(site.base + "/redirect/loopback-name").status == 200  # allowance on: fine
    assert refused(site.base + "/redirect/loopback-name", allow_loopback=False).outcome == "egress_blocked"


def test_redirect_chains_up_to_five_hops_are_followed_and_loops_are_cut(site):
    response = fetch(site.base + "/redirect/chain/4")
    assert len(response.redirects) == 5 and response.status == 200
    assert "more than 5 redirects" in str(refused(site.base + "/redirect/chain/5"))
    before = site.hits["/redirect/loop"]
    refused(site.base + "/redirect/loop")
    assert site.hits["/redirect/loop"] - before == 6


@pytest.mark.parametrize("kind", ["gzip", "deflate", "brotli"])
def test_compression_bombs_stop_at_the_cap_and_memory_stays_flat(site, kind):
    cap = 2 * 1024 * 1024
    bomb(kind)  # the server (in this process) builds its bomb before we start measuring
    tracemalloc.start()
    try:
        error = refused(f"{site.base}/bomb/{kind}", max_body_bytes=cap)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.outcome == "too_large"
    assert peak < 8 * cap  # the bomb is 256 MiB decoded


def test_a_one_byte_per_second_server_is_cut_off(site):
    started = time.monotonic()
    error = refused(site.base + "/slow", total_timeout_s=1.5)
    assert error.outcome == "timeout"
    assert time.monotonic() - started < 10  # cut at the total limit, not after the 600 s body


def test_a_huge_content_length_is_refused_before_reading(site):
    assert refused(site.base + "/huge-length").outcome == "too_large"


def test_unwanted_content_types_are_refused(site):
    assert "content type 'image/png'" in str(refused(site.base + "/image.png"))


def test_429_backs_the_host_off_for_retry_after(site):
    async def go():
        async with GuardedClient(FetchSettings(allow_loopback=True, per_host_delay_s=0)) as client:
            with pytest.raises(HostBackoff) as caught:
                await client.fetch(site.base + "/too-many-requests")
            assert caught.value.retry_after_s == 2
            started = time.monotonic()
            await client.fetch(site.base + "/feed")  # waits out the back-off window
            return time.monotonic() - started

    assert asyncio.run(go()) >= 1.5


def test_politeness_spaces_requests_to_one_host(site):
    async def go():
        async with GuardedClient(FetchSettings(allow_loopback=True, per_host_delay_s=0.3)) as client:
            started = time.monotonic()
            await asyncio.gather(*(client.fetch(site.base + "/feed") for _ in range(4)))
            return time.monotonic() - started

    assert asyncio.run(go()) >= 0.9  # three gaps of at least 0.3 s


@pytest.mark.parametrize(
    ("robots", "delay", "allowed_news", "allowed_private"),
    [
        ((200, "User-agent: *\nDisallow: /private/\n"), 0, True, False),
        ((404, "not here"), 0, True, True),
        ((500, "oops"), 0, False, False),
        ((200, "User-agent: *\nDisallow: /\n"), 0, False, False),
        ((200, "User-agent: *\nDisallow:\n"), 3, False, False),  # robots.txt times out: unreachable
    ],
)
def test_robots_txt_statuses(site, robots, delay, allowed_news, allowed_private):
    site.robots, site.robots_delay_s = robots, delay
    try:

        async def go():
            async with GuardedClient(FetchSettings(allow_loopback=True, per_host_delay_s=0, total_timeout_s=1)) as c:
                cache = RobotsCache(c, "PantauBot")
                return (
                    await cache.allowed(site.base + "/internasional/2026/11/20/some-news-story-here"),
                    await cache.allowed(site.base + "/private/secret-article-that-robots-forbid"),
                )

        assert asyncio.run(go()) == (allowed_news, allowed_private)
    finally:
        site.robots, site.robots_delay_s = (200, "User-agent: *\nDisallow: /private/\n"), 0


def test_internal_hosts_are_exempt_by_name_only(site):
    # `localhost` named as an internal source passes the resolver check without the loopback allowance...
    assert (
        fetch(f"http://localhost:{site.port}/feed", allow_loopback=False, internal_hosts=("localhost",)).status == 200
    )
    # ...while the address literal behind it stays refused.
    error = refused(f"http://127.0.0.1:{site.port}/feed", allow_loopback=False, internal_hosts=("localhost",))
    assert error.outcome == "egress_blocked"
