"""Notifier: alert → webhook delivery latency with 1,000 subscribers (goal p95 ≤ 2 s).

A real notifier process (`pantau notifier run`, default grouping settings) and 1,000 subscriptions,
each with its own signed webhook on a loopback receiver. Each measured alert names all 1,000; the
latency of a delivery is its arrival at the receiver minus the moment the broker acknowledged the
alert. A warm-up alert goes first (the worker joins its group, opens its connections)."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from pantau.alerter.publish import apply_subscriptions
from pantau.alerter.subscriptions import fresh_secret
from pantau.common.codec import Codec
from pantau.common.kafka_io import close_producer, make_producer
from tests.bench.figures import BenchStage, Figure
from tests.samples import topic_env, topic_names

SUBSCRIBERS = 1000
ALERTS = 3


class Receiver:
    """aiohttp on loopback in a thread: the arrival time of every POST, by path."""

    def __init__(self) -> None:
        self.arrivals: dict[str, list[float]] = {}
        self.count = 0  # read by the bench's thread while the receiver's thread adds to arrivals
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()

        async def hook(request: web.Request) -> web.Response:
            await request.read()
            self.arrivals.setdefault(request.path, []).append(time.time())
            self.count += 1
            return web.Response(status=204)

        def serve() -> None:
            asyncio.set_event_loop(self.loop)
            app = web.Application()
            app.router.add_post("/hooks/{n}", hook)
            runner = web.AppRunner(app, access_log=None)
            self.loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0, backlog=2048)
            self.loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()

        threading.Thread(target=serve, daemon=True).start()
        ready.wait(10)

    def received(self) -> int:
        return self.count


def run() -> list[Figure]:
    stage = BenchStage.start()
    kafka, contracts, suffix = stage.kafka, stage.contracts, stage.suffix
    topics, admin = stage.topics, stage.admin
    receiver = Receiver()
    # One set of subscribers per alert: the next message to a target told a moment ago would wait the
    # group interval (5 min) by design, which is not what this measures.
    subs = [{"id": f"bench-{n:05d}", "owner": f"owner-{n:05d}", "query": "amunisi", "modes": ["spike"],
             "channels": {"webhooks": [{"url": f"http://127.0.0.1:{receiver.port}/hooks/{n}",
                                        "secret": fresh_secret()}]}}
            for n in range(SUBSCRIBERS * (ALERTS + 1))]  # fmt: skip
    apply_subscriptions(subs, contracts, kafka, topics.subscriptions)
    example = json.loads(contracts.examples("alert", 1)[0].read_text(encoding="utf-8"))
    codec = Codec.for_topic(contracts, "alerts")
    producer = make_producer(kafka, "bench")
    env = dict(os.environ, PANTAU_KAFKA_BOOTSTRAP_SERVERS=kafka.bootstrap_servers, PANTAU_METRICS_PORT="0",
               PANTAU_NOTIFIER_GROUP=f"bench-{suffix}", PANTAU_NOTIFIER_ALLOW_LOOPBACK="true",
               PANTAU_LOG_LEVEL="INFO", **topic_env(topics))  # fmt: skip
    latencies: list[float] = []
    log_path = Path("out/bench-notifier.log")  # the worker's log, kept for a look after a bad run
    log_path.parent.mkdir(exist_ok=True)
    with log_path.open("w+b") as output:
        worker = subprocess.Popen([sys.executable, "-m", "pantau.cli", "notifier", "run"], env=env,
                                  stdout=output, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            for n in range(ALERTS + 1):  # the first is the warm-up
                alert = copy.deepcopy(example)
                incident = f"inc-bench-{suffix}-{n}"
                alert.update(id=f"{incident}:1", incident_id=incident, revision=1, state="firing",
                             subscription_ids=[s["id"] for s in subs[n * SUBSCRIBERS : (n + 1) * SUBSCRIBERS]],
                             detected_at=datetime.now(UTC).isoformat())  # fmt: skip
                before = receiver.received()
                value, headers = codec.encode(alert)
                producer.send(topics.alerts, key=incident.encode(), value=value, headers=headers).get(30)
                published = time.time()
                deadline = time.monotonic() + 120
                while receiver.received() < before + SUBSCRIBERS and time.monotonic() < deadline:
                    time.sleep(0.01)
                if receiver.received() < before + SUBSCRIBERS:
                    output.seek(0)
                    raise RuntimeError(f"{receiver.received() - before} of {SUBSCRIBERS} webhooks arrived; "
                                       f"notifier output:\n{output.read().decode()[-3000:]}")  # fmt: skip
                if n:
                    paths = [f"/hooks/{i}" for i in range(n * SUBSCRIBERS, (n + 1) * SUBSCRIBERS)]
                    latencies += [receiver.arrivals[path][-1] - published for path in paths]
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(60)
            close_producer(producer)
            admin.delete_topics(topic_names(topics))
            admin.close()
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p95 = latencies[int(len(latencies) * 0.95)]
    note = f"{ALERTS} alerts, each to {SUBSCRIBERS} subscribers' signed webhooks; default settings (0.5 s group wait)"
    return [
        Figure("notifier alert→webhook p50", p50, "s", note=note),
        Figure("notifier alert→webhook p95", p95, "s", goal=2.0, higher_is_better=False, note=note),
        Figure("notifier alert→webhook min", latencies[0], "s", note="the group wait is the floor"),
        Figure("notifier alert→webhook max", latencies[-1], "s"),
    ]
