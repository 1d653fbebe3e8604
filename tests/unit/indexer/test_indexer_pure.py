"""Ring 1: the indexer's pure parts: documents, bulk-item outcomes, batches, the commit ledger, retention."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pantau.common.indices import expired_indices
from pantau.common.ledger import OffsetLedger
from pantau.common.settings import ContractSettings
from pantau.indexer.bulk import Batch, Item, Outcome, bulk_lines, chunks, classify, describe_error
from pantau.indexer.documents import IndexAction, alert_action, article_action

ES_DIR = ContractSettings().schemas_dir / "elasticsearch"
NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def mapping(kind: str) -> dict:
    path = ES_DIR / "component_templates" / f"{kind}-mappings.json"
    return json.loads(path.read_text(encoding="utf-8"))["template"]["mappings"]["properties"]


def example(contracts, schema: str) -> dict:
    return json.loads(next(iter(contracts.examples(schema, 1))).read_text(encoding="utf-8"))


def test_article_document_uses_only_mapped_fields_and_the_first_seen_month(contracts):
    enriched = example(contracts, "article-enriched")
    action = article_action(enriched, "pantau", NOW)
    assert set(action.source) <= set(mapping("articles"))
    assert action.id == enriched["id"] and action.version == enriched["revision"]
    first_seen = datetime.fromisoformat(enriched["first_seen_at"].replace("Z", "+00:00"))
    assert action.index == f"pantau-articles-{first_seen:%Y.%m}"
    # A later revision, crawled next month, still lands on the same document.
    later = {**enriched, "revision": 2, "crawled_at": "2031-01-01T00:00:00+00:00"}
    assert article_action(later, "pantau", NOW).index == action.index
    assert "Kim Jong Un" in action.source["people"] and "amunisi" in action.source["terms"]
    assert action.source["title_stems"] == enriched["stems"]["title"]


def test_the_example_document_matches_what_the_indexer_writes(contracts):
    written = article_action(example(contracts, "article-enriched"), "pantau", NOW).source
    documented = json.loads((ES_DIR / "examples" / "article.json").read_text(encoding="utf-8"))
    assert set(written) == set(documented)


def test_alert_document_one_per_revision(contracts):
    alert = example(contracts, "alert")
    action = alert_action(alert, "pantau", NOW)
    assert set(action.source) <= set(mapping("alerts"))
    assert action.id == alert["id"] and action.version == alert["revision"]
    assert action.index.startswith("pantau-alerts-")


def test_bulk_item_outcomes():
    assert classify(201, None) is Outcome.INDEXED
    assert classify(409, {"type": "version_conflict_engine_exception"}) is Outcome.DUPLICATE
    assert classify(429, {"type": "es_rejected_execution_exception"}) is Outcome.TRANSIENT
    assert classify(503, {"type": "unavailable_shards_exception"}) is Outcome.TRANSIENT
    assert classify(403, {"type": "cluster_block_exception"}) is Outcome.TRANSIENT
    assert classify(400, {"type": "strict_dynamic_mapping_exception"}) is Outcome.PERMANENT
    assert classify(400, {"type": "document_parsing_exception"}) is Outcome.PERMANENT
    assert classify(409, {"type": "something_else"}) is Outcome.PERMANENT
    reason = describe_error({"type": "document_parsing_exception", "reason": "bad",
                             "caused_by": {"type": "illegal_argument_exception", "reason": "date"}})  # fmt: skip
    assert "document_parsing_exception" in reason and "illegal_argument_exception" in reason


def item(offset: int, partition: int = 0, text: str = "x") -> Item:
    action = IndexAction("pantau-articles-2026.11", f"id{offset}", 1, {"title": text})
    return Item("t", partition, offset, None, b"", [], action)


def test_bulk_lines_are_external_versioned_ndjson():
    meta, source = bulk_lines(IndexAction("i", "d", 3, {"title": "Jakarta ✓"})).decode().splitlines()
    assert json.loads(meta) == {"index": {"_index": "i", "_id": "d", "version": 3, "version_type": "external"}}
    assert json.loads(source) == {"title": "Jakarta ✓"}


def test_batch_is_due_by_count_bytes_or_age():
    batch = Batch(max_items=3, max_bytes=10_000, max_wait_s=1.0)
    assert not batch.due(0.0)
    batch.add(item(1), 0.0)
    assert not batch.due(0.5) and batch.due(1.0)
    batch.add(item(2), 0.1), batch.add(item(3), 0.2)
    assert batch.due(0.3)
    assert [i.offset for i in batch.take()] == [1, 2, 3] and not batch.items and batch.size == 0
    big = Batch(max_items=100, max_bytes=200, max_wait_s=10)
    big.add(item(1, text="y" * 300), 0.0)
    assert big.due(0.0)


def test_chunks_bound_request_size():
    items = [item(i, text="z" * 100) for i in range(10)]
    size = items[0].size
    parts = chunks(items, size * 3)
    assert [len(p) for p in parts] == [3, 3, 3, 1]
    assert [i.offset for p in parts for i in p] == list(range(10))
    assert [len(p) for p in chunks(items, 1)] == [1] * 10  # an item larger than the bound travels alone


def test_ledger_commits_below_the_first_unconfirmed_offset():
    ledger = OffsetLedger()
    for offset in range(5):
        ledger.track("t", 0, offset)
    ledger.track("t", 1, 7)
    assert ledger.committable() == {("t", 0): 0, ("t", 1): 7}
    for offset in (0, 1, 3, 4):
        ledger.confirm("t", 0, offset)
    assert ledger.committable()[("t", 0)] == 2  # offset 2 is still on its way
    ledger.confirm("t", 0, 2)
    ledger.confirm("t", 1, 7)
    points = ledger.committable()
    assert points == {("t", 0): 5, ("t", 1): 8}
    ledger.committed(points)
    assert ledger.committable() == {}
    ledger.forget([("t", 1)])
    ledger.track("t", 0, 5)
    assert ledger.committable() == {} and ledger.open_count() == 1


def test_retention_deletes_whole_old_months_of_our_indices_only():
    names = ["pantau-articles-2025.09", "pantau-articles-2025.10", "pantau-articles-2026.11", "pantau-alerts-2024.01"]
    names += ["pantau-articles-2025.13", "other-articles-2020.01", "pantau-x-articles-2020.01", "pantau-articles"]
    assert expired_indices(names, "pantau", NOW, keep_months=13) == ["pantau-alerts-2024.01", "pantau-articles-2025.09"]
    assert expired_indices(names, "pantau", NOW, keep_months=0) == [
        "pantau-alerts-2024.01", "pantau-articles-2025.09", "pantau-articles-2025.10"]  # fmt: skip
