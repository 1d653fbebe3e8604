"""Breaking-change detection between two versions of one JSON Schema file. Pure.

A change is breaking when a message valid before may be invalid now, or a consumer written for
the old shape may find a field gone or of another type: a required field removed, a field's type
narrowed or changed, a new required field, an enum narrowed, additional properties closed. Such
changes need a new version file (name.vN+1.schema.json); the old one stays for old messages.
"""

from __future__ import annotations

from typing import Any


def _types(node: dict[str, Any]) -> set[str] | None:
    t = node.get("type")
    if t is None:
        return None
    return {t} if isinstance(t, str) else set(t)


def breaking_changes(old: dict[str, Any], new: dict[str, Any], path: str = "") -> list[str]:
    where = path or "(root)"
    problems: list[str] = []
    if old.get("$ref") != new.get("$ref"):
        problems.append(f"{where}: $ref changed from {old.get('$ref')} to {new.get('$ref')}")
    old_t, new_t = _types(old), _types(new)
    if old_t is not None and new_t is not None and not old_t <= new_t:
        problems.append(f"{where}: type changed from {sorted(old_t)} to {sorted(new_t)}")
    if "enum" in old and "enum" in new and not set(map(repr, old["enum"])) <= set(map(repr, new["enum"])):
        problems.append(
            f"{where}: enum lost values {sorted(set(map(repr, old['enum'])) - set(map(repr, new['enum'])))}"
        )
    if "enum" not in old and "enum" in new:
        problems.append(f"{where}: enum added")
    if old.get("additionalProperties", True) is not False and new.get("additionalProperties", True) is False:
        problems.append(f"{where}: additionalProperties closed")

    old_req, new_req = set(old.get("required", [])), set(new.get("required", []))
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    for name in sorted(old_req - new_req):
        gone = name not in new_props
        problems.append(f"{path}.{name}".lstrip(".") + (": required field removed" if gone else ": no longer required"))
    for name in sorted(new_req - old_req):
        problems.append(f"{path}.{name}".lstrip(".") + ": new required field (old messages lack it)")
    for name, old_prop in old_props.items():
        if name in new_props:
            problems += breaking_changes(old_prop, new_props[name], f"{path}.{name}".lstrip("."))
        elif name not in old_req and new.get("additionalProperties", True) is False:
            problems.append(f"{path}.{name}".lstrip(".") + ": optional field removed from a closed object")
    if isinstance(old.get("items"), dict) and isinstance(new.get("items"), dict):
        problems += breaking_changes(old["items"], new["items"], f"{path}[]")
    for name, old_def in old.get("definitions", {}).items():
        if name in new.get("definitions", {}):
            problems += breaking_changes(old_def, new["definitions"][name], f"#/definitions/{name}")
        else:
            problems.append(f"#/definitions/{name}: removed")
    return problems
