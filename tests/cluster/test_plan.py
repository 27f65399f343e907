"""The plan (generate_diff) against the real API server: every change type, conflict type, impact level."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from slipway.engine import Engine
from slipway.errors import ManifestError, NotFoundError, SourceError
from slipway.kube import Kube
from slipway.plan import mask

from .conftest import add_workflow, configmap, deployment, dump, service

pytestmark = pytest.mark.cluster

SEED_KEYS = {"workflow_id", "generated_at", "summary", "changes", "conflicts", "warnings"}
SUMMARY_KEYS = {
    "total_changes", "created_resources", "updated_resources", "deleted_resources", "conflict_count", "warning_count",
}  # fmt: skip


def by_resource(diff: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["resource"]: c for c in diff["changes"]}


def test_first_plan_shows_creates_in_the_seed_shape(engine: Engine, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/app.yaml": dump(configmap("web-config"), deployment("web-app", 3), service("web-svc"))})
    wf = add_workflow(engine, repo, namespace)
    diff = engine.plan(wf).to_seed()
    # The seed's table, plus the hooks a sync would run (a list of its own, empty here).
    assert set(diff) == SEED_KEYS | {"hooks"} and set(diff["summary"]) == SUMMARY_KEYS and diff["hooks"] == []
    assert diff["workflow_id"] == wf
    assert diff["generated_at"].endswith("Z") and "T" in diff["generated_at"]
    assert diff["summary"]["total_changes"] == 3 and diff["summary"]["created_resources"] == 3
    changes = by_resource(diff)
    web = changes["Deployment/web-app"]
    assert web["type"] == "create" and web["namespace"] == namespace and web["impact"] == "medium"
    assert web["diff"].splitlines()[0] == "+ Creating Deployment/web-app with 3 replicas"
    assert "current_state" not in web
    # A create's desired state is what Git declares: the server's defaults and the fields it would set
    # (a Service's clusterIP) are not shown as Git's; the server's dry-run still checked it.
    assert "strategy" not in web["desired_state"]["spec"]
    assert "clusterIP" not in changes["Service/web-svc"]["desired_state"]["spec"]
    assert "managedFields" not in web["desired_state"]["metadata"]
    assert changes["ConfigMap/web-config"]["impact"] == "low"
    assert diff["conflicts"] == [] and diff["warnings"] == []
    # The order is the apply order: configuration before services before workloads.
    assert [c["resource"] for c in diff["changes"]] == ["ConfigMap/web-config", "Service/web-svc", "Deployment/web-app"]


def test_after_a_sync_nothing_changes_and_no_dry_run_is_needed(engine: Engine, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/app.yaml": dump(configmap("c"), deployment("web", 1), service("web"))})
    wf = add_workflow(engine, repo, namespace)
    assert engine.sync(wf).status == "succeeded"
    kube = engine.kube_for(engine.workflow(wf))
    before = dict(kube.counts)
    diff = engine.plan(wf).to_seed()
    assert diff["summary"] == {k: 0 for k in SUMMARY_KEYS}
    assert diff["changes"] == [] and diff["conflicts"] == [] and diff["warnings"] == []
    spent = {k: kube.counts[k] - before.get(k, 0) for k in kube.counts}
    assert spent.get("DRYRUN", 0) == 0, spent
    assert spent.get("PATCH", 0) == 0 and spent.get("DELETE", 0) == 0


def test_update_shows_the_changed_field_and_a_unified_diff(engine: Engine, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/svc.yaml": dump(service("web-svc", 80))})
    wf = add_workflow(engine, repo, namespace)
    engine.sync(wf)
    repo.commit({"k8s/svc.yaml": dump(service("web-svc", 8080))})
    diff = engine.plan(wf).to_seed()
    change = by_resource(diff)["Service/web-svc"]
    assert change["type"] == "update" and change["impact"] == "low"
    lines = change["diff"].splitlines()
    assert lines[0] == "~ Updating Service/web-svc:"
    assert "  spec.ports[0].port: 80 -> 8080" in lines
    assert "-  - port: 80" in change["diff"] and "+  - port: 8080" in change["diff"]
    assert change["current_state"]["spec"]["ports"][0]["port"] == 80
    assert change["desired_state"]["spec"]["ports"][0]["port"] == 8080
    # Server-assigned fields are the same on both sides, so they never show as changes.
    assert "clusterIP" not in "\n".join(lines[1:3])


def test_deletions_only_with_auto_prune(engine: Engine, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(configmap("keep"), deployment("gone", 1))})
    wf = add_workflow(engine, repo, namespace)
    engine.sync(wf)
    repo.commit({"k8s/a.yaml": dump(configmap("keep"))})
    kept = engine.plan(wf).to_seed()
    assert kept["changes"] == []
    assert any("Deployment/gone" in w and "auto_prune is off" in w for w in kept["warnings"])

    wf_cfg = engine.workflow(wf)
    wf_cfg.sync_policy.auto_prune = True
    engine.store.put_workflow(wf_cfg)
    pruned = engine.plan(wf).to_seed()
    change = by_resource(pruned)["Deployment/gone"]
    assert change["type"] == "delete" and change["impact"] == "high"
    assert change["diff"].startswith("- Deleting Deployment/gone")
    assert "desired_state" not in change and change["current_state"]["kind"] == "Deployment"
    assert "High-impact change detected: Deployment/gone" in pruned["warnings"]
    assert pruned["summary"]["deleted_resources"] == 1


def test_impact_levels_critical_high_medium_low(engine: Engine, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    repo = make_git({"k8s/a.yaml": dump(pvc, deployment("web", 2), configmap("cfg"), deployment("api", 1))})
    wf = add_workflow(engine, repo, namespace, sync_policy={"auto_prune": True, "health_check": {"enabled": False}})
    assert engine.sync(wf).status == "succeeded"
    repo.commit(
        {
            "k8s/a.yaml": dump(
                deployment("web", 0),
                configmap("cfg", {"k": "changed"}),
                deployment("api", 1, image="registry.invalid/app:2"),
            )
        }
    )
    diff = engine.plan(wf).to_seed()
    levels = {c["resource"]: c["impact"] for c in diff["changes"]}
    assert levels == {
        "PersistentVolumeClaim/data": "critical",  # deleted
        "Deployment/web": "high",  # scaled to zero
        "Deployment/api": "medium",  # new image
        "ConfigMap/cfg": "low",  # configuration only
    }
    assert "Critical-impact change detected: PersistentVolumeClaim/data" in diff["warnings"]
    assert "High-impact change detected: Deployment/web" in diff["warnings"]
    assert diff["summary"]["warning_count"] == len(diff["warnings"]) == 2


def test_resource_exists_conflicts_for_unmanaged_and_foreign_objects(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    cms = kube.discovery.lookup("v1", "ConfigMap")
    kube.apply(cms, configmap("handmade", namespace=namespace), field_manager="kubectl")
    kube.apply(
        cms,
        configmap("theirs", namespace=namespace, labels={"slipway.dev/workflow": "other-wf"}),
        field_manager="slipway",
    )
    repo = make_git({"k8s/a.yaml": dump(configmap("handmade"), configmap("theirs"), configmap("mine"))})
    wf = add_workflow(engine, repo, namespace)
    diff = engine.plan(wf).to_seed()
    conflicts = {c["resource"]: c for c in diff["conflicts"]}
    assert conflicts["ConfigMap/handmade"]["type"] == "resource_exists"
    assert "not managed by slipway" in conflicts["ConfigMap/handmade"]["description"]
    assert "owned by workflow other-wf" in conflicts["ConfigMap/theirs"]["description"]
    assert any("slipway.dev/workflow=" + wf in s for s in conflicts["ConfigMap/handmade"]["suggestions"])
    assert conflicts["ConfigMap/handmade"]["current_state"]["data"] == {"k": "v"}
    assert [c["resource"] for c in diff["changes"]] == ["ConfigMap/mine"]
    # A sync refuses and applies nothing, not even the object without a conflict.
    result = engine.sync(wf)
    assert result.status == "refused" and "refused" in result.message and "nothing was applied" in result.message
    assert kube.get(cms, namespace, "mine") is None


def test_out_of_sync_when_someone_changed_what_slipway_applied(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(configmap("app-config", {"mode": "git"}))})
    wf = add_workflow(engine, repo, namespace)
    engine.sync(wf)
    cms = kube.discovery.lookup("v1", "ConfigMap")
    kube.apply(
        cms,
        configmap("app-config", {"mode": "hand-edited"}, namespace=namespace),
        field_manager="kubectl-edit",
        force=True,
    )
    diff = engine.plan(wf).to_seed()
    (conflict,) = diff["conflicts"]
    assert conflict["type"] == "out_of_sync" and conflict["resource"] == "ConfigMap/app-config"
    assert "modified outside of GitOps" in conflict["description"] and "data.mode" in conflict["description"]
    assert conflict["current_state"]["data"]["mode"] == "hand-edited"
    assert conflict["desired_state"]["data"]["mode"] == "git"
    assert conflict["suggestions"]
    change = by_resource(diff)["ConfigMap/app-config"]
    assert "data.mode: hand-edited -> git" in change["diff"]
    # Drift does not block: Git wins, and the sync counts it as a resolved conflict.
    result = engine.sync(wf)
    assert result.status == "succeeded" and result.metrics.conflicts_resolved == 1
    assert (kube.get(cms, namespace, "app-config") or {})["data"]["mode"] == "git"


def test_validation_conflicts_carry_the_servers_message(engine: Engine, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    bad = deployment("bad", 1)
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}  # does not match the selector
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}}
    repo = make_git({"k8s/a.yaml": dump(bad, unknown, configmap("fine"))})
    wf = add_workflow(engine, repo, namespace)
    diff = engine.plan(wf).to_seed()
    conflicts = {c["resource"]: c for c in diff["conflicts"]}
    assert conflicts["Deployment/bad"]["type"] == "validation"
    assert "API server says" in conflicts["Deployment/bad"]["description"]
    assert "`selector` does not match template `labels`" in conflicts["Deployment/bad"]["description"]
    assert conflicts["Deployment/bad"]["description"].startswith("k8s/a.yaml, document 1: ")
    assert conflicts["Widget/w"]["type"] == "validation"
    assert "no kind Widget in apiVersion example.com/v1" in conflicts["Widget/w"]["description"]
    assert "k8s/a.yaml, document 2" in conflicts["Widget/w"]["description"]


def test_immutable_field_is_a_validation_conflict_unless_recreate_is_allowed(
    engine: Engine, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(deployment("web", 1))})
    wf = add_workflow(engine, repo, namespace, sync_policy={"health_check": {"enabled": False}})
    engine.sync(wf)
    changed = deployment("web", 1)
    changed["spec"]["selector"]["matchLabels"] = {"app": "web", "tier": "front"}
    changed["spec"]["template"]["metadata"]["labels"] = {"app": "web", "tier": "front"}
    repo.commit({"k8s/a.yaml": dump(changed)})
    diff = engine.plan(wf).to_seed()
    (conflict,) = diff["conflicts"]
    assert conflict["type"] == "validation" and "field is immutable" in conflict["description"]
    assert any("recreate" in s for s in conflict["suggestions"])

    cfg = engine.workflow(wf)
    cfg.sync_policy.recreate = True
    engine.store.put_workflow(cfg)
    diff = engine.plan(wf).to_seed()
    assert diff["conflicts"] == []
    change = by_resource(diff)["Deployment/web"]
    assert change["type"] == "update" and change["impact"] == "high" and "deletes and creates" in change["diff"]
    result = engine.sync(wf)
    assert result.status == "succeeded", result.message
    assert engine.plan(wf).to_seed()["summary"]["total_changes"] == 0


def test_secret_values_are_masked_differently_when_changed(engine: Engine, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    def secret(**string_data: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "stringData": string_data}

    repo = make_git({"k8s/s.yaml": dump(secret(user="admin-x1", password="Pa55w0rd-first"))})
    wf = add_workflow(engine, repo, namespace)
    created = engine.plan(wf).to_seed()
    assert engine.sync(wf).status == "succeeded"
    repo.commit({"k8s/s.yaml": dump(secret(user="admin-x1", password="Pa55w0rd-second"))})
    updated = engine.plan(wf).to_seed()
    change = by_resource(updated)["Secret/creds"]
    assert change["current_state"]["data"] == {"password": mask.MASK_OLD, "user": mask.MASK}
    assert change["desired_state"]["data"] == {"password": mask.MASK_NEW, "user": mask.MASK}
    text = repr(created) + repr(updated)
    for value in ("admin-x1", "Pa55w0rd-first", "Pa55w0rd-second"):
        assert value not in text
        assert base64.b64encode(value.encode()).decode() not in text


def test_crd_and_its_custom_resource_in_one_path(engine: Engine, kube: Kube, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    group = f"{namespace}.example.com"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gadgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}},
                }
            ],
        },
    }  # fmt: skip
    gadget = {"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {"size": 3}}
    repo = make_git({"k8s/crd.yaml": dump(crd), "k8s/gadget.yaml": dump(gadget)})
    wf = add_workflow(engine, repo, namespace, sync_policy={"auto_prune": True})
    diff = engine.plan(wf).to_seed()
    assert [(c["resource"], c["type"]) for c in diff["changes"]] == [
        (f"CustomResourceDefinition/gadgets.{group}", "create"),
        ("Gadget/g1", "create"),
    ]
    assert by_resource(diff)["Gadget/g1"]["namespace"] == namespace
    result = engine.sync(wf)
    assert result.status == "succeeded", result.message
    info = kube.discovery.lookup(f"{group}/v1", "Gadget")
    assert (kube.get(info, namespace, "g1") or {})["spec"]["size"] == 3
    assert engine.plan(wf).to_seed()["summary"]["total_changes"] == 0
    # Clean up the cluster-scoped CRD this test created.
    repo.commit({"k8s/crd.yaml": None, "k8s/gadget.yaml": None, "k8s/keep.yaml": dump(configmap("keep"))})
    assert engine.sync(wf).status == "succeeded"


def test_kustomize_overlay(engine: Engine, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    repo = make_git(
        {
            "base/kustomization.yaml": "resources:\n- app.yaml\n",
            "base/app.yaml": dump(deployment("web", 1), configmap("web-config", {"env": "base"})),
            "overlays/prod/kustomization.yaml": (
                "resources:\n- ../../base\nnamePrefix: prod-\ncommonLabels:\n  env: prod\n"
                "patches:\n- target:\n    kind: Deployment\n    name: web\n"
                "  patch: |-\n    - op: replace\n      path: /spec/replicas\n      value: 3\n"
            ),
        }
    )
    wf = add_workflow(engine, repo, namespace, path="overlays/prod")
    diff = engine.plan(wf).to_seed()
    changes = by_resource(diff)
    assert set(changes) == {"Deployment/prod-web", "ConfigMap/prod-web-config"}
    assert changes["Deployment/prod-web"]["desired_state"]["spec"]["replicas"] == 3
    assert changes["Deployment/prod-web"]["desired_state"]["metadata"]["labels"]["env"] == "prod"
    assert "+ Creating Deployment/prod-web with 3 replicas" in changes["Deployment/prod-web"]["diff"]


def test_bad_input_is_a_clear_error_and_no_partial_result(engine: Engine, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    repo = make_git(
        {"k8s/a.yaml": dump(configmap("ok")), "k8s/b.yaml": dump(configmap("x")) + "---\nkind: ConfigMap\n"}
    )
    wf = add_workflow(engine, repo, namespace)
    with pytest.raises(ManifestError, match=r"k8s/b.yaml, document 2: missing apiVersion"):
        engine.plan(wf)
    repo.commit({"k8s/b.yaml": dump(configmap("ok"))})
    with pytest.raises(ManifestError, match=r"ConfigMap/ok in namespace .* is declared twice \(first in k8s/a.yaml"):
        engine.plan(wf)
    result = engine.sync(wf)
    assert result.status == "failed" and "declared twice" in result.message


def test_unknown_workflow_and_unreachable_repository(engine: Engine, namespace: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotFoundError, match="workflow 'nope' does not exist"):
        engine.plan("nope")
    repo_id = engine.register_repository({"id": "gone", "url": str(tmp_path / "missing.git")}).id
    wf = engine.create_workflow({"repository": repo_id, "destination": {"namespace": namespace},
                                 "sync_policy": {"retry": {"limit": 0}}}).id  # fmt: skip
    with pytest.raises(SourceError, match="gone"):
        engine.plan(wf)
