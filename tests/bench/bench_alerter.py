"""Spike detection: the evaluation harness (services/alerter/evaluate.py) on the report seed, and the
alerter's pure throughput.

The presets were chosen on seed 7; the figures here come from seed 11, a scenario they never saw:
28 days (7 of warm-up) of ~20,000 articles a weekday with a daily and weekly rhythm, 200 terms
from 0.2 to 200 stories a day, over-dispersed, with 40 clear and 40 moderate injected spikes (half
sudden within an hour, half ramped over 6-12 hours). Beside it, an ElastAlert-style spike rule at 80
settings. The whole table goes to out/eval-spikes.md."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from pantau.alerter import evaluate as ev
from pantau.alerter.detector import evaluation_detectors
from tests.bench.figures import Figure

REPORT_SEED = 11
OUT = Path(__file__).resolve().parents[2] / "out"


def _delays_by_shape(scenario, detections) -> dict[str, float]:
    per: dict[str, list[float]] = {}
    for spike in scenario.spikes:
        hits = [t for term, t in detections if term == spike.term and spike.start <= t <= spike.end + 6 * 3600]
        if hits:
            per.setdefault(spike.shape, []).append((min(hits) - spike.start) // ev.BUCKET_S)
    return {shape: statistics.median(v) for shape, v in per.items()}


def run() -> list[Figure]:
    scenario = ev.generate(seed=REPORT_SEED)
    base = ev.baseline_rows(scenario)
    detectors = evaluation_detectors()
    rows, by_shape = [], {}
    for name, detect in detectors.items():
        started = time.perf_counter()
        detections = list(detect(iter(scenario.events)))
        rows.append(ev.Row(name, ev.score(scenario, detections), time.perf_counter() - started))
        by_shape[name] = _delays_by_shape(scenario, detections)
    dominated = sum(1 for r in base if any(ev.dominates(p.scores, r.scores) for p in rows))
    OUT.mkdir(exist_ok=True)
    (OUT / "eval-spikes.md").write_text(
        f"# Spike detection, seed {REPORT_SEED}\n\n## Pantau presets\n\n{ev.markdown_table(rows)}\n\n"
        f"median delay by shape (buckets): {by_shape}\n\n## ElastAlert-style spike rule\n\n"
        f"{ev.markdown_table(base)}\n\n{dominated} of {len(base)} settings dominated by a Pantau preset\n",
        encoding="utf-8",
    )
    normal = next(r for r in rows if r.name.endswith("normal")).scores
    articles_per_s = len(scenario.events) / next(r for r in rows if r.name.endswith("normal")).seconds
    return [
        Figure("alerter recall, clear spikes (normal)", normal.recall_clear or 0.0, "ratio", 0.95),
        Figure("alerter recall, moderate spikes (normal)", normal.recall_moderate or 0.0, "ratio", 0.80),
        Figure(
            "alerter false alerts per 100 term-days (normal)",
            100 * normal.false_alerts_per_term_day,
            "per 100 t-days",
            1.0,
            higher_is_better=False,
        ),
        Figure(
            "alerter median delay, all spikes (normal)",
            normal.delay_median_buckets or 0.0,
            "buckets",
            2,
            higher_is_better=False,
        ),
        Figure(
            "alerter median delay, sudden spikes (normal)",
            by_shape["pantau-normal"].get("sudden", 0.0),
            "buckets",
            2,
            higher_is_better=False,
        ),
        Figure("alerter median delay, ramped spikes (normal)", by_shape["pantau-normal"].get("ramped", 0.0), "buckets"),
        Figure("ElastAlert settings dominated by a preset", dominated, f"of {len(base)}", len(base)),
        Figure("alerter detection throughput (pure, one core)", articles_per_s, "articles/s"),
    ]
