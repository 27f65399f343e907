"""The only package that talks to Kubernetes: connection, discovery, object identity.

Object identity and discovery's types are light; the HTTP client (:mod:`.client`, with the
kubeconfig reader and the connection pool under it) is imported when it is first asked for, so
everything that only handles objects — and a command that has not reached the cluster yet —
does not wait for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .discovery import Discovery, KubeFieldConflict, ResourceInfo, UnknownKind
from .objects import Obj, ObjectRef

if TYPE_CHECKING:
    from .client import Kube, connect, forget_connections, resolve_kubeconfig

_CLIENT = ("Kube", "connect", "forget_connections", "resolve_kubeconfig")


def __getattr__(name: str) -> Any:
    if name in _CLIENT:
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Discovery",
    "Kube",
    "KubeFieldConflict",
    "Obj",
    "ObjectRef",
    "ResourceInfo",
    "UnknownKind",
    "connect",
    "forget_connections",
    "resolve_kubeconfig",
]
