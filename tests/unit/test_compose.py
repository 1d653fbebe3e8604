"""Ring 1: docker-compose.yml cannot be started here, so it is kept correct by this test: every
Pantau service runs a command the CLI has, every dependency exists and waits on health, and the
image versions come from the one pinned place."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
import yaml

from pantau.cli import main

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
PANTAU = {name: svc for name, svc in SERVICES.items() if svc.get("image") == "pantau:local"}


def resolve(command: list[str]) -> click.Command:
    node: click.Command = main
    for word in command:
        if word.startswith("-") or not isinstance(node, click.Group):
            break  # options, or the command's own arguments
        assert isinstance(node, click.Group), f"{node.name} has no subcommand {word}"
        node = node.commands.get(word)
        assert node is not None, f"no CLI command {' '.join(command)}"
    assert not isinstance(node, click.Group), f"{command} names a group, not a command"
    return node


def test_there_are_pantau_services():
    assert {"topics-apply", "es-apply"} <= set(PANTAU)


@pytest.mark.parametrize("name", sorted(PANTAU))
def test_every_pantau_service_command_exists_in_the_cli(name):
    resolve(PANTAU[name]["command"])


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_dependencies_exist_and_wait_for_health_or_completion(name):
    for dep, cond in (SERVICES[name].get("depends_on") or {}).items():
        assert dep in SERVICES, f"{name} depends on unknown {dep}"
        assert cond["condition"] in ("service_healthy", "service_completed_successfully")
        if cond["condition"] == "service_healthy":
            assert "healthcheck" in SERVICES[dep], f"{dep} has no healthcheck"


def test_long_running_servers_have_healthchecks():
    for name in ("kafka", "elasticsearch", "kibana", "prometheus"):
        assert "healthcheck" in SERVICES[name]


def test_image_versions_come_from_versions_env():
    pinned = {
        line.split("=", 1)[0]
        for line in (REPO / "deploy/local/versions.env").read_text().splitlines()
        if re.match(r"^[A-Z_]+=", line)
    }
    text = (REPO / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z_]+_VERSION)", text))
    assert used and used <= pinned
    for svc in SERVICES.values():
        image = svc.get("image", "")
        if image != "pantau:local":
            assert "${" in image, f"{image} is pinned outside versions.env"


def test_the_image_runs_the_cli_and_ships_the_schemas():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["pantau"]' in dockerfile
    assert "COPY schemas" in dockerfile and "-c constraints.txt" in dockerfile


def test_every_app_path_the_services_use_is_copied_into_the_image():
    import re

    dockerfile = (REPO / "Dockerfile").read_text()
    used = set(re.findall(r"/app/(deploy/[a-z-]+)/", (REPO / "docker-compose.yml").read_text()))
    assert used, "no /app/deploy paths found: the test would prove nothing"
    for folder in used:
        assert f"COPY {folder} ./{folder}" in dockerfile, f"{folder} is used by compose but not in the image"
