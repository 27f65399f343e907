"""Object identity and the small helpers every stage uses on plain-dict Kubernetes objects.

slipway works on objects as dicts (what YAML and JSON give us), never on typed models: a GitOps
engine must handle any kind, custom resources included. An :class:`ObjectRef` is the identity
(group, kind, namespace, name) — the version is deliberately not part of it, since the same
object can be read at several versions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


def split_api_version(api_version: str) -> tuple[str, str]:
    """``apps/v1`` -> (``apps``, ``v1``); ``v1`` -> (``""``, ``v1``)."""
    if "/" in api_version:
        group, version = api_version.split("/", 1)
        return group, version
    return "", api_version


@dataclass(frozen=True, order=True)
class ObjectRef:
    group: str
    kind: str
    namespace: str  # "" for cluster-scoped objects
    name: str

    @classmethod
    def of(cls, obj: Obj) -> ObjectRef:
        group, _ = split_api_version(str(obj.get("apiVersion", "")))
        meta = obj.get("metadata") or {}
        return cls(group, str(obj.get("kind", "")), str(meta.get("namespace") or ""), str(meta.get("name", "")))

    @property
    def resource(self) -> str:
        """``Kind/name``: what the seed calls a change's ``resource``."""
        return f"{self.kind}/{self.name}"

    @property
    def group_kind(self) -> tuple[str, str]:
        return self.group, self.kind

    def __str__(self) -> str:
        where = f" in namespace {self.namespace}" if self.namespace else ""
        return f"{self.kind}/{self.name}{where}"

    def key(self) -> str:
        """A stable string key, for storing inventories."""
        return f"{self.group}|{self.kind}|{self.namespace}|{self.name}"

    @classmethod
    def from_key(cls, key: str) -> ObjectRef:
        group, kind, namespace, name = key.split("|", 3)
        return cls(group, kind, namespace, name)


def meta(obj: Obj) -> dict[str, Any]:
    m = obj.get("metadata")
    if not isinstance(m, dict):
        m = {}
        obj["metadata"] = m
    return m


def get_labels(obj: Obj) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def get_annotations(obj: Obj) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def conditions(obj: Obj) -> dict[str, dict[str, Any]]:
    """status.conditions by type."""
    out: dict[str, dict[str, Any]] = {}
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and "type" in cond:
            out[str(cond["type"])] = cond
    return out
