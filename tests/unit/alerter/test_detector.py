"""The spike detector on synthetic streams (pure)."""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass

import pytest

from pantau.alerter.detector import (
    PRESETS,
    Detector,
    DetectorConfig,
    Firing,
    Hit,
    Merger,
    Volume,
    WatchState,
    run_terms,
    tail_score,
    thresholds_for,
)

DAY = 86400
T0 = 1_700_006_400  # a Wednesday, 00:00 UTC


@dataclass(frozen=True)
class Ev:
    time: float
    story_id: str
    source: str
    terms: tuple[str, ...]
    history: bool = False


def background(days: int = 14, per_hour: float = 300, seed: int = 1, common_rate: float = 0.01,
               history_days: int = 7, volume_factor=lambda day, hour: 1.0) -> list[Ev]:  # fmt: skip
    """News with a daily and weekly rhythm; a `common` term in 1% of stories."""
    rng = random.Random(seed)
    out = []
    n = 0
    for day in range(days):
        weekend = (day + 2) % 7 in (5, 6)
        for hour in range(24):
            rhythm = 0.15 + 0.85 * math.sin(math.pi * max(0, hour - 5) / 18) ** 2
            k = int(per_hour * rhythm * (0.55 if weekend else 1.0) * volume_factor(day, hour))
            for _ in range(k):
                n += 1
                terms = ("common",) if rng.random() < common_rate else ()
                out.append(Ev(T0 + day * DAY + hour * 3600 + rng.random() * 3600, f"s{n}",
                              f"src{rng.randrange(150)}", terms, day < history_days))  # fmt: skip
    return out


def surge(term: str, start: float, stories: int, sources: int, span_s: float = 3600, copies: int = 1,
          seed: int = 0, history: bool = False) -> list[Ev]:  # fmt: skip
    """`stories` evenly over `span_s`, each in `copies` syndicated copies, from `sources` outlets
    (`seed` only varies the story ids)."""
    out = []
    for i in range(stories):
        t = start + span_s * i / stories
        for c in range(copies):
            out.append(Ev(t + c, f"{term}-{seed}-story-{i}", f"outlet{(i * copies + c) % sources}", (term,), history))
    return out


def run(events, preset="normal", cfg=None):
    return run_terms(sorted(events, key=lambda e: e.time), PRESETS[preset], cfg)


SPIKE_AT = T0 + 10 * DAY + 9 * 3600


def test_amunisi_from_nothing_to_fifteen_stories_from_eight_outlets_in_an_hour_is_one_spike():
    detections = run(background() + surge("amunisi", SPIKE_AT, 15, 8))
    assert [term for term, _ in detections] == ["amunisi"]
    (_, when), = detections  # fmt: skip
    assert SPIKE_AT <= when <= SPIKE_AT + 3600


@pytest.mark.parametrize("preset", ["high", "normal", "low"])
def test_one_article_is_never_a_spike_even_from_a_zero_baseline(preset):
    assert run(background() + surge("amunisi", SPIKE_AT, 1, 1), preset) == []


def test_syndicated_copies_of_one_story_are_one_story():
    # 15 copies of two stories from 8 outlets: many articles, two stories.
    assert run(background() + surge("amunisi", SPIKE_AT, 2, 8, copies=8)) == []


def test_a_busy_morning_does_not_fake_a_spike():
    """Overall volume triples for a morning and the common term with it: no spike."""
    busy = background(volume_factor=lambda day, hour: 3.0 if day == 10 and 6 <= hour < 12 else 1.0)
    assert run(busy) == []


def test_a_quiet_sunday_does_not_hide_a_spike():
    sunday = T0 + 11 * DAY + 10 * 3600  # day 11 is a Sunday in this calendar
    assert (11 + 2) % 7 == 6
    detections = run(background() + surge("amunisi", sunday, 8, 5))
    assert [term for term, _ in detections] == ["amunisi"]


def test_backfill_builds_the_baseline_and_never_alerts():
    # A surge inside the history: no alert; afterwards the term's rate is known.
    history_surge = surge("amunisi", T0 + 3 * DAY + 9 * 3600, 30, 10, history=True)
    assert run(background() + history_surge) == []


def test_a_live_article_does_not_fire_on_stories_backfilled_from_the_last_hour():
    """A new source backfills 12 stories of the last 45 minutes (in buckets still open), then one live
    article comes: the backfill is history, so no spike; the same 12 stories live are one."""
    backfill = surge("amunisi", SPIKE_AT - 2700, 12, 6, span_s=2400, history=True)
    live = surge("amunisi", SPIKE_AT + 60, 1, 1, seed=1)
    assert run(background() + backfill + live) == []
    as_news = [Ev(e.time, e.story_id, e.source, e.terms) for e in backfill]
    assert [term for term, _ in run(background() + as_news + live)] == ["amunisi"]


def test_copies_of_backfilled_stories_are_not_live_articles_either():
    det, ws = Detector(), WatchState()
    det.count_article(SPIKE_AT)
    for copy in range(3):
        det.add(ws, Hit(SPIKE_AT + copy, "old-story", f"src{copy}", {}, backfill=True))
    stories, articles, sources, _ = det.window_stats(ws, 4, int(SPIKE_AT // 900))
    assert (stories, articles, sources) == (0, 0, [])


def test_state_from_before_the_earliest_times_keeps_its_history():
    old = Volume().to_dict()
    del old["e"]
    old.update(f=T0, t=T0 + 30 * DAY)
    restored = Volume.from_dict(old)
    for i in range(40):  # live articles after the upgrade do not restart the first-day silence
        restored.count(T0 + 30 * DAY + i, DetectorConfig())
    assert restored.history_s() == 30 * DAY


def test_history_raises_the_baseline_of_a_term_that_is_always_busy():
    """A term in 20% of stories in the history is not a spike at that rate later."""
    rng = random.Random(5)
    events = [Ev(e.time, e.story_id, e.source, ("busy",) if rng.random() < 0.2 else e.terms, e.history)
              for e in background()]  # fmt: skip
    assert all(term != "busy" for term, _ in run(events))


def test_late_articles_feed_the_baseline_only():
    bg = background()
    late = [Ev(e.time - 5 * 3600, e.story_id, e.source, e.terms) for e in surge("amunisi", SPIKE_AT, 20, 10)]
    # Each late article arrives at SPIKE_AT, published five hours earlier.
    stream = sorted(bg, key=lambda e: e.time)
    merged = [e for e in stream if e.time < SPIKE_AT] + late + [e for e in stream if e.time >= SPIKE_AT]
    assert run_terms(merged, PRESETS["normal"]) == []


def test_a_rare_watch_learns_from_stories_a_week_apart():
    """A term seen once a week: its stories reach the baseline though its buckets close days later, in
    one step (they were skipped, and its baseline stayed 0 however often it came back)."""
    bg = background(days=18, history_days=0)
    bursts = [e for k in range(2) for e in surge("rare", T0 + DAY + k * 7 * DAY + 9 * 3600, 6, 5, seed=k)]
    det, ws = Detector(), WatchState()
    for e in sorted(bg + bursts, key=lambda e: e.time):
        det.count_article(e.time)
        if e.terms == ("rare",):
            det.add(ws, Hit(e.time, e.story_id, e.source, {}))
            det.evaluate("rare", ws, PRESETS["normal"], fire=False)
    det.close(ws)
    # six stories 17 days before the stream's end and six 10 days before, at a week's half-life
    assert ws.s_term == pytest.approx(6 * 0.5 ** (17 / 7) + 6 * 0.5 ** (10 / 7), rel=0.1)


def test_a_day_long_climb_is_caught_by_the_longer_windows():
    climb = []
    for hour in range(12):  # 1, 2, 3, ... stories an hour: no single hour looks like much
        climb += surge("climb", SPIKE_AT + hour * 3600, 1 + hour // 3, 6, seed=hour)
    climb = [Ev(e.time, f"{e.story_id}-{i}", e.source, e.terms) for i, e in enumerate(climb)]
    detections = run(background() + climb)
    assert [term for term, _ in detections] == ["climb"]


def _lifecycle(events, cfg=None, preset="normal"):
    det = Detector(cfg)
    ws = WatchState()
    th = PRESETS[preset]
    out: list[Firing] = []
    for ev in sorted(events, key=lambda e: e.time):
        closed = det.volume.closed
        det.count_article(ev.time)
        if det.volume.closed != closed and ws.state != "quiet":
            f = det.evaluate("term:amunisi", ws, th, fire=False)
            out += [f] if f else []
        if "amunisi" in ev.terms:
            counted = det.add(ws, Hit(ev.time, ev.story_id, ev.source, {"id": ev.story_id}))
            f = det.evaluate("term:amunisi", ws, th, fire=counted)
            out += [f] if f else []
    return out


def test_incident_lifecycle_one_alert_an_update_when_it_grows_then_resolved():
    events = background() + surge("amunisi", SPIKE_AT, 15, 8) + surge("amunisi", SPIKE_AT + 3600, 40, 12, seed=3)
    events = [Ev(e.time, f"{e.story_id}-{i}", e.source, e.terms, e.history) for i, e in enumerate(events)]
    firings = _lifecycle(events)
    states = [f.state for f in firings]
    assert states[0] == "firing"
    assert states[-1] == "resolved"
    # Fired at 6 stories, grew to 55: an update each time it grew by half again (11, 17, 26, 39),
    # not one per story.
    assert 2 <= states.count("updated") <= 5
    assert len({f.incident_id for f in firings}) == 1
    assert [f.revision for f in firings] == list(range(1, len(firings) + 1))


def test_the_evaluation_counts_an_update_as_news_a_subscriber_receives():
    # A second, bigger surge while the first incident is still open is no new incident: its
    # subscribers learn of it from an update, which is what the evaluation scores.
    events = background() + surge("amunisi", SPIKE_AT, 15, 8) + surge("amunisi", SPIKE_AT + 3600, 40, 12, seed=3)
    events = sorted((Ev(e.time, f"{e.story_id}-{i}", e.source, e.terms, e.history) for i, e in enumerate(events)),
                    key=lambda e: e.time)  # fmt: skip
    starts = run_terms(events, PRESETS["normal"])
    with_updates = run_terms(events, PRESETS["normal"], updates=True)
    updates = [f for f in _lifecycle(events) if f.state == "updated"]
    assert [term for term, _ in starts] == ["amunisi"]
    assert with_updates == starts + [("amunisi", f.detected_at) for f in updates]
    assert any(when >= SPIKE_AT + 3600 for _, when in with_updates[1:])


def test_a_refire_within_cooldown_reopens_the_same_incident():
    first = surge("amunisi", SPIKE_AT, 15, 8)
    again = [
        Ev(e.time, f"again-{e.story_id}", e.source, e.terms) for e in surge("amunisi", SPIKE_AT + 2.5 * 3600, 15, 8)
    ]
    firings = _lifecycle(background() + first + again)
    assert len({f.incident_id for f in firings}) == 1
    assert [f.state for f in firings].count("firing") == 1


def test_incident_id_is_deterministic_and_state_survives_a_json_round_trip():
    events = sorted(background() + surge("amunisi", SPIKE_AT, 15, 8), key=lambda e: e.time)
    whole = _lifecycle(events)
    # The same stream, with every state serialised and restored at each step (what the tables do).
    det, ws, out = Detector(), WatchState(), []
    for ev in events:
        det = Detector(volume=Volume.from_dict(json.loads(json.dumps(det.volume.to_dict()))))
        ws = WatchState.from_dict(json.loads(json.dumps(ws.to_dict())))
        closed = det.volume.closed
        det.count_article(ev.time)
        if det.volume.closed != closed and ws.state != "quiet":
            f = det.evaluate("term:amunisi", ws, PRESETS["normal"], fire=False)
            out += [f] if f else []
        if "amunisi" in ev.terms:
            counted = det.add(ws, Hit(ev.time, ev.story_id, ev.source, {"id": ev.story_id}))
            f = det.evaluate("term:amunisi", ws, PRESETS["normal"], fire=counted)
            out += [f] if f else []
    assert [f.to_dict() for f in out] == [f.to_dict() for f in whole]


def test_a_repeated_hit_counts_once():
    det, ws = Detector(), WatchState()
    det.count_article(T0)
    hit = Hit(T0, "story-1", "src", {})
    assert det.add(ws, hit) is True
    assert det.add(ws, hit) is False


def test_watch_state_is_bounded():
    cfg = DetectorConfig(max_stories_kept=100)
    det, ws = Detector(cfg), WatchState()
    for i in range(5000):
        t = T0 + i * 60
        det.count_article(t)
        det.add(ws, Hit(t, f"s{i}", f"src{i % 300}", {"id": str(i)}))
    assert len(ws.stories) <= 100 + 96 * 15  # the cap, or what one pass since the last close added
    assert len(ws.buckets) <= cfg.span + cfg.lateness_s // cfg.bucket_s + 2
    assert all(len(entry[2]) <= cfg.max_sources_kept and entry[3] == [] for entry in ws.buckets.values())
    assert [ref["id"] for _, ref in ws.recent] == [str(i) for i in range(4990, 5000)]  # the latest, ten


def test_the_state_written_on_every_hit_stays_small_whatever_the_titles():
    det, ws = Detector(), WatchState()
    for i in range(100 * 12):  # a day of twelve stories a bucket, with the longest titles and URLs allowed
        t = T0 + i * 75
        det.count_article(t)
        det.add(ws, Hit(t, f"{i:016x}", f"src{i % 12}", {"id": f"{i:064x}", "title": "中" * 2000, "url": "p" * 4096}))
    assert len(json.dumps(ws.to_dict())) < 300_000  # was 16 MB, over the broker's message limit


def test_state_from_before_recent_articles_keeps_its_newest_refs():
    old = WatchState().to_dict()
    del old["r"]
    old["b"] = {"7": [2, 2, ["a"], [{"id": "x"}, {"id": "y"}], 0], "9": [1, 1, ["b"], [{"id": "z"}]]}
    restored = WatchState.from_dict(old)
    assert restored.recent == [[7, {"id": "x"}], [7, {"id": "y"}], [9, {"id": "z"}]]
    assert all(entry[3] == [] for entry in restored.buckets.values())


def test_tail_score_accounts_for_over_dispersion():
    assert tail_score(10, 2.0, 0.0) > tail_score(10, 2.0, 1.0) > 0
    assert tail_score(0, 2.0, 0.5) == 0.0


def test_sensitivity_presets_and_overrides():
    assert thresholds_for(None) == PRESETS["normal"]
    th = thresholds_for({"preset": "high", "min_sources": 7})
    assert th.min_sources == 7 and th.min_stories == PRESETS["high"].min_stories


def _firing(watch, stories, t=0.0):
    return Firing(watch, f"inc-{watch}", 1, "firing", t, 4, 0, 3600, len(stories), len(stories), [], 0.1, 9.0, [],
                  stories)  # fmt: skip


def test_watches_firing_on_the_same_stories_merge_into_one_incident():
    merger = Merger()
    a, _ = merger.assign(_firing("entity:kim", ["s1", "s2", "s3", "s4"]), "Kim Jong Un")
    b, related_b = merger.assign(_firing("entity:putin", ["s2", "s3", "s4", "s5"]), "Vladimir Putin")
    c, _ = merger.assign(_firing("term:banjir", ["x1", "x2", "x3"]), "banjir")
    assert a == b == "inc-entity:kim"
    assert related_b == ["Kim Jong Un"]
    assert c == "inc-term:banjir"
    restored = Merger.from_dict(json.loads(json.dumps(merger.to_dict())))
    assert restored.assign(_firing("entity:putin", ["s2", "s3", "s4", "s5"]), "Vladimir Putin")[0] == a


def test_a_merged_incident_keeps_its_id_until_it_resolves_however_long_it_stays_open():
    merger = Merger()
    kim, _ = merger.assign(_firing("entity:kim", ["s1", "s2", "s3", "s4"]), "Kim Jong Un")
    assert merger.assign(_firing("entity:putin", ["s2", "s3", "s4", "s5"]), "Vladimir Putin")[0] == kim
    later = 30 * 3600  # held open by a day-long window: resolved more than a day after its last update
    resolved = Firing("entity:putin", "inc-entity:putin", 2, "resolved", later, 96, 0, 3600, 4, 4, [], 0.1, 0.0, [],
                      ["s2", "s3", "s4", "s5"])  # fmt: skip
    assert merger.assign(resolved, "Vladimir Putin")[0] == kim
    # once nothing in it is open, a group is forgotten after the horizon; one still open lives a week
    merger.assign(Firing("entity:kim", "inc-entity:kim", 2, "resolved", later, 4, 0, 3600, 4, 4, [], 0.1, 0.0, [],
                         ["s1"]), "Kim Jong Un")  # fmt: skip
    assert merger.assign(_firing("term:x", ["y1", "y2"], t=later + 25 * 3600), "x")[0] == "inc-term:x"
    assert "inc-entity:kim" not in merger.open


def test_one_shared_story_does_not_merge_a_small_incident_into_a_broad_one():
    merger = Merger()
    broad = [f"b{i}" for i in range(400)]
    merger.assign(_firing("entity:indonesia", broad), "Indonesia")
    flood, _ = merger.assign(_firing("query:banjir", ["b7", "f1", "f2"]), "banjir bekasi")
    assert flood == "inc-query:banjir"
    both, _ = merger.assign(_firing("query:summit", ["b1", "b2", "f9"]), "summit")
    assert both == "inc-entity:indonesia"  # two of its three stories are in the broad one: related


def test_a_fresh_deployment_fires_nothing_before_it_has_a_day_of_history():
    early = background(days=3, history_days=0) + surge("amunisi", T0 + 10 * 3600, 15, 8)
    assert run(early) == []  # every watch is new on the first day: no flood
    misdated = Ev(0.0, "epoch-story", "cms", ())  # one article dated 1970 is not 56 years of history
    assert run([*early, misdated]) == []
    assert [term for term, _ in run(early, cfg=DetectorConfig(min_history_s=0))] == ["amunisi"]
