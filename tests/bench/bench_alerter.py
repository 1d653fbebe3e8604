"""Spike detection: the evaluation harness (services/alerter/evaluate.py) on the report seeds, and the
alerter's pure throughput.

The presets were chosen on seed 7; the figures here come from seeds 11 to 15, scenarios they never
saw, pooled (`evaluate.pool`), with each seed's own figures beside them. A scenario: 28 days (7 of
warm-up) of ~20,000 articles a weekday with a daily and weekly rhythm, 200 terms from 0.2 to 200
stories a day, over-dispersed, with 40 clear and 40 moderate injected spikes (each sudden within an
hour or ramped over 6-12 hours, at even odds). Beside them, an ElastAlert-style spike rule at 80
settings, scored on the same scenarios. The tables go to out/eval-spikes.md."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from pantau.alerter import evaluate as ev
from pantau.alerter.detector import evaluation_detectors
from tests.bench.figures import Figure

REPORT_SEEDS = (11, 12, 13, 14, 15)
OUT = Path(__file__).resolve().parents[2] / "out"


def _delays_by_shape(scenario, detections) -> dict[str, list[float]]:
    per: dict[str, list[float]] = {}
    for spike in scenario.spikes:
        hits = [t for term, t in detections if term == spike.term and spike.start <= t <= spike.end + 6 * 3600]
        if hits:
            per.setdefault(spike.shape, []).append((min(hits) - spike.start) // ev.BUCKET_S)
    return per


def _seed_line(seed: int, scenario, normal: ev.Scores, shapes: dict[str, list[float]], dominated: int, of: int) -> str:
    drawn = {shape: sum(1 for s in scenario.spikes if s.shape == shape) for shape in ("sudden", "ramped")}
    median = {shape: statistics.median(v) if v else None for shape, v in shapes.items()}
    return (
        f"| {seed} | {drawn['sudden']} / {drawn['ramped']} | {normal.recall_clear:.2f} | {normal.recall_moderate:.2f} "
        f"| {normal.false_alerts_per_term_day:.4f} | {normal.delay_median_buckets:.1f} | {median.get('sudden')} "
        f"| {median.get('ramped')} | {dominated} of {of} |"
    )


def run() -> list[Figure]:
    detectors = evaluation_detectors()
    scores: dict[str, list[ev.Scores]] = {}
    shapes: dict[str, dict[str, list[float]]] = {name: {} for name in detectors}
    seconds: dict[str, float] = {}
    articles = 0
    seed_lines = []
    for seed in REPORT_SEEDS:
        scenario = ev.generate(seed=seed)
        articles += len(scenario.events)
        base = ev.baseline_rows(scenario)
        rows = []
        for name, detect in detectors.items():
            started = time.perf_counter()
            detections = list(detect(iter(scenario.events)))
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started
            rows.append(ev.Row(name, ev.score(scenario, detections), 0.0))
            by_shape_here = _delays_by_shape(scenario, detections)
            for shape, delays in by_shape_here.items():
                shapes[name].setdefault(shape, []).extend(delays)
            if name.endswith("normal"):
                seed_shapes = by_shape_here
        for row in base + rows:
            scores.setdefault(row.name, []).append(row.scores)
        dominated = sum(1 for r in base if any(ev.dominates(p.scores, r.scores) for p in rows))
        normal_scores = next(r.scores for r in rows if r.name.endswith("normal"))
        seed_lines.append(_seed_line(seed, scenario, normal_scores, seed_shapes, dominated, len(base)))
        del scenario
    pooled = {name: ev.pool(s) for name, s in scores.items()}
    preset_rows = [ev.Row(name, pooled[name], seconds[name]) for name in detectors]
    base_rows = [ev.Row(name, pooled[name], 0.0, kind="baseline") for name in pooled if name not in detectors]
    dominated = sum(1 for r in base_rows if any(ev.dominates(p.scores, r.scores) for p in preset_rows))
    by_shape = {name: {shape: statistics.median(v) for shape, v in per.items()} for name, per in shapes.items()}
    seeds = ", ".join(map(str, REPORT_SEEDS))
    OUT.mkdir(exist_ok=True)
    (OUT / "eval-spikes.md").write_text(
        f"# Spike detection, seeds {seeds} pooled\n\n## Pantau presets\n\n{ev.markdown_table(preset_rows)}\n\n"
        f"median delay by shape (buckets): {by_shape}\n\n## Each seed, preset normal\n\n"
        "| seed | spikes sudden / ramped | recall clear | recall moderate | false alerts / term-day "
        "| median delay | sudden | ramped | ElastAlert settings dominated |\n|---|---|---|---|---|---|---|---|---|\n"
        + "\n".join(seed_lines)
        + f"\n\n## ElastAlert-style spike rule\n\n{ev.markdown_table(base_rows)}\n\n"
        f"{dominated} of {len(base_rows)} settings dominated by a Pantau preset (pooled)\n",
        encoding="utf-8",
    )
    normal = next(r for r in preset_rows if r.name.endswith("normal"))
    n = len(REPORT_SEEDS)
    return [
        Figure(f"alerter recall, clear spikes (normal, {n} seeds)", normal.scores.recall_clear or 0.0, "ratio", 0.95),
        Figure(
            f"alerter recall, moderate spikes (normal, {n} seeds)", normal.scores.recall_moderate or 0.0, "ratio", 0.80
        ),
        Figure(
            f"alerter false alerts per 100 term-days (normal, {n} seeds)",
            100 * normal.scores.false_alerts_per_term_day,
            "per 100 t-days",
            1.0,
            higher_is_better=False,
        ),
        Figure(
            f"alerter median delay, all spikes (normal, {n} seeds)",
            normal.scores.delay_median_buckets or 0.0,
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
        Figure("ElastAlert settings dominated by a preset (pooled)", dominated, f"of {len(base_rows)}", len(base_rows)),
        Figure("alerter detection throughput (pure, one core)", articles / seconds["pantau-normal"], "articles/s"),
    ]
