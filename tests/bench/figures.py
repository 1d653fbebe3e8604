from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


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


@dataclass
class BenchStage:
    """The real servers and a fresh set of topics (suffixed, so runs never meet) for one benchmark."""

    infra: Any
    kafka: Any
    contracts: Any
    suffix: str
    topics: Any
    admin: Any

    @classmethod
    def start(cls) -> BenchStage:
        import uuid

        from pantau.common.contracts import load_contracts
        from pantau.common.kafka_io import apply_topics, make_admin
        from pantau.common.settings import ContractSettings, KafkaSettings
        from tests.infra import ensure_up
        from tests.samples import suffixed_topics

        infra = ensure_up()
        kafka = KafkaSettings(bootstrap_servers=infra.kafka_bootstrap)
        contracts = load_contracts(ContractSettings().schemas_dir)
        suffix = uuid.uuid4().hex[:8]
        topics = suffixed_topics(f"bench{suffix}")
        admin = make_admin(kafka, "bench")
        apply_topics(admin, contracts, topics)
        return cls(infra, kafka, contracts, suffix, topics, admin)
