"""The shared library's hot paths: the codec (every message of every stage passes it twice) and a
produce → consume round trip through the real broker with validation at both ends."""

from __future__ import annotations

import json
import time
import uuid

from pantau.common.codec import Codec
from pantau.common.contracts import load_contracts
from pantau.common.kafka_io import apply_topics, make_admin, make_consumer, make_producer, record_headers
from pantau.common.settings import ContractSettings, KafkaSettings, TopicSettings
from tests.bench.figures import Figure, rate
from tests.infra import ensure_up


def run() -> list[Figure]:
    contracts = load_contracts(ContractSettings().schemas_dir)
    figures = []
    for topic_id, schema in (("articles_raw", "article-raw"), ("articles_enriched", "article-enriched")):
        codec = Codec.for_topic(contracts, topic_id)
        message = json.loads(contracts.examples(schema, 1)[-1].read_text(encoding="utf-8"))
        encoded = codec.encode(message)

        def round_trip(codec=codec, message=message, encoded=encoded) -> int:
            for _ in range(100):
                codec.encode(message)
                codec.decode(*encoded)
            return 100

        figures.append(Figure(f"codec {schema} encode+decode", rate(round_trip), "messages/s"))

    infra = ensure_up()
    settings = KafkaSettings(bootstrap_servers=infra.kafka_bootstrap)
    suffix = uuid.uuid4().hex[:8]
    names = TopicSettings(articles_raw=f"bench.articles.raw.{suffix}")
    admin = make_admin(settings, "bench")
    apply_topics(admin, contracts, names)
    codec = Codec.for_topic(contracts, "articles_raw")
    article = json.loads(contracts.examples("article-raw", 1)[-1].read_text(encoding="utf-8"))
    count = 5000
    try:
        producer = make_producer(settings, "bench")
        consumer = make_consumer(settings, "bench", group_id=f"bench-{suffix}", topics=[names.articles_raw])
        start = time.perf_counter()
        for i in range(count):
            value, headers = codec.encode({**article, "revision": i + 1})
            producer.send(names.articles_raw, key=article["id"].encode(), value=value, headers=headers)
        producer.flush()
        received = 0
        while received < count:
            for records in consumer.poll(timeout_ms=1000).values():
                for record in records:
                    codec.decode(record.value, record_headers(record))
                    received += 1
        elapsed = time.perf_counter() - start
        consumer.close()
        producer.close()
        figures.append(
            Figure(
                "kafka produce→consume, validated both ends",
                count / elapsed,
                "messages/s",
                note=f"{count} Kompas TV articles, acks=all, idempotent, gzip",
            )
        )
    finally:
        admin.delete_topics([t for t in [names.articles_raw] if t in set(admin.list_topics())])
        admin.close()
    return figures
