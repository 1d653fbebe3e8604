"""Ring 1: extraction on pages shaped like each outlet's, and the boilerplate they carry."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pantau.crawler.extract import ExtractFailed, clean_text, extract
from pantau.demo import newsite

BASE = "https://news.example"
ARTICLES = newsite.articles(12)
BY_OUTLET = {a.outlet: a for a in ARTICLES}


def run(article, **kw):
    page = newsite.render(article, BASE).encode()
    return extract(page, BASE + article.path + "?utm_source=rss&utm_medium=feed", default_tz="Asia/Jakarta", **kw)


@pytest.mark.parametrize("outlet", sorted(BY_OUTLET))
def test_main_text_keeps_every_paragraph_and_no_related_links_or_ads(outlet):
    article = BY_OUTLET[outlet]
    page = run(article)
    assert page.text.split("\n") == article.paragraphs
    for marker in newsite.BOILERPLATE_MARKERS:
        assert marker.lower() not in page.text.lower()
    assert "tidak relevan" not in page.text  # the related article's title
    assert "Terpopuler" not in page.text and "Tentang kami" not in page.text


@pytest.mark.parametrize("outlet", sorted(BY_OUTLET))
def test_metadata(outlet):
    article = BY_OUTLET[outlet]
    page = run(article)
    assert page.title == article.title
    assert page.canonical_url == BASE + article.path  # rel=canonical, tracking parameters removed
    assert page.published_at == article.published
    assert page.published_at.tzinfo is not None
    assert page.published_at_source == ("page" if outlet == "antara" else "jsonld")
    assert page.authors == [article.author]


def test_kompas_pages_say_english_but_the_hint_is_only_a_hint():
    page = run(BY_OUTLET["kompas"])
    assert page.language_hint == "en"  # as served; the enricher decides from the text


def test_section_tags_and_image_from_json_ld():
    page = run(BY_OUTLET["kompastv"])
    assert page.section == "Internasional"
    assert page.tags == ["amunisi", "Korea Utara"]
    assert page.image_url.endswith(".jpg")


def test_windows_1252_without_a_declared_charset_is_decoded():
    article = BY_OUTLET["tempo"]
    html = newsite.render(article, BASE).replace('<meta charset="utf-8">', "")
    html = html.replace(
        '<div class="detail__body-text">',
        '<div class="detail__body-text"><p>Caf\u00e9 \u201ckutipan\u201d \u2013 na\u00efve r\u00e9sum\u00e9.</p>',
    )
    page = extract(html.encode("cp1252"), BASE + article.path)
    assert "Caf\u00e9 \u201ckutipan\u201d \u2013 na\u00efve" in page.text


def test_meta_charset_and_bom():
    article = BY_OUTLET["tempo"]
    html = newsite.render(article, BASE).replace("Pemerintah perketat", "Pemerintah p\u00e9rketat")
    assert "p\u00e9rketat" in extract(b"\xef\xbb\xbf" + html.encode(), BASE + article.path).title
    latin = html.replace('<meta charset="utf-8">', '<meta charset="iso-8859-1">').encode("latin-1")
    assert "p\u00e9rketat" in extract(latin, BASE + article.path).title


def test_a_canonical_on_another_site_is_ignored():
    article = BY_OUTLET["detik"]
    html = newsite.render(article, BASE).replace(f'href="{BASE}{article.path}"', 'href="https://evil.example/x"')
    html = html.replace(f'content="{BASE}{article.path}?utm_source=og"', 'content="https://evil.example/x"')
    assert extract(html.encode(), BASE + article.path).canonical_url == BASE + article.path


def test_future_or_ancient_dates_are_unknown_not_guessed():
    article = BY_OUTLET["kompastv"]
    page = run(article, now=datetime(2026, 11, 19, tzinfo=UTC))  # the article claims a later date
    assert page.published_at is None or page.published_at <= datetime(2026, 11, 19, 0, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    "body",
    [b"", b"\x00\x01\x02binary", b"<html><body><nav><a href='/'>Home</a></nav></body></html>", "\u202e" * 10],
)
def test_pages_without_an_article_fail_clearly(body):
    with pytest.raises(ExtractFailed):
        extract(body if isinstance(body, bytes) else body.encode(), BASE + "/x")


def test_clean_text_drops_boilerplate_lines_only():
    text = (
        "Paragraf satu.\nBaca juga: Sesuatu\nSCROLL TO CONTINUE WITH CONTENT\nADVERTISEMENT\nParagraf dua membaca juga."
    )
    assert clean_text(text) == "Paragraf satu.\nParagraf dua membaca juga."
