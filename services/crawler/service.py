"""The crawler service: composition root and loop.

    poll due entry points ─► links ─► frontier (SQLite)
    due frontier URLs ─► robots ─► guarded fetch ─► extract ─► build article ─► publish (pending → acked)

Steps, in order, for each article URL: robots.txt allows it; the guarded client fetches it
(egress guard, politeness, limits); trafilatura extracts it; the revision rule decides between
duplicate and publish; Kafka acknowledges; the frontier entry closes. Exactly one disposition is
counted per URL. Shutdown: the flag stops new work, in-flight fetches finish, pending sends are
flushed, the producer and the state file are closed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from pantau.common.errors import InvalidMessage
from pantau.common.health import Health
from pantau.common.metrics import (
    CRAWLER_FETCH_BYTES,
    CRAWLER_FETCH_SECONDS,
    CRAWLER_FRONTIER,
    CRAWLER_SOURCE_LAST_NEW_ARTICLE,
    CRAWLER_SOURCE_LAST_SUCCESS,
    CRAWLER_URLS,
)
from pantau.common.settings import CrawlerSettings
from pantau.common.shutdown import ShutdownFlag
from pantau.crawler.article import build_article
from pantau.crawler.extract import ExtractFailed, extract
from pantau.crawler.fetch import FetchRefused, FetchSettings, GuardedClient, HostBackoff
from pantau.crawler.links import Link, LinkError, extract_links
from pantau.crawler.publisher import Publisher
from pantau.crawler.robots import RobotsCache
from pantau.crawler.schedule import error_interval, next_interval
from pantau.crawler.sources import EntryPoint, Source, SourcesFile
from pantau.crawler.state import CrawlState, FrontierItem
from pantau.crawler.urls import article_id
from pantau.crawler.warc import WarcOutput

log = logging.getLogger(__name__)

RETRYABLE = {"timeout", "http_error"}


def fetch_settings(settings: CrawlerSettings) -> FetchSettings:
    return FetchSettings(
        user_agent=settings.user_agent,
        allow_loopback=settings.allow_loopback,
        internal_hosts=tuple(settings.internal_hosts),
        max_body_bytes=settings.max_body_bytes,
        total_timeout_s=settings.total_timeout_s,
        per_host_concurrency=settings.per_host_concurrency,
        per_host_delay_s=settings.per_host_delay_s,
        global_concurrency=settings.global_concurrency,
    )


@dataclass
class RunStats:
    polls: int = 0
    published: int = 0


class Crawler:
    def __init__(
        self,
        sources: SourcesFile,
        settings: CrawlerSettings,
        client: GuardedClient,
        state: CrawlState,
        publisher: Publisher,
        health: Health | None = None,
        warc: WarcOutput | None = None,
    ):
        self.sources = {s.id: s for s in sources.sources}
        self.entry_points = [(s, ep) for s in sources.sources for ep in s.entry_points if ep.url]
        self.settings = settings
        self.client = client
        self.robots = RobotsCache(client, settings.user_agent)
        self.state = state
        self.publisher = publisher
        self.health = health
        self.warc = warc
        self.stats = RunStats()
        self._in_flight: set[str] = set()
        self._tasks: dict[asyncio.Task, str] = {}
        self._publishing: set[str] = set()  # keys whose article is being sent: never cancelled

    # ---------------------------------------------------------------- entry points
    async def poll(self, source: Source, ep: EntryPoint) -> int:
        """Fetch one entry point, add its links to the frontier; returns how many were new."""
        entry = self.state.entry(ep.key, source.id, ep.min_interval_s)
        now = time.time()
        entry.last_poll = now
        new = 0
        try:
            if not await self.robots.allowed(ep.url):
                raise FetchRefused(f"robots.txt disallows {ep.url}", "robots_blocked")
            started = time.monotonic()
            response = await self.client.fetch(ep.url, etag=entry.etag, last_modified=entry.last_modified)
            CRAWLER_FETCH_SECONDS.labels("entry_point").observe(time.monotonic() - started)
            entry.last_success = now
            CRAWLER_SOURCE_LAST_SUCCESS.labels(source.id).set(now)
            if response.not_modified:
                CRAWLER_URLS.labels("not_modified").inc()
            else:
                CRAWLER_URLS.labels("fetched").inc()
                CRAWLER_FETCH_BYTES.labels("entry_point").observe(len(response.body))
                entry.etag = response.headers.get("etag")
                entry.last_modified = response.headers.get("last-modified")
                for link in await self._links(response.body, response.url, response.content_type, source):
                    published = link.published.isoformat() if link.published else None
                    changed = max(filter(None, (link.updated, link.published)), default=None)
                    new += self.state.discover(
                        link.url, source.id, ep.key, link.title, published, changed.isoformat() if changed else None
                    )
            if new:
                entry.last_new = now
            entry.error_streak, entry.last_error = 0, None
            entry.interval_s = next_interval(entry.interval_s, new, ep.min_interval_s, ep.max_interval_s)
        except (FetchRefused, LinkError) as exc:
            CRAWLER_URLS.labels(getattr(exc, "outcome", "http_error")).inc()
            entry.error_streak += 1
            entry.last_error = str(exc)[:500]
            entry.interval_s = error_interval(entry.error_streak, ep.min_interval_s, ep.max_interval_s)
            log.warning("entry point failed", extra={"source": source.id, "url": ep.url, "error": entry.last_error})
        entry.next_poll = now + entry.interval_s
        self.state.save_entry(entry)
        self.stats.polls += 1
        return new

    async def _links(self, body: bytes, url: str, content_type: str | None, source: Source) -> list[Link]:
        found = extract_links(body, url, content_type)
        if found.kind != "sitemapindex":
            return found.links
        children = sorted(found.links, key=lambda lk: lk.published or datetime.min.replace(tzinfo=UTC), reverse=True)
        links: list[Link] = []
        for child in children[: self.settings.max_sitemap_children]:
            try:
                response = await self.client.fetch(child.url)
                links += extract_links(response.body, response.url, response.content_type).links
            except (FetchRefused, LinkError) as exc:
                log.warning("child sitemap failed", extra={"source": source.id, "url": child.url, "error": str(exc)})
        return links

    # ---------------------------------------------------------------- articles
    async def fetch_article(self, item: FrontierItem) -> str:
        """Fetch, extract and publish one frontier URL; returns its disposition."""
        source = self.sources.get(item.source_id)
        if source is None:
            self.state.finish(item.url, "unknown_source")
            return "unknown_source"
        try:
            rules = await self.robots.rules_for(item.url)
            if not rules.allows(item.url, self.settings.user_agent):
                if rules.parser is None:  # robots.txt unreachable: come back, do not give up
                    raise HostBackoff(f"robots.txt unreachable ({rules.reason})", self.robots.unreachable_retry_s)
                raise FetchRefused("robots.txt disallows it", "robots_blocked")
            started = time.monotonic()
            response = await self.client.fetch(item.url)
            CRAWLER_FETCH_SECONDS.labels("article").observe(time.monotonic() - started)
            CRAWLER_FETCH_BYTES.labels("article").observe(len(response.body))
            record_id = None
            if self.warc is not None:
                record_id = self.warc.write_response(response.url, response.status, response.headers, response.body)
            page = extract(response.body, response.url, response.content_type, source.timezone)
        except HostBackoff as exc:
            return self._retry(item, exc.outcome, exc.retry_after_s)
        except FetchRefused as exc:
            if exc.outcome in RETRYABLE and (exc.status is None or exc.status >= 500):
                return self._retry(item, exc.outcome, 30.0 * 2**item.attempts)
            return self._done(item, exc.outcome)
        except ExtractFailed as exc:
            log.info("extraction failed", extra={"url": item.url, "reason": str(exc)})
            return self._done(item, "extract_failed")

        link = Link(item.url, item.title, datetime.fromisoformat(item.published) if item.published else None)
        known = self.state.known(article_id(page.canonical_url))
        message = build_article(page, source, datetime.now(UTC), known, link, item.entry_point,
                                status=response.status, content_type=response.content_type,
                                warc_record_id=record_id)  # fmt: skip
        if message is None:
            return self._done(item, "duplicate")
        self._publishing.add(item.url)
        try:
            acknowledged = await self.publisher.publish(message, item.url)
        except InvalidMessage as exc:
            log.error("built an article its schema refuses", extra={"url": item.url, "error": str(exc)})
            return self._done(item, "extract_failed")
        finally:
            self._publishing.discard(item.url)
        if not acknowledged:
            return "pending"  # stays pending in the state; resent by the loop
        CRAWLER_URLS.labels("published").inc()
        CRAWLER_SOURCE_LAST_NEW_ARTICLE.labels(source.id).set(time.time())
        self.stats.published += 1
        return "published"

    def _done(self, item: FrontierItem, outcome: str) -> str:
        CRAWLER_URLS.labels(outcome).inc()
        self.state.finish(item.url, outcome)
        return outcome

    def _retry(self, item: FrontierItem, outcome: str, delay_s: float) -> str:
        if item.attempts + 1 >= self.settings.article_attempts:
            return self._done(item, outcome)
        self.state.retry_later(item.url, delay_s, outcome)
        return f"retry:{outcome}"

    # ---------------------------------------------------------------- the loop
    def _spawn(self, key: str, coro) -> None:
        self._in_flight.add(key)
        task = asyncio.create_task(coro)
        self._tasks[task] = key

        def forget(t: asyncio.Task) -> None:
            self._tasks.pop(t, None)
            self._in_flight.discard(key)
            if not t.cancelled() and t.exception() is not None:
                log.error("crawl task crashed", exc_info=t.exception(), extra={"key": key})

        task.add_done_callback(forget)

    async def run(self, shutdown: ShutdownFlag, until_idle: bool = False, idle_grace_s: float = 0.5) -> RunStats:
        """Crawl until shutdown is requested — or, with `until_idle`, until every entry point was polled
        once and nothing is left to fetch or send (the bounded-run seam for tests and batch use)."""
        await self.publisher.resend_pending()
        polled_once: set[str] = set()
        idle_since: float | None = None
        last_resend = time.monotonic()
        while not shutdown.requested:
            if self.health is not None:
                self.health.beat()
            now = time.time()
            for source, ep in self.entry_points:
                key = f"poll:{ep.key}"
                if key in self._in_flight:
                    continue
                if until_idle and ep.key in polled_once:
                    continue
                if self.state.entry(ep.key, source.id, ep.min_interval_s).next_poll <= now:
                    polled_once.add(ep.key)
                    self._spawn(key, self.poll(source, ep))
            capacity = self.settings.global_concurrency * 2 - len(self._tasks)
            if capacity > 0:
                for item in self.state.due(capacity + len(self._in_flight)):
                    if item.url not in self._in_flight and capacity > 0:
                        self._spawn(item.url, self.fetch_article(item))
                        capacity -= 1
            if time.monotonic() - last_resend > 10 and self.state.pending_count():
                last_resend = time.monotonic()
                await self.publisher.resend_pending()
            CRAWLER_FRONTIER.set(self.state.open_count())
            if until_idle:
                busy = (
                    self._tasks
                    or self.state.pending_count()
                    or (self.state.open_count() and (self.state.next_attempt_in() or 0) < 5)
                    or len(polled_once) < len(self.entry_points)
                )
                if busy:
                    idle_since = None
                elif idle_since is None:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > idle_grace_s:
                    break
            await asyncio.sleep(0.05)
        await self.drain()
        return self.stats

    async def drain(self) -> None:
        """Stop fetching — fetches and polls are cancelled (their frontier entries stay open for the
        next run) — but let every article already being sent get its acknowledgement, then try the
        pending ones once more. Never cancels a send: that would leave an acknowledged article
        recorded as pending, and publish it twice."""
        for task, key in list(self._tasks.items()):
            if key not in self._publishing:
                task.cancel()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.publisher.resend_pending()


async def run_service(
    sources: SourcesFile,
    settings: CrawlerSettings,
    producer,
    topic: str,
    codec,
    shutdown: ShutdownFlag,
    health: Health | None = None,
    until_idle: bool = False,
    renew_producer=None,
) -> RunStats:
    """Composition root: wires the client, state, publisher and WARC output, runs, closes in order.
    `renew_producer` builds a replacement producer (see Publisher)."""
    state = CrawlState(settings.state_file)
    warc = WarcOutput(settings.warc_dir, settings.warc_max_bytes) if settings.warc_dir else None
    publisher = Publisher(producer, topic, codec, state, renew=renew_producer)
    if health is not None:
        health.add_check("kafka", publisher.ready)
    try:
        async with GuardedClient(fetch_settings(settings)) as client:
            crawler = Crawler(sources, settings, client, state, publisher, health, warc)
            return await crawler.run(shutdown, until_idle=until_idle)
    finally:
        await asyncio.get_running_loop().run_in_executor(None, publisher.close_renewed, producer)
        if warc is not None:
            warc.close()
        state.close()
