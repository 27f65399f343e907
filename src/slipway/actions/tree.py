"""The resource tree: each object a workflow owns, and the live objects its controllers made from it.

One list per (namespace, kind) of what controllers make (ReplicaSets, Pods, Jobs, EndpointSlices),
indexed by owner uid, then nested under each owned object by ``ownerReferences`` — as Argo CD's
tree, but read from the API server when asked rather than from a cache. Each node has its health
(the same rules a sync waits on), a status message, its age, a Pod's containers with their state
and restarts, the object's last Kubernetes Events, and the actions its kind offers.
"""

from __future__ import annotations

import datetime
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import KubeError
from ..health.registry import assess
from ..kube.objects import ObjectRef
from .scripts import actions_dir, discover

if TYPE_CHECKING:
    from ..kube import Kube, Obj

# What controllers make from the kinds a workflow declares: read to nest them under their owners.
CHILD_KINDS = (("apps", "ReplicaSet"), ("", "Pod"), ("batch", "Job"), ("discovery.k8s.io", "EndpointSlice"))
MAX_DEPTH = 4
WORKERS = 4


def age(created: str | None, now: datetime.datetime | None = None) -> str:
    """``45s``, ``12m``, ``3h``, ``2d``: how kubectl shows an object's age."""
    if not created:
        return ""
    try:
        then = datetime.datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return ""
    seconds = int(((now or datetime.datetime.now(datetime.UTC)) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def containers(pod: Obj) -> list[dict[str, Any]]:
    out = []
    for c in (pod.get("status") or {}).get("containerStatuses") or []:
        state = c.get("state") or {}
        name = next(iter(state), "unknown")
        detail = state.get(name) or {}
        out.append({
            "name": c.get("name"), "ready": bool(c.get("ready")), "restarts": int(c.get("restartCount") or 0),
            "state": name, "reason": detail.get("reason") or "", "message": detail.get("message") or "",
        })  # fmt: skip
    return out


def _events(kube: Kube, namespace: str) -> dict[str, list[Obj]]:
    info = kube.discovery.preferred("", "Event")
    if info is None:
        return {}
    by_uid: dict[str, list[Obj]] = defaultdict(list)
    try:
        items = kube.list(info, namespace)
    except KubeError:
        return {}  # no right to read events: the tree without them
    for e in items:
        uid = (e.get("involvedObject") or {}).get("uid")
        if uid:
            by_uid[uid].append(e)
    return by_uid


def _event_rows(items: list[Obj], limit: int) -> list[dict[str, Any]]:
    def when(e: Obj) -> str:
        return str(
            e.get("lastTimestamp") or e.get("eventTime") or (e.get("metadata") or {}).get("creationTimestamp") or ""
        )

    rows = []
    for e in sorted(items, key=when, reverse=True)[:limit]:
        rows.append({"type": e.get("type") or "", "reason": e.get("reason") or "", "message": e.get("message") or "",
                     "count": int(e.get("count") or 1), "last": when(e), "age": age(when(e))})  # fmt: skip
    return rows


def build(
    kube: Kube,
    inventory: dict[ObjectRef, str],
    dirs: list[Path],
    *,
    events: int = 5,
    cancel: threading.Event | None = None,
) -> list[dict[str, Any]]:
    namespaces = sorted({ref.namespace for ref in inventory if ref.namespace})
    children: dict[str, list[Obj]] = defaultdict(list)
    event_index: dict[str, list[Obj]] = {}
    for ns in namespaces:
        if cancel is not None and cancel.is_set():
            break
        for group, kind in CHILD_KINDS:
            info = kube.discovery.preferred(group, kind)
            if info is None:
                continue
            try:
                items = kube.list(info, ns)
            except KubeError:
                continue
            for item in items:
                for owner in (item.get("metadata") or {}).get("ownerReferences") or []:
                    if owner.get("uid"):
                        children[owner["uid"]].append(item)
        event_index.update(_events(kube, ns))

    def node(obj: Obj | None, ref: ObjectRef, api_version: str, declared: bool, depth: int) -> dict[str, Any]:
        meta = (obj or {}).get("metadata") or {}
        health = assess(ref.group, ref.kind, obj)
        out: dict[str, Any] = {
            "kind": ref.kind, "group": ref.group, "apiVersion": api_version, "namespace": ref.namespace,
            "name": ref.name, "declared": declared, "health": health.status, "message": health.message,
            "created": meta.get("creationTimestamp"), "age": age(meta.get("creationTimestamp")),
            "events": _event_rows(event_index.get(meta.get("uid", ""), []), events) if obj else [],
            "children": [],
        }  # fmt: skip
        if ref.kind == "Pod" and not ref.group and obj:
            out["containers"] = containers(obj)
            out["phase"] = (obj.get("status") or {}).get("phase") or ""
        if declared and ref in offers:
            out["actions"], problem = offers[ref]
            if problem:
                out["actions_error"] = problem
        if obj and depth < MAX_DEPTH:
            kids = sorted(
                children.get(meta.get("uid", ""), []), key=lambda o: (o.get("kind", ""), o["metadata"]["name"])
            )
            out["children"] = [node(k, ObjectRef.of(k), str(k.get("apiVersion")), False, depth + 1) for k in kids]
        return out

    def read(ref: ObjectRef) -> Obj | None:
        if cancel is not None and cancel.is_set():
            return None
        try:
            return kube.get(kube.discovery.lookup(inventory[ref], ref.kind), ref.namespace, ref.name)
        except KubeError:
            return None

    def offer(ref: ObjectRef, obj: Obj) -> tuple[list[dict[str, Any]], str]:
        try:
            return [a.public() for a in discover(ref.group, ref.kind, obj, dirs)], ""
        except Exception as e:  # a broken discovery.lua: the tree still shows, and says why
            return [], str(e)

    refs = sorted(inventory)
    # Reads and discovery scripts (a child process each) side by side: a workflow of a hundred
    # Deployments is not a hundred round trips in a row.
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="slipway-tree") as pool:
        lives = dict(zip(refs, pool.map(read, refs), strict=True))
        wanted = [r for r in refs if lives[r] is not None and actions_dir(r.group, r.kind, dirs) is not None]
        offers = dict(zip(wanted, pool.map(lambda r: offer(r, lives[r]), wanted), strict=True))  # type: ignore[arg-type]
    return [node(lives[ref], ref, inventory[ref], True, 0) for ref in refs]


__all__ = ["CHILD_KINDS", "age", "build", "containers"]
