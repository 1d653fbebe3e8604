"""The indexer: `articles.enriched` and `alerts` into Elasticsearch, nothing lost, nothing doubled."""
