"""URL normalisation and article ids. Pure.

The article id is the SHA-256 of the normalised canonical URL, so the same article reached through
a feed link with `?utm_source=rss`, a sitemap entry and a section page is one article."""

from __future__ import annotations

import hashlib
from urllib.parse import urljoin, urlsplit

import courlan


class BadUrl(ValueError):
    """A URL that cannot be crawled (not http(s), no host, malformed)."""


def normalise(url: str) -> str:
    """Lower-case scheme and host, drop fragments and tracking parameters (utm_*, fbclid, …),
    keep the path and meaningful query as the site wrote them."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadUrl(f"not an http(s) URL with a host: {url[:200]!r}")
    try:
        return courlan.normalize_url(url, strict=True)
    except (ValueError, AttributeError) as exc:
        raise BadUrl(f"cannot normalise {url[:200]!r}: {exc}") from None


def article_id(canonical_url: str) -> str:
    return hashlib.sha256(normalise(canonical_url).encode("utf-8")).hexdigest()


def absolute(base: str, href: str) -> str:
    return urljoin(base, href.strip())


def host_of(url: str) -> str:
    host = urlsplit(url).hostname
    if not host:
        raise BadUrl(f"no host in {url[:200]!r}")
    return host


def registered_domain(url: str) -> str:
    """kompas.tv for https://www.kompas.tv/…, detik.com for https://news.detik.com/… (falls back
    to the host for IP addresses and unknown suffixes)."""
    return courlan.extract_domain(url, fast=True) or host_of(url)


def same_site(url: str, other: str) -> bool:
    return registered_domain(url) == registered_domain(other)
