"""What every long-running `pantau` service process shares: logging, contracts, the health and
metrics server on its own port, the shutdown flag, and Kafka clients built from settings."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from pantau import __version__
from pantau.common.contracts import Contracts, load_contracts
from pantau.common.health import Health, HealthServer
from pantau.common.logs import configure_logging
from pantau.common.metrics import BUILD_INFO
from pantau.common.settings import ContractSettings, KafkaSettings, ObservabilitySettings
from pantau.common.shutdown import ShutdownFlag

log = logging.getLogger(__name__)


@dataclass
class ServiceContext:
    service: str
    contracts: Contracts
    kafka: KafkaSettings
    shutdown: ShutdownFlag
    health: Health
    closers: list[Callable[[], None]] = field(default_factory=list)

    def producer(self, **overrides):
        from pantau.common.kafka_io import make_producer

        return make_producer(self.kafka, self.service, **overrides)


def run_service_process(service: str, body: Callable[[ServiceContext], None], serve_metrics: bool = True) -> None:
    """Set up, run `body(ctx)` until it returns (it watches ctx.shutdown), tear down in order."""
    obs = ObservabilitySettings()
    configure_logging(service, obs.log_level, obs.log_format)
    BUILD_INFO.info({"version": __version__, "service": service})
    ctx = ServiceContext(
        service=service,
        contracts=load_contracts(ContractSettings().schemas_dir),
        kafka=KafkaSettings(),
        shutdown=ShutdownFlag().install(),
        health=Health(service),
    )
    server = HealthServer(ctx.health, obs.metrics_host, obs.metrics_port).start() if serve_metrics else None
    try:
        body(ctx)
    finally:
        for close in reversed(ctx.closers):
            close()
        if server is not None:
            server.stop()
        ctx.shutdown.uninstall()
        log.info("stopped")
