"""The crawler's durable state, in one SQLite file (survives restarts):

- entry points: last poll, validators (ETag / Last-Modified), interval, last new article, error streak;
- the frontier: links discovered and not yet fetched, with retry times;
- pending: articles built but not yet acknowledged by Kafka (re-sent after a restart);
- published: what Kafka acknowledged per article id (content hash, revision, first seen), which is
  what makes a republish of unchanged content a duplicate.

A link is marked done only when its article is acknowledged (or found to be a duplicate, or
refused for good); so a crash loses nothing, and at worst re-fetches a page.
Used from one thread (the crawler's event loop).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pantau.crawler.article import Known

SCHEMA = """
CREATE TABLE IF NOT EXISTS entry_points (
    key TEXT PRIMARY KEY, source_id TEXT NOT NULL, etag TEXT, last_modified TEXT,
    interval_s REAL NOT NULL, last_poll REAL, next_poll REAL NOT NULL, last_new REAL,
    last_success REAL, error_streak INTEGER NOT NULL DEFAULT 0, last_error TEXT);
CREATE TABLE IF NOT EXISTS frontier (
    url TEXT PRIMARY KEY, source_id TEXT NOT NULL, entry_point TEXT, title TEXT, published TEXT,
    discovered REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt REAL NOT NULL,
    done INTEGER NOT NULL DEFAULT 0, lastmod TEXT, outcome TEXT);
CREATE INDEX IF NOT EXISTS frontier_due ON frontier (done, next_attempt);
CREATE TABLE IF NOT EXISTS pending (
    id TEXT NOT NULL, revision INTEGER NOT NULL, frontier_url TEXT, message TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (id, revision));
CREATE TABLE IF NOT EXISTS published (
    id TEXT PRIMARY KEY, url TEXT NOT NULL, content_hash TEXT NOT NULL, revision INTEGER NOT NULL,
    first_seen_at TEXT NOT NULL, published REAL NOT NULL);
"""


def _instant(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


@dataclass
class EntryState:
    key: str
    source_id: str
    interval_s: float
    next_poll: float
    etag: str | None = None
    last_modified: str | None = None
    last_poll: float | None = None
    last_new: float | None = None
    last_success: float | None = None
    error_streak: int = 0
    last_error: str | None = None


@dataclass(frozen=True)
class FrontierItem:
    url: str
    source_id: str
    entry_point: str | None
    title: str | None
    published: str | None
    attempts: int


class CrawlState:
    def __init__(self, path: Path | str):
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # ---------------------------------------------------------------- entry points
    def entry(self, key: str, source_id: str, initial_interval_s: float) -> EntryState:
        row = self.db.execute(
            "SELECT key, source_id, interval_s, next_poll, etag, last_modified, last_poll, last_new,"
            " last_success, error_streak, last_error FROM entry_points WHERE key=?",
            (key,),
        ).fetchone()
        if row:
            return EntryState(*row)
        state = EntryState(key, source_id, initial_interval_s, 0.0)
        self.save_entry(state)
        return state

    def save_entry(self, s: EntryState) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO entry_points (key, source_id, interval_s, next_poll, etag, last_modified,"
            " last_poll, last_new, last_success, error_streak, last_error) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (s.key, s.source_id, s.interval_s, s.next_poll, s.etag, s.last_modified, s.last_poll, s.last_new,
             s.last_success, s.error_streak, s.last_error),
        )  # fmt: skip

    # ---------------------------------------------------------------- frontier
    def discover(
        self,
        url: str,
        source_id: str,
        entry_point: str,
        title: str | None,
        published: str | None,
        lastmod: str | None = None,
    ) -> bool:
        """Add a link; True when it is new, or known and reported changed since (a newer `lastmod`:
        feed <updated>, sitemap <lastmod>), so an edited article is fetched again."""
        lastmod = lastmod or published
        row = self.db.execute("SELECT done, lastmod FROM frontier WHERE url=?", (url,)).fetchone()
        now = time.time()
        if row is None:
            self.db.execute(
                "INSERT INTO frontier (url, source_id, entry_point, title, published, discovered, next_attempt,"
                " lastmod) VALUES (?,?,?,?,?,?,?,?)",
                (url, source_id, entry_point, title, published, now, now, lastmod),
            )
            return True
        done, known_lastmod = row
        if done and lastmod and known_lastmod and _instant(lastmod) > _instant(known_lastmod):
            self.db.execute(
                "UPDATE frontier SET done=0, attempts=0, next_attempt=?, lastmod=? WHERE url=?",
                (now, lastmod, url),
            )
            return True
        return False

    def due(self, limit: int, now: float | None = None) -> list[FrontierItem]:
        rows = self.db.execute(
            "SELECT url, source_id, entry_point, title, published, attempts FROM frontier"
            " WHERE done=0 AND next_attempt<=? ORDER BY next_attempt LIMIT ?",
            (now if now is not None else time.time(), limit),
        ).fetchall()
        return [FrontierItem(*r) for r in rows]

    def open_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM frontier WHERE done=0").fetchone()[0]

    def next_attempt_in(self) -> float | None:
        row = self.db.execute("SELECT min(next_attempt) FROM frontier WHERE done=0").fetchone()
        return None if row[0] is None else max(0.0, row[0] - time.time())

    def finish(self, url: str, outcome: str) -> None:
        self.db.execute("UPDATE frontier SET done=1, outcome=? WHERE url=?", (outcome, url))

    def retry_later(self, url: str, delay_s: float, outcome: str) -> None:
        self.db.execute(
            "UPDATE frontier SET attempts=attempts+1, next_attempt=?, outcome=? WHERE url=?",
            (time.time() + delay_s, outcome, url),
        )

    # ---------------------------------------------------------------- articles
    def known(self, article_id: str) -> Known | None:
        row = self.db.execute(
            "SELECT content_hash, revision, first_seen_at FROM published WHERE id=?", (article_id,)
        ).fetchone()
        pending = self.db.execute(
            "SELECT message FROM pending WHERE id=? ORDER BY revision DESC LIMIT 1", (article_id,)
        ).fetchone()
        if pending:  # a revision built but not yet acknowledged still counts as known
            msg = json.loads(pending[0])
            return Known(msg["content_hash"], msg["revision"], msg["first_seen_at"])
        return Known(*row) if row else None

    def add_pending(self, message: dict[str, Any], frontier_url: str | None) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO pending (id, revision, frontier_url, message, created) VALUES (?,?,?,?,?)",
            (message["id"], message["revision"], frontier_url, json.dumps(message, ensure_ascii=False), time.time()),
        )

    def pending(self, limit: int = 1000) -> list[tuple[dict[str, Any], str | None]]:
        rows = self.db.execute(
            "SELECT message, frontier_url FROM pending ORDER BY created LIMIT ?", (limit,)
        ).fetchall()
        return [(json.loads(message), url) for message, url in rows]

    def pending_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM pending").fetchone()[0]

    def acknowledged(self, message: dict[str, Any], frontier_url: str | None) -> None:
        """Kafka confirmed `message`: record it as published and close its frontier entry, atomically."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute(
                "INSERT INTO published (id, url, content_hash, revision, first_seen_at, published)"
                " VALUES (?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET url=excluded.url,"
                " content_hash=excluded.content_hash, revision=excluded.revision, published=excluded.published"
                " WHERE excluded.revision >= published.revision",
                (message["id"], message["url"], message["content_hash"], message["revision"],
                 message["first_seen_at"], time.time()),
            )  # fmt: skip
            self.db.execute("DELETE FROM pending WHERE id=? AND revision=?", (message["id"], message["revision"]))
            if frontier_url:
                self.db.execute("UPDATE frontier SET done=1, outcome='published' WHERE url=?", (frontier_url,))
