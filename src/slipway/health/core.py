"""Health of core (v1) kinds: Pod (by its restart policy), PersistentVolumeClaim, Service (a LoadBalancer needs an address)."""

from __future__ import annotations

from ..kube import Obj
from ..kube.objects import conditions
from .registry import DEGRADED, HEALTHY, PROGRESSING, UNKNOWN, Health, rule, spec, status, true


def _bad_waiting(reason: str) -> bool:
    # Argo CD's reading: ErrImagePull, CreateContainerConfigError, CrashLoopBackOff and their kin.
    return reason.startswith("Err") or reason.endswith("Error") or reason.endswith("BackOff")


@rule("", "Pod")
def pod(o: Obj) -> Health:
    st = status(o)
    phase = st.get("phase")
    if phase == "Succeeded":
        return Health(HEALTHY, st.get("message") or "completed")
    if phase == "Failed":
        return Health(DEGRADED, st.get("message") or st.get("reason") or "pod failed")
    if phase == "Unknown":
        return Health(UNKNOWN, st.get("message") or "the pod's node does not report on it")
    for cs in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if _bad_waiting(str(waiting.get("reason") or "")):
            return Health(
                DEGRADED, f"container {cs.get('name')}: {waiting['reason']} {waiting.get('message', '')}".strip()
            )
    if phase == "Running":
        # A pod that restarts its containers serves; one meant to run to its end is at work until it ends.
        if (spec(o).get("restartPolicy") or "Always") != "Always":
            return Health(PROGRESSING, "running")
        if true(o, "Ready"):
            return Health(HEALTHY, "running and ready")
        for cs in st.get("containerStatuses") or []:
            ended = (cs.get("lastState") or {}).get("terminated")
            if ended:  # it ran and stopped, and is not ready again: a crash, before the back-off says so
                why = ended.get("message") or ended.get("reason") or f"exit code {ended.get('exitCode')}"
                return Health(DEGRADED, f"container {cs.get('name')} terminated: {why}")
        return Health(PROGRESSING, "running, not ready")
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


def has_address(o: Obj) -> bool:
    return any(i.get("ip") or i.get("hostname") for i in ((status(o).get("loadBalancer") or {}).get("ingress") or []))


@rule("", "Service")
def service(o: Obj) -> Health:
    if spec(o).get("type") == "LoadBalancer":
        if has_address(o):
            return Health(HEALTHY, "load balancer ready")
        return Health(PROGRESSING, "waiting for a load balancer address")
    return Health(HEALTHY, "")
