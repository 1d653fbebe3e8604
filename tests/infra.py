"""The real ring's access to the real servers: started by the same script `make infra-up` runs
(deploy/local/infra.sh), reused when already running, never mocked."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INFRA = REPO / "deploy" / "local" / "infra.sh"


@dataclass(frozen=True)
class Infra:
    env: dict[str, str]

    @property
    def kafka_bootstrap(self) -> str:
        return self.env["PANTAU_KAFKA_BOOTSTRAP_SERVERS"]

    @property
    def es_url(self) -> str:
        return self.env["PANTAU_ES_URL"]

    def password(self, user: str) -> str:
        if user == "elastic":
            return self.env["ELASTIC_PASSWORD"]
        return self.env[f"PANTAU_ES_{user.removeprefix('pantau_').upper()}_PASSWORD"]


def _script(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PANTAU_PYTHON=sys.executable)
    return subprocess.run(["bash", str(INFRA), *args], env=env, text=True, capture_output=True, check=check)


def read_env() -> Infra | None:
    proc = _script("env", check=False)
    if proc.returncode != 0:
        return None
    pairs = (line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    return Infra({k: v for k, v in pairs})


def ensure_up() -> Infra:
    proc = _script("up", check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"deploy/local/infra.sh up failed:\n{proc.stderr}")
    infra = read_env()
    assert infra is not None
    return infra


def running_kafka_version() -> str | None:
    """The version of the Kafka process actually running, from its classpath (cache/kafka-X/libs)."""
    proc = _script("status", check=False)
    match = re.search(r"Kafka (\S+) healthy .*\(pid (\d+)", proc.stderr)
    if not match:
        return None
    try:
        cmdline = Path(f"/proc/{match[2]}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return None
    found = re.search(r"kafka-(\d+\.\d+\.\d+)/libs", cmdline)
    return found[1] if found else None


def stop_server(name: str) -> None:
    """Stop one real server (`kafka` or `elasticsearch`) for an outage test; `ensure_up` restarts it."""
    _script(f"stop-{name}")
