"""Resource actions on the real cluster: the built-ins on live objects, Lua actions in Argo CD's format
(a failing one and an endless one), a refusal for what the workflow does not own, and the record."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from slipway.engine import Engine
from slipway.errors import ConfigError, NotPermitted
from slipway.kube import Kube

from .conftest import BOTH_BACKENDS, add_workflow, configmap, deployment, dump, service

pytestmark = pytest.mark.cluster


def _wait(what: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _pods(kube: Kube, namespace: str, app: str) -> list[dict[str, Any]]:
    info = kube.discovery.lookup("v1", "Pod")
    return [
        p for p in kube.list(info, namespace, label_selector=f"app={app}") if not p["metadata"].get("deletionTimestamp")
    ]


def _ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _cronjob(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
        "spec": {"schedule": "0 0 1 1 *", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "run", "image": "registry.invalid/job:1"}]}}}}},
    }  # fmt: skip


@BOTH_BACKENDS
def test_builtin_actions_on_live_objects(engine: Engine, kube: Kube, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/app.yaml": dump(deployment("web", 2), _cronjob("nightly"), configmap("settings"))})
    wf = add_workflow(engine, repo, namespace)
    assert engine.sync(wf).status == "succeeded"
    before = {p["metadata"]["name"] for p in _pods(kube, namespace, "web")}
    assert len(before) == 2

    offered = engine.actions(wf, "Deployment/web")
    assert [a["name"] for a in offered["actions"]] == ["pause", "restart", "resume", "scale"]
    assert {a["name"]: a["disabled"] for a in offered["actions"]}["resume"] is True

    # Restart rolls the pods as `kubectl rollout restart` does: new pods, all Ready, the old ones gone.
    result = engine.run_action(wf, "Deployment/web", "restart", actor="user:alice")
    assert result.status == "succeeded", result.message
    dep = kube.get(kube.discovery.lookup("apps/v1", "Deployment"), namespace, "web")
    assert dep is not None
    assert "kubectl.kubernetes.io/restartedAt" in dep["spec"]["template"]["metadata"]["annotations"]
    _wait(lambda: (now := _pods(kube, namespace, "web")) and len(now) == 2 and all(_ready(p) for p in now)
          and not ({p["metadata"]["name"] for p in now} & before))  # fmt: skip

    # Scale, with its parameter; a bad value is refused before anything runs, and not recorded.
    with pytest.raises(ConfigError, match="whole number"):
        engine.run_action(wf, "deployment/web", "scale", {"replicas": "many"})
    with pytest.raises(ConfigError, match="unknown parameter"):
        engine.run_action(wf, "Deployment/web", "scale", {"replica": "3"})
    assert engine.run_action(wf, "Deployment/web", "scale", {"replicas": "3"}).status == "succeeded"
    _wait(lambda: len([p for p in _pods(kube, namespace, "web") if _ready(p)]) == 3)
    # Git declares replicas: 2, so the next plan shows the Deployment as drift, as Argo CD does.
    plan = engine.plan(wf)
    web = next(c for c in plan.changes if c.resource == "Deployment/web")
    assert web.drifted and web.type == "update"

    # Pause, then resume.
    assert engine.run_action(wf, "Deployment/web", "pause").status == "succeeded"
    dep = kube.get(kube.discovery.lookup("apps/v1", "Deployment"), namespace, "web")
    assert dep is not None and dep["spec"]["paused"] is True
    with pytest.raises(ConfigError, match="disabled"):
        engine.run_action(wf, "Deployment/web", "pause")
    assert engine.run_action(wf, "Deployment/web", "resume").status == "succeeded"
    dep = kube.get(kube.discovery.lookup("apps/v1", "Deployment"), namespace, "web")
    assert dep is not None and not dep["spec"].get("paused")

    # A Job from the CronJob, owned by it.
    ran = engine.run_action(wf, "CronJob/nightly", "create-job", actor="user:bob")
    assert ran.status == "succeeded", ran.message
    jobs = kube.list(kube.discovery.lookup("batch/v1", "Job"), namespace)
    assert [j["metadata"]["ownerReferences"][0]["name"] for j in jobs] == ["nightly"]
    assert ran.changes[0]["type"] == "create" and ran.changes[0]["resource"] == f"Job/{jobs[0]['metadata']['name']}"

    # A ConfigMap has no actions.
    assert engine.actions(wf, "ConfigMap/settings")["actions"] == []
    # Every action is on the record, with who ran it; the workflow's status is as it was.
    records = [r for r in engine.history(wf, 20) if r.kind == "action"]
    assert [r.message.split()[0] for r in records] == ["create-job", "resume", "pause", "scale", "restart"]
    assert records[-1].actor == "user:alice" and records[0].actor == "user:bob"
    assert records[-1].changes[0]["fields"] == ["spec.template.metadata.annotations.kubectl.kubernetes.io/restartedAt"]
    assert engine.status(wf)["status"] == "synced"


def test_an_object_the_workflow_does_not_own_is_refused(engine: Engine, kube: Kube, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/app.yaml": dump(configmap("settings"))})
    wf = add_workflow(engine, repo, namespace)
    assert engine.sync(wf).status == "succeeded"
    # A Deployment in the same namespace, made by someone else.
    kube.apply(
        kube.discovery.lookup("apps/v1", "Deployment"),
        {**deployment("other"), "metadata": {"name": "other", "namespace": namespace}},
    )
    for call in (lambda: engine.actions(wf, "Deployment/other"),
                 lambda: engine.run_action(wf, "Deployment/other", "restart")):  # fmt: skip
        with pytest.raises(NotPermitted, match="does not own Deployment/other"):
            call()
    dep = kube.get(kube.discovery.lookup("apps/v1", "Deployment"), namespace, "other")
    assert dep is not None and "annotations" not in (dep["spec"]["template"].get("metadata") or {})
    assert [r for r in engine.history(wf, 20) if r.kind == "action"] == []


LUA_DISCOVERY = """
local actions = {}
actions["greet"] = {["params"] = {{["name"] = "who"}}}
actions["fail"] = {}
actions["spin"] = {}
actions["other"] = {}
actions["grow"] = {}
actions["elsewhere"] = {}
return actions
"""
LUA_GREET = """
obj.data = obj.data or {}
obj.data["greeting"] = "hello " .. actionParams["who"]
obj.metadata.labels = obj.metadata.labels or {}
obj.metadata.labels["greeted"] = "yes"
return obj
"""


def test_lua_actions_in_argo_cds_format(
    engine: Engine, kube: Kube, make_git, namespace: str, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "custom"
    actions = root / "core" / "ConfigMap" / "actions"
    for name, text in {
        "discovery.lua": LUA_DISCOVERY,
        "greet/action.lua": LUA_GREET,
        "fail/action.lua": 'error("the greeting service is down")',
        "spin/action.lua": "while true do end",
        "other/action.lua": 'obj.metadata.name = "someone-else"\nreturn obj',
        "elsewhere/action.lua": 'return {{operation = "create", resource = {apiVersion = "v1", kind = "ConfigMap", '
        'metadata = {name = "planted", namespace = "default"}, data = {a = "b"}}}}',
        "grow/action.lua": 'local t = {}\nfor i = 1, 1e9 do t[i] = string.rep("x", 1000000) .. i end\nreturn obj',
    }.items():
        (actions / name).parent.mkdir(parents=True, exist_ok=True)
        (actions / name).write_text(text)
    monkeypatch.setenv("SLIPWAY_CUSTOMIZATIONS", str(root))
    repo = make_git({"k8s/app.yaml": dump(configmap("settings", {"k": "v"}))})
    wf = add_workflow(engine, repo, namespace)
    assert engine.sync(wf).status == "succeeded"
    cm_info = kube.discovery.lookup("v1", "ConfigMap")

    offered = engine.actions(wf, "ConfigMap/settings")["actions"]
    assert [a["name"] for a in offered] == ["elsewhere", "fail", "greet", "grow", "other", "spin"]
    assert offered[2]["params"][0]["name"] == "who"

    with pytest.raises(ConfigError, match="'who' is required"):
        engine.run_action(wf, "ConfigMap/settings", "greet")
    done = engine.run_action(wf, "ConfigMap/settings", "greet", {"who": "world"}, actor="user:carol")
    assert done.status == "succeeded", done.message
    cm = kube.get(cm_info, namespace, "settings")
    assert cm is not None and cm["data"] == {"k": "v", "greeting": "hello world"}
    assert cm["metadata"]["labels"]["greeted"] == "yes"

    failed = engine.run_action(wf, "ConfigMap/settings", "fail")
    assert failed.status == "failed" and "the greeting service is down" in failed.message
    started = time.monotonic()
    spun = engine.run_action(wf, "ConfigMap/settings", "spin")
    assert spun.status == "failed" and "stopped after 5s" in spun.message
    assert time.monotonic() - started < 30
    grown = engine.run_action(wf, "ConfigMap/settings", "grow")
    assert grown.status == "failed" and "ran out of memory" in grown.message
    other = engine.run_action(wf, "ConfigMap/settings", "other")
    assert other.status == "failed" and "may patch only ConfigMap/settings" in other.message
    planted = engine.run_action(wf, "ConfigMap/settings", "elsewhere")
    assert planted.status == "failed" and f"may create objects only in namespace {namespace}" in planted.message
    assert kube.get(cm_info, "default", "planted") is None
    after = kube.get(cm_info, namespace, "settings")
    assert after is not None and after["metadata"]["resourceVersion"] == cm["metadata"]["resourceVersion"]
    assert [r.status for r in engine.history(wf, 10) if r.kind == "action"] == ["failed"] * 5 + ["succeeded"]


def test_the_tree_nests_what_controllers_made(engine: Engine, kube: Kube, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    repo = make_git(
        {"k8s/app.yaml": dump(deployment("web", 2), configmap("settings"), service("web"), _cronjob("nightly"))}
    )
    wf = add_workflow(engine, repo, namespace)
    assert engine.sync(wf).status == "succeeded"
    assert engine.run_action(wf, "CronJob/nightly", "create-job").status == "succeeded"

    def job_pod() -> Any:
        tree = {n["kind"]: n for n in engine.tree(wf)}
        jobs = tree["CronJob"]["children"]
        return tree if jobs and jobs[0]["kind"] == "Job" and jobs[0]["children"] else None

    tree = _wait(job_pod)
    assert set(tree) == {"ConfigMap", "CronJob", "Deployment", "Service"}
    assert tree["CronJob"]["children"][0]["children"][0]["kind"] == "Pod"
    assert [c["kind"] for c in tree["Service"]["children"]] == ["EndpointSlice"]
    web = tree["Deployment"]
    assert web["health"] == "Healthy" and web["declared"] and web["age"]
    assert {a["name"] for a in web["actions"]} == {"pause", "restart", "resume", "scale"}
    [rs] = web["children"]
    assert rs["kind"] == "ReplicaSet" and not rs["declared"]
    pods = rs["children"]
    assert len(pods) == 2 and all(p["kind"] == "Pod" for p in pods)
    assert all(p["containers"][0]["name"] == "app" and p["containers"][0]["restarts"] == 0 for p in pods)
    assert any(e["reason"] == "ScalingReplicaSet" for e in web["events"])
    assert "actions" not in tree["ConfigMap"]


ARGO_CM_ACTIONS = """
discovery.lua: |
  local actions = {}
  actions["stamp"] = {}
  return actions
definitions:
- name: stamp
  action.lua: |
    obj.data["stamped"] = "yes"
    return obj
"""


def test_actions_from_labelled_configmaps_in_argo_cds_format(kube: Kube, namespace: str) -> None:
    from slipway.actions import configmaps
    from slipway.actions.scripts import actions_dir, discover, search_path

    info = kube.discovery.lookup("v1", "ConfigMap")

    def put(name: str, data: dict[str, str], labelled: bool = True) -> None:
        labels = {configmaps.LABEL: "true"} if labelled else {}
        kube.apply(info, {"apiVersion": "v1", "kind": "ConfigMap", "data": data,
                          "metadata": {"name": name, "namespace": namespace, "labels": labels}})  # fmt: skip

    assert configmaps.directory(kube, namespace) is None
    put("not-ours", {"resource.customizations.actions._ConfigMap": ARGO_CM_ACTIONS}, labelled=False)
    assert configmaps.directory(kube, namespace) is None
    put("custom", {"resource.customizations.actions.ConfigMap": ARGO_CM_ACTIONS, "unrelated": "x"})
    found = configmaps.directory(kube, namespace)
    assert found is not None and actions_dir("", "ConfigMap", [found]) == found / "core/ConfigMap/actions"
    assert configmaps.directory(kube, namespace) == found  # unchanged: the same directory
    dirs = [found, *search_path()]
    assert [a.name for a in discover("", "ConfigMap", {"data": {}}, dirs)] == ["stamp"]

    put("custom", {"resource.customizations.actions.apps_Deployment": "definitions: [oops"})
    with pytest.raises(ConfigError, match=f"ConfigMap custom in namespace {namespace}: key "
                       "resource.customizations.actions.apps_Deployment: not YAML"):  # fmt: skip
        configmaps.directory(kube, namespace)


def test_actions_never_push_syncs_out_of_a_short_history(engine: Engine, kube: Kube, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/app.yaml": dump(deployment("web", 1), configmap("settings", {"v": "1"}))})
    wf = add_workflow(engine, repo, namespace, history_limit=2)
    assert engine.sync(wf).status == "succeeded"
    repo.commit({"k8s/app.yaml": dump(deployment("web", 1), configmap("settings", {"v": "2"}))})
    assert engine.sync(wf).status == "succeeded"
    for _ in range(3):
        assert engine.run_action(wf, "Deployment/web", "restart").status == "succeeded"
    kinds = [r.kind for r in engine.history(wf, 10)]
    assert kinds == ["action", "action", "sync", "sync"]  # the limit holds for each, apart
    rolled = engine.rollback(wf, "back to v1")
    assert rolled.status == "succeeded", rolled.message
    cm = kube.get(kube.discovery.lookup("v1", "ConfigMap"), namespace, "settings")
    assert cm is not None and cm["data"] == {"v": "1"}
