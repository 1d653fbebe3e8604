"""The contracts in schemas/: topics.yaml and the JSON Schemas it names. Pure: files in, objects out.

Raises `ContractError` with the file and the problem when a contract file is malformed, so a bad
edit to schemas/ fails at load time with a message, not later with a KeyError.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

SCHEMA_BASE_URI = "https://pantau.dev/schemas/"
_SCHEMA_FILE = re.compile(r"^(?P<name>[a-z][a-z0-9-]*)\.v(?P<version>[0-9]+)\.schema\.json$")


class ContractError(ValueError):
    """A contract file in schemas/ is missing or malformed."""


@dataclass(frozen=True)
class TopicSpec:
    """One entry of schemas/topics.yaml."""

    id: str
    name: str
    description: str
    schema: str | None
    version: int | None
    partitions: int
    replication_factor: int
    config: dict[str, str]
    producers: tuple[str, ...] = ()
    consumers: tuple[str, ...] = ()
    dead_letter: tuple[str, ...] = ()
    key: str = ""

    @property
    def compacted(self) -> bool:
        return "compact" in self.config.get("cleanup.policy", "")


@dataclass(frozen=True)
class Contracts:
    root: Path
    topics: dict[str, TopicSpec] = field(default_factory=dict)

    def schema_path(self, name: str, version: int) -> Path:
        return self.root / "json" / f"{name}.v{version}.schema.json"

    def schema(self, name: str, version: int) -> dict[str, Any]:
        return load_json(self.schema_path(name, version))

    def schema_versions(self) -> dict[str, list[int]]:
        """Every schema file present, by name: {'article-raw': [1, 2], ...}."""
        found: dict[str, list[int]] = {}
        for path in sorted((self.root / "json").glob("*.schema.json")):
            m = _SCHEMA_FILE.match(path.name)
            if not m:
                raise ContractError(f"{path}: schema files are named <name>.v<version>.schema.json")
            found.setdefault(m["name"], []).append(int(m["version"]))
        return {name: sorted(versions) for name, versions in found.items()}

    def examples(self, name: str, version: int) -> list[Path]:
        return sorted((self.root / "examples" / name / f"v{version}").glob("*.json"))


def load_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContractError(f"{path}: missing") from None
    except json.JSONDecodeError as exc:
        raise ContractError(f"{path}: not valid JSON: {exc}") from None


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list) else (value,)


@cache
def load_contracts(root: Path) -> Contracts:
    """Read schemas/topics.yaml under `root` and check every schema it names exists."""
    path = root / "topics.yaml"
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContractError(f"{path}: missing") from None
    except yaml.YAMLError as exc:
        raise ContractError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("topics"), dict):
        raise ContractError(f"{path}: expected a mapping with a `topics` mapping")
    contracts = Contracts(root=root)
    for topic_id, entry in doc["topics"].items():
        where = f"{path}: topic {topic_id}"
        try:
            spec = TopicSpec(
                id=topic_id,
                name=str(entry["name"]),
                description=str(entry.get("description", "")),
                schema=entry.get("schema"),
                version=entry.get("version"),
                partitions=int(entry["partitions"]),
                replication_factor=int(entry["replication_factor"]),
                config={str(k): str(v) for k, v in (entry.get("config") or {}).items()},
                producers=_as_tuple(entry.get("producers")),
                consumers=_as_tuple(entry.get("consumers")),
                dead_letter=_as_tuple(entry.get("dead_letter")),
                key=str(entry.get("key", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ContractError(f"{where}: {exc!r} (needs name, partitions, replication_factor)") from None
        if spec.partitions < 1 or spec.replication_factor < 1:
            raise ContractError(f"{where}: partitions and replication_factor must be ≥ 1")
        if spec.schema is not None:
            if not isinstance(spec.version, int):
                raise ContractError(f"{where}: a topic with a schema needs an integer `version`")
            if not contracts.schema_path(spec.schema, spec.version).is_file():
                raise ContractError(f"{where}: schema file {spec.schema}.v{spec.version} not found")
        contracts.topics[topic_id] = spec
    for spec in contracts.topics.values():
        for dlq in spec.dead_letter:
            if dlq not in contracts.topics:
                raise ContractError(f"{path}: topic {spec.id}: dead_letter {dlq} is not a topic")
    return contracts
