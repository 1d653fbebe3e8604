"""Ring 1: the subscriber API's decisions (keys, building and changing subscriptions, searches). Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pantau.alerter.subscriptions import check
from pantau.api.core import (
    KeyRing,
    KeysFileError,
    Mute,
    SubscriptionCreate,
    SubscriptionPatch,
    alerts_search,
    articles_search,
    muted,
    new_key,
    new_subscription,
    patched,
)
from pantau.common.codec import Codec

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


@pytest.fixture
def codec(contracts):
    return Codec.for_topic(contracts, "subscriptions")


def test_a_key_is_found_by_its_id_and_only_its_hash_is_kept():
    token, key = new_key("defence-desk")
    ring = KeyRing.from_records([key.to_record(NOW)])
    assert token not in str(key.to_record(NOW)) and ring.lookup(token) == key
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")  # right id, wrong secret
    assert ring.lookup(forged) is None
    assert ring.lookup(None) is None and ring.lookup("") is None and ring.lookup("Bearer " + token) is None
    other_token, _ = new_key("defence-desk")
    assert ring.lookup(other_token) is None  # a well-formed key that was never issued


def test_a_disabled_key_is_refused_and_a_bad_keys_file_says_which_entry():
    token, key = new_key("desk")
    assert KeyRing.from_records([{**key.to_record(NOW), "disabled": True}]).lookup(token) is None
    with pytest.raises(KeysFileError, match="entry 1: needs id, owner and sha256"):
        KeyRing.from_records([key.to_record(NOW), {"id": "abc"}])
    with pytest.raises(KeysFileError, match="appears twice"):
        KeyRing.from_records([key.to_record(NOW), key.to_record(NOW)])


def test_a_new_subscription_is_owned_by_the_caller_signed_and_valid(codec):
    body = SubscriptionCreate(
        query='amunisi OR "peluru artileri"', channels={"webhooks": [{"url": "https://h.example/p"}]}
    )
    sub = new_subscription("defence-desk", body, NOW, taken=set())
    assert sub["owner"] == "defence-desk" and sub["id"] == "amunisi-or-peluru-artileri" and sub["modes"] == ["spike"]
    assert sub["channels"]["webhooks"][0]["secret"].startswith("whsec_")
    assert sub["created_at"] == sub["updated_at"] == "2026-11-27T09:00:00Z"
    assert check(sub, codec, "api") == []
    again = new_subscription("other-desk", body, NOW, taken={sub["id"]})
    assert again["id"].startswith(sub["id"] + "-") and again["id"] != sub["id"]


def test_a_patch_changes_only_what_it_names_and_keeps_secrets_of_unchanged_urls():
    sub = new_subscription("desk", SubscriptionCreate(query="amunisi", channels={"webhooks": [{"url": "https://a.example/h"}]}),
                           NOW, set())  # fmt: skip
    secret = sub["channels"]["webhooks"][0]["secret"]
    later = NOW + timedelta(hours=1)
    patch = SubscriptionPatch(channels={"webhooks": [{"url": "https://a.example/h"}, {"url": "https://b.example/h"}]})
    changed = patched(sub, patch, later)
    hooks = changed["channels"]["webhooks"]
    assert hooks[0]["secret"] == secret and hooks[1]["secret"].startswith("whsec_") and hooks[1]["secret"] != secret
    assert changed["query"] == "amunisi" and changed["updated_at"] == "2026-11-27T10:00:00Z"
    assert patched(sub, SubscriptionPatch(query="peluru"), later)["query"] == "peluru"
    with pytest.raises(ValueError, match="query: may not be null"):
        patched(sub, SubscriptionPatch(query=None), later)


def test_mute_takes_minutes_or_a_future_time_with_a_zone():
    sub = new_subscription("desk", SubscriptionCreate(query="amunisi"), NOW, set())
    assert muted(sub, Mute(minutes=90), NOW)["muted_until"] == "2026-11-27T10:30:00Z"
    for bad, reason in [(Mute(), "exactly one"), (Mute(minutes=5, until=NOW), "exactly one"),
                        (Mute(until=NOW - timedelta(minutes=1)), "not in the future"),
                        (Mute(until=datetime(2026, 12, 1)), "time zone")]:  # fmt: skip
        with pytest.raises(ValueError, match=reason):
            muted(sub, bad, NOW)


def test_searches_select_by_time_and_the_callers_subscriptions():
    body = articles_search({"bool": {"filter": [{"term": {"language": "id"}}]}}, NOW - timedelta(hours=24), 5)
    assert body["query"]["bool"]["filter"][1] == {"range": {"first_seen_at": {"gte": "2026-11-26T09:00:00Z"}}}
    assert body["size"] == 5 and body["track_total_hits"] is True
    alerts = alerts_search(["a-sub", "b-sub"], None, 20)
    assert alerts["query"]["bool"]["filter"] == [{"terms": {"subscription_ids": ["a-sub", "b-sub"]}}]
    assert alerts["collapse"] == {"field": "incident_id"}
