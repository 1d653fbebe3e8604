"""`pantau indexer run`."""

from __future__ import annotations

import click


@click.group()
def indexer() -> None:
    """The indexer service: enriched articles and alerts into Elasticsearch."""


@indexer.command("run")
def indexer_run() -> None:
    """Run one indexer worker (scale by starting more: they share one consumer group).
    Connects to Elasticsearch as PANTAU_ES_USERNAME (pantau_indexer as deployed)."""
    from pantau.common.es_io import make_client
    from pantau.common.kafka_io import DeadLetterProducer, close_producer, make_consumer
    from pantau.common.runtime import run_service_process
    from pantau.common.settings import ElasticsearchSettings, IndexerSettings, TopicSettings
    from pantau.indexer.service import Indexer

    settings, topics, es_settings = IndexerSettings(), TopicSettings(), ElasticsearchSettings()

    def body(ctx):
        consumer = make_consumer(ctx.kafka, "indexer", group_id=settings.group,
                                 max_poll_records=settings.batch_max_docs)  # fmt: skip
        ctx.closers.append(consumer.close)  # after the drain: leaves the group
        producer = ctx.producer()
        ctx.closers.append(lambda: close_producer(producer))  # dead letters were confirmed before commits
        es = make_client(es_settings)
        ctx.closers.append(es.close)
        dead_letters = DeadLetterProducer(producer, topics.dlq_indexer, "indexer")
        Indexer(consumer, es, dead_letters, ctx.contracts, topics, settings, es_settings.index_prefix,
                ctx.shutdown, ctx.health).run()  # fmt: skip

    run_service_process("indexer", body)
