"""Spike detection, once per watch (a watched term, a subscription query, a canonical entity). Pure.

Counting: stories, not articles (syndicated copies share the enricher's story id and count once), and
distinct sources, per bucket of publication time. Stream time is the latest publication time seen;
an article more than `lateness_s` older than stream time is late and, like backfill, feeds the
baseline only: history never alerts as news.

Expected count: the watch's share of the overall volume, learnt from its own closed buckets with
exponential forgetting, times the overall volume in the same window. News volume has a daily and a
weekly rhythm; scaling by the current volume is what keeps a quiet Sunday from hiding a spike and a
busy morning from faking one. The test is a negative-binomial tail whose dispersion is estimated per
watch and per window from the watch's own residuals (news is over-dispersed: a topic has busy days),
and floors decide for rare terms: a spike needs at least `min_stories` stories from `min_sources`
sources and `min_ratio` times the expected count, so one article is never a spike even from zero.
Several windows (a burst within an hour, a climb over a day) are tested at every hit.

Incidents: quiet → firing → cooldown → quiet, with hysteresis. One alert when an incident starts, an
update only when it has grown by half again, a resolution after `quiet_buckets` without a relaxed
condition, and a cooldown that doubles for a watch that keeps re-firing (a re-fire within cooldown
re-opens the same incident). The baseline is frozen while firing or cooling down (closed buckets add
their expected count, not their observed one). The incident id is a hash of the watch and the bucket
it started in, so replaying the same stream after a restart re-derives the same id.

State is plain dicts and lists (`WatchState.to_dict`), small and bounded, so the stream shell can keep
it in changelog-backed tables."""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from scipy.stats import nbinom, poisson

QUIET, FIRING, COOLDOWN = "quiet", "firing", "cooldown"
MAX_RECENT = 10  # article refs a watch state kept per bucket before "recent" (see WatchState.from_dict)
EARLIEST_KEPT = 32  # publication times that must be as old as the history claimed (see Volume.earliest)


@dataclass(frozen=True)
class Thresholds:
    min_stories: int
    min_sources: int
    min_score: float  # -log10 of the tail probability
    min_ratio: float  # observed / expected

    def key(self) -> list[float]:
        return [self.min_stories, self.min_sources, self.min_score, self.min_ratio]

    def relaxed(self) -> Thresholds:
        """What keeps an incident open (hysteresis: easier to stay firing than to start)."""
        return Thresholds(max(2, self.min_stories // 2), 1, self.min_score / 2, max(1.5, self.min_ratio / 2))


# Operating points, chosen on the evaluation harness's seed-7 scenario (`python -m
# pantau.alerter.evaluate`) and reported on another seed: "normal" meets the targets (recall on clear
# spikes >= 0.95 and on moderate ones >= 0.80, <= 0.01 false alerts per term-day); "high" trades
# false alerts for speed, "low" is for noisy watches.
PRESETS: dict[str, Thresholds] = {
    "high": Thresholds(min_stories=2, min_sources=2, min_score=3.0, min_ratio=2.0),
    "normal": Thresholds(min_stories=3, min_sources=3, min_score=4.0, min_ratio=2.5),
    "low": Thresholds(min_stories=6, min_sources=4, min_score=7.0, min_ratio=4.0),
}


def thresholds_for(sensitivity: dict[str, Any] | None) -> Thresholds:
    """A subscription's sensitivity: a preset, with explicit values overriding it."""
    sensitivity = sensitivity or {}
    base = PRESETS[sensitivity.get("preset") or "normal"]
    return Thresholds(
        min_stories=int(sensitivity.get("min_stories", base.min_stories)),
        min_sources=int(sensitivity.get("min_sources", base.min_sources)),
        min_score=float(sensitivity.get("threshold", base.min_score)),
        min_ratio=base.min_ratio,
    )


def loosest(thresholds: Iterable[Thresholds]) -> Thresholds:
    """The detector fires at the most sensitive subscriber's thresholds; each alert lists which
    subscriptions' own thresholds it meets."""
    items = list(thresholds) or [PRESETS["normal"]]
    return Thresholds(
        min(t.min_stories for t in items),
        min(t.min_sources for t in items),
        min(t.min_score for t in items),
        min(t.min_ratio for t in items),
    )


@dataclass(frozen=True)
class DetectorConfig:
    bucket_s: int = 900
    windows: tuple[int, ...] = (4, 24, 96)  # in buckets: 1 h, 6 h, 24 h
    lateness_s: int = 3600
    half_life_buckets: float = 7 * 96  # baseline memory: a week
    prior_stories: float = 0.5  # pseudo-stories over one day's volume: a new term starts rare
    prior_alpha: float = 0.5  # negative-binomial 1/size: a term's rate varies ~70% between days
    prior_alpha_weight: float = 4.0  # in squared expected stories
    max_alpha: float = 5.0
    # A fresh deployment knows no baselines: nothing fires until the stream has this much history
    # (backfill counts), or every entity would be "new" and spike at once.
    min_history_s: float = 86400.0
    quiet_buckets: int = 4  # an incident resolves after an hour below the relaxed condition
    cooldown_buckets: int = 8
    max_cooldown_buckets: int = 8 * 16
    update_growth: float = 1.5
    update_min_stories: int = 5
    max_top_articles: int = 10
    max_sources_kept: int = 200
    max_stories_kept: int = 3000

    @property
    def decay(self) -> float:
        return 0.5 ** (1.0 / self.half_life_buckets)

    @property
    def span(self) -> int:
        return max(self.windows)


@dataclass(frozen=True)
class Hit:
    """One article counted for one watch."""

    time: float  # publication time (epoch seconds), clamped by the caller to when it was first seen
    story_id: str
    source: str
    article: dict[str, Any]  # article_ref of the alert schema: id, title, url, source, published_at
    backfill: bool = False


@dataclass
class Firing:
    """What a watch's evaluation decided: an alert revision to publish."""

    watch: str
    incident_id: str
    revision: int
    state: str  # firing | updated | resolved
    detected_at: float
    window_buckets: int
    window_start: float
    window_end: float
    stories: int
    articles: int
    sources: list[str]
    expected: float
    score: float
    top_articles: list[dict[str, Any]]
    story_ids: list[str]
    # The subscribers' thresholds (Thresholds.key) this incident has met so far: who has been told.
    # None on a firing from before they were recorded.
    met: list[list[float]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Firing:
        return cls(**d)


def bucket_of(t: float, bucket_s: int) -> int:
    return int(t // bucket_s)


# ---------------------------------------------------------------------------------------------------
# Overall volume (articles per bucket): the exposure every watch's expectation scales with.


@dataclass
class Volume:
    buckets: dict[int, int] = field(default_factory=dict)
    closed: int | None = None  # last closed bucket
    s_vol: float = 0.0  # decayed sum of closed buckets' volume
    mean: float = 0.0  # decayed mean volume per closed bucket
    now: float = 0.0  # stream time
    # The EARLIEST_KEPT earliest publication times counted, ascending: how much history there is. Not
    # the one earliest: a single article dated 1970 (a CMS fault) would make a fresh deployment look
    # 56 years old and switch its first-day silence off.
    earliest: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"b": {str(k): v for k, v in self.buckets.items()}, "c": self.closed, "s": self.s_vol,
                "m": self.mean, "t": self.now, "e": self.earliest}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Volume:
        if not d:
            return cls()
        # state written before "e" kept one earliest time, "f": it starts the list
        # (as many times as the list holds: that history was there, and must not restart the first-day silence)
        earliest = d.get("e") or ([d["f"]] * EARLIEST_KEPT if d.get("f") is not None else [])
        return cls({int(k): v for k, v in d["b"].items()}, d["c"], d["s"], d["m"], d["t"], list(earliest))

    def history_s(self) -> float:
        """Stream time since the EARLIEST_KEPT-th earliest publication: 0 until that many articles."""
        return self.now - self.earliest[-1] if len(self.earliest) >= EARLIEST_KEPT else 0.0

    def count(self, t: float, cfg: DetectorConfig, n: int = 1) -> None:
        if len(self.earliest) < EARLIEST_KEPT or t < self.earliest[-1]:
            bisect.insort(self.earliest, t)
            del self.earliest[EARLIEST_KEPT:]
        b = bucket_of(t, cfg.bucket_s)
        if self.closed is not None and b <= self.closed:
            self.s_vol += n  # late: into the baseline directly
            return
        self.buckets[b] = self.buckets.get(b, 0) + n

    def advance(self, t: float, cfg: DetectorConfig) -> None:
        """Move stream time to `t` (never back) and close buckets past the lateness bound."""
        if t <= self.now:
            return
        self.now = t
        last = bucket_of(t - cfg.lateness_s, cfg.bucket_s) - 1
        if self.closed is None:
            self.closed = min(self.buckets, default=last + 1) - 1
        if last <= self.closed:
            return
        decay = cfg.decay
        steps = last - self.closed
        if steps > 4 * cfg.span:  # a long silence: decay in one step, the articles it skips included
            jump_to = last - cfg.span
            skipped = sum(v * decay ** (jump_to - b) for b, v in self.buckets.items() if self.closed < b <= jump_to)
            self.s_vol = self.s_vol * decay ** (jump_to - self.closed) + skipped
            self.closed = jump_to
        for b in range(self.closed + 1, last + 1):
            v = self.buckets.get(b, 0)
            self.s_vol = self.s_vol * decay + v
            self.mean = self.mean * decay + v * (1 - decay) if self.mean else float(v)
        self.closed = last
        for b in [b for b in self.buckets if b < last - 2 * cfg.span]:
            del self.buckets[b]

    def at(self, b: int) -> float:
        return float(self.buckets.get(b, self.mean))

    def window(self, end_bucket: int, n: int) -> float:
        return float(sum(self.buckets.get(b, 0) for b in range(end_bucket - n + 1, end_bucket + 1)))


# ---------------------------------------------------------------------------------------------------
# One watch.


@dataclass
class WatchState:
    # b -> [stories, articles, sources, (unused), backfilled stories, backfilled articles]: the baseline
    # learns from every story; windows, floors and sources take the live ones only (backfill never
    # alerts as news).
    buckets: dict[int, list[Any]] = field(default_factory=dict)
    stories: dict[str, int] = field(default_factory=dict)  # live story id -> bucket first counted (dedup)
    closed: int | None = None
    s_term: float = 0.0
    disp: dict[int, list[float]] = field(default_factory=dict)  # window -> [sum (o-e)^2, sum e]
    state: str = QUIET
    incident: dict[str, Any] | None = None
    cooldown_until: int = -1
    cooldown_level: int = 0
    last_seen: float = 0.0
    backfilled: dict[str, int] = field(default_factory=dict)  # backfilled story id -> its bucket (dedup)
    # The latest live articles, [bucket, article ref], for an alert's top articles: a few per watch, not
    # ten per bucket (the state is written on every hit; 96 buckets of ten refs made it 0.5-16 MB).
    recent: list[list[Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "b": {str(k): v for k, v in self.buckets.items()},
            "st": self.stories, "bf": self.backfilled, "r": self.recent, "c": self.closed, "s": self.s_term,
            "d": {str(k): v for k, v in self.disp.items()},
            "state": self.state, "inc": self.incident, "cu": self.cooldown_until,
            "cl": self.cooldown_level, "ls": self.last_seen,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> WatchState:
        if not d:
            return cls()
        buckets = {int(k): v for k, v in d["b"].items()}
        recent = d.get("r")
        if recent is None:  # state written before "r": its per-bucket article refs, newest kept
            recent = [[b, ref] for b in sorted(buckets) for ref in buckets[b][3]][-MAX_RECENT:]
            for entry in buckets.values():
                entry[3] = []
        return cls(buckets, dict(d["st"]), d["c"], d["s"],
                   {int(k): v for k, v in d["d"].items()}, d["state"], d["inc"], d["cu"], d["cl"], d["ls"],
                   dict(d.get("bf") or {}), recent)  # fmt: skip


def _count_backfill(entry: list[Any], stories: int, articles: int) -> None:
    """Add to a bucket entry's backfilled stories and articles (entry[4], entry[5]; an entry from state
    written before backfill was kept apart gets the two counters)."""
    entry.extend([0] * (6 - len(entry)))
    entry[4] += stories
    entry[5] += articles


def incident_id(watch: str, start_bucket: int) -> str:
    return hashlib.sha256(f"{watch}\x00{start_bucket}".encode()).hexdigest()[:32]


def tail_score(observed: int, expected: float, alpha: float) -> float:
    """-log10 P(X >= observed) for X negative binomial with mean `expected`, variance E + alpha E²."""
    if observed <= 0:
        return 0.0
    expected = max(expected, 1e-9)
    if alpha <= 1e-6:
        p = poisson.sf(observed - 1, expected)
    else:
        size = 1.0 / alpha
        p = nbinom.sf(observed - 1, size, size / (size + expected))
    return -math.log10(max(p, 1e-300))


class Detector:
    """Detection for many watches over one stream. The stream shell holds one per partition and
    keeps the dicts it is built on in tables; `replay` and the evaluation use it directly."""

    def __init__(self, cfg: DetectorConfig | None = None, volume: Volume | None = None) -> None:
        self.cfg = cfg or DetectorConfig()
        self.volume = volume or Volume()

    # -- the volume side -------------------------------------------------------------------------
    def count_article(self, t: float) -> None:
        self.volume.count(t, self.cfg)
        self.volume.advance(t, self.cfg)

    # -- one watch -------------------------------------------------------------------------------
    def rate(self, ws: WatchState) -> float:
        cfg = self.cfg
        day = max(self.volume.mean, 1.0) * (86400 / cfg.bucket_s)
        return (ws.s_term + cfg.prior_stories) / (self.volume.s_vol + day)

    def alpha(self, ws: WatchState, window: int) -> float:
        """Over-dispersion of the watch's counts in this window length: Var = E + alpha E² (moment
        estimate from its own residuals, shrunk towards the prior when it has little history)."""
        cfg = self.cfg
        num, den = ws.disp.get(window, (0.0, 0.0))
        w = cfg.prior_alpha_weight
        return min(cfg.max_alpha, max(0.0, (num + cfg.prior_alpha * w) / (den + w)))

    def _observed(self, ws: WatchState, b: int) -> float:
        entry = ws.buckets.get(b)
        return float(entry[0]) if entry else 0.0

    def close(self, ws: WatchState) -> None:
        """Fold the watch's buckets up to the volume's last closed bucket into its baseline."""
        cfg, vol = self.cfg, self.volume
        if vol.closed is None:
            return
        if ws.closed is None:
            ws.closed = min(min(ws.buckets, default=vol.closed + 1) - 1, vol.closed)
        if ws.closed >= vol.closed:
            return
        decay = cfg.decay
        steps = vol.closed - ws.closed
        frozen = ws.state != QUIET
        if steps > 4 * cfg.span:  # a long silence: decay in one step, the stories it skips included
            jump_to = vol.closed - cfg.span
            k = jump_to - ws.closed
            gap = [(b, entry[0]) for b, entry in ws.buckets.items() if ws.closed < b <= jump_to]
            skipped = 0.0 if frozen else sum(o * decay ** (jump_to - b) for b, o in gap)
            ws.s_term = ws.s_term * decay**k + skipped
            for pair in ws.disp.values():
                pair[0] *= decay**k
                pair[1] *= decay**k
            ws.closed = jump_to
        rate = self.rate(ws)
        for b in range(ws.closed + 1, vol.closed + 1):
            expected_b = rate * vol.at(b)
            o = self._observed(ws, b)
            ws.s_term = ws.s_term * decay + (expected_b if frozen else o)
            if frozen:
                continue
            for w in cfg.windows:
                o_w = sum(self._observed(ws, x) for x in range(b - w + 1, b + 1))
                e_w = rate * sum(vol.at(x) for x in range(b - w + 1, b + 1))
                pair = ws.disp.setdefault(w, [0.0, 0.0])
                pair[0] *= decay
                pair[1] *= decay
                if e_w < 1.0:
                    continue  # too little exposure to tell noise from dispersion: the prior speaks
                # Winsorised, so an unnoticed climb does not teach the watch that climbs are normal;
                # each bucket is in w windows: weighted 1/w, every window length weighs the same per day.
                o_w = min(o_w, e_w + 5.0 * math.sqrt(e_w * (1.0 + e_w)))
                pair[0] += ((o_w - e_w) ** 2 - e_w) / w
                pair[1] += e_w * e_w / w
        ws.closed = vol.closed
        horizon = vol.closed - cfg.span
        for b in [b for b in ws.buckets if b <= horizon]:
            del ws.buckets[b]
        if len(ws.stories) > cfg.max_stories_kept or any(v <= horizon for v in ws.stories.values()):
            kept = [(s, b) for s, b in ws.stories.items() if b > horizon]
            ws.stories = dict(kept[-cfg.max_stories_kept :])
        if ws.recent and ws.recent[0][0] <= horizon:
            ws.recent = [r for r in ws.recent if r[0] > horizon]
        if len(ws.backfilled) > cfg.max_stories_kept or any(v <= horizon for v in ws.backfilled.values()):
            kept = [(s, b) for s, b in ws.backfilled.items() if b > horizon]
            ws.backfilled = dict(kept[-cfg.max_stories_kept :])

    def add(self, ws: WatchState, hit: Hit) -> bool:
        """Count a hit. False when it only fed the baseline (late, backfill) or repeats a story."""
        cfg = self.cfg
        ws.last_seen = max(ws.last_seen, hit.time)
        self.close(ws)
        b = bucket_of(hit.time, cfg.bucket_s)
        late = self.volume.closed is not None and b <= self.volume.closed
        if hit.story_id in ws.stories:
            entry = ws.buckets.get(ws.stories[hit.story_id])
            if entry is not None:
                entry[1] += 1
                if hit.backfill:
                    _count_backfill(entry, 0, 1)
                elif hit.source not in entry[2] and len(entry[2]) < cfg.max_sources_kept:
                    entry[2].append(hit.source)
            return False
        if hit.story_id in ws.backfilled:
            entry = ws.buckets.get(ws.backfilled[hit.story_id])
            if entry is not None:
                entry[1] += 1
                _count_backfill(entry, 0, 1)
            return False
        if late:
            ws.s_term += 0.0 if ws.state != QUIET else 1.0
            return False
        entry = ws.buckets.setdefault(b, [0, 0, [], [], 0, 0])
        entry[0] += 1
        entry[1] += 1
        if hit.backfill:
            # In its bucket for the baseline (and its dispersion), apart for the alert: stories a new
            # source backfills from the last hour are history, not news, and a live article must not
            # fire on them.
            ws.backfilled[hit.story_id] = b
            _count_backfill(entry, 1, 1)
            return False
        ws.stories[hit.story_id] = b
        if hit.source not in entry[2] and len(entry[2]) < cfg.max_sources_kept:
            entry[2].append(hit.source)
        ws.recent.append([b, hit.article])
        if len(ws.recent) > cfg.max_top_articles:
            del ws.recent[: len(ws.recent) - cfg.max_top_articles]
        return True

    def window_stats(self, ws: WatchState, w: int, now_bucket: int) -> tuple[int, int, list[str], float]:
        stories = articles = 0
        sources: list[str] = []
        seen: set[str] = set()
        for b in range(now_bucket - w + 1, now_bucket + 1):
            entry = ws.buckets.get(b)
            if not entry:
                continue
            backfilled_stories = entry[4] if len(entry) > 4 else 0
            backfilled_articles = entry[5] if len(entry) > 5 else backfilled_stories
            stories += entry[0] - backfilled_stories
            articles += entry[1] - backfilled_articles
            for s in entry[2]:
                if s not in seen:
                    seen.add(s)
                    sources.append(s)
        expected = self.rate(ws) * self.volume.window(now_bucket, w)
        return stories, articles, sources, expected

    def _best_window(self, ws: WatchState, th: Thresholds, now_bucket: int, windows: tuple[int, ...] = ()
                     ) -> dict[str, Any] | None:  # fmt: skip
        best = None
        for w in windows or self.cfg.windows:
            stories, articles, sources, expected = self.window_stats(ws, w, now_bucket)
            if stories < th.min_stories or len(sources) < th.min_sources:
                continue
            if stories < th.min_ratio * expected:
                continue
            score = tail_score(stories, expected, self.alpha(ws, w))
            if score < th.min_score:
                continue
            if best is None or score > best["score"]:
                best = {"w": w, "stories": stories, "articles": articles, "sources": sources,
                        "expected": expected, "score": score}  # fmt: skip
        return best

    def evaluate(self, watch: str, ws: WatchState, th: Thresholds, fire: bool = True,
                 levels: Sequence[Thresholds] = ()) -> Firing | None:  # fmt: skip
        """Decide at stream time whether the watch starts, grows or ends an incident. `fire=False`
        (backfill, late hits) only lets incidents end. `th` is the loosest of the watch's subscribers'
        thresholds; `levels` are all of them: an open incident that comes to meet a stricter one is an
        update (its subscribers are told then), whether or not it grew by half."""
        cfg = self.cfg
        self.close(ws)
        now = self.volume.now
        now_bucket = bucket_of(now, cfg.bucket_s)
        if ws.state == COOLDOWN and now_bucket > ws.cooldown_until:
            ws.state, ws.cooldown_level = QUIET, max(0, ws.cooldown_level - 1)
        if ws.state == FIRING:
            inc = ws.incident
            assert inc is not None
            if "met" not in inc:  # opened before thresholds were recorded: what it meets now, told already
                inc["met"] = [lv.key() for lv in levels if self._best_window(ws, lv, now_bucket)]
            # Held open by the window it fired in (a burst ends an hour after it stops, not a day).
            held = self._best_window(ws, th.relaxed(), now_bucket, (inc["w"],))
            if held is not None:
                inc["last_hold"] = now_bucket
            total = self._incident_stories(ws, inc)
            grown = total >= max(inc["reported"] * cfg.update_growth, inc["reported"] + cfg.update_min_stories)
            if fire and grown:
                best = self._best_window(ws, th.relaxed(), now_bucket)
                if best is not None:
                    inc["last_hold"] = now_bucket
                    self._meet(ws, inc, levels, now_bucket)
                    return self._emit(watch, ws, best, "updated", now, now_bucket, total)
            if fire and self._meet(ws, inc, levels, now_bucket):
                best = self._best_window(ws, th.relaxed(), now_bucket) or held
                if best is not None:
                    inc["last_hold"] = now_bucket
                    return self._emit(watch, ws, best, "updated", now, now_bucket, total)
            if held is not None:
                return None
            if now_bucket - inc["last_hold"] >= cfg.quiet_buckets:
                ws.state = COOLDOWN
                ws.cooldown_until = now_bucket + min(
                    cfg.max_cooldown_buckets, cfg.cooldown_buckets * 2**ws.cooldown_level
                )
                ws.cooldown_level += 1
                stories, articles, sources, expected = self.window_stats(ws, inc["w"], now_bucket)
                stats = {"w": inc["w"], "stories": stories, "articles": articles, "sources": sources,
                         "expected": expected, "score": 0.0}  # fmt: skip
                return self._emit(watch, ws, stats, "resolved", now, now_bucket, self._incident_stories(ws, inc))
            return None
        if not fire or self.volume.history_s() < cfg.min_history_s:
            return None
        best = self._best_window(ws, th, now_bucket)
        if best is None:
            return None
        if ws.state == COOLDOWN and ws.incident is not None:
            ws.state = FIRING  # re-fire within cooldown: the same incident, grown
            ws.incident["last_hold"] = now_bucket
            self._meet(ws, ws.incident, levels, now_bucket)
            return self._emit(watch, ws, best, "updated", now, now_bucket, self._incident_stories(ws, ws.incident))
        start = now_bucket - best["w"] + 1
        ws.state = FIRING
        ws.incident = {"id": incident_id(watch, now_bucket), "rev": 0, "start": start, "w": best["w"],
                       "last_hold": now_bucket, "reported": 0, "met": []}  # fmt: skip
        self._meet(ws, ws.incident, levels, now_bucket)
        return self._emit(watch, ws, best, "firing", now, now_bucket, best["stories"])

    def _meet(self, ws: WatchState, inc: dict[str, Any], levels: Sequence[Thresholds], now_bucket: int) -> bool:
        """Record the subscribers' thresholds the watch meets now; True when one was not met before."""
        met = inc.setdefault("met", [])
        new = [lv.key() for lv in levels if lv.key() not in met and self._best_window(ws, lv, now_bucket)]
        met.extend(new)
        return bool(new)

    def _incident_stories(self, ws: WatchState, inc: dict[str, Any]) -> int:
        return sum(1 for b in ws.stories.values() if b >= inc["start"])

    def _emit(self, watch: str, ws: WatchState, stats: dict[str, Any], state: str, now: float, now_bucket: int,
              total: int) -> Firing:  # fmt: skip
        cfg, inc = self.cfg, ws.incident
        assert inc is not None
        inc["rev"] += 1
        inc["reported"] = max(inc["reported"], total)
        w = stats["w"]
        first = now_bucket - w + 1
        story_ids = [s for s, b in ws.stories.items() if first <= b <= now_bucket]
        # newest bucket first, in arrival order within a bucket
        tops = [ref for b, ref in sorted(ws.recent, key=lambda r: -r[0]) if first <= b <= now_bucket]
        return Firing(
            watch=watch, incident_id=inc["id"], revision=inc["rev"], state=state, detected_at=now,
            window_buckets=w, window_start=first * cfg.bucket_s, window_end=(now_bucket + 1) * cfg.bucket_s,
            stories=stats["stories"], articles=stats["articles"], sources=stats["sources"],
            expected=round(stats["expected"], 4), score=round(stats["score"], 3),
            top_articles=tops[: cfg.max_top_articles], story_ids=story_ids[-500:],
            met=[list(k) for k in inc["met"]] if "met" in inc else None,
        )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Merging watches that fire on the same stories into one incident.


@dataclass
class Merger:
    """Watches whose incidents share stories ("Kim Jong Un", "Putin", "amunisi" on the same summit
    coverage) become one incident: the first to fire names it, the others are `related`. Decisions
    depend only on the order firings arrive in, so a replay in the same order re-derives them."""

    min_overlap: float = 0.3  # shared stories / the smaller incident's: "Kim Jong Un" inside "amunisi" merges
    min_shared: int = 2  # and never on one story: one shared story of three is a coincidence
    horizon_s: float = 24 * 3600  # a group is forgotten this long after its last firing once none is open ...
    max_age_s: float = 7 * 24 * 3600  # ... or this long after it, open or not (a watch forgotten mid-incident)
    # incident id -> {"stories", "watches", "t", "live": member incident ids not yet resolved}
    open: dict[str, dict[str, Any]] = field(default_factory=dict)
    alias: dict[str, str] = field(default_factory=dict)  # watch incident id -> merged incident id

    def to_dict(self) -> dict[str, Any]:
        return {"open": self.open, "alias": self.alias}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Merger:
        m = cls()
        if d:
            m.open, m.alias = d["open"], d["alias"]
        return m

    def assign(self, firing: Firing, label: str) -> tuple[str, list[str]]:
        """The merged incident id for this firing and the labels of the other watches in it."""
        t = firing.detected_at
        # A group lives while one of its incidents is open: an incident held open by its day-long
        # window can resolve more than a day after its last update, and must resolve under the id
        # its subscribers were told.
        expired = [k for k, v in self.open.items()
                   if t - v["t"] > (self.max_age_s if v.get("live", True) else self.horizon_s)]  # fmt: skip
        for key in expired:
            del self.open[key]
        self.alias = {k: v for k, v in self.alias.items() if v in self.open}
        merged = self.alias.get(firing.incident_id)
        stories = set(firing.story_ids)
        if merged is None and stories:
            best, best_overlap = None, 0.0
            for key, group in self.open.items():
                shared = len(stories & set(group["stories"]))
                overlap = shared / min(len(stories), len(group["stories"]) or 1)
                if shared >= self.min_shared and overlap > best_overlap:
                    best, best_overlap = key, overlap
            merged = best if best is not None and best_overlap >= self.min_overlap else None
        if merged is None:
            merged = firing.incident_id
        group = self.open.setdefault(merged, {"stories": [], "watches": [], "t": t, "live": []})
        group["t"] = t
        group["stories"] = sorted(set(group["stories"]) | stories)[-1000:]
        live = set(group.get("live", []))
        if firing.state == "resolved":
            live.discard(firing.incident_id)
        else:
            live.add(firing.incident_id)
        group["live"] = sorted(live)
        if all(key != firing.watch for key, _ in group["watches"]):
            group["watches"].append([firing.watch, label])
        self.alias[firing.incident_id] = merged
        return merged, [lab for key, lab in group["watches"] if key != firing.watch]


def run_terms(
    events: Iterable[Any], thresholds: Thresholds, cfg: DetectorConfig | None = None, updates: bool = False
) -> list[tuple[str, float]]:
    """Detection over term-labelled events (anything with time, story_id, source, terms, history),
    as the stream does it: the overall volume, one watch per term, ticks for open incidents.
    Returns (term, detection time) for each incident start, and with `updates` also for each update
    (a grown incident: its subscribers are sent the new revision). The evaluation harness scores
    updates too: a spike that arrives while the term's incident is still open reaches the subscriber
    as an update, and an update outside every spike is a message as false as a new alert."""
    det = Detector(cfg)
    states: dict[str, WatchState] = {}
    out: list[tuple[str, float]] = []
    for ev in events:
        closed = det.volume.closed
        det.count_article(ev.time)
        if det.volume.closed != closed:
            for term in [k for k, ws in states.items() if ws.state != QUIET]:
                det.evaluate(term, states[term], thresholds, fire=False)  # only ends incidents
        for term in ev.terms:
            ws = states.setdefault(term, WatchState())
            counted = det.add(ws, Hit(ev.time, ev.story_id, ev.source, {}, backfill=ev.history))
            before = ws.state
            firing = det.evaluate(term, ws, thresholds, fire=counted)
            if firing is None:
                continue
            # An incident starts, or one cooling down re-opens (its subscribers are told again).
            if (before != FIRING and ws.state == FIRING) or (updates and firing.state == "updated"):
                out.append((term, firing.detected_at))
    return out


def evaluation_detectors(cfg: DetectorConfig | None = None) -> dict[str, Any]:
    """One detect callable per sensitivity preset, for `python -m pantau.alerter.evaluate`."""

    def make(name: str):
        return lambda events: run_terms(events, PRESETS[name], cfg, updates=True)

    return {f"pantau-{name}": make(name) for name in ("high", "normal", "low")}
