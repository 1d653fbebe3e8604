"""`pantau`: the one command. Each service's subcommand starts it; the rest are operator tools.

Kept thin: parse arguments, build settings, call the library, print. Settings come from the
environment (PANTAU_*); `pantau settings` lists every one with its description.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from pantau import __version__
from pantau.common.logs import configure_logging
from pantau.common.settings import (
    SETTINGS_GROUPS,
    ContractSettings,
    ElasticsearchSettings,
    KafkaSettings,
    ObservabilitySettings,
    TopicSettings,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pantau")
def main() -> None:
    """Pantau: streaming media monitoring (crawl → enrich → index → alert → notify)."""


def _setup(service: str, tool: bool = True) -> None:
    """Logging for a subcommand. Operator tools print their results, so their logs start at WARNING."""
    obs = ObservabilitySettings()
    level = obs.log_level if not tool or obs.log_level.upper() == "DEBUG" else "WARNING"
    configure_logging(service, level, obs.log_format if not tool else "text")


@main.command("settings")
def settings_cmd() -> None:
    """Print every setting: environment variable, current value (secrets masked), description."""
    for group in SETTINGS_GROUPS:
        instance = group()
        prefix = group.model_config.get("env_prefix", "")
        for name, field in group.model_fields.items():
            value = getattr(instance, name)
            shown = "********" if "password" in name and str(value) else value
            click.echo(f"{prefix}{name.upper()}={shown}\n    {field.description}")


# ---------------------------------------------------------------- topics
@main.group()
def topics() -> None:
    """Kafka topics from schemas/topics.yaml."""


@topics.command("apply")
@click.option("--dry-run", is_flag=True, help="Print the plan, change nothing.")
def topics_apply(dry_run: bool) -> None:
    """Create or update topics idempotently (never deletes, never shrinks)."""
    from pantau.common.contracts import load_contracts
    from pantau.common.kafka_io import apply_topics, make_admin

    _setup("topics-apply")
    admin = make_admin(KafkaSettings())
    try:
        plan = apply_topics(admin, load_contracts(ContractSettings().schemas_dir), TopicSettings(), dry_run)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        admin.close()
    for line in plan.describe() or ["topics up to date"]:
        click.echo(("(dry run) " if dry_run else "") + line)


# ---------------------------------------------------------------- Elasticsearch
@main.group()
def es() -> None:
    """Elasticsearch templates and indices from schemas/elasticsearch/."""


@es.command("apply")
def es_apply() -> None:
    """Install component and index templates and this month's indices, idempotently.
    Connect as the admin user (PANTAU_ES_USERNAME=pantau_admin)."""
    from pantau.common.es_io import apply_templates, make_client

    _setup("es-apply")
    settings = ElasticsearchSettings()
    client = make_client(settings)
    changed = apply_templates(client, ContractSettings().schemas_dir / "elasticsearch", settings.index_prefix)
    for line in changed or ["templates and indices up to date"]:
        click.echo(line)


@es.command("retention")
@click.option("--keep-months", type=int, default=None, help="Override PANTAU_ES_RETENTION_MONTHS.")
@click.option("--dry-run", is_flag=True, help="List what would be deleted, delete nothing.")
def es_retention(keep_months: int | None, dry_run: bool) -> None:
    """Delete monthly indices older than the retention (no ILM here: whole months are dropped).
    Connect as the admin user; run it daily (a CronJob in deploy/k8s)."""
    from pantau.common.es_io import apply_retention, make_client

    _setup("es-retention")
    settings = ElasticsearchSettings()
    months = settings.retention_months if keep_months is None else keep_months
    expired = apply_retention(make_client(settings), settings.index_prefix, months, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    for name in expired:
        click.echo(f"{verb} {name}")
    if not expired:
        click.echo(f"nothing older than {months} month(s)")


# ---------------------------------------------------------------- dead letters
@main.group()
def dlq() -> None:
    """Look at and replay dead-letter topics."""


@dlq.command("show")
@click.argument("topic")
@click.option("--limit", default=20, show_default=True, help="At most this many messages.")
def dlq_show(topic: str, limit: int) -> None:
    """Print dead letters of TOPIC (actual name) as JSON lines: provenance and the value."""
    from pantau.common.dlq_tools import read_dead_letters

    _setup("dlq")
    for letter in read_dead_letters(KafkaSettings(), topic, limit):
        click.echo(json.dumps(letter, ensure_ascii=False))


@dlq.command("replay")
@click.argument("topic")
@click.option("--limit", default=None, type=int, help="At most this many messages (default: all).")
@click.option("--group", default="pantau-dlq-replay", show_default=True, help="Consumer group.")
def dlq_replay(topic: str, limit: int | None, group: str) -> None:
    """Send dead letters of TOPIC back to the topic each came from (after the bug is fixed).
    Progress is committed, so replaying twice sends each message once."""
    from pantau.common.dlq_tools import replay_dead_letters

    _setup("dlq")
    count = replay_dead_letters(KafkaSettings(), topic, group, limit)
    click.echo(f"replayed {count} message(s) from {topic}")


# ---------------------------------------------------------------- services
from pantau.alerter.cli import alerter, spikes, subscriptions  # noqa: E402
from pantau.api.cli import api  # noqa: E402
from pantau.crawler.cli import crawl, extract_cmd  # noqa: E402  (each service registers its commands)
from pantau.enricher.cli import enrich_cmd, enricher  # noqa: E402
from pantau.indexer.cli import indexer  # noqa: E402
from pantau.notifier.cli import notifier  # noqa: E402

main.add_command(crawl)
main.add_command(extract_cmd)
main.add_command(enrich_cmd)
main.add_command(enricher)
main.add_command(indexer)
main.add_command(notifier)
main.add_command(alerter)
main.add_command(spikes)
main.add_command(subscriptions)
main.add_command(api)


@main.group()
def demo() -> None:
    """The demo news source for `make run`."""


@demo.command("site")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8808, show_default=True)
@click.option("--articles", default=24, show_default=True, help="Articles to start with.")
@click.option("--new-every", default=20.0, show_default=True, help="Seconds between new articles (0: never).")
@click.option("--newsroom", is_flag=True, help="New articles are distinct stories on everyday topics.")
@click.option("--surge-after", default=0.0, show_default=True,
              help="Newsroom: seconds until a surge of ammunition stories from five outlets (0: never).")  # fmt: skip
@click.option("--surge-stories", default=20, show_default=True, help="Newsroom: stories in the surge.")
def demo_site(host: str, port: int, articles: int, new_every: float, newsroom: bool, surge_after: float,
              surge_stories: int) -> None:  # fmt: skip
    """Serve generated news (feeds, sitemaps, section pages, articles) until stopped."""
    import time
    from dataclasses import replace
    from datetime import UTC, datetime, timedelta

    from pantau.common.shutdown import ShutdownFlag
    from pantau.demo import newsite
    from pantau.demo.site import NewsSite

    _setup("demo-site", tool=False)
    shutdown = ShutdownFlag().install()
    with NewsSite(0 if newsroom else articles, host, port) as site:
        if newsroom:  # the last hour's stories, so every outlet's feed has items from the start
            for i in range(articles):
                site.add(newsite.newsroom_article(i, datetime.now(UTC) - timedelta(minutes=3 * (articles - i))))
        click.echo(f"demo news site on {site.base} (feed {site.base}/feed, sitemap {site.base}/sitemap-index.xml)")
        n = len(site.articles)
        started = time.monotonic()
        surge_left = surge_stories if newsroom and surge_after > 0 else 0
        while True:
            surging = surge_left > 0 and time.monotonic() - started >= surge_after
            if shutdown.wait(min(new_every, 3.0) if surging else (new_every if new_every > 0 else None)):
                break
            now = datetime.now(UTC)
            if surging:
                site.add(newsite.newsroom_article(n, now, surge=True))
                surge_left -= 1
            elif newsroom:
                site.add(newsite.newsroom_article(n, now))
            else:
                site.add(replace(newsite.article(n), published=now))
            n += 1


@demo.command("inbox")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8809, show_default=True, help="Webhooks arrive at /hooks/<subscription id>.")
@click.option("--smtp-port", default=0, show_default=True, help="Also take email here (0: no SMTP server).")
@click.option("--subscriptions", "subs_dir", default="deploy/subscriptions", show_default=True,
              type=click.Path(exists=True, path_type=Path), help="Where the signing secrets come from.")  # fmt: skip
@click.option("--out", default="out/inbox", show_default=True, type=click.Path(path_type=Path))
def demo_inbox(host: str, port: int, smtp_port: int, subs_dir: Path, out: Path) -> None:
    """The demo subscriber: checks and logs the webhooks (and emails) the notifier delivers."""
    from aiohttp import web

    from pantau.alerter.subscriptions import load
    from pantau.common.codec import Codec
    from pantau.common.contracts import load_contracts
    from pantau.common.settings import ContractSettings
    from pantau.demo.inbox import MailHandler, secrets_by_path, webhook_app

    _setup("demo-inbox", tool=False)
    codec = Codec.for_topic(load_contracts(ContractSettings().schemas_dir), "subscriptions")
    secrets = secrets_by_path(load(subs_dir, codec))
    out.mkdir(parents=True, exist_ok=True)
    controller = None
    if smtp_port:
        from aiosmtpd.controller import Controller  # a dev extra: `make run` has it, the image uses Mailpit

        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP command
        controller = Controller(MailHandler(out), hostname=host, port=smtp_port)
        controller.start()
    click.echo(f"demo inbox: webhooks on http://{host}:{port}/hooks/<subscription id>"
               + (f", email on {host}:{smtp_port}" if smtp_port else ""))  # fmt: skip
    try:
        web.run_app(webhook_app(secrets, out), host=host, port=port, print=None, access_log=None)
    finally:
        if controller is not None:
            controller.stop()


if __name__ == "__main__":
    sys.exit(main())
