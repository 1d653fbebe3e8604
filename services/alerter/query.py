"""The subscription query language: parsed once, matched on each article in the stream, compiled to the
Elasticsearch query that selects the same articles (Kibana links, backfills). Pure: no Kafka, no
Elasticsearch client; lark parses (LALR: linear time, no backtracking, an explicit stack).

    amunisi                      a word, matched on stems: "amunisinya" counts for it
    "peluru artileri"            consecutive words (stems)
    kim jong un                  juxtaposition is AND
    a AND b, a OR b, NOT a, -a   upper-case keywords only; precedence NEAR > NOT > AND > OR
    rusia NEAR/5 amunisi         either order, at most 4 words between (NEAR/1: adjacent; up to 50)
    amuni*                       surface words starting with "amuni" (3 characters at least)
    exact:amunisinya             the lowercased surface word, not its stem; also exact:"peluru artileri"
    language:id  country:ID  source:kompastv (id or domain)  entity:"Kim Jong Un" (name or canonical id)

A query needs at least one term, phrase, wildcard or entity that every match contains (`language:id`
alone or `NOT x` would select most of the news). Limits: 4000 characters, 100 clauses, nesting 20,
NEAR/50; a refusal is a `QueryError` naming the column and the reason.

Matching mirrors the Elasticsearch index rather than the enricher's tokens, so that an alert and the
Discover link behind it show the same articles. Each indexed field is a `standard`-analyzed text:
`title_stems`/`text_stems` hold the enricher's stems joined by spaces, `title`/`text` the raw text.
`ArticleView` runs `standard_tokens` — a Python rendition of the standard analyzer (Unicode word
boundaries: hyphens split, "kompas.tv", "5.000" and "don't" stay whole; lowercase) — over exactly
those strings, and the query side analyses its text the way ES analyses a phrase query. So
"negara-negara" in an English article (Snowball leaves it whole) is two positions on both sides,
and `exact:kompas` does not match "KOMPAS.TV", in ES or here. Positions are per field, as in ES:
title and text sit in one sequence separated by a gap wider than any NEAR, so phrases and NEAR never
cross from the title into the text. A NEAR mixing stemmed and surface operands compares stems
positions with surface positions (ES: `span_field_masking`), which only line up when the raw text
tokenises like the stems do — both sides make the same comparison, so they still agree.

Stems depend on the article's stemmer (`stems.stemmer`: sastrawi for id/ms, snowball-english, else
lowercase). A query's stems are computed lazily per stemmer and cached; in ES each stemmed clause is
a `bool.should` over the distinct stem strings, each guarded by the `stemmer` field, so an English
article never matches through the Indonesian stem of a query word.

Known divergences from Elasticsearch (rare in Indonesian/English news):
- `standard_tokens` approximates Unicode word segmentation: emoji (ES emits them as tokens, shifting
  surface positions), Thai/Lao/Khmer runs, letter-apostrophe-digit, and format characters may differ.
- Lowercasing: ES maps per code point (Java), Python per string; special-cased "İ" and "Σ" agree, the
  few other multi-character mappings may not. Keyword comparisons (`entity:`, filters) likewise.
- An article without `stems.stemmer` is stemmed here by its language's stemmer; the indexed document
  then has no `stemmer` field and ES treats it as `lowercase`. The enricher always writes it.
- A wildcard inside NEAR expands in ES through `span_multi`, which fails with too_many_clauses when
  the prefix matches more terms than the cluster's clause limit; here it always works.
"""

from __future__ import annotations

import bisect
import json
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedToken

from pantau.enricher.stems import stem_tokens, stemmer_name, tokens

MAX_QUERY_CHARS = 4000
MAX_CLAUSES = 100
MAX_DEPTH = 20
MAX_NEAR = 50
MIN_PREFIX_CHARS = 3
# Positions between the title and the text: wider than any NEAR, so no clause spans both.
TITLE_TEXT_GAP = 1000
# Lucene's StandardTokenizer cuts longer tokens at this length.
MAX_TOKEN_CHARS = 255

STEMMERS = ("sastrawi", "snowball-english", "lowercase")
_STEMMER_LANGUAGE = {"sastrawi": "id", "snowball-english": "en"}
_SECTIONS = ("title", "text")


class QueryError(ValueError):
    """The query cannot be used; the message says where (column, 1-based) and why."""

    def __init__(self, message: str, column: int | None = None):
        super().__init__(message)
        self.column = column


# --- the standard analyzer, in Python ------------------------------------------------------------

# Combining marks and format characters stay inside a word (UAX #29 rule WB4).
_EXTEND = "".join(
    re.escape(chr(c))
    for c in range(0xA0, 0x10000)
    if unicodedata.category(chr(c)) in ("Mn", "Mc", "Me", "Cf") and c != 0x200B  # zero-width space splits
)
_WORD = rf"\w[\w{_EXTEND}]*"
# MidLetter/MidNumLet join letters ("kompas.tv", "don't"); MidNum/MidNumLet join digits ("5.000", "1,5").
_JOIN_LETTERS = rf"(?:(?<=[^\W\d_])|(?<=[{_EXTEND}]))[.:'\u2019\u2018\u00b7](?=[^\W\d_])"
_JOIN_DIGITS = r"(?<=\d)[.,;'\u2019\u2018](?=\d)"
_STANDARD_TOKEN = re.compile(rf"{_WORD}(?:(?:{_JOIN_LETTERS}|{_JOIN_DIGITS}){_WORD})*")
# Ideographs and hiragana are one token per character.
_CJK_CHARS = "\u3040-\u309f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
_CJK = re.compile(f"[{_CJK_CHARS}]")
_CJK_SPLIT = re.compile(f"[{_CJK_CHARS}]|[^{_CJK_CHARS}]+")


def _lower(token: str) -> str:
    # Java lowercases per code point: dotted capital I is "i" (Python adds a combining dot), capital
    # sigma is always the medial small sigma (Python picks the final form at a word's end).
    return token.replace("\u0130", "i").replace("\u03a3", "\u03c3").lower()


def standard_tokens(text: str) -> list[str]:
    """What Elasticsearch's `standard` analyzer indexes for `text`, in order (an approximation: see the
    module docstring)."""
    out: list[str] = []
    for match in _STANDARD_TOKEN.finditer(text):
        token = match.group()
        if _CJK.search(token):
            for part in _CJK_SPLIT.findall(token):
                out.extend(_lower(t) for t in ([part] if _CJK.match(part) else _STANDARD_TOKEN.findall(part)))
            continue
        if not token.strip("_"):  # underscores alone are no word
            continue
        token = _lower(token)
        if len(token) > MAX_TOKEN_CHARS:
            out.extend(token[i : i + MAX_TOKEN_CHARS] for i in range(0, len(token), MAX_TOKEN_CHARS))
        else:
            out.append(token)
    return out


# --- the article side ----------------------------------------------------------------------------


class _Positions:
    """One analyzed token sequence (title, gap, text) with a lazy index token -> sorted positions."""

    def __init__(self, title: list[str], text: list[str], text_offset: int):
        self.seq: list[str | None] = [*title, *([None] * (text_offset - len(title))), *text]

    @cached_property
    def index(self) -> dict[str, list[int]]:
        index: dict[str, list[int]] = {}
        for position, token in enumerate(self.seq):
            if token is not None:
                index.setdefault(token, []).append(position)
        return index

    @cached_property
    def vocabulary(self) -> list[str]:
        return sorted(self.index)

    def phrase_starts(self, words: tuple[str, ...]) -> list[int]:
        if not words:
            return []
        seq, n = self.seq, len(self.seq)
        starts = self.index.get(words[0], [])
        if len(words) == 1:
            return starts
        return [p for p in starts if p + len(words) <= n and all(seq[p + i] == w for i, w in enumerate(words))]

    def prefixed(self, prefix: str) -> Iterator[str]:
        vocabulary = self.vocabulary
        for i in range(bisect.bisect_left(vocabulary, prefix), len(vocabulary)):
            if not vocabulary[i].startswith(prefix):
                break
            yield vocabulary[i]

    def prefix_starts(self, prefix: str) -> list[int]:
        return sorted(p for token in self.prefixed(prefix) for p in self.index[token])


class ArticleView:
    """An enriched article as the queries see it: built once per article, shared by every query
    evaluated on it; positional indexes are built on first use."""

    def __init__(
        self,
        *,
        language: str,
        stemmer: str,
        source_id: str,
        domain: str,
        country: str,
        entities: frozenset[str],
        title: str,
        text: str,
        title_stems: str,
        text_stems: str,
    ):
        self.language = language
        self.stemmer = stemmer if stemmer in _STEMMER_LANGUAGE else "lowercase"
        self.source_id = source_id
        self.domain = domain
        self.country = country
        self.entities = entities  # lowercased canonical names and ids
        self.title, self.text = title, text
        self.title_stems, self.text_stems = title_stems, text_stems

    @classmethod
    def of(cls, article: dict[str, Any]) -> ArticleView:
        """From an article in the article-enriched schema (lenient: missing fields match nothing)."""
        language_field = article.get("language")
        language = (language_field.get("code") if isinstance(language_field, dict) else language_field) or "und"
        source = article.get("source") or {}
        title, text = article.get("title") or "", article.get("text") or ""
        stems = article.get("stems")
        if isinstance(stems, dict) and isinstance(stems.get("title"), str) and isinstance(stems.get("text"), str):
            stemmer = stems.get("stemmer") or stemmer_name(language)
            title_stems, text_stems = stems["title"], stems["text"]
        else:  # not enriched yet: stem as the enricher would
            stemmer = stemmer_name(language)
            title_stems = " ".join(stem_tokens(tokens(title), language))
            text_stems = " ".join(stem_tokens(tokens(text), language))
        entities = frozenset(
            str(e[key]).lower() for e in article.get("canonical_entities") or [] for key in ("name", "id") if e.get(key)
        )
        return cls(
            language=language.lower(),
            stemmer=stemmer,
            source_id=str(source.get("id") or "").lower(),
            domain=str(source.get("domain") or "").lower(),
            country=str(source.get("country") or "").lower(),
            entities=entities,
            title=title,
            text=text,
            title_stems=title_stems,
            text_stems=text_stems,
        )

    @cached_property
    def _title_tokens(self) -> tuple[list[str], list[str]]:
        return standard_tokens(self.title_stems), standard_tokens(self.title)

    @cached_property
    def _text_offset(self) -> int:
        # One offset for both sequences, so a NEAR comparing stems with surface positions stays in a section.
        return max(map(len, self._title_tokens)) + TITLE_TEXT_GAP

    @cached_property
    def stems(self) -> _Positions:
        return _Positions(self._title_tokens[0], standard_tokens(self.text_stems), self._text_offset)

    @cached_property
    def surface(self) -> _Positions:
        return _Positions(self._title_tokens[1], standard_tokens(self.text), self._text_offset)


# --- the query tree ------------------------------------------------------------------------------


def _per_stemmer(build: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """One ES clause per distinct result of `build(stemmer)`, each limited to the documents stemmed so."""
    groups: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for stemmer in STEMMERS:
        clause = build(stemmer)
        groups.setdefault(json.dumps(clause, sort_keys=True), (clause, []))[1].append(stemmer)
    if len(groups) == 1:
        return next(iter(groups.values()))[0]
    should = []
    for clause, stemmers in groups.values():
        if "lowercase" in stemmers:  # lowercase is every stemmer the query does not know
            others = [s for s in STEMMERS if s not in stemmers]
            should.append({"bool": {"filter": [clause], "must_not": [{"terms": {"stemmer": others}}]}})
        else:
            should.append({"bool": {"filter": [{"terms": {"stemmer": stemmers}}, clause]}})
    return {"bool": {"should": should, "minimum_should_match": 1}}


def _phrase(words: tuple[str, ...], fields: list[str]) -> dict[str, Any]:
    if not words:
        return {"match_none": {}}
    return {"multi_match": {"query": " ".join(words), "type": "phrase", "fields": fields}}


def _span_words(words: tuple[str, ...], field_name: str) -> dict[str, Any]:
    if len(words) == 1:
        return {"span_term": {field_name: words[0]}}
    clauses = [{"span_term": {field_name: w}} for w in words]
    return {"span_near": {"clauses": clauses, "slop": 0, "in_order": True}}


def _term(field_name: str, value: str) -> dict[str, Any]:
    return {"term": {field_name: {"value": value, "case_insensitive": True}}}


def _any(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    return {"bool": {"should": clauses, "minimum_should_match": 1}}


_BARE_TERM = re.compile(r"\w+(?:[-']\w+)*")
_BARE_VALUE = re.compile(r'[^\s()"]+')


class Node:
    canonical: str
    rank = 0  # sort order among AND/OR operands: words first, then entities, filters, groups, negations

    def matches(self, view: ArticleView) -> bool:
        raise NotImplementedError

    def es(self) -> dict[str, Any]:
        raise NotImplementedError

    def anchored(self) -> bool:
        """True when every match must contain this node's words or entity."""
        return True

    def positives(self) -> Iterator[Node]:
        yield self


class Operand(Node):
    """A term, phrase, exact form or wildcard: what NEAR accepts."""

    def spans(self, view: ArticleView) -> tuple[list[int], int]:
        """Sorted start positions in the article, and the length of each span."""
        raise NotImplementedError

    def span(self, section: str, stemmer: str) -> tuple[str, dict[str, Any]]:
        """The indexed field this operand lives in for a section (title/text), and its ES span query."""
        raise NotImplementedError


class Words(Operand):
    """Words matched on their stems, consecutively."""

    def __init__(self, words: tuple[str, ...]):
        self.words = words
        text = " ".join(words)
        self.canonical = text if len(words) == 1 and _BARE_TERM.fullmatch(text) else f'"{text}"'
        self._stems: dict[str, tuple[str, ...]] = {}

    def stems(self, stemmer: str) -> tuple[str, ...]:
        """The query's stems as the stemmed fields index them, computed once per stemmer."""
        stems = self._stems.get(stemmer)
        if stems is None:
            language = _STEMMER_LANGUAGE.get(stemmer, "und")
            stems = self._stems[stemmer] = tuple(standard_tokens(" ".join(stem_tokens(list(self.words), language))))
        return stems

    def spans(self, view: ArticleView) -> tuple[list[int], int]:
        stems = self.stems(view.stemmer)
        return view.stems.phrase_starts(stems), len(stems)

    def matches(self, view: ArticleView) -> bool:
        return bool(view.stems.phrase_starts(self.stems(view.stemmer)))

    def es(self) -> dict[str, Any]:
        return _per_stemmer(lambda s: _phrase(self.stems(s), ["title_stems", "text_stems"]))

    def span(self, section: str, stemmer: str) -> tuple[str, dict[str, Any]]:
        return f"{section}_stems", _span_words(self.stems(stemmer), f"{section}_stems")


class Exact(Operand):
    """Lowercased surface words, consecutively."""

    def __init__(self, words: tuple[str, ...]):
        self.words = words
        text = " ".join(words)
        self.canonical = f"exact:{text}" if len(words) == 1 and _BARE_VALUE.fullmatch(text) else f'exact:"{text}"'

    def spans(self, view: ArticleView) -> tuple[list[int], int]:
        return view.surface.phrase_starts(self.words), len(self.words)

    def matches(self, view: ArticleView) -> bool:
        return bool(view.surface.phrase_starts(self.words))

    def es(self) -> dict[str, Any]:
        return _phrase(self.words, ["title", "text"])

    def span(self, section: str, stemmer: str) -> tuple[str, dict[str, Any]]:
        return section, _span_words(self.words, section)


class Prefix(Operand):
    """Surface words starting with a prefix."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.canonical = f"{prefix}*"

    def spans(self, view: ArticleView) -> tuple[list[int], int]:
        return view.surface.prefix_starts(self.prefix), 1

    def matches(self, view: ArticleView) -> bool:
        return next(view.surface.prefixed(self.prefix), None) is not None

    def es(self) -> dict[str, Any]:
        return _any([{"prefix": {section: {"value": self.prefix}}} for section in _SECTIONS])

    def span(self, section: str, stemmer: str) -> tuple[str, dict[str, Any]]:
        return section, {"span_multi": {"match": {"prefix": {section: {"value": self.prefix}}}}}


class Near(Node):
    """Two operands within `distance` positions, either order: Lucene's unordered span_near with
    slop distance-1 (width of both spans minus their lengths at most the slop; overlap allowed)."""

    def __init__(self, left: Operand, right: Operand, distance: int):
        self.operands = tuple(sorted((left, right), key=lambda n: n.canonical))
        self.distance = distance
        self.canonical = f"{self.operands[0].canonical} NEAR/{distance} {self.operands[1].canonical}"

    def matches(self, view: ArticleView) -> bool:
        (a_starts, la), (b_starts, lb) = (operand.spans(view) for operand in self.operands)
        if not a_starts or not b_starts:
            return False
        slop = self.distance - 1
        for a in a_starts:
            i = bisect.bisect_left(b_starts, a - lb - slop)
            if i < len(b_starts) and b_starts[i] <= a + la + slop:
                return True
        return False

    def _section(self, section: str, stemmer: str) -> dict[str, Any]:
        spans = [operand.span(section, stemmer) for operand in self.operands]
        target = f"{section}_stems" if any(f != section for f, _ in spans) else section
        clauses = [q if f == target else {"span_field_masking": {"query": q, "field": target}} for f, q in spans]
        return {"span_near": {"clauses": clauses, "slop": self.distance - 1, "in_order": False}}

    def es(self) -> dict[str, Any]:
        return _per_stemmer(lambda s: _any([self._section(section, s) for section in _SECTIONS]))

    def positives(self) -> Iterator[Node]:
        yield from self.operands


class Filter(Node):
    """language:, country:, source: (id or domain) — keyword equality, case-insensitive."""

    rank = 2

    def __init__(self, name: str, value: str):
        self.name, self.value = name, value.lower()
        shown = self.value if _BARE_VALUE.fullmatch(self.value) else f'"{self.value}"'
        self.canonical = f"{name}:{shown}"

    def matches(self, view: ArticleView) -> bool:
        if self.name == "source":
            return self.value in (view.source_id, view.domain)
        return self.value == (view.language if self.name == "language" else view.country)

    def es(self) -> dict[str, Any]:
        if self.name == "source":
            return _any([_term("source_id", self.value), _term("domain", self.value)])
        if self.name == "country":
            return _term("country", self.value.upper())
        return _term("language", self.value)

    def anchored(self) -> bool:
        return False

    def positives(self) -> Iterator[Node]:
        return iter(())


class Entity(Node):
    """A canonical entity of the article, by name or id, case-insensitive."""

    rank = 1

    def __init__(self, value: str):
        self.value = " ".join(value.split()).lower()
        shown = self.value if _BARE_VALUE.fullmatch(self.value) else f'"{self.value}"'
        self.canonical = f"entity:{shown}"

    def matches(self, view: ArticleView) -> bool:
        return self.value in view.entities

    def es(self) -> dict[str, Any]:
        return _any([_term(f, self.value) for f in ("people", "organisations", "places", "entity_ids")])


class Not(Node):
    rank = 4

    def __init__(self, child: Node):
        self.child = child
        inner = child.canonical
        self.canonical = f"NOT ({inner})" if isinstance(child, And | Or) else f"NOT {inner}"

    def matches(self, view: ArticleView) -> bool:
        return not self.child.matches(view)

    def es(self) -> dict[str, Any]:
        return {"bool": {"must_not": [self.child.es()]}}

    def anchored(self) -> bool:
        return False

    def positives(self) -> Iterator[Node]:
        return iter(())


class And(Node):
    rank = 3

    def __init__(self, children: tuple[Node, ...]):
        self.children = children
        self.canonical = " AND ".join(f"({c.canonical})" if isinstance(c, Or) else c.canonical for c in children)
        # Cheap checks first: keyword filters before positional scans.
        self._order = sorted(children, key=lambda c: isinstance(c, Operand | Near | Not | And | Or))

    def matches(self, view: ArticleView) -> bool:
        return all(child.matches(view) for child in self._order)

    def es(self) -> dict[str, Any]:
        positive = [c.es() for c in self.children if not isinstance(c, Not)]
        negative = [c.child.es() for c in self.children if isinstance(c, Not)]
        return {"bool": {**({"filter": positive} if positive else {}), **({"must_not": negative} if negative else {})}}

    def anchored(self) -> bool:
        return any(child.anchored() for child in self.children)

    def positives(self) -> Iterator[Node]:
        for child in self.children:
            yield from child.positives()


class Or(Node):
    rank = 3

    def __init__(self, children: tuple[Node, ...]):
        self.children = children
        self.canonical = " OR ".join(f"({c.canonical})" if isinstance(c, And) else c.canonical for c in children)

    def matches(self, view: ArticleView) -> bool:
        return any(child.matches(view) for child in self.children)

    def es(self) -> dict[str, Any]:
        return _any([c.es() for c in self.children])

    def anchored(self) -> bool:
        return all(child.anchored() for child in self.children)

    def positives(self) -> Iterator[Node]:
        for child in self.children:
            yield from child.positives()


def _group(kind: type[And] | type[Or], children: list[Node]) -> Node:
    flat: dict[str, Node] = {}
    for child in children:
        for c in child.children if isinstance(child, kind) else (child,):
            flat.setdefault(c.canonical, c)
    ordered = sorted(flat.values(), key=lambda c: (c.rank, c.canonical))
    return ordered[0] if len(ordered) == 1 else kind(tuple(ordered))


def _negate(child: Node) -> Node:
    return child.child if isinstance(child, Not) else Not(child)


# --- parsing -------------------------------------------------------------------------------------

_GRAMMAR = r"""
?start: or_expr
?or_expr: and_expr (OR and_expr)*
?and_expr: not_expr (AND? not_expr)*
?not_expr: NOT not_expr
         | NEG not_expr
         | near_expr
?near_expr: atom (NEAR atom)*
?atom: TERM
     | PHRASE
     | WILDCARD
     | FIELD
     | "(" or_expr ")"

OR: "OR"
AND: "AND"
NOT: "NOT"
NEAR.2: /NEAR(?:\/\d*)?(?![\w'\u2019-])/
NEG: /-(?=[\w"(*])/
FIELD.3: /\w+:(?:"[^"]*"|[^\s()"]*)/
WILDCARD.2: /(?:\w[\w'\u2019-]*)?\*[\w'\u2019*-]*/
TERM: /\w+(?:[-'\u2019]\w+)*/
PHRASE: /"[^"]*"/
%ignore /\s+/
"""

# The basic lexer, not the contextual one: with it AND/OR/NOT are keywords everywhere (the
# contextual lexer reads a misplaced "OR" as a word and the query silently changes meaning).
_PARSER = Lark(_GRAMMAR, parser="lalr", lexer="basic", propagate_positions=True, maybe_placeholders=False)

_FIELDS = ("exact", "language", "country", "source", "entity")
_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{2,4})?")
_COUNTRY = re.compile(r"[a-z]{2}")
_SOURCE = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_PREFIX = re.compile(r"\w+(?:['\u2019]\w+)*")
_OPERATOR_TYPES = frozenset({"OR", "AND", "NOT", "NEG", "NEAR"})


def _fail(column: int, why: str) -> QueryError:
    return QueryError(f"query error at column {column}: {why}", column)


def _shown(ch: str) -> str:
    return ch if ch.isprintable() and not ch.isspace() else f"U+{ord(ch):04X}"


def _prescan(text: str) -> None:
    """Refuse, before parsing, what is too long, not text, or unbalanced."""
    if len(text) > MAX_QUERY_CHARS:
        raise _fail(MAX_QUERY_CHARS + 1, f"the query is {len(text)} characters long; the limit is {MAX_QUERY_CHARS}")
    if not text.strip():
        raise _fail(1, "empty query")
    opened: list[int] = []
    quote = None
    for i, ch in enumerate(text):
        if ch == '"':
            quote = i if quote is None else None
        elif unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\t\n\r":
            raise _fail(i + 1, f"control character {_shown(ch)} is not allowed")
        elif quote is not None:
            continue
        elif ch == "(":
            opened.append(i)
            if len(opened) > MAX_DEPTH:
                raise _fail(i + 1, f"parentheses nested deeper than {MAX_DEPTH}")
        elif ch == ")":
            if not opened:
                raise _fail(i + 1, "unbalanced parenthesis: this ) closes nothing")
            opened.pop()
    if quote is not None:
        raise _fail(quote + 1, "unterminated quote")
    if opened:
        raise _fail(opened[-1] + 1, "unbalanced parenthesis: this ( is never closed")


def _explain(exc: LarkError, text: str) -> QueryError:
    if isinstance(exc, UnexpectedCharacters):
        column, ch = exc.pos_in_stream + 1, exc.char
        return _fail(column, f'unexpected character "{_shown(ch)}": put anything but words and operators in "quotes"')
    if isinstance(exc, UnexpectedToken):
        token = exc.token
        if token.type == "$END":
            last = re.search(r"(AND|OR|NOT|NEAR(?:/\d*)?|-)\s*$", text)
            if last:
                column = last.start(1) + 1
                why = "an operator needs a term after it"
                return QueryError(f'query ends with "{last.group(1)}" at column {column}: {why}', column)
            return _fail(len(text), "the query is incomplete")
        column = (token.start_pos or 0) + 1
        if token.type == "NEAR" or ("NOT" not in exc.expected and token.type in _OPERATOR_TYPES):
            why = "NEAR needs a term, phrase or wildcard on each side"
        elif token.type in _OPERATOR_TYPES:
            why = "an operator needs a term on each side"
        elif token.type == "RPAR":
            why = "empty parentheses, or an operator with nothing after it"
        else:
            why = "it cannot stand here"
        return QueryError(f'unexpected "{token.value}" at column {column}: {why}', column)
    return _fail(1, "the query cannot be parsed")


def _check_depth(tree: Tree | Token) -> None:
    # Iterative, before the recursive conversion: a chain of 2000 NOTs must not reach the stack limit.
    stack: list[tuple[Tree | Token, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Tree):
            if depth + 1 > MAX_DEPTH:
                raise _fail(_column(node), f"operators nested deeper than {MAX_DEPTH}")
            stack.extend((child, depth + 1) for child in node.children)


def _column(node: Tree | Token) -> int:
    if isinstance(node, Token):
        return (node.start_pos or 0) + 1
    return (getattr(node.meta, "start_pos", 0) or 0) + 1


class _Converter:
    """From lark's tree to query nodes, validating what the grammar lets through."""

    def __init__(self, text: str):
        self.text = text
        self.clauses = 0

    def leaf(self, node: Token) -> Node:
        self.clauses += 1
        if self.clauses > MAX_CLAUSES:
            raise _fail(_column(node), f"more than {MAX_CLAUSES} clauses: split the subscription")
        column = _column(node)
        if node.type == "TERM":
            return self.words(node.value, column)
        if node.type == "PHRASE":
            return self.words(node.value[1:-1], column, phrase=True)
        if node.type == "WILDCARD":
            return self.prefix(node.value, column)
        return self.field(node.value, column)

    def words(self, text: str, column: int, phrase: bool = False) -> Words:
        words = tuple(tokens(text))
        if not words or not standard_tokens(" ".join(words)):
            what = f'phrase "{text}"' if phrase else f'term "{text}"'
            raise _fail(column, f"{what} has no letters or digits")
        return Words(words)

    def prefix(self, wildcard: str, column: int) -> Prefix:
        stem = wildcard[:-1]
        if wildcard == "*":
            raise _fail(column, "a bare * would match every article")
        if not wildcard.endswith("*") or "*" in stem:
            raise _fail(column, f'wildcard "{wildcard}": only a trailing * is supported')
        if not _PREFIX.fullmatch(stem) or len(standard_tokens(stem)) != 1:
            raise _fail(column, f'wildcard "{wildcard}": put one word before * (no hyphen)')
        if len(stem) < MIN_PREFIX_CHARS:
            raise QueryError(
                f'wildcard "{wildcard}" at column {column} is too costly: '
                f"give at least {MIN_PREFIX_CHARS} characters before *",
                column,
            )
        return Prefix(_lower(stem))

    def field(self, token: str, column: int) -> Node:
        name, _, raw = token.partition(":")
        name = name.lower()
        if name not in _FIELDS:
            known = ", ".join(f"{f}:" for f in _FIELDS)
            raise _fail(column, f'unknown field "{name}:" (known: {known}); quote text containing ":"')
        quoted = raw.startswith('"')
        value = raw[1:-1] if quoted else raw
        if not value.strip():
            raise _fail(column, f"{name}: needs a value right after the colon, e.g. {name}:{_EXAMPLES[name]}")
        value = value.strip()
        if name == "exact":
            if not quoted and value.endswith("*"):
                return self.prefix(value, column + len("exact:"))
            words = tuple(standard_tokens(value))
            if not words:
                raise _fail(column, f"exact:{raw} has no letters or digits")
            return Exact(words)
        if name == "entity":
            return Entity(value)
        pattern = {"language": _LANGUAGE, "country": _COUNTRY, "source": _SOURCE}[name]
        if not pattern.fullmatch(value.lower()):
            raise _fail(column, f"{name}:{raw} is not a valid value, e.g. {name}:{_EXAMPLES[name]}")
        return Filter(name, value)

    def convert(self, node: Tree | Token) -> Node:
        if isinstance(node, Token):
            return self.leaf(node)
        parts = [c for c in node.children if not (isinstance(c, Token) and c.type in _OPERATOR_TYPES)]
        if node.data == "or_expr":
            return _group(Or, [self.convert(c) for c in parts])
        if node.data == "and_expr":
            return _group(And, [self.convert(c) for c in parts])
        if node.data == "not_expr":
            return _negate(self.convert(node.children[-1]))
        if node.data == "near_expr":
            return self.near(node)
        raise _fail(_column(node), "the query cannot be parsed")

    def near(self, node: Tree) -> Near:
        left, near, right, *rest = node.children
        if rest:
            raise _fail(_column(rest[0]), "one NEAR joins two operands: write (a NEAR/5 b) AND (b NEAR/5 c)")
        digits = near.value.partition("/")[2]
        if not digits:
            raise _fail(_column(near), "NEAR needs a distance, e.g. NEAR/5")
        if len(digits) > 3 or not 1 <= int(digits) <= MAX_NEAR:
            raise _fail(_column(near), f"{near.value}: the distance must be 1 to {MAX_NEAR}")
        operands = []
        for side in (left, right):
            operand = self.convert(side)
            if not isinstance(operand, Operand):
                what = "a filter" if isinstance(operand, Filter | Entity) else "a group"
                raise _fail(self._opening(side), f"NEAR needs a term, phrase or wildcard on each side, not {what}")
            operands.append(operand)
        return Near(operands[0], operands[1], int(digits))

    def _opening(self, node: Tree | Token) -> int:
        # A group's tree starts inside its parentheses; point at the "(".
        start = _column(node) - 1
        before = self.text[:start].rstrip()
        return len(before) if before.endswith("(") else start + 1


_EXAMPLES = {"exact": "amunisinya", "language": "id", "country": "ID", "source": "kompastv", "entity": '"Kim Jong Un"'}


@dataclass(frozen=True)
class Query:
    """A parsed query. `canonical` is the same for equivalent spellings (whitespace, case, redundant
    parentheses, order of AND/OR/NEAR operands, repeats, double negation): the key of a shared watch."""

    text: str
    canonical: str
    root: Node = field(repr=False, compare=False)

    def matches(self, article: ArticleView) -> bool:
        return self.root.matches(article)

    def to_elasticsearch(self) -> dict[str, Any]:
        """An ES bool query (filter context) selecting the articles `matches` selects."""
        query = self.root.es()
        return query if "bool" in query else {"bool": {"filter": [query]}}

    def positive_terms(self) -> tuple[str, ...]:
        """The terms, phrases, wildcards and entities a match may contain (none under a NOT), canonical."""
        return tuple(dict.fromkeys(node.canonical for node in self.root.positives()))


@lru_cache(maxsize=16384)
def parse_query(text: str) -> Query:
    """Parse and validate a query; raises QueryError (never a parser error) on anything unusable.
    Cached by text (a Query is immutable): thousands of subscriptions share a few queries, and every
    reader of the subscriptions topic re-reads them all at start."""
    if not isinstance(text, str):
        raise QueryError("query error: the query must be text")
    _prescan(text)
    try:
        tree = _PARSER.parse(text)
    except LarkError as exc:
        raise _explain(exc, text) from None
    except RecursionError:
        raise _fail(1, "the query is nested too deeply") from None
    _check_depth(tree)
    try:
        root = _Converter(text).convert(tree)
    except RecursionError:
        raise _fail(1, "the query is nested too deeply") from None
    if not root.anchored():
        raise _fail(
            1,
            "the query needs a term, phrase, wildcard or entity that every match contains "
            "(filters or NOT alone would match most of the news)",
        )
    return Query(text, root.canonical, root)
