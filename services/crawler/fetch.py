"""The guarded, polite HTTP client every crawler request goes through (robots.txt included).

Contract of `GuardedClient.fetch(url)`:
- every hop (≤ max_redirects) is checked by the egress guard twice: the URL's host when it is an
  address literal, and every address DNS returns for a name (the connection goes to an address
  that was checked: the resolver hands aiohttp only those);
- per-host politeness (minimum delay, at most N in flight) and a global bound; 429/503 push the
  host back by Retry-After (capped) and raise `HostBackoff`;
- limits: total time per request (a 1-byte-per-second server is cut off), declared and decoded
  body size (compression bombs stop at the cap; we decompress ourselves, chunk by chunk, with an
  output bound), content types;
- raises `FetchRefused` (with an `outcome` label for the disposition metric) instead of returning
  anything partial. Returns a `Response` with the decoded body.
"""

from __future__ import annotations

import asyncio
import socket
import time
import zlib
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import brotli
from aiohttp.abc import AbstractResolver
from multidict import CIMultiDictProxy

from pantau.crawler.guard import EgressBlocked, check_url, refusal
from pantau.crawler.urls import absolute, host_of

REDIRECTS = {301, 302, 303, 307, 308}
RETRY_LATER = {429, 503}


class FetchRefused(Exception):
    """The fetch was refused or failed; `outcome` is the disposition label."""

    outcome = "http_error"

    def __init__(self, message: str, outcome: str | None = None, status: int | None = None):
        super().__init__(message)
        self.status = status
        if outcome:
            self.outcome = outcome


class EgressRefused(FetchRefused):
    outcome = "egress_blocked"


class TooLarge(FetchRefused):
    outcome = "too_large"


class TimedOut(FetchRefused):
    outcome = "timeout"


class RobotsBlocked(FetchRefused):
    outcome = "robots_blocked"


class HostBackoff(FetchRefused):
    """The host asked us to come back later (429/503); retry after `retry_after_s`."""

    outcome = "http_error"

    def __init__(self, message: str, retry_after_s: float, status: int | None = None):
        super().__init__(message, status=status)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class FetchSettings:
    user_agent: str = "PantauBot/0.1 (+https://github.com/pantau/pantau; news monitoring)"
    allow_loopback: bool = False
    # Host names (exact) whose addresses are exempt from the guard: internal sources an operator
    # names on purpose (the compose demo). Address literals are never exempt.
    internal_hosts: tuple[str, ...] = ()
    max_body_bytes: int = 10 * 1024 * 1024
    total_timeout_s: float = 30.0
    connect_timeout_s: float = 10.0
    max_redirects: int = 5
    per_host_concurrency: int = 2
    per_host_delay_s: float = 1.0
    global_concurrency: int = 32
    max_retry_after_s: float = 3600.0
    content_types: tuple[str, ...] = (
        "text/html", "application/xhtml+xml", "application/xml", "text/xml", "application/rss+xml",
        "application/atom+xml", "application/rdf+xml", "application/x-gzip", "application/gzip",
        "application/octet-stream", "text/plain", "application/json",
    )  # fmt: skip


@dataclass
class Response:
    url: str  # after redirects
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed_s: float
    redirects: list[str] = field(default_factory=list)

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class GuardedResolver(AbstractResolver):
    """Resolves names with the system resolver and refuses the name unless every address is allowed."""

    def __init__(self, allow_loopback: bool, internal_hosts: tuple[str, ...] = ()):
        self.allow_loopback = allow_loopback
        self.internal_hosts = {h.lower() for h in internal_hosts}

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_UNSPEC) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, family=family)
        if not infos:
            raise EgressBlocked(f"{host} does not resolve")
        for *_, sockaddr in infos:
            reason = None if host.lower() in self.internal_hosts else refusal(sockaddr[0], self.allow_loopback)
            if reason:
                raise EgressBlocked(f"{host} resolves to {reason}")
        return [
            {"hostname": host, "host": sockaddr[0], "port": port, "family": fam, "proto": proto,
             "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV}
            for fam, _, proto, _, sockaddr in infos
        ]  # fmt: skip

    async def close(self) -> None:
        pass


class _Host:
    def __init__(self, concurrency: int):
        self.slots = asyncio.Semaphore(concurrency)
        self.next_at = 0.0
        self.lock = asyncio.Lock()


class Politeness:
    """Per-host pacing: a minimum delay between request starts, at most N in flight, and a
    back-off window set by 429/503. Pure asyncio, no I/O."""

    def __init__(self, per_host_concurrency: int, delay_s: float):
        self.per_host_concurrency = per_host_concurrency
        self.delay_s = delay_s
        self._hosts: dict[str, _Host] = {}
        self.crawl_delays: dict[str, float] = {}

    def _host(self, host: str) -> _Host:
        if host not in self._hosts:
            self._hosts[host] = _Host(self.per_host_concurrency)
        return self._hosts[host]

    def backoff(self, host: str, seconds: float) -> None:
        h = self._host(host)
        h.next_at = max(h.next_at, time.monotonic() + seconds)

    def blocked_for(self, host: str) -> float:
        return max(0.0, self._host(host).next_at - time.monotonic())

    async def acquire(self, host: str) -> None:
        h = self._host(host)
        await h.slots.acquire()
        async with h.lock:
            wait = h.next_at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            h.next_at = time.monotonic() + max(self.delay_s, self.crawl_delays.get(host, 0.0))

    def release(self, host: str) -> None:
        self._host(host).slots.release()


def retry_after_seconds(value: str | None, default: float) -> float:
    if not value:
        return default
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return default


class _Decoder:
    """Content-Encoding decoding with an output bound at every step (memory stays flat)."""

    def __init__(self, encoding: str, limit: int):
        self.limit = limit
        self.size = 0
        self.parts: list[bytes] = []
        encoding = encoding.strip().lower()
        if encoding in ("gzip", "x-gzip"):
            self.zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self.zlib = zlib.decompressobj()
        elif encoding == "br":
            self.zlib, self.brotli = None, brotli.Decompressor()
        elif encoding in ("", "identity"):
            self.zlib, self.brotli = None, None
        else:
            raise FetchRefused(f"unsupported Content-Encoding {encoding!r}")
        if encoding != "br":
            self.brotli = None

    def _take(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise TooLarge(f"body exceeds {self.limit} bytes after decoding")
        self.parts.append(data)

    def feed(self, chunk: bytes) -> None:
        if self.zlib is not None:
            data = chunk
            while data:
                self._take(self.zlib.decompress(data, self.limit - self.size + 1))
                data = self.zlib.unconsumed_tail
        elif self.brotli is not None:
            self._take(self.brotli.process(chunk, output_buffer_limit=self.limit - self.size + 1))
            while not self.brotli.can_accept_more_data():
                self._take(self.brotli.process(b"", output_buffer_limit=self.limit - self.size + 1))
        else:
            self._take(chunk)

    def result(self) -> bytes:
        if self.zlib is not None:
            self._take(self.zlib.flush())
        return b"".join(self.parts)


class GuardedClient:
    def __init__(self, settings: FetchSettings):
        self.settings = settings
        self.politeness = Politeness(settings.per_host_concurrency, settings.per_host_delay_s)
        self._global = asyncio.Semaphore(settings.global_concurrency)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> GuardedClient:
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(self.settings.allow_loopback, self.settings.internal_hosts),
            use_dns_cache=False,  # every connection re-resolves and re-checks (no DNS rebinding window)
            limit=self.settings.global_concurrency,
            ttl_dns_cache=None,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            headers={"User-Agent": self.settings.user_agent, "Accept-Encoding": "gzip, deflate, br"},
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.settings.connect_timeout_s),
        )
        return self

    async def __aexit__(self, *exc) -> None:
        if self._session is not None:
            await self._session.close()

    async def fetch(
        self, url: str, etag: str | None = None, last_modified: str | None = None, accept: str | None = None
    ) -> Response:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.settings.total_timeout_s):
                return await self._fetch(url, etag, last_modified, accept, started)
        except TimeoutError:
            raise TimedOut(f"no complete response within {self.settings.total_timeout_s}s") from None

    async def _fetch(self, url, etag, last_modified, accept, started) -> Response:
        assert self._session is not None, "use `async with GuardedClient(...)`"
        redirects: list[str] = []
        headers = {"Accept": accept or "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        for _ in range(self.settings.max_redirects + 1):
            try:
                check_url(url, self.settings.allow_loopback)
            except EgressBlocked as exc:
                raise EgressRefused(f"{url}: {exc}") from None
            host = host_of(url)
            wait = self.politeness.blocked_for(host)
            if wait > 60:
                raise HostBackoff(f"{host} asked us to wait {wait:.0f}s more", wait)
            await self.politeness.acquire(host)
            try:
                async with self._global:
                    response = await self._one_request(url, headers, host)
            except _Redirect as hop:  # follow it, checked again from the top
                redirects.append(url)
                url = hop.location
                continue
            finally:
                self.politeness.release(host)
            response.redirects = redirects
            response.elapsed_s = time.monotonic() - started
            return response
        raise FetchRefused(f"more than {self.settings.max_redirects} redirects")

    async def _one_request(self, url: str, headers: dict, host: str) -> Response:
        assert self._session is not None
        try:
            async with self._session.get(url, headers=headers, allow_redirects=False) as resp:
                if resp.status in REDIRECTS and "location" in resp.headers:
                    raise _Redirect(absolute(url, resp.headers["location"]))
                if resp.status in RETRY_LATER:
                    seconds = min(
                        retry_after_seconds(resp.headers.get("retry-after"), 60.0), self.settings.max_retry_after_s
                    )
                    self.politeness.backoff(host, seconds)
                    raise HostBackoff(
                        f"HTTP {resp.status} from {host}; retry after {seconds:.0f}s", seconds, resp.status
                    )
                if resp.status == 304:
                    return Response(str(resp.url), 304, _headers(resp.headers), b"", 0.0)
                if resp.status >= 400:
                    raise FetchRefused(f"HTTP {resp.status}", "http_error", resp.status)
                body = await self._read_body(resp)
                return Response(str(resp.url), resp.status, _headers(resp.headers), body, 0.0)
        except _Redirect:
            raise
        except EgressBlocked as exc:
            raise EgressRefused(f"{url}: {exc}") from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, EgressBlocked) or isinstance(exc.__cause__, EgressBlocked):
                raise EgressRefused(f"{url}: {exc.__cause__ or exc.os_error}") from None
            raise FetchRefused(f"cannot connect: {exc}", "http_error") from None
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise FetchRefused(f"{type(exc).__name__}: {exc}", "http_error") from None

    async def _read_body(self, resp: aiohttp.ClientResponse) -> bytes:
        limit = self.settings.max_body_bytes
        if resp.content_length is not None and resp.content_length > limit:
            raise TooLarge(f"Content-Length {resp.content_length} exceeds {limit} bytes")
        ctype = (resp.headers.get("content-type") or "").split(";")[0].strip().lower()
        if ctype and not any(ctype == allowed for allowed in self.settings.content_types):
            raise FetchRefused(f"content type {ctype!r} is not fetched", "http_error")
        decoder = _Decoder(resp.headers.get("content-encoding", ""), limit)
        raw = 0
        async for chunk in resp.content.iter_chunked(65536):
            raw += len(chunk)
            if raw > limit:
                raise TooLarge(f"body exceeds {limit} bytes on the wire")
            decoder.feed(chunk)
        return decoder.result()


class _Redirect(Exception):
    def __init__(self, location: str):
        self.location = location


def _headers(headers: CIMultiDictProxy) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}
