"""The one place slipway talks HTTP to a Kubernetes API server.

:mod:`.kubeconfig` reads the kubeconfig (contexts, certificates, tokens, exec plugins) and
:mod:`.transport` keeps the connections; on top of them we send plain REST requests on dict
objects, because a GitOps engine must handle any kind and needs exact control of server-side
apply (field manager, force, dry-run). Every HTTP failure becomes a typed :mod:`slipway.errors` error in
:func:`error_from_response`, worded like kapp: ``<action> <object>: API server says: <message>
(<reason>)``. A :class:`Kube` is thread-safe and shared per (kubeconfig, context), so many
workflows aimed at one cluster share one connection pool.
"""

from __future__ import annotations

import builtins
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec

from .. import settings
from ..errors import (
    ConfigError,
    KubeError,
    KubeForbidden,
    KubeInvalid,
    KubeNotFound,
    KubeTransientError,
)
from . import incluster
from .discovery import Discovery, KubeFieldConflict, ResourceInfo
from .kubeconfig import load as load_kubeconfig
from .objects import Obj
from .openapi import OpenAPI
from .transport import Transport, TransportError, TransportTimeout

APPLY_PATCH = "application/apply-patch+yaml"
# Names, labels, annotations and owners only: how slipway looks at objects it may not read in full
# (a namespace's Secrets) or does not need to (what else lives in a namespace).
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
# Server-side apply answers a value of the wrong type (replicas: "three") with a 500; it is the
# object that is wrong, not the server, and no retry helps.
_SCHEMA_ERRORS = (
    "failed to create typed patch object",
    "failed to create typed live object",
    "failed to convert new object",  # a Secret's data that is not base64
    "unable to convert unstructured object",
)
MERGE_PATCH = "application/merge-patch+json"
_json_encode = msgspec.json.encode
_json_decode = msgspec.json.decode


class KubeConflict(KubeTransientError):
    """A write's resourceVersion precondition failed: someone wrote the object first. Read it again."""


class KubeAlreadyExists(KubeInvalid):
    """A create found an object of that name: someone created it first."""


def error_from_response(action: str, what: str, status: int, body: bytes) -> KubeError:
    """Map one HTTP error response to the error type a caller can act on."""
    message, reason = "", ""
    causes: list[dict[str, Any]] = []
    try:
        doc = _json_decode(body)
        if isinstance(doc, dict):
            message = str(doc.get("message") or "")
            reason = str(doc.get("reason") or "")
            causes = (doc.get("details") or {}).get("causes") or []
    except msgspec.DecodeError:
        message = body.decode("utf-8", "replace").strip()[:500]
    text = f"{action} {what}: API server says: {message or 'HTTP ' + str(status)}"
    if reason:
        text += f" ({reason})"
    if status == 409 and any(c.get("reason") == "FieldManagerConflict" for c in causes):
        fields = [str(c.get("field", "")) for c in causes]
        return KubeFieldConflict(text, conflicts=fields)
    if status == 404:
        return KubeNotFound(text, status=status, reason=reason)
    if status == 409 and reason == "AlreadyExists":
        return KubeAlreadyExists(text, status=status, reason=reason)
    if status == 409 and reason == "Conflict":
        return KubeConflict(text, status=status, reason=reason)
    if status in (401, 403):
        return KubeForbidden(text, status=status, reason=reason)
    if status in (400, 413, 415, 422) or (status == 409 and reason == "AlreadyExists"):
        return KubeInvalid(text, status=status, reason=reason)
    if status == 500 and any(s in message for s in _SCHEMA_ERRORS):
        return KubeInvalid(text, status=status, reason=reason or "Invalid")
    if status in (409, 429) or status >= 500:
        return KubeTransientError(text, status=status, reason=reason)
    return KubeError(text, status=status, reason=reason)


def resolve_kubeconfig(path: str | os.PathLike[str] | None = None) -> Path:
    """The kubeconfig to use: the given one, else $KUBECONFIG, the pod's service account (in a
    cluster), ~/.kube/config, or the local cluster's."""
    if path:
        return Path(path).expanduser()
    env = os.environ.get("KUBECONFIG")
    if env:
        return Path(env.split(os.pathsep)[0]).expanduser()
    if incluster.available():
        return incluster.kubeconfig()
    default = Path("~/.kube/config").expanduser()
    if default.exists():
        return default
    local = settings.cache() / "clusters" / "default" / "admin.kubeconfig"
    if local.exists():
        return local
    raise ConfigError(
        "no kubeconfig: set KUBECONFIG, create ~/.kube/config, run in a pod with a service account, or start "
        "the local cluster with `slipway cluster up`"
    )


class Kube:
    """A connection to one API server: REST verbs on dict objects plus cached discovery."""

    def __init__(
        self,
        kubeconfig: str | os.PathLike[str] | None = None,
        context: str | None = None,
        *,
        max_connections: int = 32,
        timeout: float = 30.0,
    ) -> None:
        self.kubeconfig = resolve_kubeconfig(kubeconfig)
        if not self.kubeconfig.exists():
            raise ConfigError(f"kubeconfig {self.kubeconfig} does not exist")
        target = load_kubeconfig(self.kubeconfig, context)
        self.context = target.context
        self.server = target.server
        self._http = Transport(target, max_connections=max_connections, timeout=timeout)
        self.discovery = Discovery(self)
        self._openapi: OpenAPI | None = None
        # Requests sent, by verb ("GET", "PATCH", "DRYRUN", "DELETE"...): how tests and benchmarks
        # see that a no-op sync writes nothing.
        self.counts: Counter[str] = Counter()
        self._count_lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    @property
    def openapi(self) -> OpenAPI:
        """The server's OpenAPI v3 schemas, loaded on first use (see :mod:`.openapi`)."""
        if self._openapi is None:
            self._openapi = OpenAPI(self)
        return self._openapi

    # -- transport -------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        action: str,
        what: str,
        params: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        timeout: float | None = None,
    ) -> Any:
        """Send one request; decoded JSON on success, a typed KubeError otherwise."""
        with self._count_lock:
            self.counts["DRYRUN" if params and params.get("dryRun") else method] += 1
        headers = {"Accept": accept}
        content = None
        if body is not None:
            content = body if isinstance(body, bytes) else _json_encode(body)
            headers["Content-Type"] = content_type
        try:
            resp = self._http.request(method, path, params=params, content=content, headers=headers, timeout=timeout)
        except TransportTimeout as e:
            raise KubeTransientError(f"{action} {what}: API server {self.server} timed out ({e})") from e
        except TransportError as e:
            raise KubeTransientError(f"{action} {what}: cannot reach API server {self.server} ({e})") from e
        if resp.status >= 400:
            raise error_from_response(action, what, resp.status, resp.content)
        if not resp.content:
            return None
        if "json" not in (resp.content_type or "json"):
            return resp.content.decode("utf-8", "replace")
        return _json_decode(resp.content)

    def raw(self, path: str, *, timeout: float | None = None) -> str:
        """GET a non-resource path (``/readyz``, ``/metrics``) as text."""
        return str(self.request("GET", path, action="get", what=path, accept="*/*", timeout=timeout))

    # -- verbs on objects --------------------------------------------------------------------------

    def get(self, info: ResourceInfo, namespace: str, name: str) -> Obj | None:
        try:
            obj = self.request("GET", info.path(namespace, name), action="get", what=info.describe(namespace, name))
        except KubeNotFound:
            return None
        return dict(obj)

    def list(
        self,
        info: ResourceInfo,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        page_size: int = 500,
    ) -> list[Obj]:
        """Every object of one kind in one namespace (or cluster-wide), paginated."""
        params: dict[str, str] = {"limit": str(page_size)}
        if label_selector:
            params["labelSelector"] = label_selector
        items: list[Obj] = []
        where = f"{info.kind} objects" + (f" in namespace {namespace}" if namespace else "")
        while True:
            doc = self.request("GET", info.path(namespace), action="list", what=where, params=params)
            for item in doc.get("items") or []:
                item.setdefault("apiVersion", info.api_version)
                item.setdefault("kind", info.kind)
                items.append(item)
            cont = (doc.get("metadata") or {}).get("continue")
            if not cont:
                return items
            params["continue"] = cont

    def list_metadata(
        self, info: ResourceInfo, namespace: str | None = None, *, label_selector: str | None = None
    ) -> builtins.list[Obj]:
        """Every object of one kind as metadata only (PartialObjectMetadata): no spec, no data, no Secret values."""
        params: dict[str, str] = {"limit": "500"}
        if label_selector:
            params["labelSelector"] = label_selector
        items: builtins.list[Obj] = []
        where = f"{info.kind} objects" + (f" in namespace {namespace}" if namespace else "")
        while True:
            doc = self.request(
                "GET", info.path(namespace), action="list", what=where, params=params, accept=METADATA_LIST
            )
            for item in doc.get("items") or []:
                item["apiVersion"], item["kind"] = info.api_version, info.kind
                items.append(item)
            cont = (doc.get("metadata") or {}).get("continue")
            if not cont:
                return items
            params["continue"] = cont

    def changes(
        self,
        info: ResourceInfo,
        namespace: str,
        resource_version: str | None,
        *,
        label_selector: str | None = None,
        seconds: int = 1,
    ) -> tuple[builtins.list[tuple[str, Obj]], str] | None:
        """What changed in one kind since ``resource_version`` (None: from now), as metadata only: a
        watch the server ends after ``seconds``, so a caller follows changes without a LIST and with
        no connection held open. Returns the (type, object) events and the version to go on from;
        None when that version is too old (410 Gone): start again from None."""
        params = {"watch": "1", "timeoutSeconds": str(seconds), "allowWatchBookmarks": "true"}
        if label_selector:
            params["labelSelector"] = label_selector
        what = f"{info.kind} objects in namespace {namespace}"
        if resource_version is None:
            params = {k: v for k, v in params.items() if k == "labelSelector"} | {"limit": "1"}
            doc = self.request("GET", info.path(namespace), action="list", what=what, params=params,
                               accept=METADATA_LIST)  # fmt: skip
            return [], str((doc.get("metadata") or {}).get("resourceVersion") or "")
        params["resourceVersion"] = resource_version
        with self._count_lock:
            self.counts["WATCH"] += 1
        accept = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
        try:
            resp = self._http.request("GET", info.path(namespace), params=params, headers={"Accept": accept},
                                      timeout=seconds + 30.0)  # fmt: skip
        except TransportError as e:
            raise KubeTransientError(f"watch {what}: cannot reach API server {self.server} ({e})") from e
        if resp.status == 410:
            return None
        if resp.status >= 400:
            raise error_from_response("watch", what, resp.status, resp.content)
        events: builtins.list[tuple[str, Obj]] = []
        version = resource_version
        for line in resp.content.splitlines():
            if not line.strip():
                continue
            event = _json_decode(line)
            obj = event.get("object") or {}
            if event.get("type") == "ERROR":
                if obj.get("code") == 410:
                    return None
                raise KubeTransientError(f"watch {what}: {obj.get('message') or obj}")
            version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
            if event.get("type") != "BOOKMARK":
                events.append((str(event.get("type")), obj))
        return events, version

    def apply(
        self,
        info: ResourceInfo,
        obj: Obj,
        *,
        dry_run: bool = False,
        force: bool = True,
        field_manager: str = settings.FIELD_MANAGER,
    ) -> Obj:
        """Server-side apply of ``obj``; returns the object as the server has (or would have) it."""
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or ""
        name = meta["name"]
        params = {"fieldManager": field_manager}
        if force:
            params["force"] = "true"
        if dry_run:
            params["dryRun"] = "All"
        action = "dry-run apply" if dry_run else "apply"
        return dict(
            self.request(
                "PATCH",
                info.path(namespace, name),
                action=action,
                what=info.describe(namespace, name),
                params=params,
                body=obj,
                content_type=APPLY_PATCH,
            )
        )

    def patch_merge(
        self,
        info: ResourceInfo,
        namespace: str,
        name: str,
        patch: Obj,
        *,
        subresource: str | None = None,
        field_manager: str | None = None,
    ) -> Obj:
        """A JSON merge patch; ``metadata.resourceVersion`` in ``patch`` makes it conditional (KubeConflict)."""
        path = info.path(namespace, name) + (f"/{subresource}" if subresource else "")
        params = {"fieldManager": field_manager} if field_manager else None
        return dict(
            self.request(
                "PATCH",
                path,
                action="patch",
                what=info.describe(namespace, name),
                body=patch,
                content_type=MERGE_PATCH,
                params=params,
            )
        )

    def create(
        self,
        info: ResourceInfo,
        obj: Obj,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_manager: str = settings.FIELD_MANAGER,
    ) -> Obj:
        """POST a new object (the only way to use ``metadata.generateName``); the object as created.
        KubeAlreadyExists when its name is taken. With ``subresource``, POST to the named object's
        subresource (``serviceaccounts/<name>/token``)."""
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or ""
        params = {"fieldManager": field_manager}
        if dry_run:
            params["dryRun"] = "All"
        if subresource:
            path, what = info.path(namespace, meta["name"]) + f"/{subresource}", info.describe(namespace, meta["name"])
        else:
            name = meta.get("name") or f"{meta.get('generateName', '')}*"
            path, what = info.path(namespace), info.describe(namespace, name)
        action = "dry-run create" if dry_run else "create"
        return dict(self.request("POST", path, action=action, what=what, params=params, body=obj))

    def replace(
        self, info: ResourceInfo, obj: Obj, *, subresource: str | None = None, timeout: float | None = None
    ) -> Obj:
        """PUT ``obj`` whole; its ``metadata.resourceVersion`` is the precondition (KubeConflict when it moved).
        ``timeout``: give up sooner than the connection's default (a Lease renewal due by a deadline)."""
        meta = obj.get("metadata") or {}
        namespace, name = meta.get("namespace") or "", meta["name"]
        path = info.path(namespace, name) + (f"/{subresource}" if subresource else "")
        what = info.describe(namespace, name)
        return dict(self.request("PUT", path, action="update", what=what, body=obj, timeout=timeout))

    def delete(
        self,
        info: ResourceInfo,
        namespace: str,
        name: str,
        *,
        uid: str | None = None,
        propagation: str = "Background",
        resource_version: str | None = None,
    ) -> bool:
        """Delete one object; False when it was already gone. ``uid`` guards against a namesake;
        ``resource_version`` against a change since it was read (KubeConflict)."""
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        preconditions = {k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v}
        if preconditions:
            body["preconditions"] = preconditions
        try:
            self.request(
                "DELETE",
                info.path(namespace, name),
                action="delete",
                what=info.describe(namespace, name),
                body=body,
            )
        except KubeNotFound:
            return False
        except KubeTransientError as e:
            if e.status == 409 and uid and not resource_version:
                return False  # the uid precondition failed: a different object now has that name
            raise
        return True


_shared: dict[tuple[str, str | None], Kube] = {}
_shared_lock = threading.Lock()


def connect(kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None) -> Kube:
    """A shared :class:`Kube` for one (kubeconfig, context)."""
    path = resolve_kubeconfig(kubeconfig)
    key = (str(path.resolve()), context)
    with _shared_lock:
        kube = _shared.get(key)
        if kube is None:
            kube = _shared[key] = Kube(path, context)
        return kube


def forget_connections() -> None:
    """Drop shared connections (after a cluster restart, or at exit)."""
    with _shared_lock:
        for kube in _shared.values():
            kube.close()
        _shared.clear()


__all__ = [
    "Discovery",
    "Kube",
    "KubeAlreadyExists",
    "KubeConflict",
    "KubeFieldConflict",
    "KubeInvalid",
    "ResourceInfo",
    "connect",
    "error_from_response",
    "forget_connections",
    "resolve_kubeconfig",
]
