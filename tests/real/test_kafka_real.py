"""Ring 3: the real Kafka broker started by deploy/local/infra.sh."""

from __future__ import annotations

import json
import time

from click.testing import CliRunner
from kafka import KafkaConsumer

from pantau.cli import main
from pantau.common.codec import Codec
from pantau.common.dlq import read_provenance
from pantau.common.dlq_tools import replay_dead_letters
from pantau.common.errors import InvalidMessage
from pantau.common.kafka_io import (
    DeadLetterProducer,
    apply_topics,
    describe_existing,
    make_admin,
    make_consumer,
    make_producer,
    record_headers,
)
from pantau.common.metrics import REGISTRY


def consume(settings, topic: str, count: int, timeout_s: float = 30.0) -> list:
    consumer: KafkaConsumer = make_consumer(settings, "tests", group_id=None, topics=[topic])
    records, deadline = [], time.monotonic() + timeout_s
    try:
        while len(records) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records


def test_topics_apply_creates_everything_then_is_idempotent(kafka_settings, contracts, topic_names):
    admin = make_admin(kafka_settings, "tests")
    try:
        first = apply_topics(admin, contracts, topic_names)
        assert len(first.create) == len(contracts.topics)
        second = apply_topics(admin, contracts, topic_names)
        assert second.empty and not second.problems

        existing = describe_existing(admin, [topic_names.articles_raw, topic_names.subscriptions])
        assert existing[topic_names.articles_raw].partitions == contracts.topics["articles_raw"].partitions
        assert existing[topic_names.articles_raw].config["max.message.bytes"] == "4194304"
        assert existing[topic_names.subscriptions].config["cleanup.policy"] == "compact"

        # Drift made by hand is put back by the next apply, and only the drifted setting changes.
        from kafka.admin import ConfigResource, ConfigResourceType

        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic_names.alerts, {"retention.ms": "1000"})])
        deadline = time.monotonic() + 30
        while describe_existing(admin, [topic_names.alerts])[topic_names.alerts].config["retention.ms"] != "1000":
            assert time.monotonic() < deadline, "the broker never reported the hand-made drift"
            time.sleep(0.2)
        repaired = apply_topics(admin, contracts, topic_names)
        assert repaired.alter_config == {topic_names.alerts: {"retention.ms": "2592000000"}}
        assert apply_topics(admin, contracts, topic_names).empty
    finally:
        names = [getattr(topic_names, f) for f in type(topic_names).model_fields if f != "replication_factor"]
        admin.delete_topics([n for n in names if n in set(admin.list_topics())])
        admin.close()


def test_cli_topics_apply_against_the_real_broker(kafka_settings, topic_names, monkeypatch):
    monkeypatch.setenv("PANTAU_KAFKA_BOOTSTRAP_SERVERS", kafka_settings.bootstrap_servers)
    for field in type(topic_names).model_fields:
        if field != "replication_factor":
            monkeypatch.setenv(f"PANTAU_TOPIC_{field.upper()}", getattr(topic_names, field))
    admin = make_admin(kafka_settings, "tests")
    try:
        first = CliRunner().invoke(main, ["topics", "apply"])
        assert first.exit_code == 0, first.output
        assert f"create {topic_names.articles_raw}" in first.output
        second = CliRunner().invoke(main, ["topics", "apply"])
        assert second.exit_code == 0 and second.output.strip() == "topics up to date"
    finally:
        names = [getattr(topic_names, f) for f in type(topic_names).model_fields if f != "replication_factor"]
        admin.delete_topics([n for n in names if n in set(admin.list_topics())])
        admin.close()


def test_codec_round_trip_through_kafka_validates_at_both_ends(kafka_settings, contracts, applied_topics):
    codec = Codec.for_topic(contracts, "articles_raw")
    examples = [json.loads(p.read_text(encoding="utf-8")) for p in contracts.examples("article-raw", 1)]
    producer = make_producer(kafka_settings, "tests")
    for article in examples:
        value, headers = codec.encode(article)
        producer.send(applied_topics.articles_raw, key=article["id"].encode(), value=value, headers=headers).get(30)
    producer.close()

    records = consume(kafka_settings, applied_topics.articles_raw, len(examples))
    decoded = {r.key.decode(): codec.decode(r.value, record_headers(r)) for r in records}
    assert decoded == {a["id"]: a for a in examples}
    assert all(dict(record_headers(r))["pantau-schema"] == b"article-raw.v1" for r in records)


def test_an_invalid_message_goes_to_the_dead_letter_topic_with_provenance(kafka_settings, contracts, applied_topics):
    """The decode-or-dead-letter step every consumer runs, end to end through the broker."""
    codec = Codec.for_topic(contracts, "articles_raw")
    good = json.loads(contracts.examples("article-raw", 1)[0].read_text(encoding="utf-8"))
    producer = make_producer(kafka_settings, "tests")
    value, headers = codec.encode(good)
    producer.send(applied_topics.articles_raw, key=b"good", value=value, headers=headers).get(30)
    bad_value = json.dumps({**good, "revision": 0}).encode()
    producer.send(applied_topics.articles_raw, key=b"bad", value=bad_value, headers=headers).get(30)
    producer.send(applied_topics.articles_raw, key=b"junk", value=b"\x00\xffnot json").get(30)
    producer.flush()

    before = (
        REGISTRY.get_sample_value(
            "pantau_dead_letters_total",
            {"service": "enricher", "source_topic": "articles_raw", "error_type": "InvalidMessage"},
        )
        or 0
    )
    dlq = DeadLetterProducer(producer, applied_topics.dlq_enricher, service="enricher")
    passed = []
    for record in consume(kafka_settings, applied_topics.articles_raw, 3):
        try:
            passed.append(codec.decode(record.value, record_headers(record))["id"])
        except InvalidMessage as exc:
            dlq.send_record(record, exc, source_topic_id="articles_raw")
    producer.close()
    assert passed == [good["id"]]

    letters = consume(kafka_settings, applied_topics.dlq_enricher, 2)
    by_key = {r.key: r for r in letters}
    assert set(by_key) == {b"bad", b"junk"}
    assert by_key[b"bad"].value == bad_value  # the original bytes, untouched
    assert by_key[b"junk"].value == b"\x00\xffnot json"
    bad = read_provenance(record_headers(by_key[b"bad"]))
    assert bad["topic"] == applied_topics.articles_raw
    assert bad["partition"].isdigit() and bad["offset"].isdigit()
    assert (bad["service"], bad["error-type"]) == ("enricher", "InvalidMessage")
    assert bad["reason"] == "article-raw.v1: revision: 0 is less than the minimum of 1"
    assert "not UTF-8" in read_provenance(record_headers(by_key[b"junk"]))["reason"]
    assert ("pantau-schema", b"article-raw.v1") in record_headers(by_key[b"bad"])
    after = REGISTRY.get_sample_value(
        "pantau_dead_letters_total",
        {"service": "enricher", "source_topic": "articles_raw", "error_type": "InvalidMessage"},
    )
    assert after - before == 2


def test_dlq_replay_sends_letters_back_once(kafka_settings, contracts, applied_topics):
    producer = make_producer(kafka_settings, "tests")
    dlq = DeadLetterProducer(producer, applied_topics.dlq_enricher, service="enricher")
    from pantau.common.dlq import Provenance

    for i in range(3):
        dlq.send(
            f"k{i}".encode(),
            f"v{i}".encode(),
            ValueError("bug fixed since"),
            Provenance(applied_topics.articles_raw, 0, i, "enricher"),
            [("pantau-schema", b"article-raw.v1")],
        )
    producer.close()

    assert replay_dead_letters(kafka_settings, applied_topics.dlq_enricher, "replay-test", limit=2) == 2
    assert replay_dead_letters(kafka_settings, applied_topics.dlq_enricher, "replay-test", limit=None) == 1
    assert replay_dead_letters(kafka_settings, applied_topics.dlq_enricher, "replay-test", limit=None) == 0
    back = consume(kafka_settings, applied_topics.articles_raw, 3)
    assert sorted((r.key, r.value) for r in back) == [(b"k0", b"v0"), (b"k1", b"v1"), (b"k2", b"v2")]
    assert all(record_headers(r) == [("pantau-schema", b"article-raw.v1")] for r in back)


def test_faust_client_aiokafka_talks_to_the_same_broker(kafka_settings, applied_topics):
    """faust-streaming runs on aiokafka: the broker must serve it as it serves kafka-python."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def round_trip() -> list[bytes]:
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka_settings.bootstrap_servers, acks="all", enable_idempotence=True
        )
        await producer.start()
        try:
            for i in range(3):
                await producer.send_and_wait(applied_topics.alerts, f"a{i}".encode(), key=b"k")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            applied_topics.alerts,
            bootstrap_servers=kafka_settings.bootstrap_servers,
            group_id=f"aio-{applied_topics.alerts}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            got: list[bytes] = []
            async with asyncio.timeout(30):
                while len(got) < 3:
                    batch = await consumer.getmany(timeout_ms=500)
                    got += [r.value for records in batch.values() for r in records]
            await consumer.commit()
            return got
        finally:
            await consumer.stop()

    assert asyncio.run(round_trip()) == [b"a0", b"a1", b"a2"]


def test_broker_reachable_tells_a_live_broker_from_a_dead_port(kafka_settings):
    from pantau.common.kafka_io import broker_reachable

    assert broker_reachable(kafka_settings.servers)
    assert not broker_reachable(["127.0.0.1:1"])


def test_a_workers_changelog_topics_exist_with_fausts_configs_before_it_starts(kafka_settings, contracts):
    # faust creates them at start, and its first assignment can miss a topic that new: the enricher's
    # story table then never recovered and the worker processed nothing (seen after `make infra-wipe`).
    import uuid

    from pantau.alerter.stream import build_app as alerter_app
    from pantau.common.faust_io import ensure_changelogs
    from pantau.common.settings import AlerterSettings, EnricherSettings
    from pantau.enricher.stream import build_app as enricher_app
    from pantau.enricher.terms import TermMatcher

    suffix = uuid.uuid4().hex[:8]
    enricher = enricher_app(contracts, TermMatcher([]), kafka_settings, settings=EnricherSettings(group=f"e-{suffix}"))
    alerter = alerter_app(contracts, kafka_settings, settings=AlerterSettings(group=f"a-{suffix}"))
    for app in (enricher, alerter):
        ensure_changelogs(kafka_settings, app, 1)
        ensure_changelogs(kafka_settings, app, 1)  # again: a second worker finds them there
    admin = make_admin(kafka_settings)
    try:
        names = [f"e-{suffix}-story-entries-changelog"] + [
            f"a-{suffix}-{t}-changelog" for t in ("watches", "volumes", "merger")
        ]
        states = describe_existing(admin, names)
        assert set(states) == set(names)
        story = states[names[0]]
        assert story.partitions == 6 and story.config["cleanup.policy"] == "compact,delete"
        assert story.config["retention.ms"] == str(2 * 3 * 24 * 3600 * 1000)
        assert states[names[3]].partitions == 1 and states[names[1]].config["cleanup.policy"] == "compact"
    finally:
        admin.delete_topics(names)
        admin.close()
