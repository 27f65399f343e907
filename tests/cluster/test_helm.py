"""Helm charts synced to the real cluster, with dependencies from a real chart repository on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slipway.engine import Engine
from slipway.errors import ManifestError
from slipway.kube import Kube
from slipway.render import helm
from tests.chartrepo import ChartRepo
from tests.charts import labels_chart, web_chart
from tests.gitservers import free_port

from .conftest import Repo, add_workflow

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def published(chart_repo: ChartRepo) -> ChartRepo:
    for version in ("1.0.0", "1.2.0", "2.0.0"):
        chart_repo.publish(labels_chart(version))
    return chart_repo


@pytest.fixture(autouse=True)
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    monkeypatch.setenv("SLIPWAY_HELM_CACHE", str(tmp_path / "helm-cache"))
    helm.cache_clear()
    seen: list[list[str]] = []

    def record(argv: list[str], env: dict[str, str]) -> None:
        seen.append(argv + [f"{k}={v}" for k, v in env.items()])  # the environment too, for secrets

    helm.on_run.append(record)
    yield seen
    helm.on_run.remove(record)


@pytest.fixture
def widget_group(kube: Kube) -> Iterator[str]:
    """A CRD served only by this cluster (Helm's built-in API list cannot know it), removed afterwards."""
    group = f"w{secrets.token_hex(4)}.slipway.test"
    crds = kube.discovery.lookup("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {"type": "object"}}}]},
    }  # fmt: skip
    kube.apply(crds, crd, field_manager="tests")
    deadline = time.monotonic() + 30
    while kube.discovery.find(f"{group}/v1", "Widget") is None:
        assert time.monotonic() < deadline, "the CRD was not served within 30s"
        time.sleep(0.5)
    yield group
    kube.delete(crds, "", f"widgets.{group}")


def register_charts(engine: Engine, repo: ChartRepo, password: str | None = None) -> None:
    engine.register_repository({
        "id": "charts-" + secrets.token_hex(3), "type": "helm", "url": repo.url,
        "credentials": {"type": "userpass", "username": repo.username, "password": password or repo.password},
    })  # fmt: skip


def configmap(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    return kube.get(kube.discovery.lookup("v1", "ConfigMap"), namespace, name)


def test_a_chart_syncs_with_values_a_dependency_and_the_clusters_capabilities(
    engine: Engine, make_git: Any, kube: Kube, namespace: str, published: ChartRepo, widget_group: str,
    runs: list[list[str]],
) -> None:  # fmt: skip
    git: Repo = make_git(web_chart("charts/web", published.url, group=widget_group, hooks=False))
    register_charts(engine, published)
    downloads = published.downloads("labels-1.2.0.tgz")  # the repository serves the whole session
    wf = add_workflow(
        engine, git, namespace, path="charts/web", id="web-app",
        helm={"values_files": ["values-prod.yaml"], "values": {"greeting": "inline", "labels": {"color": "green"}},
              "skip_crds": True},
        sync_policy={"auto_prune": True},
    )  # fmt: skip
    result = engine.sync(wf)
    assert result.status == "succeeded", result.message

    data = (configmap(kube, namespace, "web-app-config") or {})["data"]
    assert (data["greeting"], data["replicas"], data["color"]) == ("inline", "2", "red")
    assert data["namespace"] == namespace
    server = kube.request("GET", "/version", action="read", what="version")["gitVersion"]
    assert data["kube"] == server  # not Helm's built-in default version
    assert (data["widget-kind"], data["widget-version"]) == ("true", "true")
    labels = (configmap(kube, namespace, "web-app-labels") or {})["data"]
    assert labels == {"version": "1.2.0", "color": "green"}  # ^1.0.0 from the authenticated repository
    deploy = kube.get(kube.discovery.lookup("apps/v1", "Deployment"), namespace, "web-app") or {}
    assert deploy["spec"]["replicas"] == 2
    assert deploy["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "slipway"
    assert deploy["metadata"]["labels"]["helm.sh/chart"] == "web-0.1.0"

    # No spurious change right after the sync, and neither the diff nor a resync runs Helm again.
    plan = engine.plan(wf)
    assert plan.changes == [] and plan.conflicts == [], [c.diff for c in plan.changes]
    again = engine.sync(wf)
    assert again.status == "succeeded" and again.metrics.resources_applied == 0
    assert len(runs) == 1
    (argv,) = runs
    assert argv[argv.index("--kube-version") + 1] == server
    assert f"{widget_group}/v1/Widget" in argv[argv.index("--api-versions") + 1].split(",")
    assert published.password not in json.dumps(runs)
    assert published.downloads("labels-1.2.0.tgz") == downloads + 1


def test_a_new_commit_renders_again_and_prunes(
    engine: Engine, make_git: Any, kube: Kube, namespace: str, runs: list[list[str]]
) -> None:
    git: Repo = make_git(web_chart("web", hooks=False))
    wf = add_workflow(engine, git, namespace, path="web", id="web-prune", helm={"skip_crds": True},
                      sync_policy={"auto_prune": True})  # fmt: skip
    assert engine.sync(wf).status == "succeeded"
    assert configmap(kube, namespace, "web-prune-config") is not None
    git.commit({"web/templates/config.yaml": None})
    result = engine.sync(wf)
    assert result.status == "succeeded", result.message
    assert configmap(kube, namespace, "web-prune-config") is None
    assert len(runs) == 2


def bad_template(chart: dict[str, str]) -> dict[str, str]:
    return {**chart, "charts/web/templates/config.yaml": "data:\n  x: {{ .Values.nothing.here }}\n"}


@pytest.mark.parametrize(
    "case",
    ["template_error", "missing_values_file", "unreachable_repository", "wrong_password"],
)
def test_bad_charts_fail_naming_chart_and_file_and_apply_nothing(
    engine: Engine, make_git: Any, kube: Kube, namespace: str, published: ChartRepo, case: str,
    caplog: pytest.LogCaptureFixture, slipway_home: Path,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG, logger="slipway")
    wrong = "wrong-" + secrets.token_hex(8)
    chart = web_chart("charts/web", published.url, hooks=False)
    helm_opts: dict[str, Any] = {"skip_crds": True}
    expected = r"charts/web \(helm\): "
    if case == "template_error":
        chart = bad_template(chart)
        expected += r"template: templates/config.yaml:2:\d+: at <.Values.nothing.here>: nil pointer"
    elif case == "missing_values_file":
        helm_opts["values_files"] = ["values-prod.yaml", "values-staging.yaml"]
        expected += r"values file values-staging.yaml: not found"
    elif case == "unreachable_repository":
        unreachable = f"http://127.0.0.1:{free_port()}/charts"
        engine.register_repository({"id": "gone-charts", "type": "helm", "url": unreachable})
        chart = web_chart("charts/web", unreachable, hooks=False)
        expected += r"Chart.yaml: dependency labels from http://127.0.0.1:\d+/charts: index.yaml: cannot reach"
    else:
        expected += rf"Chart.yaml: dependency labels from {published.url}: index.yaml: the chart repository refused"
    register_charts(engine, published, password=wrong if case == "wrong_password" else None)
    git: Repo = make_git(chart)
    wf = add_workflow(engine, git, namespace, path="charts/web", id="web-bad", helm=helm_opts)
    result = engine.sync(wf)
    assert result.status == "failed"
    # The repository and revision, then the chart and its file.
    assert re.search(r"repository \S+ at [0-9a-f]{12}: " + expected, result.message), result.message
    assert configmap(kube, namespace, "web-bad-config") is None
    assert kube.get(kube.discovery.lookup("apps/v1", "Deployment"), namespace, "web-bad") is None
    assert engine.store.inventory(wf) == {}
    with pytest.raises(Exception, match=expected):
        engine.plan(wf)
    stored = b"".join(p.read_bytes() for p in slipway_home.glob("state.db*"))
    for secret in (published.password, wrong):
        assert secret not in result.message and secret not in caplog.text
        assert secret.encode() not in stored


def test_kustomize_inflates_charts_from_a_chart_repository_and_from_the_repository(
    engine: Engine, make_git: Any, kube: Kube, namespace: str, published: ChartRepo
) -> None:
    kustomization = (
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "helmCharts:\n"
        f"- name: labels\n  repo: {published.public_url}\n  version: 1.2.0\n  releaseName: remote\n"
        "- name: web\n  releaseName: local\n  valuesInline:\n    greeting: from-kustomize\n"
    )
    chart = {k.replace("apps/kust/web/", "apps/kust/charts/web/"): v
             for k, v in web_chart("apps/kust/web", hooks=False).items()}  # fmt: skip
    git: Repo = make_git({"apps/kust/kustomization.yaml": kustomization, **chart})
    wf = add_workflow(engine, git, namespace, path="apps/kust", id="kust-helm")
    with pytest.raises(ManifestError, match=r"helmCharts\[1\] repo .* is not a chart repository slipway may fetch"):
        engine.plan(wf)  # not registered yet: kustomize's Helm is not let out to it
    engine.register_repository({"id": "public-charts", "type": "helm", "url": published.public_url})
    result = engine.sync(wf)
    assert result.status == "succeeded", result.message
    assert (configmap(kube, namespace, "remote-labels") or {})["data"] == {"version": "1.2.0", "color": "blue"}
    assert (configmap(kube, namespace, "local-config") or {})["data"]["greeting"] == "from-kustomize"
    assert engine.plan(wf).changes == []


def test_a_chart_repository_must_be_registered_and_a_kustomization_may_not_fetch_unless_allowed(
    engine: Engine, make_git: Any, kube: Kube, namespace: str, published: ChartRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.render.webserver import Served

    monkeypatch.delenv("SLIPWAY_KUSTOMIZE_ALLOW_REMOTE", raising=False)
    with Served() as served:
        served.files["/remote.yaml"] = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: remote\ndata:\n  a: b\n"
        git: Repo = make_git({
            **web_chart("charts/web", published.public_url, hooks=False),
            "apps/kust/kustomization.yaml": f"resources:\n- {served.url}/remote.yaml\n",
        })  # fmt: skip
        chart = add_workflow(engine, git, namespace, path="charts/web", id="unregistered-chart")
        downloads = published.downloads("index.yaml")
        with pytest.raises(ManifestError, match=r"repository \S+ at [0-9a-f]{12}: charts/web \(helm\): Chart.yaml: "
                           r"dependency labels from .*: not a chart repository slipway may fetch from"):  # fmt: skip
            engine.plan(chart)
        assert published.downloads("index.yaml") == downloads
        engine.register_repository({"id": "public-charts", "type": "helm", "url": published.public_url})
        assert "ConfigMap/unregistered-chart-labels" in [c.resource for c in engine.plan(chart).changes]

        kust = add_workflow(engine, git, namespace, path="apps/kust", id="remote-kust")
        with pytest.raises(ManifestError, match=r"apps/kust/kustomization.yaml: resources entry .* is not in the "
                           r"repository, so kustomize would fetch it"):  # fmt: skip
            engine.plan(kust)
        # The workflow's own configuration cannot allow it: only the administrator's setting does.
        monkeypatch.setenv("SLIPWAY_KUSTOMIZE_ALLOW_REMOTE", "some-other-workflow")
        with pytest.raises(ManifestError, match="kustomize would fetch it"):
            engine.plan(kust)
        assert served.requests == []
        monkeypatch.setenv("SLIPWAY_KUSTOMIZE_ALLOW_REMOTE", "some-other-workflow, remote-kust")
        assert [c.resource for c in engine.plan(kust).changes] == ["ConfigMap/remote"]
        assert served.requests == ["/remote.yaml"]
