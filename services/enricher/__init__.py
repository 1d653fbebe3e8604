"""The enricher: raw articles → language, entities, watched terms, stems and story fingerprints.

Pure core (no Kafka): `language`, `entities`, `stems`, `terms`, `fingerprint`, `core` (the
`enrich` function). I/O shell: `stream` (the faust app) and the `pantau enrich` command."""
