"""Adaptive polling of feeds and sitemaps. Pure.

Faster while new items keep appearing (halve the interval), slower while nothing changes (x1.5),
always within the entry point's bounds; errors back off exponentially up to the maximum."""

from __future__ import annotations


def next_interval(current_s: float, new_items: int, min_s: float, max_s: float) -> float:
    factor = 0.5 if new_items > 0 else 1.5
    return max(min_s, min(max_s, current_s * factor))


def error_interval(error_streak: int, min_s: float, max_s: float) -> float:
    return max(min_s, min(max_s, min_s * 2 ** max(0, error_streak)))
