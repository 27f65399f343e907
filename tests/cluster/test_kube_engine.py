"""The engine on the kubernetes store: what only it has (a kubeconfig from a Secret), and a cascade removal."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest

from slipway.engine import Engine
from slipway.errors import ConfigError
from slipway.kube import Kube
from slipway.source import GitSource
from slipway.store import Store
from slipway.store.kubernetes import KubernetesStore
from slipway.store.kubernetes.names import SECRETS

from .conftest import configmap, dump

pytestmark = pytest.mark.cluster


@pytest.fixture
def kengine(cluster: Any, slipway_namespace: str, tmp_path: Path) -> Engine:
    return Engine(KubernetesStore(), GitSource(cache_dir=tmp_path / "gc", home=tmp_path / "home"))


def test_a_destination_reached_through_a_kubeconfig_secret(
    kengine: Engine, kube: Kube, cluster: Any, make_git, namespace: str, slipway_namespace: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(configmap("remote", {"v": "1"}))})
    rid = kengine.register_repository({"url": repo.url}).id
    config = {"id": "far", "repository": rid, "target_path": "k8s",
              "destination": {"namespace": namespace, "kubeconfig_secret": "other-cluster"}}  # fmt: skip
    kengine.create_workflow(config)
    failed = kengine.sync("far")  # no cluster to sync to: a failed sync on the record, as on SQLite
    assert failed.status == "failed" and re.search(
        r"Secret other-cluster in namespace \S+ does not exist", failed.message
    )
    assert kengine.history("far")[0].id == failed.id and kengine.status("far")["status"] == "failed"
    kube.create(SECRETS, {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "other-cluster", "namespace": slipway_namespace},
        "data": {"kubeconfig": base64.b64encode(cluster.kubeconfig.read_bytes()).decode()},
    })  # fmt: skip
    result = kengine.sync("far")
    assert result.status == "succeeded", result.message
    assert kube.get(kube.discovery.lookup("v1", "ConfigMap"), namespace, "remote") is not None
    # The SQLite store has no Secrets to read one from: a clear error, not a surprise.
    local = Engine(Store(home=tmp_path / "local"), GitSource(cache_dir=tmp_path / "gc2", home=tmp_path / "local"))
    local.register_repository({"id": rid, "url": repo.url})
    local.create_workflow(config)
    with pytest.raises(ConfigError, match="kubeconfig_secret needs the kubernetes store"):
        local.plan("far")


def test_a_cascading_removal_deletes_what_it_owned_and_keeps_the_history(
    kengine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(configmap("owned", {"v": "1"}))})
    rid = kengine.register_repository({"url": repo.url}).id
    wf = kengine.create_workflow({"id": "gone", "repository": rid, "target_path": "k8s",
                                  "destination": {"namespace": namespace}}).id  # fmt: skip
    assert kengine.sync(wf).status == "succeeded"
    result = kengine.remove_workflow(wf, cascade=True)
    assert result is not None and result.status == "succeeded", result
    assert kube.get(kube.discovery.lookup("v1", "ConfigMap"), namespace, "owned") is None
    assert not kengine.workflow_exists(wf)
    assert [h.trigger for h in kengine.history(wf)] == ["remove", "manual"]


def test_a_workflow_declared_before_its_repository_says_so_and_recovers(
    kengine: Engine, kube: Kube, make_git, slipway_namespace: str
) -> None:  # type: ignore[no-untyped-def]
    from slipway.store.kubernetes.names import WORKFLOWS

    kube.create(WORKFLOWS, {"apiVersion": "slipway.dev/v1alpha1", "kind": "Workflow",
                            "metadata": {"name": "early", "namespace": slipway_namespace},
                            "spec": {"repository": "later", "targetPath": "k8s"}})  # fmt: skip

    def ready() -> dict[str, Any]:
        obj = kube.get(WORKFLOWS, slipway_namespace, "early") or {}
        return next(c for c in (obj.get("status") or {}).get("conditions") or [{"type": "Ready"}]
                    if c["type"] == "Ready")  # fmt: skip

    assert [w.id for w in kengine.workflows()] == ["early"]
    assert ready()["status"] == "False" and ready()["reason"] == "RepositoryNotFound"
    assert "repository 'later' is not registered" in ready()["message"]
    kengine.register_repository({"id": "later", "url": make_git({"k8s/a.yaml": dump(configmap("x"))}).url})
    kengine.workflows()
    assert ready()["status"] == "True" and kengine.status("early")["status"] == "active"
