"""Capped exponential backoff with full jitter (the AWS architecture blog's variant): retries of
many workers spread out instead of hammering a recovering server in lockstep. Pure."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    initial_s: float = 0.2
    maximum_s: float = 30.0
    multiplier: float = 2.0

    def ceiling(self, attempt: int) -> float:
        """Upper bound of the delay before retry number `attempt` (0-based)."""
        return min(self.maximum_s, self.initial_s * self.multiplier ** max(0, attempt))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        return (rng or random).uniform(0, self.ceiling(attempt))
