"""Stems for search and for term matching — the very same ones, so the articles behind a spike are
the articles a search on the stemmed field shows. Pure.

Indonesian and Malay: PySastrawi (affixes and clitics: "amunisinya" → "amunisi"). English: the
Snowball stemmer (PyStemmer). Other languages: lowercased tokens. Stemming is cached per word form:
news repeats its vocabulary, and Sastrawi is slow on a cold word."""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer
from Sastrawi.Stemmer.StemmerFactory import StemmerFactory

TOKEN = re.compile(r"\w+(?:[-']\w+)*", re.UNICODE)
MAX_WORD_CHARS = 40  # longer "words" are junk (URLs, base64); kept lowercased, not stemmed

_sastrawi = StemmerFactory().create_stemmer(isDev=False)
_snowball = Stemmer.Stemmer("english")


@lru_cache(maxsize=200_000)
def _sastrawi_word(word: str) -> str:
    if len(word) > MAX_WORD_CHARS or not word.isalpha():
        return word
    return _sastrawi.stem(word) or word


def stemmer_name(language: str) -> str:
    if language in ("id", "ms"):
        return "sastrawi"
    if language == "en":
        return "snowball-english"
    return "lowercase"


def tokens(text: str) -> list[str]:
    return [t.lower() for t in TOKEN.findall(text)]


def stem_tokens(words: list[str], language: str) -> list[str]:
    """Stems of already lowercased tokens."""
    if language in ("id", "ms"):
        out = []
        for word in words:
            # Sastrawi drops hyphenated reduplication ("negara-negara" → "negara") itself.
            out.append(_sastrawi_word(word) if "-" not in word else _sastrawi.stem(word) or word)
        return out
    if language == "en":
        return _snowball.stemWords(words)
    return list(words)


def stem_text(text: str, language: str) -> str:
    return " ".join(stem_tokens(tokens(text), language))
