"""A fixture news site, generated in memory: Indonesian and English articles rendered in the shapes
of real outlets (JSON-LD or not, "Baca juga" blocks inside the body, ad markers, Kompas's
lang="en" on Indonesian pages), with feeds (RSS 2.0, RSS 1.0, Atom), news sitemaps (index + gz)
and section pages. Served on loopback by pantau.demo.site; used by `make run`, the tests and `make bench`.
"""

from __future__ import annotations

import gzip
import html
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

WIB = timezone(timedelta(hours=7), "WIB")

# Indonesian and English news paragraphs written for these fixtures (not copied from any outlet).
ID_PARAGRAPHS = [
    "Pemerintah Indonesia menyatakan akan memperketat pengawasan ekspor amunisi setelah laporan "
    "mengenai pengiriman senjata ke wilayah konflik beredar di media internasional.",
    "Juru bicara Kementerian Luar Negeri mengatakan pihaknya terus memantau perkembangan di "
    "Semenanjung Korea dan mendorong semua pihak menahan diri.",
    "Menurut sejumlah analis di Jakarta, pertemuan antara pemimpin Korea Utara dan Presiden Rusia "
    "dapat mengubah peta kerja sama militer di kawasan Asia Timur.",
    "Dewan Perwakilan Rakyat meminta pemerintah menyampaikan penjelasan resmi mengenai posisi "
    "Indonesia dalam forum Perserikatan Bangsa-Bangsa pekan depan.",
    "Harga beras di sejumlah pasar tradisional di Surabaya dan Medan dilaporkan naik dalam dua "
    "pekan terakhir akibat berkurangnya pasokan dari daerah sentra produksi.",
    "Badan Meteorologi, Klimatologi, dan Geofisika memperkirakan hujan lebat masih akan terjadi di "
    "sebagian besar wilayah Jawa Barat hingga akhir bulan ini.",
    "Polisi mengimbau warga untuk tidak terpengaruh informasi yang belum terverifikasi dan selalu "
    "memeriksa sumber berita sebelum menyebarkannya di media sosial.",
    "Sejumlah pengamat menilai kebijakan baru tersebut perlu diikuti pengawasan yang ketat agar "
    "tidak menimbulkan celah penyalahgunaan di lapangan.",
    "Gubernur menyatakan anggaran daerah untuk perbaikan jalan dan jembatan akan ditambah setelah "
    "banjir merusak infrastruktur di beberapa kabupaten.",
    "Ekonom memperkirakan pertumbuhan ekonomi nasional tetap stabil meski permintaan global melemah "
    "dan harga komoditas berfluktuasi sepanjang tahun.",
]
EN_PARAGRAPHS = [
    "North Korean leader Kim Jong Un could travel to Russia to meet President Vladimir Putin, "
    "officials in Washington said on Monday, in what would be a rare trip abroad.",
    "The United States has accused Moscow of seeking to buy ammunition from Pyongyang to refill "
    "stocks depleted by the war in Ukraine, a charge both governments deny.",
    "Analysts in Seoul said a meeting would deepen cooperation between two leaders who are both "
    "isolated by international sanctions and locked in separate confrontations with the West.",
    "The United Nations Security Council has banned all arms trade with North Korea, and any "
    "purchase of shells or rockets would violate resolutions Russia itself supported.",
    "Officials added that food, energy and advanced weapons technology could be what Pyongyang "
    "seeks in return, though the details of any deal remain unclear.",
]

BOILERPLATE_MARKERS = [
    "Baca juga", "Baca Juga", "Simak juga", "Pilihan Editor", "Scroll ke bawah untuk melanjutkan membaca",
    "ADVERTISEMENT", "SCROLL TO CONTINUE WITH CONTENT",
]  # fmt: skip


@dataclass
class Article:
    slug: str
    outlet: str  # kompastv | detik | kompas | tempo | antara | cnn | apnews
    title: str
    paragraphs: list[str]
    published: datetime
    section: str = "Internasional"
    author: str = "Redaksi"
    lang: str = "id"
    tags: list[str] = field(default_factory=list)
    updated: datetime | None = None  # set when the text is edited after publication

    @property
    def modified(self) -> datetime:
        return self.updated or self.published

    @property
    def path(self) -> str:
        return f"/{self.section.lower()}/{self.published:%Y/%m/%d}/{self.slug}"


def _ps(paragraphs: list[str]) -> str:
    return "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)


def _related(base: str, outlet: str) -> str:
    """The related-link block each outlet puts inside its article body."""
    link = f'<a href="{base}/internasional/2023/09/01/berita-lain-yang-tidak-relevan-sama-sekali">Berita lain yang tidak relevan sama sekali</a>'
    return {
        "kompastv": f"<p><strong>Baca Juga: </strong>{link}</p>",
        "kompas": f'<p><strong>Baca juga: </strong>{link}</p><div class="ads-on-body">ADVERTISEMENT</div>',
        "detik": f'<table class="linksisip"><tr><td><div class="lihatjg"><strong>Baca juga:</strong> {link}</div></td></tr></table>'
        f'<div class="parallaxindetail">ADVERTISEMENT</div><p class="para_caption">SCROLL TO CONTINUE WITH CONTENT</p>',
        "tempo": f"<p><strong>Pilihan Editor:</strong> {link}</p>",
        "antara": f"<p>Baca juga: {link}</p>",
        "cnn": f'<div class="inlinelink">Baca juga:<ul><li>{link}</li></ul></div><p>Scroll ke bawah untuk melanjutkan membaca</p>',
        "apnews": "",
    }[outlet]


def render(article: Article, base: str) -> str:
    url = base + article.path
    half = len(article.paragraphs) // 2
    body = _ps(article.paragraphs[:half]) + _related(base, article.outlet) + _ps(article.paragraphs[half:])
    jsonld = {
        "@context": "https://schema.org",
        "@type": "NewsArticle",
        "headline": article.title,
        "datePublished": article.published.isoformat(),
        "dateModified": article.modified.isoformat(),
        "author": {"@type": "Person", "name": article.author},
        "articleSection": article.section,
        "keywords": ", ".join(article.tags),
        "image": {"@type": "ImageObject", "url": f"{base}/img/{article.slug}.jpg"},
    }
    # Kompas marks Indonesian pages lang="en"; Antara publishes no JSON-LD, only a visible date.
    lang = "en" if article.outlet in ("kompas", "kompastv") else article.lang
    ld = "" if article.outlet == "antara" else f'<script type="application/ld+json">{json.dumps(jsonld)}</script>'
    meta_date = (
        f'<meta name="dtk:publishdate" content="{article.published:%Y/%m/%d %H:%M:%S}">'
        if article.outlet == "detik"
        else ""
    )
    visible_date = f'<div class="date">{article.published.astimezone(WIB):%d-%m-%Y %H:%M} WIB</div>'
    nav = "".join(f'<a href="{base}/{s}">{s.title()}</a>' for s in ("nasional", "internasional", "ekonomi"))
    return f"""<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="utf-8">
<title>{html.escape(article.title)} - {article.outlet.upper()}</title>
<link rel="canonical" href="{url}">
<meta property="og:title" content="{html.escape(article.title)}">
<meta property="og:url" content="{url}?utm_source=og">
<meta property="og:image" content="{base}/img/{article.slug}.jpg">
<meta name="author" content="{html.escape(article.author)}">
{meta_date}{ld}
</head><body>
<header><nav>{nav}</nav></header>
<main><article>
<h1>{html.escape(article.title)}</h1>{visible_date}
<div class="detail__body-text">{body}</div>
</article>
<aside class="sidebar"><h3>Terpopuler</h3><ul><li><a href="{base}/nasional/2023/09/02/berita-populer-lainnya-di-sidebar">Berita populer lainnya di sidebar</a></li></ul></aside>
</main>
<footer><a href="{base}/tentang-kami">Tentang kami</a> <a href="{base}/pedoman-media-siber">Pedoman</a></footer>
</body></html>"""


DEFAULT_START = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
OUTLETS = ["kompastv", "detik", "kompas", "tempo", "antara", "cnn"]


def article(i: int, start: datetime = DEFAULT_START) -> Article:
    """The i-th generated article: five Indonesian in the six outlet shapes, then one English."""
    published = start + timedelta(minutes=37 * i)
    if i % 6 == 5:
        paragraphs = [EN_PARAGRAPHS[(i + k) % len(EN_PARAGRAPHS)] for k in range(5)]
        return Article(f"kim-jong-un-may-travel-to-russia-report-{i}", "apnews",
                       f"Kim Jong Un may travel to Russia, report {i} says", paragraphs,
                       published, "World", "AP Staff", "en", ["North Korea", "Russia"])  # fmt: skip
    paragraphs = [ID_PARAGRAPHS[(i + k) % len(ID_PARAGRAPHS)] for k in range(6)]
    return Article(f"pemerintah-perketat-pengawasan-amunisi-bagian-{i}", OUTLETS[i % 6],
                   f"Pemerintah perketat pengawasan ekspor amunisi, bagian {i}", paragraphs,
                   published, "Internasional", "Penulis Fiktif", "id", ["amunisi", "Korea Utara"])  # fmt: skip


# The newsroom of `pantau demo site`: distinct stories on everyday topics, then a surge of
# ammunition stories from several outlets, so `make run` shows a spike. Sentences are filled from
# templates with varied places and numbers, so stories do not collapse into one near-duplicate.
CITIES = ["Jakarta", "Surabaya", "Medan", "Bandung", "Makassar", "Semarang", "Palembang", "Denpasar",
          "Pontianak", "Manado", "Ambon", "Kupang", "Padang", "Mataram", "Jayapura", "Balikpapan"]  # fmt: skip
TOPICS = {
    "beras": (
        "Harga beras di {city} naik {n} persen",
        [
            "Pedagang di pasar {city} mengeluhkan pasokan beras yang berkurang sejak {d} hari lalu.",
            "Dinas perdagangan {city} mencatat harga rata-rata mencapai {n}.{m}00 rupiah per kilogram.",
            "Warga {city} mulai membeli beras dalam jumlah kecil untuk menghemat pengeluaran.",
            "Bulog menyiapkan operasi pasar di {m} titik di sekitar {city} pekan ini.",
            "Petani di pinggiran {city} menyebut panen mundur karena cuaca tidak menentu.",
        ],
    ),
    "banjir": (
        "Banjir rendam {n} desa di sekitar {city}",
        [
            "Hujan deras sejak {d} hari lalu membuat sungai di {city} meluap.",
            "Sebanyak {n}{m} warga {city} mengungsi ke balai desa dan sekolah.",
            "BPBD {city} mengerahkan {m} perahu karet untuk mengevakuasi warga lanjut usia.",
            "Akses jalan utama menuju {city} terputus sepanjang {n} kilometer.",
            "Pemerintah daerah {city} menetapkan status tanggap darurat selama {d} hari.",
        ],
    ),
    # foreign news the Kim Jong Un subscription of `make run` asks for in real time
    "korut": (
        "Utusan Kim Jong Un bertemu pejabat daerah di {city}",
        [
            "Utusan pemimpin Korea Utara Kim Jong Un tiba di {city} untuk kunjungan {d} hari.",
            "Pertemuan di {city} membahas kerja sama perdagangan senilai {n} juta dolar AS.",
            "Kementerian Luar Negeri menyebut kunjungan ke {city} sebagai agenda rutin kedua negara.",
            "Puluhan warga {city} menyambut rombongan dari Pyongyang di bandara pada pukul {m} pagi.",
            "Pengamat hubungan internasional menilai kunjungan ke {city} bagian dari upaya mencari mitra dagang.",
        ],
    ),
    "sepak bola": (
        "Klub {city} menang {m}-{d} di kandang sendiri",
        [
            "Ribuan suporter memadati stadion di {city} sejak sore hari.",
            "Pelatih tim {city} memuji disiplin pemain bertahan sepanjang laga.",
            "Gol kemenangan dicetak pada menit ke-{n}{m} lewat sundulan.",
            "Hasil ini membawa klub {city} naik ke peringkat {d} klasemen sementara.",
            "Panitia pelaksana {city} mencatat penjualan {n}{m}00 tiket.",
        ],
    ),
    "jalan": (
        "Perbaikan jalan di {city} ditargetkan rampung dalam {d} bulan",
        [
            "Dinas pekerjaan umum {city} memulai pengaspalan ulang sepanjang {n} kilometer.",
            "Pengendara di {city} diminta memakai jalur alternatif selama pekerjaan berlangsung.",
            "Anggaran perbaikan jalan {city} tahun ini mencapai {n}{m} miliar rupiah.",
            "Warga {city} berharap lubang jalan yang sering memicu kecelakaan segera ditutup.",
            "Kontraktor menyiapkan {m} alat berat di lokasi proyek dekat pusat {city}.",
        ],
    ),
}
SURGE = (
    "Pengiriman amunisi lewat {city} diselidiki",
    [
        "Aparat di {city} memeriksa {n} peti amunisi yang diduga akan dikirim ke wilayah konflik.",
        "Juru bicara kepolisian {city} mengatakan amunisinya disita dari gudang dekat pelabuhan.",
        "Penyidik menelusuri dokumen ekspor amunisi yang diterbitkan {d} bulan lalu di {city}.",
        "Anggota DPR meminta penjelasan pemerintah tentang izin pengiriman amunisi dari {city}.",
        "Pengamat militer di {city} menilai pengawasan ekspor amunisi perlu diperketat.",
    ],
)


def newsroom_article(i: int, published: datetime, surge: bool = False) -> Article:
    """The i-th demo story: an everyday topic, or (surge) an ammunition story; five outlets."""
    import random

    rng = random.Random(i)
    title_template, sentences = SURGE if surge else TOPICS[sorted(TOPICS)[i % len(TOPICS)]]
    city = rng.choice(CITIES)

    def fill(text: str) -> str:
        return text.format(city=city, n=rng.randint(2, 90), m=rng.randint(2, 9), d=rng.randint(2, 12))

    picked = rng.sample(sentences, 4)
    paragraphs = [fill(picked[0]) + " " + fill(picked[1]), fill(picked[2]), fill(picked[3])]
    slug = f"{'amunisi' if surge else 'berita'}-{city.lower()}-{i}"
    return Article(slug, OUTLETS[i % 5], fill(title_template), paragraphs, published, "Nasional",
                   "Redaksi Demo", "id", ["amunisi"] if surge else [])  # fmt: skip


def articles(count: int = 12, start: datetime = DEFAULT_START) -> list[Article]:
    return [article(i, start) for i in range(count)]


def rss2(items: list[Article], base: str) -> str:
    entries = "".join(
        f"<item><title>{html.escape(a.title)}</title><link>{base}{a.path}?utm_source=rss&amp;utm_medium=feed</link>"
        f"<guid>{base}{a.path}</guid><pubDate>{a.published:%a, %d %b %Y %H:%M:%S +0000}</pubDate>"
        f"<description>Ringkasan&nbsp;berita &mdash; {html.escape(a.title)}</description></item>"
        for a in items
    )
    # Stray bytes before the declaration and HTML entities (&nbsp; &mdash;) in XML, as found in the wild.
    return f'\n\n  <?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Fixture</title>{entries}</channel></rss>'


def rss1(items: list[Article], base: str) -> str:
    entries = "".join(
        f'<item rdf:about="{base}{a.path}"><title>{html.escape(a.title)}</title><link>{base}{a.path}</link>'
        f"<dc:date>{a.published.isoformat()}</dc:date></item>"
        for a in items
    )
    return (
        '<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        'xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f'<channel rdf:about="{base}/rss1"><title>Fixture RSS 1.0</title></channel>{entries}</rdf:RDF>'
    )


def atom(items: list[Article], base: str) -> str:
    entries = "".join(
        f'<entry><title>{html.escape(a.title)}</title><link rel="alternate" href="{base}{a.path}"/>'
        f"<id>{base}{a.path}</id><published>{a.published.isoformat()}</published>"
        f"<updated>{a.modified.isoformat()}</updated></entry>"
        for a in items
    )
    return f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Fixture</title>{entries}</feed>'


def news_sitemap(items: list[Article], base: str) -> str:
    urls = "".join(
        f"<url><loc>{base}{a.path}</loc><news:news><news:publication><news:name>Fixture</news:name>"
        f"<news:language>{a.lang}</news:language></news:publication>"
        f"<news:publication_date>{a.published.isoformat()}</news:publication_date>"
        f"<news:title>{html.escape(a.title)}</news:title></news:news><lastmod>{a.modified.isoformat()}</lastmod></url>"
        for a in items
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        f'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">{urls}</urlset>'
    )


def sitemap_index(children: list[str], base: str) -> str:
    entries = "".join(f"<sitemap><loc>{base}{c}</loc><lastmod>2026-11-20</lastmod></sitemap>" for c in children)
    return f'<?xml version="1.0" encoding="UTF-8"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</sitemapindex>'


def section_page(items: list[Article], base: str) -> str:
    links = "".join(f'<div class="list"><h2><a href="{a.path}">{html.escape(a.title)}</a></h2></div>' for a in items)
    nav = '<nav><a href="/nasional">Nasional</a><a href="/tag/amunisi">amunisi</a></nav>'
    return f"<html><body><header>{nav}</header><main>{links}<a href='/indeks?page=2'>Berikutnya</a></main><footer><a href='/tentang-kami'>Tentang</a></footer></body></html>"


def gzipped(text: str) -> bytes:
    return gzip.compress(text.encode("utf-8"))


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<rss version="2.0"><channel><item><title>&lol4;</title><link>http://example.org/a</link></item></channel></rss>"""
