"""Stems for search and for term matching — the very same ones, so the articles behind a spike are
the articles a search on the stemmed field shows. Pure.

Indonesian and Malay: PySastrawi (affixes and clitics: "amunisinya" → "amunisi"). English: the
Snowball stemmer (PyStemmer). Other languages: lowercased tokens. Stemming is cached per word form:
news repeats its vocabulary, and Sastrawi is slow on a cold word (a third of a millisecond). The cache
starts from a lexicon of Sastrawi's own stems for common news word forms (`models/stems-id.tsv.gz`,
built by `python -m pantau.enricher.build_stems`), so a fresh worker is fast from its first article."""

from __future__ import annotations

import functools
import gzip
import re
import sys
import threading
from pathlib import Path

import Stemmer
from Sastrawi.Stemmer.Context.Context import Context
from Sastrawi.Stemmer.Context.Removal import Removal
from Sastrawi.Stemmer.StemmerFactory import StemmerFactory

TOKEN = re.compile(r"\w+(?:[-']\w+)*", re.UNICODE)
MAX_WORD_CHARS = 40  # longer "words" are junk (URLs, base64); kept lowercased, not stemmed nor cached
# Distinct word forms one text has stemmed; past them its words stay lowercased. News uses a few hundred;
# 190 KB of words Sastrawi never saw took 6 s (a third of a millisecond each) and held the event loop.
# Counted per text, cached or not, so the same text always gets the same stems whatever the cache holds.
MAX_FORMS_PER_TEXT = 5000

LEXICON_PATH = Path(__file__).resolve().parent / "models" / "stems-id.tsv.gz"
# Word forms stemmed at run time beyond the lexicon; past this the cache is cleared back to the
# lexicon (a bound on memory; news vocabulary refills it within minutes).
MAX_LEARNED_FORMS = 200_000


class _SastrawiRe:
    """What Sastrawi's modules get as `re`: its stems unchanged, in 60 % of the time on a word it has not seen.

    Sastrawi calls `re.match(pattern, word)` about 120 times a word, each time through `re`'s pattern cache, and
    strips a candidate stem with `re.sub(stem, "", word, count=1)`: every new stem is a new pattern, so every
    cold word compiled regexes and pushed Sastrawi's own out of `re`'s 512-entry cache. Here a literal pattern
    is `str.replace` (the same leftmost first match) and the others are compiled once."""

    _SPECIAL = frozenset(".^$*+?{}[]\\|()")

    def __getattr__(self, name: str):
        return getattr(re, name)

    @staticmethod
    @functools.lru_cache(maxsize=1024)
    def _compiled(pattern: str, flags: int) -> re.Pattern:
        return re.compile(pattern, flags)

    def match(self, pattern: str, string: str, flags: int = 0):
        return self._compiled(pattern, flags).match(string)

    def sub(self, pattern: str, repl: str, string: str, count: int = 0, flags: int = 0) -> str:
        if count == 1 and not flags and not repl and self._SPECIAL.isdisjoint(pattern):
            return string.replace(pattern, "", 1)
        return self._compiled(pattern, flags).sub(repl, string, count)


def _speed_up_sastrawi() -> None:
    fast = _SastrawiRe()
    for name, module in list(sys.modules.items()):
        if name.startswith("Sastrawi.") and getattr(module, "re", None) is re:
            module.re = fast


_PrefixPass = tuple[object, str, str, str] | None  # the removal one pass makes: visitor, result, part, type
_MAX_PREFIX_PASSES = 100_000
_prefix_passes: dict[tuple[int, str], _PrefixPass] = {}
_sastrawi_prefix_pass = Context.accept_prefix_visitors


def _remembered_prefix_pass(context: Context, visitors: list) -> None:
    """Sastrawi's pass over its prefix rules, remembered per word. The pass depends on the word alone (the
    dictionary is fixed) and makes at most one removal, but Sastrawi runs it again on the same word when it
    restores a suffix, and different words meet in the same inner forms: 56 % of the passes on the
    benchmark's unseen words were repeats, each ~40 rule visits. Its return value is not used by Sastrawi."""
    word, removals = context.current_word, context.removals
    key = (id(visitors), word)
    if key in _prefix_passes and not context.process_is_stopped:
        made = _prefix_passes[key]
        if made is not None:
            visitor, result, part, affix = made
            removals.append(Removal(visitor, word, result, part, affix))
            context.current_word = result
        return
    before, stopped = len(removals), context.process_is_stopped
    _sastrawi_prefix_pass(context, visitors)
    if stopped or context.process_is_stopped:
        return  # a stopped context is not a word's own pass: nothing to remember
    if len(removals) == before and context.current_word == word:
        made = None
    elif len(removals) == before + 1 and removals[-1].subject == word and context.current_word == removals[-1].result:
        last = removals[-1]
        made = (last.visitor, last.result, last.removedPart, last.affixType)
    else:
        return
    if len(_prefix_passes) >= _MAX_PREFIX_PASSES:
        _prefix_passes.clear()
    _prefix_passes[key] = made


_sastrawi = StemmerFactory().create_stemmer(isDev=False)
_speed_up_sastrawi()  # after the factory: its modules are all imported by then
Context.accept_prefix_visitors = _remembered_prefix_pass
_sastrawi_word_stemmer = _sastrawi.delegatedStemmer  # Sastrawi's Stemmer under its text cache
_snowball = Stemmer.Stemmer("english")
_cache: dict[str, str] = {}
_lexicon_size = 0
_lock = threading.Lock()


def sastrawi_stem(word: str) -> str:
    """Sastrawi's stem of one lowercased word form, uncached."""
    if len(word) > MAX_WORD_CHARS:
        return word
    if "-" in word:
        # A reduplication ("negara-negara", "pesaing-pesaingnya"): Sastrawi's own rule gives the root when
        # both halves have it, else the word. Its word entry point, not its text one: that one keeps every
        # text it ever saw in a dict nobody clears.
        if not word.replace("-", "").isalpha():
            return word
        return _sastrawi_word_stemmer.stem_word(word) or word
    if not word.isalpha():
        return word
    # The word itself, not Sastrawi's text entry point: that one re-normalises the text a word at a
    # time (a third of the time on a word it cannot stem) and turns letters outside a-z into spaces
    # ("londoño" came out as "londo o", two stems for one word).
    return _sastrawi_word_stemmer.stem_word(word) or word


def load_lexicon(path: Path = LEXICON_PATH) -> int:
    """Fill the stem cache from the lexicon (once per process); returns how many forms it holds."""
    global _lexicon_size
    with _lock:
        if _lexicon_size:
            return _lexicon_size
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            for line in lines:
                form, _, stem = line.rstrip("\n").partition("\t")
                _cache[form] = stem or form
        _lexicon_size = len(_cache)
    return _lexicon_size


def _sastrawi_word(word: str) -> str:
    stem = _cache.get(word)
    if stem is None:
        if len(word) > MAX_WORD_CHARS:
            return word  # junk: never cached (a unique 190 KB token a text held 0.4 MB for good)
        if not _lexicon_size:
            load_lexicon()
            return _sastrawi_word(word)
        if len(_cache) > _lexicon_size + MAX_LEARNED_FORMS:
            with _lock:
                for form in list(_cache)[_lexicon_size:]:  # dicts keep insertion order: the lexicon comes first
                    del _cache[form]
        stem = _cache[word] = sastrawi_stem(word)
    return stem


def stemmer_name(language: str) -> str:
    if language in ("id", "ms"):
        return "sastrawi"
    if language == "en":
        return "snowball-english"
    return "lowercase"


def tokens(text: str) -> list[str]:
    """Lowercased words. A hyphenated compound is its parts ("anti-korupsi" counts for "korupsi", "Jong-un"
    is "Kim Jong Un"), as Elasticsearch's standard tokenizer splits the stemmed field; a reduplication
    stays one word, which Sastrawi stems to its root ("negara-negara", "pesaing-pesaingnya": one half of
    three letters or more within the other, a clitic after them allowed: "malaikat-malaikat-nya")."""
    out = []
    for token in TOKEN.findall(text):
        token = token.lower()
        if "-" in token and not _reduplication(token.split("-")):
            out.extend(token.split("-"))
        else:
            out.append(token)
    return out


_CLITICS = frozenset({"ku", "mu", "nya", "lah", "kah", "tah", "pun"})


def _reduplication(parts: list[str]) -> bool:
    if len(parts) == 3 and parts[2] in _CLITICS:
        parts = parts[:2]
    if len(parts) != 2:
        return False
    a, b = parts
    if a == b:
        return True
    # "pesaing-pesaingnya", "berbondong-bondong"; not "al-hilal" or "e-commerce", whose short half is a
    # word of its own that search splits off
    return min(len(a), len(b)) >= 3 and (a in b or b in a)


def stem_tokens(words: list[str], language: str) -> list[str]:
    """Stems of already lowercased tokens."""
    if language in ("id", "ms"):
        forms: set[str] = set()
        stems = []
        for word in words:
            if word not in forms and len(forms) >= MAX_FORMS_PER_TEXT:
                stems.append(word)
                continue
            forms.add(word)
            stems.append(_sastrawi_word(word))
        return stems
    if language == "en":
        return _snowball.stemWords(words)
    return list(words)


def stem_text(text: str, language: str) -> str:
    return " ".join(stem_tokens(tokens(text), language))
