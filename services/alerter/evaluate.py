"""Evaluation harness for spike detection: a synthetic news stream with injected spikes of known start,
size and shape, a scorer, and ElastAlert's `spike` rule as the baseline.

Stream (`generate`, deterministic from the seed). Times are epoch seconds; the stream starts on a
Monday at local midnight (WIB, UTC+7) and lasts `days`. The overall volume has a daily rhythm (a raised
cosine in local time, trough at 01:00 = `night_trough` x the 13:00 peak) and a weekly one (Saturday
and Sunday = `weekend_factor` x a weekday); `articles_per_day` is the expected count of a weekday (the
peak days); each day's volume also gets a small gamma noise (CV `volume_day_cv`). Watched terms have
base rates log-uniform in `rate_range` stories/day at the average daily volume; a term's share of the
volume is its rate / that average, and its stories per minute are Poisson(share x volume x a per-term
per-day gamma multiplier (shape `day_dispersion`) x a per-term per-hour one (shape
`hour_dispersion`)): over-dispersed, quiet and busy days without spikes. A story (term or spike) is
published once and, with probability `syndication_p`, gets 1-4 syndicated copies (same story id,
distinct other sources, delays exponential with mean 20 min, at most 3 h). Articles without a watched
term fill the volume up (one story each). Sources have Zipf-like weights 1/(rank + 10).

Spikes, defined up front: extra stories of one term on top of the background, `sudden` (all first
publications uniform within 1 h) or `ramped` (density growing linearly over 6-12 h), starting
uniformly at random between the end of the warm-up and `end - duration - 6 h`, on terms chosen
uniformly, at least 3 days apart on the same term. `expected` = the term's share x the volume
intensity (incl. the day noise, excl. the term's own gamma multipliers) integrated over [start, end].
  clear:    extra stories >= max(15, 10 x expected), first published by >= 8 distinct sources;
            drawn as ceil(that minimum x U(1, 2)).
  moderate: extra stories in [max(8, 4 x expected), max(15, 10 x expected)), by >= 5 distinct sources.
Warm-up articles (the first `warmup_days`) carry `history=True`: detectors may build baselines from
them; nothing in the warm-up is scored.

Scoring (`score`): a detection is a message the term's subscribers receive: each alert of the ratio
rule; Pantau's first alert of an incident, its re-opening and its updates (a spike that arrives while an
incident is open is told as an update), not its resolution. A spike is detected if a detection on its
term falls in [start, end + 6 h]; the delay is the first such detection - start, in 15-minute buckets
(floor: 0 = within the first 15 minutes). A scored detection (at or after the warm-up end) outside
every [start - 1 h, end + 24 h] of its term's spikes is unexplained; unexplained detections of a term
less than or exactly 6 h apart chain into one false alert. precision = detected spikes / (detected
spikes + false alerts); false alerts per term-day divide by terms x scored days. `pool` adds up the
scores of several scenarios (seeds).

Baseline (`ratio_rule_detect`): ElastAlert's `spike` rule (elastalert/ruletypes.py `SpikeRule`, the
same in ElastAlert 2), one rule per term (equivalently `query_key` on the term), counting documents:
  - cur = documents in (t - timeframe, t], ref = documents in (t - 2 timeframe, t - timeframe];
  - match when cur >= threshold_cur (default 0) and ref >= threshold_ref (default 0, i.e. unset) and
    cur >= ref x spike_height (spike_type up): a zero reference matches any current count;
  - evaluated at every document of the term (windows anchored at its timestamp, as `add_data`) and at
    every `run_every` tick (the placeholder of `garbage_collect`), from the term's first document on;
  - the rule is silent until 2 x timeframe after its first event, and after a match it clears its
    windows and is silent again until 2 x timeframe after the next event (`clear_windows`);
  - an alert is sent at the run that processed the match (document matches at the next tick), unless
    within `realert` (default 1 minute) of the previous sent alert on the term.

`python -m pantau.alerter.evaluate [--seed N] [--days N] [--json PATH]` prints the baseline grid and,
when `pantau.alerter.detector.evaluation_detectors` imports, one row per Pantau sensitivity preset."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

MINUTE = 60
HOUR = 3600
DAY = 86400
BUCKET_S = 15 * MINUTE
# Monday 2024-01-01 00:00 in Jakarta (WIB, UTC+7): the stream starts at a local midnight on a Monday.
DEFAULT_START = 1704042000.0
LOCAL_OFFSET_S = 7 * HOUR

# Spike classes (fixed before any detector was run).
CLEAR_MIN_STORIES, CLEAR_FACTOR, CLEAR_MIN_SOURCES = 15, 10.0, 8
MODERATE_MIN_STORIES, MODERATE_FACTOR, MODERATE_MIN_SOURCES = 8, 4.0, 5
SUDDEN_S = HOUR
RAMP_S = (6 * HOUR, 12 * HOUR)
SPIKE_GAP_S = 3 * DAY

# Scoring windows.
DETECT_AFTER_END_S = 6 * HOUR
EXPLAIN_BEFORE_S = HOUR
EXPLAIN_AFTER_END_S = 24 * HOUR
MERGE_S = 6 * HOUR

COPY_DELAY_MEAN_S = 20 * MINUTE
COPY_DELAY_MAX_S = 3 * HOUR
MAX_COPIES = 4


@dataclass(frozen=True, slots=True)
class Event:
    time: float  # publication time, epoch seconds
    article_id: str
    story_id: str
    source: str
    terms: tuple[str, ...]
    history: bool  # warm-up period: build baselines, never scored


Detection = tuple[str, float]
Detect = Callable[[Iterator[Event]], Iterable[Detection]]


@dataclass(frozen=True)
class TermInfo:
    name: str
    rate_per_day: float  # base stories per day at the average daily volume
    share: float  # stories per article of the overall volume


@dataclass(frozen=True)
class Spike:
    term: str
    start: float
    end: float
    shape: str  # "sudden" | "ramped"
    cls: str  # "clear" | "moderate"
    extra_stories: int
    extra_articles: int  # first publications and syndicated copies
    sources: int  # distinct sources of the extra stories' first publications
    expected: float  # the term's expected stories over [start, end] without the spike
    story_ids: tuple[str, ...] = field(repr=False)


@dataclass
class Scenario:
    start: float
    days: int
    warmup_days: int
    events: list[Event] = field(repr=False)
    spikes: list[Spike]
    terms: list[TermInfo] = field(repr=False)
    sources: list[str] = field(repr=False)
    term_article_times: dict[str, np.ndarray] = field(repr=False)  # sorted publication times, per term
    intensity: np.ndarray | None = field(default=None, repr=False)  # expected articles per minute
    seed: int | None = None
    params: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def end(self) -> float:
        return self.start + self.days * DAY

    @property
    def warmup_end(self) -> float:
        return self.start + self.warmup_days * DAY

    @property
    def scored_days(self) -> int:
        return self.days - self.warmup_days

    @property
    def term_names(self) -> list[str]:
        return [t.name for t in self.terms]

    def expected_articles(self, t0: float, t1: float) -> float:
        """Expected articles (all of them) published in [t0, t1]."""
        if self.intensity is None:
            raise ValueError("this scenario has no volume intensity")
        cum = np.concatenate([[0.0], np.cumsum(self.intensity)])
        grid = np.arange(cum.size, dtype=float)
        lo, hi = np.interp([(t0 - self.start) / MINUTE, (t1 - self.start) / MINUTE], grid, cum)
        return float(hi - lo)

    def expected_stories(self, term: str, t0: float, t1: float) -> float:
        share = next(t.share for t in self.terms if t.name == term)
        return share * self.expected_articles(t0, t1)

    @classmethod
    def from_events(
        cls,
        events: Iterable[Event],
        *,
        start: float,
        days: int,
        warmup_days: int,
        spikes: Sequence[Spike] = (),
        terms: Sequence[TermInfo] | None = None,
    ) -> Scenario:
        """A scenario from hand-made events (tests, replays of real streams)."""
        evs = sorted(events, key=lambda e: e.time)
        times: dict[str, list[float]] = defaultdict(list)
        for e in evs:
            for term in e.terms:
                times[term].append(e.time)
        if terms is None:
            names = sorted(set(times) | {s.term for s in spikes})
            terms = [TermInfo(n, math.nan, math.nan) for n in names]
        return cls(
            start=float(start),
            days=days,
            warmup_days=warmup_days,
            events=evs,
            spikes=list(spikes),
            terms=list(terms),
            sources=sorted({e.source for e in evs}),
            term_article_times={t.name: np.asarray(times.get(t.name, []), dtype=float) for t in terms},
        )


# --- generation ---------------------------------------------------------------------------------


def volume_intensity(
    days: int, articles_per_day: float, *, night_trough: float = 0.15, weekend_factor: float = 0.55
) -> np.ndarray:
    """Expected articles per minute (no noise) for a stream starting on a Monday at local midnight."""
    minute = np.arange(days * 1440)
    hour = (minute % 1440 + 0.5) / 60.0
    shape = night_trough + (1.0 - night_trough) * 0.5 * (1.0 - np.cos(2.0 * np.pi * (hour - 1.0) / 24.0))
    week = np.where((minute // 1440) % 7 >= 5, weekend_factor, 1.0)
    return articles_per_day * week * shape / (1440.0 * shape[:1440].mean())


def _gumbel_top(
    rng: np.random.Generator, logw: np.ndarray, rows: int, k: int, exclude: np.ndarray | None = None
) -> np.ndarray:
    """Per row, k distinct indices sampled without replacement with weights exp(logw) (Gumbel top-k)."""
    keys = logw[None, :] + rng.gumbel(size=(rows, logw.size))
    if exclude is not None:
        keys[np.arange(rows), exclude] = -np.inf
    return np.argsort(-keys, axis=1)[:, :k]


def generate(
    seed: int = 7,
    days: int = 28,
    *,
    warmup_days: int = 7,
    articles_per_day: float = 20_000,
    n_terms: int = 200,
    n_sources: int = 150,
    rate_range: tuple[float, float] = (0.2, 200.0),
    n_clear: int = 40,
    n_moderate: int = 40,
    night_trough: float = 0.15,
    weekend_factor: float = 0.55,
    volume_day_cv: float = 0.05,
    day_dispersion: float = 5.0,
    hour_dispersion: float = 12.0,
    syndication_p: float = 0.12,
    start: float = DEFAULT_START,
) -> Scenario:
    """A synthetic stream with injected spikes (see the module docstring for the model)."""
    if days - warmup_days <= (RAMP_S[1] + DETECT_AFTER_END_S) / DAY:
        raise ValueError("too few scored days for the spikes")
    params = dict(locals())
    rng = np.random.default_rng(seed)
    n_min = days * 1440
    end = start + days * DAY
    warmup_end = start + warmup_days * DAY
    minute = np.arange(n_min)
    day_of = minute // 1440
    hour_of = minute // 60

    base = volume_intensity(days, articles_per_day, night_trough=night_trough, weekend_factor=weekend_factor)
    avg_daily = float(base.sum()) / days
    day_noise = rng.gamma(1.0 / volume_day_cv**2, volume_day_cv**2, size=days) if volume_day_cv > 0 else np.ones(days)
    intensity = base * day_noise[day_of]

    names = [f"term{k:03d}" for k in range(n_terms)]
    rates = np.exp(rng.uniform(math.log(rate_range[0]), math.log(rate_range[1]), size=n_terms))
    shares = rates / avg_daily
    terms = [TermInfo(n, float(r), float(s)) for n, r, s in zip(names, rates, shares, strict=True)]
    weights = 1.0 / (np.arange(n_sources) + 10.0)
    weights /= weights.sum()
    logw = np.log(weights)

    # Background stories of the watched terms.
    st_time_parts: list[np.ndarray] = []
    st_term_parts: list[np.ndarray] = []
    for k in range(n_terms):
        g_day = rng.gamma(day_dispersion, 1.0 / day_dispersion, size=days)
        g_hour = rng.gamma(hour_dispersion, 1.0 / hour_dispersion, size=days * 24)
        counts = rng.poisson(shares[k] * intensity * g_day[day_of] * g_hour[hour_of])
        m = np.repeat(minute, counts)
        st_time_parts.append(start + (m + rng.random(m.size)) * MINUTE)
        st_term_parts.append(np.full(m.size, k, dtype=np.int32))
    bg_time = np.concatenate(st_time_parts)
    bg_term = np.concatenate(st_term_parts)
    bg_src = rng.choice(n_sources, size=bg_time.size, p=weights)

    # Injected spikes.
    cum = np.concatenate([[0.0], np.cumsum(intensity)])
    grid = np.arange(cum.size, dtype=float)

    def expected_articles(t0: float, t1: float) -> float:
        lo, hi = np.interp([(t0 - start) / MINUTE, (t1 - start) / MINUTE], grid, cum)
        return float(hi - lo)

    taken: dict[int, list[tuple[float, float]]] = defaultdict(list)
    specs: list[dict[str, Any]] = []
    sp_time_parts: list[np.ndarray] = []
    sp_src_parts: list[np.ndarray] = []
    for cls in ["clear"] * n_clear + ["moderate"] * n_moderate:
        for _attempt in range(10_000):
            shape = "sudden" if rng.random() < 0.5 else "ramped"
            duration = SUDDEN_S if shape == "sudden" else float(rng.uniform(*RAMP_S))
            k = int(rng.integers(n_terms))
            s0 = float(rng.uniform(warmup_end, end - duration - DETECT_AFTER_END_S))
            s1 = s0 + duration
            if all(s0 >= b + SPIKE_GAP_S or s1 <= a - SPIKE_GAP_S for a, b in taken[k]):
                break
        else:
            raise ValueError("cannot place the spikes 3 days apart per term: too many spikes for the terms and days")
        taken[k].append((s0, s1))
        expected = float(shares[k]) * expected_articles(s0, s1)
        clear_min = max(CLEAR_MIN_STORIES, CLEAR_FACTOR * expected)
        if cls == "clear":
            n = math.ceil(clear_min * rng.uniform(1.0, 2.0))
            min_src = CLEAR_MIN_SOURCES
        else:
            n = int(
                rng.integers(math.ceil(max(MODERATE_MIN_STORIES, MODERATE_FACTOR * expected)), math.ceil(clear_min))
            )
            min_src = MODERATE_MIN_SOURCES
        n_src = int(np.clip(round(n * rng.uniform(0.35, 0.8)), min_src, min(n, n_sources)))
        chosen = _gumbel_top(rng, logw, 1, n_src)[0]
        extra = rng.choice(chosen, size=n - n_src, p=weights[chosen] / weights[chosen].sum())
        srcs = rng.permutation(np.concatenate([chosen, extra]))
        u = rng.random(n)
        times = s0 + duration * (u if shape == "sudden" else np.sqrt(u))
        sp_time_parts.append(np.sort(times))
        sp_src_parts.append(srcs)
        specs.append(
            {
                "term": k,
                "start": s0,
                "end": s1,
                "shape": shape,
                "cls": cls,
                "n": n,
                "n_src": n_src,
                "expected": expected,
            }
        )

    n_bg = bg_time.size
    sp_time = np.concatenate(sp_time_parts) if sp_time_parts else np.zeros(0)
    st_time = np.concatenate([bg_time, sp_time])
    st_term = np.concatenate([bg_term, np.repeat([s["term"] for s in specs], [s["n"] for s in specs]).astype(np.int32)])
    st_src = np.concatenate([bg_src, *sp_src_parts]).astype(np.int64)
    n_st = st_time.size

    # Syndicated copies: same story id, distinct other sources.
    clustered = np.flatnonzero(rng.random(n_st) < syndication_p)
    n_copies = rng.integers(1, MAX_COPIES + 1, size=clustered.size)
    top = _gumbel_top(rng, logw, clustered.size, MAX_COPIES, exclude=st_src[clustered])
    cp_src = top[np.arange(MAX_COPIES)[None, :] < n_copies[:, None]]
    cp_story = np.repeat(clustered, n_copies)
    delay = np.clip(rng.exponential(COPY_DELAY_MEAN_S, size=cp_story.size), 1.0, COPY_DELAY_MAX_S)
    cp_time = st_time[cp_story] + delay

    # Articles without a watched term fill the volume up.
    term_docs_share = float(shares.sum()) * (1.0 + syndication_p * (MAX_COPIES + 1) / 2.0)
    nt_counts = rng.poisson(intensity * max(0.0, 1.0 - term_docs_share))
    nt_m = np.repeat(minute, nt_counts)
    nt_time = start + (nt_m + rng.random(nt_m.size)) * MINUTE
    nt_src = rng.choice(n_sources, size=nt_time.size, p=weights)
    nt_story = n_st + np.arange(nt_time.size)

    a_time = np.concatenate([st_time, cp_time, nt_time])
    a_src = np.concatenate([st_src, cp_src, nt_src])
    a_story = np.concatenate([np.arange(n_st), cp_story, nt_story])
    a_term = np.concatenate([st_term, st_term[cp_story], np.full(nt_time.size, -1, dtype=np.int32)])
    keep = a_time < end
    order = np.argsort(a_time[keep], kind="stable")
    a_time, a_src, a_story, a_term = (x[keep][order] for x in (a_time, a_src, a_story, a_term))

    labels = rng.permutation(n_st + nt_time.size)  # story ids say nothing about how a story was made
    source_names = [f"src{j:03d}" for j in range(n_sources)]
    term_tuples: list[tuple[str, ...]] = [(n,) for n in names] + [()]
    events = [
        Event(t, f"a{i:07d}", f"s{labels[st]:08d}", source_names[s], term_tuples[k], t < warmup_end)
        for i, (t, s, st, k) in enumerate(
            zip(a_time.tolist(), a_src.tolist(), a_story.tolist(), a_term.tolist(), strict=True)
        )
    ]

    by_term = np.argsort(a_term, kind="stable")
    bounds = np.searchsorted(a_term[by_term], np.arange(n_terms + 1))
    term_times = {names[k]: a_time[by_term[bounds[k] : bounds[k + 1]]] for k in range(n_terms)}

    spikes: list[Spike] = []
    first = n_bg
    copies_per_story = np.bincount(cp_story[cp_time < end], minlength=n_st)
    for s in specs:
        idx = np.arange(first, first + s["n"])
        first += s["n"]
        spikes.append(
            Spike(
                term=names[s["term"]],
                start=s["start"],
                end=s["end"],
                shape=s["shape"],
                cls=s["cls"],
                extra_stories=s["n"],
                extra_articles=int(s["n"] + copies_per_story[idx].sum()),
                sources=int(np.unique(st_src[idx]).size),
                expected=s["expected"],
                story_ids=tuple(f"s{labels[i]:08d}" for i in idx),
            )
        )
    spikes.sort(key=lambda sp: sp.start)
    return Scenario(
        start=float(start),
        days=days,
        warmup_days=warmup_days,
        events=events,
        spikes=spikes,
        terms=terms,
        sources=source_names,
        term_article_times=term_times,
        intensity=intensity,
        seed=seed,
        params=params,
    )


def clear_minimum(expected: float) -> float:
    return max(CLEAR_MIN_STORIES, CLEAR_FACTOR * expected)


def moderate_minimum(expected: float) -> float:
    return max(MODERATE_MIN_STORIES, MODERATE_FACTOR * expected)


# --- scoring ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scores:
    n_clear: int
    n_moderate: int
    detected_clear: int
    detected_moderate: int
    recall_clear: float | None
    recall_moderate: float | None
    false_alerts: int
    precision: float | None  # detected spikes / (detected spikes + false alerts)
    false_alerts_per_term_day: float
    delay_median_buckets: float | None
    delay_p90_buckets: float | None
    delay_median_min: float | None
    delay_p90_min: float | None
    detections: int  # scored (post warm-up) detections, before any merging
    delays_s: tuple[float, ...] = field(repr=False)  # per detected spike, in spike order
    term_days: int = 0  # terms x scored days: what false alerts are counted per


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def score(scenario: Scenario, detections: Iterable[Detection]) -> Scores:
    """Score (term, detection time) pairs against the scenario's spikes (see the module docstring)."""
    by_term: dict[str, list[float]] = defaultdict(list)
    for term, t in detections:
        if float(t) >= scenario.warmup_end:
            by_term[term].append(float(t))
    dets = {term: np.sort(np.asarray(ts, dtype=float)) for term, ts in by_term.items()}
    spikes_of: dict[str, list[Spike]] = defaultdict(list)
    for sp in scenario.spikes:
        spikes_of[sp.term].append(sp)

    delays: list[float] = []
    hit = {"clear": 0, "moderate": 0}
    total = {"clear": 0, "moderate": 0}
    for sp in scenario.spikes:
        total[sp.cls] = total.get(sp.cls, 0) + 1
        ts = dets.get(sp.term)
        if ts is None:
            continue
        i = int(np.searchsorted(ts, sp.start, side="left"))
        if i < ts.size and ts[i] <= sp.end + DETECT_AFTER_END_S:
            hit[sp.cls] = hit.get(sp.cls, 0) + 1
            delays.append(float(ts[i] - sp.start))

    false_alerts = 0
    for term, ts in dets.items():
        explained = np.zeros(ts.size, dtype=bool)
        for sp in spikes_of.get(term, ()):
            explained |= (ts >= sp.start - EXPLAIN_BEFORE_S) & (ts <= sp.end + EXPLAIN_AFTER_END_S)
        unexplained = ts[~explained]
        if unexplained.size:
            false_alerts += 1 + int(np.count_nonzero(np.diff(unexplained) > MERGE_S))

    term_days = max(1, len(scenario.terms)) * max(1, scenario.scored_days)
    return _scores(total["clear"], total["moderate"], hit["clear"], hit["moderate"], false_alerts, term_days,
                   tuple(delays), sum(ts.size for ts in dets.values()))  # fmt: skip


def _scores(n_clear: int, n_moderate: int, detected_clear: int, detected_moderate: int, false_alerts: int,
            term_days: int, delays: tuple[float, ...], detections: int) -> Scores:  # fmt: skip
    """Scores from counts and per-spike delays (seconds): the rates and the delay quantiles derived."""
    d = np.asarray(delays)
    buckets = np.floor(d / BUCKET_S)
    detected = detected_clear + detected_moderate
    return Scores(
        n_clear=n_clear,
        n_moderate=n_moderate,
        detected_clear=detected_clear,
        detected_moderate=detected_moderate,
        recall_clear=_ratio(detected_clear, n_clear),
        recall_moderate=_ratio(detected_moderate, n_moderate),
        false_alerts=false_alerts,
        precision=_ratio(detected, detected + false_alerts),
        false_alerts_per_term_day=false_alerts / max(1, term_days),
        delay_median_buckets=float(np.median(buckets)) if d.size else None,
        delay_p90_buckets=float(np.percentile(buckets, 90)) if d.size else None,
        delay_median_min=float(np.median(d)) / MINUTE if d.size else None,
        delay_p90_min=float(np.percentile(d, 90)) / MINUTE if d.size else None,
        detections=detections,
        delays_s=delays,
        term_days=term_days,
    )


def pool(scores: Sequence[Scores]) -> Scores:
    """The scores of several scenarios as one: spikes, false alerts and term-days added up, delays pooled.
    One scenario holds 80 spikes, and its median delay falls between the sudden spikes (found within a
    bucket or two) and the ramped ones (found hours in, once the climb has stories): which of the two
    holds the middle spike depends on how that seed drew the shapes. Several scenarios pooled say what a
    detector does, not what one draw did."""
    if not scores:
        raise ValueError("nothing to pool")
    return _scores(
        sum(s.n_clear for s in scores),
        sum(s.n_moderate for s in scores),
        sum(s.detected_clear for s in scores),
        sum(s.detected_moderate for s in scores),
        sum(s.false_alerts for s in scores),
        sum(s.term_days for s in scores),
        tuple(d for s in scores for d in s.delays_s),
        sum(s.detections for s in scores),
    )


# --- the ElastAlert spike rule ---------------------------------------------------------------------


@dataclass(frozen=True)
class RatioSetting:
    timeframe_s: float
    spike_height: float
    threshold_cur: int = 0
    threshold_ref: int | None = None
    realert_s: float = 60.0

    @property
    def name(self) -> str:
        tf = f"{self.timeframe_s / HOUR:g}h" if self.timeframe_s % HOUR == 0 else f"{self.timeframe_s / MINUTE:g}m"
        ref = "-" if self.threshold_ref is None else str(self.threshold_ref)
        return f"elastalert tf={tf} h={self.spike_height:g} cur>={self.threshold_cur} ref>={ref}"


DEFAULT_GRID: tuple[RatioSetting, ...] = tuple(
    RatioSetting(tf, h, cur, ref)
    for tf in (HOUR, 6 * HOUR)
    for h in (2, 3, 5, 10)
    for cur in (1, 3, 5, 10, 20)
    for ref in (None, 1)
)


def _spike_rule_term(
    times: np.ndarray, ticks: np.ndarray, timeframe_s: float, settings: Sequence[RatioSetting], run_every_s: float
) -> list[list[float]]:
    """ElastAlert's SpikeRule on one term's sorted document times, for settings sharing a timeframe."""
    out: list[list[float]] = [[] for _ in settings]
    if times.size == 0:  # the rule never saw an event: no windows, no placeholders
        return out
    ticks = ticks[np.searchsorted(ticks, times[0], side="left") :]
    eval_t = np.concatenate([times, ticks])
    kind = np.concatenate([np.zeros(times.size, dtype=np.int8), np.ones(ticks.size, dtype=np.int8)])
    order = np.lexsort((kind, eval_t))  # a run handles its documents, then the placeholder
    eval_t, kind = eval_t[order], kind[order]
    upto = np.searchsorted(times, eval_t, side="right")
    mid = np.searchsorted(times, eval_t - timeframe_s, side="right")
    low = np.searchsorted(times, eval_t - 2 * timeframe_s, side="right")
    cur = upto - mid
    ref = mid - low
    sent_at = np.where(kind == 0, np.ceil(eval_t / run_every_s) * run_every_s, eval_t)
    refill = 2 * timeframe_s
    for j, s in enumerate(settings):
        match = (cur >= s.threshold_cur) & (cur >= ref * s.spike_height)
        if s.threshold_ref is not None:
            match &= ref >= s.threshold_ref
        idx = np.flatnonzero(match)
        if idx.size == 0:
            continue
        match_t = eval_t[idx]
        armed = eval_t[0] + refill
        last_sent = -math.inf
        while True:
            p = int(np.searchsorted(match_t, armed, side="left"))
            if p == idx.size:
                break
            i = int(idx[p])
            if sent_at[i] - last_sent >= s.realert_s:
                out[j].append(float(sent_at[i]))
                last_sent = float(sent_at[i])
            if i + 1 >= eval_t.size:
                break
            armed = eval_t[i + 1] + refill  # clear_windows: silent until windows refill after the next event
    return out


def _ticks(start: float, end: float, run_every_s: float) -> np.ndarray:
    first = math.ceil(start / run_every_s) * run_every_s
    return np.arange(first, end + run_every_s / 2, run_every_s)


def _spike_rule_grid(
    term_times: dict[str, np.ndarray], start: float, end: float, settings: Sequence[RatioSetting], run_every_s: float
) -> dict[RatioSetting, list[Detection]]:
    ticks = _ticks(start, end, run_every_s)
    result: dict[RatioSetting, list[Detection]] = {s: [] for s in settings}
    by_tf: dict[float, list[RatioSetting]] = defaultdict(list)
    for s in settings:
        by_tf[s.timeframe_s].append(s)
    for tf, group in by_tf.items():
        for term, times in term_times.items():
            for s, sent in zip(group, _spike_rule_term(times, ticks, tf, group, run_every_s), strict=True):
                result[s].extend((term, t) for t in sent)
    return result


def ratio_rule_grid(
    scenario: Scenario, settings: Sequence[RatioSetting] = DEFAULT_GRID, *, run_every_s: float = 60.0
) -> dict[RatioSetting, list[Detection]]:
    """The spike rule at many settings on one scenario (window counts shared per timeframe)."""
    return _spike_rule_grid(scenario.term_article_times, scenario.start, scenario.end, settings, run_every_s)


def ratio_rule_detect(
    scenario: Scenario,
    timeframe_s: float,
    spike_height: float,
    threshold_cur: int = 0,
    threshold_ref: int | None = None,
    realert_s: float = 60.0,
    *,
    run_every_s: float = 60.0,
) -> list[Detection]:
    """ElastAlert's `spike` rule (spike_type up), one rule per watched term, counting documents."""
    setting = RatioSetting(timeframe_s, spike_height, threshold_cur, threshold_ref, realert_s)
    return ratio_rule_grid(scenario, [setting], run_every_s=run_every_s)[setting]


def ratio_rule_detector(
    timeframe_s: float,
    spike_height: float,
    threshold_cur: int = 0,
    threshold_ref: int | None = None,
    realert_s: float = 60.0,
    *,
    run_every_s: float = 60.0,
    start: float | None = None,
    end: float | None = None,
) -> Detect:
    """The same rule as a `detect(events)` callable (for `compare`); runs from the first to the last event
    unless `start` / `end` say otherwise."""
    setting = RatioSetting(timeframe_s, spike_height, threshold_cur, threshold_ref, realert_s)

    def detect(events: Iterator[Event]) -> list[Detection]:
        times: dict[str, list[float]] = defaultdict(list)
        first = last = None
        for e in events:
            first = e.time if first is None else first
            last = e.time
            for term in e.terms:
                times[term].append(e.time)
        if first is None:
            return []
        arrays = {term: np.asarray(ts, dtype=float) for term, ts in times.items()}
        lo = first if start is None else start
        hi = last if end is None else end
        return _spike_rule_grid(arrays, lo, hi, [setting], run_every_s)[setting]

    return detect


# --- comparison ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    name: str
    scores: Scores
    seconds: float
    kind: str = "detector"  # "baseline" for the ratio-rule grid


def compare(scenario: Scenario, detectors: dict[str, Detect]) -> list[Row]:
    """Run each detector on the scenario's events (in publication order) and score it."""
    rows = []
    for name, detect in detectors.items():
        t0 = time.perf_counter()
        detections = list(detect(iter(scenario.events)))
        rows.append(Row(name, score(scenario, detections), time.perf_counter() - t0))
    return rows


def baseline_rows(scenario: Scenario, settings: Sequence[RatioSetting] = DEFAULT_GRID) -> list[Row]:
    t0 = time.perf_counter()
    grid = ratio_rule_grid(scenario, settings)
    per = (time.perf_counter() - t0) / max(1, len(settings))
    return [Row(s.name, score(scenario, grid[s]), per, kind="baseline") for s in settings]


def dominates(a: Scores, b: Scores) -> bool:
    """a is at least as good as b on clear recall, moderate recall and false alerts per term-day."""
    return (
        (a.recall_clear or 0.0) >= (b.recall_clear or 0.0)
        and (a.recall_moderate or 0.0) >= (b.recall_moderate or 0.0)
        and a.false_alerts_per_term_day <= b.false_alerts_per_term_day
    )


def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def markdown_table(rows: Sequence[Row]) -> str:
    lines = [
        "| detector | recall clear | recall moderate | precision | false alerts / term-day "
        "| median delay (buckets) | p90 delay (buckets) | median delay (min) | p90 delay (min) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r.scores
        lines.append(
            f"| {r.name} | {_fmt(s.recall_clear)} ({s.detected_clear}/{s.n_clear}) "
            f"| {_fmt(s.recall_moderate)} ({s.detected_moderate}/{s.n_moderate}) | {_fmt(s.precision, 3)} "
            f"| {s.false_alerts_per_term_day:.4f} ({s.false_alerts}) | {_fmt(s.delay_median_buckets, 1)} "
            f"| {_fmt(s.delay_p90_buckets, 1)} | {_fmt(s.delay_median_min, 0)} | {_fmt(s.delay_p90_min, 0)} |"
        )
    return "\n".join(lines)


def describe(scenario: Scenario) -> dict[str, Any]:
    times = np.fromiter((e.time for e in scenario.events), dtype=float, count=len(scenario.events))
    per_day = np.bincount(((times - scenario.start) // DAY).astype(int), minlength=scenario.days)
    weekday = (np.arange(scenario.days) % 7) < 5
    return {
        "seed": scenario.seed,
        "days": scenario.days,
        "warmup_days": scenario.warmup_days,
        "articles": len(scenario.events),
        "terms": len(scenario.terms),
        "sources": len(scenario.sources),
        "articles_per_weekday": float(per_day[weekday].mean()) if weekday.any() else None,
        "articles_per_weekend_day": float(per_day[~weekday].mean()) if (~weekday).any() else None,
        "articles_with_a_term": sum(1 for e in scenario.events if e.terms),
        "spikes": {
            f"{c}/{sh}": sum(1 for s in scenario.spikes if s.cls == c and s.shape == sh)
            for c in ("clear", "moderate")
            for sh in ("sudden", "ramped")
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pantau.alerter.evaluate", description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--days", type=int, default=28)
    ap.add_argument("--articles-per-day", type=float, default=20_000)
    ap.add_argument("--terms", type=int, default=200)
    ap.add_argument("--warmup-days", type=int, default=7)
    ap.add_argument("--clear", type=int, default=40, help="clear spikes to inject")
    ap.add_argument("--moderate", type=int, default=40, help="moderate spikes to inject")
    ap.add_argument("--json", metavar="PATH", help="also write the scenario summary and all rows as JSON")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    scenario = generate(
        args.seed,
        args.days,
        warmup_days=args.warmup_days,
        articles_per_day=args.articles_per_day,
        n_terms=args.terms,
        n_clear=args.clear,
        n_moderate=args.moderate,
    )
    gen_s = time.perf_counter() - t0
    info = describe(scenario)
    print(
        f"# Spike detection: seed {args.seed}, {args.days} days ({scenario.warmup_days} warm-up), "
        f"{info['articles']} articles ({info['articles_per_weekday']:.0f}/weekday, "
        f"{info['articles_per_weekend_day']:.0f}/weekend day), {info['terms']} terms, {info['sources']} sources"
    )
    print(f"spikes: {info['spikes']}; generated in {gen_s:.1f} s\n")

    t1 = time.perf_counter()
    base = baseline_rows(scenario)
    base_s = time.perf_counter() - t1
    print(
        f"## ElastAlert spike rule grid ({len(base)} settings, {base_s:.1f} s; evaluated at every document and "
        f"every 1-minute run; realert 1 min)\n"
    )
    print(markdown_table(base))

    pantau: list[Row] = []
    try:
        from pantau.alerter.detector import evaluation_detectors  # type: ignore[attr-defined]

        detectors = evaluation_detectors()
    except Exception as exc:  # the detector is developed separately; the grid stands on its own
        print(f"\nNote: no Pantau detector rows ({type(exc).__name__}: {exc}); showing the baseline grid only.")
    else:
        t2 = time.perf_counter()
        pantau = compare(scenario, {(n if n.startswith("pantau") else f"pantau {n}"): d for n, d in detectors.items()})
        print(f"\n## Pantau presets ({time.perf_counter() - t2:.1f} s)\n")
        print(markdown_table(pantau))

    dominance = {r.name: [p.name for p in pantau if dominates(p.scores, r.scores)] for r in base}
    if pantau:
        print(
            "\n## Is each ElastAlert setting dominated by a Pantau preset? (recall clear >=, recall moderate >=, "
            "false alerts per term-day <=)\n"
        )
        print("| ElastAlert setting | dominated by |\n|---|---|")
        for name, by in dominance.items():
            print(f"| {name} | {', '.join(by) if by else 'no'} |")
        n_dom = sum(1 for by in dominance.values() if by)
        print(f"\n{n_dom} of {len(base)} settings dominated.")
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")

    if args.json:
        payload = {
            "scenario": info,
            "generation_s": gen_s,
            "baseline_s": base_s,
            "rows": [{"name": r.name, "kind": r.kind, "seconds": r.seconds, **asdict(r.scores)} for r in base + pantau],
            "dominated_by": dominance if pantau else None,
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
