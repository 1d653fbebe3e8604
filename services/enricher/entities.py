"""Named entities (PER, ORG, LOC) in an article, linked to canonical ids where the gazetteer knows them. Pure.

Indonesian: a CRF (python-crfsuite, `models/ner-id.crfsuite`, trained by `train_ner`; among its features, the word
clusters of `models/ner-clusters.tsv.gz`, learned from unlabelled news by `build_clusters`) finds mentions; the
gazetteer (`data/gazetteer.json`, built by `build_gazetteer`) links them to canonical ids and adds the aliases the
model missed. English: the gazetteer plus capitalisation-and-context rules. Other languages: the gazetteer alone.

Offsets are exact character offsets into the field they came from. Both the model and the gazetteer are loaded
lazily, once per process, on the first call; after that a call does no I/O. Nothing here raises on any `str` input:
hostile text (binary junk, emoji, right-to-left scripts, megabytes) costs time linear in its length."""

from __future__ import annotations

import bisect
import gzip
import json
import re
from collections import Counter
from dataclasses import dataclass
from functools import cache
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import NamedTuple

import ahocorasick
import numpy as np
import pycrfsuite
from Sastrawi.StopWordRemover.StopWordRemoverFactory import StopWordRemoverFactory

HERE = Path(__file__).resolve().parent
GAZETTEER_PATH = HERE / "data" / "gazetteer.json"
MODEL_PATH = HERE / "models" / "ner-id.crfsuite"
CLUSTERS_PATH = HERE / "models" / "ner-clusters.tsv.gz"
TYPES = ("PER", "ORG", "LOC")
MODEL_MAX_CHARS = 50_000  # per field; news is far shorter, beyond this is junk, which the gazetteer alone reads
MAX_SENTENCE_TOKENS = 150  # bounds the decoder's grid on text without sentence punctuation
MAX_MENTION_CHARS = 200
WORD_CACHE = 100_000  # word forms whose scores stay cached (< 30 MB); 2 fields of MODEL_MAX_CHARS fit in one call

# Tokens for the model: words keep inner hyphens, dots and apostrophes ("Jong-Un", "KOMPAS.TV", "Ma'ruf"), initialisms
# keep their dots ("U.S."), every other non-space character is a token of its own (punctuation, emoji).
TOKEN = re.compile(r"(?:[^\W\d_]\.){2,}|\w+(?:[-'\u2019.&]\w+)*|[^\w\s]")
SENTENCE_END = frozenset(".!?\u2026")
OPENERS = frozenset("\"'(\u201c\u2018")
_WORD = re.compile(r"\w+")
# Alias matching folds hyphens and line breaks to spaces and curly apostrophes to straight ones, one character for
# one, so "Kim Jong-Un" matches the alias "Kim Jong Un" and "Rusia-Korea Utara" holds "Rusia" and "Korea Utara".
_FOLD = str.maketrans({"-": " ", "\u2010": " ", "\u2019": "'", "\n": " ", "\r": " ", "\t": " ", "\u00a0": " "})


@dataclass(frozen=True)
class Mention:
    """One entity mention; `text == <field value>[start:end]`. canonical_* are None for names the gazetteer lacks."""

    field: str
    start: int
    end: int
    type: str
    text: str
    canonical_id: str | None
    canonical_name: str | None

    def as_dict(self) -> dict:
        # dataclasses.asdict deep-copies recursively: a seventh of the enrichment time on news.
        return {"field": self.field, "start": self.start, "end": self.end, "type": self.type, "text": self.text,
                "canonical_id": self.canonical_id, "canonical_name": self.canonical_name}  # fmt: skip


class Entity(NamedTuple):
    id: str
    name: str
    type: str


Span = tuple[int, int, str]  # (start, end, type) in characters of one field


class AliasMatch(NamedTuple):
    start: int
    end: int
    entity: Entity


def alias_key(text: str, exact: bool) -> str:
    """The automaton key of an alias; two aliases with one key are one alias (the builder refuses such ties)."""
    key = " ".join(text.translate(_FOLD).split())
    return key if exact else key.lower()


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


class Gazetteer:
    """Aliases in two Aho-Corasick automata: exact-case ones over the text, the others over its lowercase form.

    A match must start and end on word boundaries; a case-insensitive alias must also start with a non-lowercase
    letter in the text; an alias restricted to languages matches only in those."""

    def __init__(self, entities: list[dict]) -> None:
        self._exact = ahocorasick.Automaton()
        self._folded = ahocorasick.Automaton()
        for record in entities:
            entity = Entity(record["id"], record["name"], record["type"])
            for alias in record["aliases"]:
                key = alias_key(alias["text"], alias["exact"])
                automaton = self._exact if alias["exact"] else self._folded
                if key and not automaton.exists(key):
                    automaton.add_word(key, (len(key), frozenset(alias.get("langs", ())), entity))
        for automaton in (self._exact, self._folded):
            if len(automaton):
                automaton.make_automaton()

    def match(self, text: str, language: str) -> list[AliasMatch]:
        """Non-overlapping alias matches in `text`, longest first, as character spans of `text`."""
        folded = text.translate(_FOLD)
        lowered = folded.lower()
        if len(lowered) != len(folded):  # a few letters lowercase to two characters: keep offsets aligned
            lowered = "".join(c if len(c.lower()) != 1 else c.lower() for c in folded)
        found = []
        for automaton, haystack in ((self._exact, folded), (self._folded, lowered)):
            if automaton.kind != ahocorasick.AHOCORASICK:
                continue
            for last, (size, langs, entity) in automaton.iter(haystack):
                start, end = last + 1 - size, last + 1
                inside_word = start > 0 and _is_word_char(folded[start - 1])
                if inside_word or (end < len(folded) and _is_word_char(folded[end])):
                    continue
                if (langs and language not in langs) or (automaton is self._folded and folded[start].islower()):
                    continue
                found.append((start, end, entity))
        found.sort(key=lambda f: (f[0] - f[1], f[0]))
        taken = bytearray(len(text))
        matches = []
        for start, end, entity in found:
            if not any(taken[start:end]):
                taken[start:end] = b"\x01" * (end - start)
                matches.append(AliasMatch(start, end, entity))
        matches.sort()
        return matches


@cache
def gazetteer() -> Gazetteer:
    return Gazetteer(json.loads(GAZETTEER_PATH.read_text(encoding="utf-8"))["entities"])


@cache
def common_words() -> frozenset[str]:
    """Sastrawi's Indonesian root words: a capitalised common word is more often a sentence start than a name."""
    data = resources.files("Sastrawi.Stemmer").joinpath("data/kata-dasar.txt")
    return frozenset(data.read_text(encoding="utf-8").split())


@cache
def stop_words() -> frozenset[str]:
    """Sastrawi's Indonesian function words: alone and capitalised they start sentences, they do not name things."""
    return frozenset(StopWordRemoverFactory().get_stop_words())


# --- model features -----------------------------------------------------------------------------------------------

_CUE_WORDS = {
    # titles and honorifics before a person's name
    "TTL": "presiden wapres menteri menko mendagri menlu menhan menkeu gubernur wagub bupati wabup walikota wali "
    "bapak pak ibu bu jenderal jend kapolri kapolda kapolres panglima ketua ketum wakil direktur dirut sekjen "
    "kepala mantan sang saudara sdr dr prof ir kh hj letjen mayjen brigjen kolonel kombes irjen komjen pangeran "
    "raja ratu sultan paus pastor ustaz ustadz kiai habib syekh tuan nyonya nona pelatih kapten jubir mr mrs ms "
    "president minister senator governor mayor general chancellor king queen pope secretary chairman ceo",
    # speech verbs that follow or precede the speaker
    "SAY": "kata ujar ungkap jelas tutur tegas terang imbuh sebut menurut said says told according",
    # words that start or end organisation names
    "ORG": "kementerian partai badan bank pt cv tbk universitas institut komisi dewan majelis mahkamah lembaga "
    "yayasan persatuan perusahaan perum persero dinas direktorat departemen pemerintah pemkot pemkab pemprov "
    "polda polres polsek kejaksaan kejati kejari pengadilan fraksi koalisi asosiasi ikatan himpunan serikat "
    "kantor sekolah sma smp sd smk klub fc grup group corp inc ltd council ministry party university agency "
    "bureau association union company committee commission institute federation harian koran majalah",
    # words that start place names
    "LOC": "kota kabupaten kab provinsi kecamatan kec desa kelurahan dusun kampung jalan jl pulau gunung sungai "
    "danau laut selat teluk pantai negara negeri wilayah kawasan daerah city county province island river mount "
    "lake street region",
    # compass points and size words that end place names
    "DIR": "barat timur utara selatan tengah raya pusat north south east west central",
    # prepositions before places and organisations
    "PRP": "di ke dari pada dalam oleh dengan untuk antara kepada in from at to of by with",
}
CUES = {word: cue for cue, words in _CUE_WORDS.items() for word in words.split()}
CONTEXT = (-2, -1, 1, 2)
_RUNS = re.compile(r"(.)\1+")


def shape(word: str) -> str:
    """Compressed shape: "Jakarta" → "Xx", "KPK" → "X", "5/9/2023" → "d/d/d", "Jong-Un" → "Xx-Xx"."""
    chars = ("X" if c.isupper() else "x" if c.islower() else "d" if c.isdigit() else c for c in word[:24])
    return _RUNS.sub(r"\1", "".join(chars))


@cache
def clusters() -> dict[str, tuple[str, str, str, str]]:
    """Lowercased word → (coarse, mid, fine cluster, capitalisation habit), learned from unlabelled news by
    `build_clusters`."""
    with gzip.open(CLUSTERS_PATH, "rt", encoding="utf-8") as f:
        rows = (line.rstrip("\n").split("\t") for line in f)
        return {row[0]: (row[1], row[2], row[3], row[4]) for row in rows}


_NO_CLUSTER = ("-", "-", "-", "-")


def word_features(word: str) -> tuple[list[str], dict[int, list[str]]]:
    """(features of the word itself, features it lends its neighbour at each context offset)."""
    core = word[1:-1] if len(word) > 2 and word[0] == "(" and word[-1] == ")" else word
    low, form = core.lower(), shape(core)
    coarse, mid, fine, cap = clusters().get(low, _NO_CLUSTER)
    own = ["b", "w:" + low, "s:" + form, "p2:" + low[:2], "p3:" + low[:3], "x2:" + low[-2:], "x3:" + low[-3:],
           "x4:" + low[-4:], "n:" + str(min(len(core), 8)), "c1:" + coarse, "c2:" + mid, "c3:" + fine,
           "cap:" + cap, "sc:" + form[:2] + cap]  # fmt: skip
    if core is not word:
        own.append("paren")
    cue = CUES.get(low)
    if cue:
        own.append("k:" + cue)
    common = low in common_words()
    if common:
        own.append("dict" if core[:1].islower() else "dictC")
    context = {}
    for offset in CONTEXT:
        feats = [f"{offset}w:{low}", f"{offset}s:{form}", f"{offset}c1:{coarse}", f"{offset}sc:{form[:2]}{cap}"]
        if cue:
            feats.append(f"{offset}k:{cue}")
        if abs(offset) == 1:
            feats.append(f"{offset}x3:{low[-3:]}")
            feats.append(f"{offset}c2:{mid}")
            feats.append(f"{offset}c3:{fine}")
            if common:
                feats.append(f"{offset}dict")
        context[offset] = feats
    return own, context


def bigram_pairs(lows: list[str]) -> list[tuple[str, str]]:
    return list(pairwise(lows))


def sparse_features(words: list[str], lows: list[str], tags: list[str]) -> list[tuple[int, str]]:
    """(index, feature) pairs of one sentence's sentence-dependent features other than bigrams: position, the
    capital-after-cue signal, and the gazetteer tags (`tags`, see `alias_tags`) around each word."""
    n = len(words)
    out = [(0, "first:" + shape(words[0][:1])), (n - 1, "last")]
    # a capital mid-sentence after a cue word ("Presiden", "di", "kata") is the strongest name signal
    out += [(i, "cap|" + (CUES.get(lows[i - 1]) or "-")) for i in range(1, n) if words[i][:1].isupper()]
    for j, tag in enumerate(tags):
        if tag:
            if j + 1 < n:
                out.append((j + 1, "-1g:" + tag))
            out.append((j, "0g:" + tag))
            if j > 0:
                out.append((j - 1, "1g:" + tag))
    return out


def sentence_features(words: list[str], tags: list[str]) -> list[list[str]]:
    """CRF features of one sentence, as training sees them; `Crf.tag` adds up the same weights without the strings.
    Bigram "bg-:a|b" belongs to b's position, "bg+:a|b" to a's."""
    lows = [w.lower() for w in words]
    out = []
    for i, word in enumerate(words):
        own, _ = word_features(word)
        feats = list(own)
        for offset in CONTEXT:
            j = i + offset
            feats.extend(word_features(words[j])[1][offset] if 0 <= j < len(words) else [f"{offset}pad"])
        out.append(feats)
    for i, (a, b) in enumerate(bigram_pairs(lows)):
        out[i + 1].append(f"bg-:{a}|{b}")
        out[i].append(f"bg+:{a}|{b}")
    for i, feat in sparse_features(words, lows, tags):
        out[i].append(feat)
    return out


def alias_tags(spans: list[tuple[int, int]], matches: list[AliasMatch]) -> list[str]:
    """IOB tags of the gazetteer matches over model tokens given as (start, end) character spans."""
    tags = [""] * len(spans)
    starts = [s for s, _ in spans]
    for match in matches:
        i = max(bisect.bisect_right(starts, match.start) - 1, 0)
        first = True
        while i < len(spans) and spans[i][0] < match.end:
            if spans[i][1] > match.start:
                tags[i] = ("B-" if first else "I-") + match.entity.type
                first = False
            i += 1
    return tags


def sentences(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """[first, last) token ranges of the sentences: after . ! ? …, at line breaks, and every MAX_SENTENCE_TOKENS
    tokens (text without punctuation must not make one unbounded sequence)."""
    out, first = [], 0
    for i, (start, end) in enumerate(spans):
        if i > first and ("\n" in text[spans[i - 1][1] : start] or i - first >= MAX_SENTENCE_TOKENS):
            out.append((first, i))
            first = i
        if text[start:end] in SENTENCE_END:
            out.append((first, i + 1))
            first = i + 1
    if first < len(spans):
        out.append((first, len(spans)))
    return out


class Crf:
    """The trained linear-chain CRF, decoded in numpy.

    crfsuite's own tagger looks every feature string up in the model for every token (~5 ms for a 3 KB article);
    here the per-label weights a word form contributes, as itself and as each neighbour, are summed once per form
    and cached, so tagging is a few array operations plus a batched Viterbi over all sentences of a field. The
    weights come from the model's dump, rounded to 6 decimals: labels agree with crfsuite's except on near-ties."""

    def __init__(self, path: Path) -> None:
        model = pycrfsuite.Tagger()
        model.open(str(path))
        dump = model.info()
        model.close()
        self.labels = sorted(dump.labels, key=lambda label: int(dump.labels[label]))
        index = {label: k for k, label in enumerate(self.labels)}
        self.transitions = np.zeros((len(self.labels), len(self.labels)))
        for (before, after), weight in dump.transitions.items():
            self.transitions[index[before], index[after]] = weight
        self.transitions_by_next = np.ascontiguousarray(self.transitions.T)  # [label, previous label]
        self.rows: dict[str, int] = {}
        for attribute, _ in dump.state_features:
            self.rows.setdefault(attribute, len(self.rows))
        self.weights = np.zeros((len(self.rows) + 1, len(self.labels)))  # the last row: unknown features
        for (attribute, label), weight in dump.state_features.items():
            self.weights[self.rows[attribute], index[label]] = weight
        self.pads = np.stack([self.score([f"{offset}pad"]) for offset in CONTEXT])
        # bigram features keyed by word pair: a tuple lookup instead of building a string per token
        self.before: dict[tuple[str, str], int] = {}
        self.after: dict[tuple[str, str], int] = {}
        for attribute, row in self.rows.items():
            if attribute[:4] in ("bg-:", "bg+:"):
                pair = attribute[4:]
                first, second = ("|", pair[2:]) if pair.startswith("||") else pair.split("|", 1)
                (self.before if attribute[2] == "-" else self.after)[first, second] = row
        self._slots: dict[str, int] = {}
        # per word form: [own, as neighbour at CONTEXT[0], ...] score rows; pages are touched only as forms arrive
        self._table = np.zeros((WORD_CACHE, 1 + len(CONTEXT), len(self.labels)))

    def score(self, feats: list[str]) -> np.ndarray:
        unknown = len(self.rows)
        return self.weights[[self.rows.get(f, unknown) for f in feats]].sum(axis=0)

    def _add_words(self, new: list[str]) -> None:
        """Cache the score rows of word forms not seen yet, all in one numpy call (its per-call overhead,
        not arithmetic, is what a word-by-word loop pays)."""
        first = len(self._slots)
        get = self.rows.get
        at_slot: list[int] = []
        at_k: list[int] = []
        rows: list[int] = []
        for slot, word in enumerate(new, start=first):
            self._slots[word] = slot
            own, context = word_features(word)
            for feats, k in ((own, 0), *((context[offset], k) for k, offset in enumerate(CONTEXT, start=1))):
                for feat in feats:
                    row = get(feat)
                    if row is not None:
                        at_slot.append(slot)
                        at_k.append(k)
                        rows.append(row)
        self._table[first : first + len(new)] = 0.0  # slots are reused after the cache is cleared
        np.add.at(self._table, (np.array(at_slot, dtype=np.intp), np.array(at_k, dtype=np.intp)), self.weights[rows])

    def tag(self, words: list[str], ranges: list[tuple[int, int]], tags: list[str]) -> list[str]:
        """Labels of `words`, decoded sentence by sentence (`ranges` of [first, last) indices covering all words);
        `tags` are the gazetteer tags. At most WORD_CACHE distinct words per call."""
        n = len(words)
        if n == 0:
            return []
        if len(self._slots) + n > WORD_CACHE:
            self._slots.clear()
        known = self._slots
        new = [w for w in dict.fromkeys(words) if w not in known]
        if new:
            self._add_words(new)
        slots = np.fromiter((known[w] for w in words), dtype=np.intp, count=n)
        lengths = np.array([last - first for first, last in ranges])
        sentence = np.repeat(np.arange(len(ranges)), lengths)
        scores = self._table[slots, 0].copy()
        positions = np.arange(n)
        for k, offset in enumerate(CONTEXT, start=1):
            neighbour = positions + offset
            inside = (neighbour >= 0) & (neighbour < n)
            inside[inside] = sentence[neighbour[inside]] == sentence[inside]
            scores[inside] += self._table[slots[neighbour[inside]], k]
            scores[~inside] += self.pads[k - 1]
        lows = [w.lower() for w in words]
        get, unknown = self.rows.get, len(self.rows)
        at, rows = [], []
        for first, last in ranges:
            for i, pair in enumerate(bigram_pairs(lows[first:last]), start=first):
                if (row := self.before.get(pair)) is not None:
                    at.append(i + 1)
                    rows.append(row)
                if (row := self.after.get(pair)) is not None:
                    at.append(i)
                    rows.append(row)
            for i, feat in sparse_features(words[first:last], lows[first:last], tags[first:last]):
                if (row := get(feat, unknown)) != unknown:
                    at.append(first + i)
                    rows.append(row)
        np.add.at(scores, np.array(at, dtype=np.intp), self.weights[rows])
        return [self.labels[k] for k in self._viterbi(scores, ranges, lengths)]

    def _viterbi(self, scores: np.ndarray, ranges: list[tuple[int, int]], lengths: np.ndarray) -> list[int]:
        """Best label path of every sentence at once: sentences are columns stepped together, longest first, and
        step t computes only the columns of sentences longer than t (a batch of articles mixes headlines with
        150-token sentences). Numpy's per-call overhead, then its arithmetic, is the cost: candidates are laid out
        [sentence, label, previous label] so the reductions run along contiguous memory; back-pointers are bytes
        and the paths are traced back for all sentences at once."""
        count, longest, size = len(ranges), int(lengths.max()), len(self.labels)
        order = np.argsort(-lengths, kind="stable")  # column c holds sentence order[c]
        by_column = lengths[order]
        starts = np.array([first for first, _ in ranges])[order]
        going = np.searchsorted(-by_column, -np.arange(longest), side="left")  # columns longer than t, per t
        back = np.zeros((longest, count, size), dtype=np.int8)
        finals = np.zeros((count, size))  # each column's scores at its last token
        best = scores[starts].copy()
        candidates = np.empty((count, size, size))
        for t in range(1, longest):
            k = int(going[t])
            finals[k : int(going[t - 1])] = best[k : int(going[t - 1])]  # the columns that ended at t - 1
            step = candidates[:k]
            np.add(best[:k, None, :], self.transitions_by_next, out=step)
            pointers = step.argmax(axis=2)
            back[t, :k] = pointers
            best = np.take_along_axis(step, pointers[:, :, None], axis=2)[:, :, 0] + scores[starts[:k] + t]
        finals[: int(going[longest - 1])] = best
        label = finals.argmax(axis=1)  # each column's label at its last token, then traced back
        paths = np.zeros((longest, count), dtype=np.intp)
        for t in range(longest - 1, 0, -1):
            k = int(going[t])
            paths[t, :k] = label[:k]
            label[:k] = back[t, np.arange(k), label[:k]]
        paths[0] = label
        # back to sentence order, each sentence's labels in token order, padding dropped
        column = np.empty(count, dtype=np.intp)
        column[order] = np.arange(count)
        rows = paths[:, column].T
        return rows[np.arange(longest) < lengths[:, None]].tolist()


@cache
def crf() -> Crf:
    return Crf(MODEL_PATH)


def model_spans_many(articles: list[tuple[list[str], list[list[AliasMatch]]]]) -> list[list[list[Span]]]:
    """Mentions the Indonesian model tags in each field of each article (its fields and their gazetteer matches),
    as (start, end, type) character spans. Decoded together in as few calls as WORD_CACHE allows (the decoder's
    cost is mostly per call, not per word); every sentence is decoded on its own, so an article gets the same
    spans in any batch."""
    inputs = [[_field_input(value, found) for value, found in zip(*article, strict=True)] for article in articles]
    out: list[list[list[Span]]] = []
    group: list[list[tuple]] = []
    words_in_group = 0
    for article in [*inputs, None]:
        size = sum(len(words) for _, words, _, _ in article) if article is not None else 0
        if article is None or (group and words_in_group + size > WORD_CACHE):
            out += _decode(group)
            group, words_in_group = [], 0
        if article is not None:
            group.append(article)
            words_in_group += size
    return out


def _field_input(value: str, matches: list[AliasMatch]) -> tuple:
    """(token spans, words, gazetteer tags, sentence ranges) of one field, as the model reads it."""
    head = value[:MODEL_MAX_CHARS]
    spans = [m.span() for m in TOKEN.finditer(head)]
    return spans, [head[s:e] for s, e in spans], alias_tags(spans, matches), sentences(head, spans)


def _decode(group: list[list[tuple]]) -> list[list[list[Span]]]:
    """One model call for the fields of the articles of `group` (see `_field_input`), split back per field."""
    words: list[str] = []
    tags: list[str] = []
    ranges: list[tuple[int, int]] = []
    for article in group:
        for _, field_words, field_tags, field_ranges in article:
            ranges += [(first + len(words), last + len(words)) for first, last in field_ranges]
            words += field_words
            tags += field_tags
    labels = crf().tag(words, ranges, tags) if words else []
    out, offset = [], 0
    for article in group:
        fields = []
        for spans, field_words, _, _ in article:
            found = iob_spans(labels[offset : offset + len(field_words)])
            fields.append([(spans[s][0], spans[e - 1][1], kind) for s, e, kind in found])
            offset += len(field_words)
        out.append(fields)
    return out


def iob_spans(labels: list[str]) -> list[Span]:
    """[(first, last+1, type)] of an IOB2 sequence; a stray I- opens a span, as conlleval counts it."""
    out, i = [], 0
    while i < len(labels):
        label = labels[i]
        if label == "O":
            i += 1
            continue
        kind, j = label[2:], i + 1
        while j < len(labels) and labels[j] == "I-" + kind:
            j += 1
        out.append((i, j, kind))
        i = j
    return out


# --- English: capitalisation and context -------------------------------------------------------------------------

_EN_WORDS = {
    # capitalised only because they start a sentence or a quote; never names on their own
    "STOP": "a about after again against all also although an and another any are as at be because been before "
    "being both but by can could did do does during each even every few for from had has have he her here hers "
    "him his how however i if in into is it its just last later many may meanwhile more most much must my "
    "neither new next no nor not now of on once one only or other our out over own per perhaps she should since "
    "so some still such than that the their them then there these they this those though through thus to today "
    "tomorrow too under unless until up us was we were what when where whether which while who whom whose why "
    "will with within without would yes yesterday yet you your according asked told said says earlier",
    # never part of a name: calendar words
    "NON": "monday tuesday wednesday thursday friday saturday sunday january february march april may june july "
    "august september october november december am pm",
    # adjectives of origin: inside a name ("European Central Bank") but not a name alone ("Russian officials")
    "ADJ": "american russian chinese ukrainian korean japanese british french german indonesian european israeli "
    "palestinian iranian syrian indian pakistani australian western eastern soviet islamic muslim christian "
    "jewish catholic arab african asian english dutch italian spanish turkish thai vietnamese malaysian filipino "
    "saudi egyptian canadian mexican brazilian",
    # titles that introduce a person and are not part of the name
    "TITLE": "president vice prime minister mr mrs ms miss dr sen senator gov governor rep representative "
    "secretary chancellor king queen prince princess pope gen general lt col colonel capt captain sgt chief "
    "leader spokesman spokeswoman spokesperson mayor ambassador judge justice premier sheikh emir ayatollah "
    "commander admiral director chairman chairwoman ceo founder lord sir",
    # words that make a run an organisation
    "ORG": "inc corp corporation ltd llc co company ministry party university council commission committee agency "
    "bank association union institute group department court parliament army navy force forces organization "
    "organisation foundation office bureau service times post news press network front movement federation "
    "league club fc airlines airways holdings authority board assembly senate congress police guard college "
    "school church fund reserve exchange chamber motors capital",
    # words that make a run a place
    "LOC": "city county province state island islands river mountain mountains street region republic kingdom "
    "valley bay sea ocean peninsula strait lake airport palace village town district regency port border",
    # prepositions that introduce a place
    "AT": "in from at near across outside inside towards toward into over via",
    # verbs of speech around a person's name
    "SAY": "said says told added asked",
}
EN = {word: kind for kind, words in _EN_WORDS.items() for word in words.split()}
EN_JOINERS = frozenset({"of", "for", "de", "van", "von", "bin", "al", "la", "le", "da", "der", "den", "&"})
POSSESSIVE = ("'s", "\u2019s")


def _name_word(word: str) -> bool:
    return word[:1].isupper() and word[:1].isalpha() and EN.get(word.lower()) != "NON"


def english_spans(text: str, spans: list[tuple[int, int]], matches: list[AliasMatch]) -> list[Span]:
    """Runs of capitalised words (joined by "of", "de", ...; a possessive "'s" ends one) typed by their words and
    context. Titles split a run and make what follows a person ("NATO Secretary General Jens Stoltenberg"); an
    organisation word makes it ORG ("Ministry", "Inc"); a place word, or "in/from/at" before, makes it LOC; two or
    more other words make a person. A lone capital is dropped (too often an adjective or a sentence start), and so
    is a person guess that overlaps a gazetteer alias ("U.S. Treasury"): the alias is the better answer."""
    words = [text[s:e] for s, e in spans]
    found: list[Span] = []
    for first, last in sentences(text, spans):
        i = first
        while i < last:
            if not _name_word(words[i]):
                i += 1
                continue
            j = i
            while j < last and not words[j].endswith(POSSESSIVE):
                if _name_word(words[j + 1] if j + 1 < last else ""):
                    j += 1
                elif j + 2 < last and words[j + 1].lower() in EN_JOINERS and _name_word(words[j + 2]):
                    j += 2
                else:
                    break
            found.extend(_english_runs(spans, words, (first, last), (i, j + 1), matches))
            i = j + 1
    return found


def _english_runs(
    spans: list[tuple[int, int]],
    words: list[str],
    sentence: tuple[int, int],
    run: tuple[int, int],
    matches: list[AliasMatch],
) -> list[Span]:
    """Typed spans of the capitalised run words[start:end] within the sentence words[first:last]."""
    (first, last), (start, end) = sentence, run
    kinds = [EN.get(w.lower()) for w in words[start:end]]
    pieces: list[tuple[int, int, bool]] = []  # (start, end, follows a title)
    if "ORG" in kinds:
        pieces.append((start, end, False))
    else:
        k, after_title = start, False
        for i in range(start, end + 1):
            if i == end or kinds[i - start] == "TITLE":
                if k < i:
                    pieces.append((k, i, after_title))
                k, after_title = i + 1, i < end or after_title
    out = []
    for lo, hi, after_title in pieces:
        at_start = lo == first or words[lo - 1] in OPENERS
        while lo < hi and EN.get(words[lo].lower()) == "STOP":
            lo, at_start = lo + 1, False
        if lo == hi or all(EN.get(w.lower()) in ("ADJ", "ORG", "LOC") for w in words[lo:hi]):
            continue  # "Russian", "Police", "Parliament": descriptions, not names
        span_start, span_end = spans[lo][0], spans[hi - 1][1]
        if words[hi - 1].endswith(POSSESSIVE):
            span_end -= 2
        kinds = [EN.get(w.lower()) for w in words[lo:hi]]
        before = words[lo - 1].lower() if lo > first else ""
        if "ORG" in kinds:
            kind = "ORG"
        elif after_title:
            kind = "PER"
        elif "LOC" in kinds or EN.get(before) == "AT" or (before == "of" and _place_word(words, lo - 2, first)):
            kind = "LOC"
        elif _overlapping(matches, span_start, span_end) or (at_start and hi - lo == 1):
            continue
        elif hi - lo > 1 or EN.get(before) == "SAY" or (hi < last and EN.get(words[hi].lower()) == "SAY"):
            kind = "PER"
        else:
            continue
        out.append((span_start, span_end, kind))
    return out


def _place_word(words: list[str], i: int, first: int) -> bool:
    """Whether words[i], within the sentence starting at `first`, is a place word ("the village of Sukamaju")."""
    return i >= first and EN.get(words[i].lower()) == "LOC"


# --- combining model spans with gazetteer matches -----------------------------------------------------------------


def merge(text: str, found: list[Span], matches: list[AliasMatch]) -> list[tuple[int, int, str, Entity | None]]:
    """Model (or rule) spans linked to gazetteer matches, plus the matches nothing else found.

    A span equal to, inside or crossing an alias gives way to the alias ("Jong Un" in "Kim Jong Un"); a span made of
    aliases and separators becomes those aliases ("Rusia-Korea Utara"); a span holding one alias of its own type
    takes its entity, keeping its extent only when the rest is cue or lowercase words ("Kota Medan", not "Putin
    Disebut" in a headline); any other span stays unlinked and swallows the aliases inside it."""
    out: list[tuple[int, int, str, Entity | None]] = []
    used: set[int] = set()
    for start, end, kind in found:
        overlapping = _overlapping(matches, start, end)
        inside = [matches[k] for k in overlapping if start <= matches[k].start and matches[k].end <= end]
        same_type = [m for m in inside if m.entity.type == kind]
        residue = _residue(text, start, end, inside)
        used.update(overlapping)
        if not overlapping:
            out.append((start, end, kind, None))
        elif len(inside) < len(overlapping) or not _WORD.search(residue):
            out.extend((m.start, m.end, m.entity.type, m.entity) for m in (matches[k] for k in overlapping))
        elif (
            len(same_type) == 1 and kind != "PER" and all(w[0].islower() or w.lower() in CUES for w in residue.split())
        ):
            out.append((start, end, kind, same_type[0].entity))
        elif len(same_type) == 1:
            out.append((same_type[0].start, same_type[0].end, kind, same_type[0].entity))
        else:
            out.append((start, end, kind, None))
    out.extend((m.start, m.end, m.entity.type, m.entity) for k, m in enumerate(matches) if k not in used)
    out.sort(key=lambda f: (f[0], -f[1]))
    merged, last_end = [], -1
    for item in out:
        if item[0] >= last_end:  # an alias shared by two model spans is reported once
            merged.append(item)
            last_end = item[1]
    return merged


def _overlapping(matches: list[AliasMatch], start: int, end: int) -> list[int]:
    """Indices of the matches overlapping [start, end); matches do not overlap, so their ends ascend."""
    k = bisect.bisect_right(matches, start, key=lambda m: m.end)
    found = []
    while k < len(matches) and matches[k].start < end:
        found.append(k)
        k += 1
    return found


def _residue(text: str, start: int, end: int, matches: list[AliasMatch]) -> str:
    """text[start:end] with the matches blanked out."""
    chars = list(text[start:end])
    for m in matches:
        chars[m.start - start : m.end - start] = " " * (m.end - m.start)
    return "".join(chars)


def _headline_case(text: str) -> bool:
    """Whether most longer words are capitalised ("Kim Jong Un Says ..."), where capitals stop marking names."""
    words = re.findall(r"[^\W\d_]{4,}", text)
    return len(words) >= 3 and sum(w[0].isupper() for w in words) >= 0.6 * len(words)


def field_mentions(
    field: str, value: str, found: list[Span], matches: list[AliasMatch], language: str, known: frozenset[str]
) -> list[Mention]:
    """Mentions in one field from its model or rule spans and its gazetteer matches. In a headline-case field, a
    name the gazetteer lacks is kept only if `known` (the lowercased texts of the body's mentions) holds it."""
    headline = field == "title" and _headline_case(value)
    mentions = []
    for start, end, kind, entity in merge(value, found, matches):
        if end - start > MAX_MENTION_CHARS:
            continue  # a run of capitals in junk, not a name (and the enriched schema caps mention text)
        if entity is None and (
            (headline and value[start:end].lower() not in known)
            or (language == "id" and value[start:end].lower() in stop_words())
        ):
            continue
        mentions.append(
            Mention(field, start, end, kind, value[start:end], entity and entity.id, entity and entity.name)
        )
    return mentions


def link_short_names(mentions: list[Mention]) -> list[Mention]:
    """Link an unknown person mention whose every word belongs to one linked person in the same article ("Kim"
    after "Kim Jong Un"); a word shared by two linked people links nothing."""
    owners: dict[str, set[tuple[str, str]]] = {}
    for m in mentions:
        if m.type == "PER" and m.canonical_id:
            for word in m.text.replace("-", " ").split():
                owners.setdefault(word.lower(), set()).add((m.canonical_id, m.canonical_name or ""))
    out = []
    for m in mentions:
        if m.type == "PER" and m.canonical_id is None:
            candidates = [owners.get(w.lower(), set()) for w in m.text.replace("-", " ").split()]
            common = set.intersection(*candidates) if candidates else set()
            if len(common) == 1 and all(len(c) == 1 for c in candidates):
                entity_id, name = next(iter(common))
                m = Mention(m.field, m.start, m.end, m.type, m.text, entity_id, name)
        out.append(m)
    return out


def find_entities(title: str, text: str, language: str) -> list[Mention]:
    """Entity mentions of an article, body first, then title; each sorted by offset. `language` is an ISO 639-1
    code: "id" uses the model, "en" the English rules, any other the gazetteer alone. Never raises on str input;
    the first call loads the model and the gazetteer (~0.5 s)."""
    return find_entities_many([(title, text, language)])[0]


def find_entities_many(articles: list[tuple[str, str, str]]) -> list[list[Mention]]:
    """`find_entities` of several (title, text, language) articles. The Indonesian ones share the model's calls: a
    call costs mostly per step of the decoder, not per word, so 32 articles in one take a third less than one each.
    Each article gets the same mentions as on its own."""
    values = [[text or "", title or ""] for title, text, _ in articles]
    matches = [
        [gazetteer().match(value, language) for value in pair]
        for pair, (_, _, language) in zip(values, articles, strict=True)
    ]
    indonesian = [i for i, (_, _, language) in enumerate(articles) if language == "id"]
    found: dict[int, list[list[Span]]] = dict(
        zip(indonesian, model_spans_many([(values[i], matches[i]) for i in indonesian]), strict=True)
    )
    out = []
    for i, (_, _, language) in enumerate(articles):
        if language == "en":
            found[i] = [
                english_spans(head, [m.span() for m in TOKEN.finditer(head)], field_matches)
                for head, field_matches in zip((v[:MODEL_MAX_CHARS] for v in values[i]), matches[i], strict=True)
            ]
        spans = found.get(i, [[], []])
        body = field_mentions("text", values[i][0], spans[0], matches[i][0], language, frozenset())
        known = frozenset(m.text.lower() for m in body)
        head = field_mentions("title", values[i][1], spans[1], matches[i][1], language, known)
        out.append(link_short_names(body + head))
    return out


def canonical_entities(mentions: list[Mention]) -> list[dict]:
    """The linked entities of `mentions`, once each: [{"id", "name", "type", "mentions": count}], sorted by id.
    Unlinked mentions (canonical_id None) are left out: they have no identity to de-duplicate on."""
    counts = Counter((m.canonical_id, m.canonical_name, m.type) for m in mentions if m.canonical_id)
    return [
        {"id": entity_id, "name": name, "type": kind, "mentions": n}
        for (entity_id, name, kind), n in sorted(counts.items(), key=lambda item: item[0][0])
    ]
