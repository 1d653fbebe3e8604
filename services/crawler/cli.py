"""`pantau crawl …` and `pantau extract …`: the crawler service and its offline tools. Thin:
arguments → settings → library → JSON lines on standard output."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from pantau.common.settings import CrawlerSettings, TopicSettings
from pantau.crawler.article import build_article
from pantau.crawler.extract import ExtractFailed, extract
from pantau.crawler.fetch import FetchRefused, GuardedClient
from pantau.crawler.links import Link, LinkError, extract_links
from pantau.crawler.service import fetch_settings
from pantau.crawler.sources import Source, SourcesError, load_sources
from pantau.crawler.urls import BadUrl, normalise, registered_domain


def _is_url(arg: str) -> bool:
    return arg.startswith(("http://", "https://"))


def _source_for(url: str, source_id: str | None, sources_file: Path | None) -> Source:
    """The configured source for `url` (by --source or by domain), else one made from the URL."""
    if sources_file is not None and sources_file.exists():
        try:
            configured = load_sources(sources_file).sources
        except SourcesError as exc:
            raise click.ClickException(str(exc)) from None
        for source in configured:
            if source.id == source_id or (
                source_id is None and registered_domain(source.homepage) == registered_domain(url)
            ):
                return source
        if source_id is not None:
            raise click.ClickException(f"no source {source_id!r} in {sources_file}")
    domain = registered_domain(url)
    return Source(id=source_id or domain.lower()[:64], name=domain, homepage=f"https://{domain}",
                  entry_points=[{"kind": "section", "url": f"https://{domain}/"}])  # fmt: skip


def _echo_json(obj: dict) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False))


@click.group()
def crawl() -> None:
    """The crawler: run it, check an entry point, replay archives."""


@crawl.command("run")
@click.option("--sources", "sources_file", type=click.Path(path_type=Path), help="Sources YAML (default: setting).")
@click.option("--until-idle", is_flag=True, help="Stop once every entry point was polled and nothing is left.")
def crawl_run(sources_file: Path | None, until_idle: bool) -> None:
    """Run the crawler service: poll sources, fetch articles, publish them to articles.raw."""
    from pantau.common.codec import Codec
    from pantau.common.kafka_io import close_producer
    from pantau.common.runtime import run_service_process
    from pantau.crawler.service import run_service

    settings = CrawlerSettings()
    try:
        sources = load_sources(sources_file or settings.sources_file)
    except SourcesError as exc:
        raise click.ClickException(str(exc)) from None

    def body(ctx):
        codec = Codec.for_topic(ctx.contracts, "articles_raw")
        producer = ctx.producer(max_block_ms=10_000)
        stats = asyncio.run(run_service(sources, settings, producer, TopicSettings().articles_raw, codec,
                                        ctx.shutdown, ctx.health, until_idle,
                                        renew_producer=lambda: ctx.producer(max_block_ms=10_000)))  # fmt: skip
        close_producer(producer, timeout_s=10)  # bounded: a stuck producer would wait forever
        click.echo(f"polls {stats.polls}, published {stats.published}", err=True)

    run_service_process("crawler", body)


@crawl.command("links")
@click.argument("targets", nargs=-1, required=True)
@click.option("--url", "base_url", help="For saved files: the URL they were fetched from.")
def crawl_links(targets: tuple[str, ...], base_url: str | None) -> None:
    """Print the article links an entry point yields (feed, sitemap or section page, detected from
    the content) as JSON lines {url, title, published}. TARGETS are URLs, or saved files with --url."""
    settings = CrawlerSettings()
    failed = False

    async def from_urls(urls: list[str]) -> None:
        nonlocal failed
        async with GuardedClient(fetch_settings(settings)) as client:
            for url in urls:
                try:
                    response = await client.fetch(url)
                    found = extract_links(response.body, response.url, response.content_type)
                    _print_links(found.links, found.problems, url)
                    for child in [lk for lk in found.links if lk.kind == "sitemap"][: settings.max_sitemap_children]:
                        child_response = await client.fetch(child.url)
                        child_found = extract_links(child_response.body, child_response.url)
                        _print_links(child_found.links, child_found.problems, child.url)
                except (FetchRefused, LinkError, BadUrl) as exc:
                    click.echo(f"{url}: {exc}", err=True)
                    failed = True

    urls = [t for t in targets if _is_url(t)]
    for path in (t for t in targets if not _is_url(t)):
        if not base_url:
            raise click.UsageError("saved files need --url (the address they were fetched from)")
        try:
            found = extract_links(Path(path).read_bytes(), base_url)
            _print_links(found.links, found.problems, path)
        except (OSError, LinkError) as exc:
            click.echo(f"{path}: {exc}", err=True)
            failed = True
    if urls:
        asyncio.run(from_urls(urls))
    if failed:
        sys.exit(1)


def _print_links(links: list[Link], problems: list[str], origin: str) -> None:
    for link in links:
        _echo_json(link.as_json())
    for problem in problems:
        click.echo(f"{origin}: skipped {problem}", err=True)


@crawl.command("replay")
@click.argument("files", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--source", "source_id", help="Source id for every article (default: matched by domain).")
@click.option("--sources", "sources_file", type=click.Path(path_type=Path), help="Sources YAML (default: setting).")
def crawl_replay(files: tuple[Path, ...], source_id: str | None, sources_file: Path | None) -> None:
    """Publish history from WARC files or JSON lines as backfill (baselines, never alerts). Without
    FILES, replays every `warc` and `jsonl` entry point of the sources file (paths relative to it)."""
    from pantau.common.codec import Codec
    from pantau.common.runtime import run_service_process
    from pantau.crawler.replay import replay

    settings = CrawlerSettings()
    if not files:
        path = sources_file or settings.sources_file
        try:
            configured = load_sources(path).sources
        except SourcesError as exc:
            raise click.ClickException(str(exc)) from None
        archives = [(s.id, path.parent / ep.path) for s in configured for ep in s.entry_points if ep.path]
        if not archives:
            raise click.UsageError(f"no FILES given and {path} has no warc or jsonl entry points")
        for sid, archive in archives:
            if not archive.exists():
                raise click.ClickException(f"{archive} (source {sid}) does not exist")
        by_file = {archive: sid for sid, archive in archives}
        files = tuple(by_file)
        owner = {str(a): sid for a, sid in by_file.items()}
    else:
        owner = {}

    def body(ctx):
        codec = Codec.for_topic(ctx.contracts, "articles_raw")
        producer = ctx.producer()
        path = sources_file or settings.sources_file

        def source_for(url: str, archive: Path) -> Source:
            return _source_for(url, source_id or owner.get(str(archive)), path)

        topic = TopicSettings().articles_raw
        counts = asyncio.run(replay(list(files), source_for, settings, producer, topic, codec))
        producer.close()
        click.echo(", ".join(f"{k} {v}" for k, v in sorted(counts.items())), err=True)

    run_service_process("crawler-replay", body, serve_metrics=False)


@click.command("extract")
@click.argument("targets", nargs=-1, required=True)
@click.option("--url", "base_url", help="For saved files: the URL to extract them as if served from.")
@click.option("--source", "source_id", help="Source id (default: matched by domain in the sources file).")
def extract_cmd(targets: tuple[str, ...], base_url: str | None, source_id: str | None) -> None:
    """Extract articles from URLs (fetched through the egress guard) or saved pages (with --url) and
    print them as JSON lines in the article-raw schema."""
    settings = CrawlerSettings()
    failed = False

    def emit(body: bytes, url: str, content_type: str | None) -> None:
        nonlocal failed
        source = _source_for(url, source_id, settings.sources_file)
        try:
            page = extract(body, url, content_type, source.timezone)
            _echo_json(build_article(page, source, datetime.now(UTC)))
        except (ExtractFailed, BadUrl) as exc:
            click.echo(f"{url}: {exc}", err=True)
            failed = True

    async def from_urls(urls: list[str]) -> None:
        nonlocal failed
        async with GuardedClient(fetch_settings(settings)) as client:
            for url in urls:
                try:
                    response = await client.fetch(normalise(url))
                    emit(response.body, response.url, response.content_type)
                except (FetchRefused, BadUrl) as exc:
                    click.echo(f"{url}: {exc}", err=True)
                    failed = True

    for path in (t for t in targets if not _is_url(t)):
        if not base_url:
            raise click.UsageError("saved files need --url (the address they are extracted as)")
        emit(Path(path).read_bytes(), base_url, None)
    urls = [t for t in targets if _is_url(t)]
    if urls:
        asyncio.run(from_urls(urls))
    if failed:
        sys.exit(1)
