"""The crawler: sources → entry points (feeds, news sitemaps, section pages, WARC/JSON lines) →
guarded, polite fetches → extracted articles → `articles.raw`.

Pure core: `sources`, `urls`, `charset`, `xmlsafe`, `links`, `dates`, `extract`, `article`,
`schedule`, `guard` (the decision). I/O shell: `fetch` (aiohttp behind the egress guard),
`robots`, `state` (sqlite), `publisher` (kafka-python), `warc`, `service` (the loop)."""
