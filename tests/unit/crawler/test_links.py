"""Ring 1: links from feeds, sitemaps and section pages as they come in the wild."""

from __future__ import annotations

import gzip

import pytest

from pantau.crawler.links import LinkError, detect_kind, extract_links, looks_like_article
from pantau.crawler.xmlsafe import UnsafeXml
from pantau.demo import newsite

BASE = "http://news.example"
ARTICLES = newsite.articles(6)


def urls(found):
    return [link.url for link in found.links]


@pytest.mark.parametrize("render", [newsite.rss2, newsite.rss1, newsite.atom], ids=["rss2", "rss1", "atom"])
def test_every_feed_flavour_yields_every_item_with_clean_urls_and_aware_dates(render):
    found = extract_links(render(ARTICLES, BASE).encode(), BASE + "/feed")
    assert found.kind == "feed" and not found.problems
    assert urls(found) == [BASE + a.path for a in ARTICLES]  # tracking parameters gone
    assert [link.title for link in found.links] == [a.title for a in ARTICLES]
    assert [link.published for link in found.links] == [a.published for a in ARTICLES]


def test_rss_091_and_html_entities_and_stray_bytes():
    feed = (
        b"\xef\xbb\xbf\r\n  junk<?xml version='1.0'?><rss version='0.91'><channel><title>T&nbsp;&eacute;</title>"
        b"<item><title>Caf&eacute; &mdash; berita</title><link>/a/2023/09/06/kabar-baru-dari-jakarta</link></item>"
        b"</channel></rss>"
    )
    found = extract_links(feed, BASE + "/rss")
    assert urls(found) == [BASE + "/a/2023/09/06/kabar-baru-dari-jakarta"]
    assert found.links[0].title == "Café — berita"


def test_an_item_without_a_link_is_reported_not_silently_dropped():
    feed = b"<rss version='2.0'><channel><item><title>no link</title></item><item><link>http://x.example/a</link></item></channel></rss>"
    found = extract_links(feed, BASE)
    assert urls(found) == ["http://x.example/a"]
    assert found.problems == ["item 0: no link"]


def test_billion_laughs_is_refused_not_expanded():
    with pytest.raises(UnsafeXml, match="refused"):
        extract_links(newsite.BILLION_LAUGHS, BASE)


def test_external_entities_are_refused():
    xxe = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><rss><channel><item><title>&x;</title></item></channel></rss>'
    with pytest.raises(UnsafeXml):
        extract_links(xxe, BASE)


def test_news_sitemap_with_google_news_fields():
    found = extract_links(newsite.news_sitemap(ARTICLES, BASE).encode(), BASE + "/sitemap.xml")
    assert found.kind == "sitemap"
    assert urls(found) == [BASE + a.path for a in ARTICLES]
    assert found.links[0].published == ARTICLES[0].published
    assert found.links[0].title == ARTICLES[0].title


def test_gzipped_sitemap_and_index():
    found = extract_links(gzip.compress(newsite.news_sitemap(ARTICLES, BASE).encode()), BASE + "/s.xml.gz")
    assert len(found.links) == len(ARTICLES)
    index = extract_links(newsite.sitemap_index(["/a.xml", "/b.xml.gz"], BASE).encode(), BASE)
    assert index.kind == "sitemapindex"
    assert [(link.url, link.kind) for link in index.links] == [
        (BASE + "/a.xml", "sitemap"),
        (BASE + "/b.xml.gz", "sitemap"),
    ]


def test_a_gzip_bomb_posing_as_a_sitemap_stops_at_the_cap():
    bomb = gzip.compress(b"<urlset>" + b" " * (60 * 1024 * 1024))
    with pytest.raises(ValueError, match="inflates beyond"):
        extract_links(bomb, BASE)


def test_section_page_keeps_same_site_article_links_only():
    found = extract_links(newsite.section_page(ARTICLES, BASE).encode(), BASE + "/internasional")
    assert found.kind == "section"
    assert urls(found) == [BASE + a.path for a in ARTICLES]  # no nav, footer, tag or paging links


def test_section_page_without_articles_says_so():
    with pytest.raises(LinkError, match="no same-site links that look like articles"):
        extract_links(
            b"<html><body><a href='/tentang-kami'>Tentang</a><a href='https://other.example/a-b-c-d'>x</a></body></html>",
            BASE,
        )


def test_unparseable_feed_says_why():
    with pytest.raises(LinkError, match="feed yields no items"):
        extract_links(b"<?xml version='1.0'?><rss><channel><item><title>broken", BASE)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://www.kompas.tv/internasional/440000/kim-jong-un-dan-putin-disebut-akan-bertemu", True),
        ("https://news.detik.com/internasional/d-6915432/kim-jong-un-bertemu-putin", True),
        ("https://www.antaranews.com/berita/3712345/pemerintah-perketat-ekspor", True),
        ("https://example.com/2023/09/06/story", True),
        ("https://www.kompas.tv/tag/rusia", False),
        ("https://www.kompas.tv/internasional", False),
        ("https://www.kompas.tv/img/foto-kim-jong-un-bertemu-putin.jpg", False),
        ("https://www.kompas.tv/login", False),
    ],
)
def test_what_looks_like_an_article(url, expected):
    assert looks_like_article(url) is expected


def test_kind_is_detected_from_content_not_from_names():
    assert detect_kind(b"\n\n <?xml version='1.0'?><rss>") == "feed"
    assert detect_kind(b"<feed xmlns='http://www.w3.org/2005/Atom'>") == "feed"
    assert detect_kind(b"<rdf:RDF xmlns:rdf='x'>") == "feed"
    assert detect_kind(b"<?xml version='1.0'?><urlset>") == "sitemap"
    assert detect_kind(b"<!doctype html><html>") == "section"
