"""Fixtures of all three rings. The real ring's servers come from deploy/local/infra.sh (the same
script `make infra-up` runs); each test isolates itself with unique topic names and index prefix."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch

from pantau.common.contracts import Contracts, load_contracts
from pantau.common.settings import ContractSettings, ElasticsearchSettings, KafkaSettings, TopicSettings
from tests.infra import Infra, ensure_up, read_env, running_kafka_version


def pytest_report_header(config) -> list[str]:
    infra = read_env()
    if infra is None:
        return ["real ring: servers not running yet; the session fixture starts them"]
    lines = []
    kafka = running_kafka_version()
    lines.append(f"real ring: Apache Kafka {kafka or 'not running'} (KRaft) at {infra.kafka_bootstrap}")
    try:
        client = Elasticsearch(infra.es_url, basic_auth=("elastic", infra.password("elastic")), request_timeout=5)
        nodes = client.nodes.info(node_id="_local", filter_path="nodes.*.version")["nodes"]
        es_version = next(iter(nodes.values()))["version"]
    except Exception as exc:
        es_version = f"not reachable ({type(exc).__name__})"
    lines.append(f"real ring: Elasticsearch {es_version} at {infra.es_url} (security on)")
    return lines


@pytest.fixture(scope="session")
def contracts() -> Contracts:
    return load_contracts(ContractSettings().schemas_dir)


@pytest.fixture(scope="session")
def infra() -> Infra:
    return ensure_up()


@pytest.fixture(scope="session")
def kafka_settings(infra: Infra) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=infra.kafka_bootstrap)


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def topic_names(unique: str) -> TopicSettings:
    """Every topic renamed with a unique suffix, so tests never see each other's messages."""
    from tests.samples import suffixed_topics

    return suffixed_topics(f"t{unique}")


@pytest.fixture
def applied_topics(kafka_settings, contracts, topic_names) -> Iterator[TopicSettings]:
    from pantau.common.kafka_io import apply_topics, make_admin

    admin = make_admin(kafka_settings, "tests")
    apply_topics(admin, contracts, topic_names)
    yield topic_names
    from tests.samples import topic_names as names_of

    created = names_of(topic_names)
    admin.delete_topics([t for t in created if t in set(admin.list_topics())])
    admin.close()


def es_settings(infra: Infra, user: str, prefix: str) -> ElasticsearchSettings:
    return ElasticsearchSettings(url=infra.es_url, username=user, password=infra.password(user), index_prefix=prefix)


@pytest.fixture
def es_prefix(infra: Infra, unique: str) -> Iterator[str]:
    """A unique index prefix; its templates and indices are removed afterwards (as `elastic`,
    by explicit names: the node refuses wildcard deletes)."""
    prefix = f"pantau-t{unique}"
    yield prefix
    client = Elasticsearch(infra.es_url, basic_auth=("elastic", infra.password("elastic"))).options(ignore_status=404)
    indices = [i for i in client.indices.get(index=f"{prefix}-*", expand_wildcards="all") if i != "error"]
    if indices:
        client.indices.delete(index=",".join(indices))
    for tpl in client.indices.get_index_template(name=f"{prefix}-*").get("index_templates", []):
        client.indices.delete_index_template(name=tpl["name"])
    for tpl in client.cluster.get_component_template(name=f"{prefix}-*").get("component_templates", []):
        client.cluster.delete_component_template(name=tpl["name"])
