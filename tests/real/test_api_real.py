"""Ring 3: the subscriber API against the real Kafka and the real Elasticsearch.

- `pantau api run` as a real process: writes land on the compacted subscriptions topic as valid
  records (a tombstone for a delete), keys come from a keys file, another owner's key gets 404 and a
  missing key 401, a webhook to a metadata address is refused at registration even with loopback on.
- Query tests and past alerts come from Elasticsearch as pantau_reader.
- schemathesis fuzzes every operation from the OpenAPI spec (valid and invalid inputs) against the
  app with the real backends: no request gets a 500.

Webhook hosts resolve through a table in the in-process app, and the process only sees IP literals:
no test sends a packet (not even a DNS query) beyond loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from pantau.alerter.feed import SubscriptionFeed
from pantau.api.app import create_app
from pantau.api.backends import KafkaSubscriptionStore
from pantau.api.core import KeyRing, new_key
from pantau.common.codec import Codec
from pantau.common.es_io import ElasticsearchSearch, apply_templates, make_client
from pantau.common.kafka_io import close_producer, make_producer, record_headers
from pantau.common.settings import ContractSettings
from pantau.enricher.stems import stem_text
from pantau.indexer.bulk import bulk_lines
from pantau.indexer.documents import alert_action, article_action
from tests.conftest import es_settings
from tests.samples import enriched_articles, free_port, read_records, topic_env, wait_for

ES_DIR = ContractSettings().schemas_dir / "elasticsearch"
NAMES = {"hooks.example.org": ["93.184.215.14"], "localhost": ["127.0.0.1"]}


def resolve(host: str) -> list[str]:
    if host not in NAMES:
        raise OSError(-2, "Name or service not known")
    return NAMES[host]


def call(port: int, method: str, path: str, token: str | None = None, body=None) -> tuple[int, dict | None]:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw else None


@pytest.fixture
def indexed(infra, contracts, es_prefix):
    """Templates applied, three fresh articles (two with a word no other has) and three alerts indexed."""
    admin = make_client(es_settings(infra, "pantau_admin", es_prefix))
    apply_templates(admin, ES_DIR, es_prefix)
    now = datetime.now(UTC)
    articles = enriched_articles(contracts, 3, f"api-{es_prefix}", lambda n: (now - timedelta(minutes=n)).isoformat())
    for article in articles[:2]:
        article["title"] = "Ekspor amunisi ke Rusia diperketat (laporan pantauuji)"
        article["stems"]["title"] = stem_text(article["title"], "id")  # as the enricher would
    alert = json.loads(next(iter(contracts.examples("alert", 1))).read_text(encoding="utf-8"))
    detected = (now - timedelta(minutes=5)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    mine = {**alert, "detected_at": detected, "subscription_ids": ["desk-amunisi"]}
    mine_later = {**mine, "id": mine["incident_id"] + ":2", "revision": 2, "state": "updated"}
    theirs = {**alert, "id": "spike-other:1", "incident_id": "spike-other", "detected_at": detected,
              "subscription_ids": ["econ-rupiah"]}  # fmt: skip
    actions = [article_action(a, es_prefix, now) for a in articles]
    actions += [alert_action(a, es_prefix, now) for a in (mine, mine_later, theirs)]
    indexer = make_client(es_settings(infra, "pantau_indexer", es_prefix))
    answer = indexer.bulk(operations=b"".join(bulk_lines(a) for a in actions), filter_path="errors,items.*.error")
    assert not answer["errors"], answer
    admin.indices.refresh(index=f"{es_prefix}-articles,{es_prefix}-alerts")
    return articles


def test_the_api_process_writes_the_topic_keeps_owners_apart_and_refuses_metadata_hooks(
    infra, kafka_settings, contracts, applied_topics, es_prefix, indexed, tmp_path: Path
):
    desk, desk_key = new_key("defence-desk")
    econ, econ_key = new_key("economy-desk")
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text(yaml.safe_dump([k.to_record(datetime.now(UTC)) for k in (desk_key, econ_key)]))
    port, log = free_port(), tmp_path / "api.log"
    env = dict(os.environ, **topic_env(applied_topics), PANTAU_KAFKA_BOOTSTRAP_SERVERS=kafka_settings.bootstrap_servers,
               PANTAU_ES_URL=infra.es_url, PANTAU_ES_USERNAME="pantau_reader",
               PANTAU_ES_PASSWORD=infra.password("pantau_reader"), PANTAU_ES_INDEX_PREFIX=es_prefix,
               PANTAU_API_PORT=str(port), PANTAU_API_KEYS_FILE=str(keys_file), PANTAU_METRICS_PORT="0",
               PANTAU_NOTIFIER_ALLOW_LOOPBACK="true")  # fmt: skip
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "pantau.cli", "api", "run"], env=env, stdout=out,
                                   stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_for(lambda: call(port, "GET", "/v1/subscriptions", desk)[0] == 200 if _listening(port) else False, 60,
                 "the API to answer")  # fmt: skip
        channels = {"webhooks": [{"url": "http://127.0.0.1:9/hooks/desk"}], "emails": ["desk@example.org"]}
        status, created = call(port, "POST", "/v1/subscriptions", desk, {
            "id": "desk-amunisi", "query": 'amunisi OR "peluru artileri"', "modes": ["spike", "realtime"],
            "channels": channels})  # fmt: skip
        assert status == 201, created
        # The write is on the topic, valid against the contract, keyed by id, owned by the key's owner.
        codec = Codec.for_topic(contracts, "subscriptions")
        records = read_records(kafka_settings, applied_topics.subscriptions, lambda rs: len(rs) >= 1, 30)
        assert [r.key for r in records] == [b"desk-amunisi"]
        on_topic = codec.decode(records[0].value, record_headers(records[0]))
        assert on_topic == created and on_topic["owner"] == "defence-desk"
        assert on_topic["channels"]["webhooks"][0]["secret"].startswith("whsec_")

        assert call(port, "GET", "/v1/subscriptions/desk-amunisi", desk)[1] == created
        assert call(port, "GET", "/v1/subscriptions/desk-amunisi", econ)[0] == 404
        assert call(port, "PATCH", "/v1/subscriptions/desk-amunisi", econ, {"query": "rupiah"})[0] == 404
        assert call(port, "DELETE", "/v1/subscriptions/desk-amunisi", econ)[0] == 404
        assert call(port, "GET", "/v1/subscriptions/desk-amunisi")[0] == 401
        assert call(port, "GET", "/v1/subscriptions", econ)[1] == []

        # Loopback is open here (PANTAU_NOTIFIER_ALLOW_LOOPBACK), cloud metadata never.
        metadata = {"webhooks": [{"url": "http://169.254.169.254/latest/meta-data/"}]}
        status, refused = call(port, "POST", "/v1/subscriptions", econ, {"query": "rupiah", "channels": metadata})
        assert status == 422 and "169.254.169.254 is link-local" in refused["problems"][0]

        # The query test and the alert list read Elasticsearch as pantau_reader.
        status, tested = call(port, "POST", "/v1/queries/test", desk, {"query": "pantauuji", "hours": 1})
        assert status == 200 and tested["total"] == 2, tested
        assert {a["id"] for a in tested["articles"]} == {indexed[0]["id"], indexed[1]["id"]}
        status, alerts = call(port, "GET", "/v1/alerts", desk)
        assert status == 200 and [(a["incident_id"], a["revision"]) for a in alerts["alerts"]] == [
            ("spike-term-amunisi-20230906T00", 2)]  # fmt: skip

        status, _ = call(port, "POST", "/v1/subscriptions/desk-amunisi/mute", desk, {"minutes": 30})
        assert status == 200
        assert call(port, "DELETE", "/v1/subscriptions/desk-amunisi", desk)[0] == 204
        assert call(port, "GET", "/v1/subscriptions/desk-amunisi", desk)[0] == 404
        records = read_records(kafka_settings, applied_topics.subscriptions, lambda rs: len(rs) >= 3, 30)
        assert [(r.key, r.value is None) for r in records] == [(b"desk-amunisi", False)] * 2 + [(b"desk-amunisi", True)]
        assert codec.decode(records[1].value, record_headers(records[1]))["muted_until"] is not None
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(30) == 0, log.read_text()[-3000:]
        finally:
            process.kill()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def fuzz_target(infra, kafka_settings, contracts, applied_topics, es_prefix, indexed):
    token, key = new_key("fuzz-desk")
    codec = Codec.for_topic(contracts, "subscriptions")
    feed = SubscriptionFeed(kafka_settings, applied_topics.subscriptions, codec, lambda record, exc: None,
                            client="api-fuzz", compile=None)  # fmt: skip
    feed.start()
    assert feed.caught_up.wait(30)
    producer = make_producer(kafka_settings, "api-fuzz", linger_ms=0)
    reader = make_client(es_settings(infra, "pantau_reader", es_prefix))
    store = KafkaSubscriptionStore(feed, producer, applied_topics.subscriptions, codec, 10.0)
    app = create_app(lambda: KeyRing([key]), store, ElasticsearchSearch(reader, es_prefix), codec, resolve,
                     rate_limit="1000000/minute", auth_failure_limit="1000000/minute")  # fmt: skip
    yield app, token, store
    feed.stop()
    close_producer(producer)
    reader.close()


def test_fuzzed_requests_from_the_openapi_spec_never_get_a_500(fuzz_target):
    app, token, store = fuzz_target
    auth = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    own = {"id": "fuzz-own", "owner": "fuzz-desk", "query": "amunisi", "modes": ["spike"], "channels": {}}
    statuses: dict[tuple[str, int], int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        # Random ids are someone else's or nobody's (404); the caller's own lets the fuzz reach past that.
        fixed = [{}, {"sub_id": "fuzz-own"}] if "{sub_id}" in operation.path else [{}]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for path_parameters in fixed:
                store.put(own)  # again: a fuzzed DELETE may have removed it
                strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters or None)

                @given(case=strategy)
                @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
                def run(case):
                    response = case.call(headers=auth)
                    seen = (case.operation.label, response.status_code)
                    statuses[seen] = statuses.get(seen, 0) + 1
                    case.validate_response(response, checks=[not_a_server_error], headers=auth)

                run()
    # The fuzz reached past authentication and validation: writes were accepted and reads answered.
    assert statuses.get(("POST /v1/subscriptions", 201), 0) > 0, statuses
    assert statuses.get(("POST /v1/queries/test", 200), 0) > 0, statuses
    assert statuses.get(("PATCH /v1/subscriptions/{sub_id}", 200), 0) > 0, statuses
    assert not [seen for seen in statuses if seen[1] >= 500]


def test_loopback_and_metadata_webhooks_are_refused_at_registration_without_the_allowance(
    fuzz_target, kafka_settings, applied_topics
):
    """The same app over the real broker, loopback allowance off (the default): nothing reaches the topic."""
    from fastapi.testclient import TestClient

    app, token, _ = fuzz_target
    api = TestClient(app)
    auth = {"Authorization": f"Bearer {token}"}
    for url in ("http://127.0.0.1:8809/hooks/x", "http://localhost/x", "http://169.254.169.254/latest/meta-data/"):
        answer = api.post(
            "/v1/subscriptions", headers=auth, json={"query": "amunisi", "channels": {"webhooks": [{"url": url}]}}
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["problems"][0].startswith("channels.webhooks[0].url: ")
    public = {"webhooks": [{"url": "https://hooks.example.org/p"}]}  # resolves through the table: no DNS
    accepted = api.post("/v1/subscriptions", headers=auth, json={"id": "desk-public", "query": "amunisi",
                                                                 "channels": public})  # fmt: skip
    assert accepted.status_code == 201, accepted.text
    records = read_records(kafka_settings, applied_topics.subscriptions, lambda rs: len(rs) >= 1, 30, drain_s=1.0)
    assert [r.key for r in records] == [b"desk-public"]  # the refused ones never got there
