"""Reading live state for a plan: by the workflow's label selector, and by metadata where that is not enough.

Per kind and namespace the plan touches (what Git declares, and what the inventory says the
workflow applied) one LIST narrowed by the workflow's selector reads the objects that may be its
own — never every Secret of a namespace. A declared object not found that way either does not
exist or belongs to someone else (or lost its labels): one metadata-only LIST per such kind and
namespace (names and labels, no spec, no Secret values) tells which, and only the objects found
there are read in full, one GET each. A workflow whose objects are all its own costs one LIST per
kind and namespace. Where the workflow has applied nothing yet (its inventory holds nothing of
that kind and namespace: a first sync), the selector could find nothing, so only the metadata
LIST is sent — one request per kind and namespace again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from ..items import Item
from ..kube import Obj, ObjectRef, ResourceInfo
from ..model import RetryPolicy
from ..retry import with_retry
from .ownership import selector

if TYPE_CHECKING:
    from ..kube import Kube

T = TypeVar("T")
J = TypeVar("J")
R = TypeVar("R")
Group = tuple[ResourceInfo, str]


@dataclass
class LiveState:
    objects: dict[ObjectRef, Obj] = field(default_factory=dict)  # full objects, by identity
    # Inventory objects that exist but no longer answer to the workflow's selector (labels removed by hand).
    unmarked: set[ObjectRef] = field(default_factory=set)
    infos: dict[ObjectRef, ResourceInfo] = field(default_factory=dict)  # how to reach each inventory object


def ref_of(info: ResourceInfo, obj: Obj) -> ObjectRef:
    md = obj.get("metadata") or {}
    return ObjectRef(info.group, info.kind, md.get("namespace") or "", md.get("name") or "")


class LiveReader:
    def __init__(
        self,
        kube: Kube,
        workflow_id: str,
        retry: RetryPolicy,
        *,
        concurrency: int = 16,
        cancel: threading.Event | None = None,
    ) -> None:
        self.kube = kube
        self.workflow_id = workflow_id
        self.retry = retry
        self.concurrency = concurrency
        self.cancel = cancel

    def _retry(self, fn: Callable[[], T], what: str) -> T:
        return with_retry(fn, self.retry, what=what, cancel=self.cancel)

    def _each(self, fn: Callable[[J], R], jobs: Iterable[J]) -> list[R]:
        todo = list(jobs)
        if not todo:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(todo))) as pool:
            return list(pool.map(fn, todo))

    def read(self, items: list[Item], inventory: dict[ObjectRef, str]) -> LiveState:
        state = LiveState()
        groups: dict[Group, None] = {}
        for ref, api_version in inventory.items():
            info = self.kube.discovery.find(api_version, ref.kind) or self.kube.discovery.preferred(ref.group, ref.kind)
            if info is None:
                continue  # its kind is gone (CRD deleted): nothing left to prune
            state.infos[ref] = info
            groups.setdefault((info, ref.namespace if info.namespaced else ""), None)
        # A kind and namespace where the workflow has applied nothing yet (a first sync): the
        # selector would find nothing there, so only the metadata LIST below is sent.
        fresh = {(it.info, it.ref.namespace) for it in items if it.info is not None and not it.pending} - set(groups)

        sel = selector(self.workflow_id)

        def owned(job: Group) -> tuple[ResourceInfo, list[Obj]]:
            info, ns = job
            return info, self._retry(lambda: self.kube.list(info, ns or None, label_selector=sel), f"list {info.kind}")

        for info, objs in self._each(owned, groups):
            for obj in objs:
                state.objects[ref_of(info, obj)] = obj

        # Declared objects the selector did not find, and inventory objects it no longer finds.
        missing: dict[Group, set[ObjectRef]] = {}
        for it in items:
            if it.info is not None and not it.pending and it.ref not in state.objects:
                missing.setdefault((it.info, it.ref.namespace), set()).add(it.ref)
        for ref, info in state.infos.items():
            if ref not in state.objects:
                missing.setdefault((info, ref.namespace if info.namespaced else ""), set()).add(ref)

        def names(job: Group) -> tuple[Group, list[Obj]]:
            info, ns = job
            return job, self._retry(lambda: self.kube.list_metadata(info, ns or None), f"list {info.kind}")

        exists: list[tuple[ResourceInfo, ObjectRef]] = []
        for job, objs in self._each(names, missing):
            for obj in objs:
                ref = ref_of(job[0], obj)
                if ref in missing[job]:
                    exists.append((job[0], ref))

        declared = {it.ref for it in items}
        # Many of a fresh group's objects already there (a workflow created again over what it had
        # applied): one LIST by the selector reads them, instead of a GET each.
        crowded: dict[Group, int] = {}
        for info, ref in exists:
            group = (info, ref.namespace if info.namespaced else "")
            if group in fresh and ref in declared:
                crowded[group] = crowded.get(group, 0) + 1
        for info, objs in self._each(owned, [g for g, n in crowded.items() if n > 4]):
            for obj in objs:
                state.objects[ref_of(info, obj)] = obj

        def read_one(job: tuple[ResourceInfo, ObjectRef]) -> tuple[ObjectRef, Obj | None]:
            info, ref = job
            return ref, self._retry(lambda: self.kube.get(info, ref.namespace, ref.name), f"get {ref}")

        unread = [(i, r) for i, r in exists if r in declared and r not in state.objects]
        for ref, found in self._each(read_one, unread):
            if found is not None:
                state.objects[ref] = found
        state.unmarked = {r for _, r in exists if r not in declared and r in inventory}
        return state
