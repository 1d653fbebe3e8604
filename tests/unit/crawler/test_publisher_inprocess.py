"""Ring 2 (in-process): the publisher's pending/acknowledged bookkeeping with scripted producers, and
the replacement of a producer that keeps failing while the broker answers."""

from __future__ import annotations

import asyncio
import json

from kafka.errors import KafkaTimeoutError

import pantau.crawler.publisher as publisher_module
from pantau.common.codec import Codec
from pantau.crawler.publisher import RENEW_AFTER_FAILURES, Publisher
from pantau.crawler.state import CrawlState


def example(contracts) -> dict:
    articles = [json.loads(p.read_text(encoding="utf-8")) for p in contracts.examples("article-raw", 1)]
    return next(a for a in articles if "first_seen_at" in a)  # as the crawler builds them


class Future:
    def __init__(self, fail: bool):
        self.fail = fail

    def get(self, timeout):
        if self.fail:
            raise KafkaTimeoutError("batch expired")


class Producer:
    def __init__(self, fail: bool):
        self.fail, self.sent, self.closed = fail, [], False
        self.config = {"bootstrap_servers": ["127.0.0.1:9"]}

    def send(self, topic, key, value, headers):
        self.sent.append(key)
        return Future(self.fail)

    def flush(self, timeout=None):
        if self.fail:
            raise KafkaTimeoutError("flush timed out")

    def close(self, timeout=None):
        self.closed = True


def test_a_producer_stuck_after_a_broker_restart_is_replaced_and_nothing_is_lost(contracts, tmp_path, monkeypatch):
    monkeypatch.setattr(publisher_module, "broker_reachable", lambda servers, timeout_s=1.0: True)
    stuck, fresh = Producer(fail=True), Producer(fail=False)
    state = CrawlState(tmp_path / "state.sqlite")
    codec = Codec.for_topic(contracts, "articles_raw")
    publisher = Publisher(stuck, "articles.raw", codec, state, renew=lambda: fresh)
    article = example(contracts)

    async def go():
        for _ in range(RENEW_AFTER_FAILURES):
            assert not await publisher.publish(article, None)
        assert publisher.producer is fresh and stuck.closed
        assert state.pending_count() == 1
        assert await publisher.resend_pending() == 1

    asyncio.run(go())
    assert state.pending_count() == 0 and fresh.sent == [article["id"].encode()]
    publisher.close_renewed(stuck)
    assert fresh.closed  # the replacement is the publisher's to close; the original is its caller's
    state.close()


def test_no_replacement_while_the_broker_is_away(contracts, tmp_path, monkeypatch):
    monkeypatch.setattr(publisher_module, "broker_reachable", lambda servers, timeout_s=1.0: False)
    stuck = Producer(fail=True)
    state = CrawlState(tmp_path / "state.sqlite")
    publisher = Publisher(stuck, "articles.raw", Codec.for_topic(contracts, "articles_raw"), state,
                          renew=lambda: Producer(fail=False))  # fmt: skip
    article = example(contracts)
    for _ in range(RENEW_AFTER_FAILURES + 2):
        assert not asyncio.run(publisher.publish(article, None))
    assert publisher.producer is stuck and state.pending_count() == 1
    publisher.close_renewed(stuck)  # a flush that cannot complete is bounded, and the article stays pending
    assert not stuck.closed and state.pending_count() == 1
    state.close()


def test_a_resend_leaves_alone_an_article_whose_send_is_in_flight(contracts, tmp_path):
    import threading

    release = threading.Event()

    class SlowFuture:
        def get(self, timeout):
            release.wait(10)  # the broker's acknowledgement, a moment later

    class SlowProducer(Producer):
        def send(self, topic, key, value, headers):
            self.sent.append(key)
            return SlowFuture()

    producer = SlowProducer(fail=False)
    state = CrawlState(tmp_path / "state.sqlite")
    publisher = Publisher(producer, "articles.raw", Codec.for_topic(contracts, "articles_raw"), state)
    article = example(contracts)

    async def go():
        sending = asyncio.create_task(publisher.publish(article, None))
        while not producer.sent:  # the fetch's send is out, unacknowledged: the article is pending
            await asyncio.sleep(0.01)
        assert state.pending_count() == 1
        assert await publisher.resend_pending() == 0  # the crawl loop's timer fires meanwhile
        release.set()
        assert await sending

    asyncio.run(go())
    assert producer.sent == [article["id"].encode()] and state.pending_count() == 0
    state.close()
