from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    goal: float | None = None
    higher_is_better: bool = True
    note: str = ""

    def met(self) -> bool | None:
        if self.goal is None:
            return None
        return self.value >= self.goal if self.higher_is_better else self.value <= self.goal

    def goal_text(self) -> str:
        return f"{'≥' if self.higher_is_better else '≤'} {self.goal:g}"

    def as_dict(self) -> dict:
        return {**asdict(self), "met": self.met()}


def rate(fn: Callable[[], int], min_seconds: float = 2.0) -> float:
    """Items per second of `fn` (which returns how many items it handled), over ≥ min_seconds."""
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < min_seconds or done == 0:
        done += fn()
    return done / elapsed
