"""Story fingerprints: syndicated copies of one wire story, and re-publications with small edits,
get one story id. Pure.

A 64-bit SimHash over the lowercased words (each occurrence weighs once, so frequent words weigh
more): near-duplicates differ in few bits. On Indonesian news, copies with an edited sentence, a
dropped "Baca juga" line or a new closing paragraph stay within 2 bits, while different stories
are 7 or more apart.
Two fingerprints within `MAX_DISTANCE` bits are the same story. Candidates are found through four
16-bit bands (by pigeonhole, two fingerprints within 3 bits share at least one band exactly), kept
in a `StoryIndex` for a recent window. The index is a port: an in-memory dict for `pantau enrich`;
in the stream, one record per article in a faust table every worker reads, which each worker indexes
by band, so every worker assigns the same id.

An article seen before keeps the story id it got then: its own entry sits in its own bands, and
that recorded decision wins over whatever arrived since. This is what makes a replay after a
rebalance yield identical output (the stream also makes sure the decision is stored before the
enriched article is sent). Entries older than the window leave the bands they are in, so the index
stays bounded by the window's news.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import numpy as np

MAX_DISTANCE = 3
BANDS = 4
WINDOW_S = 3 * 24 * 3600  # a story older than this starts a new one when it resurfaces
_WORD = re.compile(r"\w+", re.UNICODE)


MAX_CACHED_WORD_CHARS = 40  # longer "words" are junk (base64, URLs): hashed each time, never held


def _hash64(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")


_cached_hash64 = lru_cache(maxsize=200_000)(_hash64)


def simhash(text: str) -> int:
    words = _WORD.findall(text.lower())
    if not words:
        return 0
    hashes = np.fromiter((_cached_hash64(w) if len(w) <= MAX_CACHED_WORD_CHARS else _hash64(w) for w in words),
                         dtype=np.uint64, count=len(words))  # fmt: skip
    bits = np.unpackbits(hashes.view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
    votes = bits.sum(axis=0, dtype=np.int64) * 2 - len(words)
    return int.from_bytes(np.packbits(votes > 0, bitorder="little").tobytes(), "little")


def distance(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def bands(fingerprint: int) -> list[str]:
    return [f"{i}:{fingerprint >> (16 * i) & 0xFFFF:04x}" for i in range(BANDS)]


@dataclass(frozen=True)
class StoryEntry:
    article_id: str
    fingerprint: int
    story_id: str
    seen_at: float


class StoryIndex(Protocol):
    """Where recent fingerprints live. `candidates` returns the entries of a band (newest last);
    `put` records an article under its bands."""

    def candidates(self, band: str) -> Iterable[StoryEntry]: ...

    def put(self, entry: StoryEntry, bands: list[str]) -> None: ...


def band_after_put(entries: Iterable[StoryEntry], entry: StoryEntry, per_band: int) -> list[StoryEntry]:
    """A band's entries once `entry` is recorded in it: its own earlier entry replaced, entries more than
    `WINDOW_S` older than it dropped (no later article can join their story), at most `per_band`, newest last.
    Without the age cut every band fills up to `per_band` over weeks: 4 x 65,536 bands x 32 entries, where
    the window holds a few days of news."""
    kept = [e for e in entries if e.article_id != entry.article_id and entry.seen_at - e.seen_at <= WINDOW_S]
    return [*kept, entry][-per_band:]


class MemoryStoryIndex:
    """An in-process index for offline use; bounded per band."""

    def __init__(self, per_band: int = 32):
        self.per_band = per_band
        self._bands: dict[str, list[StoryEntry]] = {}

    def candidates(self, band: str) -> Iterable[StoryEntry]:
        return self._bands.get(band, ())

    def put(self, entry: StoryEntry, bands: list[str]) -> None:
        for band in bands:
            self._bands[band] = band_after_put(self._bands.get(band, []), entry, self.per_band)


def assign_story(article_id: str, text: str, seen_at: float, index: StoryIndex) -> tuple[str, str]:
    """(story id, fingerprint hex) for an article; records it in the index.

    The article's own earlier entry keeps its story: a replay (same fingerprint) or a revision with
    small edits. Otherwise the nearest recent entry within MAX_DISTANCE gives the story (ties: the
    earliest seen, then the smallest article id, so the choice does not depend on band order);
    none: a new story named after this article. A text without a word (empty, emoji, punctuation) is
    near nothing: its own story, not recorded."""
    if not _WORD.search(text):
        return hashlib.sha256(article_id.encode()).hexdigest()[:16], f"{0:016x}"
    fingerprint = simhash(text)
    keys = bands(fingerprint)
    near = []
    for entry in {e.article_id + e.story_id: e for key in keys for e in index.candidates(key)}.values():
        d = distance(entry.fingerprint, fingerprint)
        if d > MAX_DISTANCE:
            continue
        if entry.article_id == article_id:
            near.append((-1, 0.0, "", entry.story_id))  # its own recorded decision wins
        elif abs(seen_at - entry.seen_at) <= WINDOW_S:
            near.append((d, entry.seen_at, entry.article_id, entry.story_id))
    story = min(near)[3] if near else hashlib.sha256(article_id.encode()).hexdigest()[:16]
    index.put(StoryEntry(article_id, fingerprint, story, seen_at), keys)
    return story, f"{fingerprint:016x}"
