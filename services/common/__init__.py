"""Shared library of every Pantau service. Pure modules (contracts, codec, errors, dlq policy,
backoff) import nothing from Kafka or Elasticsearch; `kafka` and `es` are the I/O adapters."""
