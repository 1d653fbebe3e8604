"""Subscription files (rules as code) and the offline commands: `pantau subscriptions check|new`,
`pantau spikes replay`. Pure and in-process: no servers."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner
from standardwebhooks.webhooks import Webhook

from pantau.alerter import subscriptions as subscription_files
from pantau.alerter.engine import Engine, EngineConfig, Subscriptions, event_time
from pantau.alerter.subscriptions import SubscriptionError, check, load, new_subscription, webhook_egress_problems
from pantau.cli import main
from pantau.common.codec import Codec
from tests.samples import alerter_stream

START = 1_764_000_000.0
VALID = {"id": "desk-amunisi", "owner": "defence-desk", "query": "amunisi", "modes": ["spike"], "channels": {}}


@pytest.fixture
def codec(contracts):
    return Codec.for_topic(contracts, "subscriptions")


def write(path, doc) -> None:
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")


def test_a_folder_of_files_loads_sorted_and_lists_of_subscriptions_count(tmp_path, codec):
    write(tmp_path / "b.yaml", VALID)
    write(tmp_path / "a.yaml", [{**VALID, "id": "desk-two"}, {**VALID, "id": "desk-three", "modes": ["realtime"]}])
    (tmp_path / "README.md").write_text("not a subscription")
    assert [s["id"] for s in load(tmp_path, codec)] == ["desk-two", "desk-three", "desk-amunisi"]


def test_every_problem_is_reported_with_its_file_and_field(tmp_path, codec):
    write(tmp_path / "bad-query.yaml", {**VALID, "id": "bad-query", "query": "amunisi AND (OR"})
    write(tmp_path / "bad-mode.yaml", {**VALID, "id": "bad-mode", "modes": ["sometimes"]})
    hooks = {"webhooks": [{"url": "https://user:pw@example.org/x"}]}
    write(tmp_path / "bad-hook.yaml", {**VALID, "id": "bad-hook", "channels": hooks})
    write(tmp_path / "dup.yaml", VALID)
    write(tmp_path / "dup2.yaml", VALID)
    (tmp_path / "broken.yaml").write_text("id: [unclosed", encoding="utf-8")
    with pytest.raises(SubscriptionError) as caught:
        load(tmp_path, codec)
    problems = "\n".join(caught.value.problems)
    assert "bad-query.yaml (bad-query): query:" in problems and "column" in problems
    assert "bad-mode.yaml (bad-mode): modes" in problems
    assert "bad-hook.yaml (bad-hook): channels.webhooks[0].url: credentials" in problems
    assert "dup2.yaml: id 'desk-amunisi' is already used by" in problems
    assert "broken.yaml: not valid YAML" in problems
    assert len(caught.value.problems) == 5


def test_an_unquoted_time_is_the_text_written_and_yaml_beyond_json_is_a_problem_not_a_crash(tmp_path, codec):
    body = "owner: d\nquery: amunisi\nmodes: [spike]\nchannels: {}\n"
    (tmp_path / "muted.yaml").write_text("id: desk-muted\nmuted_until: 2025-12-01T00:00:00Z\n" + body)
    assert load(tmp_path / "muted.yaml", codec)[0]["muted_until"] == "2025-12-01T00:00:00Z"
    (tmp_path / "binary.yaml").write_text("id: desk-bin\nname: !!binary aGVsbG8=\n" + body)
    (tmp_path / "intkey.yaml").write_text("id: desk-int\n1: x\n" + body)
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "muted.yaml").unlink()
    with pytest.raises(SubscriptionError) as caught:
        load(tmp_path, codec)
    problems = caught.value.problems
    assert len(problems) == 3
    assert any("binary.yaml (desk-bin): not JSON data" in p for p in problems)
    assert any("intkey.yaml (desk-int): not JSON data" in p for p in problems)
    assert any("deep.json: not valid JSON" in p for p in problems)


def test_a_missing_path_and_an_empty_folder_are_errors(tmp_path, codec):
    with pytest.raises(SubscriptionError, match="no such file"):
        load(tmp_path / "nope", codec)
    with pytest.raises(SubscriptionError, match="no subscription files"):
        load(tmp_path, codec)


def test_new_subscription_is_valid_and_has_a_fresh_secret(codec):
    a = new_subscription('amunisi OR "peluru artileri"', "Defence desk", ["https://hooks.example.org/x"], [], ["spike"])
    b = new_subscription("amunisi", "Defence desk", ["https://hooks.example.org/x"], [], ["spike"])
    codec.validate(a)
    assert a["id"] == "defence-desk-amunisi-or-peluru-artileri"
    assert a["channels"]["webhooks"][0]["secret"].startswith("whsec_")
    assert a["channels"]["webhooks"][0]["secret"] != b["channels"]["webhooks"][0]["secret"]
    # A receiver's Standard Webhooks library reads it: whsec_ + base64 of a 24-byte key.
    assert len(Webhook(a["channels"]["webhooks"][0]["secret"])._whsecret) == 24
    assert check(a, codec, "new") == []


@pytest.mark.parametrize(
    ("secret", "reason"),
    [("whsec_not-base64-at-all_but_long", "standard base64"), ("whsec_AAAAAAAAAAAAAAAAAAAA", "at least 16 bytes")],
)
def test_check_refuses_a_secret_receivers_cannot_decode(codec, secret, reason):
    sub = {**VALID, "channels": {"webhooks": [{"url": "https://hooks.example.org/x", "secret": secret}]}}
    [problem] = check(sub, codec, "f.yaml")
    assert "channels.webhooks[0].secret" in problem and reason in problem


def hooked(*urls: str) -> dict:
    return {**VALID, "channels": {"webhooks": [{"url": url} for url in urls]}}


# No test resolves a real name (a DNS query leaves the machine): names resolve through this table.
NAMES = {"hooks.example.org": ["93.184.215.14"], "sneaky.example.org": ["93.184.215.14", "10.1.2.3"],
         "localhost": ["127.0.0.1", "::1"], "metadata.example.org": ["169.254.169.254"]}  # fmt: skip


def fake_resolve(host: str) -> list[str]:
    if host not in NAMES:
        raise OSError(-2, "Name or service not known")
    return NAMES[host]


@pytest.mark.parametrize(("url", "reason"), [
    ("http://127.0.0.1:8080/hook", "127.0.0.1 is loopback"),
    ("http://localhost/hook", "localhost resolves to 127.0.0.1 is loopback"),
    ("http://169.254.169.254/latest/meta-data", "link-local (cloud metadata lives here)"),
    ("http://metadata.example.org/", "resolves to 169.254.169.254 is link-local"),
    ("http://[::ffff:10.0.0.1]/", "IPv4-mapped ::ffff:a00:1 embeds 10.0.0.1: 10.0.0.1 is private"),
    ("http://2130706433/", "127.0.0.1 is loopback"),
    ("https://sneaky.example.org/", "resolves to 10.1.2.3 is private"),
    ("https://nowhere.invalid/", "nowhere.invalid does not resolve"),
])  # fmt: skip
def test_webhooks_to_private_or_metadata_addresses_are_refused_at_registration(url, reason):
    problems = webhook_egress_problems(hooked(url), fake_resolve)
    assert len(problems) == 1 and problems[0].startswith("channels.webhooks[0].url: ") and reason in problems[0]


def test_loopback_passes_only_with_the_allowance_and_metadata_never():
    assert webhook_egress_problems(hooked("http://127.0.0.1:9/h", "http://localhost/h"), fake_resolve,
                                   allow_loopback=True) == []  # fmt: skip
    assert webhook_egress_problems(hooked("http://169.254.169.254/"), fake_resolve, allow_loopback=True)
    assert webhook_egress_problems(hooked("https://hooks.example.org/p"), fake_resolve) == []


def test_internal_hosts_are_named_on_purpose_and_not_resolved():
    inbox = hooked("http://demo-inbox:8809/h")
    assert webhook_egress_problems(inbox, fake_resolve, internal_hosts=["Demo-Inbox"]) == []
    assert webhook_egress_problems(inbox, fake_resolve)


def test_cli_check_refuses_a_loopback_webhook_unless_the_notifier_may_reach_loopback(tmp_path, monkeypatch):
    monkeypatch.setattr(subscription_files, "system_resolve", fake_resolve)
    write(tmp_path / "local.yaml", hooked("http://127.0.0.1:8809/hooks/x"))
    refused = CliRunner().invoke(main, ["subscriptions", "check", str(tmp_path)])
    assert refused.exit_code != 0
    assert "(desk-amunisi): channels.webhooks[0].url: 127.0.0.1 is loopback" in refused.output
    monkeypatch.setenv("PANTAU_NOTIFIER_ALLOW_LOOPBACK", "true")
    assert CliRunner().invoke(main, ["subscriptions", "check", str(tmp_path)]).exit_code == 0


def test_cli_replay_sends_nothing_so_it_resolves_no_webhook_host(tmp_path, monkeypatch):
    def offline(host):
        raise OSError(f"{host}: no network here")

    monkeypatch.setattr(subscription_files, "system_resolve", offline)
    write(tmp_path / "subs.yaml", hooked("https://hooks.example.org/x"))
    assert CliRunner().invoke(main, ["subscriptions", "check", str(tmp_path)]).exit_code != 0  # check resolves
    replayed = CliRunner().invoke(main, ["spikes", "replay", "--subscriptions", str(tmp_path / "subs.yaml"), "-"],
                                  input="")  # fmt: skip
    assert replayed.exit_code == 0, replayed.output


def test_cli_new_prints_a_file_that_check_accepts(tmp_path, monkeypatch):
    monkeypatch.setattr(subscription_files, "system_resolve", fake_resolve)
    runner = CliRunner()
    result = runner.invoke(main, ["subscriptions", "new", "--query", "amunisi", "--webhook", "https://hooks.example.org/p",
                                  "--owner", "desk", "--mode", "spike", "--mode", "realtime"])  # fmt: skip
    assert result.exit_code == 0, result.output
    (tmp_path / "sub.yaml").write_text(result.output, encoding="utf-8")
    checked = runner.invoke(main, ["subscriptions", "check", str(tmp_path / "sub.yaml")])
    assert checked.exit_code == 0 and "1 subscription(s) valid" in checked.output


def test_cli_new_refuses_a_bad_query_saying_where():
    result = CliRunner().invoke(main, ["subscriptions", "new", "--query", "am*"])
    assert result.exit_code != 0 and "too costly" in result.output


def test_cli_check_lists_problems_and_fails(tmp_path):
    write(tmp_path / "bad.yaml", {**VALID, "query": "NOT amunisi"})
    result = CliRunner().invoke(main, ["subscriptions", "check", str(tmp_path)])
    assert result.exit_code != 0 and "bad.yaml (desk-amunisi): query:" in result.output


def test_cli_replay_prints_valid_alerts_for_the_surge_and_none_for_the_history(tmp_path, contracts):
    write(tmp_path / "subs.yaml", [VALID, {**VALID, "id": "desk-live", "modes": ["realtime"]}])
    articles = alerter_stream(contracts, START, 60, 30, 54, backfill_hours=36, backfill_surge_at_hour=20)
    lines = "".join(json.dumps(a) + "\n" for a in articles)
    result = CliRunner().invoke(main, ["spikes", "replay", "--subscriptions", str(tmp_path / "subs.yaml"), "-"],
                                input=lines + "{not json}\n")  # fmt: skip
    assert result.exit_code == 1  # the bad line is reported, the rest is replayed
    alerts = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    alerts_codec = Codec.for_topic(contracts, "alerts")
    for alert in alerts:
        alerts_codec.validate(alert)
    spikes = [a for a in alerts if a["kind"] == "spike"]
    matches = [a for a in alerts if a["kind"] == "match"]
    assert len({a["incident_id"] for a in spikes}) == 1
    query = [a for a in spikes if a["watch"]["type"] == "query"]
    assert query[0]["watch"]["query"] == "amunisi"
    assert query[0]["subscription_ids"] == ["desk-amunisi"] and query[0]["state"] == "firing"
    assert query[0]["detected_at"] >= "2025-11-26T16:00"  # hour 54: the backfilled surge at hour 20 never alerts
    live = [a for a in articles if a["terms"] and not a["backfill"]]
    assert len(matches) == len(live) and all(m["subscription_ids"] == ["desk-live"] for m in matches)


def test_replay_is_deterministic_and_muted_subscriptions_are_not_named(contracts):
    articles = alerter_stream(contracts, START, 60, 30, 54, backfill_hours=36)

    def replay(subs):
        engine = Engine(Subscriptions.of(subs))
        return [alert for article in articles for alert in engine.process(article)]

    first = replay([VALID])
    assert [a for a in first if a["kind"] == "spike"] and first == replay([VALID])
    muted = replay([{**VALID, "muted_until": "2099-01-01T00:00:00Z"}])
    assert [a["id"] for a in muted] == [a["id"] for a in first]  # still detected (and indexed) ...
    assert all(a["subscription_ids"] == [] for a in muted)  # ... but nobody is told


def test_each_subscriber_is_told_when_the_incident_meets_their_own_thresholds(contracts):
    """A sensitive subscriber's watch fires first; a stricter one of the same query is told at the
    revision that meets its thresholds (not only at the resolution), and one whose thresholds the
    incident never meets hears nothing of it, its resolution included."""
    articles = alerter_stream(contracts, START, 60, 30, 54, surge_stories=6, surge_sources=5, backfill_hours=36)
    base = {**VALID, "owner": "desk"}
    subs = [{**base, "id": "hi", "sensitivity": {"preset": "high"}},
            {**base, "id": "norm", "sensitivity": {"preset": "normal"}},
            {**base, "id": "strict", "sensitivity": {"min_stories": 50}}]  # fmt: skip
    engine = Engine(Subscriptions.of(subs), EngineConfig(entity_watches=False, term_watches=False))
    told = [(a["state"], a["subscription_ids"]) for article in articles for a in engine.process(article)
            if a["kind"] == "spike"]  # fmt: skip
    assert told[0] == ("firing", ["hi"])
    first_norm = next(i for i, (_, ids) in enumerate(told) if "norm" in ids)
    assert told[first_norm][0] == "updated"
    assert all(set(ids) == {"hi", "norm"} for _, ids in told[first_norm:])
    assert told[-1][0] == "resolved" and all("strict" not in ids for _, ids in told)


def test_an_incident_that_meets_no_subscribers_thresholds_tells_nobody(contracts):
    """The loosest thresholds are a minimum per field, so a watch can fire on what meets none of its
    subscribers' own: nobody is told of it, its updates or its end."""
    articles = alerter_stream(contracts, START, 60, 30, 54, surge_stories=6, surge_sources=5, backfill_hours=36)
    base = {**VALID, "owner": "desk"}
    subs = [{**base, "id": "sources", "sensitivity": {"preset": "high", "min_sources": 50}},
            {**base, "id": "stories", "sensitivity": {"preset": "high", "min_stories": 50}}]  # fmt: skip
    engine = Engine(Subscriptions.of(subs), EngineConfig(entity_watches=False, term_watches=False))
    spikes = [a for article in articles for a in engine.process(article) if a["kind"] == "spike"]
    assert spikes and all(a["subscription_ids"] == [] for a in spikes)


def test_an_alert_shared_by_two_owners_shows_neither_owners_name_or_spelling(contracts):
    articles = alerter_stream(contracts, START, 60, 30, 54, backfill_hours=36)
    private = {**VALID, "id": "a-investigations", "owner": "investigations", "name": "Probe: minister X arms deal",
               "query": "Amunisi"}  # fmt: skip
    other = {**VALID, "id": "b-defence", "owner": "defence-desk", "name": "Defence", "query": "amunisi"}

    def spike_watches(subs):
        engine = Engine(Subscriptions.of(subs))
        return [a["watch"] for article in articles for a in engine.process(article) if a["kind"] == "spike"
                and a["watch"]["type"] == "query"]  # fmt: skip

    alone = spike_watches([private])
    assert alone and all(w["label"] == private["name"] and w["query"] == "Amunisi" for w in alone)
    shared = spike_watches([private, other])
    assert shared and all(w["label"] == "amunisi" and w["query"] == "amunisi" for w in shared)
    subs = Subscriptions.of([private, other])
    subs.remove("b-defence")  # one owner again: its own name
    assert subs.watches["query:amunisi"].label == private["name"]


def test_a_live_article_first_seen_hours_after_publication_is_still_a_match(contracts):
    articles = alerter_stream(contracts, START, 60, 30, 54, backfill_hours=36)
    surge = next(a for a in articles if a["terms"] and not a["backfill"])
    late = {**surge, "id": "f" * 64, "published_at": articles[0]["published_at"]}  # published 54 hours before
    engine = Engine(Subscriptions.of([{**VALID, "id": "desk-live", "modes": ["realtime"]}]))
    for article in articles:
        engine.process(article)
    matches = [a for a in engine.process(late) if a["kind"] == "match"]
    assert [m["subscription_ids"] for m in matches] == [["desk-live"]]


def test_event_time_is_clamped_to_first_seen():
    article = {"published_at": "2030-01-01T00:00:00Z", "first_seen_at": "2026-11-26T00:00:00Z"}
    assert event_time(article) == event_time({"first_seen_at": "2026-11-26T00:00:00Z"})
    assert event_time({"published_at": "2026-11-25T23:00:00+07:00", "first_seen_at": "2026-11-26T00:00:00Z"}) < (
        event_time({"first_seen_at": "2026-11-26T00:00:00Z"})
    )
