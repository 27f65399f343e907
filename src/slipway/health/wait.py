"""The health wait: one LIST per kind and namespace per poll, each object judged by its rule, until all are healthy."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import Cancelled, KubeError
from ..kube import Obj, ObjectRef, ResourceInfo
from .registry import DEGRADED, MISSING, SETTLED, Health, assess

if TYPE_CHECKING:
    from ..kube import Kube


@dataclass
class Target:
    ref: ObjectRef
    info: ResourceInfo


Judge = Callable[[str, str, Obj | None], Health]


def check(
    kube: Kube, targets: list[Target], selector: str | None = None, judge: Judge = assess
) -> dict[ObjectRef, Health]:
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
            out[t.ref] = judge(info.group, info.kind, by_name.get(t.ref.name))
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
    judge: Judge = assess,
) -> tuple[bool, dict[ObjectRef, Health]]:
    """Poll until every target is Healthy or Suspended (True), or one stays Degraded, or the timeout
    passes (False). Unknown and Missing are waited on like Progressing: they are no verdict yet.

    ``known`` holds objects as the apply just returned them: kinds in :data:`JUDGED_ONCE` are
    judged from those without a request. A target once Healthy or Suspended is not read again, and polls
    come at most a second apart for the first five seconds, then at most a fifth of the time
    waited so far apart (5 s at most). A Degraded verdict must hold for ``degraded_grace`` seconds
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
            verdict = judge(t.info.group, t.info.kind, obj)
            if verdict.status in SETTLED:
                last[t.ref] = verdict
    degraded_since: dict[ObjectRef, float] = {}
    while True:
        pending = [t for t in targets if last.get(t.ref, Health(MISSING)).status not in SETTLED]
        if pending:
            try:
                last.update(check(kube, pending, selector, judge))
            except KubeError as e:
                if not e.retryable:
                    raise
        if progress is not None and last:
            progress(last)
        if len(last) == len(targets) and all(h.status in SETTLED for h in last.values()):
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
        # At most a second apart while a rollout is young; a long wait backs off (up to 5 s), so a
        # busy cluster is not asked more often the slower it gets.
        waited = timeout - (deadline - time.monotonic())
        delay = min(delay * 1.5, max(1.0, min(5.0, waited / 5)))
