"""Prune deletes only what slipway applied: regression tests on the real cluster (issue: safety first).

Each test sets up what a careless operator or a second installation does by hand, with the
API server, and checks that slipway leaves it alone and says why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slipway.engine import Engine
from slipway.kube import Kube
from slipway.source import GitSource
from slipway.store import Store

from .conftest import BOTH_BACKENDS, add_workflow, configmap, dump

# Both stores keep the backups, inventories and holds these rely on.
pytestmark = BOTH_BACKENDS

CRD_GROUP = "safety.slipway.dev"


def get(kube: Kube, kind: str, namespace: str, name: str, api_version: str = "v1") -> dict[str, Any] | None:
    return kube.get(kube.discovery.lookup(api_version, kind), namespace, name)


def make_by_hand(kube: Kube, obj: dict[str, Any]) -> dict[str, Any]:
    """What `kubectl apply` by a person does: another field manager, no inventory of slipway's."""
    info = kube.discovery.lookup(obj["apiVersion"], obj["kind"])
    return kube.apply(info, obj, field_manager="kubectl")


def test_an_object_labelled_by_hand_is_never_pruned(engine: Engine, kube: Kube, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(configmap("a"))})
    wf = add_workflow(engine, repo, namespace, sync_policy={"auto_prune": True})
    assert engine.sync(wf).status == "succeeded"
    # Someone copies slipway's labels onto their own ConfigMap: a label proves nothing by itself.
    labels = dict(get(kube, "ConfigMap", namespace, "a")["metadata"]["labels"])  # type: ignore[index]
    make_by_hand(kube, configmap("mine", namespace=namespace, labels=labels))
    plan = engine.plan(wf)
    assert not plan.deletions and not plan.changes
    result = engine.sync(wf)
    assert result.status == "succeeded" and result.metrics.resources_deleted == 0
    assert get(kube, "ConfigMap", namespace, "mine") is not None


def test_two_state_stores_never_take_each_others_objects(
    engine: Engine, kube: Kube, make_git, namespace: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(configmap("a")), "other/b.yaml": dump(configmap("b"))})
    wf = add_workflow(engine, repo, namespace, sync_policy={"auto_prune": True})
    assert engine.sync(wf).status == "succeeded"

    # A second SLIPWAY_HOME with a workflow of the same id, aimed at the same namespace.
    home2 = tmp_path / "home2"
    other = Engine(Store(home=home2), GitSource(cache_dir=tmp_path / "git2", home=home2))
    try:
        repo_id = other.register_repository({"url": repo.url}).id
        other.create_workflow(
            {"id": wf, "repository": repo_id, "target_path": "k8s", "destination": {"namespace": namespace},
             "sync_policy": {"auto_prune": True, "health_check": {"timeout": "30s"}}}
        )  # fmt: skip
        plan = other.plan(wf)
        assert [c.type for c in plan.conflicts] == ["resource_exists"], plan.conflicts
        assert "another slipway state store" in plan.conflicts[0].description
        result = other.sync(wf)
        assert result.status == "refused" and "nothing was applied" in result.message
        # ... and pointed elsewhere in the same namespace, it leaves the first store's objects be.
        other.update_workflow(wf, {"target_path": "other"})
        assert other.sync(wf).status == "succeeded"
        assert get(kube, "ConfigMap", namespace, "a") is not None
        assert engine.sync(wf).status == "succeeded"
        assert get(kube, "ConfigMap", namespace, "b") is not None
    finally:
        other.store.close()


def test_prune_disabled_annotations_of_slipway_argo_cd_and_flux(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    kept = {
        "s": {"slipway.dev/prune": "disabled"},
        "argo": {"argocd.argoproj.io/sync-options": "ServerSideApply=true, Prune=false"},
        "flux": {"kustomize.toolkit.fluxcd.io/prune": "disabled"},
    }
    objs = [configmap(n, annotations=a) for n, a in kept.items()] + [configmap("plain")]
    repo = make_git({"k8s/a.yaml": dump(*objs)})
    wf = add_workflow(engine, repo, namespace, sync_policy={"auto_prune": True})
    assert engine.sync(wf).status == "succeeded"
    repo.commit({"k8s/a.yaml": dump(configmap("other"))})
    plan = engine.plan(wf)
    assert [d.ref.name for d in plan.deletions] == ["plain"]
    for name in kept:
        assert any(f"ConfigMap/{name} " in w and "pruning is disabled" in w for w in plan.warnings), plan.warnings
    result = engine.sync(wf)
    assert result.status == "succeeded" and result.metrics.resources_deleted == 1
    assert all(get(kube, "ConfigMap", namespace, n) is not None for n in kept)
    assert get(kube, "ConfigMap", namespace, "plain") is None
    # Still remembered: removing the annotation later lets a prune take it.
    assert {r.name for r in engine.store.inventory(wf)} >= set(kept)


def test_an_object_a_controller_owns_is_never_pruned(engine: Engine, kube: Kube, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(configmap("owner"), configmap("owned"))})
    wf = add_workflow(engine, repo, namespace, sync_policy={"auto_prune": True})
    assert engine.sync(wf).status == "succeeded"
    owner = make_by_hand(kube, configmap("boss", namespace=namespace))
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "boss", "uid": owner["metadata"]["uid"], "controller": True}
    cms = kube.discovery.lookup("v1", "ConfigMap")
    kube.patch_merge(cms, namespace, "owned", {"metadata": {"ownerReferences": [ref]}})
    repo.commit({"k8s/a.yaml": dump(configmap("owner"))})
    result = engine.sync(wf)
    assert result.status == "succeeded" and result.metrics.resources_deleted == 0
    assert get(kube, "ConfigMap", namespace, "owned") is not None
    assert any("controlled by ConfigMap/boss" in w for w in engine.plan(wf).warnings)


def test_labels_removed_by_hand_are_drift_not_a_conflict(engine: Engine, kube: Kube, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(configmap("a"))})
    wf = add_workflow(engine, repo, namespace)
    assert engine.sync(wf).status == "succeeded"
    cms = kube.discovery.lookup("v1", "ConfigMap")
    # `kubectl label cm a slipway.dev/workflow- app.kubernetes.io/managed-by- slipway.dev/instance-`
    gone = {"slipway.dev/workflow": None, "app.kubernetes.io/managed-by": None, "slipway.dev/instance": None}
    kube.patch_merge(cms, namespace, "a", {"metadata": {"labels": gone}})
    plan = engine.plan(wf)
    assert [c.type for c in plan.conflicts] == ["out_of_sync"], [c.description for c in plan.conflicts]
    assert not plan.blocking and [c.type for c in plan.changes] == ["update"]
    assert engine.sync(wf).status == "succeeded"
    assert get(kube, "ConfigMap", namespace, "a")["metadata"]["labels"]["slipway.dev/workflow"] == wf  # type: ignore[index]


def test_a_namespace_holding_what_others_made_is_not_pruned(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    ns = f"{namespace[:43]}-{namespace[-6:]}-app"  # the random suffix keeps it apart from other runs
    ns_obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    repo = make_git({"k8s/a.yaml": dump(ns_obj, configmap("a", namespace=ns))})
    wf = add_workflow(engine, repo, namespace, sync_policy={"auto_prune": True})
    nss = kube.discovery.lookup("v1", "Namespace")
    try:
        assert engine.sync(wf).status == "succeeded"
        make_by_hand(kube, configmap("precious", namespace=ns))
        repo.commit({"k8s/a.yaml": dump(configmap("b"))})
        plan = engine.plan(wf)
        assert [d.ref.name for d in plan.deletions] == ["a"]
        warning = next(w for w in plan.warnings if w.startswith(f"Namespace/{ns} "))
        assert "still holds 1 object(s)" in warning and "ConfigMap/precious" in warning
        assert engine.sync(wf).status == "succeeded"
        assert (kube.get(nss, "", ns) or {}).get("status", {}).get("phase") == "Active"
        assert get(kube, "ConfigMap", ns, "precious") is not None

        # Once nothing else lives there, the next sync prunes it.
        kube.delete(kube.discovery.lookup("v1", "ConfigMap"), ns, "precious")
        assert [d.ref.kind for d in engine.plan(wf).deletions] == ["Namespace"]
    finally:
        kube.delete(nss, "", ns)


def test_a_crd_whose_custom_resources_others_made_is_not_pruned(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    plural = f"w{namespace.rsplit('-', 1)[-1]}s"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{CRD_GROUP}"},
        "spec": {
            "group": CRD_GROUP,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": plural[:-1], "kind": f"W{plural[1:-1].upper()}"},
            "versions": [{"name": "v1", "served": True, "storage": True,
                          "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}],
        },
    }  # fmt: skip
    repo = make_git({"k8s/crd.yaml": dump(crd), "k8s/cm.yaml": dump(configmap("a"))})
    wf = add_workflow(engine, repo, namespace, sync_policy={"auto_prune": True})
    crds = kube.discovery.lookup("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    try:
        assert engine.sync(wf).status == "succeeded"
        kube.discovery.refresh()
        kind = crd["spec"]["names"]["kind"]
        make_by_hand(
            kube,
            {"apiVersion": f"{CRD_GROUP}/v1", "kind": kind, "metadata": {"name": "theirs", "namespace": namespace}},
        )
        repo.commit({"k8s/crd.yaml": None})
        plan = engine.plan(wf)
        assert not plan.deletions
        assert any("still holds 1 object(s)" in w and f"{kind}/theirs" in w for w in plan.warnings), plan.warnings
        assert engine.sync(wf).status == "succeeded"
        assert kube.get(crds, "", crd["metadata"]["name"]) is not None
    finally:
        kube.delete(crds, "", crd["metadata"]["name"])


def test_create_namespace(engine: Engine, kube: Kube, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    ns = f"{namespace[:50]}-new"
    repo = make_git({"k8s/a.yaml": dump(configmap("a"))})
    wf = add_workflow(engine, repo, ns)
    nss = kube.discovery.lookup("v1", "Namespace")
    try:
        plan = engine.plan(wf)
        assert [c.type for c in plan.conflicts] == ["validation"]
        assert any("create_namespace" in s for s in plan.conflicts[0].suggestions)
        engine.update_workflow(wf, {"sync_policy": {"create_namespace": True}})
        result = engine.sync(wf)
        assert result.status == "succeeded", result.message
        assert get(kube, "ConfigMap", ns, "a") is not None
        # Created, not owned: it is not in the inventory, so no prune ever deletes it.
        assert {r.kind for r in engine.store.inventory(wf)} == {"ConfigMap"}
        assert not engine.plan(wf).changes
    finally:
        kube.delete(nss, "", ns)


def test_what_a_killed_sync_applied_unrecorded_is_owned_by_the_next_sync(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    """A sync killed mid-apply leaves objects it wrote before it could record them. The next sync finds
    them unchanged (they carry this store's marks): it records them, so a later prune removes them."""
    repo = make_git({"k8s/a.yaml": dump(configmap("a")), "k8s/b.yaml": dump(configmap("b"))})
    wf = add_workflow(engine, repo, namespace, sync_policy={"auto_prune": True})
    assert engine.sync(wf).status == "succeeded"
    # What a kill -9 between b's apply and its record leaves behind: b live with the marks, not recorded.
    kept = {ref: v for ref, v in engine.store.inventory(wf).items() if ref.name != "b"}
    if isinstance(engine.store, Store):
        with engine.store._conn() as c:
            c.execute("DELETE FROM inventory WHERE workflow_id = ? AND ref LIKE ?", (wf, f"%|ConfigMap|{namespace}|b"))
    else:
        engine.store.set_inventory(wf, kept)  # type: ignore[attr-defined]
    assert {r.name for r in engine.store.inventory(wf)} == {"a"}

    again = engine.sync(wf)
    assert again.status == "succeeded" and again.metrics.resources_applied == 0  # nothing to change
    assert {r.name for r in engine.store.inventory(wf)} == {"a", "b"}

    repo.commit({"k8s/b.yaml": None})
    result = engine.sync(wf)
    assert result.status == "succeeded" and result.metrics.resources_deleted == 1
    assert get(kube, "ConfigMap", namespace, "b") is None and get(kube, "ConfigMap", namespace, "a") is not None
