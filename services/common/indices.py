"""Elasticsearch names and template rendering for `pantau es apply`. Pure.

Templates in schemas/elasticsearch/ use `${prefix}` for the index prefix (setting
PANTAU_ES_INDEX_PREFIX); file `articles.json` in index_templates/ becomes template
`<prefix>-articles`, matching indices `<prefix>-articles-YYYY.MM` behind alias `<prefix>-articles`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from string import Template
from typing import Any

from pantau.common.contracts import ContractError

INDEX_KINDS = ("articles", "alerts")


@dataclass(frozen=True)
class RenderedTemplate:
    kind: str  # "component" or "index"
    name: str
    body: dict[str, Any]


def monthly_index(prefix: str, kind: str, when: datetime) -> str:
    """The concrete index for a document whose immutable date is `when` (UTC month)."""
    return f"{prefix}-{kind}-{when.year:04d}.{when.month:02d}"  # not strftime: once per document


def expired_indices(names: list[str], prefix: str, now: datetime, keep_months: int) -> list[str]:
    """Monthly indices (of every kind) whose month ended more than `keep_months` whole months before
    `now`'s month: retention without ILM, one whole index at a time. Names that are not ours, or not
    monthly, are never listed."""
    pattern = re.compile(rf"{re.escape(prefix)}-(?:{'|'.join(INDEX_KINDS)})-(\d{{4}})\.(\d{{2}})")
    current = now.year * 12 + now.month - 1
    expired = []
    for name in names:
        match = pattern.fullmatch(name)
        if match and 1 <= int(match[2]) <= 12:
            month = int(match[1]) * 12 + int(match[2]) - 1
            if current - month > keep_months:
                expired.append(name)
    return sorted(expired)


def read_alias(prefix: str, kind: str) -> str:
    return f"{prefix}-{kind}"


def render_templates(es_dir: Path, prefix: str) -> list[RenderedTemplate]:
    """Component templates first (index templates compose them)."""
    rendered = []
    for kind, folder in (("component", "component_templates"), ("index", "index_templates")):
        for path in sorted((es_dir / folder).glob("*.json")):
            text = Template(path.read_text(encoding="utf-8")).substitute(prefix=prefix)
            try:
                body = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ContractError(f"{path}: not valid JSON: {exc}") from None
            rendered.append(RenderedTemplate(kind, f"{prefix}-{path.stem}", body))
    if not rendered:
        raise ContractError(f"{es_dir}: no templates found")
    return rendered
