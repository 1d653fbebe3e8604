"""`pantau enrich FILE`: the pure enrichment offline, one output line per input line, in order."""

from __future__ import annotations

import json

from click.testing import CliRunner

from pantau.cli import main


def _examples(contracts) -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in contracts.examples("article-raw", 1)]


def test_every_line_gets_its_line_back_in_order_with_its_id_and_bad_lines_say_why(contracts, tmp_path):
    good = _examples(contracts)[:2]
    invalid = {**good[0], "id": "e" * 64, "crawled_at": "not-a-date"}
    lines = [json.dumps(good[0]).encode(), b"\xff\xfe\x00garbage", json.dumps(invalid).encode(), b"",
             json.dumps(good[1]).encode(), b"[" * 200_000]  # fmt: skip
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = CliRunner().invoke(main, ["enrich", str(path)])
    assert result.exit_code == 1
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["id"] for o in out] == [good[0]["id"], None, "e" * 64, None, good[1]["id"], None]
    assert "language" in out[0] and "language" in out[4]
    assert [o.get("line") for o in out] == [None, 2, 3, 4, None, 6]  # the last nested past any parser's depth
    assert "not UTF-8" in out[1]["error"] and "crawled_at" in out[2]["error"] and out[3]["error"].endswith("empty line")


def test_clean_input_exits_zero_and_matches_the_enrichment_of_each_article(contracts, tmp_path):
    articles = _examples(contracts)
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(a, ensure_ascii=False) + "\n" for a in articles), encoding="utf-8")
    result = CliRunner().invoke(main, ["enrich", str(path)])
    assert result.exit_code == 0
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["id"] for o in out] == [a["id"] for a in articles]
    assert all(o["stems"] and o["story"]["id"] for o in out)
