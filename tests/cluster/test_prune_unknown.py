"""Prune fails closed: what slipway cannot list is unknown, never empty (issue 23, item 4).

The workflow reaches the cluster as a real ServiceAccount whose RBAC lets it do everything but list
Secrets (and one custom kind), or slipway is shown a CRD whose kind discovery no longer serves. A
Namespace or CRD removed from Git that may still hold what others made must stay, with a warning
that names it and the kinds, and never be counted as deleted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slipway.engine import Engine
from slipway.kube import Kube

from .conftest import add_workflow, configmap, dump
from .test_kubeconfig import admin_doc, token_for, write
from .test_prune_safety import get, make_by_hand

GROUP = "unknown.slipway.dev"  # the custom kind's group: the restricted identity gets no right on it


def crd_of(plural: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": plural[:-1], "kind": f"U{plural[1:-1].upper()}"},
            "versions": [{"name": "v1", "served": True, "storage": True,
                          "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}],
        },
    }  # fmt: skip


@pytest.fixture
def no_secret_list(cluster: Any, kube: Kube, namespace: str, tmp_path: Path) -> Iterator[Path]:
    """A kubeconfig of a ServiceAccount that may do anything except list (or watch) Secrets, and
    anything at all with the kinds of ``GROUP``: what a narrowly granted deployer has."""
    kube.discovery.refresh()
    core = sorted({i.plural for i in kube.discovery.all() if not i.group and i.plural != "secrets"})
    groups = sorted({i.group for i in kube.discovery.all() if i.group and i.group != GROUP})
    rules: list[dict[str, Any]] = [
        {"nonResourceURLs": ["*"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": core, "verbs": ["*"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create", "update", "patch", "delete"]},
        {"apiGroups": groups, "resources": ["*"], "verbs": ["*"]},
    ]
    name = f"{namespace}-no-secret-list"
    role_info = kube.discovery.lookup("rbac.authorization.k8s.io/v1", "ClusterRole")
    binding_info = kube.discovery.lookup("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")
    kube.apply(role_info, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                           "metadata": {"name": name}, "rules": rules}, field_manager="tests")  # fmt: skip
    kube.apply(binding_info, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                              "metadata": {"name": name},
                              "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                              "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": namespace}]},
               field_manager="tests")  # fmt: skip
    doc = admin_doc(cluster)
    doc["users"][0]["user"] = {"token": token_for(cluster, kube, namespace, "deployer")}
    try:
        yield write(doc, tmp_path / "deployer.kubeconfig")
    finally:
        kube.delete(binding_info, "", name)
        kube.delete(role_info, "", name)


def test_a_namespace_whose_secrets_slipway_cannot_list_is_not_pruned(
    engine: Engine, kube: Kube, make_git, namespace: str, no_secret_list: Path
) -> None:  # type: ignore[no-untyped-def]
    ns = f"{namespace[:43]}-{namespace[-6:]}-unk"
    ns_obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    repo = make_git({"k8s/ns.yaml": dump(ns_obj, configmap("a", namespace=ns)), "k8s/b.yaml": dump(configmap("b"))})
    wf = add_workflow(engine, repo, namespace, sync_policy={"auto_prune": True})
    engine.update_workflow(wf, {"destination": {"kubeconfig": str(no_secret_list)}})
    nss = kube.discovery.lookup("v1", "Namespace")
    try:
        first = engine.sync(wf)
        assert first.status == "succeeded", first.message
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "theirs", "namespace": ns},
                  "stringData": {"password": "hunter2"}}  # fmt: skip
        make_by_hand(kube, secret)
        repo.commit({"k8s/ns.yaml": None})

        plan = engine.plan(wf)
        assert [d.ref.resource for d in plan.deletions] == ["ConfigMap/a"], plan.warnings
        warning = next(w for w in plan.warnings if w.startswith(f"Namespace/{ns} "))
        assert "cannot list Secret" in warning and f"namespace {ns}" in warning, warning
        assert "hunter2" not in warning

        result = engine.sync(wf)
        assert result.status == "succeeded", result.message
        assert result.metrics.resources_deleted == 1 and "deleted 1" in result.message, result.message
        assert f"prune held back: Namespace/{ns} (cannot list Secret)" in result.message, result.message
        assert not any(c["resource"] == f"Namespace/{ns}" for c in result.changes)
        assert (kube.get(nss, "", ns) or {}).get("status", {}).get("phase") == "Active"
        assert get(kube, "Secret", ns, "theirs") is not None
        assert get(kube, "ConfigMap", ns, "a") is None  # what slipway could see was pruned as before

        # With credentials that can list Secrets, and nothing foreign left, the prune goes ahead.
        engine.update_workflow(wf, {"destination": {"kubeconfig": None}})
        kube.delete(kube.discovery.lookup("v1", "Secret"), ns, "theirs")
        after = engine.sync(wf)
        assert after.status == "succeeded" and "held back" not in after.message, after.message
        assert after.metrics.resources_deleted == 1
        gone = kube.get(nss, "", ns)
        assert gone is None or gone["metadata"].get("deletionTimestamp"), gone
    finally:
        kube.delete(nss, "", ns)


def test_a_crd_whose_custom_resources_slipway_cannot_list_is_not_pruned(
    engine: Engine, kube: Kube, make_git, namespace: str, no_secret_list: Path
) -> None:  # type: ignore[no-untyped-def]
    crd = crd_of(f"u{namespace.rsplit('-', 1)[-1]}s")
    kind = crd["spec"]["names"]["kind"]
    repo = make_git({"k8s/crd.yaml": dump(crd), "k8s/cm.yaml": dump(configmap("a"))})
    wf = add_workflow(engine, repo, namespace, sync_policy={"auto_prune": True})
    engine.update_workflow(wf, {"destination": {"kubeconfig": str(no_secret_list)}})
    crds = kube.discovery.lookup("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    try:
        assert engine.sync(wf).status == "succeeded"
        kube.discovery.refresh()
        make_by_hand(
            kube, {"apiVersion": f"{GROUP}/v1", "kind": kind, "metadata": {"name": "theirs", "namespace": "default"}}
        )
        repo.commit({"k8s/crd.yaml": None})

        plan = engine.plan(wf)
        assert not plan.deletions, [d.ref for d in plan.deletions]
        warning = next(w for w in plan.warnings if w.startswith(f"CustomResourceDefinition/{crd['metadata']['name']} "))
        assert f"cannot list {kind}.{GROUP}" in warning, warning
        result = engine.sync(wf)
        assert result.status == "succeeded" and result.metrics.resources_deleted == 0, result.message
        assert "prune held back: CustomResourceDefinition/" in result.message, result.message
        assert kube.get(crds, "", crd["metadata"]["name"]) is not None
        assert get(kube, kind, "default", "theirs", f"{GROUP}/v1") is not None
    finally:
        kube.delete(crds, "", crd["metadata"]["name"])


def test_a_crd_whose_kind_discovery_no_longer_serves_is_not_pruned(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    crd = crd_of(f"d{namespace.rsplit('-', 1)[-1]}s")
    kind, name = crd["spec"]["names"]["kind"], crd["metadata"]["name"]
    repo = make_git({"k8s/crd.yaml": dump(crd), "k8s/cm.yaml": dump(configmap("a"))})
    wf = add_workflow(engine, repo, namespace, sync_policy={"auto_prune": True})
    crds = kube.discovery.lookup("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    try:
        assert engine.sync(wf).status == "succeeded"
        kube.discovery.refresh()
        make_by_hand(
            kube, {"apiVersion": f"{GROUP}/v1", "kind": kind, "metadata": {"name": "theirs", "namespace": namespace}}
        )
        # Someone stops serving the version: its objects stay stored, but no API lists them any more.
        live = kube.get(crds, "", name)
        assert live is not None
        live["spec"]["versions"][0]["served"] = False
        kube.replace(crds, live)
        repo.commit({"k8s/crd.yaml": None})

        plan = engine.plan(wf)
        assert not plan.deletions, [d.ref for d in plan.deletions]
        warning = next(w for w in plan.warnings if w.startswith(f"CustomResourceDefinition/{name} "))
        assert f"cannot list {kind}.{GROUP}" in warning, warning
        assert engine.sync(wf).status == "succeeded"
        assert kube.get(crds, "", name) is not None
    finally:
        kube.delete(crds, "", name)
