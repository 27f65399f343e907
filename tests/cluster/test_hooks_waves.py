"""Resource hooks and sync waves on the real cluster: kwok really completes Job pods, so hook Jobs really run."""

from __future__ import annotations

from typing import Any

from slipway.engine import Engine
from slipway.kube import Kube

from .conftest import add_workflow, configmap, deployment, dump


def hook_job(name: str, hook: str, *, generate: bool = False, **annotations: str) -> dict[str, Any]:
    md: dict[str, Any] = {"generateName": f"{name}-"} if generate else {"name": name}
    key = "helm.sh/hook" if hook.startswith(("pre-", "post-", "test")) else "argocd.argoproj.io/hook"
    md["annotations"] = {key: hook, **annotations}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": md,
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
                                                          "containers": [{"name": "m", "image": "registry.invalid/m"}]}}},
    }  # fmt: skip


def stuck_pod_hook(name: str, phase: str) -> dict[str, Any]:
    # kwok makes a bare Pod Running and Ready, never Succeeded: a hook that never finishes.
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": {"argocd.argoproj.io/hook": phase}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "registry.invalid/m"}]},
    }


def jobs(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    return kube.list(kube.discovery.lookup("batch/v1", "Job"), namespace)


def get(kube: Kube, kind: str, namespace: str, name: str, api_version: str = "v1") -> dict[str, Any] | None:
    return kube.get(kube.discovery.lookup(api_version, kind), namespace, name)


def test_a_pre_install_hook_job_completes_before_the_deployment_is_created(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(hook_job("migrate", "pre-install,pre-upgrade"), deployment("web"),
                                        hook_job("smoke", "post-install"), hook_job("tests", "test"))})  # fmt: skip
    wf = add_workflow(engine, repo, namespace)
    plan = engine.plan(wf)
    assert [c.resource for c in plan.changes] == ["Deployment/web"]  # hooks are not desired state
    listed = {h["resource"]: h for h in plan.to_seed()["hooks"]}
    assert listed["Job/migrate"]["phases"] == ["PreSync"] and listed["Job/smoke"]["phases"] == ["PostSync"]
    assert listed["Job/tests"]["runs"] is False and "not run by a sync" in listed["Job/tests"]["note"]

    result = engine.sync(wf)
    assert result.status == "succeeded", result.message
    migrate = get(kube, "Job", namespace, "migrate", "batch/v1") or {}
    web = get(kube, "Deployment", namespace, "web", "apps/v1") or {}
    completed = migrate["status"]["completionTime"]
    assert completed <= web["metadata"]["creationTimestamp"]  # the hook ran to its end first
    assert get(kube, "Job", namespace, "smoke", "batch/v1") is not None
    assert get(kube, "Job", namespace, "tests", "batch/v1") is None  # a test hook is never applied
    ran = {(h["phase"], h["resource"]): h["status"] for h in result.hooks}
    assert ran == {("PreSync", "Job/migrate"): "Succeeded", ("PostSync", "Job/smoke"): "Succeeded"}
    # Hooks are neither drift nor prune candidates: the next plan is empty.
    again = engine.plan(wf)
    assert not again.changes and not again.conflicts and not again.deletions
    assert {r.name for r in engine.store.inventory(wf)} == {"web"}


def test_a_presync_hook_that_never_completes_stops_the_sync_before_anything_exists(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    failed_marker = configmap("sync-failed", annotations={"argocd.argoproj.io/hook": "SyncFail"})
    repo = make_git({"k8s/a.yaml": dump(stuck_pod_hook("gate", "PreSync"), configmap("app"), failed_marker)})
    wf = add_workflow(engine, repo, namespace, sync_policy={"hook_timeout": "3s"})
    result = engine.sync(wf)
    assert result.status == "failed"
    assert "PreSync hook Pod/gate failed: did not finish within 3s" in result.message
    assert get(kube, "ConfigMap", namespace, "app") is None  # nothing else was applied
    assert get(kube, "ConfigMap", namespace, "sync-failed") is not None  # the SyncFail hook ran
    assert [(h["phase"], h["status"]) for h in result.hooks] == [("PreSync", "Failed"), ("SyncFail", "Succeeded")]


def test_a_wave_that_never_becomes_healthy_stops_the_next_wave(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    stuck = deployment("db", pod={"nodeSelector": {"no-such-node": "x"}})
    stuck["metadata"]["annotations"] = {"argocd.argoproj.io/sync-wave": "-1"}
    later = configmap("app", annotations={"slipway.dev/sync-wave": "5"})
    repo = make_git({"k8s/a.yaml": dump(later, configmap("settings"), stuck)})
    wf = add_workflow(engine, repo, namespace, sync_policy={"health_check": {"timeout": "3s"}})
    plan = engine.plan(wf)
    assert [(c.resource, c.wave) for c in plan.changes] == [("Deployment/db", -1), ("ConfigMap/settings", 0),
                                                            ("ConfigMap/app", 5)]  # fmt: skip
    result = engine.sync(wf)
    assert result.status == "failed"
    assert "sync wave -1 did not become healthy, so waves 0 to 5 were not applied" in result.message
    assert get(kube, "Deployment", namespace, "db", "apps/v1") is not None
    assert get(kube, "ConfigMap", namespace, "settings") is None and get(kube, "ConfigMap", namespace, "app") is None


def test_waves_apply_in_order_and_prune_in_reverse(engine: Engine, kube: Kube, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    objs = [configmap(f"w{w}", annotations={"argocd.argoproj.io/sync-wave": str(w)}) for w in (2, -3, 0)]
    repo = make_git({"k8s/a.yaml": dump(*objs)})
    wf = add_workflow(engine, repo, namespace, sync_policy={"auto_prune": True})
    seen: list[tuple[str, str]] = []
    engine.events.subscribe(
        lambda e, d: seen.append((e, d.get("resource", ""))) if e in ("applied", "deleted") else None
    )
    assert engine.sync(wf).status == "succeeded"
    assert seen == [("applied", "ConfigMap/w-3"), ("applied", "ConfigMap/w0"), ("applied", "ConfigMap/w2")]
    seen.clear()
    repo.commit({"k8s/a.yaml": dump(configmap("other"))})
    assert engine.sync(wf).status == "succeeded"
    assert [r for e, r in seen if e == "deleted"] == ["ConfigMap/w2", "ConfigMap/w0", "ConfigMap/w-3"]


def test_a_generate_name_hook_runs_anew_each_sync_and_its_earlier_run_goes(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(hook_job("migrate", "PreSync", generate=True), configmap("app", {"v": "1"}))})
    wf = add_workflow(engine, repo, namespace)
    first = engine.sync(wf)
    assert first.status == "succeeded", first.message
    (run1,) = [j["metadata"]["name"] for j in jobs(kube, namespace)]
    assert run1.startswith("migrate-") and run1 != "migrate-"
    repo.commit({"k8s/a.yaml": dump(hook_job("migrate", "PreSync", generate=True), configmap("app", {"v": "2"}))})
    second = engine.sync(wf)
    assert second.status == "succeeded", second.message
    names = [j["metadata"]["name"] for j in jobs(kube, namespace) if not j["metadata"].get("deletionTimestamp")]
    assert len(names) == 1 and names[0] != run1  # BeforeHookCreation: the earlier run went first
    assert second.hooks[0]["resource"] == f"Job/{names[0]}"


def test_hook_succeeded_policy_deletes_the_hook_after_it_ran(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    job = hook_job("notify", "PostSync", **{"argocd.argoproj.io/hook-delete-policy": "HookSucceeded"})
    repo = make_git({"k8s/a.yaml": dump(job, configmap("app"))})
    wf = add_workflow(engine, repo, namespace)
    result = engine.sync(wf)
    assert result.status == "succeeded" and result.hooks[0]["status"] == "Succeeded"
    got = get(kube, "Job", namespace, "notify", "batch/v1")
    assert got is None or got["metadata"].get("deletionTimestamp")


def test_a_bad_hook_is_a_validation_conflict_and_nothing_runs(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    bad = hook_job("migrate", "PreSync")
    bad["spec"]["backoffLimit"] = "never"
    repo = make_git({"k8s/a.yaml": dump(bad, configmap("app"))})
    wf = add_workflow(engine, repo, namespace)
    plan = engine.plan(wf)
    assert [(c.type, c.resource) for c in plan.conflicts] == [("validation", "Job/migrate")]
    assert engine.sync(wf).status == "failed"
    assert get(kube, "ConfigMap", namespace, "app") is None and not jobs(kube, namespace)


def test_an_unreadable_wave_names_the_file_and_object(engine: Engine, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from slipway.errors import ManifestError

    repo = make_git({"k8s/a.yaml": dump(configmap("app", annotations={"argocd.argoproj.io/sync-wave": "first"}))})
    wf = add_workflow(engine, repo, namespace)
    with pytest.raises(ManifestError, match=r"k8s/a.yaml, document 1: ConfigMap/app: annotation .*'first'"):
        engine.plan(wf)
