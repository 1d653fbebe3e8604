"""Article links from an entry point's content: RSS 0.91/1.0/2.0 and Atom feeds (feedparser, after
the defusedxml gate), sitemaps and sitemap indexes (plain or gzipped, Google News extensions), and
HTML section pages of sites without feeds. The kind is detected from the content, not the
Content-Type (sites get it wrong). Pure: bytes in, links out; `LinkError` says why nothing came out.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlsplit

import courlan
import feedparser
import lxml.html

from pantau.crawler import xmlsafe
from pantau.crawler.dates import parse_datetime
from pantau.crawler.urls import BadUrl, absolute, normalise, same_site

Kind = Literal["feed", "sitemap", "sitemapindex", "section"]

MAX_XML_BYTES = 50 * 1024 * 1024  # the sitemap protocol's own limit, uncompressed


class LinkError(ValueError):
    """The content yields no links, and why."""


@dataclass(frozen=True)
class Link:
    url: str
    title: str | None = None
    published: datetime | None = None
    kind: Literal["article", "sitemap"] = "article"
    updated: datetime | None = None  # feed <updated> / sitemap <lastmod>: a newer one means refetch

    def as_json(self) -> dict:
        out = {
            "url": self.url,
            "title": self.title,
            "published": self.published.isoformat() if self.published else None,
        }
        if self.kind != "article":
            out["kind"] = self.kind
        return out


@dataclass(frozen=True)
class Links:
    kind: Kind
    links: list[Link]
    problems: list[str]


_XML_ROOT = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(rss|feed|RDF|urlset|sitemapindex)\b")


def detect_kind(body: bytes) -> Kind:
    head = xmlsafe.strip_leading_junk(body[:4096])
    match = _XML_ROOT.search(head)
    if match:
        root = match[1]
        return {b"urlset": "sitemap", b"sitemapindex": "sitemapindex"}.get(root, "feed")
    if head.lstrip().startswith(b"<?xml") and b"<html" not in head.lower():
        return "feed"  # unknown XML; the feed parser will say what is wrong
    return "section"


def extract_links(body: bytes, base_url: str, content_type: str | None = None) -> Links:
    body = xmlsafe.maybe_gunzip(body, MAX_XML_BYTES)
    kind = detect_kind(body)
    if kind == "feed":
        return feed_links(body, base_url)
    if kind in ("sitemap", "sitemapindex"):
        return sitemap_links(body, base_url)
    return section_links(body, base_url, content_type)


# ---------------------------------------------------------------- feeds
def _struct_to_datetime(value) -> datetime | None:
    if not value:
        return None
    return datetime.fromtimestamp(calendar.timegm(value), UTC)


def feed_links(body: bytes, base_url: str) -> Links:
    # The defusedxml gate first: a DTD with entities is refused outright, never handed on.
    try:
        xmlsafe.parse(body)
        gate_problem = None
    except xmlsafe.UnsafeXml:
        raise
    except xmlsafe.MalformedXml as exc:
        gate_problem = str(exc)  # feedparser's lenient parser may still recover the items
    parsed = feedparser.parse(xmlsafe.repair(body), sanitize_html=False, resolve_relative_uris=False)
    links, problems = [], []
    for n, entry in enumerate(parsed.entries):
        href = entry.get("link") or next(
            (lk.get("href") for lk in entry.get("links", []) if lk.get("rel", "alternate") == "alternate"), None
        )
        if not href and entry.get("id", "").startswith("http"):
            href = entry["id"]
        if not href:
            problems.append(f"item {n}: no link")
            continue
        try:
            url = normalise(absolute(base_url, href))
        except BadUrl as exc:
            problems.append(f"item {n}: {exc}")
            continue
        published = _struct_to_datetime(entry.get("published_parsed") or entry.get("updated_parsed"))
        if published is None and entry.get("published"):
            published = parse_datetime(entry["published"])
        title = (entry.get("title") or "").strip() or None
        # dict.get: FeedParserDict.get("updated_parsed") falls back to the published date.
        links.append(Link(url, title, published, updated=_struct_to_datetime(dict.get(entry, "updated_parsed"))))
    if not links:
        reason = gate_problem or (str(parsed.get("bozo_exception")) if parsed.get("bozo") else "no items")
        raise LinkError(f"feed yields no items: {reason}" + (f" ({'; '.join(problems[:5])})" if problems else ""))
    return Links("feed", links, problems)


# ---------------------------------------------------------------- sitemaps
def _child(element, name: str):
    for child in element:
        if xmlsafe.local_name(child) == name:
            return child
    return None


def _text(element, *path: str) -> str | None:
    for name in path:
        if element is None:
            return None
        element = _child(element, name)
    return element.text.strip() if element is not None and element.text else None


def sitemap_links(body: bytes, base_url: str) -> Links:
    try:
        root = xmlsafe.parse(body)
    except xmlsafe.MalformedXml as exc:
        raise LinkError(f"sitemap: {exc}") from None
    kind: Kind = "sitemapindex" if xmlsafe.local_name(root) == "sitemapindex" else "sitemap"
    entry_name = "sitemap" if kind == "sitemapindex" else "url"
    links, problems = [], []
    for n, entry in enumerate(e for e in root if xmlsafe.local_name(e) == entry_name):
        loc = _text(entry, "loc")
        if not loc:
            problems.append(f"{entry_name} {n}: no <loc>")
            continue
        try:
            url = normalise(absolute(base_url, loc))
        except BadUrl as exc:
            problems.append(f"{entry_name} {n}: {exc}")
            continue
        if kind == "sitemapindex":
            links.append(Link(url, None, parse_datetime(_text(entry, "lastmod") or ""), kind="sitemap"))
            continue
        # Google News sitemaps: <news:news><news:publication_date>, <news:title>
        news = _child(entry, "news")
        published = parse_datetime(_text(news, "publication_date") or "") if news is not None else None
        title = _text(news, "title") if news is not None else None
        lastmod = parse_datetime(_text(entry, "lastmod") or "")
        links.append(Link(url, title, published or lastmod, updated=lastmod))
    if not links and not problems:
        raise LinkError(f"{kind}: no <{entry_name}> entries")
    return Links(kind, links, problems)


# ---------------------------------------------------------------- section pages
_SKIP_CONTAINERS = {"nav", "header", "footer", "aside", "form"}
_SKIP_EXTENSIONS = re.compile(r"\.(jpe?g|png|gif|webp|svg|pdf|mp[34]|zip|css|js|xml|rss)$", re.I)
_ARTICLE_PATH = re.compile(
    r"(/\d{4}/\d{1,2}/\d{1,2}/)"  # /2023/09/06/
    r"|(/(read|berita|news|artikel|article)/\d+)"  # /read/123456
    r"|(/\d{5,}(/|$|-))"  # numeric article id
    r"|(/[^/]*[a-z0-9]+(-[a-z0-9]+){3,}[^/]*/?$)",  # slug of four or more words
    re.I,
)


def looks_like_article(url: str) -> bool:
    path = urlsplit(url).path
    if _SKIP_EXTENSIONS.search(path) or courlan.is_navigation_page(url) or courlan.is_not_crawlable(url):
        return False
    return bool(_ARTICLE_PATH.search(path))


def section_links(body: bytes, base_url: str, content_type: str | None = None) -> Links:
    from pantau.crawler.charset import decode_html

    _, text = decode_html(body, content_type)
    try:
        tree = lxml.html.fromstring(text)
    except (lxml.etree.ParserError, ValueError) as exc:
        raise LinkError(f"section page: not parseable HTML: {exc}") from None
    seen: dict[str, Link] = {}
    for anchor in tree.iter("a"):
        if any(a.tag in _SKIP_CONTAINERS for a in anchor.iterancestors()):
            continue
        href = anchor.get("href")
        if not href or href.startswith(("#", "javascript:", "mailto:")):
            continue
        try:
            url = normalise(absolute(base_url, href))
        except BadUrl:
            continue
        if url in seen or not same_site(url, base_url) or not looks_like_article(url):
            continue
        title = " ".join(anchor.text_content().split()) or anchor.get("title") or None
        seen[url] = Link(url, title)
    if not seen:
        raise LinkError("section page: no same-site links that look like articles")
    return Links("section", list(seen.values()), [])
