"""Prune safety: what may be deleted when Git no longer declares it, and what must stay.

A candidate is an object of the workflow's inventory that Git no longer declares and that still
carries the workflow's marks (this state store's). It stays — with a warning saying why — when
a controller owns it, when it is annotated prune-disabled, or when it is a Namespace or a
CustomResourceDefinition that still holds objects this workflow does not own: pruning those would
cascade into what others made. Slipway never deletes what it cannot show it applied.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from ..errors import KubeError
from ..items import Item
from ..kube import Obj, ObjectRef, ResourceInfo
from ..model import RetryPolicy
from ..retry import with_retry
from . import ownership

if TYPE_CHECKING:
    from ..kube import Kube

# What every namespace holds without anyone declaring it.
_NAMESPACE_DEFAULTS = {("", "ServiceAccount", "default"), ("", "ConfigMap", "kube-root-ca.crt")}
_NEVER_FOREIGN_KINDS = {("", "Event"), ("events.k8s.io", "Event"), ("", "Endpoints")}
MAX_NAMED = 5


def why_kept(live: Obj, workflow_id: str, instance: str) -> str | None:
    """Why an inventory object Git no longer declares must not be pruned, or None when it may be."""
    who = ownership.owner(live, workflow_id, instance)
    if who not in ("ours", "legacy"):
        return f"it is {ownership.describe_owner(live, workflow_id)} now"
    controller = ownership.controller_owner(live)
    if controller:
        return f"it is controlled by {controller}"
    disabled = ownership.prune_disabled(live)
    if disabled:
        return f"pruning is disabled by its annotation {disabled}"
    return None


class ContentCheck:
    """Finds what a Namespace or CRD still holds besides what this sync prunes with it.

    Objects this workflow still declares count too: deleting their namespace would delete them.
    """

    def __init__(
        self,
        kube: Kube,
        retry: RetryPolicy,
        *,
        concurrency: int = 8,
        cancel: threading.Event | None = None,
    ) -> None:
        self.kube = kube
        self.retry = retry
        self.concurrency = concurrency
        self.cancel = cancel

    def _holds(self, info: ResourceInfo, obj: Obj, leaving: set[ObjectRef]) -> bool:
        """True when deleting the Namespace or CRD would take ``obj`` with it, and it is not leaving anyway."""
        md = obj.get("metadata") or {}
        ref = ObjectRef(info.group, info.kind, md.get("namespace") or "", md.get("name") or "")
        if ref in leaving or md.get("deletionTimestamp") or md.get("ownerReferences"):
            return False  # pruned in this same sync, already going, or made by a controller from something
        return (info.group, info.kind) not in _NEVER_FOREIGN_KINDS and (
            info.group,
            info.kind,
            ref.name,
        ) not in _NAMESPACE_DEFAULTS

    def foreign(self, it: Item, leaving: set[ObjectRef]) -> list[str]:
        """``Kind/name`` of the objects ``it`` (a Namespace or CRD) holds that are not leaving with it."""
        if it.ref.kind == "Namespace" and not it.ref.group:
            kinds = [i for i in self.kube.discovery.all() if i.namespaced and "list" in i.verbs]
            jobs = [(i, it.ref.name) for i in kinds]
        elif it.ref.kind == "CustomResourceDefinition":
            spec = (it.live or {}).get("spec") or {}
            group, kind = spec.get("group", ""), (spec.get("names") or {}).get("kind", "")
            info = self.kube.discovery.preferred(group, kind)
            if info is None:  # a CRD made a moment ago may be newer than the map (refreshed at most once a second)
                self.kube.discovery.refresh()
                info = self.kube.discovery.preferred(group, kind)
            jobs = [(info, "")] if info is not None else []
        else:
            return []

        def names(job: tuple[ResourceInfo, str]) -> list[str]:
            info, ns = job
            try:
                objs = with_retry(
                    lambda: self.kube.list_metadata(info, ns or None), self.retry, what=f"list {info.kind}",
                    cancel=self.cancel,
                )  # fmt: skip
            except KubeError as e:
                if e.status in (403, 404, 405):
                    return []  # a kind we may not or cannot list says nothing about what is there
                raise
            return [
                f"{info.kind}/{(o.get('metadata') or {}).get('name')}" for o in objs if self._holds(info, o, leaving)
            ]

        with ThreadPoolExecutor(max_workers=min(self.concurrency, max(1, len(jobs)))) as pool:
            found = [n for ns in pool.map(names, jobs) for n in ns]
        return sorted(found)


def named(found: list[str]) -> str:
    shown = ", ".join(found[:MAX_NAMED])
    return shown + (f" and {len(found) - MAX_NAMED} more" if len(found) > MAX_NAMED else "")
