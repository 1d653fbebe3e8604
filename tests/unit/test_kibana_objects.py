"""Kibana cannot run here: the saved objects are checked structurally. The NDJSON parses and is what
the builder writes, every reference resolves, and every field an object uses exists in the index
templates with a type that supports the use."""

from __future__ import annotations

import importlib.util
import json
import re

from pantau.common.indices import read_alias
from pantau.common.settings import ContractSettings
from tests.infra import REPO

KIBANA = REPO / "deploy" / "kibana"
ES_DIR = ContractSettings().schemas_dir / "elasticsearch"
AGGREGATABLE = {"keyword", "date", "integer", "long", "float", "double", "boolean"}
METRIC_TYPES = {"integer", "long", "float", "double", "date"}


def objects() -> list[dict]:
    return [json.loads(line) for line in (KIBANA / "pantau.ndjson").read_text(encoding="utf-8").splitlines()]


def field_types(kind: str) -> dict[str, str]:
    path = ES_DIR / "component_templates" / f"{kind}-mappings.json"
    props = json.loads(path.read_text(encoding="utf-8"))["template"]["mappings"]["properties"]
    out = {}
    for name, spec in props.items():
        out[name] = spec["type"]
        for sub, sub_spec in spec.get("fields", {}).items():
            out[f"{name}.{sub}"] = sub_spec["type"]
    return out


def fields_by_view() -> dict[str, dict[str, str]]:
    return {read_alias("pantau", kind): field_types(kind) for kind in ("articles", "alerts")}


def view_of(obj: dict) -> str:
    return next(r["id"] for r in obj["references"] if r["type"] == "index-pattern")


def test_the_ndjson_is_what_the_builder_writes():
    spec = importlib.util.spec_from_file_location("build_objects", KIBANA / "build_objects.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (KIBANA / "pantau.ndjson").read_text(encoding="utf-8") == module.render()


def test_every_reference_resolves_and_ids_are_unique():
    objs = objects()
    ids = [(o["type"], o["id"]) for o in objs]
    assert len(ids) == len(set(ids))
    for obj in objs:
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in set(ids), f"{obj['id']}: {ref} does not resolve"
    for board in (o for o in objs if o["type"] == "dashboard"):
        panels = json.loads(board["attributes"]["panelsJSON"])
        names = {r["name"] for r in board["references"]}
        assert panels and all(p["panelRefName"] in names for p in panels)


def test_data_views_are_the_read_aliases_with_date_time_fields():
    views = fields_by_view()
    for view in (o for o in objects() if o["type"] == "index-pattern"):
        fields = views[view["attributes"]["title"]]
        assert fields[view["attributes"]["timeFieldName"]] == "date"


def test_every_field_used_exists_with_a_type_that_supports_the_use():
    views = fields_by_view()
    used = 0
    for obj in objects():
        if obj["type"] not in ("visualization", "search"):
            continue
        fields = views[view_of(obj)]
        attrs = obj["attributes"]
        source = json.loads(attrs["kibanaSavedObjectMeta"]["searchSourceJSON"])
        for name in re.findall(r"([a-z_.]+):", source["query"]["query"]):
            assert name in fields, f"{obj['id']}: query field {name}"
            used += 1
        for column in attrs.get("columns", []):
            assert column in fields, f"{obj['id']}: column {column}"
            used += 1
        for field, _order in attrs.get("sort", []):
            assert fields.get(field) in AGGREGATABLE, f"{obj['id']}: sort on {field}"
        if obj["type"] == "visualization":
            for agg in json.loads(attrs["visState"])["aggs"]:
                field = agg["params"].get("field")
                if agg["type"] == "count":
                    continue
                kind = fields.get(field)
                assert kind is not None, f"{obj['id']}: {agg['type']} on missing field {field}"
                if agg["type"] == "date_histogram":
                    assert kind == "date", f"{obj['id']}: date_histogram on {field} ({kind})"
                elif agg["type"] in ("max", "min", "avg", "sum"):
                    assert kind in METRIC_TYPES, f"{obj['id']}: {agg['type']} on {field} ({kind})"
                else:
                    assert kind in AGGREGATABLE, f"{obj['id']}: {agg['type']} on {field} ({kind})"
                used += 1
    assert used > 30


def test_the_dashboards_monitoring_teams_open_are_there():
    titles = {o["attributes"]["title"] for o in objects()}
    assert {"Pantau: news monitor", "Pantau: source health", "Term timeline: amunisi", "Top people",
            "Top organisations", "Top places", "Alerts", "Last article per source"} <= titles  # fmt: skip
