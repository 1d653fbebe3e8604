"""Ring 1: the subscription query language — parsing, canonical form, matching on enriched articles,
and the Elasticsearch compilation, checked against `matches` by a small in-process evaluator of the
ES query subset it emits (on the document the indexer writes; the real ring checks real ES)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pantau.alerter.query import ArticleView, QueryError, parse_query, standard_tokens
from pantau.enricher.stems import stem_text, stemmer_name
from pantau.indexer.documents import article_action

KIM = {"id": "Q56226", "name": "Kim Jong Un", "type": "PER"}
PUTIN = {"id": "Q7747", "name": "Vladimir Putin", "type": "PER"}
PBB = {"id": "Q1065", "name": "Perserikatan Bangsa-Bangsa", "type": "ORG"}


def article(
    title: str,
    text: str,
    language: str = "id",
    *,
    source: tuple[str, str, str | None] = ("kompastv", "kompas.tv", "ID"),
    entities: tuple[dict, ...] = (),
    stems: bool = True,
    stemmer: str | None = None,
) -> dict[str, Any]:
    """An enriched article, stemmed as the enricher stems (stemmer: stem as another language would)."""
    stem_language = stemmer or language
    enriched: dict[str, Any] = {
        "id": "a" * 64,
        "url": "https://www.kompas.tv/x",
        "canonical_url": "https://www.kompas.tv/x",
        "source": {"id": source[0], "name": source[0], "domain": source[1], "country": source[2]},
        "title": title,
        "text": text,
        "crawled_at": "2026-11-26T10:00:00+00:00",
        "revision": 1,
        "content_hash": "b" * 64,
        "backfill": False,
        "language": {"code": language, "probability": 0.99},
        "entities": [],
        "canonical_entities": list(entities),
        "terms": [],
        "stems": {
            "title": stem_text(title, stem_language),
            "text": stem_text(text, stem_language),
            "stemmer": stemmer_name(stem_language),
        },
        "story": {"id": "c" * 16, "fingerprint": "d" * 16},
        "enriched_at": "2026-11-26T10:00:01+00:00",
    }
    if not stems:
        del enriched["stems"]
    return enriched


ID_ARTICLE = article(
    "Korea Utara kirim amunisinya ke Rusia",
    "Pejabat AS menyebut peluru artileri dan roket dikirim lewat KOMPAS.TV. Kim Jong Un bertemu Putin; "
    "negara-negara anggota PBB mengecam. Nilainya 5.000 dolar.",
    entities=(KIM, PUTIN, PBB),
)
EN_ARTICLE = article(
    "Well-known suppliers shipped ammunition",
    "Officials said the shipments don't stop.",
    "en",
    source=("reuters", "reuters.com", "GB"),
)
UNSTEMMED = {k: v for k, v in ID_ARTICLE.items() if k != "stems"}
# Language undetermined, stemmed as its Indonesian source (what the enricher does for `und`).
UND_ARTICLE = article("Amunisinya habis", "Persediaan menipis.", "und", stemmer="id")
EXAMPLE = json.loads(
    (Path(__file__).resolve().parents[3] / "schemas/examples/article-enriched/v1/kompas-tv-kim-putin.json").read_text(
        encoding="utf-8"
    )
)
ARTICLES = {"id": ID_ARTICLE, "en": EN_ARTICLE, "unstemmed": UNSTEMMED, "und": UND_ARTICLE, "example": EXAMPLE}


# --- the in-process Elasticsearch evaluator -------------------------------------------------------


def document(enriched: dict[str, Any]) -> dict[str, Any]:
    if "stems" not in enriched:  # the indexer needs stems; index what the enricher would have written
        enriched = {**enriched, "stems": article(enriched["title"], enriched["text"])["stems"]}
    return article_action(enriched, "pantau", datetime(2026, 11, 26, tzinfo=UTC)).source


def es_spans(query: dict[str, Any], doc: dict[str, Any]) -> tuple[str, list[tuple[int, int]]]:
    (kind, body), = query.items()  # fmt: skip
    if kind == "span_term":
        (field, value), = body.items()  # fmt: skip
        return field, [(i, i + 1) for i, t in enumerate(standard_tokens(doc.get(field, ""))) if t == value]
    if kind == "span_multi":
        (field, spec), = body["match"]["prefix"].items()  # fmt: skip
        words = standard_tokens(doc.get(field, ""))
        return field, [(i, i + 1) for i, t in enumerate(words) if t.startswith(spec["value"])]
    if kind == "span_field_masking":
        return body["field"], es_spans(body["query"], doc)[1]
    assert kind == "span_near", kind
    (field, a), (other, b) = (es_spans(c, doc) for c in body["clauses"])
    assert field == other, "span_near clauses must share a field"
    slop = body["slop"]
    if body["in_order"]:
        assert slop == 0
        return field, [(s, e2) for s, e in a for s2, e2 in b if s2 == e]
    matches = [
        (min(s, s2), max(e, e2)) for s, e in a for s2, e2 in b if max(e, e2) - min(s, s2) - (e - s) - (e2 - s2) <= slop
    ]
    return field, matches


def es_match(query: dict[str, Any], doc: dict[str, Any]) -> bool:
    (kind, body), = query.items()  # fmt: skip
    if kind == "bool":
        assert set(body) <= {"filter", "must_not", "should", "minimum_should_match"}
        if "should" in body:
            assert body["minimum_should_match"] == 1
            if not any(es_match(c, doc) for c in body["should"]):
                return False
        return all(es_match(c, doc) for c in body.get("filter", [])) and not any(
            es_match(c, doc) for c in body.get("must_not", [])
        )
    if kind == "multi_match":
        assert body["type"] == "phrase"
        words = standard_tokens(body["query"])
        for field in body["fields"]:
            tokens = standard_tokens(doc.get(field, ""))
            if any(tokens[i : i + len(words)] == words for i in range(len(tokens))):
                return True
        return False
    if kind == "prefix":
        (field, spec), = body.items()  # fmt: skip
        return any(t.startswith(spec["value"]) for t in standard_tokens(doc.get(field, "")))
    if kind in ("term", "terms"):
        (field, spec), = body.items()  # fmt: skip
        value = doc.get(field)
        values = value if isinstance(value, list) else [] if value is None else [value]
        if kind == "terms":
            return any(v in spec for v in values)
        assert spec["case_insensitive"] is True
        return any(v.lower() == spec["value"].lower() for v in values)
    if kind == "match_none":
        return False
    return bool(es_spans(query, doc)[1])


# --- parsing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("amunisi", "amunisi"),
        ("Amunisi", "amunisi"),
        ("kim jong un", "jong AND kim AND un"),
        ("a OR b c", "a OR (b AND c)"),
        ("a b OR c d", "(a AND b) OR (c AND d)"),
        ("(a OR b) c", "c AND (a OR b)"),
        ("NOT a b", "b AND NOT a"),
        ("x NOT (a b)", "x AND NOT (a AND b)"),
        ("a -b", "a AND NOT b"),
        ("a NOT b OR c", "c OR (a AND NOT b)"),
        ("rusia NEAR/5 amunisi", "amunisi NEAR/5 rusia"),
        ("NOT a NEAR/3 b c", "c AND NOT a NEAR/3 b"),
        ("and or not near", "and AND near AND not AND or"),  # lower case is words
        ("ANDROID ORBIT", "android AND orbit"),
        ('"peluru artileri"', '"peluru artileri"'),
        ('"amunisi"', "amunisi"),
        ("negara-negara don't", "don't AND negara-negara"),
        ("amuni*", "amuni*"),
        ("exact:amunisinya", "exact:amunisinya"),
        ('exact:"Peluru Artileri"', 'exact:"peluru artileri"'),
        ("exact:KOMPAS.TV", "exact:kompas.tv"),
        ("exact:amuni*", "amuni*"),
        ('entity:"Kim Jong Un" language:ID country:id source:Kompas.TV', 'entity:"kim jong un" AND country:id '
         "AND language:id AND source:kompas.tv"),
        ("entity:Q56226", "entity:q56226"),
        ('source:"kompastv" x', "x AND source:kompastv"),
        ("x NOT NOT y", "x AND y"),
        ("a a OR a", "a"),
    ],
)  # fmt: skip
def test_parse_precedence_and_canonical_form(text, canonical):
    query = parse_query(text)
    assert query.text == text
    assert query.canonical == canonical
    assert parse_query(canonical).canonical == canonical  # the canonical form is itself a query


@pytest.mark.parametrize(
    "spellings",
    [
        ["kim jong un", "un AND kim AND jong", "(kim) (jong un)", "  kim\tAND\n jong   un  ", "Kim JONG un"],
        ["a OR b", "b OR a", "((a) OR (b))", "a OR (b OR a)"],
        ["a OR (b OR c)", "(a OR b) OR c", "c OR b OR a"],
        ["amunisi NOT rusia", "amunisi AND NOT rusia", "-rusia amunisi", "NOT rusia AND (amunisi)"],
        ["a NEAR/5 b", "b NEAR/5 a"],
        ['"peluru artileri"', '"Peluru   Artileri"', '"peluru, artileri!"'],
        ["language:ID amunisi", "amunisi language:id"],
        ['entity:"Kim Jong Un" x', 'x entity:"kim  jong un"'],
        ["(a b) OR (c d)", "(d c) OR (b a)"],
    ],
)
def test_equivalent_spellings_share_the_canonical_form(spellings):
    assert len({parse_query(s).canonical for s in spellings}) == 1


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("a OR b c", "(a OR b) c"),
        ("a NEAR/5 b", "a NEAR/6 b"),
        ("exact:amunisi", "amunisi"),
        ('"peluru artileri"', '"artileri peluru"'),
        ("a NOT b", "b NOT a"),
    ],
)
def test_different_queries_differ(one, other):
    assert parse_query(one).canonical != parse_query(other).canonical


def test_positive_terms_skip_negations_and_filters():
    query = parse_query('(amunisi OR "peluru artileri") rusia NEAR/3 kirim* entity:Q1 language:id NOT jepang')
    assert sorted(query.positive_terms()) == ['"peluru artileri"', "amunisi", "entity:q1", "kirim*", "rusia"]


# --- refusals -------------------------------------------------------------------------------------

DEEP_GROUPS = "a" + "".join(f" {'AND' if i % 2 else 'OR'} (w{i}" for i in range(21)) + ")" * 21


@pytest.mark.parametrize(
    ("text", "column", "why"),
    [
        ("(" * 10_000, 4001, "limit is 4000"),
        ("x" * 1_000_000, 4001, "limit is 4000"),
        ("(" * 3000, 21, "nested deeper than 20"),
        ("(" * 21 + "a" + ")" * 21, 21, "nested deeper than 20"),
        (DEEP_GROUPS, None, "nested deeper than 20"),
        ("NOT " * 900 + "a", 81, "nested deeper than 20"),
        (" OR ".join(f"w{i}" for i in range(101)), 691, "more than 100 clauses"),
        ("a\x00b", 2, "U+0000"),
        ("a\x1bb", 2, "U+001B"),
        ("a \ud800", 3, "U+D800"),
        ("a \u202e b", 3, "U+202E"),
        ('"unterminated', 1, "unterminated quote"),
        ('a exact:"peluru', 9, "unterminated quote"),
        ("", 1, "empty query"),
        (" \t\n", 1, "empty query"),
        ("a NEAR/0 b", 3, "1 to 50"),
        ("a NEAR/51 b", 3, "1 to 50"),
        ("a NEAR/999999 b", 3, "1 to 50"),
        ("a NEAR b", 3, "needs a distance"),
        ("a NEAR/5 (b OR c)", 10, "not a group"),
        ("a NEAR/5 language:id", 10, "not a filter"),
        ("a NEAR/5 NOT b", 10, "NEAR needs a term"),
        ("a NEAR/5 b NEAR/5 c", 12, "one NEAR joins two"),
        ("*", 1, "bare *"),
        ("am*", 1, "too costly"),
        ("a NEAR/5 ab*", 10, "too costly"),
        ("a*b", 1, "only a trailing *"),
        ("negara-n*", 1, "one word before *"),
        ("a OR", 3, "needs a term after it"),
        ("OR a", 1, "on each side"),
        ("a AND OR b", 7, "on each side"),
        ("()", 2, "empty parentheses"),
        ("a )", 3, "unbalanced parenthesis"),
        ("(a", 1, "unbalanced parenthesis"),
        ("a & b", 3, 'unexpected character "&"'),
        ("a - b", 3, 'unexpected character "-"'),
        ('""', 1, "no letters or digits"),
        ("language:", 1, "needs a value"),
        ("foo:bar x", 1, 'unknown field "foo:"'),
        ("language:indonesian x", 1, "not a valid value"),
        ("country:IDN x", 1, "not a valid value"),
        ("language:id", 1, "most of the news"),
        ("NOT x", 1, "most of the news"),
        ("-x", 1, "most of the news"),
        ("a OR NOT b", 1, "most of the news"),
        ("a OR language:id", 1, "most of the news"),
    ],
)  # fmt: skip
def test_hostile_and_invalid_queries_are_refused_with_where_and_why(text, column, why):
    with pytest.raises(QueryError) as raised:
        parse_query(text)
    error = raised.value
    assert type(error) is QueryError and isinstance(error, ValueError)
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)  # no lark error
    assert why in str(error)
    assert "column" in str(error)
    if column is not None:
        assert error.column == column and f"column {column}" in str(error)


def test_error_messages_read_as_documented():
    messages = {}
    for text in ("(a OR b", "a OR OR b", "am*"):
        with pytest.raises(QueryError) as raised:
            parse_query(text)
        messages[text] = str(raised.value)
    assert messages == {
        "(a OR b": "query error at column 1: unbalanced parenthesis: this ( is never closed",
        "a OR OR b": 'unexpected "OR" at column 6: an operator needs a term on each side',
        "am*": 'wildcard "am*" at column 1 is too costly: give at least 3 characters before *',
    }


# --- matching -------------------------------------------------------------------------------------


MATCH_CASES = [
    ("amunisi", "id", True),  # "amunisinya" in the title
    ("amunisinya", "id", True),  # the query is stemmed too
    ("exact:amunisi", "id", False),
    ("exact:amunisinya", "id", True),
    ("Amunisinya", "unstemmed", True),
    ("amunisinya", "und", True),  # stemmed by the recorded stemmer, not the language code
    ('"peluru artileri"', "id", True),
    ('"artileri peluru"', "id", False),
    ('exact:"peluru artileri"', "id", True),
    ("peluru NEAR/1 artileri", "id", True),
    ("artileri NEAR/1 peluru", "id", True),
    ("roket NEAR/3 peluru", "id", True),  # peluru artileri dan roket
    ("roket NEAR/2 peluru", "id", False),
    ('"peluru artileri" NEAR/2 roket', "id", True),
    ('"peluru artileri" NEAR/1 roket', "id", False),
    ("rusia pejabat", "id", True),
    ('"rusia pejabat"', "id", False),  # the title's last word and the text's first do not touch
    ("rusia NEAR/5 pejabat", "id", False),
    ("amuni*", "id", True),
    ("amunisinya*", "id", True),  # a prefix of surface words, not of stems
    ("tahan*", "id", False),
    ("peluru NEAR/3 rok*", "id", True),
    ("peluru NEAR/2 rok*", "id", False),
    ("exact:kompas.tv", "id", True),  # the standard analyzer keeps "KOMPAS.TV" whole
    ("exact:kompas", "id", False),
    ("kompas NEAR/1 tv", "id", True),  # the stems are the enricher's tokens, split on "."
    ('exact:"5.000"', "id", True),
    ("negara", "id", True),  # Sastrawi: negara-negara → negara
    ("negara-negara", "id", True),
    ("kim jong un", "id", True),
    ("kim jong un NOT korea", "id", False),
    ("kim jong un NOT jepang", "id", True),
    ("amunisi -jepang", "id", True),
    ("(jepang OR rusia) amunisi", "id", True),
    ("jepang OR cina", "id", False),
    ("amunisi language:id", "id", True),
    ("amunisi language:EN", "id", False),
    ("amunisi country:id", "id", True),
    ("amunisi source:KOMPASTV", "id", True),
    ("amunisi source:kompas.tv", "id", True),
    ("amunisi source:detik", "id", False),
    ('entity:"kim jong un"', "id", True),
    ('entity:"KIM  JONG UN"', "id", True),
    ("entity:Q56226", "id", True),
    ("entity:q56226", "id", True),
    ('entity:"Kim Jong"', "id", False),
    ('entity:"perserikatan bangsa-bangsa" kecam', "id", True),
    ("ammunition", "en", True),  # Snowball: ammunit
    ("ammunitions", "en", True),
    ("amunisi", "en", False),
    ("well-known", "en", True),  # Snowball keeps it; both sides split it as ES does
    ("known NEAR/1 well", "en", True),
    ("exact:well", "en", True),
    ("suppli*", "en", True),
    ("exact:don't", "en", True),
    ('"don\'t stop"', "en", True),
    ("shipment NEAR/4 officials", "en", True),
    ("shipment NEAR/4 officials", "id", False),
    ("amunisi country:gb", "en", False),
    ('entity:"Kim Jong Un" amunisi NOT jepang', "example", True),
    ('"peluru artileri" NEAR/3 rusia', "example", True),
    ("exact:amunisi", "example", True),
]


@pytest.mark.parametrize(("text", "on", "expected"), MATCH_CASES)
def test_matches_and_the_elasticsearch_query_select_alike(text, on, expected):
    query = parse_query(text)
    assert query.matches(ArticleView.of(ARTICLES[on])) is expected
    assert es_match(query.to_elasticsearch(), document(ARTICLES[on])) is expected


@pytest.mark.parametrize("on", sorted(ARTICLES))
def test_every_query_selects_alike_on_every_article(on):
    queries = {text for text, _, _ in MATCH_CASES} | {
        'entity:"Kim Jong Un" amunisi',
        '"peluru artileri" NEAR/10 rusia',
        "exact:amunisi NEAR/5 korea",
        "pejabat-pejabat NEAR/3 menuding",
        "exact:kompas.tv OR kompas NEAR/1 tv",
        '(amunisi OR senjata) NOT "uni soviet" source:kompastv',
    }
    view, doc = ArticleView.of(ARTICLES[on]), document(ARTICLES[on])
    selected = {text: parse_query(text).matches(view) for text in queries}
    assert selected == {text: es_match(parse_query(text).to_elasticsearch(), doc) for text in queries}
    assert any(selected.values()) and not all(selected.values())


def test_one_view_serves_many_queries_and_caches_stems_per_stemmer():
    view = ArticleView.of(ID_ARTICLE)
    query = parse_query.__wrapped__("amunisinya")  # uncached: its stem memo starts empty
    assert query.matches(view) and not query.matches(ArticleView.of(EN_ARTICLE))
    assert set(query.root._stems) == {"sastrawi", "snowball-english"}
    assert "stems" in vars(view) and "surface" not in vars(view)  # surface words never needed yet


def test_hostile_articles_do_not_break_matching():
    junk = article("🚀" * 50 + " x" * 5000, "\x00\xff" * 1000 + " amunisi", "und")
    del junk["language"]
    view = ArticleView.of({**junk, "source": {}, "canonical_entities": None})
    assert parse_query('amunisi NEAR/2 "x x"').matches(view) is False
    assert parse_query("amunisi").matches(view)
    assert parse_query("amunisi country:id").matches(view) is False


# --- Elasticsearch structure ----------------------------------------------------------------------


def test_elasticsearch_queries_are_bool_queries_in_filter_context():
    def es(text: str) -> dict[str, Any]:
        compiled = parse_query(text).to_elasticsearch()
        assert json.loads(json.dumps(compiled)) == compiled and set(compiled) == {"bool"}
        return compiled["bool"]

    assert es("amunisi") == {
        "filter": [{"multi_match": {"query": "amunisi", "type": "phrase", "fields": ["title_stems", "text_stems"]}}]
    }
    # Stems differ by stemmer: one clause per distinct stem string, guarded by the document's stemmer.
    variants = es("amunisinya")["should"]
    assert [c["bool"]["filter"][-1]["multi_match"]["query"] for c in variants] == ["amunisi", "amunisinya"]
    assert variants[0]["bool"]["filter"][0] == {"terms": {"stemmer": ["sastrawi"]}}
    assert variants[1]["bool"]["must_not"] == [{"terms": {"stemmer": ["sastrawi"]}}]

    body = es("amunisi OR roket")
    assert body["minimum_should_match"] == 1 and len(body["should"]) == 2
    body = es("amunisi NOT jepang")
    assert len(body["filter"]) == 1 and body["must_not"][0]["multi_match"]["query"] == "jepang"
    assert es("amuni*")["should"] == [
        {"prefix": {"title": {"value": "amuni"}}},
        {"prefix": {"text": {"value": "amuni"}}},
    ]
    entity = es('entity:"Kim Jong Un"')["should"]
    assert {"term": {"people": {"value": "kim jong un", "case_insensitive": True}}} in entity
    assert {"term": {"entity_ids": {"value": "kim jong un", "case_insensitive": True}}} in entity
    assert es("amunisi country:id")["filter"][1] == {"term": {"country": {"value": "ID", "case_insensitive": True}}}

    title_span = es("peluru NEAR/3 rok*")["should"][0]["span_near"]
    assert title_span["slop"] == 2 and title_span["in_order"] is False
    rok = {"span_multi": {"match": {"prefix": {"title": {"value": "rok"}}}}}
    assert title_span["clauses"] == [
        {"span_term": {"title_stems": "peluru"}},
        {"span_field_masking": {"field": "title_stems", "query": rok}},  # stems and surface positions compared
    ]
    inner = es('"peluru artileri" NEAR/2 roket')["should"][1]["span_near"]["clauses"][0]["span_near"]
    assert inner == {"clauses": [{"span_term": {"text_stems": "peluru"}}, {"span_term": {"text_stems": "artileri"}}],
                     "slop": 0, "in_order": True}  # fmt: skip
