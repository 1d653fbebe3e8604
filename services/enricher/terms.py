"""Watched terms, matched Indonesian-aware with one multi-pattern automaton. Pure.

A term matches on stems by default — "amunisinya" and "amunisi-amunisi" count for "amunisi" — and
on the exact lowercased surface form when the rule asks for it (`exact: true`). Phrases match as
consecutive tokens. Terms are stemmed with the stemmer of the article's language, so the matcher
and the stemmed search field agree. One Aho-Corasick automaton per (language, mode) serves
thousands of terms in one pass over the article.

The terms file (YAML):

    terms:
      - amunisi
      - Kim Jong Un
      - {term: amunisinya, exact: true}
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import ahocorasick
import yaml

from pantau.enricher.stems import stem_tokens, tokens


class TermsError(ValueError):
    """The terms file is invalid; the message names the file and the entry."""


@dataclass(frozen=True)
class WatchedTerm:
    term: str
    exact: bool = False


def parse_terms(text: str, origin: str = "<terms>") -> list[WatchedTerm]:
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise TermsError(f"{origin}: not valid YAML: {exc}") from None
    entries = doc.get("terms") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise TermsError(f"{origin}: expected a mapping with a `terms` list")
    terms = []
    for n, entry in enumerate(entries):
        if isinstance(entry, str):
            entry = {"term": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("term"), str) or not tokens(entry["term"]):
            raise TermsError(f"{origin}: terms[{n}]: needs a `term` with at least one word")
        unknown = set(entry) - {"term", "exact"}
        if unknown:
            raise TermsError(f"{origin}: terms[{n}] ({entry['term']}): unknown keys {sorted(unknown)}")
        exact = entry.get("exact", False)
        if not isinstance(exact, bool):  # bool("false") is True: a quoted "false" would mean exact
            raise TermsError(f"{origin}: terms[{n}] ({entry['term']}): `exact` must be true or false, got {exact!r}")
        terms.append(WatchedTerm(entry["term"].strip(), exact))
    return terms


def load_terms(path: Path) -> list[WatchedTerm]:
    try:
        return parse_terms(path.read_text(encoding="utf-8"), str(path))
    except OSError as exc:
        raise TermsError(f"{path}: cannot read: {exc.strerror}") from None


def _framed(words: list[str]) -> str:
    return " " + " ".join(words) + " "


class TermMatcher:
    def __init__(self, terms: list[WatchedTerm]):
        self.terms = list(dict.fromkeys(terms))
        self._automata: dict[tuple[str, bool], ahocorasick.Automaton | None] = {}

    def _automaton(self, language: str, exact: bool) -> ahocorasick.Automaton | None:
        key = (language, exact)
        if key not in self._automata:
            automaton = ahocorasick.Automaton()
            for term in self.terms:
                if term.exact != exact:
                    continue
                words = tokens(term.term)
                pattern = _framed(words if exact else stem_tokens(words, language))
                labels = automaton.get(pattern, ())
                automaton.add_word(pattern, (*labels, term.term))
            if len(automaton):
                automaton.make_automaton()
                self._automata[key] = automaton
            else:
                self._automata[key] = None
        return self._automata[key]

    def match(self, surface: list[str], stems: list[str], language: str) -> list[dict]:
        """Counts of every watched term in one field, given its lowercased tokens and their stems."""
        return self.match_fields([(surface, stems)], language)

    def match_fields(self, fields: list[tuple[list[str], list[str]]], language: str) -> list[dict]:
        """Counts of every watched term over several fields (title, text), each matched on its own: a
        phrase does not run from the end of the title into the text, as a phrase search on the
        separately indexed fields would not."""
        counts: Counter[tuple[str, bool]] = Counter()
        for surface, stems in fields:
            for exact, words in ((False, stems), (True, surface)):
                automaton = self._automaton(language, exact)
                if automaton is None or not words:
                    continue
                for _, labels in automaton.iter(_framed(words)):
                    for label in labels:
                        counts[(label, exact)] += 1
        return [{"term": t, "count": c, "exact": e} for (t, e), c in sorted(counts.items())]
