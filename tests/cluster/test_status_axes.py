"""The engine's two axes against the real cluster: self-heal of a deleted object, and what the
controller leaves stored for the surfaces that show the last computed value."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from slipway.controller import Controller
from slipway.engine import Engine
from slipway.kube import Kube

from .conftest import configmap, dump
from .test_controller import auto_workflow, cm_value, wait_until

pytestmark = pytest.mark.cluster


@pytest.fixture
def controller(engine: Engine) -> Iterator[Controller]:
    ctl = Controller(engine, tick=0.1)
    yield ctl
    ctl.stop(10)


def test_self_heal_restores_a_deleted_object_and_the_stored_axes_follow(
    engine: Engine, kube: Kube, controller: Controller, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(configmap("app", {"v": "git"}), configmap("other", {"v": "git"}))})
    wf = auto_workflow(engine, repo, namespace, poll="1s", sync_policy={"self_heal": True, "self_heal_interval": "1s"})
    controller.start()
    wait_until(lambda: cm_value(kube, namespace, "app") == "git", 20)
    wait_until(
        lambda: (engine.run_state(wf).get("assessment") or {}).get("sync_status", {}).get("status") == "Synced", 20
    )
    # A deletion by hand is not "drift" of a field: it is a missing object, and self-heal creates it again.
    assert kube.delete(kube.discovery.lookup("v1", "ConfigMap"), namespace, "app")
    wait_until(lambda: cm_value(kube, namespace, "app") == "git", 20)
    assert any(h.trigger == "self-heal" for h in engine.history(wf))
    stored = engine.run_state(wf)["assessment"]
    assert stored["sync_status"]["status"] == "Synced" and stored["health"]["status"] == "Healthy", stored


def test_the_axes_of_a_workflow_never_synced_and_of_a_broken_source(engine: Engine, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(configmap("app"))})
    repo_id = engine.register_repository({"url": repo.url}).id
    wf = engine.create_workflow(
        {"repository": repo_id, "target_path": "k8s", "destination": {"namespace": namespace}}
    ).id
    before = engine.report(wf, live=False)
    assert before["sync_status"]["status"] == "Unknown" and before["assessed_at"] is None
    assert before["operation"] is None
    now = engine.report(wf)
    assert now["sync_status"]["status"] == "OutOfSync" and now["sync_status"]["created"] == 1
    assert now["health"]["status"] == "Missing"  # as Argo CD: declared and not there
    assert [(o["name"], o["sync_status"]) for o in now["objects"]] == [("app", "OutOfSync")]
    engine.update_workflow(wf, {"target_path": "nowhere"})
    broken = engine.report(wf)
    assert broken["sync_status"]["status"] == "Unknown" and "nowhere" in broken["sync_status"]["message"], broken


def test_a_rollback_of_a_workflow_that_created_its_namespace(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    made = f"{namespace}-made"[:63]
    repo = make_git({"k8s/a.yaml": dump(configmap("app", {"v": "1"}))})
    repo_id = engine.register_repository({"url": repo.url}).id
    wf = engine.create_workflow(
        {"repository": repo_id, "target_path": "k8s", "destination": {"namespace": made},
         "sync_policy": {"create_namespace": True, "health_check": {"timeout": "30s"}}}
    ).id  # fmt: skip
    namespaces = kube.discovery.lookup("v1", "Namespace")
    try:
        assert engine.sync(wf).status == "succeeded"
        repo.commit({"k8s/a.yaml": dump(configmap("app", {"v": "2"}))})
        assert engine.sync(wf).status == "succeeded"
        assert cm_value(kube, made, "app") == "2"
        rb = engine.rollback(wf, "v2 is wrong")
        assert rb.status == "succeeded", rb.message
        assert cm_value(kube, made, "app") == "1"
        assert engine.run_state(wf)["status"] == "synced"
        assert kube.get(namespaces, "", made) is not None  # created by slipway, never pruned (as Argo CD)
    finally:
        kube.delete(namespaces, "", made)


def test_a_refusal_is_its_own_outcome_and_changes_no_status(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(configmap("app", {"v": "1"}))})
    repo_id = engine.register_repository({"url": repo.url}).id
    wf = engine.create_workflow(
        {"repository": repo_id, "target_path": "k8s", "destination": {"namespace": namespace}}
    ).id  # fmt: skip
    assert engine.sync(wf).status == "succeeded"
    stale = engine.plan(wf).fingerprint()
    repo.commit({"k8s/a.yaml": dump(configmap("app", {"v": "2"}))})
    result = engine.sync(wf, expected_plan=stale)
    assert result.status == "refused" and "plan changed" in result.message, result.message
    assert cm_value(kube, namespace, "app") == "1"
    state = engine.run_state(wf)
    assert state["status"] == "synced"  # a refusal applied nothing: the workflow is as it was
    report = engine.report(wf, live=False)
    assert report["operation"]["phase"] == "Refused"
    assert report["sync_status"]["status"] == "OutOfSync" and report["sync_status"]["changed"] == 1
    # A handmade object in the way: a conflict, refused too, and rollback has no refused sync to undo.
    cms = kube.discovery.lookup("v1", "ConfigMap")
    kube.apply(cms, configmap("handmade", namespace=namespace), field_manager="kubectl", force=True)
    repo.commit({"k8s/a.yaml": dump(configmap("app", {"v": "2"}), configmap("handmade"))})
    assert engine.sync(wf).status == "refused"
    assert engine.run_state(wf)["status"] == "synced"
    assert [s.status for s in engine.history(wf)] == ["refused", "refused", "succeeded"]


def test_kubectl_get_workflows_prints_the_same_words(kube: Kube, cluster, namespace: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The Workflow CRD's columns and status schema, checked by the API server and kubectl themselves.
    A copy under a group of its own: the cluster's slipway CRDs (others' revision) stay as they are."""
    import copy
    import time

    from slipway.kube.discovery import ResourceInfo
    from slipway.store.kubernetes import crds, names
    from tests.kubestore import kubectl

    # Names of its own too (kind and plural), and kubectl with a cache of its own: nobody's
    # `kubectl get workflows` may ever meet this copy.
    group = f"c{namespace[-6:]}.status-check.slipway.dev"
    crd = copy.deepcopy(crds.workflow_crd())
    crd["metadata"]["name"] = f"statuscheckworkflows.{group}"
    crd["spec"]["group"] = group
    crd["spec"]["names"] = {"plural": "statuscheckworkflows", "singular": "statuscheckworkflow",
                            "kind": "StatusCheckWorkflow", "listKind": "StatusCheckWorkflowList"}  # fmt: skip
    version = crd["spec"]["versions"][0]["name"]
    kube.apply(names.CRDS, crd)
    try:
        deadline = time.monotonic() + 60
        while True:
            live = kube.get(names.CRDS, "", crd["metadata"]["name"]) or {}
            if any(
                c["type"] == "Established" and c["status"] == "True"
                for c in (live.get("status") or {}).get("conditions") or []
            ):
                break
            assert time.monotonic() < deadline, live.get("status")
            time.sleep(0.2)
        info = ResourceInfo(group, version, "StatusCheckWorkflow", "statuscheckworkflows", True, frozenset())
        kube.apply(info, {"apiVersion": f"{group}/{version}", "kind": "StatusCheckWorkflow",
                          "metadata": {"name": "web", "namespace": namespace}, "spec": {"repository": "r"}})  # fmt: skip
        axes = {"sync_status": {"status": "OutOfSync", "created": 0, "changed": 0, "missing": 1, "extra": 0,
                                "revision": "3f2c", "message": ""},
                "health": {"status": "Missing", "message": "ConfigMap/x: does not exist"}, "assessed_at": "2026-12-01T10:00:00Z"}  # fmt: skip
        kube.patch_merge(
            info, namespace, "web", {"status": {"status": "synced", "assessment": axes}}, subresource="status"
        )
        kept = (kube.get(info, namespace, "web") or {})["status"]["assessment"]
        assert kept == axes  # the schema keeps every field (nothing pruned)
        cache = ["--cache-dir", str(tmp_path / "kubectl-cache")]
        table = kubectl(
            cluster.kubeconfig, *cache, "-n", namespace, "get", f"statuscheckworkflows.{group}"
        ).splitlines()
        head, row = table[0].split(), table[1].split()
        assert head[:4] == ["NAME", "STATUS", "SYNC", "HEALTH"], table
        assert row[:4] == ["web", "synced", "OutOfSync", "Missing"], table
    finally:
        kube.delete(names.CRDS, "", crd["metadata"]["name"])


def test_the_controller_refreshes_what_lists_show(
    engine: Engine, kube: Kube, make_git, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from slipway import assessor

    monkeypatch.setenv("SLIPWAY_ASSESS_INTERVAL", "1s")
    monkeypatch.setattr(assessor, "FIRST_PASS", 0.2)
    repo = make_git({"k8s/a.yaml": dump(configmap("app", {"v": "git"}))})
    repo_id = engine.register_repository({"url": repo.url}).id
    wf = engine.create_workflow(
        {"repository": repo_id, "target_path": "k8s", "destination": {"namespace": namespace}}
    ).id
    assert engine.sync(wf).status == "succeeded"
    assert engine.run_state(wf)["assessment"]["sync_status"]["status"] == "Synced"
    kube.delete(kube.discovery.lookup("v1", "ConfigMap"), namespace, "app")
    ctl = Controller(engine, tick=0.1)  # the workflow does not auto-sync: the controller only looks
    ctl.start()
    try:
        wait_until(lambda: engine.run_state(wf)["assessment"]["health"]["status"] == "Missing", 30)
        kept = engine.run_state(wf)["assessment"]["sync_status"]
        assert (kept["status"], kept["missing"]) == ("OutOfSync", 1)
    finally:
        ctl.stop(10)
    assert cm_value(kube, namespace, "app") is None  # looked at, never applied
