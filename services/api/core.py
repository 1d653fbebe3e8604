"""The subscriber API's decisions. Pure: no HTTP, no Kafka, no Elasticsearch; time and randomness
are passed in or made here without I/O.

API keys are `pk_<key id>_<secret>`. Only the SHA-256 of the whole key is kept (keys file): a key is
32 random bytes, so a fast hash is as safe as a password hash would be for a password, and every
request can afford it (GitHub stores its tokens the same way). The key id finds the record without
a scan, and the digest is compared in constant time.

A subscription belongs to the owner of the key that created it; every other key is told it does not
exist (404), not that it is forbidden, so ids of other desks cannot be probed."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pantau.alerter.subscriptions import fresh_secret, slug

KEY_PATTERN = re.compile(r"pk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{2,127}$"
Mode = Literal["realtime", "spike", "digest_hourly", "digest_daily"]


# ---- keys ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiKey:
    id: str
    owner: str
    sha256: str
    rate_limit: str | None = None  # e.g. "600/minute"; the service default when None
    disabled: bool = False

    def to_record(self, now: datetime) -> dict[str, Any]:
        out = {"id": self.id, "owner": self.owner, "sha256": self.sha256, "created_at": iso(now)}
        if self.rate_limit:
            out["rate_limit"] = self.rate_limit
        return out


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_key(owner: str) -> tuple[str, ApiKey]:
    """A fresh key (shown once, never stored) and the record that stores its hash."""
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    token = f"pk_{key_id}_{secret}"
    return token, ApiKey(key_id, owner, digest(token))


class KeysFileError(ValueError):
    """The keys file is unusable; the message names the entry."""


class KeyRing:
    """The known keys, by key id."""

    def __init__(self, keys: list[ApiKey]):
        self.by_id = {key.id: key for key in keys}

    @classmethod
    def from_records(cls, records: Any) -> KeyRing:
        if records is None:
            return cls([])
        if not isinstance(records, list):
            raise KeysFileError("the keys file is a list of {id, owner, sha256}")
        keys, seen = [], set()
        for n, rec in enumerate(records):
            if not isinstance(rec, dict) or not {"id", "owner", "sha256"} <= set(rec):
                raise KeysFileError(f"entry {n}: needs id, owner and sha256")
            well_formed = re.fullmatch(r"[0-9a-f]{12}", str(rec["id"])) and re.fullmatch(
                r"[0-9a-f]{64}", str(rec["sha256"])
            )
            if not well_formed:
                raise KeysFileError(f"entry {n}: id is 12 hex digits and sha256 64 (make them with `pantau api key`)")
            if rec["id"] in seen:
                raise KeysFileError(f"entry {n}: key id {rec['id']} appears twice")
            seen.add(rec["id"])
            keys.append(ApiKey(rec["id"], str(rec["owner"]), rec["sha256"], rec.get("rate_limit"),
                               bool(rec.get("disabled", False))))  # fmt: skip
        return cls(keys)

    def lookup(self, token: str | None) -> ApiKey | None:
        """The key a presented token is, or None (unknown, malformed, wrong secret, disabled)."""
        match = KEY_PATTERN.fullmatch(token or "")
        key = self.by_id.get(match.group(1)) if match else None
        if key is None or key.disabled:
            return None
        return key if hmac.compare_digest(key.sha256, digest(token)) else None


# ---- request bodies (the OpenAPI spec is made from these) ---------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Webhook(_Body):
    url: str = Field(max_length=2048, pattern=r"^https?://", description="Where to POST (Standard Webhooks).")
    secret: str | None = Field(
        None, min_length=16, max_length=256, description="Signing secret (whsec_ + base64); made for you when absent."
    )
    format: Literal["standard", "slack", "telegram"] = "standard"


class Channels(_Body):
    webhooks: list[Webhook] = Field(default_factory=list, max_length=10)
    emails: list[str] = Field(default_factory=list, max_length=20)


class Sensitivity(_Body):
    preset: Literal["low", "normal", "high"] | None = None
    min_stories: int | None = Field(None, ge=1, le=1_000_000)
    min_sources: int | None = Field(None, ge=1, le=1_000_000)
    threshold: float | None = Field(None, ge=0, le=1e6)


class SubscriptionCreate(_Body):
    id: str | None = Field(None, pattern=ID_PATTERN, description="Chosen id; made from the name or query when absent.")
    name: str | None = Field(None, max_length=300)
    query: str = Field(min_length=1, max_length=4000, description='Terms, "phrases", AND/OR/NOT, NEAR/n, filters.')
    modes: list[Mode] = Field(default_factory=lambda: ["spike"], min_length=1, max_length=4)
    channels: Channels = Field(default_factory=Channels)
    sensitivity: Sensitivity | None = None
    muted_until: datetime | None = None


class SubscriptionPatch(_Body):
    """The fields to change; absent fields stay as they are."""

    name: str | None = Field(None, max_length=300)
    query: str | None = Field(None, min_length=1, max_length=4000)
    modes: list[Mode] | None = Field(None, min_length=1, max_length=4)
    channels: Channels | None = None
    sensitivity: Sensitivity | None = None
    muted_until: datetime | None = None


class Mute(_Body):
    """Mute for `minutes`, or until `until`; exactly one."""

    minutes: int | None = Field(None, ge=1, le=366 * 24 * 60)
    until: datetime | None = None


class QueryTest(_Body):
    query: str = Field(min_length=1, max_length=4000)
    hours: int = Field(24, ge=1, le=31 * 24, description="How far back to look (by first seen).")
    size: int = Field(10, ge=0, le=50, description="Articles to return (newest first).")


# ---- building subscriptions ---------------------------------------------------------------------


class BadRequest(ValueError):
    """Input the API refuses (422), with every problem listed."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _aware(moment: datetime, field: str) -> datetime:
    if moment.tzinfo is None:
        raise BadRequest([f"{field}: give a time zone (e.g. 2026-11-27T09:00:00Z)"])
    return moment


def _channels(channels: Channels) -> dict[str, Any]:
    hooks = [{"url": h.url, "secret": h.secret or fresh_secret(), "format": h.format} for h in channels.webhooks]
    return {"webhooks": hooks, "emails": list(channels.emails)}


def _sensitivity(sensitivity: Sensitivity | None) -> dict[str, Any]:
    if sensitivity is None:
        return {"preset": "normal"}
    return sensitivity.model_dump(exclude_none=True)


def new_subscription(owner: str, body: SubscriptionCreate, now: datetime, taken: set[str]) -> dict[str, Any]:
    """The subscription a create request describes, owned by the caller. Without a chosen id, one is
    made from the name or query and suffixed until free."""
    sub_id = body.id
    if sub_id is None:
        base = slug(body.name or body.query)[:100].strip("-")
        base = base if len(base) >= 3 else f"sub-{base}".strip("-")
        sub_id = base if base not in taken else f"{base}-{secrets.token_hex(3)}"
    sub = {
        "id": sub_id,
        "owner": owner,
        "name": body.name or body.query[:300],
        "query": body.query,
        "modes": list(dict.fromkeys(body.modes)),
        "channels": _channels(body.channels),
        "sensitivity": _sensitivity(body.sensitivity),
        "muted_until": iso(_aware(body.muted_until, "muted_until")) if body.muted_until else None,
        "created_at": iso(now),
        "updated_at": iso(now),
    }
    return sub


def patched(current: dict[str, Any], patch: SubscriptionPatch, now: datetime) -> dict[str, Any]:
    """`current` with the fields the patch sets (explicit nulls clear muted_until and sensitivity).
    Webhooks given without a secret keep the secret they had for the same URL."""
    fields = patch.model_fields_set
    sub = dict(current)
    for name in ("name", "query"):
        if name in fields:
            if getattr(patch, name) is None:
                raise BadRequest([f"{name}: may not be null"])
            sub[name] = getattr(patch, name)
    if "modes" in fields:
        if patch.modes is None:
            raise BadRequest(["modes: may not be null"])
        sub["modes"] = list(dict.fromkeys(patch.modes))
    if "channels" in fields:
        old = {h["url"]: h.get("secret") for h in (current.get("channels") or {}).get("webhooks") or []}
        channels = patch.channels or Channels()
        kept = Channels(webhooks=[h if h.secret else Webhook(url=h.url, secret=old.get(h.url), format=h.format)
                                  for h in channels.webhooks], emails=channels.emails)  # fmt: skip
        sub["channels"] = _channels(kept)
    if "sensitivity" in fields:
        sub["sensitivity"] = _sensitivity(patch.sensitivity)
    if "muted_until" in fields:
        sub["muted_until"] = iso(_aware(patch.muted_until, "muted_until")) if patch.muted_until else None
    sub["updated_at"] = iso(now)
    return sub


def muted(current: dict[str, Any], mute: Mute, now: datetime) -> dict[str, Any]:
    if (mute.minutes is None) == (mute.until is None):
        raise BadRequest(["give exactly one of minutes and until"])
    until = now + timedelta(minutes=mute.minutes) if mute.minutes else _aware(mute.until, "until")
    if until <= now:
        raise BadRequest([f"until: {iso(until)} is not in the future"])
    return {**current, "muted_until": iso(until), "updated_at": iso(now)}


def unmuted(current: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {**current, "muted_until": None, "updated_at": iso(now)}


# ---- searches (bodies for the read-only Elasticsearch user) -------------------------------------

ARTICLE_FIELDS = ["id", "title", "url", "source_id", "source_name", "language", "published_at", "first_seen_at"]
ALERT_FIELDS = ["id", "incident_id", "revision", "kind", "state", "label", "query", "subscription_ids",
                "detected_at", "observed_stories", "observed_sources", "score", "top_article_titles",
                "kibana_url"]  # fmt: skip


def articles_search(es_query: dict[str, Any], since: datetime, size: int) -> dict[str, Any]:
    """Articles a parsed query selects, first seen since `since`, newest first, with the total."""
    return {
        "query": {"bool": {"filter": [es_query, {"range": {"first_seen_at": {"gte": iso(since)}}}]}},
        "sort": [{"first_seen_at": "desc"}],
        "size": size,
        "track_total_hits": True,
        "_source": ARTICLE_FIELDS,
    }


def alerts_search(subscription_ids: list[str], since: datetime | None, size: int) -> dict[str, Any]:
    """Alerts told to any of `subscription_ids` (the caller's own), newest first."""
    filters: list[dict[str, Any]] = [{"terms": {"subscription_ids": subscription_ids}}]
    if since is not None:
        filters.append({"range": {"detected_at": {"gte": iso(since)}}})
    # One hit per incident: its latest revision (collapse keeps the first by the sort).
    return {"query": {"bool": {"filter": filters}}, "sort": [{"detected_at": "desc"}, {"revision": "desc"}],
            "collapse": {"field": "incident_id"}, "size": size, "_source": ALERT_FIELDS}  # fmt: skip
