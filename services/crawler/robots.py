"""robots.txt per RFC 9309, fetched through the same guarded client as everything else.

- 2xx: parse (Protego, which follows the RFC's longest-match rule and wildcards), at most 500 KiB
  read, as the RFC requires parsers to handle.
- 4xx (404 included): no rules, everything allowed.
- 5xx, timeouts, connection failures: the site is unreachable, so everything is disallowed, and we
  ask again after `unreachable_retry_s`.
- Results are cached per origin for at most 24 hours. Crawl-delay feeds the host's politeness.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from protego import Protego

from pantau.crawler.fetch import FetchRefused, GuardedClient, HostBackoff, TimedOut

MAX_ROBOTS_BYTES = 500 * 1024
MAX_CACHE_S = 24 * 3600
MAX_CRAWL_DELAY_S = 60.0


@dataclass
class RobotsRules:
    parser: Protego | None  # None: no usable rules
    allow_all: bool
    fetched_at: float
    ttl_s: float
    reason: str

    def allows(self, url: str, user_agent: str) -> bool:
        if self.parser is None:
            return self.allow_all
        return self.parser.can_fetch(url, user_agent)

    def crawl_delay(self, user_agent: str) -> float | None:
        if self.parser is None:
            return None
        delay = self.parser.crawl_delay(user_agent)
        return min(float(delay), MAX_CRAWL_DELAY_S) if delay else None


def rules_from_response(status: int | None, body: bytes, now: float, unreachable_retry_s: float) -> RobotsRules:
    """Pure: the RFC 9309 reading of a robots.txt fetch outcome (status None = unreachable)."""
    if status is None or status >= 500:
        return RobotsRules(None, False, now, unreachable_retry_s, f"unreachable ({status or 'no response'})")
    if 400 <= status < 500:
        return RobotsRules(None, True, now, MAX_CACHE_S, f"HTTP {status}: no rules")
    text = body[:MAX_ROBOTS_BYTES].decode("utf-8", "replace")
    return RobotsRules(Protego.parse(text), True, now, MAX_CACHE_S, "parsed")


class RobotsCache:
    def __init__(self, client: GuardedClient, user_agent: str, unreachable_retry_s: float = 600.0):
        self.client = client
        self.user_agent = user_agent
        self.unreachable_retry_s = unreachable_retry_s
        self._rules: dict[str, RobotsRules] = {}

    @staticmethod
    def origin(url: str) -> str:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}"

    async def rules_for(self, url: str) -> RobotsRules:
        origin = self.origin(url)
        cached = self._rules.get(origin)
        now = time.monotonic()
        if cached is not None and now - cached.fetched_at < cached.ttl_s:
            return cached
        try:
            response = await self.client.fetch(origin + "/robots.txt", accept="text/plain")
            rules = rules_from_response(response.status, response.body, now, self.unreachable_retry_s)
        except (TimedOut, HostBackoff):
            rules = rules_from_response(None, b"", now, self.unreachable_retry_s)
        except FetchRefused as exc:
            if exc.outcome == "egress_blocked":
                raise
            # 4xx: no rules; anything else (5xx, too large, connection failure): unreachable.
            rules = rules_from_response(exc.status, b"", now, self.unreachable_retry_s)
        delay = rules.crawl_delay(self.user_agent)
        if delay:
            self.client.politeness.crawl_delays[urlsplit(url).hostname or ""] = delay
        self._rules[origin] = rules
        return rules

    async def allowed(self, url: str) -> bool:
        return (await self.rules_for(url)).allows(url, self.user_agent)
