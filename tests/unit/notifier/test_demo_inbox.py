"""The demo inbox `make run` delivers to: it takes only deliveries signed with the subscription's
secret, and the compose copy of the demo subscriptions differs from the local one only by host."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import yaml
from aiohttp.test_utils import TestClient, TestServer

from pantau.alerter.subscriptions import fresh_secret, load
from pantau.common.codec import Codec
from pantau.demo.inbox import secrets_by_path, webhook_app
from pantau.notifier.core import Notification, targets_of, webhook_body, webhook_headers

REPO = Path(__file__).resolve().parents[3]
SUB = {"id": "desk-a", "owner": "desk", "query": "amunisi", "modes": ["spike"],
       "channels": {"webhooks": [{"url": "http://127.0.0.1:8809/hooks/desk-a", "secret": fresh_secret()}]}}  # fmt: skip
ALERT = {"id": "inc-1:1", "incident_id": "inc-1", "revision": 1, "kind": "spike", "state": "firing",
         "watch": {"type": "query", "key": "query:amunisi", "label": "amunisi"}, "detected_at": "2026-11-26T00:00:00Z",
         "observed": {"stories": 9, "sources": 6}, "top_articles": []}  # fmt: skip


def post_all(tmp_path, requests):
    async def go():
        async with TestClient(TestServer(webhook_app(secrets_by_path([SUB]), tmp_path))) as client:
            return [(await client.post(path, data=body, headers=headers)).status for path, body, headers in requests]

    return asyncio.run(go())


def test_signed_deliveries_are_taken_and_others_refused(tmp_path):
    message = Notification("msg_" + "a" * 32, targets_of(SUB)[0], [ALERT], 1.0)
    body = webhook_body(message)
    good = webhook_headers(message, body, time.time())
    forged = {**good, "webhook-signature": "v1,AAAA"}
    statuses = post_all(tmp_path, [("/hooks/desk-a", body, good), ("/hooks/desk-a", body, forged),
                                   ("/hooks/nobody", body, good)])  # fmt: skip
    assert statuses == [204, 401, 404]
    assert [p.name for p in tmp_path.iterdir()] == [f"{message.id}.json"]


def test_compose_subscriptions_differ_from_the_local_ones_only_by_the_inbox_host(contracts):
    codec = Codec.for_topic(contracts, "subscriptions")
    local = load(REPO / "deploy/subscriptions", codec)
    compose = load(REPO / "deploy/subscriptions-compose", codec)
    as_text = yaml.safe_dump(local).replace("http://127.0.0.1:8809/", "http://demo-inbox:8809/")
    assert as_text == yaml.safe_dump(compose)
    assert "http://demo-inbox:8809/hooks/demo-amunisi-spikes" in as_text
