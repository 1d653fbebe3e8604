"""Graceful shutdown: the signal handler only sets a flag; the service loop sees it, drains,
commits and closes in order. A second SIGINT/SIGTERM exits at once (exit code 130) for an operator
who does not want to wait."""

from __future__ import annotations

import logging
import os
import signal
import threading

log = logging.getLogger(__name__)


class ShutdownFlag:
    def __init__(self) -> None:
        self._event = threading.Event()
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def request(self, reason: str = "requested") -> None:
        if not self._event.is_set():
            log.info("shutdown requested", extra={"reason": reason})
        self._event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep up to `timeout` seconds; returns True (early) when shutdown was requested."""
        return self._event.wait(timeout)

    def _handle(self, signum: int, _frame) -> None:
        if self._event.is_set():
            os._exit(130)  # second signal: the operator means it
        self.request(signal.Signals(signum).name)

    def install(self) -> ShutdownFlag:
        """Handle SIGINT and SIGTERM (main thread only)."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
