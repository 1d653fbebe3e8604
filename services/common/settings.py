"""Typed settings from the environment (pydantic-settings).

Every field has a description; `pantau settings` prints them all with their current values (secrets
masked). Topic and index names are settings, never literals in code: tests isolate themselves by
overriding them, and operators can rename a topic without a release.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PANTAU_KAFKA_", extra="ignore")

    bootstrap_servers: str = Field("127.0.0.1:9092", description="Comma-separated host:port list of Kafka brokers.")
    client_id_prefix: str = Field(
        "pantau", description="Prefix of every Kafka client id; the service name is appended."
    )
    request_timeout_ms: int = Field(30_000, description="Kafka request timeout in milliseconds.")
    max_message_bytes: int = Field(
        4 * 1024 * 1024,
        description="Largest message a producer sends; must not exceed the topics' max.message.bytes.",
    )
    # gzip by default; the notifier writes its delivery log with lz4 (gzip was its largest cost). lz4
    # was once blamed for the enricher's two-worker kill test losing articles; the cause was faust's
    # rebalance, which dropped fetched records (see pantau.common.faust_io._RewindingConsumer).
    compression_type: Literal["lz4", "gzip", "zstd", "none"] = Field(
        "gzip", description="Compression of the batches Pantau's kafka-python producers write."
    )

    @property
    def servers(self) -> list[str]:
        return [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()]


class TopicSettings(BaseSettings):
    """Actual topic names. The defaults equal the names in schemas/topics.yaml (a test checks)."""

    model_config = SettingsConfigDict(env_prefix="PANTAU_TOPIC_", extra="ignore")

    articles_raw: str = Field("articles.raw", description="Crawled articles (crawler → enricher).")
    articles_enriched: str = Field("articles.enriched", description="Enriched articles (enricher → indexer, alerter).")
    alerts: str = Field("alerts", description="Spike and match alerts (alerter → notifier, indexer).")
    subscriptions: str = Field("subscriptions", description="Compacted subscriptions, keyed by subscription id.")
    notifications: str = Field("notifications", description="The notifier's compacted delivery log.")
    dlq_enricher: str = Field("dlq.enricher", description="Dead letters of the enricher.")
    dlq_indexer: str = Field("dlq.indexer", description="Dead letters of the indexer.")
    dlq_alerter: str = Field("dlq.alerter", description="Dead letters of the alerter.")
    dlq_notifier: str = Field("dlq.notifier", description="Dead letters of the notifier.")
    replication_factor: int | None = Field(
        None,
        description="Override the replication factor of schemas/topics.yaml (it is always capped "
        "at the number of brokers).",
    )

    def name_of(self, topic_id: str) -> str:
        """The actual name of a topic given its id in schemas/topics.yaml (e.g. `articles_raw`)."""
        try:
            return getattr(self, topic_id)
        except AttributeError:
            raise KeyError(f"no topic setting for topic id {topic_id!r}") from None


class ElasticsearchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PANTAU_ES_", extra="ignore")

    url: str = Field("http://127.0.0.1:9200", description="Elasticsearch URL.")
    username: str = Field("pantau_reader", description="File-realm user this service connects as.")
    password: SecretStr = Field(SecretStr(""), description="Password of that user.")
    index_prefix: str = Field(
        "pantau",
        description="Prefix of every index, alias and template name. Must start with `pantau` "
        "because the least-privilege roles grant `pantau-*` only.",
    )
    request_timeout_s: float = Field(30.0, description="Per-request timeout in seconds.")
    retention_months: int = Field(
        13,
        ge=0,
        description="`pantau es retention` deletes monthly indices whose month ended more than this many "
        "whole months ago (13: a year back plus the same month last year for comparison).",
    )

    @field_validator("index_prefix")
    @classmethod
    def _prefix_is_granted(cls, value: str) -> str:
        if not re.fullmatch(r"pantau(-[a-z0-9][a-z0-9_-]*)?", value):
            raise ValueError("must be `pantau` or `pantau-<lowercase suffix>` (roles grant pantau-*)")
        return value


class ObservabilitySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PANTAU_", extra="ignore")

    metrics_port: int = Field(
        9400, description="Port of this service's /metrics, /healthz and /readyz (0 = any free port)."
    )
    metrics_host: str = Field("127.0.0.1", description="Address the metrics/health server binds.")
    log_level: str = Field("INFO", description="Log level (DEBUG, INFO, WARNING, ERROR).")
    log_format: str = Field("json", description="`json` (one object a line) or `text` for humans.")


class ContractSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PANTAU_", extra="ignore")

    schemas_dir: Path = Field(
        REPO_ROOT / "schemas", description="Folder with topics.yaml, JSON schemas and ES templates."
    )


class DeadLetterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PANTAU_DLQ_", extra="ignore")

    max_ratio: float = Field(
        0.5,
        description="Stop the consumer when more than this share of the last `window` messages "
        "went to the dead-letter topic: something is systematically wrong, not one bad message.",
    )
    window: int = Field(200, description="How many recent messages the dead-letter ratio is over.")
    min_messages: int = Field(
        50, description="The ratio is only judged once this many messages were seen in the window."
    )


class CrawlerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PANTAU_CRAWLER_", extra="ignore")

    sources_file: Path = Field(REPO_ROOT / "deploy/sources/sources.yaml", description="The sources YAML file.")
    state_file: Path = Field(
        Path.home() / ".cache/pantau/crawler/state.sqlite",
        description="SQLite file with entry-point schedules, the frontier, pending and published articles.",
    )
    user_agent: str = Field(
        "PantauBot/0.1 (+https://github.com/pantau/pantau; news monitoring)",
        description="User-Agent sent with every request; include a contact URL.",
    )
    allow_loopback: bool = Field(
        False, description="Let the egress guard allow loopback addresses (demo and tests only)."
    )
    internal_hosts: list[str] = Field(
        default_factory=list,
        description="Host names (exact; JSON list) exempt from the egress guard: internal sources named on "
        "purpose, such as the compose demo site. Address literals are never exempt.",
    )
    max_body_bytes: int = Field(10 * 1024 * 1024, description="Largest decoded body accepted.")
    total_timeout_s: float = Field(30.0, description="Total time for one fetch, all redirect hops included.")
    per_host_concurrency: int = Field(2, description="Requests in flight to one host at most.")
    per_host_delay_s: float = Field(1.0, description="Minimum delay between request starts to one host.")
    global_concurrency: int = Field(32, description="Requests in flight in all at most.")
    article_attempts: int = Field(5, description="Fetch attempts of an article URL before giving up on it.")
    max_sitemap_children: int = Field(50, description="Child sitemaps of an index read per poll (newest first).")
    warc_dir: Path | None = Field(None, description="Write every fetched response to rotating WARC files here.")
    warc_max_bytes: int = Field(512 * 1024 * 1024, description="Start a new WARC file past this size.")


class EnricherSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PANTAU_ENRICHER_", extra="ignore")

    group: str = Field("pantau-enricher", description="Consumer group (faust app id) the workers share.")
    terms_file: Path = Field(REPO_ROOT / "deploy/terms/terms.yaml", description="Watched terms (YAML).")
    data_dir: Path = Field(
        Path.home() / ".cache/pantau/enricher", description="faust's local data (table state) for this worker."
    )
    table_partitions: int = Field(6, description="Partitions of faust's internal topics (the story table).")
    table_replication_factor: int = Field(1, description="Replication factor of faust's internal topics.")
    batch_max: int = Field(
        64, ge=1, le=1000, description="Events enriched before their outputs are sent and awaited together ..."
    )
    batch_wait_s: float = Field(0.05, gt=0, le=5, description="... or fewer, once the first has waited this long.")


class IndexerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PANTAU_INDEXER_", extra="ignore")

    group: str = Field("pantau-indexer", description="Consumer group the indexer workers share.")
    batch_max_docs: int = Field(500, ge=1, description="A batch is sent once it holds this many documents ...")
    batch_max_bytes: int = Field(5_000_000, ge=1024, description="... or this many bytes of _bulk body ...")
    batch_max_wait_s: float = Field(0.2, gt=0, description="... or its oldest document waited this long.")
    max_request_bytes: int = Field(
        20_000_000,
        ge=1024,
        description="Largest _bulk body sent (Elasticsearch refuses bodies over http.max_content_length, "
        "100 MB by default). A single document larger than this goes to the dead-letter topic.",
    )
    max_inflight_bulks: int = Field(
        2, ge=1, le=8, description="Bulk requests sent and not yet settled; 2 keeps Elasticsearch busy between them."
    )
    poll_timeout_ms: int = Field(200, ge=1, description="How long one poll waits for records.")
    retry_initial_s: float = Field(0.2, gt=0, description="First delay before retrying a transient failure.")
    retry_max_s: float = Field(10.0, gt=0, description="Cap of the delay between retries (retries never stop).")
    shutdown_flush_s: float = Field(
        20.0, description="On SIGTERM, how long the last flush may keep retrying before the worker lets go."
    )
    lag_interval_s: float = Field(10.0, gt=0, description="How often the lag behind the latest offsets is measured.")


class AlerterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PANTAU_ALERTER_", extra="ignore")

    group: str = Field("pantau-alerter", description="Consumer group (faust app id) the workers share.")
    data_dir: Path = Field(
        Path.home() / ".cache/pantau/alerter", description="faust's local data (table state) for this worker."
    )
    web_port: int = Field(6067, description="faust's own web port (each worker on one host needs its own).")
    table_partitions: int = Field(6, description="Partitions of the alerter's internal topics (hits, tables).")
    table_replication_factor: int = Field(1, description="Replication factor of faust's internal topics.")
    bucket_s: int = Field(900, ge=60, description="Counting bucket of publication time, seconds.")
    lateness_s: int = Field(3600, ge=0, description="Articles older than stream time minus this feed baselines only.")
    min_history_s: float = Field(
        86400.0,
        ge=0,
        description="Nothing fires until the stream holds this much history (backfill counts): "
        "a fresh deployment has no baselines.",
    )
    entity_watches: bool = Field(True, description="Detect spikes for every canonical entity.")
    term_watches: bool = Field(True, description="Detect spikes for every watched term the enricher matched.")
    kibana_url: str | None = Field(None, description="Kibana's public URL, for the Discover link in alerts.")
    subscriptions_wait_s: float = Field(
        30.0,
        description="At start, articles wait until the subscriptions topic was read to its end; a warning "
        "is logged every this many seconds meanwhile.",
    )


class NotifierSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PANTAU_NOTIFIER_", extra="ignore")

    group: str = Field("pantau-notifier", description="Consumer group of the notifier (one active worker).")
    allow_loopback: bool = Field(
        False, description="Let webhooks reach loopback addresses (the demo and tests only); private, "
        "link-local (cloud metadata) and reserved addresses are refused regardless."
    )  # fmt: skip
    internal_hosts: list[str] = Field(
        default_factory=list,
        description="Host names webhooks may reach although they resolve to private addresses (a "
        "receiver on the same private network, named on purpose; compose's demo inbox).",
    )
    max_alert_age_s: float = Field(
        6 * 3600.0, gt=0, description="Alerts detected longer ago than this are not told (a new consumer group "
        "starts at the topic's beginning: a month of old alerts must not flood the subscribers)."
    )  # fmt: skip
    # Alertmanager waits 30 s because its sources fire alert by alert; the alerter has merged related
    # watches into one incident already, and what fires together leaves it within milliseconds (one
    # evaluation). A subscriber must hear within seconds: every 0.1 s here is in each alert's latency.
    group_wait_s: float = Field(0.5, ge=0, description="A new group waits this long for related alerts.")
    match_group_wait_s: float = Field(2.0, ge=0, description="The same for real-time matches (bursts).")
    group_interval_s: float = Field(300.0, ge=0, description="Least time between two messages to one target.")
    repeat_interval_s: float = Field(
        4 * 3600.0, ge=0, description="An incident told is told again in the same state only after this long."
    )
    hourly_cap: int = Field(20, ge=1, description="Messages per subscriber per hour; more wait, grouped.")
    retry_initial_s: float = Field(5.0, gt=0, description="First retry delay ceiling (full jitter).")
    retry_max_s: float = Field(6 * 3600.0, gt=0, description="Largest delay between two attempts.")
    give_up_after_s: float = Field(3 * 86400.0, gt=0, description="A notification is retried this long.")
    webhook_timeout_s: float = Field(10.0, gt=0, description="One webhook attempt's time limit.")
    max_concurrent_sends: int = Field(200, ge=1, description="Deliveries in flight (each target one at a time).")
    smtp_host: str = Field("127.0.0.1", description="Mail server for email notifications.")
    smtp_port: int = Field(25, description="Its port (587 with STARTTLS, 465 with TLS).")
    smtp_username: str | None = Field(None, description="SMTP login, when the server wants one.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password.")
    smtp_starttls: bool = Field(False, description="Upgrade the connection with STARTTLS.")
    smtp_timeout_s: float = Field(20.0, gt=0, description="One email attempt's time limit.")
    email_from: str = Field("Pantau <pantau@localhost>", description="The From: of notification emails.")
    digest_timezone: str = Field(
        "UTC", description="Daily digests cover midnight to midnight here (e.g. Asia/Jakarta)."
    )
    digest_grace_s: float = Field(
        120.0, ge=0, description="A digest is made this long after its period ends (the indexer catches up first)."
    )
    digest_top_articles: int = Field(10, ge=1, le=100, description="Stories listed in a digest (newest first).")
    digest_check_s: float = Field(30.0, gt=0, description="How often due digests are looked for.")

    @field_validator("digest_timezone")
    @classmethod
    def _is_a_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Asia/Jakarta)") from None
        return value


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PANTAU_API_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address the subscriber API binds.")
    port: int = Field(8810, description="Its port.")
    keys_file: Path = Field(
        Path("deploy/api/keys.yaml"), description="API keys, hashed (`pantau api key --owner X` adds one); "
        "re-read when it changes."
    )  # fmt: skip
    rate_limit: str = Field("120/minute", description="Requests per key (a key's own `rate_limit` overrides).")
    auth_failure_limit: str = Field("30/minute", description="Failed authentications per client address.")
    write_timeout_s: float = Field(10.0, gt=0, description="How long a write waits for the broker and read-back.")

    @field_validator("rate_limit", "auth_failure_limit")
    @classmethod
    def _is_a_limit(cls, value: str) -> str:
        from limits import parse

        try:
            parse(value)
        except ValueError as exc:
            raise ValueError(f"not a rate limit such as 120/minute: {exc}") from None
        return value


SETTINGS_GROUPS = (
    KafkaSettings,
    TopicSettings,
    ElasticsearchSettings,
    ObservabilitySettings,
    ContractSettings,
    DeadLetterSettings,
    CrawlerSettings,
    EnricherSettings,
    IndexerSettings,
    AlerterSettings,
    NotifierSettings,
    ApiSettings,
)
