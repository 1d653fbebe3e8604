"""Ring 1: language identification — both stages, the page hint, hostile input, and the shipped Indonesian/Malay
model measured on outlets it was never trained on."""

from __future__ import annotations

import random
import subprocess
import sys
import time

import pytest

from pantau.enricher.language import (
    IDMS_HINT_MARGIN,
    MIN_CONFIDENCE,
    MODEL_PATH,
    PREFIX_CHARS,
    IdmsModel,
    Language,
    _profiles,
    _second_opinion,
    detect_language,
    first_stage,
    stage_texts,
)
from pantau.enricher.train_language import (
    DEFAULT_DATA,
    HELD_OUT_OUTLETS,
    LABELS,
    Article,
    folds_by_outlet,
    outlet_of,
    read_articles,
)

INDONESIAN = (
    "Pemerintah mengatakan bahwa harga bahan bakar tidak bisa dinaikkan lagi setelah rapat kabinet kemarin. "
    "Polisi akan menindak kendaraan yang melanggar aturan, dan uang denda disetor ke kas daerah."
)
MALAY = (
    "Kerajaan berkata harga bahan api tidak boleh dinaikkan lagi selepas mesyuarat kabinet semalam. "
    "Polis akan mengambil tindakan terhadap kenderaan yang melanggar peraturan, dan wang denda akan disalurkan."
)
SENTENCES = {
    "en": "The city council approved a new budget on Tuesday after a long debate about public transport and housing.",
    "fr": "Le conseil municipal a adopté mardi un nouveau budget après un long débat sur les transports publics.",
    "es": "El ayuntamiento aprobó el martes un nuevo presupuesto tras un largo debate sobre el transporte público.",
    "de": "Der Stadtrat hat am Dienstag nach einer langen Debatte über den Nahverkehr einen Haushalt beschlossen.",
    "ru": "Городской совет во вторник утвердил новый бюджет после долгих споров об общественном транспорте.",  # noqa: RUF001
    "ar": "وافق مجلس المدينة يوم الثلاثاء على ميزانية جديدة بعد نقاش طويل حول النقل العام والإسكان.",
    "he": "מועצת העיר אישרה ביום שלישי תקציב חדש לאחר ויכוח ארוך על תחבורה ציבורית ודיור.",
    "zh": "市议会周二在就公共交通和住房问题进行长时间辩论后批准了新的预算。",
    "ja": "市議会は火曜日、公共交通と住宅について長い議論を行った後、新しい予算を承認しました。",
    "id": INDONESIAN,
    "ms": MALAY,
}


@pytest.mark.parametrize(("code", "text"), SENTENCES.items(), ids=list(SENTENCES))
def test_clear_sentences(code, text):
    language = detect_language("", text)
    assert language.code == code
    assert language.probability > 0.9


def test_stage_one_names_the_language_langdetect_names():
    from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

    factory = DetectorFactory()
    factory.load_profile(PROFILES_DIRECTORY)
    factory.set_seed(0)
    for text in SENTENCES.values():  # Malay included: langdetect calls it Indonesian too
        detector = factory.create()
        detector.append(text)
        named = detector.detect()
        assert first_stage(text).code == {"zh-cn": "zh", "zh-tw": "zh"}.get(named, named)


def test_title_counts_and_result_is_a_frozen_value():
    language = detect_language("Kerajaan umum peruntukan baharu bagi kenderaan awam", MALAY)
    assert language == Language("ms", language.probability)
    with pytest.raises(AttributeError):
        language.code = "id"  # type: ignore[misc]


def test_same_text_same_answer_whatever_came_before():
    answers = set()
    for i in range(20):
        detect_language("", SENTENCES["en"] + f" Item {i} of a warm-up run with other words: kelapa sawit, Zürich.")
        answers.add(detect_language("Harga BBM", INDONESIAN))
    assert len(answers) == 1


@pytest.mark.parametrize(
    "text",
    ["", " ", "a", "ok ok", "Harga naik", "12345 !!! ??? ... 2024-01-01 10:30", "😀🎉🔥👍" * 50, "aaaa " * 100,
     "https://www.example.com/berita/2024/harga-bahan-bakar-naik-lagi @redaksi #BBM"],
    ids=["empty", "space", "one-char", "two-words", "short", "digits-punctuation", "emoji", "one-letter", "links"],
)  # fmt: skip
def test_nothing_to_tell_is_und(text):
    assert detect_language("", text) == Language("und", 0.0)


@pytest.mark.parametrize(
    ("encoding", "errors"),
    [("latin-1", "strict"), ("utf-8", "replace"), ("utf-8", "surrogateescape"), ("utf-16-le", "replace")],
)
def test_binary_junk_is_und(encoding, errors):
    junk = random.Random(0).randbytes(20_000).decode(encoding, errors)
    assert detect_language(junk[:80], junk) == Language("und", 0.0)


def test_a_few_control_characters_do_not_spoil_prose():
    assert detect_language("", INDONESIAN.replace(" ", " \x00", 3)).code == "id"


def test_kompas_marks_indonesian_pages_english_and_the_text_wins():
    for hint in ("en", "en-US", "EN_gb"):
        assert detect_language("Harga BBM tidak naik", INDONESIAN, hint).code == "id"


def test_hint_breaks_a_tie_between_close_candidates_only():
    scandinavian = "Det var en fin dag."  # Danish, Norwegian and Swedish alike
    unhinted = detect_language("", scandinavian)
    assert unhinted.code == "und" and 0.0 < unhinted.probability < MIN_CONFIDENCE  # the premise: too close to call
    assert detect_language("", scandinavian, "sv").code == "sv"
    assert detect_language("", scandinavian, "nb-NO").code == "no"  # Bokmål is Norwegian
    assert detect_language("", scandinavian, "en").code == "und"  # not a candidate: no say
    assert detect_language("", SENTENCES["de"], "nl").code == "de"  # a confident answer is never overridden


def test_fasttext_settles_a_short_sentence_langdetect_leaves_open():
    dutch = "De gemeenteraad keurde dinsdag een nieuwe begroting goed."
    langdetect_alone = _profiles().distribution(stage_texts("", dutch)[0])
    assert langdetect_alone is not None and langdetect_alone.max() < 0.7  # the premise: Dutch or Afrikaans
    assert detect_language("", dutch) == Language("nl", pytest.approx(1.0, abs=0.05))
    english = "Quite a big deal."
    langdetect_alone = _profiles().distribution(stage_texts("", english)[0])
    assert _profiles().languages[int(langdetect_alone.argmax())] == "ca"  # the premise: langdetect says Catalan
    assert detect_language("", english).code == "en"


@pytest.mark.parametrize("text", ["Jokowi Widodo", "Prabowo Subianto", "Foto: Antara", "Video Viral"])
def test_names_alone_are_und(text):
    # Both models name a language for these ("Jokowi Widodo": Polish); the enricher uses the source's instead.
    assert detect_language("", text) == Language("und", 0.0)


def test_han_text_is_chinese_unless_hangul_or_kana_say_otherwise():
    traditional = "台灣總統今天在總統府接見外國訪問團，雙方就經濟合作交換意見。"  # noqa: RUF001
    assert _profiles().languages[int(_profiles().distribution(traditional).argmax())] == "ko"  # the premise
    assert detect_language("", traditional) == Language("zh", pytest.approx(1.0))
    assert detect_language("", "서울시는 화요일 새 예산안을 승인했다.").code == "ko"
    assert detect_language("", SENTENCES["ja"]).code == "ja"


def test_a_lone_surrogate_reaches_the_second_opinion_safely():
    assert first_stage("Det var en fin dag \ud800 i går.").code in ("da", "no", "sv", "und")


def test_a_clear_paragraph_needs_no_second_opinion(monkeypatch):
    def refuse(*_):
        raise AssertionError("second opinion asked for")

    monkeypatch.setattr(_second_opinion(), "distribution", refuse)
    for code in ("en", "de", "id", "ms", "ru"):
        assert detect_language("", SENTENCES[code] * 3).code == code


def test_hint_breaks_an_indonesian_malay_tie_only():
    undecided = IdmsModel(0.0, {}, {}, {})  # P(ms) = 0.5 for every text
    assert abs(undecided.p_malay(MALAY) - 0.5) < IDMS_HINT_MARGIN
    assert detect_language("", MALAY, "ms", idms=undecided).code == "ms"
    assert detect_language("", MALAY, "ms-MY", idms=undecided).code == "ms"
    assert detect_language("", MALAY, "id", idms=undecided).code == "id"
    assert detect_language("", INDONESIAN, "ms").code == "id"  # the shipped model is sure: the hint loses


def test_ten_megabytes_read_only_as_far_as_the_prefix():
    huge = INDONESIAN * (10_000_000 // len(INDONESIAN))
    started = time.perf_counter()
    assert detect_language(huge, huge).code == "id"
    assert detect_language("", "a" * 10_000_000).code == "und"
    assert detect_language("", "\x00" * 10_000_000).code == "und"
    assert time.perf_counter() - started < 1.0


def test_right_to_left_with_bidi_controls_and_mixed_scripts():
    assert detect_language("", f"\u202b{SENTENCES['ar']}\u202c\u200f").code == "ar"
    soup = "Привет мир hello world مرحبا 你好 שלום こんにちは 안녕하세요 γειά σου"  # noqa: RUF001
    assert detect_language("", soup).code == "und"
    assert detect_language("", f"{SENTENCES['ja']} Apple iPhone {SENTENCES['ja']}").code == "ja"


def test_stage_one_calls_malay_indonesian_and_stage_texts_are_bounded():
    texts = stage_texts("Judul", "x" * 100 + MALAY * 1000)
    assert texts is not None and max(map(len, texts)) <= len("Judul") + 1 + PREFIX_CHARS
    assert first_stage(texts[0]).code == "id"


def test_runtime_needs_neither_scikit_learn_nor_scipy():
    script = (
        "import sys; from pantau.enricher.language import detect_language as d; "
        f"assert d('', {MALAY!r}).code == 'ms'; "
        "assert not {'sklearn', 'scipy'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


def test_outlets_are_registrable_domains_and_folds_keep_them_whole():
    assert outlet_of("news.detik.com") == outlet_of("finance.detik.com") == "detik.com"
    assert outlet_of("m.utusan.com.my") == "utusan.com.my"
    assert outlet_of("nasional.kompas.com") == "kompas.com"
    articles = [Article(label, outlet, "", "") for label, outlet in [(0, "a.id"), (0, "b.id"), (1, "c.my")] * 3]
    folds = folds_by_outlet(articles, 3)
    assert sorted(o for fold in folds for o in fold) == ["a.id", "b.id", "c.my"]


def test_shipped_model_is_small():
    assert MODEL_PATH.stat().st_size < 2_000_000


def test_shipped_model_on_outlets_it_never_saw():
    """The shipped model was trained without these outlets (`HELD_OUT_OUTLETS`); a regression in either stage fails
    the build here. Training measured 100% on these articles and 97.7% on their sentences, end to end."""
    articles = [a for a in read_articles(DEFAULT_DATA) if a.outlet in HELD_OUT_OUTLETS]
    for label, code in enumerate(LABELS):
        of_label = [a for a in articles if a.label == label]
        correct = sum(detect_language(a.title, a.text).code == code for a in of_label)
        assert correct / len(of_label) >= 0.95, (code, correct, len(of_label))

    sentences = [(LABELS[a.label], sentence) for a in articles for sentence in a.sentences()][::3]
    correct = sum(detect_language("", sentence).code == code for code, sentence in sentences)
    assert correct / len(sentences) >= 0.95, (correct, len(sentences))
