"""Health of Ingress (an address published by its controller), HorizontalPodAutoscaler and APIService.

Argo CD's readings: an Ingress is Progressing until ``status.loadBalancer.ingress`` has an IP or a
hostname; an autoscaler is Degraded when its conditions say it cannot read its target or its
metrics, Healthy once it has scaled or found the desired count within range (autoscaling/v1
keeps its conditions in an annotation); an APIService is
Healthy when its ``Available`` condition is True, else Progressing with that condition's message.
"""

from __future__ import annotations

import json
from typing import Any

from ..kube import Obj
from ..kube.objects import conditions
from .core import has_address
from .registry import DEGRADED, HEALTHY, PROGRESSING, Health, rule, status


@rule("networking.k8s.io", "Ingress")
@rule("extensions", "Ingress")
def ingress(o: Obj) -> Health:
    if has_address(o):
        return Health(HEALTHY, "")
    return Health(PROGRESSING, "waiting for the ingress controller to publish an address")


_HPA_DEGRADED = {
    ("AbleToScale", "FailedGetScale"), ("AbleToScale", "FailedUpdateScale"),
    ("ScalingActive", "FailedGetResourceMetric"), ("ScalingActive", "InvalidSelector"),
    ("ScalingActive", "FailedGetObjectMetric"), ("ScalingActive", "FailedGetPodsMetric"),
    ("ScalingActive", "FailedGetExternalMetric"), ("ScalingActive", "FailedGetContainerResourceMetric"),
}  # fmt: skip
_HPA_HEALTHY = {
    ("AbleToScale", "SucceededRescale"), ("ScalingLimited", "DesiredWithinRange"),
    ("ScalingLimited", "TooFewReplicas"), ("ScalingLimited", "TooManyReplicas"),
}  # fmt: skip


def _v1_conditions(o: Obj) -> list[dict[str, Any]]:
    # autoscaling/v1 has no status.conditions: the server keeps them, as JSON, in an annotation.
    text = ((o.get("metadata") or {}).get("annotations") or {}).get("autoscaling.alpha.kubernetes.io/conditions")
    try:
        found = json.loads(text) if text else []
    except ValueError:
        return []
    return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []


@rule("autoscaling", "HorizontalPodAutoscaler")
def hpa(o: Obj) -> Health:
    conds = (status(o).get("conditions")) or _v1_conditions(o)
    for c in conds:
        if (c.get("type"), c.get("reason")) in _HPA_DEGRADED:
            return Health(DEGRADED, c.get("message") or c.get("reason", ""))
    for c in conds:
        if (c.get("type"), c.get("reason")) in _HPA_HEALTHY:
            return Health(HEALTHY, c.get("message") or c.get("reason", ""))
    return Health(PROGRESSING, "waiting to autoscale")


@rule("apiregistration.k8s.io", "APIService")
def apiservice(o: Obj) -> Health:
    available = conditions(o).get("Available")
    if available is None:
        return Health(PROGRESSING, "waiting to be checked by the aggregator")
    if available.get("status") == "True":
        return Health(HEALTHY, available.get("message") or "available")
    return Health(PROGRESSING, available.get("message") or available.get("reason") or "not available")
