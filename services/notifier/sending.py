"""Deliveries in a process of their own: webhooks over aiohttp (on uvloop) and email over SMTP.

The notifier's loop (consumer, grouping, delivery log) and a thousand HTTP requests shared one GIL:
with both busy, an alert to 1,000 subscribers took twice the CPU of either alone on one core. Here
the sending runs in a child process with its own interpreter, so the two use two cores.

The parent passes batches of notifications down one pipe and reads outcomes from another
(multiprocessing connections: pickled, framed). The child exits when its jobs pipe closes, so a
parent killed with SIGKILL does not leave it behind; the parent treats the child's end as fatal
(the delivery log holds every pending notification, a restart sends them again)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import signal
import smtplib
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection

import aiohttp
import uvloop

from pantau.common.metrics import SENDER_PROCESS
from pantau.common.settings import NotifierSettings, ObservabilitySettings
from pantau.crawler.fetch import GuardedResolver
from pantau.crawler.guard import EgressBlocked, check_url
from pantau.notifier.core import Notification, Outcome, classify_http, email_message, webhook_body, webhook_headers

log = logging.getLogger(__name__)


@dataclass
class Attempt:
    notification: Notification
    outcome: Outcome
    error: str | None
    seconds: float


class Deliverer:
    """The asyncio side: one attempt per notification, each outcome handed to `done`."""

    def __init__(self, settings: NotifierSettings, done: Callable[[Notification, Outcome, str | None, float], None]):
        self.settings, self.done = settings, done
        self.session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task] = set()

    async def open(self) -> None:
        resolver = GuardedResolver(self.settings.allow_loopback, tuple(self.settings.internal_hosts))
        connector = aiohttp.TCPConnector(resolver=resolver, limit=self.settings.max_concurrent_sends,
                                         use_dns_cache=False)  # fmt: skip
        timeout = aiohttp.ClientTimeout(total=self.settings.webhook_timeout_s)
        # No cookie jar: one receiver's cookies have no business in another's requests.
        self.session = aiohttp.ClientSession(connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar())

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    def start_all(self, notifications: list[Notification]) -> None:
        loop = asyncio.get_running_loop()
        for notification in notifications:
            task = loop.create_task(self._attempt(notification))
            self._tasks.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(self._tasks.discard)

    async def _attempt(self, notification: Notification) -> None:
        started = time.perf_counter()
        try:
            if notification.target.channel == "webhook":
                outcome, error = await self._webhook(notification)
            else:
                outcome, error = await asyncio.get_running_loop().run_in_executor(None, self._email, notification)
        except Exception as exc:  # a bug must not lose the notification: it is retried and logged
            log.exception("delivery attempt failed unexpectedly")
            outcome, error = Outcome.RETRY, f"{type(exc).__name__}: {exc}"
        self.done(notification, outcome, error, time.perf_counter() - started)

    async def _webhook(self, notification: Notification) -> tuple[Outcome, str | None]:
        target = notification.target
        try:
            check_url(target.address, self.settings.allow_loopback)
        except EgressBlocked as exc:
            return Outcome.REFUSED, str(exc)
        body = webhook_body(notification)
        headers = webhook_headers(notification, body, time.time())
        try:
            assert self.session is not None
            async with self.session.post(target.address, data=body, headers=headers, allow_redirects=False) as reply:
                await reply.content.read(64 * 1024)  # a little of the body, for the connection's sake
                outcome = classify_http(reply.status)
                return outcome, None if outcome is Outcome.DELIVERED else f"HTTP {reply.status}"
        except EgressBlocked as exc:  # raised by the resolver: the name leads somewhere forbidden
            return Outcome.REFUSED, str(exc)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return Outcome.RETRY, f"{type(exc).__name__}: {exc}"[:2000]

    def _email(self, notification: Notification) -> tuple[Outcome, str | None]:
        s = self.settings
        message = email_message(notification, s.email_from)
        try:
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_s) as smtp:
                if s.smtp_starttls:
                    smtp.starttls()
                if s.smtp_username:
                    smtp.login(s.smtp_username, s.smtp_password.get_secret_value() if s.smtp_password else "")
                smtp.send_message(message)
            return Outcome.DELIVERED, None
        except (smtplib.SMTPException, OSError) as exc:  # the server is down or refused: retried
            return Outcome.RETRY, f"{type(exc).__name__}: {exc}"[:2000]


class SenderProcess:
    """The parent's handle on the child: `submit_all` notifications, their `Attempt`s arrive on
    `results`. A `None` there means the child ended (`exit_code` says how)."""

    def __init__(self, settings: NotifierSettings, results: queue.Queue):
        self.settings, self.results = settings, results
        self.sent: dict[str, Notification] = {}  # notification id -> the object its outcome settles
        self.process: subprocess.Popen | None = None
        self._jobs: Connection | None = None
        self._lock = threading.Lock()  # sent: written by the loop's thread, popped by the reader's

    def start(self) -> None:
        jobs_read, jobs_write = os.pipe()
        results_read, results_write = os.pipe()
        self.process = subprocess.Popen([sys.executable, "-m", "pantau.notifier.sending", str(jobs_read),
                                         str(results_write)], pass_fds=(jobs_read, results_write),
                                        start_new_session=True)  # fmt: skip
        os.close(jobs_read)
        os.close(results_write)
        SENDER_PROCESS["pid"] = self.process.pid
        self._jobs = Connection(jobs_write, readable=False)
        self._jobs.send(self.settings)  # the child's settings are the parent's, not a second reading of the env
        threading.Thread(target=self._read, args=(Connection(results_read, writable=False),),
                         name="notifier-outcomes", daemon=True).start()  # fmt: skip

    def submit_all(self, notifications: list[Notification]) -> None:
        if not notifications:
            return
        assert self._jobs is not None
        with self._lock:
            for notification in notifications:
                self.sent[notification.id] = notification
        self._jobs.send(notifications)  # one pickle: the alerts they share are written once

    def _read(self, outcomes: Connection) -> None:
        """Until the child's end: then (or on anything unexpected here) `None` tells the loop, which
        stops the worker rather than wait forever for outcomes that cannot come."""
        try:
            while True:
                batch = outcomes.recv()
                for nid, outcome, error, seconds in batch:
                    with self._lock:
                        notification = self.sent.pop(nid)
                    self.results.put(Attempt(notification, Outcome(outcome), error, seconds))
        except (EOFError, OSError):
            pass
        except Exception:
            log.exception("reading the sender's outcomes failed")
        finally:
            outcomes.close()
            if self.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(5)  # so the loop can say how it ended
            self.results.put(None)

    @property
    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def close(self) -> None:
        """Attempts still running are abandoned (the caller drained them first)."""
        if self.process is None:
            return
        assert self._jobs is not None
        try:
            self._jobs.send(None)
        except OSError:  # the child is gone already
            pass
        finally:
            self._jobs.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def child_main(jobs: Connection, outcomes: Connection) -> None:
    # The parent owns the lifecycle: a SIGTERM or SIGINT must let it drain the attempts in flight
    # here (the child has a session of its own, so a terminal's Ctrl-C or hangup never reaches it;
    # these are for a stray kill). The child ends when its jobs pipe says so or closes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    settings: NotifierSettings = jobs.recv()
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    outbox: list[tuple[str, str, str | None, float]] = []

    def flush() -> None:
        batch = outbox[:]
        outbox.clear()
        try:
            outcomes.send(batch)
        except OSError:  # the parent is gone
            loop.stop()

    def done(notification: Notification, outcome: Outcome, error: str | None, seconds: float) -> None:
        if not outbox:  # outcomes finished in the same loop turn travel together
            loop.call_soon(flush)
        outbox.append((notification.id, outcome.value, error, seconds))

    deliverer = Deliverer(settings, done)
    loop.run_until_complete(deliverer.open())

    def read_jobs() -> None:
        while True:
            try:
                batch = jobs.recv()
            except (EOFError, OSError):  # the parent died: nobody can log an outcome any more
                break
            if batch is None:
                break
            loop.call_soon_threadsafe(deliverer.start_all, batch)
        loop.call_soon_threadsafe(loop.stop)

    threading.Thread(target=read_jobs, name="notifier-jobs", daemon=True).start()
    try:
        loop.run_forever()
        loop.run_until_complete(asyncio.wait_for(deliverer.close(), 5))
    finally:
        loop.close()


if __name__ == "__main__":
    from pantau.common.logs import configure_logging

    obs = ObservabilitySettings()
    configure_logging("notifier-sender", obs.log_level, obs.log_format)
    child_main(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False))
