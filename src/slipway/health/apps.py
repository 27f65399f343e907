"""Health of workloads in the apps group: Deployment, StatefulSet, DaemonSet, ReplicaSet."""

from __future__ import annotations

from ..kube import Obj
from ..kube.objects import conditions
from .registry import DEGRADED, HEALTHY, PROGRESSING, SUSPENDED, Health, rule, spec, status, unobserved


@rule("apps", "Deployment")
def deployment(o: Obj) -> Health:
    if (h := unobserved(o)) is not None:
        return h
    if spec(o).get("paused"):
        return Health(SUSPENDED, "deployment is paused")
    want = spec(o).get("replicas", 1)
    st = status(o)
    updated, total, available = st.get("updatedReplicas", 0), st.get("replicas", 0), st.get("availableReplicas", 0)
    if updated >= want and total <= updated and available >= updated:
        # Complete by the numbers; a ProgressDeadlineExceeded left from an earlier rollout is stale.
        return Health(HEALTHY, f"{available} of {want} replicas available")
    progressing = conditions(o).get("Progressing", {})
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return Health(DEGRADED, f"exceeded its progress deadline: {progressing.get('message', '')}".strip())
    if updated < want:
        return Health(PROGRESSING, f"{updated} of {want} replicas updated")
    if total > updated:
        return Health(PROGRESSING, f"{total - updated} old replicas are pending termination")
    return Health(PROGRESSING, f"{available} of {updated} updated replicas available")


@rule("apps", "StatefulSet")
def statefulset(o: Obj) -> Health:
    if (h := unobserved(o)) is not None:
        return h
    sp, st = spec(o), status(o)
    strategy = sp.get("updateStrategy") or {}
    if strategy.get("type") == "OnDelete":
        return Health(HEALTHY, "update strategy OnDelete: pods update when deleted")
    want = sp.get("replicas", 1)
    ready = st.get("readyReplicas", 0)
    if ready < want:
        return Health(PROGRESSING, f"{ready} of {want} replicas ready")
    partition = ((strategy.get("rollingUpdate") or {}).get("partition")) or 0
    if partition:
        updated = st.get("updatedReplicas", 0)
        if updated < want - partition:
            return Health(PROGRESSING, f"{updated} of {want - partition} replicas updated (partition {partition})")
        return Health(HEALTHY, f"partitioned roll out: {updated} updated")
    if st.get("updateRevision") and st.get("currentRevision") != st.get("updateRevision"):
        return Health(PROGRESSING, "rolling update in progress")
    return Health(HEALTHY, f"{ready} of {want} replicas ready")


@rule("apps", "DaemonSet")
def daemonset(o: Obj) -> Health:
    if (h := unobserved(o)) is not None:
        return h
    st = status(o)
    if (spec(o).get("updateStrategy") or {}).get("type") == "OnDelete":
        return Health(HEALTHY, "update strategy OnDelete: pods update when deleted")
    want = st.get("desiredNumberScheduled", 0)
    updated, available = st.get("updatedNumberScheduled", 0), st.get("numberAvailable", 0)
    if updated < want:
        return Health(PROGRESSING, f"{updated} of {want} pods updated")
    if available < want:
        return Health(PROGRESSING, f"{available} of {want} pods available")
    return Health(HEALTHY, f"{available} of {want} pods available")


@rule("apps", "ReplicaSet")
def replicaset(o: Obj) -> Health:
    if (h := unobserved(o)) is not None:
        return h
    failure = conditions(o).get("ReplicaFailure", {})
    if failure.get("status") == "True":
        return Health(DEGRADED, failure.get("message", "replica failure"))
    want = spec(o).get("replicas", 1)
    available = status(o).get("availableReplicas", 0)
    if available < want:
        return Health(PROGRESSING, f"{available} of {want} replicas available")
    return Health(HEALTHY, f"{available} of {want} replicas available")
