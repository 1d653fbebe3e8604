"""From enriched articles to alerts: the alerter's pure core, shared by the stream and `pantau spikes
replay`. Steps, in order, per article:

1. `event_time`: publication time, clamped to when Pantau first saw the article (pages misdate).
2. `watches_of`: the watches the article counts for — each watched term the enricher matched, each
   canonical entity, each spike subscription's query that matches (a query shared by many
   subscribers is one watch).
3. the detector counts the story for each watch and evaluates it (`detector.Detector`);
4. watches with an open incident are re-evaluated whenever stream time closes a bucket, so incidents
   resolve in quiet times too;
5. the merger folds watches firing on the same stories into one incident;
6. `alert_of` renders the alert message (schemas/json/alert.v1.schema.json).

Real-time subscriptions get a `match` alert per matching article (not backfill, not late)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pantau.alerter.detector import (
    QUIET,
    Detector,
    DetectorConfig,
    Firing,
    Hit,
    Merger,
    Thresholds,
    WatchState,
    loosest,
    thresholds_for,
)
from pantau.alerter.kibana import discover_url
from pantau.alerter.query import ArticleView, Query, parse_query
from pantau.common.times import parse_timestamp

FUTURE_SLACK_S = 300


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        moment = parse_timestamp(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def event_time(article: dict[str, Any]) -> float:
    """Publication time, never later than first seen (plus a little clock skew)."""
    seen = parse_time(article.get("first_seen_at")) or parse_time(article.get("crawled_at"))
    published = parse_time(article.get("published_at"))
    if seen is None:
        return published or 0.0
    if published is None or published > seen + FUTURE_SLACK_S:
        return seen
    return published


def article_ref(article: dict[str, Any]) -> dict[str, Any]:
    ref = {"id": article["id"], "title": (article.get("title") or "")[:2000], "url": article.get("url", "")[:4096],
           "source": (article.get("source") or {}).get("id", "")[:200]}  # fmt: skip
    if article.get("published_at"):
        ref["published_at"] = article["published_at"]
    return ref


@dataclass(frozen=True)
class Watch:
    key: str  # "term:amunisi", "entity:Q56226", "query:<canonical query>"
    type: str  # term | entity | query
    label: str
    query: str | None = None  # as written (the first subscription's spelling)


@dataclass
class Subscriptions:
    """The current subscriptions, compiled: queries parsed once, spike queries grouped into watches."""

    by_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    queries: dict[str, Query] = field(default_factory=dict)  # subscription id -> query
    watch_of: dict[str, str] = field(default_factory=dict)  # subscription id -> spike watch key
    watches: dict[str, Watch] = field(default_factory=dict)  # spike query watches
    watch_queries: dict[str, Query] = field(default_factory=dict)
    thresholds: dict[str, Thresholds] = field(default_factory=dict)  # watch key -> loosest
    subscribers_of: dict[str, set[str]] = field(default_factory=dict)  # watch key -> subscription ids
    _levels: dict[str, list[Thresholds]] = field(default_factory=dict)  # watch key -> distinct thresholds

    @classmethod
    def of(cls, subscriptions: Iterable[dict[str, Any]]) -> Subscriptions:
        subs = cls()
        for sub in subscriptions:
            subs.put(sub, rethreshold=False)
        for key in subs.subscribers_of:  # once per watch, not once per subscription
            subs._rethreshold(key)
        return subs

    def put(self, sub: dict[str, Any], rethreshold: bool = True) -> None:
        """Add or replace a subscription (already validated; raises QueryError on a bad query)."""
        query = parse_query(sub["query"])
        self.remove(sub["id"])
        self.by_id[sub["id"]] = sub
        self.queries[sub["id"]] = query
        if "spike" in sub["modes"]:
            key = f"query:{query.canonical}"
            self.watch_of[sub["id"]] = key
            self.subscribers_of.setdefault(key, set()).add(sub["id"])
            self.watch_queries.setdefault(key, query)
            if rethreshold:
                self._rethreshold(key)

    def remove(self, sub_id: str) -> None:
        self.by_id.pop(sub_id, None)
        self.queries.pop(sub_id, None)
        key = self.watch_of.pop(sub_id, None)
        if key is not None:
            self.subscribers_of[key].discard(sub_id)
            if self.subscribers_of[key]:
                self._rethreshold(key)
            else:
                del self.subscribers_of[key]
                self.watches.pop(key, None)
                self.watch_queries.pop(key, None)
                self.thresholds.pop(key, None)
                self._levels.pop(key, None)

    def _relabel(self, key: str) -> None:
        """The watch's label and query: its subscription's name and spelling while one owner has it, the
        canonical query once several do (an alert goes to every owner: one's private name is not
        another's to read)."""
        ids = sorted(self.subscribers_of[key])
        first = self.by_id[ids[0]]
        if len({self.by_id[s].get("owner") for s in ids}) == 1:
            self.watches[key] = Watch(key, "query", first.get("name") or first["query"], first["query"])
        else:
            canonical = self.watch_queries[key].canonical
            self.watches[key] = Watch(key, "query", canonical, canonical)

    def _rethreshold(self, key: str) -> None:
        """The watch's label, loosest thresholds and distinct thresholds, after its subscribers changed."""
        levels = {}
        for sub_id in self.subscribers_of[key]:
            th = thresholds_for(self.by_id[sub_id].get("sensitivity"))
            levels[tuple(th.key())] = th
        self._levels[key] = [levels[k] for k in sorted(levels)]
        self.thresholds[key] = loosest(self._levels[key])
        self._relabel(key)

    def levels(self, watch_key: str) -> list[Thresholds]:
        """The distinct thresholds of the watch's subscribers (the detector tells each level apart)."""
        return self._levels.get(watch_key, [])

    def subscribers(self, watch_key: str, firing: Firing, now: float) -> list[str]:
        """Subscriptions of this watch, not muted, whose own thresholds the incident has met: told
        when it first meets them (its start or a later revision), then of every revision to its end."""
        out = []
        for sub_id in self.subscribers_of.get(watch_key, ()):
            if muted(self.by_id[sub_id], now):
                continue
            th = thresholds_for(self.by_id[sub_id].get("sensitivity"))
            if firing.met is not None:
                if th.key() in firing.met:
                    out.append(sub_id)
            elif firing.state != "firing" or (firing.stories >= th.min_stories
                                              and len(firing.sources) >= th.min_sources
                                              and firing.score >= th.min_score):  # fmt: skip
                out.append(sub_id)  # a firing from before thresholds were recorded
        return sorted(out)

    def realtime(self, view: ArticleView, now: float) -> list[str]:
        wanted = [s for s, sub in self.by_id.items() if "realtime" in sub["modes"] and not muted(sub, now)]
        return sorted(s for s in wanted if self.queries[s].matches(view))


def muted(sub: dict[str, Any], now: float) -> bool:
    """The subscription is muted at `now` (the alerter names it in no alert; the notifier makes it no digest)."""
    until = parse_time(sub.get("muted_until"))
    return until is not None and now < until


@dataclass
class EngineConfig:
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    entity_watches: bool = True
    term_watches: bool = True
    kibana_base: str | None = None
    data_view: str = "pantau-articles"  # the articles data view's id in deploy/kibana/pantau.ndjson
    max_idle_watch_s: float = 21 * 86400


class Renderer:
    """Firings to alert messages: merges watches firing on the same stories (the merger's state is
    the caller's to keep), names the subscriptions each alert is for, links Kibana."""

    def __init__(self, subscriptions: Subscriptions, cfg: EngineConfig, merger: Merger | None = None) -> None:
        self.subs, self.cfg = subscriptions, cfg
        self.merger = merger or Merger()

    def render(self, firing: Firing, watch: Watch) -> dict[str, Any]:
        watch = self.subs.watches.get(watch.key, watch)  # labelled as the subscriptions stand now
        incident, related = self.merger.assign(firing, watch.label)
        merged = incident != firing.incident_id
        # A watch merged into another's incident keeps its own revision line under that incident.
        key = f"{incident}.{hashlib.sha256(firing.watch.encode()).hexdigest()[:8]}" if merged else incident
        return {
            "id": f"{key}:{firing.revision}",
            "incident_id": incident,
            "revision": firing.revision,
            "kind": "spike",
            "state": firing.state,
            "watch": {"type": watch.type, "key": watch.key[:2000], "query": watch.query, "label": watch.label[:500]},
            "subscription_ids": self.subs.subscribers(firing.watch, firing, firing.detected_at),
            "related": related[:50],
            "detected_at": iso(firing.detected_at),
            "window": {
                "start": iso(firing.window_start),
                "end": iso(firing.window_end),
                "seconds": int(firing.window_end - firing.window_start),
            },
            "observed": {"stories": firing.stories, "articles": firing.articles, "sources": len(firing.sources)},
            "expected": firing.expected,
            "score": firing.score,
            "sources": firing.sources[:500],
            "top_articles": firing.top_articles[:50],
            "kibana_url": self._kibana(watch, firing),
        }

    def _kibana(self, watch: Watch, firing: Firing) -> str | None:
        if not self.cfg.kibana_base:
            return None
        if watch.type == "query" and watch.key in self.subs.watch_queries:
            es_query: dict[str, Any] | None = self.subs.watch_queries[watch.key].to_elasticsearch()
        elif watch.type == "entity":
            es_query = {"term": {"entity_ids": watch.key.split(":", 1)[1]}}
        elif watch.type == "term":
            es_query = {"term": {"terms": watch.label}}
        else:
            es_query = None
        return discover_url(self.cfg.kibana_base, self.cfg.data_view, es_query, firing.window_start,
                            firing.window_end, label=watch.label)  # fmt: skip


class Engine:
    """Everything the alerter decides, over one stream in publication order. The stream shell keeps
    `states`, `detector.volume` and `merger` in tables; the replay keeps them in memory."""

    def __init__(self, subscriptions: Subscriptions, cfg: EngineConfig | None = None) -> None:
        self.cfg = cfg or EngineConfig()
        self.subs = subscriptions
        self.detector = Detector(self.cfg.detector)
        self.states: dict[str, WatchState] = {}
        self.renderer = Renderer(subscriptions, self.cfg)
        self.labels: dict[str, Watch] = {}

    # -- steps ------------------------------------------------------------------------------------
    def watches_of(self, article: dict[str, Any], view: ArticleView | None = None) -> list[Watch]:
        out: list[Watch] = []
        if self.cfg.term_watches:
            for term in article.get("terms") or []:
                name = term["term"]
                out.append(Watch(f"term:{name}", "term", name))
        if self.cfg.entity_watches:
            for entity in article.get("canonical_entities") or []:
                out.append(Watch(f"entity:{entity['id']}", "entity", entity["name"]))
        if self.subs.watch_queries:
            view = view or ArticleView.of(article)
            for key, query in self.subs.watch_queries.items():
                if query.matches(view):
                    out.append(self.subs.watches[key])
        return out

    def thresholds(self, watch_key: str) -> Thresholds:
        return self.subs.thresholds.get(watch_key) or thresholds_for(None)

    def process(self, article: dict[str, Any]) -> list[dict[str, Any]]:
        """One enriched article in; the alerts it causes out (in the order to publish them)."""
        t = event_time(article)
        det = self.detector
        closed_before = det.volume.closed
        det.count_article(t)
        now = det.volume.now
        backfill = bool(article.get("backfill"))
        alerts: list[dict[str, Any]] = []
        if det.volume.closed != closed_before:
            alerts.extend(self.tick())
        view = ArticleView.of(article) if self.subs.queries else None
        story = (article.get("story") or {}).get("id") or article["id"]
        hit = Hit(t, story, (article.get("source") or {}).get("id", "?"), article_ref(article), backfill=backfill)
        for watch in self.watches_of(article, view):
            self.labels[watch.key] = watch
            ws = self.states.setdefault(watch.key, WatchState())
            counted = det.add(ws, hit)
            firing = det.evaluate(watch.key, ws, self.thresholds(watch.key), fire=counted,
                                  levels=self.subs.levels(watch.key))  # fmt: skip
            if firing is not None:
                alerts.append(self.renderer.render(firing, self.labels[firing.watch]))
        # Every live match, a late one too: an article first seen hours after its publication is still
        # news to a subscriber who wants each matching article (as the stream tells them).
        if view is not None and not backfill:
            matched = self.subs.realtime(view, now)
            if matched:
                alerts.append(self.match_alert(article, matched, now))
        return alerts

    def tick(self) -> list[dict[str, Any]]:
        """Re-evaluate watches with an open incident (they may resolve), and drop idle quiet watches."""
        alerts = []
        now = self.detector.volume.now
        for key in sorted(k for k, ws in self.states.items() if ws.state != QUIET):
            firing = self.detector.evaluate(key, self.states[key], self.thresholds(key), fire=False,
                                            levels=self.subs.levels(key))  # fmt: skip
            if firing is not None:
                alerts.append(self.renderer.render(firing, self.labels.get(key) or watch_from_key(key)))
        for key in [k for k, ws in self.states.items()
                    if ws.state == QUIET and now - ws.last_seen > self.cfg.max_idle_watch_s]:  # fmt: skip
            del self.states[key]
            self.labels.pop(key, None)
        return alerts

    def match_alert(self, article: dict[str, Any], subscription_ids: list[str], now: float) -> dict[str, Any]:
        incident = "match-" + article["id"][:32]
        revision = int(article.get("revision") or 1)
        return {
            "id": f"{incident}:{revision}",
            "incident_id": incident,
            "revision": revision,
            "kind": "match",
            "state": "firing",
            "watch": {
                "type": "query",
                "key": f"article:{article['id']}",
                "query": None,
                "label": (article.get("title") or "")[:500],
            },
            "subscription_ids": subscription_ids,
            "related": [],
            "detected_at": iso(now),
            "observed": {"stories": 1, "articles": 1, "sources": 1},
            "expected": None,
            "score": None,
            "sources": [(article.get("source") or {}).get("id", "?")],
            "top_articles": [article_ref(article)],
            "kibana_url": None,
        }


def watch_from_key(key: str) -> Watch:
    kind, _, rest = key.partition(":")
    return Watch(key, kind if kind in ("term", "entity", "query") else "term", rest)
