"""Ring 3: the real Elasticsearch (security on, file realm) started by deploy/local/infra.sh."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from elasticsearch import (
    AuthenticationException,
    AuthorizationException,
    BadRequestError,
    Elasticsearch,
)

from pantau.cli import main
from pantau.common.es_io import apply_templates, make_client, reachable, server_version
from pantau.common.indices import monthly_index, read_alias
from pantau.common.settings import ContractSettings
from tests.conftest import es_settings

ES_DIR = ContractSettings().schemas_dir / "elasticsearch"
NOW = datetime(2026, 11, 26, tzinfo=UTC)


def example(name: str) -> dict:
    return json.loads((ES_DIR / "examples" / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture
def admin(infra, es_prefix) -> Elasticsearch:
    return make_client(es_settings(infra, "pantau_admin", es_prefix))


@pytest.fixture
def indexer(infra, es_prefix) -> Elasticsearch:
    return make_client(es_settings(infra, "pantau_indexer", es_prefix))


@pytest.fixture
def reader(infra, es_prefix) -> Elasticsearch:
    return make_client(es_settings(infra, "pantau_reader", es_prefix))


def test_the_server_is_the_pinned_version_and_the_client_major_matches(admin):
    import elasticsearch

    from tests.infra import REPO

    pinned = dict(
        line.split("=", 1)
        for line in (REPO / "deploy/local/versions.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )["ELASTICSEARCH_VERSION"]
    assert server_version(admin) == pinned
    assert elasticsearch.__versionstr__.split(".")[0] == pinned.split(".")[0]
    assert reachable(admin)


def test_templates_apply_then_are_idempotent(admin, es_prefix):
    first = apply_templates(admin, ES_DIR, es_prefix, now=NOW)
    assert f"index template {es_prefix}-articles" in first
    assert f"index {monthly_index(es_prefix, 'articles', NOW)}" in first
    assert apply_templates(admin, ES_DIR, es_prefix, now=NOW) == []
    mapping = admin.indices.get_mapping(index=monthly_index(es_prefix, "articles", NOW))
    assert next(iter(mapping.values()))["mappings"]["dynamic"] == "strict"


def test_cli_es_apply(infra, es_prefix, monkeypatch):
    monkeypatch.setenv("PANTAU_ES_URL", infra.es_url)
    monkeypatch.setenv("PANTAU_ES_USERNAME", "pantau_admin")
    monkeypatch.setenv("PANTAU_ES_PASSWORD", infra.password("pantau_admin"))
    monkeypatch.setenv("PANTAU_ES_INDEX_PREFIX", es_prefix)
    first = CliRunner().invoke(main, ["es", "apply"])
    assert first.exit_code == 0, first.output
    assert f"component template {es_prefix}-articles-mappings" in first.output
    second = CliRunner().invoke(main, ["es", "apply"])
    assert second.output.strip() == "templates and indices up to date"


def test_example_documents_index_into_the_strict_mapping_and_are_searchable(admin, indexer, reader, es_prefix):
    apply_templates(admin, ES_DIR, es_prefix, now=NOW)
    for kind, name in (("articles", "article"), ("alerts", "alert")):
        doc = example(name)
        index = monthly_index(es_prefix, kind, datetime.fromisoformat(doc["timestamp"]))
        indexer.index(index=index, id=doc["id"], document=doc, refresh="wait_for")
    hits = reader.search(index=read_alias(es_prefix, "articles"), query={"match": {"text": "amunisi"}})["hits"]
    assert hits["total"]["value"] == 1
    assert hits["hits"][0]["_id"] == example("article")["id"]
    facets = reader.search(
        index=read_alias(es_prefix, "articles"), size=0, aggs={"people": {"terms": {"field": "people"}}}
    )["aggregations"]["people"]["buckets"]
    assert {b["key"] for b in facets} >= {"Kim Jong Un", "Vladimir Putin"}
    alerts = reader.search(index=read_alias(es_prefix, "alerts"), query={"term": {"watch_key": "amunisi"}})
    assert alerts["hits"]["total"]["value"] == 1


def test_strict_mapping_refuses_an_unknown_field(admin, indexer, es_prefix):
    apply_templates(admin, ES_DIR, es_prefix, now=NOW)
    with pytest.raises(BadRequestError, match="strict_dynamic_mapping_exception"):
        indexer.index(index=monthly_index(es_prefix, "articles", NOW), id="x", document={"surprise": 1})


def test_indexer_writes_under_its_prefix_and_nothing_else(admin, indexer, es_prefix):
    apply_templates(admin, ES_DIR, es_prefix, now=NOW)
    # A new month's index is created on first write: the indexer may create indices under pantau-.
    indexer.index(index=f"{es_prefix}-articles-2030.01", id="a", document={"id": "a", "title": "x"})
    with pytest.raises(AuthorizationException):
        indexer.index(index=f"other-{es_prefix}", id="a", document={"id": "a"})
    with pytest.raises(AuthorizationException):
        indexer.indices.delete(index=f"{es_prefix}-articles-2030.01")
    with pytest.raises(AuthorizationException):
        indexer.indices.put_index_template(name=f"{es_prefix}-evil", index_patterns=["*"])


def test_reader_may_only_read(admin, reader, es_prefix):
    apply_templates(admin, ES_DIR, es_prefix, now=NOW)
    reader.search(index=read_alias(es_prefix, "articles"))
    with pytest.raises(AuthorizationException):
        reader.index(index=monthly_index(es_prefix, "articles", NOW), id="a", document={"id": "a"})


def test_requests_without_or_with_wrong_credentials_are_refused(infra, es_prefix):
    with pytest.raises(AuthenticationException):
        Elasticsearch(infra.es_url).search(index=f"{es_prefix}-articles")
    with pytest.raises(AuthenticationException):
        Elasticsearch(infra.es_url, basic_auth=("pantau_indexer", "wrong")).search(index=f"{es_prefix}-articles")
