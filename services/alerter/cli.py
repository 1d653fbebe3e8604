"""`pantau subscriptions …` (rules as code), `pantau spikes replay` (dry run) and `pantau alerter run`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


def _contracts():
    from pantau.common.contracts import load_contracts
    from pantau.common.settings import ContractSettings

    return load_contracts(ContractSettings().schemas_dir)


def _load(path: Path, egress_check: bool = True) -> list[dict]:
    """Subscriptions from files, checked as the API checks them at registration: webhook hosts are
    resolved and refused unless public (PANTAU_NOTIFIER_ALLOW_LOOPBACK / _INTERNAL_HOSTS, the
    notifier's own allowances, open loopback or name private hosts). `egress_check=False` (a replay,
    which sends nothing) skips the resolving: it works offline."""
    from pantau.alerter.subscriptions import SubscriptionError, load, system_resolve, webhook_egress_problems
    from pantau.common.codec import Codec
    from pantau.common.settings import NotifierSettings

    try:
        subs = load(path, Codec.for_topic(_contracts(), "subscriptions"))
    except SubscriptionError as exc:
        problems = exc.problems
    else:
        if not egress_check:
            return subs
        egress = NotifierSettings()
        problems = [f"{path} ({sub['id']}): {problem}" for sub in subs
                    for problem in webhook_egress_problems(sub, system_resolve, egress.allow_loopback,
                                                           egress.internal_hosts)]  # fmt: skip
        if not problems:
            return subs
    raise click.ClickException(f"{len(problems)} problem(s):\n" + "\n".join(problems))


@click.group()
def subscriptions() -> None:
    """Subscriptions as files: check them, publish them, write a new one."""


@subscriptions.command("check")
@click.argument("path", type=click.Path(path_type=Path))
def subscriptions_check(path: Path) -> None:
    """Validate a subscription file or a folder of them; every problem is listed, nothing is sent."""
    subs = _load(path)
    click.echo(f"{len(subs)} subscription(s) valid")


@subscriptions.command("apply")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--prune", is_flag=True, help="Delete (tombstone) subscriptions on the topic that PATH no longer has.")
@click.option("--dry-run", is_flag=True, help="Print what would change, send nothing.")
def subscriptions_apply(path: Path, prune: bool, dry_run: bool) -> None:
    """Publish the subscriptions in PATH to the compacted `subscriptions` topic (all or nothing: any
    invalid file stops it before anything is sent). Unchanged subscriptions are not re-sent."""
    from pantau.alerter.publish import apply_subscriptions
    from pantau.common.settings import KafkaSettings, TopicSettings

    subs = _load(path)
    plan = apply_subscriptions(subs, _contracts(), KafkaSettings(), TopicSettings().subscriptions, prune, dry_run)
    for action, sub_id in plan:
        click.echo(f"{action:8} {sub_id}")
    changed = sum(1 for action, _ in plan if action != "same")
    click.echo(f"{changed} change(s){' (dry run: nothing sent)' if dry_run else ''}", err=True)


MODES = ["realtime", "spike", "digest_hourly", "digest_daily"]


@subscriptions.command("new")
@click.option("--query", required=True, help="What to watch, e.g. 'amunisi OR \"peluru artileri\"'.")
@click.option("--owner", default="me", show_default=True, help="Who owns it (a person, desk or team).")
@click.option("--webhook", "webhooks", multiple=True, help="Webhook URL (repeatable).")
@click.option("--email", "emails", multiple=True, help="Email address (repeatable).")
@click.option("--mode", "modes", multiple=True, type=click.Choice(MODES), help="Modes (repeatable; default: spike).")
@click.option("--sensitivity", type=click.Choice(["low", "normal", "high"]), default="normal", show_default=True)
@click.option("--name", help="A title for people.")
@click.option("--id", "sub_id", help="Subscription id (default: from owner and query).")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
def subscriptions_new(query, owner, webhooks, emails, modes, sensitivity, name, sub_id, fmt) -> None:
    """Print a valid subscription file (a fresh signing secret per webhook)."""
    import yaml

    from pantau.alerter.query import QueryError
    from pantau.alerter.subscriptions import SubscriptionError, check, new_subscription
    from pantau.common.codec import Codec

    try:
        sub = new_subscription(query, owner, list(webhooks), list(emails), list(modes) or ["spike"], sensitivity,
                               name, sub_id=sub_id)  # fmt: skip
    except (QueryError, SubscriptionError) as exc:
        raise click.ClickException(str(exc)) from None
    problems = check(sub, Codec.for_topic(_contracts(), "subscriptions"), "new subscription")
    if problems:
        raise click.ClickException("\n".join(problems))
    if fmt == "json":
        click.echo(json.dumps(sub, ensure_ascii=False, indent=2))
    else:
        click.echo(yaml.safe_dump(sub, allow_unicode=True, sort_keys=False), nl=False)


@click.group()
def spikes() -> None:
    """Spike detection offline."""


@spikes.command("replay")
@click.argument("file", type=click.File("r", encoding="utf-8"), default="-")
@click.option("--subscriptions", "subs_path", required=True, type=click.Path(path_type=Path),
              help="A subscription file or a folder of them (what `pantau subscriptions apply` takes).")  # fmt: skip
@click.option("--no-entities", is_flag=True, help="Skip the per-entity watches.")
@click.option("--no-terms", is_flag=True, help="Skip the per-watched-term watches.")
def spikes_replay(file, subs_path: Path, no_entities: bool, no_terms: bool) -> None:
    """Run the alerter's detection over enriched articles in JSON lines (FILE or standard input, in
    publication-time order) and print the alerts as JSON lines in the alert schema."""
    from pantau.alerter.engine import Engine, EngineConfig, Subscriptions
    from pantau.common.codec import Codec
    from pantau.common.errors import InvalidMessage
    from pantau.common.settings import AlerterSettings

    settings = AlerterSettings()
    contracts = _contracts()
    articles_codec = Codec.for_topic(contracts, "articles_enriched")
    alerts_codec = Codec.for_topic(contracts, "alerts")
    cfg = EngineConfig(entity_watches=not no_entities, term_watches=not no_terms, kibana_base=settings.kibana_url)
    cfg.detector = type(cfg.detector)(
        bucket_s=settings.bucket_s, lateness_s=settings.lateness_s, min_history_s=settings.min_history_s
    )
    engine = Engine(Subscriptions.of(_load(subs_path, egress_check=False)), cfg)
    bad = 0
    for n, line in enumerate(file, 1):
        if not line.strip():
            continue
        try:
            article = articles_codec.decode(line.encode("utf-8"))
        except InvalidMessage as exc:
            bad += 1
            click.echo(f"line {n}: skipped: {exc}", err=True)
            continue
        for alert in engine.process(article):
            alerts_codec.validate(alert)
            sys.stdout.write(json.dumps(alert, ensure_ascii=False) + "\n")
    if bad:
        sys.exit(1)


@click.group()
def alerter() -> None:
    """The alerter service (faust worker)."""


@alerter.command("run")
def alerter_run() -> None:
    """Run one alerter worker: articles.enriched + subscriptions → alerts (scale by starting more;
    give each worker on one host its own PANTAU_ALERTER_WEB_PORT)."""
    from pantau.alerter.stream import build_app, internal_topics
    from pantau.common.faust_io import ensure_changelogs, run_worker
    from pantau.common.kafka_io import broker_reachable
    from pantau.common.runtime import run_service_process
    from pantau.common.settings import AlerterSettings

    settings = AlerterSettings()

    def body(ctx):
        ctx.health.add_check("kafka", lambda: broker_reachable(ctx.kafka.servers))
        app = build_app(ctx.contracts, ctx.kafka, settings=settings, health=ctx.health)
        ensure_changelogs(ctx.kafka, app, settings.table_replication_factor, others=dict(internal_topics(settings)))
        ctx.health.add_check("subscriptions", app.pantau_feed.caught_up.is_set)
        run_worker(app)

    run_service_process("alerter", body)
