"""Prune safety: what may be deleted when Git no longer declares it, and what must stay.

A candidate is an object of the workflow's inventory that Git no longer declares and that still
carries the workflow's marks (this state store's). It stays — with a warning saying why — when
a controller owns it, when it is annotated prune-disabled, or when it is a Namespace or a
CustomResourceDefinition that still holds objects this workflow does not own: pruning those would
cascade into what others made. Slipway never deletes what it cannot show it applied. An object
with ownerReferences is discounted only when each owner is judged by the same check (a kind listed
there, in the object's Namespace) or leaves in this sync: anyone can write an ownerReference, and
one pointing elsewhere (a ClusterRole) does not make the object go with its owner.

What it cannot see counts as held too: a kind it may not or cannot list in that Namespace (403,
404, 405), or a CRD whose kind discovery does not serve, means its contents are unknown, and an
unknown is never taken for empty (a Namespace's deletion would take a foreign Secret with it).
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

    def _holds(self, info: ResourceInfo, obj: Obj, leaving: set[ObjectRef], listed: set[tuple[str, str]]) -> bool:
        """True when deleting the Namespace or CRD would take ``obj`` with it, and it is not leaving anyway."""
        md = obj.get("metadata") or {}
        ref = ObjectRef(info.group, info.kind, md.get("namespace") or "", md.get("name") or "")
        if ref in leaving or md.get("deletionTimestamp"):
            return False  # pruned in this same sync, or already going
        owners = [o for o in md.get("ownerReferences") or [] if isinstance(o, dict)]
        if owners and all(self._accounted(o, ref.namespace, leaving, listed) for o in owners):
            return False  # made from objects this same check judges (or that leave now): they speak for it
        return (info.group, info.kind) not in _NEVER_FOREIGN_KINDS and (
            info.group,
            info.kind,
            ref.name,
        ) not in _NAMESPACE_DEFAULTS

    def _accounted(self, owner: dict[str, object], namespace: str, leaving: set[ObjectRef],
                   listed: set[tuple[str, str]]) -> bool:  # fmt: skip
        """Whether an owner is itself judged here: leaving in this sync, or of a kind this check lists in
        the dependent's own Namespace (a namespaced dependent's namespaced owner lives beside it)."""
        api_version, kind = str(owner.get("apiVersion") or ""), str(owner.get("kind") or "")
        info = self.kube.discovery.find(api_version, kind) or self.kube.discovery.preferred(
            api_version.rpartition("/")[0], kind
        )
        if info is None:
            return False  # an owner of a kind nobody serves: nothing speaks for the object
        if (
            ObjectRef(info.group, info.kind, namespace if info.namespaced else "", str(owner.get("name") or ""))
            in leaving
        ):
            return True
        return bool(namespace) and info.namespaced and (info.group, info.kind) in listed

    def foreign(self, it: Item, leaving: set[ObjectRef]) -> tuple[list[str], list[str]]:
        """What ``it`` (a Namespace or CRD) holds that is not leaving with it: the ``Kind/name`` of
        each object found, and the kinds whose objects could not be listed (its contents unknown)."""
        unknown: list[str] = []
        if it.ref.kind == "Namespace" and not it.ref.group:
            kinds = [i for i in self.kube.discovery.all() if i.namespaced and "list" in i.verbs]
            jobs = [(i, it.ref.name) for i in kinds]
        elif it.ref.kind == "CustomResourceDefinition":
            spec = (it.live or {}).get("spec") or {}
            group, kind = spec.get("group", ""), (spec.get("names") or {}).get("kind", "")
            served = any(v.get("served") for v in spec.get("versions") or [])
            info = self.kube.discovery.preferred(group, kind) if group and kind and served else None
            if info is None and served and group and kind:  # a CRD made a moment ago may be newer than the map
                self.kube.discovery.refresh()
                info = self.kube.discovery.preferred(group, kind)
            jobs = [(info, "")] if info is not None else []
            if info is None:  # no API serves its kind (now): whatever is stored of it cannot be seen
                unknown.append(_kind_name(group, kind or it.ref.name))
        else:
            return [], []

        judged = {(i.group, i.kind) for i, _ in jobs}

        def names(job: tuple[ResourceInfo, str]) -> list[str] | None:
            info, ns = job
            try:
                objs = with_retry(
                    lambda: self.kube.list_metadata(info, ns or None), self.retry, what=f"list {info.kind}",
                    cancel=self.cancel,
                )  # fmt: skip
            except KubeError as e:
                if e.status in (401, 403, 405) or (e.status == 404 and (not ns or self._still_served(info))):
                    return None  # we may not or cannot list it: what it holds there is unknown, not nothing
                if e.status == 404:
                    return []  # the kind went away since discovery, and the namespace's deletion cannot see it either
                raise
            return [
                f"{info.kind}/{(o.get('metadata') or {}).get('name')}"
                for o in objs
                if self._holds(info, o, leaving, judged)
            ]

        found: list[str] = []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, max(1, len(jobs)))) as pool:
            for (info, _), listed in zip(jobs, pool.map(names, jobs), strict=True):
                if listed is None:
                    unknown.append(_kind_name(info.group, info.kind))
                else:
                    found += listed
        return sorted(found), sorted(set(unknown))

    def _still_served(self, info: ResourceInfo) -> bool:
        """After a 404 on a list: does discovery (read again) still serve the kind?"""
        try:
            self.kube.discovery.refresh()
        except KubeError:
            return True  # cannot tell: count it as there
        return self.kube.discovery.find(info.api_version, info.kind) is not None


def _kind_name(group: str, kind: str) -> str:
    """``Secret``, ``Widget.example.com``: a kind as a person names it."""
    return f"{kind}.{group}" if group else kind


def named(found: list[str]) -> str:
    shown = ", ".join(found[:MAX_NAMED])
    return shown + (f" and {len(found) - MAX_NAMED} more" if len(found) > MAX_NAMED else "")
