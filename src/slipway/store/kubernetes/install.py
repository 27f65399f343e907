"""``slipway install``: the CRDs, slipway's namespace and its least-privilege RBAC, applied or printed.

Applied with server-side apply (field manager ``slipway-install``), so running it again changes
nothing and another tool's fields stay. slipway's own rights are a Role in its namespace
(Workflows, Repositories and their status, Secrets, ConfigMaps, Leases, Events) and nothing
cluster-wide; what it may deploy is the ClusterRole ``slipway-deployer``, bound only where asked:
in named namespaces (RoleBindings) or cluster-wide. Every CRD carries its revision
(:data:`~.crds.CRD_REVISION`); a cluster whose CRDs are newer than this slipway's is refused before
anything is written, so an old slipway never downgrades a schema a newer one relies on.
"""

from __future__ import annotations

import time
from typing import Any

from ...errors import ConfigError, SlipwayError
from ...kube import Kube, Obj, ObjectRef
from ...kube.objects import conditions
from . import crds, names

FIELD_MANAGER = "slipway-install"
SERVICE_ACCOUNT = "slipway"
_ALL_VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]


def _labels() -> dict[str, str]:
    return {"app.kubernetes.io/name": "slipway", "app.kubernetes.io/part-of": "slipway"}


def _meta(name: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": _labels()}
    if namespace:
        meta["namespace"] = namespace
    return meta


def rbac(namespace: str, targets: tuple[str, ...] = (), cluster_wide: bool = False) -> list[Obj]:
    """The ServiceAccount, slipway's Role in its namespace, and the deployer ClusterRole with its bindings."""
    subject = [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": namespace}]
    own = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": _meta("slipway", namespace),
        "rules": [
            {"apiGroups": [names.GROUP], "resources": ["workflows", "repositories"], "verbs": _ALL_VERBS},
            {"apiGroups": [names.GROUP], "resources": ["workflows/status", "repositories/status"],
             "verbs": ["get", "update", "patch"]},
            {"apiGroups": [""], "resources": ["secrets", "configmaps"], "verbs": _ALL_VERBS},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": _ALL_VERBS},
            {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
        ],
    }  # fmt: skip
    out: list[Obj] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(SERVICE_ACCOUNT, namespace)},
        own,
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": _meta("slipway", namespace),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "slipway"},
         "subjects": subject},
        # What workflows may apply: everything, but only where it is bound (narrow it to taste).
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": _meta("slipway-deployer"),
         "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": _ALL_VERBS}]},
    ]  # fmt: skip
    for target in targets:
        out.append({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": _meta("slipway-deployer", target),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "slipway-deployer"},
            "subjects": subject,
        })  # fmt: skip
    if cluster_wide:
        out.append({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": _meta(f"slipway-deployer-{namespace}"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "slipway-deployer"},
            "subjects": subject,
        })  # fmt: skip
    return out


def manifests(namespace: str, targets: tuple[str, ...] = (), cluster_wide: bool = False) -> list[Obj]:
    """Everything ``slipway install`` applies, in the order it applies it."""
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(namespace)}
    return [*crds.crds(), ns, *rbac(namespace, targets, cluster_wide)]


def check_revisions(kube: Kube, ours: int | None = None) -> None:
    """Refuse (before writing anything) when the cluster's slipway CRDs are newer than ours."""
    ours = crds.CRD_REVISION if ours is None else ours
    for crd in crds.crds():
        live = kube.get(names.CRDS, "", crd["metadata"]["name"])
        if live is None:
            continue
        theirs = (live["metadata"].get("annotations") or {}).get(crds.REVISION_ANNOTATION, "0")
        try:
            revision = int(theirs)
        except ValueError:
            revision = 0
        if revision > ours:
            raise ConfigError(
                f"CustomResourceDefinition {crd['metadata']['name']} in the cluster is revision {revision}, newer "
                f"than this slipway's ({ours}); nothing was changed: use the slipway that installed it"
            )


def check_targets(kube: Kube, targets: tuple[str, ...]) -> None:
    """Refuse (before writing anything) target namespaces that do not exist: their RoleBindings would
    fail after the CRDs and the RBAC were applied."""
    info = kube.discovery.lookup("v1", "Namespace")
    missing = [t for t in dict.fromkeys(targets) if kube.get(info, "", t) is None]
    if missing:
        raise ConfigError(
            f"--target-namespace: namespace {', '.join(missing)} does not exist; nothing was applied "
            f"(create it first: kubectl create namespace {missing[0]})"
        )


def install(kube: Kube, namespace: str, targets: tuple[str, ...] = (), cluster_wide: bool = False,
            timeout: float = 60.0) -> list[str]:  # fmt: skip
    """Apply :func:`manifests` and wait until the CRDs are established; returns one line per object.
    Everything that can refuse is checked before the first object is written."""
    check_revisions(kube)
    check_targets(kube, targets)
    done = []
    for obj in manifests(namespace, targets, cluster_wide):
        _apply(kube, obj)
        done.append(str(ObjectRef.of(obj)))
    _established(kube, timeout)
    return done


def install_crds(kube: Kube, timeout: float = 60.0) -> None:
    """Only the CRDs (idempotent), established: what a cluster needs before workflows can be declared."""
    check_revisions(kube)
    for obj in crds.crds():
        _apply(kube, obj)
    _established(kube, timeout)


def _apply(kube: Kube, obj: Obj) -> None:
    kube.apply(kube.discovery.lookup(obj["apiVersion"], obj["kind"]), obj, field_manager=FIELD_MANAGER)


def _established(kube: Kube, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for crd in crds.crds():
        while True:
            live = kube.get(names.CRDS, "", crd["metadata"]["name"]) or {}
            if conditions(live).get("Established", {}).get("status") == "True":
                break
            if time.monotonic() > deadline:
                raise SlipwayError(f"CustomResourceDefinition {crd['metadata']['name']} not established after "
                                   f"{timeout:.0f}s")  # fmt: skip
            time.sleep(0.2)
    kube.discovery.refresh()
