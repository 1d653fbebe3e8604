"""Ring 1: stems, watched terms and story fingerprints."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pantau.enricher.fingerprint import (
    WINDOW_S,
    MemoryStoryIndex,
    StoryEntry,
    assign_story,
    band_after_put,
    bands,
    distance,
    simhash,
)
from pantau.enricher.stems import stem_text, stem_tokens, stemmer_name, tokens
from pantau.enricher.terms import TermMatcher, TermsError, WatchedTerm, load_terms, parse_terms

SEED = next((Path(__file__).resolve().parents[4] / "shared" / "seeds").glob("*.txt")).read_text(encoding="utf-8")
REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("language", "text", "stems"),
    [
        ("id", "amunisinya persenjataannya negara-negara Membeli pertahanan", "amunisi senjata negara beli tahan"),
        ("ms", "kerajaan membelanjakan peruntukan", "raja belanja untuk"),
        ("en", "The ammunition supplies were running out", "the ammunit suppli were run out"),
        ("fr", "Les munitions arrivent", "les munitions arrivent"),
    ],
)
def test_stems_by_language(language, text, stems):
    assert stem_text(text, language) == stems


def test_stemmer_names():
    assert [stemmer_name(x) for x in ("id", "ms", "en", "ar", "und")] == [
        "sastrawi", "sastrawi", "snowball-english", "lowercase", "lowercase",
    ]  # fmt: skip


@pytest.mark.parametrize("junk", ["", "a", "🚀🔥" * 50, "\x00\x01\xff" * 100, "مرحبا بالعالم", "x" * 10_000])
def test_stemming_hostile_text_does_not_raise(junk):
    stem_text(junk, "id")
    stem_text(junk, "en")


@pytest.fixture
def matcher():
    return TermMatcher(
        parse_terms("terms: [amunisi, Kim Jong Un, {term: amunisinya, exact: true}, Korea Utara, senjata]")
    )


def match(matcher, text, language="id"):
    surface = tokens(text)
    return {
        (m["term"], m["exact"]): m["count"] for m in matcher.match(surface, stem_tokens(surface, language), language)
    }


def test_affixed_and_clitic_forms_count_for_their_root_and_exact_rules_do_not(matcher):
    found = match(matcher, "Amunisinya habis. Amunisi-amunisi lama dan amunisi baru; persenjataan Korea Utara.")
    assert found[("amunisi", False)] == 3
    assert found[("amunisinya", True)] == 1
    assert found[("senjata", False)] == 1
    assert found[("Korea Utara", False)] == 1


def test_phrases_need_consecutive_words(matcher):
    assert ("Kim Jong Un", False) in match(matcher, "Pemimpin Kim Jong Un tiba.")
    assert ("Kim Jong Un", False) not in match(matcher, "Kim bertemu Jong, lalu Un.")


def test_the_seed_article_counts_amunisi(matcher):
    found = match(matcher, SEED)
    assert found[("amunisi", False)] == SEED.lower().count("amunisi")
    # "Kim Jong Un" four times and "Kim Jong-Un" once: a hyphenated name is its parts
    assert SEED.count("Kim Jong Un") == 4 and SEED.count("Kim Jong-Un") == 1
    assert found[("Kim Jong Un", False)] == 5


def test_a_hyphenated_compound_counts_for_its_parts_and_a_reduplication_for_its_root():
    matcher = TermMatcher(parse_terms("terms: [korupsi, banjir, nuklir, Kim Jong Un, negara, saing]"))
    text = "Gerakan anti-korupsi pasca-banjir, Kim Jong-un, non-nuklir; negara-negara pesaing-pesaingnya"
    found = match(matcher, text)
    assert found == {("korupsi", False): 1, ("banjir", False): 1, ("Kim Jong Un", False): 1, ("nuklir", False): 1,
                     ("negara", False): 1, ("saing", False): 1}  # fmt: skip
    assert stem_text("anti-korupsi negara-negara", "id") == "anti korupsi negara"
    assert tokens("Al-Hilal e-commerce pesaing-pesaingnya") == ["al", "hilal", "e", "commerce", "pesaing-pesaingnya"]


def test_a_phrase_does_not_run_from_the_title_into_the_text():
    matcher = TermMatcher(parse_terms("terms: [harga beras]"))
    title, text = tokens("Pemerintah Menaikkan Harga"), tokens("Beras impor tiba. Harga beras naik.")
    fields = [(title, stem_tokens(title, "id")), (text, stem_tokens(text, "id"))]
    assert matcher.match_fields(fields, "id") == [{"term": "harga beras", "count": 1, "exact": False}]


def test_a_text_stems_at_most_its_budget_of_word_forms_whatever_the_cache_holds(monkeypatch):
    from pantau.enricher import stems

    monkeypatch.setattr(stems, "MAX_FORMS_PER_TEXT", 3)
    words = ["amunisinya", "persenjataan", "amunisinya", "pertahanan", "membeli", "amunisinya"]
    assert stem_tokens(words, "id") == ["amunisi", "senjata", "amunisi", "tahan", "membeli", "amunisi"]
    stem_tokens(["membeli"], "id")  # now cached: the same text still gets the same stems
    assert stem_tokens(words, "id")[4] == "membeli"


def test_junk_words_are_not_cached():
    from pantau.enricher import fingerprint, stems

    junk = "x" * 190_000
    before = len(stems._cache)
    assert stem_tokens([junk], "id") == [junk] and len(stems._cache) == before
    fingerprint._cached_hash64.cache_clear()
    simhash(f"kata {junk} lain")
    assert fingerprint._cached_hash64.cache_info().currsize == 2  # "kata" and "lain"


def test_thousands_of_terms_one_automaton():
    many = [WatchedTerm(f"istilah{i}") for i in range(5000)] + [WatchedTerm("amunisi")]
    matcher = TermMatcher(many)
    assert match(matcher, "amunisi dan istilah42") == {("amunisi", False): 1, ("istilah42", False): 1}


@pytest.mark.parametrize(
    ("text", "message"),
    [("terms: [{exact: true}]", r"terms\[0\]: needs a `term`"), ("terms: [{term: x, fuzzy: 2}]", "unknown keys"),
     ("nope", "expected a mapping"), ("terms: [\n", "not valid YAML"), ("terms: ['!!']", "needs a `term`"),
     ('terms: [{term: x, exact: "false"}]', "`exact` must be true or false")],
)  # fmt: skip
def test_invalid_terms_files_say_where(text, message):
    with pytest.raises(TermsError, match=message):
        parse_terms(text, "terms.yaml")


def test_the_shipped_terms_file_loads():
    assert WatchedTerm("amunisi") in load_terms(REPO / "deploy/terms/terms.yaml")


def test_near_duplicates_are_close_and_different_stories_far():
    edited = SEED.replace("Selasa", "Rabu").replace("Penulis : Edwin Shri Bimo", "Penulis: Redaksi")
    shorter = "\n".join(line for line in SEED.splitlines() if not line.startswith("Baca Juga"))
    other = "Harga beras di pasar tradisional Surabaya naik dua pekan terakhir karena pasokan berkurang. " * 10
    assert distance(simhash(SEED), simhash(edited)) <= 3
    assert distance(simhash(SEED), simhash(shorter)) <= 3
    assert distance(simhash(SEED), simhash(other)) > 10
    assert len(bands(simhash(SEED))) == 4


def test_story_ids_group_copies_and_are_stable_on_replay():
    index = MemoryStoryIndex()
    first, _ = assign_story("a" * 64, SEED, 1000.0, index)
    copy, _ = assign_story("b" * 64, SEED.replace("KOMPAS.TV", "ANTARA"), 1100.0, index)
    other, _ = assign_story("c" * 64, "Gempa mengguncang Cianjur dan merusak ratusan rumah warga. " * 10, 1200.0, index)
    assert copy == first and other != first
    assert assign_story("b" * 64, SEED.replace("KOMPAS.TV", "ANTARA"), 1100.0, index)[0] == first  # replay
    late, _ = assign_story("d" * 64, SEED, 1000.0 + 4 * 24 * 3600, index)
    assert late != first  # outside the window: the story resurfacing is a new story


def test_a_band_drops_what_the_window_left_behind_and_keeps_a_bounded_count():
    def entry(article: str, seen_at: float) -> StoryEntry:
        return StoryEntry(article * 64, 0, article, seen_at)

    old, recent = entry("a", 0.0), entry("b", WINDOW_S)
    assert band_after_put([old, recent], entry("c", WINDOW_S + 1), 32) == [recent, entry("c", WINDOW_S + 1)]
    assert band_after_put([old, recent], entry("a", 5.0), 32) == [recent, entry("a", 5.0)]  # its own: replaced
    late = entry("d", WINDOW_S - 1)  # an earlier article arriving late keeps what is still in its window
    assert band_after_put([old, recent], late, 32) == [old, recent, late]
    crowded = [entry(chr(ord("A") + i), 10.0 + i) for i in range(40)]
    assert band_after_put(crowded, entry("z", 60.0), 32) == [*crowded[-31:], entry("z", 60.0)]

    index = MemoryStoryIndex()
    assign_story("a" * 64, SEED, 1000.0, index)
    assign_story("b" * 64, SEED, 1000.0 + WINDOW_S + 1, index)  # the same story resurfacing after the window
    assert [e.article_id for key in bands(simhash(SEED)) for e in index.candidates(key)] == ["b" * 64] * 4


def test_a_replay_keeps_its_recorded_story_whatever_arrived_since():
    index = MemoryStoryIndex()
    copy = SEED.replace("KOMPAS.TV", "ANTARA")
    first, _ = assign_story("b" * 64, copy, 1000.0, index)  # nothing near yet: a story of its own
    # Meanwhile a worker that had not seen "b" yet put an identical copy into another story.
    assign_story("e" * 64, copy, 900.0, MemoryStoryIndex())
    index.put(StoryEntry("e" * 64, simhash(copy), "other-story", 900.0), bands(simhash(copy)))
    assert assign_story("b" * 64, copy, 1000.0, index)[0] == first  # the recorded decision wins
    # A revision with a small edit keeps it too; a rewrite is a new decision.
    assert assign_story("b" * 64, copy + " Pembaruan.", 1000.0, index)[0] == first
    rewrite = "Gempa mengguncang Cianjur dan merusak ratusan rumah warga. " * 10
    assert assign_story("b" * 64, rewrite, 1000.0, index)[0] == hashlib.sha256(b"b" * 64).hexdigest()[:16]


def test_fingerprint_of_nothing():
    assert simhash("") == 0
    assert isinstance(simhash("🚀"), int)


def test_texts_without_a_word_are_each_their_own_story():
    index = MemoryStoryIndex()
    stories = {assign_story(f"a{i}", text, 1000.0, index)[0] for i, text in enumerate(["", "📷 🎥🎥", "— …"])}
    assert len(stories) == 3
    assert assign_story("a0", "", 1000.0, index)[0] in stories  # still its own, on replay


def test_the_stem_lexicon_is_sastrawis_own_stems():
    import gzip
    import random

    from pantau.enricher.stems import LEXICON_PATH, load_lexicon, sastrawi_stem

    with gzip.open(LEXICON_PATH, "rt", encoding="utf-8") as lines:
        rows = [line.rstrip("\n").partition("\t") for line in lines]
    assert len(rows) > 20_000 and load_lexicon() == len(rows)
    for form, _, stem in random.Random(0).sample(rows, 300):
        assert sastrawi_stem(form) == (stem or form), form  # a PySastrawi upgrade must rebuild the lexicon
    assert stem_tokens(["amunisinya", "negara-negara", "pemerintahan"], "id") == ["amunisi", "negara", "perintah"]


def test_sastrawi_sped_up_gives_the_stems_of_sastrawi_as_published(monkeypatch):
    import gzip
    import random
    import re
    import sys

    from Sastrawi.Stemmer.Context.Context import Context

    from pantau.enricher import stems
    from pantau.enricher.stems import LEXICON_PATH, _SastrawiRe, sastrawi_stem

    with gzip.open(LEXICON_PATH, "rt", encoding="utf-8") as lines:
        forms = [line.rstrip("\n").partition("\t")[0] for line in lines]
    sample = [*random.Random(1).sample(forms, 2000), "negara-negara", "pesaing-pesaingnya", "memper-", "ke(di)an"]
    modules = list(sys.modules.items())
    patched = [name for name, module in modules if isinstance(getattr(module, "re", None), _SastrawiRe)]
    assert len(patched) > 40
    stems._prefix_passes.clear()
    fast = [sastrawi_stem(form) for form in sample]
    assert [sastrawi_stem(form) for form in sample] == fast  # now from the remembered prefix passes
    assert Context.accept_prefix_visitors is not stems._sastrawi_prefix_pass
    monkeypatch.setattr(Context, "accept_prefix_visitors", stems._sastrawi_prefix_pass)
    for name in patched:
        monkeypatch.setattr(sys.modules[name], "re", re)
    assert [sastrawi_stem(form) for form in sample] == fast


def test_letters_outside_a_to_z_stay_in_one_stem():
    # Sastrawi's text entry point turned them into spaces: "londoño" was stemmed "londo o".
    words = ["londoño", "antónio", "für", "cancún"]
    assert stem_tokens(words, "id") == words
    assert stem_tokens(["dibandingkan", "londoño"], "id") == ["banding", "londoño"]
