"""Ring 1: a breaking change to a schema version fails the build unless the version is bumped.

Every committed revision of every schemas/json/*.schema.json file is compared with the file as it
is now: a version, once committed, may only change compatibly (new optional fields, wider types)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pantau.common.compat import breaking_changes

REPO = Path(__file__).resolve().parents[2]

BASE = {
    "type": "object",
    "required": ["id", "title"],
    "properties": {
        "id": {"type": "string"},
        "title": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "source": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
        "kind": {"enum": ["a", "b"]},
    },
}


def changed(edit):
    new = json.loads(json.dumps(BASE))
    edit(new)
    return breaking_changes(BASE, new)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda s: (s["required"].remove("title"), s["properties"].pop("title")),
            "title: required field removed",
        ),
        (lambda s: s["properties"]["id"].update(type="integer"), "id: type changed"),
        (lambda s: s["required"].append("tags"), "tags: new required field"),
        (
            lambda s: s["properties"]["source"]["properties"]["id"].update(type="number"),
            "source.id: type changed",
        ),
        (lambda s: s["properties"]["source"]["required"].append("name"), "source.name: new required field"),
        (lambda s: s["properties"]["tags"]["items"].update(type="integer"), "tags[]: type changed"),
        (lambda s: s["properties"]["kind"].update(enum=["a"]), "kind: enum lost values"),
        (lambda s: s.update(additionalProperties=False), "(root): additionalProperties closed"),
    ],
)
def test_breaking_changes_are_named(edit, expected):
    assert any(p.startswith(expected) for p in changed(edit)), changed(edit)


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s["properties"].update(summary={"type": "string"}),
        lambda s: s["properties"]["title"].update(type=["string", "null"]),
        lambda s: s["properties"]["kind"].update(enum=["a", "b", "c"]),
        lambda s: s["properties"]["title"].update(description="now documented"),
    ],
)
def test_compatible_changes_pass(edit):
    assert changed(edit) == []


def committed_revisions(path: Path) -> list[tuple[str, dict]]:
    rel = path.relative_to(REPO).as_posix()
    log = subprocess.run(["git", "log", "--format=%H", "--", rel], cwd=REPO, capture_output=True, text=True, check=True)
    revisions = []
    for commit in log.stdout.split():
        shown = subprocess.run(["git", "show", f"{commit}:{rel}"], cwd=REPO, capture_output=True, text=True)
        if shown.returncode == 0:
            revisions.append((commit[:10], json.loads(shown.stdout)))
    return revisions


SCHEMA_FILES = sorted((REPO / "schemas" / "json").glob("*.schema.json"))


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_no_committed_version_of_a_schema_was_broken(path):
    current = json.loads(path.read_text(encoding="utf-8"))
    for commit, old in committed_revisions(path):
        problems = breaking_changes(old, current)
        assert not problems, (
            f"{path.name} changed incompatibly since commit {commit}: {problems}. "
            "Add a new version file (name.vN+1.schema.json) instead."
        )
