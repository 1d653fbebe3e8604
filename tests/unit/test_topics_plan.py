"""Ring 1: `pantau topics apply` plans only growth and reconfiguration, never destruction."""

from __future__ import annotations

from pantau.common.settings import TopicSettings
from pantau.common.topics import TopicState, desired_topics, plan_topics


def test_desired_topics_cap_replication_and_min_insync_at_the_broker_count(contracts):
    one = {t.name: t for t in desired_topics(contracts, TopicSettings(), broker_count=1)}
    three = {t.name: t for t in desired_topics(contracts, TopicSettings(), broker_count=3)}
    assert one["articles.raw"].replication_factor == 1
    assert one["articles.raw"].config["min.insync.replicas"] == "1"
    assert three["articles.raw"].replication_factor == 3
    assert three["articles.raw"].config["min.insync.replicas"] == "2"
    assert one["subscriptions"].config["cleanup.policy"] == "compact"


def test_renamed_topics_follow_the_settings(contracts):
    names = TopicSettings(articles_raw="staging.articles.raw")
    assert "staging.articles.raw" in {t.name for t in desired_topics(contracts, names, 1)}


def test_plan_creates_missing_grows_partitions_and_sets_changed_configs():
    want = [TopicState("a", 6, 1, {"retention.ms": "100"}), TopicState("b", 3, 1, {"retention.ms": "5"})]
    have = {"b": TopicState("b", 1, 1, {"retention.ms": "9", "segment.ms": "1"})}
    plan = plan_topics(want, have)
    assert [t.name for t in plan.create] == ["a"]
    assert plan.add_partitions == {"b": 3}
    assert plan.alter_config == {"b": {"retention.ms": "5"}}
    assert plan.problems == []


def test_plan_is_empty_when_the_cluster_matches():
    want = [TopicState("a", 6, 1, {"retention.ms": "100"})]
    assert plan_topics(want, {"a": TopicState("a", 6, 1, {"retention.ms": "100", "x": "y"})}).empty


def test_fewer_partitions_or_another_replication_factor_is_a_problem_not_an_action():
    plan = plan_topics([TopicState("a", 2, 3, {})], {"a": TopicState("a", 6, 1, {})})
    assert plan.empty
    assert len(plan.problems) == 2
    assert "cannot remove partitions" in plan.problems[0]
