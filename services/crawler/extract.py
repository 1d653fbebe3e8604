"""HTML page → article fields. Pure.

Main text comes from trafilatura; metadata from the page's own structured data first (JSON-LD
NewsArticle, then <meta> tags), then trafilatura/htmldate. Indonesian portals put related-link
blocks ("Baca juga: …") and ad markers inside the body: they are removed from the DOM before
extraction and any survivor line is dropped after, because they would inflate keyword counts.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime

import lxml.html
import trafilatura
from lxml import etree

from pantau.crawler.charset import decode_html
from pantau.crawler.dates import parse_datetime
from pantau.crawler.urls import BadUrl, normalise, same_site

MIN_TEXT_CHARS = 150
MAX_TEXT_CHARS = 1_000_000

# Lines (paragraphs) that are navigation or ads, not news. Anchored at the start of a paragraph.
BOILERPLATE_LINE = re.compile(
    r"^\s*(baca\s+(juga|selengkapnya|berita\s+lainnya)|simak\s+(juga|video|berita)|lihat\s+juga|"
    r"tonton\s+juga|pilihan\s+editor|scroll\s+to\s+continue(\s+with\s+content)?|berita\s+terkait|artikel\s+terkait|scroll\s+(ke\s+bawah\s+)?"
    r"untuk\s+melanjutkan(\s+membaca)?|advertisement|iklan|read\s+also|read\s+more|see\s+also|"
    r"also\s+read|related\s*:|sponsored|dapatkan\s+update|ikuti\s+(kami|berita)|download\s+aplikasi)\b",
    re.I,
)
_BOILERPLATE_CLASS = re.compile(
    r"(baca-?juga|bacajuga|read-?also|readalso|inline-?related|related-?(post|news|article|link)s?|"
    r"artikel-?terkait|berita-?terkait|pilihan-?editor|\bads?\b|advert|iklan|parallax|newsletter|"
    r"share-?(bar|button)s?|social-?(share|media))",
    re.I,
)
_BLOCKS = {"p", "div", "li", "section", "aside", "table", "blockquote", "span", "strong", "h2", "h3", "h4"}
_JSONLD_ARTICLE_TYPES = {"NewsArticle", "Article", "ReportageNewsArticle", "AnalysisNewsArticle", "BlogPosting",
                         "OpinionNewsArticle", "WebPage", "LiveBlogPosting"}  # fmt: skip
_PUBLISHED_META = ("article:published_time", "og:published_time", "pubdate", "publishdate", "publish-date",
                   "dtk:publishdate", "content_publisheddate", "dc.date.issued", "dc.date", "date",
                   "parsely-pub-date", "sailthru.date", "datepublished")  # fmt: skip
_MODIFIED_META = ("article:modified_time", "og:updated_time", "dateModified", "last-modified", "dtk:updatedate")


_DATE_CLASS = re.compile(r"(date|time|tanggal|waktu|publish|posted)", re.I)
_CLOCK = re.compile(r"\b\d{1,2}[:.]\d{2}\b")


def _visible_datetime(tree, default_tz: str | None, now: datetime | None) -> datetime | None:
    """A date with a time of day shown on the page: <time datetime>, or a short element whose class
    says it is a date (Antara and others publish no structured date)."""
    for value in tree.xpath("//time/@datetime"):
        found = parse_datetime(value, default_tz, now)
        if found:
            return found
    for el in tree.iter():
        if not isinstance(el.tag, str) or not _DATE_CLASS.search(f"{el.get('class', '')} {el.get('id', '')}"):
            continue
        text = " ".join(el.text_content().split())
        if len(text) < 80 and _CLOCK.search(text):
            found = parse_datetime(text, default_tz, now)
            if found:
                return found
    return None


class ExtractFailed(ValueError):
    """No article text could be extracted; the message says why."""


@dataclass
class ExtractedPage:
    url: str
    canonical_url: str
    title: str
    text: str
    authors: list[str] = field(default_factory=list)
    published_at: datetime | None = None
    published_at_source: str | None = None
    updated_at: datetime | None = None
    section: str | None = None
    tags: list[str] = field(default_factory=list)
    image_url: str | None = None
    language_hint: str | None = None
    encoding: str | None = None


# ---------------------------------------------------------------- structured metadata
def _jsonld_objects(tree) -> list[dict]:
    found = []
    for script in tree.xpath('//script[@type="application/ld+json"]'):
        try:
            data = json.loads(script.text or "")
        except (json.JSONDecodeError, TypeError):
            continue
        stack = data if isinstance(data, list) else [data]
        while stack:
            item = stack.pop(0)
            if isinstance(item, dict):
                if "@graph" in item and isinstance(item["@graph"], list):
                    stack.extend(item["@graph"])
                types = item.get("@type")
                types = set(types) if isinstance(types, list) else {types}
                if types & _JSONLD_ARTICLE_TYPES:
                    found.append(item)
            elif isinstance(item, list):
                stack.extend(item)
    # Prefer real article types over a generic WebPage.
    found.sort(key=lambda o: "WebPage" in str(o.get("@type")))
    return found


def _names(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in re.split(r"[;,]|\band\b|\bdan\b", value) if v.strip()]
    if isinstance(value, dict):
        return _names(value.get("name"))
    if isinstance(value, list):
        return [n for v in value for n in _names(v)]
    return []


def _first_str(value) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, list) and value:
        return _first_str(value[0])
    if isinstance(value, dict):
        return _first_str(value.get("url") or value.get("name"))
    return None


def _keywords(value) -> list[str]:
    if isinstance(value, str):
        return [k.strip() for k in value.split(",") if k.strip()]
    if isinstance(value, list):
        return [k for v in value for k in _keywords(v)]
    return []


def _meta(tree) -> dict[str, str]:
    meta = {}
    for el in tree.iter("meta"):
        key = (el.get("property") or el.get("name") or el.get("itemprop") or el.get("http-equiv") or "").lower()
        content = el.get("content")
        if key and content and key not in meta:
            meta[key] = content.strip()
    return meta


# ---------------------------------------------------------------- boilerplate
def _remove(element) -> None:
    parent = element.getparent()
    if parent is None:
        return
    if element.tail:  # keep text that follows the removed element
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + element.tail
        else:
            parent.text = (parent.text or "") + element.tail
    parent.remove(element)


def _leading_text(el, want: int = 60) -> str:
    """The first characters of an element's text, without building all of it (hot path)."""
    parts, node = [], el
    while node is not None and sum(map(len, parts)) < want:
        if node.text and node.text.strip():
            parts.append(node.text.lstrip() if not parts else node.text)
        if len(node) == 0:
            break
        node = node[0] if isinstance(node[0].tag, str) else None
    return " ".join(parts)


def strip_boilerplate(tree) -> None:
    """Remove related-link blocks and ad markers in place."""
    doomed = []
    for el in tree.iter():
        if not isinstance(el.tag, str):
            continue
        marker = f"{el.get('class', '')} {el.get('id', '')}"
        if marker.strip() and _BOILERPLATE_CLASS.search(marker) and el.tag not in ("body", "html", "article", "main"):
            doomed.append(el)
            continue
        if el.tag in _BLOCKS and BOILERPLATE_LINE.match(_leading_text(el)) and len(el.text_content()) < 400:
            doomed.append(el)
    for el in doomed:
        if el.getparent() is not None:
            _remove(el)


def clean_text(text: str) -> str:
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return "\n".join(line for line in lines if line and not BOILERPLATE_LINE.match(line))


# ---------------------------------------------------------------- the extraction
def extract(
    body: bytes | str,
    url: str,
    content_type: str | None = None,
    default_tz: str | None = None,
    now: datetime | None = None,
) -> ExtractedPage:
    """Extract an article from a page fetched from `url`. Raises ExtractFailed."""
    if isinstance(body, bytes):
        encoding, html = decode_html(body, content_type)
    else:
        encoding, html = None, body
    if not html.strip():
        raise ExtractFailed("empty page")
    try:
        tree = lxml.html.document_fromstring(html)
    except (etree.ParserError, ValueError) as exc:
        raise ExtractFailed(f"not parseable HTML: {exc}") from None

    meta = _meta(tree)
    jsonld = _jsonld_objects(tree)
    ld = jsonld[0] if jsonld else {}

    canonical = url
    for candidate in (*tree.xpath('//link[@rel="canonical"]/@href'), meta.get("og:url")):
        if not candidate:
            continue
        try:
            resolved = normalise(lxml.html.urljoin(url, candidate))
        except BadUrl:
            continue
        # A canonical on another site would let a page claim someone else's article id.
        if same_site(resolved, url):
            canonical = resolved
            break

    # The page's own structured data first; trafilatura's metadata search (a tenth of the cost)
    # only when that leaves the title or the date unknown.
    title = _first_str(ld.get("headline")) or meta.get("og:title")
    published, source = None, None
    for origin, raw in (("jsonld", ld.get("datePublished")), *(("meta", meta.get(k)) for k in _PUBLISHED_META)):
        published = parse_datetime(raw, default_tz, now) if isinstance(raw, str) else None
        if published:
            source = origin
            break
    if published is None:
        published = _visible_datetime(tree, default_tz, now)
        source = "page" if published else None
    need_metadata = not (title and published)

    strip_boilerplate(tree)
    doc = trafilatura.bare_extraction(
        tree,
        url=canonical,
        with_metadata=need_metadata,
        include_comments=False,
        include_tables=False,
        include_images=False,
        fast=True,
        # Precision: news pages are one article amid menus and teasers; trafilatura's recall
        # escalation would pull those teasers in (and triples the cost on 100 KiB pages).
        favor_precision=True,
        date_extraction_params={"original_date": True, "extensive_search": False},
    )
    text = clean_text(doc.text or "") if doc is not None else ""
    if len(text) < MIN_TEXT_CHARS:
        raise ExtractFailed(f"main text too short ({len(text)} characters): not an article page")
    text = text[:MAX_TEXT_CHARS]
    found = doc if need_metadata else None  # trafilatura's metadata, when it was asked for

    title = title or (found.title if found else None) or ""
    if published is None and found is not None and found.date:
        published = parse_datetime(found.date, default_tz, now)
        source = "htmldate" if published else None
    updated = None
    for raw in (ld.get("dateModified"), *(meta.get(k) for k in _MODIFIED_META)):
        updated = parse_datetime(raw, default_tz, now) if isinstance(raw, str) else None
        if updated:
            break

    authors = _names(ld.get("author")) or _names(meta.get("author")) or _names(found.author if found else None)
    section = (
        _first_str(ld.get("articleSection"))
        or meta.get("article:section")
        or (found.categories[0] if found is not None and found.categories else None)
    )
    tags = (
        _keywords(ld.get("keywords"))
        or _keywords(meta.get("news_keywords"))
        or _keywords(meta.get("keywords"))
        or list(found.tags if found is not None and found.tags else [])
    )
    image = _first_str(ld.get("image")) or meta.get("og:image")
    lang = tree.get("lang") or meta.get("content-language") or meta.get("og:locale")

    return ExtractedPage(
        url=url,
        canonical_url=canonical,
        title=" ".join(title.split())[:2000],
        text=text,
        authors=list(dict.fromkeys(a[:300] for a in authors))[:50],
        published_at=published,
        published_at_source=source,
        updated_at=updated,
        section=section[:300] if section else None,
        tags=list(dict.fromkeys(t[:300] for t in tags))[:100],
        image_url=image[:4096] if image else None,
        language_hint=lang[:35] if lang else None,
        encoding=encoding,
    )
