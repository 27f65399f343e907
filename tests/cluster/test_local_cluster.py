"""The local control plane really runs workloads: rollouts complete, unschedulable ones time out."""

from __future__ import annotations

import time

import pytest

from slipway.cluster import local
from slipway.kube import Kube
from slipway.kube.objects import conditions

pytestmark = pytest.mark.cluster


def _deployment(name: str, namespace: str, *, replicas: int = 2, selector: dict[str, str] | None = None,
                deadline: int = 600) -> dict:  # fmt: skip
    spec: dict = {
        "containers": [{"name": "app", "image": "registry.invalid/app:1"}],
    }
    if selector:
        spec["nodeSelector"] = selector
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": deadline,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }


def _wait_for(check, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return False


def test_status_reports_running_processes_and_logs(cluster: local.ClusterInfo) -> None:
    st = local.status()
    assert st["running"] is True
    names = {p["name"] for p in st["processes"]}
    assert names == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}
    for p in st["processes"]:
        assert p["alive"] and p["log"].endswith(".log")
    assert st["server"].startswith("https://127.0.0.1:")


def test_second_up_reuses_the_running_cluster(cluster: local.ClusterInfo) -> None:
    again = local.up()
    assert [p.pid for p in again.procs] == [p.pid for p in cluster.procs]
    assert again.ports == cluster.ports


def test_fake_node_is_ready(kube: Kube) -> None:
    node = kube.get(kube.discovery.lookup("v1", "Node"), "", local.NODE_NAME)
    assert node is not None
    assert conditions(node)["Ready"]["status"] == "True"


def test_deployment_rolls_out_on_the_kwok_node(kube: Kube, namespace: str) -> None:
    deployments = kube.discovery.lookup("apps/v1", "Deployment")
    pods = kube.discovery.lookup("v1", "Pod")
    kube.apply(deployments, _deployment("web", namespace, replicas=2), field_manager="tests")

    def available() -> bool:
        d = kube.get(deployments, namespace, "web") or {}
        return (
            conditions(d).get("Available", {}).get("status") == "True"
            and (d.get("status") or {}).get("availableReplicas") == 2
        )

    assert _wait_for(available, 90), kube.get(deployments, namespace, "web")
    running = kube.list(pods, namespace)
    assert len(running) == 2
    for pod in running:
        assert pod["spec"]["nodeName"] == local.NODE_NAME
        assert conditions(pod)["Ready"]["status"] == "True"


def test_unschedulable_deployment_reports_progress_deadline_exceeded(kube: Kube, namespace: str) -> None:
    deployments = kube.discovery.lookup("apps/v1", "Deployment")
    kube.apply(
        deployments,
        _deployment("stuck", namespace, replicas=1, selector={"no-such-label": "anywhere"}, deadline=5),
        field_manager="tests",
    )

    def deadline_exceeded() -> bool:
        d = kube.get(deployments, namespace, "stuck") or {}
        return conditions(d).get("Progressing", {}).get("reason") == "ProgressDeadlineExceeded"

    assert _wait_for(deadline_exceeded, 60)
    d = kube.get(deployments, namespace, "stuck") or {}
    assert conditions(d).get("Available", {}).get("status") != "True"
    assert not (d.get("status") or {}).get("availableReplicas")


def test_down_stops_exactly_the_processes_its_cluster_started(cluster: local.ClusterInfo) -> None:
    """A second, named cluster next to the shared one: `down` takes only its own processes and data."""
    other = local.up("down-test")
    try:
        assert other.ports["apiserver"] != cluster.ports["apiserver"]
        assert local.api_ready(other)
        pids = [p.pid for p in other.procs]
        assert set(pids).isdisjoint(p.pid for p in cluster.procs)
    finally:
        assert local.down("down-test") is True
    assert not any(p.alive() for p in other.procs)
    assert not other.root.exists()
    assert all(p.alive() for p in cluster.procs)  # the shared cluster is untouched
    assert local.status()["running"] is True
    assert local.down("down-test") is False  # nothing left to stop
