"""Ring 3: the notifier (a real process, `pantau notifier run`) through the real Kafka, telling a
webhook receiver and a real SMTP server (aiosmtpd), both on loopback.

No test sends a packet beyond loopback, even if the egress guard were broken: every address used here
is 127.0.0.1 (the refusal of private and metadata addresses is proven on the guard itself, offline)."""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from standardwebhooks.webhooks import Webhook

from pantau.alerter.publish import apply_subscriptions
from pantau.alerter.subscriptions import fresh_secret
from pantau.common.codec import Codec
from pantau.common.dlq import read_provenance
from pantau.common.es_io import apply_templates, make_client
from pantau.common.kafka_io import close_producer, make_producer, record_headers
from pantau.common.settings import ContractSettings
from pantau.enricher.stems import stem_text
from pantau.indexer.bulk import bulk_lines
from pantau.indexer.documents import article_action
from tests.conftest import es_settings
from tests.samples import enriched_articles, read_records, topic_env, wait_for

ES_DIR = ContractSettings().schemas_dir / "elasticsearch"


class Receiver:
    """A webhook endpoint on loopback. Per path, a script of replies (status, delay) used in order;
    then 200. A path in `held` blocks its first request until released."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.script: dict[str, list[tuple[int, float]]] = {}
        self.held: dict[str, threading.Event] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver.lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                              "at": time.monotonic()})  # fmt: skip
                    plan = receiver.script.get(self.path) or []
                    status, delay = plan.pop(0) if plan else (200, 0.0)
                    hold = receiver.held.pop(self.path, None)
                if hold is not None:
                    hold.wait(60)
                time.sleep(delay)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def on(self, path: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]


class Mailbox:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture
def mailbox():
    box = Mailbox()
    with socket.socket() as probe:  # aiosmtpd's start() connects to its own port: it must be a real one
        probe.bind(("127.0.0.1", 0))
        box.port = probe.getsockname()[1]
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()


@pytest.fixture
def env(kafka_settings, applied_topics, unique, mailbox, tmp_path):
    out = dict(os.environ)
    out.update({
        "PANTAU_KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "PANTAU_NOTIFIER_GROUP": f"notifier-test-{unique}",
        "PANTAU_NOTIFIER_ALLOW_LOOPBACK": "true",
        "PANTAU_NOTIFIER_GROUP_WAIT_S": "0.3",
        "PANTAU_NOTIFIER_MATCH_GROUP_WAIT_S": "0.1",
        "PANTAU_NOTIFIER_GROUP_INTERVAL_S": "0",
        "PANTAU_NOTIFIER_RETRY_INITIAL_S": "0.5",
        "PANTAU_NOTIFIER_RETRY_MAX_S": "1",
        "PANTAU_NOTIFIER_WEBHOOK_TIMEOUT_S": "8",
        "PANTAU_NOTIFIER_SMTP_PORT": str(mailbox.port),
        "PANTAU_METRICS_PORT": "0",
        "PANTAU_LOG_FORMAT": "text",
    })  # fmt: skip
    out.update(topic_env(applied_topics))
    return out


def start(env: dict, tmp_path, **extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pantau.cli", "notifier", "run"], env={**env, **extra},
                            stdout=(tmp_path / "notifier.log").open("ab"), stderr=subprocess.STDOUT)  # fmt: skip


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def subscription(sub_id: str, webhooks: list[str], emails: list[str] = (), secret: str | None = None) -> dict:
    return {"id": sub_id, "owner": f"owner-{sub_id}", "query": "amunisi", "modes": ["spike"],
            "channels": {"webhooks": [{"url": url, "secret": secret or fresh_secret()} for url in webhooks],
                         "emails": list(emails)}}  # fmt: skip


def alert(contracts, incident: str, sub_ids: list[str], revision: int = 1, state: str = "firing",
          detected_at: str | None = None) -> dict:  # fmt: skip
    example = contracts.examples("alert", 1)[0]
    out = copy.deepcopy(json.loads(example.read_text(encoding="utf-8")))
    out.update(id=f"{incident}:{revision}", incident_id=incident, revision=revision, state=state,
               subscription_ids=sub_ids, detected_at=detected_at or datetime.now(UTC).isoformat())  # fmt: skip
    return out


def publish(kafka_settings, contracts, topic: str, alerts: list[dict]) -> None:
    codec = Codec.for_topic(contracts, "alerts")
    producer = make_producer(kafka_settings, "tests")
    for item in alerts:
        value, headers = codec.encode(item)
        producer.send(topic, key=item["incident_id"].encode(), value=value, headers=headers)
    producer.flush()
    close_producer(producer)


def log_states(kafka_settings, topic: str) -> dict[str, dict]:
    records = read_records(kafka_settings, topic, lambda rs: False, timeout_s=3)
    return {r.key.decode(): json.loads(r.value) for r in records}


def test_an_alert_is_told_once_by_signed_webhook_and_by_email_across_resends_and_restarts(
    kafka_settings, contracts, applied_topics, receiver, mailbox, env, tmp_path
):
    secret = fresh_secret()
    sub = subscription("desk-a", [receiver.url("/a")], ["desk@example.org"], secret)
    apply_subscriptions([sub], contracts, kafka_settings, applied_topics.subscriptions)
    first = alert(contracts, "inc-once-0001", ["desk-a"])
    stale = alert(contracts, "inc-stale-0001", ["desk-a"], detected_at="2026-01-05T00:00:00+00:00")
    proc = start(env, tmp_path)
    try:
        # The alerter may re-send an alert; one detected months ago is not news (a new group reads it);
        # bytes that are no alert go to the dead-letter topic and nothing else is held up.
        producer = make_producer(kafka_settings, "tests")
        producer.send(applied_topics.alerts, key=b"junk", value=b"{not an alert").get(30)
        close_producer(producer)
        publish(kafka_settings, contracts, applied_topics.alerts, [stale, first, first])
        wait_for(lambda: receiver.on("/a") and mailbox.messages, 60, "the webhook and the email")
        time.sleep(2)  # room for a duplicate to show up
        [hook] = receiver.on("/a")
        payload = Webhook(secret).verify(hook["body"], hook["headers"])  # raises unless signed with the secret
        assert [a["id"] for a in payload["data"]["alerts"]] == ["inc-once-0001:1"]
        [mail] = mailbox.messages
        email_id = re.fullmatch(r"<(msg_[0-9a-f]{32})@pantau\.notifier>", mail["Message-ID"])[1]
        assert email_id != hook["headers"]["webhook-id"]  # two targets, two notifications
        assert mail["X-Pantau-Alert-Ids"] == "inc-once-0001:1" and mail["To"] == "desk@example.org"
        assert {p.get_content_type() for p in mail.walk()} >= {"text/plain", "text/html"}
        stop(proc)

        # After a restart the delivery log remembers: the same alert again tells nobody.
        proc = start(env, tmp_path)
        publish(kafka_settings, contracts, applied_topics.alerts, [first])
        time.sleep(5)  # the restarted worker joins its group and reads it (it would tell it by now)
        assert len(receiver.on("/a")) == 1 and len(mailbox.messages) == 1
        update = alert(contracts, "inc-once-0001", ["desk-a"], revision=2, state="resolved")
        publish(kafka_settings, contracts, applied_topics.alerts, [update])
        wait_for(lambda: len(receiver.on("/a")) == 2 and len(mailbox.messages) == 2, 60, "the resolution")
        time.sleep(2)
        assert len(receiver.on("/a")) == 2 and len(mailbox.messages) == 2
        second = json.loads(receiver.on("/a")[1]["body"])
        assert [a["id"] for a in second["data"]["alerts"]] == ["inc-once-0001:2"]
    finally:
        stop(proc)
    [letter] = read_records(kafka_settings, applied_topics.dlq_notifier, lambda rs: len(rs) >= 1, timeout_s=30)
    provenance = read_provenance(record_headers(letter))
    assert letter.value == b"{not an alert" and provenance["topic"] == applied_topics.alerts
    assert provenance["service"] == "notifier" and "not JSON" in provenance["reason"]
    states = log_states(kafka_settings, applied_topics.notifications)
    assert sorted(r["state"] for r in states.values()) == ["delivered"] * 4
    assert states[email_id]["target"]["channel"] == "email"  # the Message-ID is the logged notification


def test_failures_are_retried_under_one_webhook_id_and_410_disables_the_endpoint(
    kafka_settings, contracts, applied_topics, receiver, env, tmp_path
):
    receiver.script["/flaky"] = [(500, 0.0), (503, 0.0), (200, 0.0)]
    receiver.script["/gone"] = [(410, 0.0)]
    receiver.script["/moved"] = [(301, 0.0)]  # a redirect is a failure, never followed
    subs = [subscription("desk-flaky", [receiver.url("/flaky")]), subscription("desk-gone", [receiver.url("/gone")]),
            subscription("desk-moved", [receiver.url("/moved")])]  # fmt: skip
    apply_subscriptions(subs, contracts, kafka_settings, applied_topics.subscriptions)
    proc = start(env, tmp_path)
    try:
        publish(kafka_settings, contracts, applied_topics.alerts,
                [alert(contracts, "inc-retry-0001", ["desk-flaky", "desk-gone", "desk-moved"])])  # fmt: skip
        wait_for(lambda: len(receiver.on("/flaky")) == 3 and len(receiver.on("/moved")) == 2, 60, "the retries")
        ids = {r["headers"]["webhook-id"] for r in receiver.on("/flaky") + receiver.on("/moved")}
        assert len({r["headers"]["webhook-id"] for r in receiver.on("/flaky")}) == 1 and len(ids) == 2
        publish(kafka_settings, contracts, applied_topics.alerts,
                [alert(contracts, "inc-retry-0002", ["desk-gone"])])  # fmt: skip
        time.sleep(3)
        assert len(receiver.on("/gone")) == 1  # disabled: the second alert is not sent there
    finally:
        stop(proc)
    states = log_states(kafka_settings, applied_topics.notifications)
    endpoint = [r for k, r in states.items() if k.startswith("endpoint:")]
    assert [e["target"]["subscription_id"] for e in endpoint] == ["desk-gone"]
    by_sub = {r["target"]["subscription_id"]: r for r in states.values() if r["kind"] == "notification"}
    assert by_sub["desk-flaky"]["state"] == "delivered" and by_sub["desk-flaky"]["attempts"] == 2
    assert by_sub["desk-gone"]["state"] == "disabled"


def test_a_slow_receiver_does_not_hold_up_other_subscribers(
    kafka_settings, contracts, applied_topics, receiver, env, tmp_path
):
    receiver.script["/slow"] = [(200, 4.0)]
    subs = [subscription("desk-slow", [receiver.url("/slow")]), subscription("desk-fast", [receiver.url("/fast")])]
    apply_subscriptions(subs, contracts, kafka_settings, applied_topics.subscriptions)
    proc = start(env, tmp_path)
    try:
        publish(kafka_settings, contracts, applied_topics.alerts,
                [alert(contracts, "inc-slow-0001", ["desk-slow", "desk-fast"])])  # fmt: skip
        wait_for(lambda: receiver.on("/slow") and receiver.on("/fast"), 60, "both requests")
        slow, fast = receiver.on("/slow")[0], receiver.on("/fast")[0]
        assert fast["at"] < slow["at"] + 4.0  # told while the slow one was still answering
    finally:
        stop(proc)


def test_kill_9_between_send_and_acknowledgement_loses_nothing_and_doubles_nothing(
    kafka_settings, contracts, applied_topics, receiver, env, tmp_path
):
    release = threading.Event()
    receiver.held["/held"] = release
    apply_subscriptions([subscription("desk-held", [receiver.url("/held")])], contracts, kafka_settings,
                        applied_topics.subscriptions)  # fmt: skip
    proc = start(env, tmp_path)
    try:
        publish(kafka_settings, contracts, applied_topics.alerts, [alert(contracts, "inc-kill-0001", ["desk-held"])])
        wait_for(lambda: receiver.on("/held"), 60, "the first attempt")
        proc.kill()  # SIGKILL while the receiver has not answered
        proc.wait(10)
        release.set()
        proc = start(env, tmp_path)
        wait_for(lambda: len(receiver.on("/held")) == 2, 60, "the attempt after the restart")
        time.sleep(3)
        requests = receiver.on("/held")
        assert len(requests) == 2  # sent again once, then delivered: nothing more
        assert len({r["headers"]["webhook-id"] for r in requests}) == 1  # one notification, as the receiver counts
        assert requests[0]["body"] == requests[1]["body"]
    finally:
        stop(proc)


def test_loopback_webhooks_are_refused_without_the_explicit_allowance(
    kafka_settings, contracts, applied_topics, receiver, env, tmp_path
):
    apply_subscriptions([subscription("desk-local", [receiver.url("/local")])], contracts, kafka_settings,
                        applied_topics.subscriptions)  # fmt: skip
    proc = start(env, tmp_path, PANTAU_NOTIFIER_ALLOW_LOOPBACK="false")
    try:
        publish(kafka_settings, contracts, applied_topics.alerts, [alert(contracts, "inc-local-0001", ["desk-local"])])

        def refused() -> bool:
            states = log_states(kafka_settings, applied_topics.notifications)
            return any(r.get("state") == "refused" for r in states.values())

        wait_for(refused, 60, "the refusal in the delivery log")
    finally:
        stop(proc)
    assert receiver.on("/local") == []
    [record] = log_states(kafka_settings, applied_topics.notifications).values()
    assert "loopback" in record["last_error"]


def test_an_hourly_digest_of_what_elasticsearch_holds_is_told_once_across_a_restart(
    infra, kafka_settings, contracts, applied_topics, es_prefix, receiver, env, tmp_path
):
    """Articles indexed (as the indexer writes them) in the hour that just ended: two match the
    digest's query, one does not, and one matching article of the current hour waits for its own."""
    admin = make_client(es_settings(infra, "pantau_admin", es_prefix))
    apply_templates(admin, ES_DIR, es_prefix)
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    previous = hour - timedelta(hours=1)
    seen = [previous + timedelta(minutes=10), previous + timedelta(minutes=50), previous + timedelta(minutes=30),
            hour + timedelta(seconds=1)]  # fmt: skip
    articles = enriched_articles(contracts, 4, f"digest-{es_prefix}", lambda n: seen[n].isoformat())
    for n in (0, 1, 3):
        articles[n]["title"] = f"Ekspor amunisi diperketat, laporan pantaudigest {n}"
        articles[n]["stems"]["title"] = stem_text(articles[n]["title"], "id")
        articles[n]["story"]["id"] = f"story-{n}"  # distinct stories (copies would collapse into one line)
    indexer = make_client(es_settings(infra, "pantau_indexer", es_prefix))
    answer = indexer.bulk(operations=b"".join(bulk_lines(article_action(a, es_prefix, now)) for a in articles))
    assert not answer["errors"], answer
    admin.indices.refresh(index=f"{es_prefix}-articles")

    created = (previous - timedelta(hours=3)).isoformat().replace("+00:00", "Z")
    sub = {**subscription("desk-digest", [receiver.url("/digest")]), "query": "pantaudigest",
           "modes": ["digest_hourly"], "name": "Ammunition hourly", "created_at": created}  # fmt: skip
    apply_subscriptions([sub], contracts, kafka_settings, applied_topics.subscriptions)
    digest_env = {"PANTAU_ES_URL": infra.es_url, "PANTAU_ES_USERNAME": "pantau_reader",
                  "PANTAU_ES_PASSWORD": infra.password("pantau_reader"), "PANTAU_ES_INDEX_PREFIX": es_prefix,
                  "PANTAU_NOTIFIER_DIGEST_GRACE_S": "0", "PANTAU_NOTIFIER_DIGEST_CHECK_S": "0.5"}  # fmt: skip
    window = previous.isoformat().replace("+00:00", "Z")

    def digests_of_that_hour() -> list[dict]:
        bodies = [json.loads(r["body"]) for r in receiver.on("/digest")]
        return [a for b in bodies for a in b["data"]["alerts"] if a["window"]["start"] == window]

    proc = start(env, tmp_path, **digest_env)
    try:
        wait_for(lambda: digests_of_that_hour(), 60, "the digest of the hour that ended")
        stop(proc)
        proc = start(env, tmp_path, **digest_env)  # the restarted notifier finds the same period due
        time.sleep(6)
    finally:
        stop(proc)
    [digest] = digests_of_that_hour()
    assert digest["kind"] == "digest" and digest["subscription_ids"] == ["desk-digest"]
    assert digest["observed"]["articles"] == 2 and digest["observed"]["stories"] == 2
    assert {a["id"] for a in digest["top_articles"]} == {articles[0]["id"], articles[1]["id"]}
    assert digest["top_articles"][0]["id"] == articles[1]["id"]  # newest first
