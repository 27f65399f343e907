"""API discovery: group/version/kind to the REST resource (plural, scope), cached.

The whole map comes from two requests with aggregated discovery (``/api`` and ``/apis`` as
``APIGroupDiscoveryList``, GA since Kubernetes 1.30), falling back to the per-group documents on
older servers. The cache is refreshed on a miss (at most once per second, so a typo does not
hammer the server) and explicitly after CRDs are applied. The same map answers what Helm's
``.Capabilities`` asks of a cluster (:meth:`Discovery.capabilities`), so a chart is rendered as
``helm install`` would render it against this server without Helm ever contacting it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import KubeError, KubeInvalid
from .objects import split_api_version

if TYPE_CHECKING:
    from .client import Kube

_AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"


@dataclass(frozen=True)
class ResourceInfo:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    verbs: frozenset[str] = frozenset()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        return base

    def describe(self, namespace: str | None, name: str) -> str:
        where = f" in namespace {namespace}" if self.namespaced and namespace else ""
        return f"{self.kind}/{name}{where}"


class UnknownKind(KubeInvalid):
    """The cluster serves no such group/version/kind."""


class KubeFieldConflict(KubeError):
    """Server-side apply without force found fields owned by another manager."""

    def __init__(self, message: str, *, conflicts: list[str], status: int = 409) -> None:
        super().__init__(message, status=status, reason="Conflict")
        self.conflicts = conflicts


class Discovery:
    def __init__(self, kube: Kube) -> None:
        self._kube = kube
        self._lock = threading.Lock()
        self._by_gvk: dict[tuple[str, str, str], ResourceInfo] = {}
        self._preferred: dict[tuple[str, str], ResourceInfo] = {}
        self._group_versions: frozenset[str] = frozenset()
        self._loaded_at = 0.0
        self._server_version: str | None = None
        self.generation = 0  # bumped by every refresh: what depends on the map (OpenAPI) reloads

    def lookup(self, api_version: str, kind: str) -> ResourceInfo:
        """The resource serving ``kind`` at ``api_version``; raises UnknownKind when there is none."""
        group, version = split_api_version(api_version)
        key = (group, version, kind)
        info = self._by_gvk.get(key)
        if info is None and time.monotonic() - self._loaded_at > 1.0:
            self.refresh()
            info = self._by_gvk.get(key)
        if info is None:
            raise UnknownKind(
                f"the cluster has no kind {kind} in apiVersion {api_version}",
                hint="check apiVersion and kind, or apply the CustomResourceDefinition first",
            )
        return info

    def find(self, api_version: str, kind: str) -> ResourceInfo | None:
        try:
            return self.lookup(api_version, kind)
        except UnknownKind:
            return None

    def preferred(self, group: str, kind: str) -> ResourceInfo | None:
        """The server's preferred version of a group/kind (for reading objects by identity)."""
        info = self._preferred.get((group, kind))
        if info is None and time.monotonic() - self._loaded_at > 1.0:
            self.refresh()
            info = self._preferred.get((group, kind))
        return info

    def ensure(self) -> None:
        """Load the map once; later misses refresh it on their own. A caller that finds another
        thread loading it waits for that load instead of sending its own."""
        if self._by_gvk:
            return
        with self._lock:
            if self._by_gvk:
                return
        self.refresh()

    def refresh(self) -> None:
        with self._lock:
            by_gvk: dict[tuple[str, str, str], ResourceInfo] = {}
            preferred: dict[tuple[str, str], ResourceInfo] = {}
            group_versions: set[str] = set()
            try:
                groups = self._aggregated()
            except _NotAggregated:
                groups = self._legacy()
            for group, versions in groups:
                for i, (version, resources) in enumerate(versions):
                    group_versions.add(f"{group}/{version}" if group else version)
                    for res in resources:
                        info = ResourceInfo(group, version, res["kind"], res["plural"], res["namespaced"], res["verbs"])
                        by_gvk[(group, version, info.kind)] = info
                        if i == 0 or (group, info.kind) not in preferred:
                            preferred.setdefault((group, info.kind), info)
            self._by_gvk, self._preferred = by_gvk, preferred
            self._group_versions = frozenset(group_versions)
            self._loaded_at = time.monotonic()
            self.generation += 1

    def capabilities(self, max_age: float = 1.0) -> tuple[str, list[str]]:
        """What Helm's ``.Capabilities`` says of this server: its version (``v1.37.2``) and every
        group/version and group/version/Kind it serves (``apps/v1``, ``apps/v1/Deployment``), as
        ``helm install`` collects them. The map is refreshed first when older than ``max_age`` seconds."""
        if not self._by_gvk or time.monotonic() - self._loaded_at > max_age:
            self.refresh()
            self._server_version = None
        if self._server_version is None:
            doc = self._kube.request("GET", "/version", action="discover", what="the server version")
            self._server_version = str((doc or {}).get("gitVersion") or "")
        versions = set(self._group_versions)
        for group, version, kind in list(self._by_gvk):
            versions.add(f"{group}/{version}/{kind}" if group else f"{version}/{kind}")
        return self._server_version, sorted(versions)

    def all(self) -> list[ResourceInfo]:
        if not self._by_gvk:
            self.refresh()
        return list(self._preferred.values())

    # Both readers return [(group, [(version, [resource...]) in preference order])].

    def _aggregated(self) -> list[tuple[str, list[tuple[str, list[dict[str, Any]]]]]]:
        out = []
        for path in ("/api", "/apis"):
            doc = self._kube.request("GET", path, action="discover", what="API groups", accept=_AGGREGATED)
            if not isinstance(doc, dict) or doc.get("kind") != "APIGroupDiscoveryList":
                raise _NotAggregated
            for item in doc.get("items") or []:
                group = (item.get("metadata") or {}).get("name", "")
                versions = []
                for v in item.get("versions") or []:
                    resources = []
                    for r in v.get("resources") or []:
                        kind = (r.get("responseKind") or {}).get("kind")
                        if not kind:
                            continue
                        resources.append(
                            {
                                "kind": kind,
                                "plural": r["resource"],
                                "namespaced": r.get("scope") == "Namespaced",
                                "verbs": frozenset(r.get("verbs") or []),
                            }
                        )
                    versions.append((v["version"], resources))
                out.append((group, versions))
        return out

    def _legacy(self) -> list[tuple[str, list[tuple[str, list[dict[str, Any]]]]]]:
        def resources(path: str) -> list[dict[str, Any]]:
            try:
                doc = self._kube.request("GET", path, action="discover", what=path)
            except KubeError:
                return []  # an unavailable aggregated API must not hide the rest
            return [
                {
                    "kind": r["kind"],
                    "plural": r["name"],
                    "namespaced": bool(r.get("namespaced")),
                    "verbs": frozenset(r.get("verbs") or []),
                }
                for r in doc.get("resources") or []
                if "/" not in r["name"]
            ]

        core = self._kube.request("GET", "/api", action="discover", what="core API")
        out = [("", [(v, resources(f"/api/{v}")) for v in core.get("versions") or []])]
        groups = self._kube.request("GET", "/apis", action="discover", what="API groups")
        for g in groups.get("groups") or []:
            preferred = (g.get("preferredVersion") or {}).get("version")
            names = [v["version"] for v in g.get("versions") or []]
            names.sort(key=lambda v: v != preferred)
            out.append((g["name"], [(v, resources(f"/apis/{g['name']}/{v}")) for v in names]))
        return out


class _NotAggregated(Exception):
    pass
