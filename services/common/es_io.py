"""Elasticsearch adapter: the client as every service builds it, and `apply_templates` for
`pantau es apply`. Each service connects as its own least-privilege file-realm user."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from elasticsearch import Elasticsearch, NotFoundError

from pantau.common.errors import TransientError
from pantau.common.indices import INDEX_KINDS, expired_indices, monthly_index, render_templates
from pantau.common.settings import ElasticsearchSettings

log = logging.getLogger(__name__)


def make_client(settings: ElasticsearchSettings, **overrides) -> Elasticsearch:
    config = {
        "basic_auth": (settings.username, settings.password.get_secret_value()),
        "request_timeout": settings.request_timeout_s,
        "retry_on_timeout": False,
        "max_retries": 0,  # callers own retries (transient vs permanent is theirs to judge)
    }
    config.update(overrides)
    return Elasticsearch(settings.url, **config)


def server_version(client: Elasticsearch) -> str:
    """The server's version from the local node's info (this distribution has no `GET /`)."""
    nodes = client.nodes.info(node_id="_local", filter_path="nodes.*.version")["nodes"]
    return next(iter(nodes.values()))["version"]


def reachable(client: Elasticsearch) -> bool:
    try:
        return client.cluster.health(timeout="2s").get("status") in ("yellow", "green")
    except Exception:
        return False


def apply_templates(client: Elasticsearch, es_dir, prefix: str, now: datetime | None = None) -> list[str]:
    """Install component and index templates and create this month's indices (so the read aliases
    exist before the first document). Idempotent; returns what changed (empty when nothing did)."""
    changed = []
    for tpl in render_templates(es_dir, prefix):
        get, put, plural = (
            (
                client.cluster.get_component_template,
                client.cluster.put_component_template,
                "component_templates",
            )
            if tpl.kind == "component"
            else (client.indices.get_index_template, client.indices.put_index_template, "index_templates")
        )
        try:
            current = get(name=tpl.name)[plural][0][plural.removesuffix("s")]
        except NotFoundError:
            current = None
        if not _matches(current, tpl.body):
            put(name=tpl.name, **tpl.body)
            changed.append(f"{tpl.kind} template {tpl.name}")
    month = now or datetime.now(UTC)
    for kind in INDEX_KINDS:
        index = monthly_index(prefix, kind, month)
        if not client.indices.exists(index=index):
            client.indices.create(index=index)
            changed.append(f"index {index}")
    for line in changed:
        log.info("es apply: %s", line)
    return changed


def _normalised(value):
    # The server echoes settings back as strings ("1" for 1, "true" for True).
    if isinstance(value, dict):
        return {k: _normalised(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _matches(current: dict | None, wanted: dict) -> bool:
    """True when every top-level part we set is already there (the server may add defaults)."""
    if current is None:
        return False
    return all(_normalised(current.get(k)) == _normalised(v) for k, v in wanted.items())


def apply_retention(client: Elasticsearch, prefix: str, keep_months: int, now: datetime | None = None,
                    dry_run: bool = False) -> list[str]:  # fmt: skip
    """Delete the monthly indices older than `keep_months` (see indices.expired_indices); returns them.
    Needs the admin user (the indexer may not delete indices)."""
    names = list(
        client.indices.get(
            index=f"{prefix}-*", expand_wildcards="open,closed", filter_path="*.settings.index.provided_name"
        )
    )
    expired = expired_indices(names, prefix, now or datetime.now(UTC), keep_months)
    if expired and not dry_run:
        for (
            name
        ) in expired:  # one at a time: a wildcard or list delete may be refused by action.destructive_requires_name
            client.indices.delete(index=name)
            log.info("retention: deleted %s", name)
    return expired


class ElasticsearchSearch:
    """Searches over a read alias (`<prefix>-articles`, `<prefix>-alerts`) for the subscriber API and
    the digests; an unreachable or overloaded server is a TransientError."""

    def __init__(self, client, prefix: str):
        self.client, self.prefix = client, prefix

    def search(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        from elastic_transport import ConnectionError, ConnectionTimeout
        from elasticsearch import ApiError

        try:
            # No index yet (nothing indexed) is an empty answer, not an error.
            return self.client.search(index=f"{self.prefix}-{kind}", ignore_unavailable=True, allow_no_indices=True,
                                      **body).body  # fmt: skip
        except (ConnectionError, ConnectionTimeout) as exc:
            raise TransientError(f"Elasticsearch is not reachable: {exc}") from exc
        except ApiError as exc:
            if exc.status_code in (429, 502, 503, 504):
                raise TransientError(f"Elasticsearch answered {exc.status_code}") from exc
            raise
