"""Which workflows a list shows: one filter for the API's list and the dashboard's overview.

A filter comes from a URL query, so a filtered view is a link to share:
``?sync=OutOfSync&health=Degraded&namespace=web&cluster=in-cluster&label=team=payments&repository=platform&q=api``.
A key given more than once matches any of its values (``health=Degraded&health=Missing``), except
``label``, where every one must match (as ``kubectl -l a=b,c=d``); ``label=team`` asks only that the
label exists; ``label=a=b,c=d`` is two. Sync status and health take Argo CD's words and anything else is a clear error,
never an empty list that looks like "nothing is wrong". :func:`matches` reads a row of the
list (the status table with ``sync_status``, ``health``, ``namespace``, ``cluster``, ``labels``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .results import HEALTH_STATUSES, SYNC_STATUSES

KEYS = ("sync", "health", "namespace", "cluster", "label", "repository", "q")
IN_CLUSTER = "in-cluster"


@dataclass
class Filter:
    sync: list[str] = field(default_factory=list)
    health: list[str] = field(default_factory=list)
    namespace: list[str] = field(default_factory=list)
    cluster: list[str] = field(default_factory=list)
    repository: list[str] = field(default_factory=list)
    labels: list[tuple[str, str | None]] = field(default_factory=list)  # (key, value); None: only the key
    text: str = ""

    @property
    def empty(self) -> bool:
        return not (self.sync or self.health or self.namespace or self.cluster or self.repository or self.labels
                    or self.text)  # fmt: skip


def _word(value: str, words: tuple[str, ...], key: str) -> str:
    for w in words:
        if value.strip().lower() == w.lower():
            return w
    raise ConfigError(f"{key}: {value!r} is not one of {', '.join(words)}")


def parse(pairs: Iterable[tuple[str, str]]) -> Filter:
    """The filter a query's (key, value) pairs ask for; other keys (``live``, ``limit``) are ignored."""
    out = Filter()
    for key, raw in pairs:
        value = raw.strip()
        if key not in KEYS or not value:
            continue
        if key == "sync":
            out.sync.append(_word(value, SYNC_STATUSES, "sync"))
        elif key == "health":
            out.health.append(_word(value, HEALTH_STATUSES, "health"))
        elif key == "label":
            for one in (v.strip() for v in value.split(",")):  # a=b,c=d as kubectl -l takes it
                name, eq, wanted = one.partition("=")
                if not name.strip():
                    raise ConfigError(f"label: {one!r} names no label (give key=value, or key)")
                out.labels.append((name.strip(), wanted.strip() if eq else None))
        elif key == "q":
            out.text = value.lower()
        else:
            getattr(out, key).append(value)
    return out


def cluster_of(destination: dict[str, Any] | None) -> str:
    """Where a workflow applies, as one word: ``in-cluster`` (the cluster slipway itself reaches: its
    service account or default kubeconfig), else the kubeconfig Secret or file and the context."""
    d = destination or {}
    where = (f"secret/{d['kubeconfig_secret']}" if d.get("kubeconfig_secret") else d.get("kubeconfig")) or ""
    if d.get("context"):
        where = f"{where}:{d['context']}" if where else str(d["context"])
    return where or IN_CLUSTER


def matches(row: dict[str, Any], f: Filter) -> bool:
    if f.sync and (row.get("sync_status") or {}).get("status", "Unknown") not in f.sync:
        return False
    if f.health and (row.get("health") or {}).get("status", "Unknown") not in f.health:
        return False
    if f.namespace and row.get("namespace") not in f.namespace:
        return False
    if f.cluster and row.get("cluster") not in f.cluster:
        return False
    if f.repository and row.get("repository") not in f.repository:
        return False
    labels = row.get("labels") or {}
    for key, wanted in f.labels:
        if key not in labels or (wanted is not None and labels[key] != wanted):
            return False
    if f.text:
        seen = (row.get("id"), row.get("name"), row.get("repository"), row.get("path"), row.get("namespace"))
        if not any(f.text in str(v or "").lower() for v in seen):
            return False
    return True


def apply(rows: Iterable[dict[str, Any]], f: Filter) -> list[dict[str, Any]]:
    return [r for r in rows if matches(r, f)]


__all__ = ["IN_CLUSTER", "KEYS", "Filter", "apply", "cluster_of", "matches", "parse"]
