"""The spike-detection evaluation harness: the synthetic stream, the injected spikes, the scorer and the
ElastAlert-style spike rule. Pure and fast (a 10-day, 30-term, 3,000-articles/day scenario)."""

from __future__ import annotations

import bisect
import itertools
import json
import math
import shlex
import sys
import types
from collections import defaultdict

import numpy as np
import pytest

from pantau.alerter import evaluate as ev
from pantau.alerter.evaluate import DAY, HOUR, MINUTE, Event, Scenario

SMALL = {"days": 10, "warmup_days": 3, "articles_per_day": 3000, "n_terms": 30, "n_clear": 8, "n_moderate": 8}


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return ev.generate(11, **SMALL)


def quiet_term(sc: Scenario) -> str:
    spiked = {s.term for s in sc.spikes}
    return next(t for t in sc.term_names if t not in spiked)


# --- generation ---


def test_generation_is_deterministic_for_a_seed():
    a = ev.generate(5, **{**SMALL, "days": 8})
    b = ev.generate(5, **{**SMALL, "days": 8})
    c = ev.generate(6, **{**SMALL, "days": 8})
    assert a.events == b.events
    assert a.spikes == b.spikes
    assert a.terms == b.terms
    assert a.events != c.events


def test_events_are_ordered_and_history_marks_the_warmup(scenario):
    times = [e.time for e in scenario.events]
    assert times == sorted(times)
    assert scenario.start <= times[0] and times[-1] < scenario.end
    assert all(e.history == (e.time < scenario.warmup_end) for e in scenario.events)
    assert len({e.article_id for e in scenario.events}) == len(scenario.events)
    assert len({e.source for e in scenario.events}) > 100
    with_terms = sum(1 for e in scenario.events if e.terms)
    assert with_terms < len(scenario.events) / 2  # most articles contain no watched term


def test_daily_and_weekly_rhythm(scenario):
    t = np.array([e.time for e in scenario.events])
    local_hour = ((t + ev.LOCAL_OFFSET_S) % DAY) // HOUR  # the stream starts at a local (WIB) midnight
    assert np.array_equal(local_hour, ((t - scenario.start) % DAY) // HOUR)
    per_hour = np.bincount(local_hour.astype(int), minlength=24)
    night, midday = per_hour[0:4].mean(), per_hour[11:15].mean()
    assert night < 0.3 * midday
    assert night > 0.1 * midday  # a trough, not silence (about 15% of the peak)
    per_day = np.bincount(((t - scenario.start) // DAY).astype(int), minlength=scenario.days)
    weekday = per_day[[0, 1, 2, 3, 4, 7, 8, 9]].mean()  # the stream starts on a Monday
    weekend = per_day[[5, 6]].mean()
    assert 0.4 * weekday < weekend < 0.7 * weekday
    assert 0.85 * 3000 < weekday < 1.15 * 3000


def test_term_counts_follow_their_share_of_the_volume(scenario):
    spike_stories = {sid for s in scenario.spikes for sid in s.story_ids}
    stories: dict[str, set[str]] = defaultdict(set)
    for e in scenario.events:
        if e.terms and e.story_id not in spike_stories:
            stories[e.terms[0]].add(e.story_id)
    observed = sum(len(v) for v in stories.values())
    expected = sum(scenario.expected_stories(t, scenario.start, scenario.end) for t in scenario.term_names)
    assert 0.85 < observed / expected < 1.15
    rates = [t.rate_per_day for t in scenario.terms]
    assert min(rates) >= 0.2 and max(rates) <= 200 and max(rates) / min(rates) > 50
    # over-dispersion: a frequent term's daily story counts vary more than Poisson's
    busiest = max(scenario.terms, key=lambda t: t.rate_per_day).name
    days = defaultdict(set)
    for e in scenario.events:
        if e.terms == (busiest,) and e.story_id not in spike_stories:
            days[int((e.time - scenario.start) // DAY)].add(e.story_id)
    counts = np.array([len(days[d]) for d in range(scenario.days) if d % 7 < 5])
    assert counts.var() > 1.5 * counts.mean()


def test_injected_spikes_have_their_class_properties(scenario):
    by_story: dict[str, list[Event]] = defaultdict(list)
    for e in scenario.events:
        by_story[e.story_id].append(e)
    assert sum(s.cls == "clear" for s in scenario.spikes) == 8
    assert sum(s.cls == "moderate" for s in scenario.spikes) == 8
    for s in scenario.spikes:
        assert s.start >= scenario.warmup_end and s.end + ev.DETECT_AFTER_END_S <= scenario.end
        duration = s.end - s.start
        assert duration == ev.SUDDEN_S if s.shape == "sudden" else 6 * HOUR <= duration <= 12 * HOUR
        assert s.expected == pytest.approx(scenario.expected_stories(s.term, s.start, s.end), rel=1e-6)
        firsts = [min(by_story[sid], key=lambda e: e.time) for sid in s.story_ids]
        assert len(set(s.story_ids)) == s.extra_stories == len(firsts)
        assert all(s.start <= e.time <= s.end for e in firsts)
        assert all(e.terms == (s.term,) for sid in s.story_ids for e in by_story[sid])
        assert sum(len(by_story[sid]) for sid in s.story_ids) == s.extra_articles
        sources = len({e.source for e in firsts})
        assert sources == s.sources
        if s.cls == "clear":
            assert s.extra_stories >= max(15, 10 * s.expected)
            assert sources >= 8
        else:
            assert max(8, 4 * s.expected) <= s.extra_stories < max(15, 10 * s.expected)
            assert sources >= 5
    by_term = defaultdict(list)
    for s in scenario.spikes:
        by_term[s.term].append(s)
    for spikes in by_term.values():
        for a, b in itertools.pairwise(spikes):
            assert b.start - a.end >= 3 * DAY


def test_ramped_spikes_grow(scenario):
    ramped = [s for s in scenario.spikes if s.shape == "ramped" and s.extra_stories >= 20]
    assert ramped
    first_time = {}
    for e in scenario.events:
        first_time.setdefault(e.story_id, e.time)
    early = late = 0
    for s in ramped:
        mid = (s.start + s.end) / 2
        ts = [first_time[sid] for sid in s.story_ids]
        early += sum(t < mid for t in ts)
        late += sum(t >= mid for t in ts)
    assert late > 2 * early  # linear growth: a quarter in the first half, three quarters in the second


# --- scoring ---


def test_an_oracle_gets_full_recall_no_false_alerts_and_no_delay(scenario):
    oracle = [(s.term, s.start) for s in scenario.spikes]
    oracle += [(s.term, s.start + 30 * MINUTE) for s in scenario.spikes]  # repeats inside a spike are fine
    sc = ev.score(scenario, oracle)
    assert sc.recall_clear == 1.0 and sc.recall_moderate == 1.0
    assert sc.false_alerts == 0 and sc.false_alerts_per_term_day == 0.0 and sc.precision == 1.0
    assert sc.delay_median_buckets == 0 and sc.delay_p90_buckets == 0 and sc.delay_median_min == 0


def test_random_detections_are_false_alerts(scenario):
    rng = np.random.default_rng(1)
    dets = [
        (scenario.term_names[rng.integers(30)], float(rng.uniform(scenario.warmup_end, scenario.end)))
        for _ in range(200)
    ]
    sc = ev.score(scenario, dets)
    assert sc.false_alerts > 50
    assert sc.precision is None or sc.precision < 0.5
    assert sc.false_alerts_per_term_day == sc.false_alerts / (30 * 7)


def test_detection_window_and_delay_buckets(scenario):
    s = scenario.spikes[0]
    edge = ev.score(scenario, [(s.term, s.end + 6 * HOUR)])
    assert edge.detected_clear + edge.detected_moderate == 1
    late = ev.score(scenario, [(s.term, s.end + 6 * HOUR + 1)])
    assert late.detected_clear + late.detected_moderate == 0
    assert late.false_alerts == 0  # within end + 24 h: tolerated, neither a hit nor a false alert
    assert ev.score(scenario, [(s.term, s.end + 24 * HOUR + 1)]).false_alerts == 1
    assert ev.score(scenario, [(s.term, s.start - 30 * MINUTE)]).false_alerts == 0
    other = next(t for t in scenario.term_names if t != s.term)
    wrong_term = ev.score(scenario, [(other, s.start)])
    assert wrong_term.detected_clear + wrong_term.detected_moderate == 0
    delayed = ev.score(scenario, [(s.term, s.start + 20 * MINUTE)])
    assert delayed.delay_median_buckets == 1 and delayed.delay_median_min == pytest.approx(20)


def test_warmup_detections_are_not_scored_and_repeats_merge(scenario):
    term = quiet_term(scenario)
    t = scenario.warmup_end + DAY
    assert ev.score(scenario, [(term, scenario.start + HOUR)]).false_alerts == 0
    assert ev.score(scenario, [(term, t), (term, t + 5 * HOUR), (term, t + 10 * HOUR)]).false_alerts == 1
    assert ev.score(scenario, [(term, t), (term, t + 7 * HOUR)]).false_alerts == 2
    assert ev.score(scenario, [(term, t), ("some-unknown-term", t)]).false_alerts == 2


def test_pooled_scores_add_up_spikes_false_alerts_and_term_days_and_pool_delays(scenario):
    spikes = scenario.spikes
    # first: two spikes found at once and one false alert; second: one spike found an hour in
    found = [(spikes[0].term, spikes[0].start), (spikes[1].term, spikes[1].start)]
    first = ev.score(scenario, [*found, (quiet_term(scenario), scenario.warmup_end + DAY)])
    second = ev.score(scenario, [(spikes[2].term, spikes[2].start + HOUR)])
    pooled = ev.pool([first, second])
    assert pooled.n_clear == 2 * first.n_clear and pooled.n_moderate == 2 * first.n_moderate
    assert pooled.detected_clear + pooled.detected_moderate == 3
    assert pooled.false_alerts == 1 and pooled.term_days == 2 * 30 * 7
    assert pooled.false_alerts_per_term_day == 1 / (2 * 30 * 7)
    assert pooled.precision == 3 / 4
    assert sorted(pooled.delays_s) == [0.0, 0.0, HOUR]
    assert pooled.delay_median_buckets == 0 and pooled.delay_p90_buckets == pytest.approx(3.2)  # 4 buckets at p90
    assert ev.pool([first]) == first
    with pytest.raises(ValueError):
        ev.pool([])


# --- the ElastAlert spike rule ---


def _article(i: int, t: float, term: str, start: float) -> Event:
    return Event(t, f"a{i}", f"s{i}", f"src{i % 7}", (term,), t < start + DAY)


def _lonely_article_scenario() -> Scenario:
    start = ev.DEFAULT_START
    events = [_article(0, start + 0.5 * DAY, "amunisi", start), _article(1, start + 2.5 * DAY, "amunisi", start)]
    events += [_article(10 + i, start + i * HOUR, "cuaca", start) for i in range(4 * 24)]
    return Scenario.from_events(events, start=start, days=4, warmup_days=1)


def test_the_ratio_rule_fires_on_one_article_after_a_zero_baseline():
    sc = _lonely_article_scenario()
    lonely = sc.start + 2.5 * DAY
    dets = [d for d in ev.ratio_rule_detect(sc, HOUR, 3, threshold_cur=1, threshold_ref=None) if d[0] == "amunisi"]
    assert dets == [("amunisi", math.ceil(lonely / 60) * 60)]  # sent at the next 1-minute run
    assert ev.score(sc, dets).false_alerts == 1
    assert [d for d in ev.ratio_rule_detect(sc, HOUR, 3, threshold_cur=5) if d[0] == "amunisi"] == []
    assert [d for d in ev.ratio_rule_detect(sc, HOUR, 3, threshold_cur=1, threshold_ref=1) if d[0] == "amunisi"] == []
    # the first article ever seen cannot alert: the rule waits for two timeframes after its first event
    first = sc.start + 0.5 * DAY
    assert not any(t < first + 2 * HOUR for _, t in ev.ratio_rule_detect(sc, HOUR, 3, threshold_cur=1))


def test_the_ratio_rule_rearms_after_two_timeframes():
    start = ev.DEFAULT_START
    base = [_article(i, start + i * HOUR, "x", start) for i in range(48)]  # one article an hour
    burst_at = start + 48 * HOUR + 10 * MINUTE
    burst = [_article(100 + i, burst_at + i * 30, "x", start) for i in range(40)]  # 40 within 20 minutes
    sc = Scenario.from_events(base + burst, start=start, days=3, warmup_days=1)
    dets = ev.ratio_rule_detect(sc, HOUR, 3, threshold_cur=5, realert_s=60)
    assert len(dets) == 1 and burst_at < dets[0][1] <= burst_at + 10 * MINUTE
    # the rule clears its windows after a match and stays silent for 2 x timeframe, whatever realert says
    assert all(t > dets[0][1] + 2 * HOUR for _, t in ev.ratio_rule_detect(sc, HOUR, 1.5, threshold_cur=1)[1:])


def _literal_spike_rule(times: list[float], ticks: list[float], s: ev.RatioSetting) -> list[float]:
    """A line-by-line port of ElastAlert 2's SpikeRule, EventWindow, garbage_collect and realert."""

    class Window:
        def __init__(self, on_removed=None):
            self.data: list[tuple[float, int]] = []
            self.count = 0
            self.on_removed = on_removed

        def append(self, item):
            bisect.insort(self.data, item, key=lambda x: x[0])
            self.count += item[1]
            while self.data[-1][0] - self.data[0][0] >= s.timeframe_s:
                old = self.data.pop(0)
                self.count -= old[1]
                if self.on_removed:
                    self.on_removed(old)

    ref = Window()
    cur = Window(ref.append)
    state = {"first": None}

    def handle(ts: float, count: int) -> bool:
        if state["first"] is None:
            state["first"] = ts
        cur.append((ts, count))
        if ts - state["first"] < 2 * s.timeframe_s:
            return False
        if cur.count < s.threshold_cur or ref.count < (s.threshold_ref or 0):
            return False
        if cur.count >= ref.count * s.spike_height:
            ref.data, ref.count, state["first"] = [], 0, None  # clear_windows
            return True
        return False

    sent, last, j = [], -math.inf, 0
    for tick in ticks:
        matched = False
        while j < len(times) and times[j] <= tick:
            matched |= handle(times[j], 1)
            j += 1
        if j:
            matched |= handle(tick, 0)  # garbage_collect's placeholder
        if matched and tick - last >= s.realert_s:
            sent.append(tick)
            last = tick
    return sent


def test_the_ratio_rule_matches_a_literal_port_of_elastalert(scenario):
    ticks = ev._ticks(scenario.start, scenario.end, 60).tolist()
    terms = scenario.term_names[::4]
    subset = {t: scenario.term_article_times[t] for t in terms}
    for s in (ev.RatioSetting(HOUR, 2, 1, None), ev.RatioSetting(6 * HOUR, 3, 3, 1)):
        fast = set(ev._spike_rule_grid(subset, scenario.start, scenario.end, [s], 60)[s])
        slow = {(t, x) for t in terms for x in _literal_spike_rule(subset[t].tolist(), ticks, s)}
        assert slow
        # the only difference: the port's reference window ends at its newest evicted item, ours at t - tf
        assert len(fast & slow) >= 0.97 * max(len(fast), len(slow))


def test_the_event_detector_equals_the_scenario_shortcut(scenario):
    detect = ev.ratio_rule_detector(HOUR, 3, 3, None, start=scenario.start, end=scenario.end)
    direct = ev.ratio_rule_detect(scenario, HOUR, 3, 3, None)
    assert sorted(detect(iter(scenario.events))) == sorted(direct)
    assert len(direct) > 0


def test_grid_and_single_setting_agree(scenario):
    settings = [ev.RatioSetting(HOUR, 2, 5, None), ev.RatioSetting(HOUR, 10, 1, 1), ev.RatioSetting(6 * HOUR, 3, 3)]
    grid = ev.ratio_rule_grid(scenario, settings)
    for s in settings:
        assert grid[s] == ev.ratio_rule_detect(
            scenario, s.timeframe_s, s.spike_height, s.threshold_cur, s.threshold_ref
        )
    assert len(ev.DEFAULT_GRID) == 80


# --- comparison and the command ---


def test_compare_feeds_events_in_order_and_scores(scenario):
    def oracle(events):
        last = -math.inf
        seen = 0
        for e in events:
            assert e.time >= last
            last = e.time
            seen += 1
        assert seen == len(scenario.events)
        return [(s.term, s.start + 60) for s in scenario.spikes]

    (row,) = ev.compare(scenario, {"oracle": oracle})
    assert row.name == "oracle" and row.scores.recall_clear == 1.0 and row.scores.false_alerts == 0
    worse = ev.score(scenario, [])
    assert ev.dominates(row.scores, worse) and not ev.dominates(worse, row.scores)
    assert "| oracle | 1.00 (8/8) | 1.00 (8/8) | 1.000 |" in ev.markdown_table([row])


ARGS = shlex.split("--days 9 --warmup-days 3 --terms 20 --articles-per-day 1500 --clear 3 --moderate 3")


def test_main_without_a_detector_shows_the_grid(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "pantau.alerter.detector", None)  # import fails
    assert ev.main([*ARGS, "--json", str(tmp_path / "out.json")]) == 0
    out = capsys.readouterr().out
    assert "Note: no Pantau detector rows" in out
    assert "| elastalert tf=6h h=10 cur>=20 ref>=1 |" in out
    payload = json.loads((tmp_path / "out.json").read_text())
    assert len(payload["rows"]) == 80 and payload["dominated_by"] is None


def test_main_with_presets_prints_dominance(monkeypatch, capsys):
    stub = types.ModuleType("pantau.alerter.detector")

    def evaluation_detectors():
        def never(events):
            for _ in events:
                pass
            return []

        return {"never": never}

    stub.evaluation_detectors = evaluation_detectors
    monkeypatch.setitem(sys.modules, "pantau.alerter.detector", stub)
    assert ev.main(ARGS) == 0
    out = capsys.readouterr().out
    assert "| pantau never |" in out
    assert "dominated by" in out
