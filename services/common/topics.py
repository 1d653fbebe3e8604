"""Planning `pantau topics apply`: desired topics (schemas/topics.yaml + settings) against what the
cluster has. Pure; the Kafka adapter describes the cluster and executes the plan.

The plan only ever grows or reconfigures: it creates missing topics, adds partitions, and sets the
configs topics.yaml names. It never deletes a topic, never lowers partitions (Kafka cannot) and never
reassigns replicas; those become `problems` for a human, and `apply` fails loudly on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pantau.common.contracts import Contracts
from pantau.common.settings import TopicSettings


@dataclass(frozen=True)
class TopicState:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str]


@dataclass
class TopicPlan:
    create: list[TopicState] = field(default_factory=list)
    add_partitions: dict[str, int] = field(default_factory=dict)
    alter_config: dict[str, dict[str, str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.create or self.add_partitions or self.alter_config)

    def describe(self) -> list[str]:
        lines = [f"create {t.name} ({t.partitions} partitions, rf {t.replication_factor})" for t in self.create]
        lines += [f"grow {name} to {n} partitions" for name, n in self.add_partitions.items()]
        lines += [f"set {name} {cfg}" for name, cfg in self.alter_config.items()]
        return lines + [f"PROBLEM {p}" for p in self.problems]


def desired_topics(contracts: Contracts, names: TopicSettings, broker_count: int) -> list[TopicState]:
    """Topics as they should be on this cluster: actual names from settings, replication capped at the
    broker count, and min.insync.replicas capped below it (acks=all must stay writable)."""
    wanted = []
    for spec in contracts.topics.values():
        rf = names.replication_factor or spec.replication_factor
        rf = max(1, min(rf, broker_count))
        config = dict(spec.config)
        if "min.insync.replicas" in config:
            config["min.insync.replicas"] = str(max(1, min(int(config["min.insync.replicas"]), rf - 1 or 1)))
        wanted.append(TopicState(names.name_of(spec.id), spec.partitions, rf, config))
    return wanted


def plan_topics(desired: list[TopicState], existing: dict[str, TopicState]) -> TopicPlan:
    plan = TopicPlan()
    for want in desired:
        have = existing.get(want.name)
        if have is None:
            plan.create.append(want)
            continue
        if want.partitions > have.partitions:
            plan.add_partitions[want.name] = want.partitions
        elif want.partitions < have.partitions:
            plan.problems.append(
                f"{want.name} has {have.partitions} partitions, topics.yaml says {want.partitions}: "
                "Kafka cannot remove partitions; update topics.yaml"
            )
        if want.replication_factor != have.replication_factor:
            plan.problems.append(
                f"{want.name} has replication factor {have.replication_factor}, wanted "
                f"{want.replication_factor}: reassign replicas with kafka-reassign-partitions"
            )
        changed = {k: v for k, v in want.config.items() if have.config.get(k) != v}
        if changed:
            plan.alter_config[want.name] = changed
    return plan
