"""`make bench`: runs every tests/bench/bench_*.py module's `run()`, prints one table and writes the
same figures to out/bench.json (git-ignored) so runs can be compared.

A benchmark module returns a list of Figure; a figure with a goal says whether it met it. Figures
are measurements of this run on this machine: nothing here asserts a time."""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from tests.bench.figures import Figure

REPO = Path(__file__).resolve().parents[2]


def main(selected: list[str]) -> int:
    modules = sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    if selected:
        modules = [m for m in modules if any(s in m for s in selected)]
    figures: list[Figure] = []
    for name in modules:
        print(f"running {name} …", file=sys.stderr, flush=True)
        figures += importlib.import_module(f"tests.bench.{name}").run()

    width = max(len(f.name) for f in figures) if figures else 10
    print(f"\n{'benchmark':<{width}}  {'value':>12}  {'unit':<14} goal")
    for f in figures:
        goal = "" if f.goal is None else f"{f.goal_text()}  {'met' if f.met() else 'NOT MET'}"
        print(f"{f.name:<{width}}  {f.value:>12.2f}  {f.unit:<14} {goal}")

    out = REPO / "out"
    out.mkdir(exist_ok=True)
    report = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "figures": [f.as_dict() for f in figures],
    }
    (out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {out / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
