"""Ring 1: the Kubernetes manifests parse, are all listed in the kustomization, and run commands
the CLI has (no cluster here; kept correct by this test as compose is by test_compose)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.unit.test_compose import resolve

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"


def documents():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for name in kustomization["resources"]:
        yield from (d for d in yaml.safe_load_all((K8S / name).read_text()) if d)


def test_every_manifest_file_is_listed_in_the_kustomization():
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


def test_every_container_runs_a_cli_command_with_resources():
    containers = [
        c
        for doc in documents()
        if doc["kind"] in ("Job", "Deployment", "StatefulSet")
        for c in doc["spec"]["template"]["spec"]["containers"]
    ]
    assert containers
    for container in containers:
        assert container["image"] == "pantau"
        resolve(container["args"])
        assert container["resources"]["limits"]["memory"]
