"""Ring 1 and 2: digests. Which periods are due, the search they send, the digest as an alert (valid
against the alert contract), and the digest maker's once-per-period hand-over (in-process, with a
recording search standing in for Elasticsearch; the real search is in tests/real/test_notifier_real.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pantau.common.codec import Codec
from pantau.common.errors import TransientError
from pantau.common.settings import NotifierSettings
from pantau.notifier.core import Notification, Target, email_message, summary_line
from pantau.notifier.digests import digest_alert, digest_id, digest_search, periods_due
from pantau.notifier.service import DigestMaker

UTC_ZONE, JAKARTA = ZoneInfo("UTC"), ZoneInfo("Asia/Jakarta")
SUB = {"id": "desk-amunisi-digest", "owner": "desk", "name": "Ammunition, daily", "query": "amunisi",
       "modes": ["digest_hourly", "digest_daily"], "channels": {"emails": ["desk@example.org"]}}  # fmt: skip
A_ID = "a" * 64


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_hourly_periods_are_whole_hours_after_the_grace():
    now = at("2026-11-27T10:01:00+00:00")
    assert periods_due("digest_hourly", now, UTC_ZONE, 120, 3 * 3600) == [
        (at("2026-11-27T07:00:00+00:00"), at("2026-11-27T08:00:00+00:00")),
        (at("2026-11-27T08:00:00+00:00"), at("2026-11-27T09:00:00+00:00")),
    ]  # 09:00-10:00 ended one minute ago: inside the two-minute grace
    later = periods_due("digest_hourly", now + timedelta(minutes=2), UTC_ZONE, 120, 3 * 3600)
    assert later[-1] == (at("2026-11-27T09:00:00+00:00"), at("2026-11-27T10:00:00+00:00"))


def test_daily_periods_run_midnight_to_midnight_in_the_desks_zone():
    now = at("2026-11-27T03:00:00+00:00")  # 10:00 in Jakarta
    ((start, end),) = periods_due("digest_daily", now, JAKARTA, 120, 86400)
    assert (start.isoformat(), end.isoformat()) == ("2026-11-26T00:00:00+07:00", "2026-11-27T00:00:00+07:00")
    assert end.astimezone(UTC).isoformat() == "2026-11-26T17:00:00+00:00"


def test_a_new_subscription_gets_no_digest_of_periods_before_it_existed():
    now = at("2026-11-27T10:05:00+00:00")
    created = at("2026-11-27T09:30:00+00:00")
    assert periods_due("digest_hourly", now, UTC_ZONE, 120, 6 * 3600, created) == [
        (at("2026-11-27T09:00:00+00:00"), at("2026-11-27T10:00:00+00:00"))]  # fmt: skip


def test_the_search_counts_the_period_by_first_seen_and_collapses_stories():
    body = digest_search({"term": {"language": "id"}}, at("2026-11-27T09:00:00+00:00"),
                         at("2026-11-27T10:00:00+00:00"), 10)  # fmt: skip
    assert body["query"]["bool"]["filter"][1] == {
        "range": {"first_seen_at": {"gte": "2026-11-27T09:00:00Z", "lt": "2026-11-27T10:00:00Z"}}}  # fmt: skip
    assert body["collapse"] == {"field": "story_id"} and body["track_total_hits"] is True


def result(total: int, stories: int = 0, sources: int = 0) -> dict:
    doc = {"id": A_ID, "title": "Ekspor amunisi", "url": "https://kompas.tv/a", "source_name": "Kompas TV",
           "published_at": "2026-11-27T09:10:00Z"}  # fmt: skip
    hits = [{"_source": doc}] if total else []
    return {"hits": {"total": {"value": total}, "hits": hits},
            "aggregations": {"stories": {"value": stories}, "sources": {"value": sources}}}  # fmt: skip


def test_a_digest_is_a_valid_alert_with_a_stable_id_and_an_empty_period_is_none(contracts):
    start, end = at("2026-11-27T09:00:00+00:00"), at("2026-11-27T10:00:00+00:00")
    alert = digest_alert(SUB, "digest_hourly", start, end, result(12, 5, 3))
    Codec.for_topic(contracts, "alerts").validate(alert)
    assert alert["id"] == digest_id(SUB["id"], "digest_hourly", start) + ":1"
    assert alert["id"] != digest_id(SUB["id"], "digest_daily", start) + ":1"
    assert alert["observed"] == {"stories": 5, "articles": 12, "sources": 3} and alert["kind"] == "digest"
    assert alert["window"] == {"start": "2026-11-27T09:00:00Z", "end": "2026-11-27T10:00:00Z", "seconds": 3600}
    assert digest_alert(SUB, "digest_hourly", start, end, result(0)) is None
    line = summary_line(alert)
    assert line.startswith("Hourly digest: Ammunition, daily — 12 articles, 5 stories from 3 sources")
    mail = email_message(Notification("msg_" + "0" * 32, Target(SUB["id"], "desk", "email", "d@example.org"), [alert],
                                      end.timestamp()), "Pantau <p@localhost>")  # fmt: skip
    assert "Ekspor amunisi https://kompas.tv/a" in mail.get_body(("plain",)).get_content()


class Searches:
    def __init__(self, answers):
        self.answers, self.bodies = list(answers), []

    def __call__(self, body):
        self.bodies.append(body)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_the_maker_searches_each_period_once_and_retries_a_failed_search():
    now = at("2026-11-27T10:05:00+00:00").timestamp()
    sub = {**SUB, "modes": ["digest_hourly"], "created_at": "2026-11-27T08:30:00Z"}
    search = Searches([TransientError("es away"), result(3, 2, 2), result(0), result(1, 1, 1)])
    maker = DigestMaker(search, lambda: {sub["id"]: sub}, NotifierSettings(), clock=lambda: now)
    assert maker.check() == 0 and maker.ready.empty()  # the first search failed: nothing marked done
    assert maker.check() == 1  # 08:00-09:00 found 3, 09:00-10:00 nothing
    assert maker.ready.get_nowait()["window"]["start"] == "2026-11-27T08:00:00Z"
    assert maker.check() == 0 and len(search.bodies) == 3  # both periods done: not searched again
    maker.clock = lambda: now + 3600
    assert maker.check() == 1 and maker.ready.get_nowait()["window"]["start"] == "2026-11-27T10:00:00Z"


def test_a_muted_subscription_gets_no_digest():
    now = at("2026-11-27T10:05:00+00:00").timestamp()
    sub = {**SUB, "modes": ["digest_hourly"], "muted_until": "2026-11-27T12:00:00Z"}
    search = Searches([])
    assert DigestMaker(search, lambda: {sub["id"]: sub}, NotifierSettings(), clock=lambda: now).check() == 0
    assert search.bodies == []


@pytest.mark.parametrize("zone", ["Mars/Olympus", ""])
def test_an_unknown_time_zone_is_refused_at_start(zone):
    with pytest.raises(ValueError, match="time zone"):
        NotifierSettings(digest_timezone=zone)


def test_a_daily_digest_is_still_made_after_a_night_down():
    now = at("2026-11-27T09:00:00+00:00").timestamp()  # 16:00 in Jakarta: the day ended 16 h ago
    sub = {**SUB, "modes": ["digest_daily"]}
    settings = NotifierSettings(digest_timezone="Asia/Jakarta")  # alerts older than 6 h are not told
    maker = DigestMaker(Searches([result(4, 4, 2)]), lambda: {sub["id"]: sub}, settings, clock=lambda: now)
    assert maker.check() == 1 and maker.ready.get_nowait()["window"]["end"] == "2026-11-26T17:00:00Z"
