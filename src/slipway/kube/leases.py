"""``coordination.k8s.io/v1`` Leases: read, take, renew and give back, each write conditional.

The verbs leader election is made of, as client-go's ``resourcelock.LeaseLock`` does them: a
Lease is taken or renewed by writing it whole with the resourceVersion it was read at, so of two
writers only one wins (the other gets :class:`~slipway.kube.client.KubeConflict`, or
``KubeAlreadyExists`` when both create it). Given back, a Lease keeps its name with no holder
and a one-second duration, so the next candidate may take it at once. Whether a Lease has expired
is the caller's judgement (:mod:`slipway.shards` times it by when it last saw the record change,
never by another machine's clock).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from .client import Kube
from .discovery import ResourceInfo
from .objects import Obj

LEASES = ResourceInfo("coordination.k8s.io", "v1", "Lease", "leases", True, frozenset())


def micro_time(at: dt.datetime | None = None) -> str:
    """A Lease's MicroTime: RFC 3339 with microseconds, UTC."""
    return (at or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LeaseRecord:
    """What a Lease says, and the resourceVersion it was read at (the precondition of the next write)."""

    name: str
    holder: str
    duration: int
    acquire_time: str | None
    renew_time: str | None
    transitions: int
    resource_version: str
    labels: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, obj: Obj) -> LeaseRecord:
        spec = obj.get("spec") or {}
        meta = obj.get("metadata") or {}
        return cls(
            name=str(meta.get("name", "")),
            holder=str(spec.get("holderIdentity") or ""),
            duration=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=str(meta.get("resourceVersion", "")),
            labels=tuple(sorted((meta.get("labels") or {}).items())),
        )

    @property
    def observed(self) -> tuple[str, int, str | None, str | None, int]:
        """What changes whenever the holder renews or someone else takes it (not the resourceVersion)."""
        return (self.holder, self.duration, self.acquire_time, self.renew_time, self.transitions)


def _obj(namespace: str, name: str, spec: dict[str, Any], labels: dict[str, str], rv: str | None = None) -> Obj:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
    if rv:
        meta["resourceVersion"] = rv
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}


def get(kube: Kube, namespace: str, name: str) -> LeaseRecord | None:
    obj = kube.get(LEASES, namespace, name)
    return None if obj is None else LeaseRecord.of(obj)


def list_leases(kube: Kube, namespace: str, selector: str) -> list[LeaseRecord]:
    return [LeaseRecord.of(o) for o in kube.list(LEASES, namespace, label_selector=selector)]


def acquire(
    kube: Kube,
    namespace: str,
    name: str,
    identity: str,
    duration: int,
    labels: dict[str, str],
    current: LeaseRecord | None,
) -> LeaseRecord:
    """Take the Lease (create it, or overwrite ``current`` at its resourceVersion); raises
    KubeConflict / KubeAlreadyExists when someone else wrote it first."""
    now = micro_time()
    spec: dict[str, Any] = {
        "holderIdentity": identity,
        "leaseDurationSeconds": duration,
        "acquireTime": now,
        "renewTime": now,
        "leaseTransitions": 0,
    }
    if current is None:
        return LeaseRecord.of(kube.create(LEASES, _obj(namespace, name, spec, labels)))
    if current.holder == identity:
        spec["acquireTime"] = current.acquire_time or now
        spec["leaseTransitions"] = current.transitions
    else:
        spec["leaseTransitions"] = current.transitions + 1
    return LeaseRecord.of(kube.replace(LEASES, _obj(namespace, name, spec, labels, current.resource_version)))


def renew(
    kube: Kube, namespace: str, current: LeaseRecord, identity: str, duration: int, timeout: float | None = None
) -> LeaseRecord:
    """Renew a Lease we hold, at the resourceVersion we last wrote; KubeConflict when it moved.
    ``timeout``: the time left before the holder's renew deadline (an answer later is worth nothing)."""
    spec = {
        "holderIdentity": identity,
        "leaseDurationSeconds": duration,
        "acquireTime": current.acquire_time,
        "renewTime": micro_time(),
        "leaseTransitions": current.transitions,
    }
    obj = _obj(namespace, current.name, spec, dict(current.labels), current.resource_version)
    return LeaseRecord.of(kube.replace(LEASES, obj, timeout=timeout))


def release(kube: Kube, namespace: str, current: LeaseRecord) -> LeaseRecord:
    """Give a Lease we hold back: no holder and a one-second duration, so another may take it at once."""
    now = micro_time()
    spec = {
        "leaseDurationSeconds": 1,
        "acquireTime": now,
        "renewTime": now,
        "leaseTransitions": current.transitions,
    }
    obj = _obj(namespace, current.name, spec, dict(current.labels), current.resource_version)
    return LeaseRecord.of(kube.replace(LEASES, obj))
