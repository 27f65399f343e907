"""The only package that talks to Kubernetes: connection, discovery, object identity."""

from .client import Kube, KubeFieldConflict, connect, forget_connections, resolve_kubeconfig
from .discovery import Discovery, ResourceInfo, UnknownKind
from .objects import Obj, ObjectRef

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
