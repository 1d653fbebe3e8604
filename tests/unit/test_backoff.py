from __future__ import annotations

import random

from pantau.common.backoff import Backoff


def test_ceiling_grows_exponentially_and_is_capped():
    b = Backoff(initial_s=0.5, maximum_s=10, multiplier=2)
    assert [b.ceiling(a) for a in range(7)] == [0.5, 1, 2, 4, 8, 10, 10]


def test_delays_are_jittered_within_the_ceiling():
    b = Backoff(initial_s=1, maximum_s=8)
    rng = random.Random(7)
    delays = [b.delay(3, rng) for _ in range(200)]
    assert all(0 <= d <= 8 for d in delays)
    assert len({round(d, 3) for d in delays}) > 150  # spread out, not lockstep
