"""The sources file: which outlets Pantau watches and through which entry points. Pure.

    sources:
      - id: kompastv                      # lowercase; appears on every article and metric
        name: Kompas TV
        homepage: https://www.kompas.tv
        country: ID                       # ISO 3166-1 alpha-2
        languages: [id]                   # expected; the enricher still decides from the text
        timezone: Asia/Jakarta            # for dates the site writes without a zone
        entry_points:
          - {kind: feed, url: https://www.kompas.tv/feed}
          - {kind: sitemap, url: https://www.kompas.tv/sitemap-news.xml, min_interval_s: 120}
          - {kind: section, url: https://www.kompas.tv/internasional}
          - {kind: warc, path: archives/kompastv-2023.warc.gz}     # backfill only
          - {kind: jsonl, path: archives/kompastv.jsonl}          # backfill only

`load_sources` raises `SourcesError` naming the file, the entry (by index and id) and the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class SourcesError(ValueError):
    """The sources file is invalid; the message names file, entry and field."""


class EntryPoint(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["feed", "sitemap", "section", "warc", "jsonl"]
    url: str | None = Field(None, description="Feed, sitemap (index) or section page URL.")
    path: str | None = Field(None, description="WARC or JSON lines file for backfill (relative to the sources file).")
    min_interval_s: float = Field(60, ge=5, description="Fastest polling when new items keep coming.")
    max_interval_s: float = Field(3600, ge=5, description="Slowest polling when nothing changes.")

    @model_validator(mode="after")
    def _target(self) -> EntryPoint:
        live = self.kind in ("feed", "sitemap", "section")
        if live and not (self.url and re.match(r"^https?://[^/]+", self.url)):
            raise ValueError(f"a {self.kind} entry point needs an http(s) `url`")
        if not live and not self.path:
            raise ValueError(f"a {self.kind} entry point needs a `path`")
        if self.min_interval_s > self.max_interval_s:
            raise ValueError("min_interval_s is larger than max_interval_s")
        return self

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.url or self.path}"


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    name: str
    homepage: str = Field(pattern=r"^https?://")
    country: str | None = Field(None, pattern=r"^[A-Z]{2}$")
    languages: list[str] = Field(default_factory=list)
    timezone: str | None = None
    entry_points: list[EntryPoint] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Asia/Jakarta)") from None
        return value


class SourcesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: list[Source] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> SourcesFile:
        seen: set[str] = set()
        for source in self.sources:
            if source.id in seen:
                raise ValueError(f"source id {source.id!r} appears twice")
            seen.add(source.id)
        return self


def _where(loc: tuple, doc: dict) -> str:
    parts = []
    node = doc
    for item in loc:
        if isinstance(item, int) and isinstance(node, list) and item < len(node):
            node = node[item]
            label = f"[{item}]"
            if isinstance(node, dict) and "id" in node:
                label += f" ({node['id']})"
            parts.append(label)
        else:
            parts.append(f".{item}")
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts).lstrip(".")


def parse_sources(text: str, origin: str = "<sources>") -> SourcesFile:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SourcesError(f"{origin}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise SourcesError(f"{origin}: expected a mapping with a `sources` list")
    try:
        return SourcesFile.model_validate(doc)
    except ValidationError as exc:
        problems = [f"{origin}: {_where(e['loc'], doc) or '(file)'}: {e['msg']}" for e in exc.errors()]
        raise SourcesError("\n".join(problems)) from None


def load_sources(path: Path) -> SourcesFile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SourcesError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_sources(text, str(path))
