"""`pantau api run` (the subscriber API) and `pantau api key` (a new key for the keys file)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click


@click.group()
def api() -> None:
    """The subscriber API."""


@api.command("key")
@click.option("--owner", required=True, help="The subscriber (person, desk or team) the key acts for.")
@click.option("--rate-limit", help="This key's own limit, e.g. 600/minute (default: PANTAU_API_RATE_LIMIT).")
@click.option("--append", "append_to", type=click.Path(path_type=Path),
              help="Add the entry to this keys file (else it is printed).")  # fmt: skip
def api_key(owner: str, rate_limit: str | None, append_to: Path | None) -> None:
    """Make a key: the key itself goes to stderr (shown once, never stored), the keys-file entry
    (its SHA-256) to stdout or the file."""
    import dataclasses

    import yaml

    from pantau.api.core import new_key

    token, key = new_key(owner)
    key = dataclasses.replace(key, rate_limit=rate_limit)
    entry = yaml.safe_dump([key.to_record(datetime.now(UTC))], sort_keys=False)
    if append_to is not None:
        with append_to.open("a", encoding="utf-8") as out:
            out.write(entry)
    else:
        click.echo(entry, nl=False)
    click.echo(f"API key for {owner} (keep it; only its hash is stored): {token}", err=True)


@api.command("run")
def api_run() -> None:
    """Serve the subscriber API (PANTAU_API_HOST:PANTAU_API_PORT, OpenAPI at /openapi.json). Replicas
    may run side by side; rate limits are per replica."""
    import threading

    import uvicorn

    from pantau.alerter.feed import SubscriptionFeed
    from pantau.alerter.subscriptions import system_resolve
    from pantau.api.app import create_app
    from pantau.api.backends import KafkaSubscriptionStore, KeysFile
    from pantau.common.codec import Codec
    from pantau.common.es_io import ElasticsearchSearch, make_client
    from pantau.common.kafka_io import close_producer
    from pantau.common.runtime import run_service_process
    from pantau.common.settings import ApiSettings, ElasticsearchSettings, NotifierSettings, TopicSettings

    settings, topics, es, egress = ApiSettings(), TopicSettings(), ElasticsearchSettings(), NotifierSettings()

    def body(ctx):
        keys = KeysFile(settings.keys_file)
        producer = ctx.producer(linger_ms=0)  # one write per request: nothing to batch
        ctx.closers.append(lambda: close_producer(producer))
        codec = Codec.for_topic(ctx.contracts, "subscriptions")
        # An invalid record on the topic is the alerter's and the notifier's to dead-letter; here it is skipped.
        feed = SubscriptionFeed(ctx.kafka, topics.subscriptions, codec, lambda record, exc: None,
                                client="api-subscriptions", compile=None)  # fmt: skip
        feed.start()
        ctx.closers.append(feed.stop)
        while not feed.caught_up.wait(1.0):
            if ctx.shutdown.requested:
                return
        client = make_client(es)
        ctx.closers.append(client.close)
        app = create_app(keys, KafkaSubscriptionStore(feed, producer, topics.subscriptions, codec,
                                                      settings.write_timeout_s),
                         ElasticsearchSearch(client, es.index_prefix), codec, system_resolve, egress.allow_loopback,
                         egress.internal_hosts, settings.rate_limit, settings.auth_failure_limit)  # fmt: skip
        server = uvicorn.Server(uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None,
                                               access_log=False, timeout_graceful_shutdown=10))  # fmt: skip
        # uvicorn runs in a thread: the process's shutdown flag (SIGTERM) stays ours; then it drains.
        thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
        thread.start()
        ctx.health.add_check("api", lambda: server.started and thread.is_alive())
        while not ctx.shutdown.wait(1.0) and thread.is_alive():
            ctx.health.beat()
        server.should_exit = True
        thread.join(15)

    run_service_process("api", body)
