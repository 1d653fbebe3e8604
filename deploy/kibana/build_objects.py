"""Writes deploy/kibana/pantau.ndjson, the saved objects `make kibana-import` loads into Kibana:
data views, saved searches, visualizations and two dashboards (news monitor, source health).

Run `python deploy/kibana/build_objects.py` after changing it; a test fails when the NDJSON and this
builder disagree, and checks every field the objects use against the index templates."""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "pantau.ndjson"
PREFIX = "pantau"  # the default PANTAU_ES_INDEX_PREFIX; data views name the read aliases
ARTICLES, ALERTS = "pantau-articles", "pantau-alerts"
INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"


def data_view(view_id: str, title: str, time_field: str, name: str) -> dict:
    return {
        "type": "index-pattern",
        "id": view_id,
        "attributes": {"title": title, "name": name, "timeFieldName": time_field},
        "references": [],
    }


def search_source(query: str = "") -> str:
    return json.dumps({"query": {"query": query, "language": "kuery"}, "filter": [], "indexRefName": INDEX_REF})


def saved_search(obj_id: str, title: str, view: str, query: str, columns: list[str], sort: list[list[str]]) -> dict:
    return {
        "type": "search",
        "id": obj_id,
        "attributes": {
            "title": title,
            "description": "",
            "columns": columns,
            "sort": sort,
            "kibanaSavedObjectMeta": {"searchSourceJSON": search_source(query)},
        },
        "references": [{"name": INDEX_REF, "type": "index-pattern", "id": view}],
    }


def count_agg() -> dict:
    return {"id": "1", "enabled": True, "type": "count", "schema": "metric", "params": {}}


def histogram_agg(agg_id: str, field: str = "timestamp") -> dict:
    return {
        "id": agg_id,
        "enabled": True,
        "type": "date_histogram",
        "schema": "segment",
        "params": {"field": field, "interval": "auto", "min_doc_count": 1, "extended_bounds": {}},
    }


def terms_agg(agg_id: str, field: str, size: int, schema: str = "group") -> dict:
    return {
        "id": agg_id,
        "enabled": True,
        "type": "terms",
        "schema": schema,
        "params": {
            "field": field,
            "size": size,
            "order": "desc",
            "orderBy": "1",
            "missingBucket": False,
            "otherBucket": False,
        },
    }


def visualization(
    obj_id: str,
    title: str,
    vis_type: str,
    aggs: list[dict],
    view: str = ARTICLES,
    query: str = "",
    params: dict | None = None,
) -> dict:
    state = {
        "title": title,
        "type": vis_type,
        "aggs": aggs,
        "params": {"addTooltip": True, "addLegend": True, "legendPosition": "right", **(params or {})},
    }
    return {
        "type": "visualization",
        "id": obj_id,
        "attributes": {
            "title": title,
            "description": "",
            "visState": json.dumps(state),
            "uiStateJSON": "{}",
            "version": 1,
            "kibanaSavedObjectMeta": {"searchSourceJSON": search_source(query)},
        },
        "references": [{"name": INDEX_REF, "type": "index-pattern", "id": view}],
    }


def dashboard(obj_id: str, title: str, description: str, panels: list[tuple[str, str, int, int]]) -> dict:
    """panels: (object type, object id, width, height) laid out left to right on a 48-column grid."""
    layout, references, x, y, row_height = [], [], 0, 0, 0
    for n, (kind, ref_id, width, height) in enumerate(panels):
        if x + width > 48:
            x, y, row_height = 0, y + row_height, 0
        name = f"panel_{n}"
        layout.append(
            {
                "panelIndex": str(n),
                "gridData": {"x": x, "y": y, "w": width, "h": height, "i": str(n)},
                "embeddableConfig": {},
                "panelRefName": name,
                "version": "8.19.0",
            }
        )
        references.append({"name": name, "type": kind, "id": ref_id})
        x, row_height = x + width, max(row_height, height)
    return {
        "type": "dashboard",
        "id": obj_id,
        "attributes": {
            "title": title,
            "description": description,
            "panelsJSON": json.dumps(layout),
            "optionsJSON": json.dumps({"useMargins": True, "hidePanelTitles": False}),
            "timeRestore": True,
            "timeFrom": "now-24h",
            "timeTo": "now",
            "refreshInterval": {"pause": False, "value": 30000},
            "kibanaSavedObjectMeta": {
                "searchSourceJSON": json.dumps({"query": {"query": "", "language": "kuery"}, "filter": []})
            },
        },
        "references": references,
    }


def objects() -> list[dict]:
    line = {"type": "line", "params": {"seriesParams": []}}
    return [
        data_view(ARTICLES, ARTICLES, "timestamp", "Pantau articles"),
        data_view(ALERTS, ALERTS, "detected_at", "Pantau alerts"),
        saved_search(
            "pantau-search-latest",
            "Latest articles",
            ARTICLES,
            "",
            ["source_name", "title", "language", "people", "terms"],
            [["timestamp", "desc"]],
        ),
        # Stemmed fields: "amunisi" finds "amunisinya", like the alerter's matching.
        saved_search(
            "pantau-search-amunisi",
            "Articles: amunisi (stemmed)",
            ARTICLES,
            "title_stems:amunisi or text_stems:amunisi",
            ["source_name", "title", "story_id"],
            [["timestamp", "desc"]],
        ),
        saved_search(
            "pantau-search-alerts",
            "Alerts",
            ALERTS,
            "",
            ["watch_key", "state", "revision", "observed_stories", "expected", "score", "sources"],
            [["detected_at", "desc"]],
        ),
        visualization(
            "pantau-vis-volume-by-source",
            "Volume by source",
            "histogram",
            [count_agg(), histogram_agg("2"), terms_agg("3", "source_name", 10)],
            params=line["params"],
        ),
        visualization(
            "pantau-vis-volume-by-language",
            "Volume by language",
            "histogram",
            [count_agg(), histogram_agg("2"), terms_agg("3", "language", 10)],
        ),
        visualization(
            "pantau-vis-top-people", "Top people", "table", [count_agg(), terms_agg("2", "people", 20, "bucket")]
        ),
        visualization(
            "pantau-vis-top-organisations",
            "Top organisations",
            "table",
            [count_agg(), terms_agg("2", "organisations", 20, "bucket")],
        ),
        visualization(
            "pantau-vis-top-places", "Top places", "table", [count_agg(), terms_agg("2", "places", 20, "bucket")]
        ),
        visualization(
            "pantau-vis-term-amunisi",
            "Term timeline: amunisi",
            "line",
            [count_agg(), histogram_agg("2")],
            query="terms:amunisi",
        ),
        visualization(
            "pantau-vis-terms", "Watched terms", "table", [count_agg(), terms_agg("2", "terms", 30, "bucket")]
        ),
        visualization(
            "pantau-vis-stories",
            "Story clusters (copies and outlets per story)",
            "table",
            [
                count_agg(),
                {
                    "id": "3",
                    "enabled": True,
                    "type": "cardinality",
                    "schema": "metric",
                    "params": {"field": "source_id"},
                },
                terms_agg("2", "story_id", 25, "bucket"),
            ],
        ),
        visualization(
            "pantau-vis-source-volume",
            "Articles per source over time",
            "histogram",
            [count_agg(), histogram_agg("2", "crawled_at"), terms_agg("3", "source_id", 30)],
        ),
        visualization(
            "pantau-vis-source-last",
            "Last article per source",
            "table",
            [
                count_agg(),
                {"id": "3", "enabled": True, "type": "max", "schema": "metric", "params": {"field": "crawled_at"}},
                {"id": "4", "enabled": True, "type": "max", "schema": "metric", "params": {"field": "indexed_at"}},
                terms_agg("2", "source_id", 100, "bucket"),
            ],
        ),
        dashboard(
            "pantau-dashboard-monitor",
            "Pantau: news monitor",
            "What the news is saying right now: volume, people, organisations, places, watched terms, stories, alerts.",
            [
                ("visualization", "pantau-vis-volume-by-source", 24, 12),
                ("visualization", "pantau-vis-volume-by-language", 24, 12),
                ("visualization", "pantau-vis-top-people", 16, 14),
                ("visualization", "pantau-vis-top-organisations", 16, 14),
                ("visualization", "pantau-vis-top-places", 16, 14),
                ("visualization", "pantau-vis-term-amunisi", 24, 12),
                ("visualization", "pantau-vis-terms", 24, 12),
                ("visualization", "pantau-vis-stories", 24, 14),
                ("search", "pantau-search-alerts", 24, 14),
                ("search", "pantau-search-latest", 48, 16),
            ],
        ),
        dashboard(
            "pantau-dashboard-sources",
            "Pantau: source health",
            "Is every source still delivering? Articles per source over time and each source's last article.",
            [
                ("visualization", "pantau-vis-source-volume", 48, 14),
                ("visualization", "pantau-vis-source-last", 48, 18),
            ],
        ),
    ]


def render() -> str:
    return "".join(json.dumps(obj, ensure_ascii=False, sort_keys=True) + "\n" for obj in objects())


if __name__ == "__main__":
    OUTPUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUTPUT} ({len(objects())} objects)")
