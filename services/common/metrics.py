"""The one metrics registry. Every Pantau metric is declared here, once, with its type, help and
bounded labels (no ids, URLs or free text as label values); services import what they update.

Names follow Prometheus conventions: `pantau_` prefix, base units, `_total` for counters,
`_seconds` / `_bytes` for histograms.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Info
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

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
