"""Health: one registry of per-kind rules, and the wait that polls them.

A rule reads one live object and says Healthy, Progressing or Degraded with a message. Rules are
looked up by (group, kind); a kind without a rule falls back to the generic one (a ``Ready``
condition if there is one, a ``Stalled`` condition means Degraded), and a kind with no conditions
at all is healthy once it exists. Every rule first checks that the controller has observed the
latest generation. ``docs/health.md`` lists the rules in the same words.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import Cancelled, KubeError
from ..kube import Kube, Obj, ObjectRef, ResourceInfo
from ..kube.objects import conditions

HEALTHY, PROGRESSING, DEGRADED, MISSING = "Healthy", "Progressing", "Degraded", "Missing"


@dataclass(frozen=True)
class Health:
    status: str
    message: str = ""


Rule = Callable[[Obj], Health]
RULES: dict[tuple[str, str], Rule] = {}


def rule(group: str, kind: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        RULES[(group, kind)] = fn
        return fn

    return register


def _spec(o: Obj) -> dict[str, Any]:
    return o.get("spec") or {}


def _status(o: Obj) -> dict[str, Any]:
    return o.get("status") or {}


def _unobserved(o: Obj) -> Health | None:
    generation = (o.get("metadata") or {}).get("generation")
    observed = _status(o).get("observedGeneration")
    if generation is not None and (observed is None or observed < generation):
        return Health(PROGRESSING, f"waiting for the controller to observe generation {generation}")
    return None


def _true(o: Obj, kind: str) -> bool:
    return conditions(o).get(kind, {}).get("status") == "True"


@rule("apps", "Deployment")
def deployment(o: Obj) -> Health:
    if (h := _unobserved(o)) is not None:
        return h
    if _spec(o).get("paused"):
        return Health(HEALTHY, "paused")
    want = _spec(o).get("replicas", 1)
    st = _status(o)
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
    if (h := _unobserved(o)) is not None:
        return h
    spec, st = _spec(o), _status(o)
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type") == "OnDelete":
        return Health(HEALTHY, "update strategy OnDelete: pods update when deleted")
    want = spec.get("replicas", 1)
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
    if (h := _unobserved(o)) is not None:
        return h
    st = _status(o)
    if (_spec(o).get("updateStrategy") or {}).get("type") == "OnDelete":
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
    if (h := _unobserved(o)) is not None:
        return h
    failure = conditions(o).get("ReplicaFailure", {})
    if failure.get("status") == "True":
        return Health(DEGRADED, failure.get("message", "replica failure"))
    want = _spec(o).get("replicas", 1)
    available = _status(o).get("availableReplicas", 0)
    if available < want:
        return Health(PROGRESSING, f"{available} of {want} replicas available")
    return Health(HEALTHY, f"{available} of {want} replicas available")


@rule("batch", "Job")
def job(o: Obj) -> Health:
    conds = conditions(o)
    if conds.get("Failed", {}).get("status") == "True":
        return Health(DEGRADED, conds["Failed"].get("message") or conds["Failed"].get("reason", "job failed"))
    if conds.get("Complete", {}).get("status") == "True":
        return Health(HEALTHY, "completed")
    if _spec(o).get("suspend"):
        return Health(HEALTHY, "suspended")
    st = _status(o)
    return Health(PROGRESSING, f"{st.get('succeeded', 0)} succeeded, {st.get('active', 0)} running")


_BAD_WAITING = {
    "CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError", "InvalidImageName",
    "CreateContainerError",
}  # fmt: skip


@rule("", "Pod")
def pod(o: Obj) -> Health:
    st = _status(o)
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
    if phase == "Running" and _true(o, "Ready"):
        return Health(HEALTHY, "running and ready")
    scheduled = conditions(o).get("PodScheduled", {})
    if scheduled.get("status") == "False":
        return Health(PROGRESSING, f"not scheduled: {scheduled.get('message', '')}".strip())
    return Health(PROGRESSING, f"phase {phase or 'Pending'}")


@rule("", "PersistentVolumeClaim")
def pvc(o: Obj) -> Health:
    phase = _status(o).get("phase")
    if phase == "Bound":
        return Health(HEALTHY, "bound")
    if phase == "Lost":
        return Health(DEGRADED, "lost its volume")
    return Health(PROGRESSING, f"phase {phase or 'Pending'}")


@rule("", "Service")
def service(o: Obj) -> Health:
    if _spec(o).get("type") == "LoadBalancer":
        if ((_status(o).get("loadBalancer") or {}).get("ingress")) or []:
            return Health(HEALTHY, "load balancer ready")
        return Health(PROGRESSING, "waiting for a load balancer address")
    return Health(HEALTHY, "")


@rule("apiextensions.k8s.io", "CustomResourceDefinition")
def crd(o: Obj) -> Health:
    conds = conditions(o)
    names = conds.get("NamesAccepted", {})
    if names.get("status") == "False":
        return Health(DEGRADED, names.get("message", "names not accepted"))
    if conds.get("Established", {}).get("status") == "True":
        return Health(HEALTHY, "established")
    return Health(PROGRESSING, "waiting to be established")


def generic(o: Obj) -> Health:
    # Only an object whose controller reports observedGeneration can be waited on for it; a
    # custom resource nobody reconciles must not wait forever.
    if "observedGeneration" in _status(o) and (h := _unobserved(o)) is not None:
        return h
    conds = conditions(o)
    stalled = conds.get("Stalled", {})
    if stalled.get("status") == "True":
        return Health(DEGRADED, stalled.get("message") or stalled.get("reason", "stalled"))
    ready = conds.get("Ready")
    if ready is None:
        return Health(HEALTHY, "")
    if ready.get("status") == "True":
        return Health(HEALTHY, ready.get("message", ""))
    return Health(PROGRESSING, ready.get("message") or ready.get("reason") or "not ready")


def assess(group: str, kind: str, obj: Obj | None) -> Health:
    if obj is None:
        return Health(MISSING, "does not exist")
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return Health(PROGRESSING, "being deleted")
    return RULES.get((group, kind), generic)(obj)


@dataclass
class Target:
    ref: ObjectRef
    info: ResourceInfo


def check(kube: Kube, targets: list[Target], selector: str | None = None) -> dict[ObjectRef, Health]:
    """One LIST per kind and namespace (narrowed by ``selector``), each object judged by its rule."""
    groups: dict[tuple[ResourceInfo, str], list[Target]] = defaultdict(list)
    for t in targets:
        groups[(t.info, t.ref.namespace)].append(t)
    out: dict[ObjectRef, Health] = {}
    for (info, ns), members in groups.items():
        if len(members) == 1:
            objs = [o for o in [kube.get(info, ns, members[0].ref.name)] if o is not None]
        else:
            objs = kube.list(info, ns or None, label_selector=selector)
        by_name = {(o.get("metadata") or {}).get("name"): o for o in objs}
        for t in members:
            out[t.ref] = assess(info.group, info.kind, by_name.get(t.ref.name))
    return out


# Kinds whose health is fixed by what they are (or their spec): judged from the object the apply
# returned, never read again.
JUDGED_ONCE = frozenset(
    {
        ("", "ConfigMap"), ("", "Secret"), ("", "ServiceAccount"), ("", "Service"), ("", "LimitRange"),
        ("rbac.authorization.k8s.io", "Role"), ("rbac.authorization.k8s.io", "RoleBinding"),
        ("rbac.authorization.k8s.io", "ClusterRole"), ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("networking.k8s.io", "NetworkPolicy"), ("networking.k8s.io", "IngressClass"),
        ("scheduling.k8s.io", "PriorityClass"), ("storage.k8s.io", "StorageClass"),
    }
)  # fmt: skip


def wait(
    kube: Kube,
    targets: list[Target],
    timeout: float,
    *,
    selector: str | None = None,
    cancel: threading.Event | None = None,
    progress: Callable[[dict[ObjectRef, Health]], None] | None = None,
    degraded_grace: float = 5.0,
    known: dict[ObjectRef, Obj] | None = None,
) -> tuple[bool, dict[ObjectRef, Health]]:
    """Poll until every target is Healthy (True), or one stays Degraded, or the timeout passes (False).

    ``known`` holds objects as the apply just returned them: kinds in :data:`JUDGED_ONCE` are
    judged from those without a request. A target once Healthy is not read again, and polls
    come at most a second apart. A Degraded verdict must hold for ``degraded_grace`` seconds
    before the wait gives up early: controllers report a new generation before they have
    cleared the conditions of the old one.
    """
    if not targets:
        return True, {}
    cancel = cancel or threading.Event()
    deadline = time.monotonic() + timeout
    delay = 0.25
    last: dict[ObjectRef, Health] = {}
    for t in targets:
        obj = (known or {}).get(t.ref)
        if obj is not None and (t.info.group, t.info.kind) in JUDGED_ONCE:
            verdict = assess(t.info.group, t.info.kind, obj)
            if verdict.status == HEALTHY:
                last[t.ref] = verdict
    degraded_since: dict[ObjectRef, float] = {}
    while True:
        pending = [t for t in targets if last.get(t.ref, Health(MISSING)).status != HEALTHY]
        if pending:
            try:
                last.update(check(kube, pending, selector))
            except KubeError as e:
                if not e.retryable:
                    raise
        if progress is not None and last:
            progress(last)
        if len(last) == len(targets) and all(h.status == HEALTHY for h in last.values()):
            return True, last
        now = time.monotonic()
        for ref, h in last.items():
            if h.status == DEGRADED:
                degraded_since.setdefault(ref, now)
            else:
                degraded_since.pop(ref, None)
        if any(now - since >= degraded_grace for since in degraded_since.values()):
            return False, last
        if time.monotonic() >= deadline:
            return False, last
        if cancel.wait(min(delay, max(0.0, deadline - time.monotonic()))):
            raise Cancelled("cancelled while waiting for health")
        delay = min(1.0, delay * 1.5)
