"""The notifier's decisions: who is told what, when, in which words, and what a reply means. Pure: no
Kafka, no HTTP, no SMTP; time is passed in.

A *target* is one channel of one subscription (a webhook URL or an email address). Alerts addressed
to a subscription (`subscription_ids`, filled by the alerter) are offered to each of its targets and
grouped the way Alertmanager groups them: the first alert opens a group that waits `group_wait`
so that related alerts go in one message; after a message, the next one to the same target waits at
least `group_interval`; an incident already told within `repeat_interval` is told again only when its
state changes (firing → resolved), not at every growth; a subscriber gets at most `hourly_cap`
messages an hour, and what is held back waits (grouped) for the next free slot, never dropped.

A *notification* is one message to one target. Its id is the Standard Webhooks `webhook-id` and the
email's Message-ID: the same on every retry, so a receiver can drop a repeat. The shell writes each
notification to the delivery log (a compacted topic) before it sends anything, and its outcome after;
`Ledger` rebuilt from that log is what keeps a subscriber from being told the same alert revision
twice across restarts."""

from __future__ import annotations

import hashlib
import html
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from enum import Enum
from functools import cached_property, lru_cache
from typing import Any

import orjson
from standardwebhooks.webhooks import Webhook

from pantau.common.backoff import Backoff

PAYLOAD_TYPE = "pantau.alerts"


@dataclass(frozen=True)
class Target:
    subscription_id: str
    owner: str
    channel: str  # "webhook" | "email"
    address: str  # URL or email address
    secret: str | None = None
    format: str = "standard"  # webhooks: standard | slack | telegram

    @cached_property  # asked once per alert and per send: a hash each time added up
    def key(self) -> str:
        digest = hashlib.sha256(f"{self.channel}\n{self.address}".encode()).hexdigest()[:16]
        return f"{self.subscription_id}:{self.channel}:{digest}"


def targets_of(subscription: dict[str, Any]) -> list[Target]:
    channels = subscription.get("channels") or {}
    owner = subscription.get("owner", "")
    sub_id = subscription["id"]
    out = [Target(sub_id, owner, "webhook", hook["url"], hook.get("secret"), hook.get("format") or "standard")
           for hook in channels.get("webhooks") or []]  # fmt: skip
    out += [Target(sub_id, owner, "email", address) for address in channels.get("emails") or []]
    return out


@dataclass(frozen=True)
class Policy:
    group_wait_s: float = 0.5
    group_interval_s: float = 300.0
    repeat_interval_s: float = 4 * 3600.0
    match_group_wait_s: float = 2.0
    hourly_cap: int = 20
    retry: Backoff = field(default_factory=lambda: Backoff(5.0, 6 * 3600.0))
    give_up_after_s: float = 3 * 86400.0  # retried for days, then failed (counted, logged)


@dataclass
class Notification:
    id: str
    target: Target
    alerts: list[dict[str, Any]]
    created_at: float
    attempts: int = 0
    next_at: float = 0.0
    state: str = "pending"  # pending | delivered | failed | disabled | refused | cancelled
    last_error: str | None = None
    delivered_at: float | None = None

    @property
    def alert_ids(self) -> list[str]:
        return [a["id"] for a in self.alerts]

    def to_record(self) -> dict[str, Any]:
        """What the delivery log keeps (key: the notification id). Not the secret: it is read from the
        subscription at each attempt, so a rotated secret signs the retries. Once settled, the alerts
        are kept without their articles: a restart needs only what was told (ids, incidents, states),
        and a thousand subscribers of one alert would otherwise log its articles a thousand times more."""
        alerts = self.alerts if self.state == "pending" else [_settled(a) for a in self.alerts]
        return {"kind": "notification", "id": self.id, "target": target_record(self.target), "alerts": alerts,
                "created_at": self.created_at, "attempts": self.attempts, "next_at": self.next_at,
                "state": self.state, "last_error": self.last_error, "delivered_at": self.delivered_at}  # fmt: skip

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Notification:
        return cls(record["id"], Target(**record["target"]), record["alerts"], record["created_at"],
                   record["attempts"], record["next_at"], record["state"], record.get("last_error"),
                   record.get("delivered_at"))  # fmt: skip


_SETTLED_FIELDS = ("id", "incident_id", "revision", "kind", "state", "watch", "detected_at", "observed")


def _settled(alert: dict[str, Any]) -> dict[str, Any]:
    """An alert as a settled notification keeps it: still a valid alert, without its articles."""
    return {**{k: alert[k] for k in _SETTLED_FIELDS if k in alert}, "top_articles": []}


def target_record(target: Target) -> dict[str, Any]:
    out = {"subscription_id": target.subscription_id, "owner": target.owner, "channel": target.channel,
           "address": target.address}  # fmt: skip
    if target.channel == "webhook":
        out["format"] = target.format
    return out


def notification_id(target: Target, alert_ids: Iterable[str]) -> str:
    digest = hashlib.sha256("\n".join([target.key, *sorted(alert_ids)]).encode()).hexdigest()
    return f"msg_{digest[:32]}"


@dataclass
class _Group:
    alerts: dict[str, dict[str, Any]]  # alert id -> alert, in arrival order
    opened_at: float
    wait_s: float


class Grouper:
    """Per target: the alerts waiting to be sent, and what was told when. `offer` alerts, take the
    `due` notifications; `restore` from the delivery log after a restart."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.groups: dict[str, _Group] = {}
        self.targets: dict[str, Target] = {}
        self.told: dict[str, set[str]] = {}  # target key -> alert ids ever put in a notification
        self.last_sent: dict[str, float] = {}  # target key -> when its last notification was made
        self.incident_told: dict[tuple[str, str], tuple[float, str]] = {}  # (target, incident) -> (when, state)
        # subscriber (owner) -> times of their latest notifications, at most hourly_cap of them
        self.sent_by_owner: dict[str, list[float]] = {}
        # No group is ready before this: `due`, called at every loop turn, returns at once until then
        # (a thousand groups waiting out their group wait were a thousand checks a turn).
        self._none_ready_before = float("inf")

    def restore(self, notification: Notification) -> None:
        key = notification.target.key
        self.told.setdefault(key, set()).update(notification.alert_ids)
        self.last_sent[key] = max(self.last_sent.get(key, 0.0), notification.created_at)
        for alert in notification.alerts:
            self._remember_incident(key, alert, notification.created_at)
        owner = notification.target.owner
        # Only the cap-th latest decides when the owner may be told again (see _ready_at).
        self.sent_by_owner[owner] = sorted([*self.sent_by_owner.get(owner, []), notification.created_at])[
            -self.policy.hourly_cap :
        ]

    def offer(self, alert: dict[str, Any], target: Target, now: float) -> str:
        """Queue `alert` for `target`; returns why it was not queued, or "queued"."""
        key = target.key
        if alert["id"] in self.told.get(key, ()) or alert["id"] in (self.groups.get(key) or _EMPTY).alerts:
            return "duplicate"
        told = self.incident_told.get((key, alert["incident_id"]))
        if told is not None:
            when, state = told
            if state == alert["state"] and now - when < self.policy.repeat_interval_s:
                self.told.setdefault(key, set()).add(alert["id"])
                return "repeat"
        wait = self.policy.match_group_wait_s if alert.get("kind") == "match" else self.policy.group_wait_s
        group = self.groups.get(key)
        if group is None:
            self.groups[key] = group = _Group({}, now, wait)
        group.wait_s = min(group.wait_s, wait)
        group.alerts[alert["id"]] = alert
        self.targets[key] = target
        self._none_ready_before = min(self._none_ready_before, self._ready_at(key, group))
        return "queued"

    def due(self, now: float) -> list[Notification]:
        if now < self._none_ready_before:
            return []
        out = []
        earliest = float("inf")
        for key, group in list(self.groups.items()):
            target = self.targets[key]
            ready_at = self._ready_at(key, group)
            if now < ready_at:
                earliest = min(earliest, ready_at)
                continue
            del self.groups[key]
            latest: dict[str, dict[str, Any]] = {}  # one line per incident: its newest revision
            for alert in group.alerts.values():
                if alert["revision"] >= latest.get(alert["incident_id"], {"revision": 0})["revision"]:
                    latest[alert["incident_id"]] = alert
            alerts = list(latest.values())
            notification = Notification(notification_id(target, [a["id"] for a in alerts]), target, alerts, now,
                                        next_at=now)  # fmt: skip
            self.restore(notification)
            self.told[key].update(group.alerts)  # the older revisions folded in count as told
            out.append(notification)
        self._none_ready_before = earliest
        return out

    def next_due_at(self) -> float | None:
        """Earliest moment a group may become due (for the shell's sleep)."""
        return min((self._ready_at(k, g) for k, g in self.groups.items()), default=None)

    def _ready_at(self, key: str, group: _Group) -> float:
        """The group wait is over, the group interval since the target's last message too, and the
        owner is under the hourly cap: an hour after the cap-th latest of their notifications."""
        told = self.sent_by_owner.get(self.targets[key].owner, [])
        cap_frees_at = told[-self.policy.hourly_cap] + 3600.0 if len(told) >= self.policy.hourly_cap else -1e18
        return max(group.opened_at + group.wait_s, self.last_sent.get(key, -1e18) + self.policy.group_interval_s,
                   cap_frees_at)  # fmt: skip

    def pending_alerts(self) -> int:
        return sum(len(g.alerts) for g in self.groups.values())

    def _remember_incident(self, key: str, alert: dict[str, Any], when: float) -> None:
        self.incident_told[(key, alert["incident_id"])] = (when, alert["state"])


_EMPTY = _Group({}, 0.0, 0.0)


# ---------------------------------------------------------------- outcomes


class Outcome(Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    DISABLED = "disabled"  # 410 Gone: the endpoint asked to be forgotten
    REFUSED = "refused"  # the egress guard: a private or metadata address, never tried


def classify_http(status: int) -> Outcome:
    """Standard Webhooks: any 2xx is success; 410 disables the endpoint; everything else (3xx
    included: redirects are not followed) is a failed attempt, retried."""
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status == 410:
        return Outcome.DISABLED
    return Outcome.RETRY


def after_failure(notification: Notification, policy: Policy, now: float, rng: random.Random | None = None) -> str:
    """Schedule the next attempt (capped exponential backoff, full jitter, at least 1 s), or give up
    once the notification is older than `give_up_after_s`. Returns the new state."""
    notification.attempts += 1
    if now - notification.created_at >= policy.give_up_after_s:
        notification.state = "failed"
    else:
        notification.next_at = now + max(1.0, policy.retry.delay(notification.attempts - 1, rng))
    return notification.state


# ---------------------------------------------------------------- messages


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def summary_line(alert: dict[str, Any]) -> str:
    label = alert["watch"].get("label") or alert["watch"]["key"]
    observed = alert.get("observed") or {}
    if alert["kind"] == "match":
        return f"New article: {label}"
    if alert["kind"] == "digest":
        window = alert.get("window") or {}
        span = "Daily" if window.get("seconds", 0) > 3 * 3600 else "Hourly"
        return (
            f"{span} digest: {label} — {observed.get('articles', 0)} articles, {observed.get('stories', 0)} "
            f"stories from {observed.get('sources', 0)} sources ({window.get('start')} to {window.get('end')})"
        )
    if alert["state"] == "resolved":
        return f"Resolved: {label}"
    verb = "Spike" if alert["state"] == "firing" else "Spike growing"
    return f"{verb}: {label} — {observed.get('stories', 0)} stories from {observed.get('sources', 0)} sources"


def webhook_body(notification: Notification) -> bytes:
    target = notification.target
    if target.format in ("slack", "telegram"):
        lines = [summary_line(a) for a in notification.alerts]
        for alert in notification.alerts:
            if alert.get("kibana_url"):
                lines.append(alert["kibana_url"])
        return orjson.dumps({"text": "\n".join(lines)})
    payload = {
        "type": PAYLOAD_TYPE,
        "timestamp": _iso(notification.created_at),
        "data": {"subscription_id": target.subscription_id, "notification_id": notification.id,
                 "alerts": notification.alerts},
    }  # fmt: skip
    return orjson.dumps(payload)  # compact UTF-8; a thousand subscribers: orjson, not json


@lru_cache(maxsize=8192)
def _signer(secret: str) -> Webhook:
    return Webhook(secret)  # decodes the secret: once per secret, not per message


def webhook_headers(notification: Notification, body: bytes, now: float) -> dict[str, str]:
    """Standard Webhooks headers: the id is the notification's (the same on every retry), the
    timestamp this attempt's, the signature HMAC-SHA256 over `id.timestamp.body` with the secret."""
    timestamp = int(now)
    headers = {
        "content-type": "application/json",
        "user-agent": "Pantau-Notifier/1 (+https://pantau.dev)",
        "webhook-id": notification.id,
        "webhook-timestamp": str(timestamp),
    }
    if notification.target.secret:
        moment = datetime.fromtimestamp(timestamp, UTC)
        headers["webhook-signature"] = _signer(notification.target.secret).sign(notification.id, moment, body.decode())
    return headers


def email_message(notification: Notification, sender: str) -> EmailMessage:
    """Text and HTML; the Message-ID carries the notification id, so a resent copy is the same mail."""
    alerts = notification.alerts
    msg = EmailMessage()
    first = summary_line(alerts[0])
    msg["Subject"] = first if len(alerts) == 1 else f"{first} (+{len(alerts) - 1} more)"
    msg["From"] = sender
    msg["To"] = notification.target.address
    msg["Date"] = format_datetime(datetime.fromtimestamp(notification.created_at, UTC))
    msg["Message-ID"] = f"<{notification.id}@pantau.notifier>"
    msg["X-Pantau-Alert-Ids"] = ", ".join(notification.alert_ids)
    text, rows = [], []
    for alert in alerts:
        text.append(summary_line(alert))
        rows.append(f"<h3>{html.escape(summary_line(alert))}</h3>")
        for article in alert.get("top_articles") or []:
            title, url = article.get("title") or article.get("id", ""), article.get("url") or ""
            text.append(f"  - {title} {url}".rstrip())
            rows.append(f'<li><a href="{html.escape(url, quote=True)}">{html.escape(title)}</a></li>')
        if alert.get("kibana_url"):
            text.append(f"  Kibana: {alert['kibana_url']}")
            rows.append(f'<p><a href="{html.escape(alert["kibana_url"], quote=True)}">Open in Kibana</a></p>')
        text.append(f"  alert {alert['id']}")
        text.append("")
    msg.set_content("\n".join(text))
    msg.add_alternative("<html><body>" + "\n".join(rows) + "</body></html>", subtype="html")
    return msg
