"""Each health rule on the status shapes its controller writes."""

from __future__ import annotations

from typing import Any

import pytest

from slipway import health

H, P, D = health.HEALTHY, health.PROGRESSING, health.DEGRADED


def obj(
    spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None, generation: int = 1
) -> dict[str, Any]:
    return {"metadata": {"name": "x", "generation": generation}, "spec": spec or {}, "status": status or {}}


def cond(kind: str, value: str, reason: str = "", message: str = "") -> dict[str, str]:
    return {"type": kind, "status": value, "reason": reason, "message": message}


@pytest.mark.parametrize(
    "o,expected",
    [
        (obj({"replicas": 2}, {"observedGeneration": 0}), P),  # not observed yet
        (obj({"replicas": 2}, {"observedGeneration": 1, "updatedReplicas": 1, "replicas": 2, "availableReplicas": 1}), P),
        (obj({"replicas": 2}, {"observedGeneration": 1, "updatedReplicas": 2, "replicas": 3, "availableReplicas": 2}), P),
        (obj({"replicas": 2}, {"observedGeneration": 1, "updatedReplicas": 2, "replicas": 2, "availableReplicas": 2}), H),
        (obj({"replicas": 1}, {"observedGeneration": 1, "updatedReplicas": 1, "replicas": 1, "availableReplicas": 0,
                               "conditions": [cond("Progressing", "False", "ProgressDeadlineExceeded")]}), D),
        # Complete by the numbers: a stale deadline condition from an earlier rollout does not count.
        (obj({"replicas": 1}, {"observedGeneration": 1, "updatedReplicas": 1, "replicas": 1, "availableReplicas": 1,
                               "conditions": [cond("Progressing", "False", "ProgressDeadlineExceeded")]}), H),
        (obj({"paused": True}, {"observedGeneration": 1}), health.SUSPENDED),  # as Argo CD shows it
        (obj({"replicas": 0}, {"observedGeneration": 1}), H),
    ],
)  # fmt: skip
def test_deployment(o: dict[str, Any], expected: str) -> None:
    assert health.assess("apps", "Deployment", o).status == expected


def test_statefulset_daemonset_replicaset() -> None:
    sts = obj(
        {"replicas": 2}, {"observedGeneration": 1, "readyReplicas": 2, "currentRevision": "a", "updateRevision": "b"}
    )
    assert health.assess("apps", "StatefulSet", sts).status == P
    sts["status"]["currentRevision"] = "b"
    assert health.assess("apps", "StatefulSet", sts).status == H
    ds = obj(
        {}, {"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 2}
    )
    assert health.assess("apps", "DaemonSet", ds).status == P
    ds["status"]["numberAvailable"] = 3
    assert health.assess("apps", "DaemonSet", ds).status == H
    rs = obj(
        {"replicas": 1}, {"observedGeneration": 1, "conditions": [cond("ReplicaFailure", "True", message="quota")]}
    )
    assert health.assess("apps", "ReplicaSet", rs) == health.Health(D, "quota")


def test_job_pod_pvc_service_crd_and_generic() -> None:
    assert health.assess("batch", "Job", obj(status={"conditions": [cond("Complete", "True")]})).status == H
    assert (
        health.assess("batch", "Job", obj(status={"conditions": [cond("Failed", "True", message="backoff")]})).status
        == D
    )
    assert health.assess("batch", "Job", obj(status={"active": 1})).status == P
    waiting = {
        "phase": "Pending",
        "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}],
    }
    assert health.assess("", "Pod", obj(status=waiting)).status == D
    ready = {"phase": "Running", "conditions": [cond("Ready", "True")]}
    assert health.assess("", "Pod", obj(status=ready)).status == H
    assert health.assess("", "Pod", obj(status={"phase": "Succeeded"})).status == H
    assert health.assess("", "PersistentVolumeClaim", obj(status={"phase": "Pending"})).status == P
    assert health.assess("", "PersistentVolumeClaim", obj(status={"phase": "Bound"})).status == H
    assert health.assess("", "PersistentVolumeClaim", obj(status={"phase": "Lost"})).status == D
    assert health.assess("", "Service", obj({"type": "LoadBalancer"})).status == P
    assert health.assess("", "Service", obj({"type": "ClusterIP"})).status == H
    crd = obj(status={"conditions": [cond("Established", "True")]})
    assert health.assess("apiextensions.k8s.io", "CustomResourceDefinition", crd).status == H
    # Generic: a Ready condition, Stalled, or healthy once it exists.
    assert (
        health.assess("example.com", "Widget", obj(status={"conditions": [cond("Ready", "False", "Waiting")]})).status
        == P
    )
    assert health.assess("example.com", "Widget", obj(status={"conditions": [cond("Ready", "True")]})).status == H
    assert (
        health.assess("example.com", "Widget", obj(status={"conditions": [cond("Stalled", "True", "Bad")]})).status == D
    )
    assert health.assess("example.com", "Widget", obj()).status == H  # nobody reconciles it: exists is enough
    assert health.assess("", "ConfigMap", {"metadata": {"name": "c"}}).status == H
    assert health.assess("", "ConfigMap", None).status == health.MISSING


def test_docs_list_every_rule() -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "health.md").read_text()
    for _group, kind in health.RULES:
        assert f"`{kind}`" in doc, kind
