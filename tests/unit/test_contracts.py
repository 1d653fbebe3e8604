"""Ring 1: the contracts in schemas/ are consistent, and the codec enforces them both ways."""

from __future__ import annotations

import copy
import json

import pytest

from pantau.common.codec import SCHEMA_HEADER, Codec
from pantau.common.contracts import ContractError, load_contracts
from pantau.common.errors import InvalidMessage
from pantau.common.settings import TopicSettings


def schema_topics(contracts):
    return [t for t in contracts.topics.values() if t.schema]


def test_topic_settings_default_to_the_names_in_topics_yaml(contracts):
    names = TopicSettings()
    assert {t.id: t.name for t in contracts.topics.values()} == {
        t.id: names.name_of(t.id) for t in contracts.topics.values()
    }
    assert set(contracts.topics) == set(TopicSettings.model_fields) - {"replication_factor"}


def test_every_topic_has_a_dead_letter_topic_for_each_consuming_stage(contracts):
    for topic in schema_topics(contracts):
        stages = [c for c in topic.consumers]
        dlq_owners = {p for d in topic.dead_letter for p in contracts.topics[d].producers}
        assert set(stages) <= dlq_owners, f"{topic.id}: a consumer without a dead-letter topic"


def test_every_schema_version_has_examples_and_they_validate(contracts):
    for name, versions in contracts.schema_versions().items():
        for version in versions:
            examples = contracts.examples(name, version)
            assert examples, f"{name}.v{version} has no example in schemas/examples/"
            codec = Codec(contracts, name, version)
            for path in examples:
                message = json.loads(path.read_text(encoding="utf-8"))
                value, headers = codec.encode(message)
                assert codec.decode(value, headers) == message


def test_the_indonesian_seed_is_an_example_of_the_raw_article(contracts):
    from pathlib import Path

    seed = (Path(__file__).resolve().parents[3] / "shared" / "seeds").glob("*.txt")
    first_line = next(iter(seed)).read_text(encoding="utf-8").splitlines()[0]
    titles = [json.loads(p.read_text())["title"] for p in contracts.examples("article-raw", 1)]
    assert first_line in titles


@pytest.fixture
def raw(contracts):
    return json.loads(contracts.examples("article-raw", 1)[-1].read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda m: m.pop("id"), "(message)"),
        (lambda m: m.update(id="not-a-hash"), "id"),
        (lambda m: m["source"].update(id=5), "source.id"),
        (lambda m: m.update(revision=0), "revision"),
        (lambda m: m.update(published_at="yesterday"), "published_at"),
        (lambda m: m.update(surprise=True), "(message)"),
        (lambda m: m.update(backfill="no"), "backfill"),
    ],
)
def test_encode_refuses_invalid_messages_naming_schema_version_and_field(contracts, raw, mutate, field):
    codec = Codec.for_topic(contracts, "articles_raw")
    bad = copy.deepcopy(raw)
    mutate(bad)
    with pytest.raises(InvalidMessage) as caught:
        codec.encode(bad)
    assert (caught.value.schema, caught.value.version, caught.value.field) == ("article-raw", 1, field)
    assert str(caught.value).startswith(f"article-raw.v1: {field}: ")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\xff\xfe\x00junk", "not UTF-8"),
        (b"{not json", "not JSON"),
        (b"[]", 'is not of type "object"'),
        (None, "null value on a non-compacted topic"),
    ],
)
def test_decode_refuses_bad_bytes(contracts, value, reason):
    with pytest.raises(InvalidMessage, match=reason):
        Codec.for_topic(contracts, "articles_raw").decode(value)


def test_decode_uses_the_version_in_the_header_and_refuses_unknown_ones(contracts, raw):
    codec = Codec.for_topic(contracts, "articles_raw")
    value, _ = codec.encode(raw)
    assert codec.decode(value, [(SCHEMA_HEADER, b"article-raw.v1")]) == raw
    with pytest.raises(InvalidMessage, match="unknown schema version"):
        codec.decode(value, [(SCHEMA_HEADER, b"article-raw.v99")])
    with pytest.raises(InvalidMessage, match="message is a alert"):
        codec.decode(value, [(SCHEMA_HEADER, b"alert.v1")])


def test_tombstones_pass_only_on_compacted_topics(contracts):
    subscriptions = Codec.for_topic(contracts, "subscriptions")
    value, headers = subscriptions.encode(None)
    assert value is None and subscriptions.decode(None, headers) is None
    with pytest.raises(InvalidMessage):
        Codec.for_topic(contracts, "alerts").encode(None)


def test_enriched_schema_reuses_every_raw_field(contracts):
    raw = contracts.schema("article-raw", 1)
    enriched = contracts.schema("article-enriched", 1)
    assert set(raw["properties"]) <= set(enriched["properties"])
    assert set(raw["required"]) <= set(enriched["required"])


def test_malformed_topics_file_fails_with_the_file_and_problem(tmp_path):
    (tmp_path / "json").mkdir()
    (tmp_path / "topics.yaml").write_text(
        "topics:\n  a:\n    name: a\n    schema: nope\n    version: 1\n    partitions: 1\n    replication_factor: 1\n"
    )
    with pytest.raises(ContractError, match=r"schema file nope\.v1 not found"):
        load_contracts(tmp_path)
