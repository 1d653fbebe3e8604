"""Subscriptions as files under version control (rules as code). Pure: read, validate, build.

A subscription file is YAML or JSON holding one subscription (schemas/json/subscription.v1.schema.json)
or a list of them. Loading checks everything before anything is published: the schema, the query
(parsed and costed), the webhook URLs (the egress guard), unique ids across the folder. Every error
names the file, the subscription and the field, and all errors are reported at once."""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from pantau.alerter.query import QueryError, parse_query
from pantau.common.codec import Codec
from pantau.common.errors import InvalidMessage
from pantau.crawler.guard import parse_ip_literal, refusal

SUFFIXES = (".yaml", ".yml", ".json")


class _TextTimestampLoader(yaml.SafeLoader):
    """YAML as the schema sees JSON: an unquoted `muted_until: 2025-12-01T00:00:00Z` stays the text it
    is (the schema checks its format), not a datetime object the validator cannot take."""


_TextTimestampLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class SubscriptionError(ValueError):
    """One or more subscriptions are invalid; the message lists each problem on its own line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Loaded:
    subscription: dict[str, Any]
    origin: str  # file (and index within it)


def check(sub: Any, codec: Codec, origin: str) -> list[str]:
    """Problems with one subscription (empty when valid)."""
    if not isinstance(sub, dict):
        return [f"{origin}: a subscription is a mapping, got {type(sub).__name__}"]
    name = f"{origin} ({sub.get('id', 'no id')})"
    problems = []
    try:
        codec.validate(sub)
    except InvalidMessage as exc:
        problems.append(f"{name}: {exc.field}: {exc.reason}")
    except (TypeError, ValueError, RecursionError) as exc:  # YAML that is not JSON: !!binary, !!set, int keys
        return [f"{name}: not JSON data (strings, numbers, lists and mappings with string keys): {exc}"]
    if isinstance(sub.get("query"), str):
        try:
            parse_query(sub["query"])
        except QueryError as exc:
            problems.append(f"{name}: query: {exc}")
    for n, hook in enumerate((sub.get("channels") or {}).get("webhooks") or []):
        if isinstance(hook, dict) and isinstance(hook.get("url"), str):
            reason = webhook_url_problem(hook["url"])
            if reason:
                problems.append(f"{name}: channels.webhooks[{n}].url: {reason}")
        if isinstance(hook, dict) and isinstance(hook.get("secret"), str):
            reason = webhook_secret_problem(hook["secret"])
            if reason:
                problems.append(f"{name}: channels.webhooks[{n}].secret: {reason}")
    return problems


def fresh_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` and the base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def webhook_secret_problem(secret: str) -> str | None:
    """Standard Webhooks secrets are `whsec_` + base64 of the key: a receiver's library decodes it so."""
    body = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return "must be whsec_ followed by standard base64 (`pantau subscriptions new` makes one)"
    return None if len(key) >= 16 else "the key must be at least 16 bytes (24 recommended)"


def webhook_url_problem(url: str) -> str | None:
    """What is wrong with a webhook URL on its face (the notifier's egress guard checks the address
    it resolves to at send time)."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        return f"not a URL: {exc}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http(s) URL with a host"
    if parts.username or parts.password:
        return "credentials in the URL are not allowed (use the signing secret)"
    return None


def webhook_egress_problems(sub: dict[str, Any], resolve: Callable[[str], list[str]], allow_loopback: bool = False,
                            internal_hosts: Iterable[str] = ()) -> list[str]:  # fmt: skip
    """Webhook hosts refused at registration: a private, link-local (cloud metadata), reserved or —
    without the explicit allowance — loopback address, given as a literal or resolved from the name
    (`resolve`: host -> addresses, OSError when it does not resolve). The notifier checks again at
    send time, because a name can be re-pointed after registration."""
    internal = {h.lower() for h in internal_hosts}
    problems = []
    for n, hook in enumerate((sub.get("channels") or {}).get("webhooks") or []):
        host = urlsplit(hook["url"]).hostname or ""
        if host.lower() in internal:
            continue
        literal = parse_ip_literal(host)
        try:
            addresses = [literal] if literal is not None else resolve(host)
        except OSError as exc:
            problems.append(f"channels.webhooks[{n}].url: {host} does not resolve ({exc.strerror or exc})")
            continue
        if not addresses:
            problems.append(f"channels.webhooks[{n}].url: {host} does not resolve")
        for address in addresses:
            reason = refusal(address, allow_loopback)
            if reason:
                via = "" if literal is not None else f"{host} resolves to "
                problems.append(f"channels.webhooks[{n}].url: {via}{reason}; webhooks may only reach public "
                                "addresses")  # fmt: skip
                break
    return problems


def system_resolve(host: str) -> list[str]:
    """The addresses the system resolver gives for a host (what the notifier will connect to)."""
    return sorted({info[4][0] for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)})


def parse_file(path: Path, codec: Codec) -> tuple[list[Loaded], list[str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [f"{path}: cannot read: {exc}"]
    try:
        doc = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=_TextTimestampLoader)
    except (json.JSONDecodeError, yaml.YAMLError, RecursionError) as exc:
        return [], [f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}"]
    items = doc if isinstance(doc, list) else [doc]
    loaded, problems = [], []
    for n, sub in enumerate(items):
        origin = f"{path}[{n}]" if isinstance(doc, list) else str(path)
        found = check(sub, codec, origin)
        if found:
            problems.extend(found)
        else:
            loaded.append(Loaded(sub, origin))
    return loaded, problems


def load(path: Path, codec: Codec) -> list[dict[str, Any]]:
    """Every subscription in a file or a folder (recursively, sorted by path). Raises
    SubscriptionError listing every problem; nothing is returned unless all are valid."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
        if not files:
            raise SubscriptionError([f"{path}: no subscription files ({', '.join(SUFFIXES)})"])
    elif path.is_file():
        files = [path]
    else:
        raise SubscriptionError([f"{path}: no such file or folder"])
    loaded, problems = [], []
    for file in files:
        found, bad = parse_file(file, codec)
        loaded.extend(found)
        problems.extend(bad)
    first: dict[str, str] = {}
    for item in loaded:
        sub_id = item.subscription["id"]
        if sub_id in first:
            problems.append(f"{item.origin}: id {sub_id!r} is already used by {first[sub_id]}")
        first.setdefault(sub_id, item.origin)
    if problems:
        raise SubscriptionError(problems)
    return [item.subscription for item in loaded]


def slug(text: str) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return "-".join(words)[:60].strip("-") or "watch"


def new_subscription(query: str, owner: str, webhooks: list[str], emails: list[str], modes: list[str],
                     preset: str = "normal", name: str | None = None, secret: str | None = None,
                     sub_id: str | None = None, now: datetime | None = None) -> dict[str, Any]:  # fmt: skip
    """A valid subscription (raises QueryError or SubscriptionError otherwise)."""
    parse_query(query)
    moment = (now or datetime.now(UTC)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    hooks = [{"url": url, "secret": secret or fresh_secret(), "format": "standard"}
             for url in webhooks]  # fmt: skip
    sub = {
        "id": sub_id or f"{slug(owner)}-{slug(query)}"[:120].strip("-"),
        "owner": owner,
        "name": name or query[:300],
        "query": query,
        "modes": modes,
        "channels": {"webhooks": hooks, "emails": emails},
        "sensitivity": {"preset": preset},
        "muted_until": None,
        "created_at": moment,
        "updated_at": moment,
    }
    return sub
