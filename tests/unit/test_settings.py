from __future__ import annotations

import pytest
from pydantic import ValidationError

from pantau.common.settings import SETTINGS_GROUPS, ElasticsearchSettings, KafkaSettings, TopicSettings


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("PANTAU_KAFKA_BOOTSTRAP_SERVERS", "k1:9092, k2:9092")
    monkeypatch.setenv("PANTAU_TOPIC_ARTICLES_RAW", "staging.articles.raw")
    monkeypatch.setenv("PANTAU_ES_PASSWORD", "s3cret")
    assert KafkaSettings().servers == ["k1:9092", "k2:9092"]
    assert TopicSettings().name_of("articles_raw") == "staging.articles.raw"
    settings = ElasticsearchSettings()
    assert settings.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize("prefix", ["logs", "pantau_x", "Pantau", "pantau-"])
def test_index_prefix_must_stay_inside_what_the_roles_grant(prefix):
    with pytest.raises(ValidationError):
        ElasticsearchSettings(index_prefix=prefix)


def test_every_setting_is_described():
    for group in SETTINGS_GROUPS:
        for name, field in group.model_fields.items():
            assert field.description, f"{group.__name__}.{name} has no description"


def test_unknown_topic_id_is_a_clear_error():
    with pytest.raises(KeyError, match="no topic setting"):
        TopicSettings().name_of("articles_rwa")
