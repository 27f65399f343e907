"""Health of core (v1) kinds: Pod, PersistentVolumeClaim, Service (a LoadBalancer needs an address)."""

from __future__ import annotations

from ..kube import Obj
from ..kube.objects import conditions
from .registry import DEGRADED, HEALTHY, PROGRESSING, Health, rule, spec, status, true

_BAD_WAITING = {
    "CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError", "InvalidImageName",
    "CreateContainerError",
}  # fmt: skip


@rule("", "Pod")
def pod(o: Obj) -> Health:
    st = status(o)
    phase = st.get("phase")
    if phase == "Succeeded":
        return Health(HEALTHY, "completed")
    if phase == "Failed":
        return Health(DEGRADED, st.get("message") or st.get("reason") or "pod failed")
    for cs in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in _BAD_WAITING:
            return Health(
                DEGRADED, f"container {cs.get('name')}: {waiting['reason']} {waiting.get('message', '')}".strip()
            )
    if phase == "Running" and true(o, "Ready"):
        return Health(HEALTHY, "running and ready")
    scheduled = conditions(o).get("PodScheduled", {})
    if scheduled.get("status") == "False":
        return Health(PROGRESSING, f"not scheduled: {scheduled.get('message', '')}".strip())
    return Health(PROGRESSING, f"phase {phase or 'Pending'}")


@rule("", "PersistentVolumeClaim")
def pvc(o: Obj) -> Health:
    phase = status(o).get("phase")
    if phase == "Bound":
        return Health(HEALTHY, "bound")
    if phase == "Lost":
        return Health(DEGRADED, "lost its volume")
    return Health(PROGRESSING, f"phase {phase or 'Pending'}")


@rule("", "Service")
def service(o: Obj) -> Health:
    if spec(o).get("type") == "LoadBalancer":
        if ((status(o).get("loadBalancer") or {}).get("ingress")) or []:
            return Health(HEALTHY, "load balancer ready")
        return Health(PROGRESSING, "waiting for a load balancer address")
    return Health(HEALTHY, "")
