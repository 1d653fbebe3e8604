"""The subscription feed's record handling, in process (the Kafka loop around it is the real ring's)."""

from __future__ import annotations

import json

from pantau.alerter.feed import SubscriptionFeed
from pantau.common.codec import Codec
from pantau.common.settings import KafkaSettings

SUB = {"id": "desk-amunisi", "owner": "desk", "query": "amunisi", "modes": ["spike"], "channels": {}}


def feed(contracts) -> SubscriptionFeed:
    return SubscriptionFeed(KafkaSettings(), "subscriptions", Codec.for_topic(contracts, "subscriptions"), None)


def encoded(contracts, sub):
    return Codec.for_topic(contracts, "subscriptions").encode(sub)


def test_valid_update_tombstone_and_invalid_records(contracts):
    f = feed(contracts)
    value, headers = encoded(contracts, SUB)
    assert f.apply(b"desk-amunisi", value, headers, "o:1") is None
    f._publish()
    assert set(f.current.by_id) == {"desk-amunisi"} and "query:amunisi" in f.current.watches

    changed, headers = encoded(contracts, {**SUB, "query": "amunisi OR peluru"})
    assert f.apply(b"desk-amunisi", changed, headers, "o:2") is None
    f._publish()
    assert list(f.current.watches) == ["query:amunisi OR peluru"]  # the old watch is gone with the old query

    assert f.apply(b"desk-amunisi", None, headers, "o:3") is None  # tombstone
    f._publish()
    assert f.current.by_id == {} and f.current.watches == {}


def test_invalid_records_are_refused_with_a_reason_and_the_others_kept(contracts):
    f = feed(contracts)
    value, headers = encoded(contracts, SUB)
    f.apply(b"desk-amunisi", value, headers, "o:1")
    bad_query = json.dumps({**SUB, "id": "desk-bad", "query": "amunisi AND (OR"}).encode()
    assert "column" in f.apply(b"desk-bad", bad_query, headers, "o:2")
    assert "not JSON" in f.apply(b"desk-x", b"{nope", headers, "o:3")
    assert "is not the subscription id" in f.apply(b"other-key", value, headers, "o:4")
    f._publish()
    assert set(f.current.by_id) == {"desk-amunisi"}
