"""The demo news site on loopback, in a background thread, with hostile endpoints.

It counts every request it receives (`hits`), so guard tests can prove a refused request never
arrived. Articles can be added or edited while it runs (restart and revision tests).
"""

from __future__ import annotations

import asyncio
import gzip
import threading
import zlib
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from functools import cache

import brotli
from aiohttp import web

from pantau.demo import newsite

BOMB_BYTES = 256 * 1024 * 1024


@cache
def bomb(encoding: str) -> bytes:
    """256 MiB of zeros, compressed to well under a megabyte (computed once per test session)."""
    zeros = b"\0" * BOMB_BYTES
    if encoding == "gzip":
        return gzip.compress(zeros, compresslevel=6)
    if encoding == "deflate":
        return zlib.compress(zeros, 6)
    return brotli.compress(zeros, quality=4)


class NewsSite:
    def __init__(self, count: int = 12, host: str = "127.0.0.1", port: int = 0):
        self.host = host
        self.requested_port = port
        self.articles = {a.path: a for a in newsite.articles(count)}
        self.hits: Counter[str] = Counter()
        self.robots: tuple[int, str] = (200, "User-agent: *\nDisallow: /private/\n")
        self.robots_delay_s = 0.0
        self.etag_version = 1
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---------------------------------------------------------------- lifecycle
    def __enter__(self) -> NewsSite:
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            app = web.Application(middlewares=[self._count])
            app.router.add_route("GET", "/{tail:.*}", self._route)
            self._runner = web.AppRunner(app, access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, self.host, self.requested_port)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        async def stop() -> None:
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def total_hits(self) -> int:
        return sum(self.hits.values())

    def edit(self, path: str, paragraph: str, when: datetime | None = None) -> None:
        """Change an article's text (a new revision): its lastmod moves, and the feed's ETag."""
        article = self.articles[path]
        updated = when or datetime.now(UTC)
        self.articles[path] = replace(article, paragraphs=[*article.paragraphs, paragraph], updated=updated)
        self.etag_version += 1

    def add(self, article: newsite.Article) -> None:
        self.articles[article.path] = article
        self.etag_version += 1

    # ---------------------------------------------------------------- routes
    @web.middleware
    async def _count(self, request: web.Request, handler):
        self.hits[request.path] += 1
        return await handler(request)

    def _sorted(self) -> list[newsite.Article]:
        return sorted(self.articles.values(), key=lambda a: a.published, reverse=True)

    async def _route(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        base = self.base
        xml = "application/xml; charset=utf-8"
        if path == "/robots.txt":
            if self.robots_delay_s:
                await asyncio.sleep(self.robots_delay_s)
            status, text = self.robots
            return web.Response(status=status, text=text, content_type="text/plain")
        if path in ("/feed", "/rss", "/rss1", "/atom"):
            etag = f'"v{self.etag_version}"'
            if request.headers.get("If-None-Match") == etag:
                return web.Response(status=304, headers={"ETag": etag})
            render = {"/feed": newsite.rss2, "/rss": newsite.rss2, "/rss1": newsite.rss1, "/atom": newsite.atom}[path]
            # A wrong content type, as some portals send.
            return web.Response(text=render(self._sorted(), base), content_type="text/html", headers={"ETag": etag})
        if path.startswith("/outlet/") and path.endswith("/feed"):  # one feed per outlet: a source each
            outlet = path.split("/")[2]
            items = [a for a in self._sorted() if a.outlet == outlet]
            return web.Response(text=newsite.rss2(items, base), content_type="application/rss+xml")
        if path == "/sitemap-index.xml":
            return web.Response(
                text=newsite.sitemap_index(["/sitemap-news.xml", "/sitemap-old.xml.gz"], base),
                content_type="application/xml",
            )
        if path == "/sitemap-news.xml":
            return web.Response(
                text=newsite.news_sitemap(self._sorted()[: len(self.articles) // 2], base),
                content_type="application/xml",
            )
        if path == "/sitemap-old.xml.gz":
            body = newsite.gzipped(newsite.news_sitemap(self._sorted()[len(self.articles) // 2 :], base))
            return web.Response(body=body, content_type="application/x-gzip")
        if path in ("/internasional", "/world"):
            return web.Response(text=newsite.section_page(self._sorted(), base), content_type="text/html")
        if path in self.articles:
            return web.Response(text=newsite.render(self.articles[path], base), content_type="text/html")
        return await self._hostile(request, path, xml)

    async def _hostile(self, request: web.Request, path: str, xml: str) -> web.StreamResponse:
        first = self._sorted()[0].path
        if path == "/redirect/loop":
            raise web.HTTPFound("/redirect/loop")
        if path.startswith("/redirect/chain/"):
            n = int(path.rsplit("/", 1)[1])
            raise web.HTTPFound(f"/redirect/chain/{n - 1}" if n > 0 else first)
        if path == "/redirect/private":
            raise web.HTTPFound("http://10.0.0.1/internal")
        if path == "/redirect/metadata":
            raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")
        if path == "/redirect/loopback-name":
            raise web.HTTPFound(f"http://localhost:{self.port}{first}")
        if path.startswith("/bomb/"):
            encoding = {"gzip": "gzip", "deflate": "deflate", "brotli": "br"}[path.rsplit("/", 1)[1]]
            body = bomb(path.rsplit("/", 1)[1])
            return web.Response(body=body, headers={"Content-Encoding": encoding, "Content-Type": "text/html"})
        if path == "/slow":
            resp = web.StreamResponse(headers={"Content-Type": "text/html"})
            await resp.prepare(request)
            for _ in range(600):
                await resp.write(b"x")
                await asyncio.sleep(1)
            return resp
        if path == "/huge-length":
            resp = web.StreamResponse(headers={"Content-Type": "text/html"})
            resp.content_length = 10**12
            await resp.prepare(request)
            await resp.write(b"<html>")
            return resp
        if path == "/billion-laughs.xml":
            return web.Response(body=newsite.BILLION_LAUGHS, content_type="application/xml")
        if path == "/too-many-requests":
            return web.Response(status=429, headers={"Retry-After": "2"})
        if path == "/image.png":
            return web.Response(body=b"\x89PNG....", content_type="image/png")
        if path == "/private/secret-article-that-robots-forbid":
            return web.Response(text=newsite.render(self._sorted()[0], self.base), content_type="text/html")
        if path == "/charset/cp1252":
            article = self._sorted()[1]
            page = newsite.render(article, self.base).replace('<meta charset="utf-8">', "")
            page = page.replace(
                "</h1>",
                "</h1><p>Caf\u00e9 \u201ckutipan\u201d \u2013 na\u00efve r\u00e9sum\u00e9 ini menguji pengodean Windows-1252 dengan tanda kutip.</p>",
            )
            return web.Response(body=page.encode("cp1252"), headers={"Content-Type": "text/html"})
        raise web.HTTPNotFound()
