"""The CLI with a chart straight from an OCI registry: ``repo add oci://... --type helm`` and
``workflow create --chart --chart-version``, against the real registry and cluster."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from slipway.kube import Kube
from tests.registry import Registry

from .conftest import Cli

pytestmark = pytest.mark.cluster


def chart(name: str, version: str) -> dict[str, str]:
    return {
        "Chart.yaml": f"apiVersion: v2\nname: {name}\nversion: {version}\n",
        "templates/cm.yaml": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n"
            "data:\n  version: {{ .Chart.Version | quote }}\n"
        ),
    }


def test_repo_add_oci_and_a_chart_workflow(cli: Cli, kube: Kube, namespace: str, oci_registry: Registry) -> None:
    name = f"cli{secrets.token_hex(3)}"
    oci_registry.push(chart(name, "1.0.0"))
    oci_registry.push(chart(name, "1.1.0"))
    cli.env["OCI_PASSWORD"] = oci_registry.password
    r = cli("repo", "add", oci_registry.url, "--type", "helm", "--id", "oci-charts", "--username",
            oci_registry.username, "--password-env", "OCI_PASSWORD", "--plain-http", "--poll-interval", "5m")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "(Helm chart repository)" in r.stdout
    r = cli("-o", "json", "repo", "show", "oci-charts")
    shown: dict[str, Any] = json.loads(r.stdout)
    assert shown["plain_http"] is True and shown["url"] == oci_registry.url
    assert oci_registry.password not in r.stdout
    r = cli("workflow", "create", "--id", "chart-wf", "--repository", "oci-charts", "--chart", name,
            "--chart-version", "~1.0", "--namespace", namespace)  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = cli("-o", "json", "sync", "chart-wf", "--yes")
    assert r.returncode == 0, r.stderr + r.stdout
    assert json.loads(r.stdout)["commit_hash"].startswith("1.0.0@sha256:")
    live = kube.get(kube.discovery.lookup("v1", "ConfigMap"), namespace, "chart-wf")
    assert live is not None and live["data"]["version"] == "1.0.0"
    r = cli("workflow", "create", "--id", "bad-range", "--repository", "oci-charts", "--chart", name,
            "--chart-version", ">>1", "--namespace", namespace)  # fmt: skip
    assert r.returncode != 0 and "chart_version: '>>1' is not a version range" in r.stderr
