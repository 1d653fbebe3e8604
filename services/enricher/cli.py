"""`pantau enrich [FILE]` (offline, the same logic as the stream) and `pantau enricher run` (a worker)."""

from __future__ import annotations

import json
import sys
import time

import click

from pantau.common.settings import EnricherSettings
from pantau.common.times import parse_timestamp


def _load_terms(settings: EnricherSettings):
    from pantau.enricher.terms import TermMatcher, TermsError, load_terms

    try:
        return TermMatcher(load_terms(settings.terms_file))
    except TermsError as exc:
        raise click.ClickException(str(exc)) from None


def warm_up() -> float:
    """Load the models once (language profiles, entity model, gazetteer, stemmer); returns seconds."""
    from pantau.enricher.entities import find_entities
    from pantau.enricher.language import detect_language, load_models
    from pantau.enricher.stems import stem_text

    started = time.perf_counter()
    load_models()
    sample = "Presiden Joko Widodo bertemu Sekjen PBB di Jakarta membahas amunisi."
    detect_language("", sample)
    find_entities("", sample, "id")
    stem_text(sample, "id")
    return time.perf_counter() - started


@click.command("enrich")
@click.argument("file", type=click.File("rb"), default="-")
def enrich_cmd(file) -> None:
    """Enrich raw articles offline: JSON lines in (FILE or standard input), enriched JSON lines out,
    one per input line in the same order. A line that cannot be enriched (a blank one too) yields
    {"id": …, "error": …, "line": n} in its place, with the input's id when it has one, and the exit
    code is 1."""
    from pantau.common.codec import Codec
    from pantau.common.contracts import load_contracts
    from pantau.common.errors import InvalidMessage
    from pantau.common.settings import ContractSettings
    from pantau.enricher.core import Enricher
    from pantau.enricher.fingerprint import MemoryStoryIndex

    contracts = load_contracts(ContractSettings().schemas_dir)
    raw_codec = Codec.for_topic(contracts, "articles_raw")
    enricher = Enricher(_load_terms(EnricherSettings()), MemoryStoryIndex())
    failed = False
    # Bytes, a line at a time: a line that is not UTF-8 is that line's error, not the whole run's.
    for n, line in enumerate(file, 1):
        try:
            if not line.strip():
                raise InvalidMessage("article-raw", 1, "(message)", "empty line")
            raw = raw_codec.decode(line.rstrip(b"\r\n"))
            out = enricher.enrich(raw, parse_timestamp(raw["crawled_at"]))
        except Exception as exc:  # one bad article (or an enrichment bug) must not stop a batch
            failed = True
            error = str(exc) if isinstance(exc, InvalidMessage) else f"{type(exc).__name__}: {exc}"
            out = {"id": _id_of(line), "error": error, "line": n}
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
    if failed:
        sys.exit(1)


def _id_of(line: bytes) -> str | None:
    """The `id` of a JSON line, when it has a string one (a line the schema refuses keeps its id)."""
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
        return None
    article_id = value.get("id") if isinstance(value, dict) else None
    return article_id if isinstance(article_id, str) else None


@click.group()
def enricher() -> None:
    """The enricher service (faust worker)."""


@enricher.command("run")
def enricher_run() -> None:
    """Run one enricher worker: articles.raw → articles.enriched (scale by starting more)."""
    from pantau.common.faust_io import ensure_changelogs, run_worker
    from pantau.common.kafka_io import broker_reachable
    from pantau.common.metrics import ENRICHER_MODEL_LOAD_SECONDS
    from pantau.common.runtime import run_service_process
    from pantau.enricher.stream import build_app

    settings = EnricherSettings()
    terms = _load_terms(settings)

    def body(ctx):
        ENRICHER_MODEL_LOAD_SECONDS.set(warm_up())
        ctx.health.add_check("kafka", lambda: broker_reachable(ctx.kafka.servers))
        app = build_app(ctx.contracts, terms, ctx.kafka, settings=settings, health=ctx.health)
        ensure_changelogs(ctx.kafka, app, settings.table_replication_factor)
        run_worker(app)

    run_service_process("enricher", body)
