"""`pantau notifier run`."""

from __future__ import annotations

import click


@click.group()
def notifier() -> None:
    """The notifier: alerts to subscribers by webhook and email."""


@notifier.command("run")
def notifier_run() -> None:
    """Run the notifier (one active worker: the delivery log is read whole at start)."""
    from pantau.alerter.feed import SubscriptionFeed
    from pantau.common.codec import Codec
    from pantau.common.es_io import ElasticsearchSearch, make_client
    from pantau.common.kafka_io import DeadLetterProducer, close_producer, make_consumer
    from pantau.common.runtime import run_service_process
    from pantau.common.settings import ElasticsearchSettings, NotifierSettings, TopicSettings
    from pantau.notifier.service import DeliveryLog, DigestMaker, Notifier

    settings, topics, es = NotifierSettings(), TopicSettings(), ElasticsearchSettings()

    def body(ctx):
        # lz4: a thousand delivery-log records per alert; gzip was the notifier's largest CPU cost.
        producer = ctx.producer(compression_type="lz4")
        ctx.closers.append(lambda: close_producer(producer))
        dead_letters = DeadLetterProducer(producer, topics.dlq_notifier, "notifier")
        feed = SubscriptionFeed(ctx.kafka, topics.subscriptions, Codec.for_topic(ctx.contracts, "subscriptions"),
                                lambda record, exc: dead_letters.send_record(record, exc, "subscriptions"),
                                client="notifier-subscriptions")  # fmt: skip
        feed.start()
        ctx.closers.append(feed.stop)
        while not feed.caught_up.wait(1.0):
            if ctx.shutdown.requested:
                return
        log_codec = Codec.for_topic(ctx.contracts, "notifications")
        records = DeliveryLog.read_all(ctx.kafka, topics.notifications, log_codec)
        consumer = make_consumer(ctx.kafka, "notifier", group_id=settings.group)
        ctx.closers.append(consumer.close)
        # Digests are searched in Elasticsearch as the read-only user (PANTAU_ES_USERNAME=pantau_reader).
        client = make_client(es)
        ctx.closers.append(client.close)
        search = ElasticsearchSearch(client, es.index_prefix)
        digests = DigestMaker(lambda body: search.search("articles", body), lambda: feed.by_id, settings)
        worker = Notifier(consumer, DeliveryLog(producer, topics.notifications, log_codec), dead_letters,
                          lambda: feed.current.by_id, ctx.contracts, topics, settings, ctx.shutdown,
                          ctx.health, digests=digests)  # fmt: skip
        worker.restore(records)
        worker.run()

    run_service_process("notifier", body)
