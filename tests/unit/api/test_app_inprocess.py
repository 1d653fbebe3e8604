"""Ring 2: the subscriber API's HTTP behaviour in-process (FastAPI's test client), over an in-memory
store and search standing in for the Kafka and Elasticsearch shells (their real behaviour is
tests/real/test_api_real.py). Webhook hosts resolve through a table: no test queries DNS."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from pantau.api.app import create_app
from pantau.api.core import KeyRing, new_key
from pantau.common.codec import Codec
from pantau.common.errors import TransientError

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
NAMES = {"hooks.example.org": ["93.184.215.14"], "localhost": ["127.0.0.1"]}


def resolve(host: str) -> list[str]:
    if host not in NAMES:
        raise OSError(-2, "Name or service not known")
    return NAMES[host]


class MemoryStore:
    def __init__(self) -> None:
        self.subs: dict[str, dict] = {}
        self.writes: list[tuple[str, dict | None]] = []
        self.down = False

    def get(self, sub_id):
        return self.subs.get(sub_id)

    def all(self):
        return list(self.subs.values())

    def put(self, sub):
        if self.down:
            raise TransientError("broker away")
        self.subs[sub["id"]] = sub
        self.writes.append((sub["id"], sub))

    def delete(self, sub_id):
        self.subs.pop(sub_id, None)
        self.writes.append((sub_id, None))


class RecordingSearch:
    def __init__(self) -> None:
        self.bodies: list[tuple[str, dict]] = []

    def search(self, kind, body):
        self.bodies.append((kind, body))
        return {"hits": {"total": {"value": 0}, "hits": []}}


@pytest.fixture
def world(contracts):
    tokens = {owner: new_key(owner) for owner in ("defence-desk", "economy-desk")}
    ring = KeyRing([key for _, key in tokens.values()])
    store, search = MemoryStore(), RecordingSearch()

    def client(**options):
        app = create_app(lambda: ring, store, search, Codec.for_topic(contracts, "subscriptions"), resolve,
                         now=lambda: NOW, **options)  # fmt: skip
        return TestClient(app, raise_server_exceptions=False)

    auth = {owner: {"Authorization": f"Bearer {token}"} for owner, (token, _) in tokens.items()}
    return client, store, search, auth


SUB = {"query": "amunisi", "channels": {"webhooks": [{"url": "https://hooks.example.org/p"}]}}


def test_no_key_is_401_and_a_wrong_key_too(world):
    client, store, _, _ = world
    api = client()
    missing = api.get("/v1/subscriptions")
    assert missing.status_code == 401 and "Bearer" in missing.json()["detail"]
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = api.get("/v1/subscriptions", headers={"Authorization": "Bearer pk_000000000000_" + "x" * 43})
    assert wrong.status_code == 401 and wrong.json()["detail"] == "unknown API key"
    assert api.post("/v1/subscriptions", json=SUB).status_code == 401 and store.writes == []


def test_another_subscribers_key_gets_404_for_every_operation(world):
    client, store, _, auth = world
    api = client()
    created = api.post("/v1/subscriptions", json=SUB, headers=auth["defence-desk"])
    assert created.status_code == 201, created.text
    sub_id = created.json()["id"]
    assert created.headers["location"] == f"/v1/subscriptions/{sub_id}"
    other = auth["economy-desk"]
    for method, path, body in [("GET", "", None), ("PATCH", "", {"query": "x"}), ("DELETE", "", None),
                               ("POST", "/mute", {"minutes": 5}), ("POST", "/unmute", None)]:  # fmt: skip
        answer = api.request(method, f"/v1/subscriptions/{sub_id}{path}", json=body, headers=other)
        assert answer.status_code == 404, (method, path, answer.text)
    assert api.get("/v1/subscriptions", headers=other).json() == []
    assert api.get("/v1/alerts", params={"subscription_id": sub_id}, headers=other).status_code == 404
    assert store.subs[sub_id]["query"] == "amunisi" and len(store.writes) == 1
    mine = api.get(f"/v1/subscriptions/{sub_id}", headers=auth["defence-desk"])
    assert mine.status_code == 200 and mine.json()["owner"] == "defence-desk"


def test_create_update_mute_delete_write_through_the_store(world):
    client, store, _, auth = world
    api, me = client(), auth["defence-desk"]
    sub_id = api.post("/v1/subscriptions", json={**SUB, "id": "desk-amunisi"}, headers=me).json()["id"]
    assert api.post("/v1/subscriptions", json={**SUB, "id": "desk-amunisi"}, headers=me).status_code == 409
    changed = api.patch(f"/v1/subscriptions/{sub_id}", json={"modes": ["spike", "digest_daily"]}, headers=me)
    assert changed.status_code == 200 and changed.json()["modes"] == ["spike", "digest_daily"]
    assert api.post(f"/v1/subscriptions/{sub_id}/mute", json={"minutes": 60}, headers=me).json()["muted_until"] == (
        "2026-11-27T10:00:00Z")  # fmt: skip
    assert api.post(f"/v1/subscriptions/{sub_id}/unmute", headers=me).json()["muted_until"] is None
    assert api.delete(f"/v1/subscriptions/{sub_id}", headers=me).status_code == 204
    assert api.get(f"/v1/subscriptions/{sub_id}", headers=me).status_code == 404
    assert [value is None for _, value in store.writes] == [False, False, False, False, True]


@pytest.mark.parametrize(("body", "problem"), [
    ({**SUB, "query": "amunisi AND (OR"}, "query:"),
    ({**SUB, "query": "NOT amunisi"}, "query:"),
    ({**SUB, "modes": ["weekly"]}, "body.modes.0"),
    ({**SUB, "colour": "red"}, "body.colour: Extra inputs are not permitted"),
    ({**SUB, "channels": {"emails": ["not-an-address"]}}, "channels"),
    ({**SUB, "channels": {"webhooks": [{"url": "https://hooks.example.org/p", "secret": "x" * 20}]}}, "secret"),
    ({**SUB, "muted_until": "2026-12-01T00:00:00"}, "muted_until: give a time zone"),
])  # fmt: skip
def test_bad_bodies_get_422_saying_what_is_wrong(world, body, problem):
    client, store, _, auth = world
    answer = client().post("/v1/subscriptions", json=body, headers=auth["defence-desk"])
    assert answer.status_code == 422, answer.text
    assert any(problem in p for p in answer.json()["problems"]), answer.json()
    assert store.writes == []


def test_not_json_and_oversized_bodies_are_4xx(world):
    client, _, _, auth = world
    api = client()
    headers = {**auth["defence-desk"], "content-type": "application/json"}
    assert api.post("/v1/subscriptions", content=b"{not json", headers=headers).status_code == 422
    big = api.post("/v1/subscriptions", content=b"[" + b"1," * 40_000 + b"1]", headers=headers)
    assert big.status_code == 413


@pytest.mark.parametrize("url", ["http://127.0.0.1:8809/h", "http://localhost/h", "http://169.254.169.254/latest",
                                 "http://10.0.0.5/h", "http://[::1]/h", "http://unresolvable.example/h"])  # fmt: skip
def test_webhooks_to_loopback_private_or_metadata_addresses_are_refused_at_registration(world, url):
    client, store, _, auth = world
    answer = client().post("/v1/subscriptions", json={"query": "amunisi", "channels": {"webhooks": [{"url": url}]}},
                           headers=auth["defence-desk"])  # fmt: skip
    assert answer.status_code == 422 and answer.json()["problems"][0].startswith("channels.webhooks[0].url: ")
    assert store.writes == []


def test_the_loopback_allowance_opens_loopback_only(world):
    client, _, _, auth = world
    api = client(allow_loopback=True)
    hook = {"query": "amunisi", "channels": {"webhooks": [{"url": "http://127.0.0.1:8809/h"}]}}
    assert api.post("/v1/subscriptions", json=hook, headers=auth["defence-desk"]).status_code == 201
    metadata = {"query": "peluru", "channels": {"webhooks": [{"url": "http://169.254.169.254/"}]}}
    assert api.post("/v1/subscriptions", json=metadata, headers=auth["defence-desk"]).status_code == 422


def test_each_key_is_rate_limited_on_its_own(world):
    client, _, _, auth = world
    api = client(rate_limit="3/minute")
    codes = [api.get("/v1/subscriptions", headers=auth["defence-desk"]).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = api.get("/v1/subscriptions", headers=auth["defence-desk"])
    assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 60
    assert api.get("/v1/subscriptions", headers=auth["economy-desk"]).status_code == 200


def test_guessing_keys_is_slowed_per_client(world):
    client, *_ = world
    api = client(auth_failure_limit="2/minute")
    bad = {"Authorization": "Bearer pk_000000000000_" + "y" * 43}
    assert [api.get("/v1/subscriptions", headers=bad).status_code for _ in range(3)] == [401, 401, 429]


def test_a_broker_away_is_503_with_retry_after_and_nothing_half_done(world):
    client, store, _, auth = world
    store.down = True
    answer = client().post("/v1/subscriptions", json=SUB, headers=auth["defence-desk"])
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5" and store.subs == {}


def test_query_test_and_alerts_ask_the_search_for_the_callers_own(world):
    client, _, search, auth = world
    api, me = client(), auth["defence-desk"]
    bad = api.post("/v1/queries/test", json={"query": "am*"}, headers=me)
    assert bad.status_code == 422 and "too costly" in bad.json()["problems"][0]
    ok = api.post("/v1/queries/test", json={"query": "Amunisi", "hours": 48}, headers=me)
    assert ok.status_code == 200 and ok.json() == {"query": "amunisi", "hours": 48, "total": 0, "articles": []}
    assert search.bodies[-1][0] == "articles"
    api.post("/v1/subscriptions", json={**SUB, "id": "mine-one"}, headers=me)
    api.post("/v1/subscriptions", json={**SUB, "id": "theirs-one"}, headers=auth["economy-desk"])
    assert api.get("/v1/alerts", headers=me).status_code == 200
    kind, body = search.bodies[-1]
    assert kind == "alerts" and body["query"]["bool"]["filter"][0] == {"terms": {"subscription_ids": ["mine-one"]}}


def test_the_openapi_spec_names_the_bearer_scheme_and_every_route(world):
    client, *_ = world
    spec = client().get("/openapi.json").json()
    assert set(spec["paths"]) == {"/v1/subscriptions", "/v1/subscriptions/{sub_id}", "/v1/subscriptions/{sub_id}/mute",
                                  "/v1/subscriptions/{sub_id}/unmute", "/v1/queries/test", "/v1/alerts"}  # fmt: skip
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
