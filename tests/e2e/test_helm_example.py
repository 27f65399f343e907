"""examples/helm_environments.lua runs as written: one chart, three environments, three values files."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from slipway.kube import Kube

from .conftest import Cli, Company

pytestmark = pytest.mark.cluster

EXAMPLE = Path(__file__).parents[2] / "examples" / "helm_environments.lua"
ENVIRONMENTS = {"dev": 1, "staging": 2, "prod": 3}

SHOP = {
    "charts/shop/Chart.yaml": "apiVersion: v2\nname: shop\nversion: 1.0.0\n",
    "charts/shop/values.yaml": "replicaCount: 1\nenvironment: none\ngreeting: hello\n",
    **{f"charts/shop/values-{env}.yaml": f"replicaCount: {n}\n" for env, n in ENVIRONMENTS.items()},
    "charts/shop/templates/config.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\ndata:\n"
        "  environment: {{ .Values.environment | quote }}\n  greeting: {{ .Values.greeting | quote }}\n"
    ),
    "charts/shop/templates/deployment.yaml": yaml.safe_dump(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "{{ .Release.Name }}"},
            "spec": {
                "replicas": "REPLICAS",
                "selector": {"matchLabels": {"app": "shop"}},
                "template": {
                    "metadata": {"labels": {"app": "shop"}},
                    "spec": {"containers": [{"name": "shop", "image": "registry.invalid/shop:1"}]},
                },
            },
        }
    ).replace("REPLICAS", "{{ .Values.replicaCount }}"),
}


@pytest.fixture
def namespaces(kube: Kube, namespace: str) -> Iterator[str]:
    """<namespace>-dev, -staging and -prod, removed afterwards."""
    info = kube.discovery.lookup("v1", "Namespace")
    names = [f"{namespace}-{env}" for env in ENVIRONMENTS]
    for name in names:
        kube.apply(info, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}, field_manager="tests")
    yield namespace
    for name in names:
        kube.delete(info, "", name)


def test_helm_environments_example(cli: Cli, company: Company, kube: Kube, namespaces: str) -> None:
    company.create("shop-deploy", SHOP)
    r = cli("run", str(EXAMPLE), "--param", f"namespace_prefix={namespaces}")
    assert r.returncode == 0, r.stderr
    assert "dev: 2 change(s) to apply" in r.stderr and "shop is live in prod" in r.stderr
    deployments = kube.discovery.lookup("apps/v1", "Deployment")
    configmaps = kube.discovery.lookup("v1", "ConfigMap")
    for env, replicas in ENVIRONMENTS.items():
        ns = f"{namespaces}-{env}"
        assert (kube.get(deployments, ns, "shop") or {})["spec"]["replicas"] == replicas
        assert (kube.get(configmaps, ns, "shop-config") or {})["data"] == {"environment": env, "greeting": "hello"}
    wf = cli.engine().workflow("shop-prod")
    assert wf.helm is not None and wf.helm.values_files == ["values-prod.yaml"] and not wf.auto_sync


def test_helm_from_the_command_line(cli: Cli, company: Company, kube: Kube, namespace: str) -> None:
    company.create("shop-deploy", SHOP)
    password = "pw-" + os.urandom(8).hex()
    env_cli = Cli({**cli.env, "CHARTS_PASSWORD": password}, cli.home, cli.cwd)
    r = env_cli("repo", "add", "https://charts.example.com/team", "--type", "helm", "--id", "team-charts",
                "--username", "deploy", "--password-env", "CHARTS_PASSWORD")  # fmt: skip
    assert r.returncode == 0 and "(Helm chart repository)" in r.stdout, r.stderr
    listed = cli("repo", "list")
    assert "helm" in listed.stdout and password not in listed.stdout + r.stdout + r.stderr
    refused = cli("workflow", "create", "--id", "shop", "--repository", "team-charts")
    assert (
        refused.returncode == 2
        and "team-charts, a Helm chart repository" in refused.stderr
        and "chart: required" in refused.stderr
    )
    assert cli("repo", "add", "https://github.com/company/shop-deploy", "--id", "shop").returncode == 0
    r = cli(
        "workflow", "create", "--id", "shop-cli", "--repository", "shop", "--path", "charts/shop",
        "--namespace", namespace, "--helm-release-name", "shop", "--helm-values-file", "values-staging.yaml",
        "--helm-values-json", '{"greeting": "json"}', "--helm-set", "environment=cli",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = cli("sync", "shop-cli", "--yes")
    assert r.returncode == 0, r.stderr
    configmaps = kube.discovery.lookup("v1", "ConfigMap")
    assert (kube.get(configmaps, namespace, "shop-config") or {})["data"] == {"environment": "cli", "greeting": "json"}
    deployment = kube.get(kube.discovery.lookup("apps/v1", "Deployment"), namespace, "shop") or {}
    assert deployment["spec"]["replicas"] == 2
    assert cli("diff", "shop-cli").returncode == 0  # nothing to change right after the sync
    r = cli("workflow", "set", "shop-cli", "--helm-values-file", "values-prod.yaml")  # only that key changes
    assert r.returncode == 0 and "helm.values_files" in r.stdout, r.stderr
    assert cli("sync", "shop-cli", "--yes").returncode == 0
    deployment = kube.get(kube.discovery.lookup("apps/v1", "Deployment"), namespace, "shop") or {}
    assert deployment["spec"]["replicas"] == 3
    assert (kube.get(configmaps, namespace, "shop-config") or {})["data"]["greeting"] == "json"  # values kept
    # A null is a value Helm understands (it removes a key of the chart's values): set keeps it.
    assert cli("workflow", "set", "shop-cli", "--helm-set", "greeting=null").returncode == 0
    shown = json.loads(cli("-o", "json", "workflow", "show", "shop-cli").stdout)
    assert shown["helm"]["values"] == {"greeting": None, "environment": "cli"}
    bad = cli("workflow", "create", "--id", "shop-cli", "--repository", "shop", "--helm-set", "novalue")
    assert bad.returncode == 2 and "--helm-set: expected NAME=VALUE" in bad.stderr and "Traceback" not in bad.stderr
