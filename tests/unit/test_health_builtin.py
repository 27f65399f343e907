"""Built-in rules against what Argo CD documents and its users see, and the kstatus reading of any other kind."""

from __future__ import annotations

from typing import Any

import pytest

from slipway import health

H, P, D = health.HEALTHY, health.PROGRESSING, health.DEGRADED
S, U, M = health.SUSPENDED, health.UNKNOWN, health.MISSING


def obj(
    spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None, generation: int = 1
) -> dict[str, Any]:
    return {"metadata": {"name": "x", "generation": generation}, "spec": spec or {}, "status": status or {}}


def cond(kind: str, value: str, reason: str = "", message: str = "") -> dict[str, str]:
    return {"type": kind, "status": value, "reason": reason, "message": message}


def test_the_six_statuses_in_argo_cds_order() -> None:
    assert health.STATUSES == ("Healthy", "Suspended", "Progressing", "Missing", "Degraded", "Unknown")
    assert health.worst(["Healthy", "Suspended"]) == S
    assert health.worst(["Degraded", "Missing", "Healthy"]) == D
    assert health.worst(["Degraded", "Unknown"]) == U
    assert health.worst([]) == H


def test_paused_deployment_and_suspended_jobs_are_suspended() -> None:
    assert health.assess("apps", "Deployment", obj({"paused": True}, {"observedGeneration": 1})).status == S
    assert health.assess("batch", "Job", obj({"suspend": True})) == health.Health(S, "job is suspended")
    assert health.assess("batch", "CronJob", obj({"suspend": True, "schedule": "* * * * *"})).status == S


@pytest.mark.parametrize(
    "status,expected",
    [
        ({}, H),  # never scheduled yet
        ({"lastScheduleTime": "2026-01-01T00:01:00Z", "active": [{"name": "j"}]}, P),
        ({"lastScheduleTime": "2026-01-01T00:01:00Z"}, D),  # never succeeded
        ({"lastScheduleTime": "2026-01-01T00:02:00Z", "lastSuccessfulTime": "2026-01-01T00:01:05Z"}, D),
        ({"lastScheduleTime": "2026-01-01T00:02:00Z", "lastSuccessfulTime": "2026-01-01T00:02:09Z"}, H),
    ],
)
def test_cronjob(status: dict[str, Any], expected: str) -> None:
    assert health.assess("batch", "CronJob", obj({"schedule": "* * * * *"}, status)).status == expected


def test_pod_restart_policies() -> None:
    running = {"phase": "Running", "conditions": [cond("Ready", "True")]}
    assert health.assess("", "Pod", obj({"restartPolicy": "Always"}, running)).status == H
    # A pod meant to run to its end is still at work while it runs, ready or not.
    assert health.assess("", "Pod", obj({"restartPolicy": "OnFailure"}, running)).status == P
    assert health.assess("", "Pod", obj({"restartPolicy": "Never"}, running)).status == P
    assert health.assess("", "Pod", obj({"restartPolicy": "Never"}, {"phase": "Succeeded"})).status == H
    assert health.assess("", "Pod", obj({}, {"phase": "Failed", "message": "OOM"})) == health.Health(D, "OOM")
    assert health.assess("", "Pod", obj({}, {"phase": "Unknown"})).status == U
    crashed = {
        "phase": "Running",
        "conditions": [cond("Ready", "False")],
        "containerStatuses": [{"name": "a", "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}],
    }
    assert health.assess("", "Pod", obj({}, crashed)) == health.Health(D, "container a terminated: OOMKilled")
    starting = {"phase": "Running", "conditions": [cond("Ready", "False")], "containerStatuses": [{"name": "a"}]}
    assert health.assess("", "Pod", obj({}, starting)).status == P
    # Argo CD's reading of a waiting reason: Err*, *Error and *BackOff are failures.
    for reason in ("ErrImageNeverPull", "RunContainerError", "ImagePullBackOff"):
        bad = {"phase": "Pending", "containerStatuses": [{"name": "a", "state": {"waiting": {"reason": reason}}}]}
        assert health.assess("", "Pod", obj({}, bad)).status == D, reason
    creating = {
        "phase": "Pending",
        "containerStatuses": [{"name": "a", "state": {"waiting": {"reason": "ContainerCreating"}}}],
    }
    assert health.assess("", "Pod", obj({}, creating)).status == P


def test_hpa_ingress_apiservice_pvc() -> None:
    hpa = "autoscaling", "HorizontalPodAutoscaler"
    assert health.assess(*hpa, obj(status={})).status == P
    failed = [
        cond("AbleToScale", "True", "SucceededGetScale"),
        cond("ScalingActive", "False", "FailedGetResourceMetric", "no metrics"),
    ]
    assert health.assess(*hpa, obj(status={"conditions": failed})) == health.Health(D, "no metrics")
    fine = [
        cond("AbleToScale", "True", "ReadyForNewScale"),
        cond("ScalingActive", "True", "ValidMetricFound"),
        cond("ScalingLimited", "False", "DesiredWithinRange", "the desired count is within the acceptable range"),
    ]
    assert health.assess(*hpa, obj(status={"conditions": fine})).status == H
    import json

    v1 = {"metadata": {"name": "x", "annotations": {"autoscaling.alpha.kubernetes.io/conditions": json.dumps(fine)}}}
    assert health.assess(*hpa, v1).status == H
    ing = "networking.k8s.io", "Ingress"
    assert health.assess(*ing, obj(status={})).status == P
    assert health.assess(*ing, obj(status={"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}})).status == H
    api = "apiregistration.k8s.io", "APIService"
    assert health.assess(*api, obj(status={"conditions": [cond("Available", "True", "Passed")]})).status == H
    down = obj(
        status={
            "conditions": [cond("Available", "False", "MissingEndpoints", "endpoints for service/x have no addresses")]
        }
    )
    assert health.assess(*api, down) == health.Health(P, "endpoints for service/x have no addresses")
    assert health.assess("", "PersistentVolumeClaim", obj(status={"phase": "Lost"})).status == D


@pytest.mark.parametrize(
    "status,generation,expected",
    [
        ({}, 1, H),  # nobody reports on it: it exists
        ({"observedGeneration": 1}, 2, P),  # a controller that has not seen the change
        ({"observedGeneration": 2, "conditions": [cond("Ready", "True")]}, 2, H),
        ({"conditions": [cond("Ready", "False", "Issuing", "issuing")]}, 1, P),
        ({"conditions": [cond("Stalled", "True", "Invalid", "the spec is wrong")]}, 1, D),
        ({"conditions": [cond("Reconciling", "True", "Progressing", "working")]}, 1, P),
        # kstatus reads Reconciling before Stalled, and either before Ready
        ({"conditions": [cond("Reconciling", "True"), cond("Stalled", "True")]}, 1, P),
        ({"conditions": [cond("Ready", "True"), cond("Stalled", "True", message="stuck")]}, 1, D),
        # an observedGeneration behind the spec wins over a stale Ready=True
        ({"observedGeneration": 1, "conditions": [cond("Ready", "True")]}, 2, P),
    ],
)
def test_any_custom_resource_as_kstatus_reads_it(status: dict[str, Any], generation: int, expected: str) -> None:
    assert health.assess("example.com", "Widget", obj(status=status, generation=generation)).status == expected


def test_hooks_never_count_suspended_as_done() -> None:
    assert health.hook_outcome("batch", "Job", obj({"suspend": True})).status == P


def test_metrics_and_the_api_speak_the_same_six_words_and_pick_the_worst() -> None:
    from slipway.results import HEALTH_STATUSES

    assert HEALTH_STATUSES == health.STATUSES
    assert health.worst(["Healthy", "Suspended"]) == S
    assert health.worst(["Missing", "Progressing"]) == M
    assert health.worst(["Degraded", "Unknown"]) == U
