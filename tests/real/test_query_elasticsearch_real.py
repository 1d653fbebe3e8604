"""Ring 3: the subscription query language selects the same articles in Python (in-stream, what
alerts on) and in the real Elasticsearch (the Kibana link behind an alert). Articles enriched as the
enricher writes them go through the indexer's own path (`article_action` → `bulk_lines` → _bulk, as
pantau_indexer, into monthly indices made from the real templates); every query's compiled ES query
runs as pantau_reader on the read alias, and its hits must be exactly the articles `matches` selects.
Each query also names articles it must and must not select, so the agreement cannot be vacuous."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pantau.alerter.query import ArticleView, parse_query
from pantau.common.codec import Codec
from pantau.common.es_io import apply_templates, make_client
from pantau.common.settings import ContractSettings
from pantau.enricher.stems import stem_text, stemmer_name
from pantau.indexer.bulk import bulk_lines
from pantau.indexer.documents import article_action
from tests.conftest import es_settings

ES_DIR = ContractSettings().schemas_dir / "elasticsearch"

# id, name, domain, country (None: unknown), usual language
SOURCES = {
    "kompastv": ("kompastv", "Kompas TV", "kompas.tv", "ID", "id"),
    "detik": ("detik", "detikcom", "detik.com", "ID", "id"),
    "antara": ("antara", "Antara", "antaranews.com", "ID", "id"),
    "bernama": ("bernama", "Bernama", "bernama.com", "MY", "ms"),
    "reuters": ("reuters", "Reuters", "reuters.com", "GB", "en"),
    "cna": ("cna", "CNA", "channelnewsasia.com", "SG", "en"),
    "tempo-en": ("tempo-en", "Tempo English", "en.tempo.co", "ID", "en"),
    "dw": ("dw", "Deutsche Welle", "dw.com", "DE", "de"),
    "lemonde": ("lemonde", "Le Monde", "lemonde.fr", "FR", "fr"),
    "blogku": ("blogku", "Blogku", "blogku.example", None, "id"),
}


def entity(id_: str, name: str, kind: str) -> dict[str, Any]:
    return {"id": id_, "name": name, "type": kind, "mentions": 1}


KIM = entity("Q56226", "Kim Jong Un", "PER")
KIM_UPPER = entity("Q56226", "KIM JONG UN", "PER")  # canonical names in another casing: still one entity
KIM_LOWER = entity("Q56226", "kim jong un", "PER")
KIM_YO_JONG = entity("Q7400543", "Kim Yo Jong", "PER")
PUTIN = entity("Q7747", "Vladimir Putin", "PER")
NORTH_KOREA = entity("Q423", "North Korea", "LOC")
RUSSIA = entity("Q159", "Russia", "LOC")
UKRAINE = entity("Q212", "Ukraine", "LOC")
UN = entity("Q1065", "United Nations", "ORG")


@dataclass(frozen=True)
class Spec:
    key: str
    title: str
    text: str
    language: str = "id"
    source: str = "kompastv"
    entities: tuple[dict[str, Any], ...] = ()
    stem_language: str | None = None  # what the enricher stems `und` as: the source's usual language


# Words between "rusia" and "amunisi" in the NEAR articles (none stems to either, none is a query word).
FILLERS = ["membeli", "banyak", "sekali", "stok", "lama", "lagi"]
NEAR_TAIL = "Pejabat menyampaikan laporan itu di Jakarta."

SPECS: list[Spec] = [
    # Indonesian: affixes, clitics, reduplication
    Spec(
        "id-amunisinya",
        "Garis depan kekurangan pasokan",
        "Komandan mengakui amunisinya hampir habis setelah serangan berhari-hari.",
        entities=(RUSSIA,),
    ),
    Spec(
        "id-reduplikasi",
        "Gudang tua dibongkar",
        "Amunisi-amunisi tua dimusnahkan oleh tentara di Jawa Timur.",
        source="detik",
    ),
    Spec(
        "id-persenjataan",
        "Anggaran persenjataan naik",
        "Pemerintah menambah anggaran persenjataannya tahun depan.",
        source="antara",
    ),
    Spec(
        "id-peluru-artileri",
        "Korea Utara kirim peluru artileri",
        "Pejabat AS menyebut Pyongyang mengirimkan peluru artileri dan roket ke Rusia.",
        entities=(KIM, NORTH_KOREA, RUSSIA),
    ),
    Spec(
        "id-peluru-dan-artileri",
        "Latihan militer di lapangan tembak",
        "Pasukan menembakkan peluru dan artileri berat selama dua hari.",
        source="detik",
    ),
    Spec(
        "id-peluru-judul-artileri-teks", "Pasokan peluru", "Artileri tiba di pelabuhan pada pagi hari.", source="antara"
    ),
    Spec(
        "id-klitik",
        "Tentara kehilangan perlengkapan",
        "Tentara itu kehilangan senjatanya dan pelurunya di hutan.",
        source="detik",
    ),
    Spec(
        "id-kompastv",
        "Barat tambah bantuan",
        "SEOUL, KOMPAS.TV - Negara-negara Barat mengirim amunisi ke Ukraina.",
        entities=(UKRAINE,),
    ),
    Spec(
        "id-judul-rusia-teks-amunisi", "Pasokan untuk Rusia", "Amunisi dikirim lewat jalur kereta api.", source="antara"
    ),
    Spec("id-amunisi-judul", "Amunisi menumpuk di gudang", "Petugas memeriksa gudang di pelabuhan.", source="detik"),
    Spec(
        "id-kim-upper",
        "Pemimpin Korut meninjau pabrik traktor",
        "Kunjungan itu disiarkan televisi pemerintah.",
        entities=(KIM_UPPER, NORTH_KOREA),
    ),
    Spec(
        "id-kim-yo-jong",
        "Kim Yo Jong mengecam latihan gabungan",
        "Adik pemimpin Korut itu menyebut latihan sebagai provokasi.",
        source="antara",
        entities=(KIM_YO_JONG, NORTH_KOREA),
    ),
    Spec(
        "id-putin-kim",
        "Putin dan Kim bertemu di Vladivostok",
        "Kim Jong Un dan Vladimir Putin membahas kerja sama; Rusia disebut membutuhkan amunisi dari Korea Utara.",
        entities=(KIM_LOWER, PUTIN, RUSSIA, NORTH_KOREA),
    ),
    Spec(
        "id-pbb",
        "PBB menyoroti perdagangan senjata",
        "Perserikatan Bangsa-Bangsa menyebut perdagangan senjata dengan Korea Utara melanggar resolusi.",
        source="antara",
        entities=(UN, NORTH_KOREA),
    ),
    Spec(
        "id-beras",
        "Harga beras di pasar tradisional naik",
        "Menurut Kompas, harga beras naik dalam dua pekan terakhir.",
        source="detik",
    ),
    Spec(
        "id-hujan",
        "Hujan lebat masih terjadi di Jawa Barat",
        "Warga diminta waspada terhadap banjir dan longsor.",
        source="antara",
    ),
    Spec(
        "id-timnas",
        "Tim nasional bersiap menghadapi laga persahabatan",
        "Pelatih memanggil 25 pemain ke pemusatan latihan.",
        source="kompastv",
    ),
    Spec(
        "und-blog",
        "Catatan forum",
        "Amunisinya untuk Rusia dibahas di forum.",
        language="und",
        source="blogku",
        stem_language="id",
    ),
    Spec(
        "id-blog-tanpa-negara",
        "Catatan pertahanan",
        "Rusia memesan amunisi baru, tulis seorang blogger.",
        source="blogku",
    ),
    # Malay
    Spec(
        "ms-amunisinya",
        "Tentera terima bekalan senjata",
        "Bekalan peluru dan amunisinya dihantar ke sempadan.",
        language="ms",
        source="bernama",
    ),
    Spec(
        "ms-sawit",
        "Harga minyak sawit meningkat",
        "Peniaga menjangka harga kekal tinggi minggu ini.",
        language="ms",
        source="bernama",
    ),
    # English
    Spec(
        "en-ammunition",
        "North Korea ships ammunition to Russia",
        "Officials said the shipments of artillery shells continued through the port of Rajin.",
        language="en",
        source="reuters",
        entities=(KIM_LOWER, NORTH_KOREA, RUSSIA),
    ),
    Spec("en-grain", "Grain shipments resume", "Grain shipments resumed after the storm.", language="en", source="cna"),
    Spec(
        "en-amunisi",
        "Jakarta report on supplies",
        "Indonesian officials met negara-negara partners; the word amunisi appeared in the report.",
        language="en",
        source="tempo-en",
    ),
    Spec(
        "en-amunisinya",
        "A headline explained",
        "The Indonesian headline used the word amunisinya, meaning its ammunition.",
        language="en",
        source="cna",
    ),
    Spec(
        "en-russias-army",
        "Army supplies",
        "Russia's army bought ammunition from abroad.",
        language="en",
        source="reuters",
        entities=(RUSSIA,),
    ),
    Spec(
        "en-dont",
        "Outlook for the year",
        "Officials don't expect more ammunition shipments this year.",
        language="en",
        source="tempo-en",
    ),
    Spec(
        "en-markets",
        "Stock markets rally",
        "Stock markets rallied on Tuesday as tech shares rose.",
        language="en",
        source="reuters",
    ),
    Spec(
        "en-kim-summit",
        "Kim and Putin meet",
        "The leaders discussed weapons and ammunition.",
        language="en",
        source="cna",
        entities=(KIM, PUTIN),
    ),
    # Other languages: lowercased, not stemmed
    Spec(
        "de-munition",
        "Nordkorea liefert Munition an Russland",
        "Kim Jong Un traf Wladimir Putin; das Munitionslager wurde erweitert.",
        language="de",
        source="dw",
        entities=(KIM_UPPER, PUTIN, RUSSIA),
    ),
    Spec(
        "fr-munitions",
        "Les munitions nord-coréennes arrivent en Russie",
        "Selon Séoul, des obus ont été livrés.",
        language="fr",
        source="lemonde",
        entities=(RUSSIA, NORTH_KOREA),
    ),
]
# NEAR at every distance: k words between "rusia" and "amunisi", in both orders.
for k in range(len(FILLERS)):
    words = " ".join(["Rusia", *FILLERS[:k], "amunisi"])
    SPECS.append(Spec(f"id-near-{k}", f"Laporan pertahanan nomor {k}", f"{words}. {NEAR_TAIL}",
                      source=("antara", "kompastv", "detik")[k % 3]))  # fmt: skip
for k in (0, 1, 2, 3):
    words = " ".join(["Amunisi", *FILLERS[:k], "Rusia"])
    SPECS.append(Spec(f"id-near-rev-{k}", f"Laporan logistik nomor {k}", f"{words}. {NEAR_TAIL}",
                      source=("detik", "antara")[k % 2]))  # fmt: skip
for k in (0, 2, 3):
    words = " ".join(["Russia", *FILLERS[:k], "ammunition"])  # fillers are foreign words to Snowball too
    SPECS.append(Spec(f"en-near-{k}", f"Defence report {k}", f"{words}. Officials gave no details.",
                      language="en", source="cna"))  # fmt: skip


def article_id(key: str) -> str:
    return hashlib.sha256(f"query-real-{key}".encode()).hexdigest()


def build_articles(contracts) -> dict[str, dict[str, Any]]:
    """The specs as enriched articles (valid for the schema), keyed by spec key; half first seen a
    month ago, so the read alias spans two monthly indices."""
    base = json.loads(next(iter(contracts.examples("article-enriched", 1))).read_text(encoding="utf-8"))
    codec = Codec.for_topic(contracts, "articles_enriched")
    now = datetime.now(UTC).replace(microsecond=0)
    out = {}
    for n, spec in enumerate(SPECS):
        source_id, name, domain, country, usual = SOURCES[spec.source]
        stem_language = spec.stem_language or spec.language
        seen = (now - timedelta(days=35 * (n % 2), minutes=n)).isoformat()
        a = copy.deepcopy(base)
        a.update(
            id=article_id(spec.key),
            url=f"https://{domain}/berita/{spec.key}",
            canonical_url=f"https://{domain}/berita/{spec.key}",
            source={"id": source_id, "name": name, "domain": domain, "country": country, "languages": [usual]},
            title=spec.title,
            text=spec.text,
            language={"code": spec.language, "probability": 0.99},
            entities=[],
            canonical_entities=[dict(e) for e in spec.entities],
            terms=[],
            tags=[],
            stems={
                "title": stem_text(spec.title, stem_language),
                "text": stem_text(spec.text, stem_language),
                "stemmer": stemmer_name(stem_language),
            },
            story={"id": article_id(spec.key)[:16], "fingerprint": article_id(spec.key)[16:32]},
            content_hash=hashlib.sha256(f"{spec.title}\n{spec.text}".encode()).hexdigest(),
            published_at=seen,
            crawled_at=seen,
            first_seen_at=seen,
            enriched_at=seen,
        )
        codec.validate(a)
        out[spec.key] = a
    return out


def near_keys(max_between: int, *, reverse: bool = True, english: bool = False) -> set[str]:
    keys = {f"id-near-{k}" for k in range(len(FILLERS)) if k <= max_between}
    if reverse:
        keys |= {f"id-near-rev-{k}" for k in (0, 1, 2, 3) if k <= max_between}
    if english:
        keys |= {f"en-near-{k}" for k in (0, 2, 3) if k <= max_between}
    return keys


ALL_NEAR = near_keys(99)
# query -> (articles it must select, articles it must not select); every feature of the language.
QUERIES: dict[str, tuple[set[str], set[str]]] = {
    # stems: affixes, clitics and reduplication count; another language's stemmer does not apply
    "amunisi": (
        {"id-amunisinya", "id-reduplikasi", "ms-amunisinya", "und-blog", "en-amunisi", "id-amunisi-judul"},
        {"en-amunisinya", "en-ammunition", "id-peluru-artileri"},
    ),
    "exact:amunisi": ({"id-reduplikasi", "en-amunisi", "id-amunisi-judul"}, {"id-amunisinya", "und-blog"}),
    "exact:amunisinya": ({"id-amunisinya", "en-amunisinya", "ms-amunisinya", "und-blog"}, {"id-reduplikasi"}),
    "Amunisinya": ({"id-amunisinya", "id-reduplikasi", "en-amunisinya"}, {"en-amunisi"}),
    "senjata": ({"id-persenjataan", "id-klitik", "ms-amunisinya", "id-pbb"}, {"en-kim-summit"}),
    "exact:persenjataan": ({"id-persenjataan"}, {"id-klitik"}),
    "ammunition": ({"en-ammunition", "en-russias-army", "en-dont", "en-amunisinya"}, {"en-grain", "de-munition"}),
    "shipments": ({"en-ammunition", "en-grain", "en-dont"}, {"en-markets"}),
    "exact:shipment": (set(), {"en-grain", "en-ammunition"}),  # the stem is not a surface word
    "exact:shipments": ({"en-grain", "en-dont"}, {"en-markets"}),
    # phrases: consecutive, within one section
    '"peluru artileri"': ({"id-peluru-artileri"}, {"id-peluru-dan-artileri", "id-peluru-judul-artileri-teks"}),
    "peluru artileri": (
        {"id-peluru-artileri", "id-peluru-dan-artileri", "id-peluru-judul-artileri-teks"},
        {"id-klitik"},
    ),
    'exact:"peluru artileri"': ({"id-peluru-artileri"}, {"id-peluru-dan-artileri"}),
    '"korea utara"': ({"id-peluru-artileri", "id-putin-kim", "id-pbb"}, {"id-kim-upper"}),
    # NEAR: at most n-1 words between, either order, never from the title into the text
    "rusia NEAR/1 amunisi": (near_keys(0), near_keys(99) - near_keys(0) | {"id-judul-rusia-teks-amunisi"}),
    "rusia NEAR/3 amunisi": (near_keys(2), ALL_NEAR - near_keys(2) | {"id-judul-rusia-teks-amunisi"}),
    "amunisi NEAR/3 rusia": (near_keys(2), ALL_NEAR - near_keys(2)),
    "rusia NEAR/4 amunisi": (near_keys(3), ALL_NEAR - near_keys(3)),
    "rusia NEAR/6 amunisi": (near_keys(5), {"id-judul-rusia-teks-amunisi"}),
    "rusia NEAR/50 amunisi": (ALL_NEAR, {"id-judul-rusia-teks-amunisi"}),
    "russia NEAR/3 ammunition": ({"en-near-0", "en-near-2", "en-russias-army", "en-ammunition"}, {"en-near-3"}),
    "russia NEAR/2 ammunition": ({"en-near-0", "en-ammunition"}, {"en-near-2", "en-russias-army"}),
    # phrases inside NEAR: four words between "rusia" and "korea utara", three before "dari korea"
    '"korea utara" NEAR/5 rusia': ({"id-putin-kim"}, {"id-peluru-artileri"}),
    '"korea utara" NEAR/4 rusia': (set(), {"id-putin-kim"}),
    '"dari korea" NEAR/4 rusia': ({"id-putin-kim"}, {"id-pbb"}),
    '"dari korea" NEAR/3 rusia': (set(), {"id-putin-kim"}),
    "peluru NEAR/2 artileri": ({"id-peluru-artileri", "id-peluru-dan-artileri"}, {"id-peluru-judul-artileri-teks"}),
    # wildcards: surface words
    "amuni*": ({"id-amunisinya", "en-amunisinya", "id-near-0"}, {"en-ammunition"}),
    "munition*": ({"de-munition", "fr-munitions"}, {"en-ammunition"}),
    "exact:persenjata*": ({"id-persenjataan"}, {"id-klitik"}),
    # NEAR mixing surface and stems positions (field_masking_span in ES)
    "amuni* NEAR/2 rusia": (near_keys(1), {"id-near-2"}),
    "amuni* NEAR/2 barat": ({"id-kompastv"}, {"id-hujan"}),
    "exact:amunisinya NEAR/3 habis": ({"id-amunisinya"}, {"ms-amunisinya"}),
    # filters
    "amunisi language:id": ({"id-amunisinya", "id-near-0"}, {"ms-amunisinya", "en-amunisi", "und-blog"}),
    "amunisi -language:id": ({"ms-amunisinya", "en-amunisi", "und-blog"}, {"id-amunisinya"}),
    "senjata language:MS": ({"ms-amunisinya"}, {"id-persenjataan"}),
    "amunisi source:kompastv": ({"id-amunisinya", "id-kompastv"}, {"id-reduplikasi"}),
    "amunisi source:Kompas.TV": ({"id-amunisinya", "id-kompastv"}, {"id-reduplikasi"}),
    "amunisi OR ammunition source:REUTERS.COM": (
        {"id-amunisinya", "en-ammunition", "en-russias-army"},
        {"en-dont", "en-amunisinya"},
    ),
    "(amunisi OR ammunition OR munition*) AND NOT country:ID": (
        {"ms-amunisinya", "en-ammunition", "de-munition", "fr-munitions", "id-blog-tanpa-negara", "und-blog"},
        {"id-amunisinya", "en-dont"},
    ),
    "country:my senjata": ({"ms-amunisinya"}, {"id-persenjataan"}),
    "(country:sg OR country:gb) ammunition": ({"en-ammunition", "en-amunisinya"}, {"en-dont", "id-amunisinya"}),
    # entities: canonical name in any casing, or canonical id
    'entity:"kim jong un"': ({"id-kim-upper", "id-peluru-artileri", "id-putin-kim", "de-munition"}, {"id-kim-yo-jong"}),
    'entity:"KIM JONG UN"': ({"id-kim-upper", "en-ammunition", "en-kim-summit"}, {"id-kim-yo-jong"}),
    "entity:q56226": ({"id-kim-upper", "id-putin-kim", "en-kim-summit"}, {"id-kim-yo-jong"}),
    "entity:Russia -amunisi": ({"en-ammunition", "de-munition", "id-peluru-artileri"}, {"id-amunisinya"}),
    'kim NOT entity:"kim jong un"': ({"id-kim-yo-jong"}, {"id-putin-kim", "en-kim-summit"}),
    # hyphens and dots: the standard tokenizer's word boundaries
    "negara": ({"id-kompastv", "en-amunisi"}, {"id-pbb"}),
    '"negara negara"': ({"en-amunisi"}, {"id-kompastv"}),
    "negara-negara": ({"id-kompastv", "en-amunisi"}, {"id-pbb"}),
    "kompas": ({"id-kompastv", "id-beras"}, {"id-amunisinya"}),
    "exact:kompas": ({"id-beras"}, {"id-kompastv"}),
    "exact:kompas.tv": ({"id-kompastv"}, {"id-beras"}),
    "nord-coréennes": ({"fr-munitions"}, set()),
    "don't ammunition": ({"en-dont"}, {"en-ammunition"}),
    "russia": ({"en-russias-army", "en-ammunition"}, {"de-munition"}),
    # boolean structure
    "-rusia (amunisi OR senjata)": ({"id-amunisinya", "id-persenjataan", "en-amunisi"}, {"id-near-0", "und-blog"}),
    '(rusia NEAR/3 amunisi OR "peluru artileri") AND (source:kompastv OR source:antaranews.com) NOT entity:q56226': (
        {"id-near-0", "id-near-1"},
        {"id-peluru-artileri", "id-near-2", "id-near-rev-0"},
    ),
    "((senjata AND NOT perdagangan) OR (ammunition AND -shipments)) AND NOT (language:ms OR source:cna)": (
        {"id-persenjataan", "id-klitik", "en-russias-army"},
        {"id-pbb", "ms-amunisinya", "en-dont", "en-kim-summit"},
    ),
}


def test_python_and_elasticsearch_select_the_same_articles(infra, contracts, es_prefix):
    articles = build_articles(contracts)
    key_of = {a["id"]: key for key, a in articles.items()}
    admin = make_client(es_settings(infra, "pantau_admin", es_prefix))
    apply_templates(admin, ES_DIR, es_prefix)
    indexer = make_client(es_settings(infra, "pantau_indexer", es_prefix))
    indexed_at = datetime.now(UTC)
    operations = b"".join(bulk_lines(article_action(a, es_prefix, indexed_at)) for a in articles.values())
    answer = indexer.bulk(operations=operations, filter_path="errors,items.*.status,items.*.error")
    assert not answer["errors"], answer
    admin.indices.refresh(index=f"{es_prefix}-articles")
    reader = make_client(es_settings(infra, "pantau_reader", es_prefix))
    alias = f"{es_prefix}-articles"
    assert reader.count(index=alias)["count"] == len(articles)
    assert len(reader.indices.get_alias(name=alias)) == 2  # two monthly indices behind the alias

    views = {key: ArticleView.of(a) for key, a in articles.items()}
    problems = []
    for text, (must, must_not) in QUERIES.items():
        query = parse_query(text)
        in_python = {key for key, view in views.items() if query.matches(view)}
        hits = reader.search(index=alias, query=query.to_elasticsearch(), size=1000, source=False)["hits"]["hits"]
        in_es = {key_of[hit["_id"]] for hit in hits}
        if in_python != in_es:
            problems.append(
                f"{text!r}: only in Python {sorted(in_python - in_es)}, only in ES {sorted(in_es - in_python)}\n"
                f"  ES query: {json.dumps(query.to_elasticsearch())}"
            )
        if not must <= in_python or in_python & must_not:
            problems.append(
                f"{text!r}: selects {sorted(in_python)}; missing {sorted(must - in_python)}, "
                f"wrongly selected {sorted(in_python & must_not)}"
            )
        if must and len(in_python) == len(articles):
            problems.append(f"{text!r}: selects every article")
    assert not problems, "\n".join(problems)
    # Only a few boundary cases are deliberately empty: the rest select some articles, never all.
    assert sum(not must for must, _ in QUERIES.values()) <= 4
