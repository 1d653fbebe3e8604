"""The one metrics registry. Every Pantau metric is declared here, once, with its type, help and
bounded labels (no ids, URLs or free text as label values); services import what they update.

Names follow Prometheus conventions: `pantau_` prefix, base units, `_total` for counters,
`_seconds` / `_bytes` for histograms.
"""

from __future__ import annotations

from functools import cache

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)
# The notifier sends from a child process (notifier/sending.py sets its pid here): its CPU and memory
# as pantau_notifier_sender_process_*; nothing while there is no child.
SENDER_PROCESS: dict[str, int | None] = {"pid": None}
ProcessCollector(namespace="pantau_notifier_sender", pid=lambda: SENDER_PROCESS["pid"] or "none", registry=REGISTRY)


@cache
def child(metric, *labels: str):
    """`metric.labels(*labels)`, looked up once: labels() validates and takes a lock each call
    (~10 µs), which a loop telling a thousand subscribers pays several times per notification.
    Label values are bounded (see above), so this cache is too."""
    return metric.labels(*labels)


# ---- every service -------------------------------------------------------------------------
BUILD_INFO = Info("pantau_build", "Pantau version and the service this process runs.", registry=REGISTRY)

DEAD_LETTERS = Counter(
    "pantau_dead_letters_total",
    "Messages sent to a dead-letter topic, by stage, source topic id and error type.",
    ["service", "source_topic", "error_type"],
    registry=REGISTRY,
)
MESSAGES_DECODED = Counter(
    "pantau_messages_decoded_total",
    "Messages read from Kafka, by stage, topic id and outcome (ok, invalid).",
    ["service", "topic", "outcome"],
    registry=REGISTRY,
)
READY = Gauge(
    "pantau_ready",
    "1 when the service's /readyz would answer 200 (its dependencies are reachable).",
    ["service"],
    registry=REGISTRY,
)

# ---- crawler -------------------------------------------------------------------------------
CRAWLER_URLS = Counter(
    "pantau_crawler_urls_total",
    "One disposition per URL fetch: fetched, not_modified (entry points); published, duplicate, "
    "extract_failed (articles); robots_blocked, egress_blocked, too_large, timeout, http_error (either).",
    ["outcome"],
    registry=REGISTRY,
)
CRAWLER_FETCH_SECONDS = Histogram(
    "pantau_crawler_fetch_seconds",
    "Time to fetch one URL (all redirect hops), by kind (entry_point, article, robots).",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
    registry=REGISTRY,
)
CRAWLER_FETCH_BYTES = Histogram(
    "pantau_crawler_fetch_bytes",
    "Decoded body size of fetched responses, by kind.",
    ["kind"],
    buckets=(1e3, 1e4, 5e4, 1e5, 2.5e5, 5e5, 1e6, 5e6, 1e7),
    registry=REGISTRY,
)
CRAWLER_SOURCE_LAST_SUCCESS = Gauge(
    "pantau_crawler_source_last_success_timestamp_seconds",
    "When an entry point of the source was last fetched successfully (Unix time).",
    ["source"],
    registry=REGISTRY,
)
CRAWLER_SOURCE_LAST_NEW_ARTICLE = Gauge(
    "pantau_crawler_source_last_new_article_timestamp_seconds",
    "When the source last yielded a new article or revision (Unix time).",
    ["source"],
    registry=REGISTRY,
)
CRAWLER_PRODUCE_ERRORS = Counter(
    "pantau_crawler_produce_errors_total",
    "Sends to Kafka that failed (the article stays pending and is sent again).",
    registry=REGISTRY,
)
CRAWLER_PENDING = Gauge(
    "pantau_crawler_pending_articles",
    "Articles built but not yet acknowledged by Kafka.",
    registry=REGISTRY,
)
CRAWLER_FRONTIER = Gauge(
    "pantau_crawler_frontier_urls",
    "Discovered article URLs not yet fetched.",
    registry=REGISTRY,
)

# ---- enricher ------------------------------------------------------------------------------
ENRICHER_ARTICLES = Counter(
    "pantau_enricher_articles_total",
    "One disposition per raw article: enriched or dead_lettered.",
    ["outcome"],
    registry=REGISTRY,
)
ENRICHER_LANGUAGES = Counter(
    "pantau_enricher_languages_total",
    "Enriched articles by detected language (ISO 639-1 code, or und).",
    ["language"],
    registry=REGISTRY,
)
ENRICHER_ENTITIES = Counter(
    "pantau_enricher_entity_mentions_total",
    "Entity mentions found, by type (PER, ORG, LOC).",
    ["type"],
    registry=REGISTRY,
)
ENRICHER_SECONDS = Histogram(
    "pantau_enricher_processing_seconds",
    "Time to decode, enrich and encode one article (its batch's sends are awaited after the batch).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
    registry=REGISTRY,
)
ENRICHER_ENRICH_CPU_SECONDS = Counter(
    "pantau_enricher_enrich_cpu_seconds",
    "CPU time spent in the pure enrichment itself; against process_cpu_seconds_total, what streaming costs.",
    registry=REGISTRY,
)
ENRICHER_STORY_ENTRIES = Gauge(
    "pantau_enricher_story_entries",
    "Articles in this worker's story index (its own and other workers' decisions within the story window).",
    registry=REGISTRY,
)
ENRICHER_MODEL_LOAD_SECONDS = Gauge(
    "pantau_enricher_model_load_seconds",
    "Time the worker took to load its models (language, entities, stems) at start.",
    registry=REGISTRY,
)

# ---- indexer -------------------------------------------------------------------------------
INDEXER_DOCUMENTS = Counter(
    "pantau_indexer_documents_total",
    "One outcome per consumed record: indexed, duplicate (Elasticsearch already had this revision or "
    "a newer one) or dead_lettered.",
    ["index", "outcome"],
    registry=REGISTRY,
)
INDEXER_BULK_SECONDS = Histogram(
    "pantau_indexer_bulk_seconds",
    "Latency of one _bulk request.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
INDEXER_BATCH_DOCUMENTS = Histogram(
    "pantau_indexer_batch_documents",
    "Documents per flushed batch.",
    buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2500),
    registry=REGISTRY,
)
INDEXER_RETRIES = Counter(
    "pantau_indexer_retries_total",
    "Retries of documents after a transient failure, by reason (unreachable, 429, 5xx, item).",
    ["reason"],
    registry=REGISTRY,
)
INDEXER_LAG = Gauge(
    "pantau_indexer_lag_records",
    "Records behind the latest offset, per topic and partition owned by this worker.",
    ["topic", "partition"],
    registry=REGISTRY,
)
INDEXER_FRESHNESS_SECONDS = Histogram(
    "pantau_indexer_freshness_seconds",
    "At index time: now minus the article's published time (since=published) or crawl time (since=crawled).",
    ["since"],
    buckets=(1, 2, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400),
    registry=REGISTRY,
)

# ---- alerter -------------------------------------------------------------------------------
ALERTER_ARTICLES = Counter(
    "pantau_alerter_articles_total",
    "One outcome per consumed article: counted (live), baseline (backfill or later than the lateness "
    "bound: baselines only) or dead_lettered.",
    ["outcome"],
    registry=REGISTRY,
)
ALERTER_ALERTS = Counter(
    "pantau_alerter_alerts_total",
    "Alerts published, by kind (spike, match) and state (firing, updated, resolved).",
    ["kind", "state"],
    registry=REGISTRY,
)
ALERTER_WATCHES = Gauge(
    "pantau_alerter_watches",
    "Watches held by this worker, by state (quiet, firing, cooldown).",
    ["state"],
    registry=REGISTRY,
)
ALERTER_SUBSCRIPTIONS = Gauge(
    "pantau_alerter_subscriptions",
    "Subscriptions this worker knows, by outcome of loading (valid, invalid).",
    ["outcome"],
    registry=REGISTRY,
)
ALERTER_STREAM_LAG_SECONDS = Gauge(
    "pantau_alerter_stream_time_lag_seconds",
    "Wall clock minus stream time (latest publication time seen), per internal partition.",
    ["partition"],
    registry=REGISTRY,
)

# ---- notifier --------------------------------------------------------------------------------
NOTIFIER_ALERTS = Counter(
    "pantau_notifier_alerts_total",
    "Alerts read by the notifier, by kind (spike, match) and state (firing, updated, resolved).",
    ["kind", "state"],
    registry=REGISTRY,
)
NOTIFIER_OFFERS = Counter(
    "pantau_notifier_offers_total",
    "Alert x target decisions: queued, duplicate (told before), repeat (same state within the repeat "
    "interval), disabled (endpoint gone), unknown (no such subscription); stale: an alert too old to tell.",
    ["outcome"],
    registry=REGISTRY,
)
NOTIFIER_NOTIFICATIONS = Counter(
    "pantau_notifier_notifications_total",
    "Notification attempts by channel and outcome (delivered, retry, disabled, refused, failed, cancelled).",
    ["channel", "outcome"],
    registry=REGISTRY,
)
NOTIFIER_PENDING = Gauge(
    "pantau_notifier_pending",
    "Notifications logged and not yet delivered (retries included), and alerts waiting in groups.",
    ["what"],
    registry=REGISTRY,
)
NOTIFIER_DELIVERY_SECONDS = Histogram(
    "pantau_notifier_delivery_seconds",
    "From the alert's detection (since=alert) or its first article's publication (since=published) to "
    "the delivery, by channel.",
    ["channel", "since"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, 4 * 3600, 86400),
    registry=REGISTRY,
)
NOTIFIER_ATTEMPT_SECONDS = Histogram(
    "pantau_notifier_attempt_seconds",
    "Duration of one delivery attempt, by channel.",
    ["channel"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20),
    registry=REGISTRY,
)

# ---- subscriber API --------------------------------------------------------------------------
API_REQUESTS = Counter(
    "pantau_api_requests_total",
    "Subscriber API requests by method, route template and status code.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
API_REQUEST_SECONDS = Histogram(
    "pantau_api_request_seconds",
    "Subscriber API request duration by route template (writes wait for the broker's acknowledgement).",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
    registry=REGISTRY,
)
