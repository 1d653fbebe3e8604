"""Ring 2 (in-process): the faust agent with `test_context()`. Sends to the output and dead-letter
topics are recorded instead of produced (the real ring runs the same agent through real Kafka)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from faust.types import TP

from pantau.common.codec import Codec
from pantau.common.dlq import read_provenance
from pantau.common.settings import DeadLetterSettings, EnricherSettings, KafkaSettings
from pantau.enricher.core import Enricher
from pantau.enricher.fingerprint import WINDOW_S, StoryEntry, assign_story, bands, simhash
from pantau.enricher.stream import TableStoryIndex, build_app
from pantau.enricher.terms import TermMatcher, WatchedTerm


def run_agent(contracts, messages, dlq_settings=None, kafka=None, changelog_error=None, sent=None, settings=None,
              changelog_delay_s=0.01, stop_once_decided=False):  # fmt: skip
    app = build_app(contracts, TermMatcher([WatchedTerm("amunisi")]), kafka=kafka, dlq_settings=dlq_settings,
                    settings=settings)  # fmt: skip
    app.finalize()
    app.conf.store = "memory://"
    app.flow_control.resume()
    sent: list[tuple[str, dict]] = [] if sent is None else sent
    decided: list = []

    async def go():
        names = {topic: name for name, topic in app.pantau_topics.items()}

        async def record(topic, key, value, partition, timestamp, headers):
            sent.append((names[topic], {"key": key, "value": value, "headers": headers}))
            delivered = asyncio.get_running_loop().create_future()  # as faust's: the broker's ack
            delivered.set_result(None)
            return delivered

        app.producer.send = record

        def changelog(fut):  # the story table's writes: recorded when delivered, a moment later
            decided.append(fut)

            def deliver():
                if changelog_error is not None:
                    fut.set_exception(changelog_error)
                    return
                sent.append(("stories", {"key": fut.message.key, "value": fut.message.value}))
                fut.set_result(None)

            asyncio.get_running_loop().call_later(changelog_delay_s, deliver)

        app.producer.send_soon = changelog
        app.producer.key_partition = lambda topic, key: TP(topic, 0)
        async with app.pantau_agent.test_context() as agent:
            for key, value, headers in messages:
                await agent.put(value, key=key, headers=headers, wait=False)
            if stop_once_decided:  # stop while the last batch waits for its story decisions to be stored
                while sum(len(json.loads(fut.message.value)["decisions"]) for fut in decided) < len(messages):
                    await asyncio.sleep(0.01)
                return
            # A batch is finished (sent, then acknowledged) while the next is enriched: wait for the last.
            for _ in range(1000):
                if agent._crash_reason is not None:
                    raise agent._crash_reason
                if app.pantau_processed == len(messages):
                    break
                await asyncio.sleep(0.01)
            assert app.pantau_processed == len(messages), "the agent did not finish every message in 10 s"

    asyncio.run(go())
    return sent


def raw_messages(contracts):
    codec = Codec.for_topic(contracts, "articles_raw")
    out = []
    for path in contracts.examples("article-raw", 1):
        article = json.loads(path.read_text(encoding="utf-8"))
        value, headers = codec.encode(article)
        out.append((article["id"].encode(), value, headers))
    return out


def test_valid_articles_are_enriched_and_validated(contracts):
    sent = run_agent(contracts, raw_messages(contracts))
    # Each article's story decision is delivered before the article is sent: a batch's decisions, one
    # record, come before the batch's articles.
    count = len(contracts.examples("article-raw", 1))
    decided_by_then: list[str] = []
    for name, kw in sent:
        if name == "stories":
            decided_by_then += [d[0] for d in json.loads(kw["value"])["decisions"]]
        elif name == "enriched":
            assert json.loads(kw["value"])["id"] in decided_by_then
    assert [name for name, _ in sent].count("enriched") == count
    assert sorted(decided_by_then) == sorted(json.loads(kw["value"])["id"] for name, kw in sent if name == "enriched")
    assert [name for name, _ in sent].count("stories") < count  # one record a batch, not one an article
    codec = Codec.for_topic(contracts, "articles_enriched")
    enriched = [codec.decode(kw["value"], kw["headers"]) for name, kw in sent if name == "enriched"]
    assert len(enriched) == len(contracts.examples("article-raw", 1))
    kompas = next(e for e in enriched if e["source"]["id"] == "kompastv")
    assert kompas["language"]["code"] == "id"
    assert {"term": "amunisi", "count": kompas["text"].lower().count("amunisi"), "exact": False} in kompas["terms"]
    assert "Q56226" in {c["id"] for c in kompas["canonical_entities"]}  # Kim Jong Un


def test_a_batch_is_sent_while_the_next_is_enriched_and_outputs_keep_the_input_order(contracts, monkeypatch):
    sent: list = []
    prepare = Enricher.prepare

    def recorded(self, raw):
        sent.append(("enrich", {"key": raw["id"].encode()}))  # an event's enrichment begins
        return prepare(self, raw)

    monkeypatch.setattr(Enricher, "prepare", recorded)
    codec = Codec.for_topic(contracts, "articles_raw")
    messages = []
    for k, path in enumerate(contracts.examples("article-raw", 1) * 2):
        article = dict(json.loads(path.read_text(encoding="utf-8")), id=f"{k:064x}")
        value, headers = codec.encode(article)
        messages.append((article["id"].encode(), value, headers))
    # batches of two; each batch's story decisions take 0.3 s to reach the changelog
    run_agent(contracts, messages, sent=sent, settings=EnricherSettings(batch_max=2), changelog_delay_s=0.3)
    keys = [key for key, _, _ in messages]
    steps = [(name, kw["key"]) for name, kw in sent if name in ("enrich", "enriched")]
    # the second batch was enriched before the first was out, and every output went out in the input's order
    assert steps.index(("enrich", keys[2])) < steps.index(("enriched", keys[0]))
    assert [key for name, key in steps if name == "enriched"] == keys


def test_a_stopping_worker_drains_the_batch_on_its_way(contracts):
    messages = raw_messages(contracts)
    sent = run_agent(contracts, messages, changelog_delay_s=0.5, stop_once_decided=True)
    assert [name for name, _ in sent].count("enriched") == len(messages)  # sent, not dropped at the stop


def test_poison_messages_go_to_the_dead_letter_topic_and_the_stream_goes_on(contracts):
    good = raw_messages(contracts)
    poison = [(b"junk", b"\xff\xfe not json", []), (b"empty", b"", []), (b"wrong", b'{"id": 1}', [])]
    sent = run_agent(contracts, [poison[0], good[0], poison[1], poison[2], good[1]])
    assert [name for name, _ in sent if name != "stories"] == ["dlq", "enriched", "dlq", "dlq", "enriched"]
    letters = [kw for name, kw in sent if name == "dlq"]
    assert [kw["value"] for kw in letters] == [p[1] for p in poison]  # the original bytes
    reasons = [read_provenance(kw["headers"])["reason"] for kw in letters]
    assert "not UTF-8" in reasons[0] and "not JSON" in reasons[1] and "is a required property" in reasons[2]


def test_an_article_whose_entities_fail_is_dead_lettered_and_its_batch_goes_on(contracts, monkeypatch):
    import pantau.enricher.core as core

    find = core.find_entities_many

    def failing(items):
        if any("BOOM" in title for title, _, _ in items):
            raise ValueError("the model choked")
        return find(items)

    monkeypatch.setattr(core, "find_entities_many", failing)
    codec = Codec.for_topic(contracts, "articles_raw")
    good = raw_messages(contracts)
    article = json.loads(contracts.examples("article-raw", 1)[0].read_text(encoding="utf-8"))
    value, headers = codec.encode(dict(article, id="b" * 64, title="BOOM " + article["title"]))
    sent = run_agent(contracts, [good[0], (b"boom", value, headers), *good[1:]])
    assert [name for name, _ in sent if name != "stories"] == ["enriched", "dlq", *["enriched"] * (len(good) - 1)]
    (letter,) = [kw for name, kw in sent if name == "dlq"]
    assert letter["value"] == value and "the model choked" in read_provenance(letter["headers"])["reason"]


def test_an_enriched_article_too_large_for_the_broker_is_dead_lettered(contracts):
    # 2,000 bytes left for the value: every enriched example is larger, the broker would refuse it.
    sent = run_agent(contracts, raw_messages(contracts), kafka=KafkaSettings(max_message_bytes=64 * 1024 + 2000))
    letters = [kw for name, kw in sent if name == "dlq"]
    assert len(letters) == len(contracts.examples("article-raw", 1)) and "enriched" not in [n for n, _ in sent]
    assert all("over the limit" in read_provenance(kw["headers"])["reason"] for kw in letters)
    # the letters too: a letter the broker refused would be retried forever and stop the worker
    originals = {key: value for key, value, _ in raw_messages(contracts)}
    for kw in letters:
        assert len(kw["value"]) + sum(len(k) + len(v) for k, v in kw["headers"]) <= 2000
        original, provenance = originals[kw["key"]], read_provenance(kw["headers"])
        added = ("pantau-dlq-truncated-from", "pantau-dlq-sha256")
        header_bytes = sum(len(k) + len(v) for k, v in kw["headers"] if k not in added)
        if len(original) + header_bytes > 2000:  # no room for it beside its headers
            assert original.startswith(kw["value"]) and provenance["truncated-from"] == str(len(original))
        else:
            assert kw["value"] == original and "truncated-from" not in provenance
    assert any("truncated-from" in read_provenance(kw["headers"]) for kw in letters)


def test_a_story_decision_the_broker_refuses_stops_the_worker_before_any_output(contracts, monkeypatch):
    exits: list[int] = []

    class Exited(BaseException):  # nothing after os._exit runs in the agent
        pass

    def exit_(code):  # what os._exit does to the process, done to the test's event loop
        exits.append(code)
        asyncio.get_running_loop().stop()
        raise Exited(code)

    monkeypatch.setattr("pantau.common.faust_io.os._exit", exit_)
    sent: list = []
    with pytest.raises(RuntimeError, match="Event loop stopped"):
        run_agent(contracts, raw_messages(contracts), changelog_error=RuntimeError("broker gone"), sent=sent)
    assert exits == [70]
    assert [name for name, _ in sent] == []  # no article and no dead letter went out


def test_a_stage_whose_messages_all_fail_exits(contracts, monkeypatch):
    # exits, not raises: faust's supervisor restarts an agent that raises (test_context's crashes the app)
    exits: list[int] = []

    class Exited(BaseException):  # nothing after os._exit runs in the agent
        pass

    def exit_(code):
        exits.append(code)
        asyncio.get_running_loop().stop()
        raise Exited(code)

    monkeypatch.setattr("pantau.common.faust_io.os._exit", exit_)
    poison = [(b"k%d" % i, b"junk", []) for i in range(20)]
    with pytest.raises(RuntimeError, match="Event loop stopped"):
        run_agent(contracts, poison, DeadLetterSettings(max_ratio=0.5, window=10, min_messages=5))
    assert exits == [70]


class _Store(dict):
    """faust's in-memory store as the index uses it: a mapping, plus the partitions of restored keys."""

    def __init__(self):
        super().__init__()
        self._key_partition = {}


class _Table(dict):
    def __init__(self):
        super().__init__()
        self.data = _Store()
        self.send_changelog = lambda *a, **k: None

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self.data[key] = value


def _changelog_event(article_id: str, fingerprint: int, story: str, seen_at: float):
    return SimpleNamespace(key=f"batch-of-{article_id}", value={"decisions": [[article_id, f"{fingerprint:016x}",
                                                                             story, seen_at]]})  # fmt: skip


def _changelog_event_before_batching(article_id: str, fingerprint: int, story: str, seen_at: float):
    return SimpleNamespace(key=article_id, value=[f"{fingerprint:016x}", story, seen_at])


def test_story_index_learns_other_workers_decisions_from_the_changelog():
    index = TableStoryIndex()
    index.attach(_Table())
    text = "Korea Utara menembakkan rudal balistik ke arah Laut Jepang pada Kamis pagi. " * 8
    fingerprint = simhash(text)
    # Another worker put a copy into its story; this worker reads the record from the changelog.
    asyncio.run(index.on_changelog_event(_changelog_event("x" * 64, fingerprint, "story-of-x", 1000.0)))
    assert assign_story("y" * 64, text, 1100.0, index)[0] == "story-of-x"
    # A record written before decisions were batched still counts.
    other = "Banjir merendam ratusan rumah warga di Kabupaten Bandung sejak Selasa malam. " * 8
    asyncio.run(index.on_changelog_event(_changelog_event_before_batching("w" * 64, simhash(other), "s-w", 900.0)))
    assert assign_story("v" * 64, other, 1200.0, index)[0] == "s-w"
    asyncio.run(_pending(index))  # the batch's decisions, one record
    (record,) = index.table.values()
    assert record == {"decisions": [["y" * 64, f"{fingerprint:016x}", "story-of-x", 1100.0],
                                    ["v" * 64, f"{simhash(other):016x}", "s-w", 1200.0]]}  # fmt: skip
    asyncio.run(index.on_changelog_event(SimpleNamespace(key="z" * 64, value=None)))  # a tombstone: ignored


def test_a_restore_keeps_the_decision_of_the_revision_crawled_last_whatever_the_partition_order():
    index = TableStoryIndex()
    index.attach(_Table())
    newer = _changelog_event("a" * 64, simhash("versi kedua berita tentang gempa di Cianjur"), "s-new", 2000.0)
    older = _changelog_event("a" * 64, simhash("versi pertama berita tentang gempa"), "s-old", 1000.0)
    older.key = "another-batch"
    for event in (newer, older):
        asyncio.run(index.on_changelog_event(event))
    assert index.held["a" * 64][0].story_id == "s-new"


def test_story_index_forgets_what_it_has_held_for_longer_than_the_window():
    now = [0.0]
    index = TableStoryIndex(clock=lambda: now[0])
    index.attach(_Table())

    def write_batch() -> str:
        before = set(index.table.data)
        asyncio.run(_pending(index))
        (key,) = set(index.table.data) - before
        return key

    old = StoryEntry("old", simhash("berita lama tentang banjir di Jakarta"), "s-old", 1000.0)
    index.put(old, bands(old.fingerprint))
    old_record = write_batch()
    index.table.data._key_partition[old_record] = 3  # as if restored from partition 3
    now[0] = WINDOW_S / 2
    # A backfilled article (published long ago) and one from a clock running ahead: what counts is
    # when this worker recorded them, or one bad date would empty the index on every prune.
    backfill = StoryEntry("backfill", simhash("arsip pemilu tahun lalu di Surabaya"), "s-b", -10 * WINDOW_S)
    index.put(backfill, bands(backfill.fingerprint))
    backfill_record = write_batch()
    future = _changelog_event("future", simhash("jadwal kereta cepat tahun depan"), "s-f", 1000.0 + 9 * WINDOW_S)
    asyncio.run(index.on_changelog_event(future))
    index.prune()
    assert sorted(index.table.data) == sorted([old_record, backfill_record])  # nothing held a window long yet
    now[0] = WINDOW_S + 1.0
    index.prune()
    assert list(index.table.data) == [backfill_record] and index.table.data._key_partition == {}
    assert {e.article_id for key in index.bands for e in index.candidates(key)} == {"backfill", "future"}
    assert sorted(index.held) == ["backfill", "future"]
    assert sorted(index.records) == sorted([backfill_record, future.key])


async def _pending(index: TableStoryIndex) -> None:
    await index.pending()
