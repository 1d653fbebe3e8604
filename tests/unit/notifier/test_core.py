"""The notifier's pure core: grouping, de-duplication across restarts, Standard Webhooks signing,
reply classification, retry schedule, email. No servers."""

from __future__ import annotations

import json
import random
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from pantau.alerter.subscriptions import fresh_secret
from pantau.notifier.core import (
    Grouper,
    Notification,
    Outcome,
    Policy,
    after_failure,
    classify_http,
    email_message,
    notification_id,
    targets_of,
    webhook_body,
    webhook_headers,
)

T0 = 1_764_000_000.0
SECRET = fresh_secret()
SUB = {
    "id": "desk-amunisi",
    "owner": "defence-desk",
    "query": "amunisi",
    "modes": ["spike"],
    "channels": {
        "webhooks": [{"url": "https://hooks.example.org/a", "secret": SECRET},
                     {"url": "https://hooks.slack.example/b", "format": "slack"}],
        "emails": ["desk@example.org"],
    },
}  # fmt: skip


def alert(incident: str = "inc-amunisi-1", revision: int = 1, state: str = "firing", kind: str = "spike") -> dict:
    return {
        "id": f"{incident}:{revision}",
        "incident_id": incident,
        "revision": revision,
        "kind": kind,
        "state": state,
        "watch": {"type": "query", "key": "query:amunisi", "label": "amunisi <b>"},
        "detected_at": "2025-11-24T16:00:00Z",
        "observed": {"stories": 12, "articles": 30, "sources": 9},
        "top_articles": [{"id": "a1", "title": "Gudang amunisi <meledak>", "url": "https://news.example/a1"}],
        "kibana_url": "https://kibana.example/app/discover#/?q=amunisi",
        "subscription_ids": ["desk-amunisi"],
    }


@pytest.fixture
def hook():
    return targets_of(SUB)[0]


def test_targets_are_every_webhook_and_email_of_a_subscription():
    targets = targets_of(SUB)
    assert [(t.channel, t.address, t.format) for t in targets] == [
        ("webhook", "https://hooks.example.org/a", "standard"),
        ("webhook", "https://hooks.slack.example/b", "slack"),
        ("email", "desk@example.org", "standard"),
    ]
    assert len({t.key for t in targets}) == 3 and all(t.owner == "defence-desk" for t in targets)


def test_related_alerts_within_the_group_wait_go_in_one_message(hook):
    grouper = Grouper(Policy(group_wait_s=30))
    assert grouper.offer(alert("inc-a"), hook, T0) == "queued"
    assert grouper.offer(alert("inc-b"), hook, T0 + 10) == "queued"
    assert grouper.due(T0 + 29) == []
    assert grouper.next_due_at() == T0 + 30
    [message] = grouper.due(T0 + 30)
    assert message.alert_ids == ["inc-a:1", "inc-b:1"] and message.target == hook
    assert message.id == notification_id(hook, ["inc-b:1", "inc-a:1"])  # order-free, stable
    assert grouper.due(T0 + 3600) == []


def test_real_time_matches_wait_less_than_spikes(hook):
    grouper = Grouper(Policy(group_wait_s=30, match_group_wait_s=5))
    grouper.offer(alert("match-1", kind="match"), hook, T0)
    assert [m.alert_ids for m in grouper.due(T0 + 5)] == [["match-1:1"]]


def test_a_spike_joining_a_waiting_match_group_makes_it_due_at_the_spike_wait(hook):
    # `due` skips its scan until the earliest group can be ready: a shorter wait must move that moment.
    grouper = Grouper(Policy(group_wait_s=5, match_group_wait_s=30))
    grouper.offer(alert("match-1", kind="match"), hook, T0)
    assert grouper.due(T0 + 4) == []
    grouper.offer(alert("inc-a"), hook, T0 + 1)
    assert [m.alert_ids for m in grouper.due(T0 + 5)] == [["match-1:1", "inc-a:1"]]


def test_groups_become_due_each_at_its_own_time(hook):
    other = targets_of(SUB)[1]
    grouper = Grouper(Policy(group_wait_s=30))
    grouper.offer(alert("inc-a"), hook, T0)
    grouper.offer(alert("inc-b"), other, T0 + 20)
    assert [m.target for m in grouper.due(T0 + 30)] == [hook]
    assert grouper.due(T0 + 49) == []
    assert [m.target for m in grouper.due(T0 + 50)] == [other]


def test_the_next_message_waits_the_group_interval(hook):
    grouper = Grouper(Policy(group_wait_s=30, group_interval_s=300))
    grouper.offer(alert("inc-a"), hook, T0)
    assert len(grouper.due(T0 + 30)) == 1
    grouper.offer(alert("inc-b"), hook, T0 + 40)
    assert grouper.due(T0 + 100) == []  # group wait over, group interval not
    assert [m.alert_ids for m in grouper.due(T0 + 330)] == [["inc-b:1"]]


def test_a_revision_is_never_told_twice_and_unchanged_states_wait_the_repeat_interval(hook):
    grouper = Grouper(Policy(group_wait_s=0, group_interval_s=0, repeat_interval_s=4 * 3600))
    grouper.offer(alert(revision=1), hook, T0)
    assert len(grouper.due(T0)) == 1
    assert grouper.offer(alert(revision=1), hook, T0 + 1) == "duplicate"  # the alerter re-sent it
    assert grouper.offer(alert(revision=2, state="updated"), hook, T0 + 60) == "queued"  # grew: told
    assert len(grouper.due(T0 + 60)) == 1
    assert grouper.offer(alert(revision=3, state="updated"), hook, T0 + 120) == "repeat"  # grew again, too soon
    assert grouper.offer(alert(revision=4, state="resolved"), hook, T0 + 180) == "queued"  # over: always told
    assert grouper.offer(alert(revision=5, state="updated"), hook, T0 + 5 * 3600) == "queued"


def test_revisions_of_one_incident_in_a_group_become_one_line_with_the_newest(hook):
    grouper = Grouper(Policy(group_wait_s=30))
    grouper.offer(alert(revision=1), hook, T0)
    grouper.offer(alert(revision=2, state="updated"), hook, T0 + 5)
    [message] = grouper.due(T0 + 30)
    assert message.alert_ids == ["inc-amunisi-1:2"]
    assert grouper.offer(alert(revision=1), hook, T0 + 40) == "duplicate"


def test_after_a_restart_the_delivery_log_keeps_what_was_told(hook):
    before = Grouper(Policy(group_wait_s=0))
    before.offer(alert("inc-a"), hook, T0)
    [message] = before.due(T0)
    record = json.loads(json.dumps(message.to_record()))  # through the log topic
    after = Grouper(Policy(group_wait_s=0))
    after.restore(Notification.from_record(record))
    assert after.offer(alert("inc-a"), hook, T0 + 10) == "duplicate"
    assert after.offer(alert("inc-a"), targets_of(SUB)[2], T0 + 10) == "queued"  # the email was not told


def test_a_settled_notification_is_logged_without_articles_and_still_restores(hook, contracts):
    from pantau.common.codec import Codec

    codec = Codec.for_topic(contracts, "notifications")
    grouper = Grouper(Policy(group_wait_s=0))
    grouper.offer(alert("inc-amunisi-a"), hook, T0)
    [message] = grouper.due(T0)
    pending = message.to_record()
    assert pending["alerts"][0]["top_articles"] and pending["alerts"][0]["kibana_url"]  # kept to resend
    message.state = "delivered"
    settled = json.loads(codec.encode(message.to_record())[0])  # still a valid log record
    assert settled["alerts"][0]["top_articles"] == [] and "kibana_url" not in settled["alerts"][0]
    assert message.alerts[0]["top_articles"]  # the notification itself is untouched
    after = Grouper(Policy(group_wait_s=0))
    after.restore(Notification.from_record(settled))
    assert after.offer(alert("inc-amunisi-a"), hook, T0 + 10) == "duplicate"
    assert after.offer(alert("inc-amunisi-a", state="firing"), hook, T0 + 10) == "duplicate"


def test_the_hourly_cap_holds_messages_back_and_drops_nothing(hook):
    grouper = Grouper(Policy(group_wait_s=0, group_interval_s=0, hourly_cap=3))
    sent = []
    for n in range(5):
        grouper.offer(alert(f"inc-{n}"), hook, T0 + n)
        sent += grouper.due(T0 + n)
    assert len(sent) == 3 and grouper.pending_alerts() == 2
    assert grouper.next_due_at() == T0 + 3600  # the loop sleeps until then, it does not spin
    assert grouper.due(T0 + 3599) == []
    [late] = grouper.due(T0 + 3600.5)  # the first slot frees: both held alerts in one message
    assert late.alert_ids == ["inc-3:1", "inc-4:1"]


def test_webhook_is_signed_the_standard_webhooks_way_and_keeps_its_id_on_retry(hook):
    grouper = Grouper(Policy(group_wait_s=0))
    grouper.offer(alert(), hook, T0)
    [message] = grouper.due(T0)
    body = webhook_body(message)
    now = time.time()
    first, retry = webhook_headers(message, body, now), webhook_headers(message, body, now + 65)
    assert first["webhook-id"] == retry["webhook-id"] == message.id
    assert first["webhook-timestamp"] != retry["webhook-timestamp"]
    receiver = Webhook(SECRET)
    payload = receiver.verify(body, first)
    assert payload["type"] == "pantau.alerts" and payload["data"]["alerts"][0]["id"] == "inc-amunisi-1:1"
    with pytest.raises(WebhookVerificationError):
        receiver.verify(body.replace(b"amunisi", b"amunisX"), first)  # a changed body fails
    with pytest.raises(WebhookVerificationError):
        Webhook(fresh_secret()).verify(body, first)  # another subscriber's secret fails


def test_chat_formats_get_a_text_body():
    target = targets_of(SUB)[1]
    message = Notification("msg_x", target, [alert()], T0)
    text = json.loads(webhook_body(message))["text"]
    assert text.startswith("Spike: amunisi <b> — 12 stories from 9 sources")
    assert "webhook-signature" not in webhook_headers(message, webhook_body(message), T0)  # no secret, no signature


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, Outcome.DELIVERED), (204, Outcome.DELIVERED), (410, Outcome.DISABLED), (301, Outcome.RETRY),
     (308, Outcome.RETRY), (400, Outcome.RETRY), (429, Outcome.RETRY), (500, Outcome.RETRY), (503, Outcome.RETRY)],
)  # fmt: skip
def test_replies_are_classified_as_standard_webhooks_says(status, outcome):
    assert classify_http(status) is outcome


def test_failures_back_off_with_jitter_for_days_then_give_up(hook):
    policy = Policy()
    message = Notification("msg_x", hook, [alert()], T0, next_at=T0)
    rng = random.Random(3)
    now = T0
    while message.state == "pending":
        after_failure(message, policy, now, rng)
        if message.state == "pending":
            ceiling = policy.retry.ceiling(message.attempts - 1)
            assert now + 1 <= message.next_at <= now + max(1.0, ceiling)
            now = message.next_at
    assert message.state == "failed"
    assert policy.give_up_after_s <= now - T0 < policy.give_up_after_s + policy.retry.maximum_s
    assert message.attempts > 10


def test_email_has_text_html_and_the_notification_id_in_its_message_id(hook):
    email_target = targets_of(SUB)[2]
    message = Notification("msg_abc", email_target, [alert("inc-a"), alert("inc-b")], T0)
    mail = email_message(message, "pantau@example.org")
    assert mail["Message-ID"] == "<msg_abc@pantau.notifier>"
    assert mail["To"] == "desk@example.org" and mail["Subject"].endswith("(+1 more)")
    text = mail.get_body(("plain",)).get_content()
    html_part = mail.get_body(("html",)).get_content()
    assert "Gudang amunisi <meledak> https://news.example/a1" in text and "inc-b:1" in text
    assert "&lt;meledak&gt;" in html_part and "<meledak>" not in html_part  # escaped
