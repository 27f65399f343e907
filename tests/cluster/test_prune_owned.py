"""Prune and ownerReferences: an owned object in a pruned Namespace is discounted only when its owner
is judged by the same check (it lives in the same Namespace) or leaves in the same sync.

An ownerReference is something anyone may write; an object owned from outside the Namespace (a
ClusterRole, say) would go with the Namespace, so it counts as someone else's.
"""

from __future__ import annotations

from typing import Any

from slipway.engine import Engine
from slipway.kube import Kube

from .conftest import add_workflow, configmap, dump
from .test_prune_safety import get, make_by_hand


def _owned_by(obj: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
    md = owner["metadata"]
    obj["metadata"]["ownerReferences"] = [
        {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": md["name"], "uid": md["uid"]}
    ]
    return obj


def test_an_object_owned_from_outside_its_namespace_holds_the_namespace_back(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    ns = f"{namespace[:40]}-{namespace[-6:]}-own"
    ns_obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    repo = make_git({"k8s/a.yaml": dump(ns_obj, configmap("a", namespace=ns))})
    wf = add_workflow(engine, repo, namespace, sync_policy={"auto_prune": True})
    nss = kube.discovery.lookup("v1", "Namespace")
    crs = kube.discovery.lookup("rbac.authorization.k8s.io/v1", "ClusterRole")
    owner_name = f"slipway-test-prune-owner-{namespace[-6:]}"
    try:
        assert engine.sync(wf).status == "succeeded"
        owner = make_by_hand(kube, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                                    "metadata": {"name": owner_name}, "rules": []})  # fmt: skip
        make_by_hand(kube, _owned_by(configmap("precious", namespace=ns), owner))
        repo.commit({"k8s/a.yaml": dump(configmap("b"))})
        plan = engine.plan(wf)
        assert [d.ref.name for d in plan.deletions] == ["a"]
        warning = next(w for w in plan.warnings if w.startswith(f"Namespace/{ns} "))
        assert "ConfigMap/precious" in warning
        assert engine.sync(wf).status == "succeeded"
        assert get(kube, "ConfigMap", ns, "precious") is not None
    finally:
        kube.delete(nss, "", ns)
        kube.delete(crs, "", owner_name)


def test_an_object_owned_by_what_leaves_with_the_namespace_does_not_hold_it(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    ns = f"{namespace[:40]}-{namespace[-6:]}-dep"
    ns_obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    repo = make_git({"k8s/a.yaml": dump(ns_obj, configmap("a", namespace=ns))})
    wf = add_workflow(engine, repo, namespace, sync_policy={"auto_prune": True})
    nss = kube.discovery.lookup("v1", "Namespace")
    try:
        assert engine.sync(wf).status == "succeeded"
        # What a controller makes from slipway's object: it goes with its owner.
        made = make_by_hand(kube, _owned_by(configmap("made", namespace=ns), get(kube, "ConfigMap", ns, "a") or {}))
        # ... and what hangs off someone else's object in the Namespace is judged through that owner.
        theirs = make_by_hand(kube, configmap("theirs", namespace=ns))
        make_by_hand(kube, _owned_by(configmap("child", namespace=ns), theirs))
        assert made["metadata"]["ownerReferences"]
        repo.commit({"k8s/a.yaml": dump(configmap("b"))})
        warning = next(w for w in engine.plan(wf).warnings if w.startswith(f"Namespace/{ns} "))
        assert "ConfigMap/theirs" in warning and "ConfigMap/made" not in warning and "ConfigMap/child" not in warning

        kube.delete(kube.discovery.lookup("v1", "ConfigMap"), ns, "theirs")
        kube.delete(kube.discovery.lookup("v1", "ConfigMap"), ns, "child")
        assert sorted(d.ref.kind for d in engine.plan(wf).deletions) == ["ConfigMap", "Namespace"]
    finally:
        kube.delete(nss, "", ns)
